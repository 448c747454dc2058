"""SimSiam baseline: projector + predictor, negative cosine with stop-gradient, no target network
(METHODS.md section 5).

``z = g(E(v))``, ``p = h(z)``; ``L = D(p1, z2)/2 + D(p2, z1)/2`` with ``D(p, z) = -cos(p, sg(z))``.
Heads as the SimSiam paper: a 3-layer projector with BatchNorm on every layer (the output BN without
affine parameters; hidden width = the backbone's feature width), and a 2-layer bottleneck predictor
(2048 -> 512 -> 2048).

References:
    - [0] Chen & He, Exploring Simple Siamese Representation Learning, CVPR 2021,
      https://arxiv.org/abs/2011.10566
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from ..losses.simsiam import simsiam_loss
from ..models.heads import ProjectionHead
from ..models.unet import UNet
from ..registry import METHODS
from .base import Method

__all__ = ["SimSiam", "SimSiamPredictor", "SimSiamProjector"]


class SimSiamProjector(ProjectionHead):
    """Global average pool, then three Linear layers with BatchNorm, ReLU on the first two.

    SimSiam: "The projection MLP (in f) has BN applied to each fully-connected (fc) layer, including its
    output fc. Its output fc has no ReLU. The hidden fc is 2048-d. This MLP has 3 layers."

    Shape: (B, C, h, w) or (B, C) -> (B, out_dim).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(
            [
                (in_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)),
                (hidden_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)),
                (hidden_dim, out_dim, nn.BatchNorm1d(out_dim, affine=False), None),
            ]
        )

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.mean(dim=(-2, -1)) if x.ndim == 4 else x)


class SimSiamPredictor(ProjectionHead):
    """Bottleneck predictor ``Linear(d, h) -> BN -> ReLU -> Linear(h, d)``.

    SimSiam: "The prediction MLP (h) has BN applied to its hidden fc layers. Its output fc does not
    have BN or ReLU. [...] h's hidden layer's dimension is 512."

    Shape: (B, dim) -> (B, dim).
    """

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__(
            [(dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)), (hidden_dim, dim, None, None)]
        )


@METHODS.register(
    "simsiam",
    description="SimSiam: predictor + stop-gradient, symmetric negative cosine, no negatives or EMA",
    paper="Chen, He, Exploring Simple Siamese Representation Learning, CVPR 2021, https://arxiv.org/abs/2011.10566",
)
class SimSiam(Method):
    """SimSiam on the U-Net encoder's bottleneck.

    Args:
        backbone: the U-Net; only its encoder is used and pre-trained.
        out_dim: projection size ``d`` (2048).
        hidden_dim: projector hidden width; ``None``: the bottleneck channels (SimSiam uses the backbone's
            feature width, 2048 for ResNet-50).
        pred_hidden_dim: predictor bottleneck width (512).

    Batch: ``v3``, ``v4`` (B, 1, H, W), B >= 2. ``forward`` returns ``{"loss", "z_std"}``; ``z_std``
    (detached) is the per-dimension standard deviation of the normalised projections averaged over
    dimensions, SimSiam's collapse monitor (0 when collapsed, about ``1/sqrt(d)`` when healthy).
    """

    views: ClassVar[tuple[str, ...]] = ("v3", "v4")
    pretrains: ClassVar[tuple[str, ...]] = ("encoder",)

    def __init__(
        self, backbone: UNet, out_dim: int = 2048, hidden_dim: int | None = None, pred_hidden_dim: int = 512
    ) -> None:
        super().__init__(backbone)
        channels = backbone.bottleneck_channels
        self.projector = SimSiamProjector(channels, hidden_dim or channels, out_dim)
        self.predictor = SimSiamPredictor(out_dim, pred_hidden_dim)

    def project(self, x: Tensor) -> Tensor:
        """(B, 1, H, W) -> (B, out_dim) projections ``z``."""
        return self.projector(self.backbone.encode(x)[-1])

    @staticmethod
    def collapse_std(z: Tensor) -> Tensor:
        """Mean over dimensions of the batch standard deviation of L2-normalised ``z`` (B, d); detached."""
        return F.normalize(z.detach().float(), dim=1).std(dim=0).mean()

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        z1, z2 = self.project(batch["v3"]), self.project(batch["v4"])
        p1, p2 = self.predictor(z1), self.predictor(z2)
        return {"loss": simsiam_loss(p1, p2, z1, z2), "z_std": self.collapse_std(z1)}

    def bare_forward(self, batch: dict[str, Tensor]) -> Tensor:
        z1, z2 = self.project(batch["v3"]), self.project(batch["v4"])
        return self.predictor(z1).mean() + self.predictor(z2).mean()
