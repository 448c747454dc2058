"""BYOL baseline: an online encoder + projector + predictor regresses an EMA target (METHODS.md section 5).

Online: ``q = h(g(E(v)))``; target: ``z' = g'(E'(v))`` (momentum copies, no gradient); loss
``2 - 2 cos(q1, z2') + 2 - 2 cos(q2, z1')``. The target follows ``t <- m t + (1 - m) o`` with
``m = 1 - (1 - 0.99) (cos(pi progress) + 1) / 2``, from 0.99 at the start to 1 at the end, applied by
the engine through :meth:`momentum_pairs`.

References:
    - [0] Grill et al., Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning,
      NeurIPS 2020, https://arxiv.org/abs/2006.07733
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from ..losses.byol import byol_loss
from ..models.heads import MLPHead, PooledMLPHead
from ..models.unet import UNet
from ..registry import METHODS
from .base import Method, cosine_schedule, momentum_copy

__all__ = ["BYOL"]

_SCHEDULE_STEPS = 1_000_000  # resolution of ``progress`` handed to the integer-step cosine schedule


@METHODS.register(
    "byol",
    description="BYOL: online predictor regresses an EMA target projection, 2 - 2 cos, symmetric",
    paper="Grill et al., Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning, NeurIPS 2020, "
    "https://arxiv.org/abs/2006.07733",
)
class BYOL(Method):
    """BYOL on the U-Net encoder's bottleneck.

    Args:
        backbone: the U-Net; only its encoder is used and pre-trained.
        out_dim: projection size (256 in BYOL).
        proj_hidden_dim: hidden width of the projector, with BatchNorm (4096 in BYOL).
        pred_hidden_dim: hidden width of the predictor, with BatchNorm (4096 in BYOL).
        base_momentum: EMA coefficient at the start (0.99), raised to 1 by a cosine schedule.

    Batch: ``v3``, ``v4`` (B, 1, H, W), B >= 2 (BatchNorm in the heads). ``forward`` returns ``{"loss"}``.
    """

    views: ClassVar[tuple[str, ...]] = ("v3", "v4")
    pretrains: ClassVar[tuple[str, ...]] = ("encoder",)

    def __init__(
        self,
        backbone: UNet,
        out_dim: int = 256,
        proj_hidden_dim: int = 4096,
        pred_hidden_dim: int = 4096,
        base_momentum: float = 0.99,
    ) -> None:
        super().__init__(backbone)
        channels = backbone.bottleneck_channels
        self.projector = PooledMLPHead(channels, proj_hidden_dim, out_dim, batch_norm=True)
        self.predictor = MLPHead(out_dim, pred_hidden_dim, out_dim, batch_norm=True)
        self.target_encoder = momentum_copy(backbone.encoder)
        self.target_projector = momentum_copy(self.projector)
        self.base_momentum = base_momentum

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone.encoder, self.target_encoder), (self.projector, self.target_projector)]

    def momentum(self, progress: float) -> float:
        """``1 - (1 - base_momentum) (cos(pi progress) + 1) / 2`` for ``progress`` in [0, 1]."""
        step = round(min(max(progress, 0.0), 1.0) * _SCHEDULE_STEPS)
        return cosine_schedule(step, _SCHEDULE_STEPS, self.base_momentum, 1.0)

    def online(self, x: Tensor) -> Tensor:
        """(B, 1, H, W) -> (B, out_dim) predictions of the online network."""
        return self.predictor(self.projector(self.backbone.encode(x)[-1]))

    @torch.no_grad()
    def target(self, x: Tensor) -> Tensor:
        """(B, 1, H, W) -> (B, out_dim) projections of the target network (no gradient)."""
        return self.target_projector(self.target_encoder(x)[-1])

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        v3, v4 = batch["v3"], batch["v4"]
        q3, q4 = self.online(v3), self.online(v4)
        z3, z4 = self.target(v3), self.target(v4)
        return {"loss": byol_loss(q3, q4, z3, z4)}

    def bare_forward(self, batch: dict[str, Tensor]) -> Tensor:
        v3, v4 = batch["v3"], batch["v4"]
        return self.online(v3).mean() + self.online(v4).mean() + self.target(v3).mean() + self.target(v4).mean()
