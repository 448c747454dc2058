"""PCL: positional contrastive learning (Zeng et al. 2021), METHODS.md sections 2 and 5.

Two spatial views v3, v4 of each slice go through the encoder and an image-level head; SupCon
treats as positives every pair of slices whose normalised positions differ by less than ``delta``
(the two views of one slice included)::

    z = [H(E(v3)), H(E(v4))],  M_ij = |p_i - p_j| < delta,  L = SupCon(z, M; tau, tau_base)

References:
    - [0] Zeng et al., Positional Contrastive Learning for Volumetric Medical Image Segmentation,
      MICCAI 2021, https://arxiv.org/abs/2106.09157
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from ..losses.supcon import positional_mask, supcon_loss
from ..models.heads import PooledMLPHead
from ..models.unet import UNet
from ..registry import METHODS
from .base import Method

__all__ = ["PCL"]


@METHODS.register(
    "pcl",
    description="positional contrastive learning: SupCon with slice-position positives",
    paper="Zeng et al., Positional Contrastive Learning for Volumetric Medical Image Segmentation, MICCAI 2021, https://arxiv.org/abs/2106.09157",
)
class PCL(Method):
    """Positional contrastive learning on the encoder bottleneck.

    Args:
        backbone: the U-Net whose encoder is pre-trained.
        delta: position threshold for positives (0.1 for CT pre-training; the paper used 0.35 for ACDC).
        temperature: tau (0.1).
        base_temperature: tau_base (0.07, the reference code's SupCon scale).
        hidden_dim: hidden width of the head (``None``: the bottleneck width, 512 for f = 32).
        out_dim: embedding size d (128).
    """

    pretrains: ClassVar[tuple[str, ...]] = ("encoder",)
    views: ClassVar[tuple[str, ...]] = ("v3", "v4")

    def __init__(
        self,
        backbone: UNet,
        delta: float = 0.1,
        temperature: float = 0.1,
        base_temperature: float = 0.07,
        hidden_dim: int | None = None,
        out_dim: int = 128,
    ) -> None:
        super().__init__(backbone)
        if delta <= 0:
            raise ValueError(f"delta must be positive, got {delta}")
        self.delta, self.temperature, self.base_temperature = delta, temperature, base_temperature
        c = backbone.bottleneck_channels
        self.head = PooledMLPHead(c, hidden_dim or c, out_dim)

    def embed(self, x: Tensor) -> Tensor:
        """(B, C, H, W) views -> (B, d) embeddings ``H(E(x))``."""
        return self.head(self.backbone.encode(x)[-1])

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Batch keys v3, v4 (B, 1, H, W) and position (B,) -> ``{"loss"}``."""
        z = torch.cat([self.embed(batch["v3"]), self.embed(batch["v4"])])
        mask = positional_mask(batch["position"].to(z.device), self.delta)
        return {"loss": supcon_loss(z, mask, self.temperature, self.base_temperature)}

    def bare_forward(self, batch: dict[str, Tensor]) -> Tensor:
        return self.embed(batch["v3"]).mean() + self.embed(batch["v4"]).mean()
