"""MoCo v2 baseline: a query encoder, an EMA key encoder and a queue of negative keys (METHODS.md section 5).

Query ``q = g(E(v3))`` with gradient; key ``k = g'(E'(v4))`` from the momentum copy (no gradient);
InfoNCE of ``q`` against ``k`` and the ``K`` queued keys, tau 0.2; then the keys (gathered over
processes) replace the oldest queue entries. The key encoder follows ``E' <- m E' + (1 - m) E`` with
``m = 0.999`` constant, applied by the engine through :meth:`momentum_pairs` after each step, which is
the same sequence as MoCo's update at the start of each forward.

Not reproduced: MoCo's shuffled BatchNorm across GPUs (each process's key batch is normalised on its
own statistics, like one-GPU MoCo implementations).

References:
    - [0] He et al., Momentum Contrast for Unsupervised Visual Representation Learning, CVPR 2020,
      https://arxiv.org/abs/1911.05722
    - [1] Chen et al., Improved Baselines with Momentum Contrastive Learning, 2020,
      https://arxiv.org/abs/2003.04297
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses.ntxent import enqueue, infonce_loss
from ..models.heads import PooledMLPHead
from ..models.unet import UNet
from ..registry import METHODS
from ..utils.distributed import gather_nograd
from .base import Method, momentum_copy

__all__ = ["MoCo"]


@METHODS.register(
    "moco",
    description="MoCo v2: InfoNCE against an EMA key encoder and a queue of negatives, MLP head",
    paper="Chen, Fan, Girshick, He, Improved Baselines with Momentum Contrastive Learning, arXiv 2020, "
    "https://arxiv.org/abs/2003.04297",
)
class MoCo(Method):
    """MoCo v2 on the U-Net encoder's bottleneck.

    Args:
        backbone: the U-Net; only its encoder is used and pre-trained.
        out_dim: key/query size (128).
        hidden_dim: hidden width of the MLP head; ``None``: the bottleneck channels (MoCo v2 uses the
            backbone's feature width, 2048 for ResNet-50).
        temperature: tau (0.2).
        queue_size: number of queued negatives ``K`` (65536 in MoCo, scaled to small medical data: 4096).
        base_momentum: EMA coefficient of the key encoder (0.999, constant).

    Buffers: ``queue`` (K, out_dim) L2-normalised keys (random at start, as MoCo), ``queue_ptr`` ().
    Batch: ``v3`` (queries), ``v4`` (keys). ``forward`` returns ``{"loss"}`` and, in training mode,
    enqueues the keys after computing the loss.
    """

    views: ClassVar[tuple[str, ...]] = ("v3", "v4")
    pretrains: ClassVar[tuple[str, ...]] = ("encoder",)

    queue: Tensor
    queue_ptr: Tensor

    def __init__(
        self,
        backbone: UNet,
        out_dim: int = 128,
        hidden_dim: int | None = None,
        temperature: float = 0.2,
        queue_size: int = 4096,
        base_momentum: float = 0.999,
    ) -> None:
        super().__init__(backbone)
        if queue_size < 1:
            raise ValueError(f"queue_size must be positive, got {queue_size}")
        channels = backbone.bottleneck_channels
        self.head = PooledMLPHead(channels, hidden_dim or channels, out_dim)
        self.target_encoder = momentum_copy(backbone.encoder)
        self.target_head = momentum_copy(self.head)
        self.temperature = temperature
        self.base_momentum = base_momentum
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, out_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone.encoder, self.target_encoder), (self.head, self.target_head)]

    def momentum(self, progress: float) -> float:
        """Constant ``base_momentum`` (0.999)."""
        return self.base_momentum

    def query(self, x: Tensor) -> Tensor:
        """(B, 1, H, W) -> (B, out_dim) query embeddings (with gradient, not normalised)."""
        return self.head(self.backbone.encode(x)[-1])

    @torch.no_grad()
    def key(self, x: Tensor) -> Tensor:
        """(B, 1, H, W) -> (B, out_dim) L2-normalised keys from the momentum encoder (no gradient)."""
        return F.normalize(self.target_head(self.target_encoder(x)[-1]).float(), dim=1)

    @torch.no_grad()
    def _enqueue(self, keys: Tensor) -> None:
        new_queue, ptr = enqueue(self.queue, keys, self.queue_ptr)  # the pointer stays on the device
        self.queue.copy_(new_queue)
        self.queue_ptr.copy_(ptr)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        q = self.query(batch["v3"])
        k = self.key(batch["v4"])
        loss = infonce_loss(q, k, self.queue.clone(), self.temperature)
        if self.training:
            self._enqueue(gather_nograd(k))
        return {"loss": loss}

    def bare_forward(self, batch: dict[str, Tensor]) -> Tensor:
        return self.query(batch["v3"]).mean() + self.key(batch["v4"]).mean()
