"""WCL: weakly supervised contrastive learning (Zheng et al. 2021), METHODS.md section 5.

Two heads on the pooled encoder bottleneck of the spatial views v3, v4:

* head 1: instance NT-Xent between the two views (tau 0.1);
* head 2: per view a 1-NN graph, its connected components as pseudo-labels, and SupCon of each
  view's embeddings with the other view's labels (:func:`medssl.losses.wcl.wcl_graph_loss`).

``L = L_instance + graph_weight * L_graph`` (weight 1 in the reference code). The graph is built
on this process's batch (the reference code gathers it over all GPUs).

References:
    - [0] Zheng et al., Weakly Supervised Contrastive Learning, ICCV 2021, https://arxiv.org/abs/2110.04770
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from ..losses.wcl import wcl_graph_loss, wcl_instance_loss
from ..models.heads import PooledMLPHead
from ..models.unet import UNet
from ..registry import METHODS
from .base import Method

__all__ = ["WCL"]


@METHODS.register(
    "wcl",
    description="instance NT-Xent plus SupCon on swapped 1-NN connected-component pseudo-labels",
    paper="Zheng et al., Weakly Supervised Contrastive Learning, ICCV 2021, https://arxiv.org/abs/2110.04770",
)
class WCL(Method):
    """Weakly supervised contrastive learning on the encoder.

    Args:
        backbone: the U-Net whose encoder is pre-trained.
        temperature: tau of both losses (0.1).
        base_temperature: SupCon scale tau_base (``None``: no scale, as the WCL code).
        graph_weight: weight of the graph loss (1.0).
        hidden_dim: hidden width of both heads (``None``: the bottleneck width).
        out_dim: embedding size of both heads (128).
    """

    pretrains: ClassVar[tuple[str, ...]] = ("encoder",)
    views: ClassVar[tuple[str, ...]] = ("v3", "v4")

    def __init__(
        self,
        backbone: UNet,
        temperature: float = 0.1,
        base_temperature: float | None = None,
        graph_weight: float = 1.0,
        hidden_dim: int | None = None,
        out_dim: int = 128,
    ) -> None:
        super().__init__(backbone)
        self.temperature, self.base_temperature, self.graph_weight = temperature, base_temperature, graph_weight
        c = backbone.bottleneck_channels
        self.instance_head = PooledMLPHead(c, hidden_dim or c, out_dim)
        self.graph_head = PooledMLPHead(c, hidden_dim or c, out_dim)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Batch keys v3, v4 (B, 1, H, W), B >= 2 -> ``{"loss", "instance", "graph"}``."""
        h3, h4 = self.backbone.encode(batch["v3"])[-1], self.backbone.encode(batch["v4"])[-1]
        inst = wcl_instance_loss(
            self.instance_head(h3), self.instance_head(h4), self.temperature, self.base_temperature
        )
        graph = wcl_graph_loss(self.graph_head(h3), self.graph_head(h4), self.temperature, self.base_temperature)
        return {"loss": inst + self.graph_weight * graph, "instance": inst, "graph": graph}

    def bare_forward(self, batch: dict[str, Tensor]) -> Tensor:
        h3, h4 = self.backbone.encode(batch["v3"])[-1], self.backbone.encode(batch["v4"])[-1]
        return sum(head(h).mean() for head in (self.instance_head, self.graph_head) for h in (h3, h4))
