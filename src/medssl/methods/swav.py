"""SwAV baseline: online clustering with Sinkhorn-Knopp codes and swapped prediction (METHODS.md section 5).

``z = normalize(g(E(v)))`` for the two views, prototype scores ``s = z C^T`` with the prototypes ``C``
re-normalised (no gradient) at every step; codes ``q = sinkhorn(s)`` (eps 0.05, 3 iterations, no
gradient); each view's codes are predicted from the other view's ``softmax(s / 0.1)``. As SwAV:

* the prototypes get no gradient for the first ``freeze_prototypes_steps`` optimiser steps (the step
  comes from :meth:`on_step`, which the engine calls before each step);
* an optional queue of past embeddings (``queue_length > 0``) is filled from ``queue_start_step`` on and,
  once full, stacked under the batch's scores in the Sinkhorn problem (the batch keeps its own rows).

Not reproduced: multi-crop (the pipeline produces two views).

References:
    - [0] Caron et al., Unsupervised Learning of Visual Features by Contrasting Cluster Assignments,
      NeurIPS 2020, https://arxiv.org/abs/2006.09882
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses.ntxent import enqueue
from ..losses.swav import sinkhorn_knopp, swav_loss
from ..models.heads import PooledMLPHead
from ..models.unet import UNet
from ..registry import METHODS
from ..utils.distributed import is_distributed, world_size
from .base import Method

__all__ = ["SwAV"]


def _all_reduce_sum(x: Tensor) -> Tensor:
    """In-place sum over processes (identity in one process)."""
    if is_distributed():
        dist.all_reduce(x)
    return x


@METHODS.register(
    "swav",
    description="SwAV: swapped prediction of Sinkhorn-Knopp prototype codes between two views",
    paper="Caron, Misra, Mairal, Goyal, Bojanowski, Joulin, Unsupervised Learning of Visual Features by "
    "Contrasting Cluster Assignments, NeurIPS 2020, https://arxiv.org/abs/2006.09882",
)
class SwAV(Method):
    """SwAV on the U-Net encoder's bottleneck.

    Args:
        backbone: the U-Net; only its encoder is used and pre-trained.
        out_dim: embedding size (128).
        hidden_dim: projector hidden width, with BatchNorm; ``None``: the bottleneck channels (SwAV's
            ``hidden_mlp`` 2048 = ResNet-50's feature width).
        num_prototypes: number of prototypes ``K`` (3000 in SwAV; use fewer for small data).
        temperature: tau of the prediction softmax (0.1).
        epsilon: Sinkhorn entropy regularisation (0.05).
        sinkhorn_iterations: Sinkhorn rounds (3).
        queue_length: per-view queue of past embeddings (0: no queue, SwAV's default for large batches).
        queue_start_step: first step at which embeddings are queued.
        freeze_prototypes_steps: steps during which the prototypes get no gradient (313 in SwAV).

    Batch: ``v3``, ``v4`` (B, 1, H, W), B >= 2. ``forward`` returns ``{"loss"}``.
    """

    queue: Tensor  # buffers, registered only when queue_length > 0
    queue_ptr: Tensor
    queue_count: Tensor

    views: ClassVar[tuple[str, ...]] = ("v3", "v4")
    pretrains: ClassVar[tuple[str, ...]] = ("encoder",)

    def __init__(
        self,
        backbone: UNet,
        out_dim: int = 128,
        hidden_dim: int | None = None,
        num_prototypes: int = 3000,
        temperature: float = 0.1,
        epsilon: float = 0.05,
        sinkhorn_iterations: int = 3,
        queue_length: int = 0,
        queue_start_step: int = 0,
        freeze_prototypes_steps: int = 313,
    ) -> None:
        super().__init__(backbone)
        if queue_length < 0:
            raise ValueError(f"queue_length must be >= 0, got {queue_length}")
        channels = backbone.bottleneck_channels
        self.projector = PooledMLPHead(channels, hidden_dim or channels, out_dim, batch_norm=True)
        self.prototypes = nn.Linear(out_dim, num_prototypes, bias=False)
        self.temperature = temperature
        self.epsilon = epsilon
        self.sinkhorn_iterations = sinkhorn_iterations
        self.queue_length = queue_length
        self.queue_start_step = queue_start_step
        self.freeze_prototypes_steps = freeze_prototypes_steps
        self.step = 0
        if queue_length > 0:
            self.register_buffer("queue", torch.zeros(len(self.views), queue_length, out_dim))
            self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
            self.register_buffer("queue_count", torch.zeros((), dtype=torch.long))

    def on_step(self, step: int, max_steps: int) -> None:
        self.step = step

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        """Project every prototype (row of the weight) onto the unit sphere, in place, without gradient."""
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))

    def embed(self, x: Tensor) -> Tensor:
        """(B, 1, H, W) -> (B, out_dim) L2-normalised embeddings."""
        return F.normalize(self.projector(self.backbone.encode(x)[-1]), dim=1)

    def _prototype_weight(self) -> Tensor:
        w = self.prototypes.weight
        return w.detach() if self.step < self.freeze_prototypes_steps else w

    def _queue_ready(self) -> bool:
        return self.queue_length > 0 and int(self.queue_count) >= self.queue_length

    @torch.no_grad()
    def codes(self, scores: list[Tensor]) -> list[Tensor]:
        """Sinkhorn codes (B, K) of each view's scores, with the full queue stacked above when ready."""
        out = []
        use_queue = self._queue_ready()
        w = self.prototypes.weight.detach()
        for i, s in enumerate(scores):
            s = s.detach().float()
            if use_queue:
                s = torch.cat([self.queue[i].float() @ w.float().t(), s], 0)
            q = sinkhorn_knopp(s, self.epsilon, self.sinkhorn_iterations, world_size(), _all_reduce_sum)
            out.append(q[-scores[i].shape[0] :])
        return out

    @torch.no_grad()
    def _enqueue(self, embeddings: list[Tensor]) -> None:
        ptr = int(self.queue_ptr)
        new_ptr = ptr
        for i, z in enumerate(embeddings):
            new_queue, new_ptr = enqueue(self.queue[i], z.detach(), ptr)
            self.queue[i].copy_(new_queue)
        self.queue_ptr.fill_(new_ptr)
        self.queue_count.fill_(min(int(self.queue_count) + embeddings[0].shape[0], self.queue_length))

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        self.normalize_prototypes()
        z = [self.embed(batch[v]) for v in self.views]
        w = self._prototype_weight()
        scores = [zi @ w.t() for zi in z]
        codes = self.codes(scores)
        if self.training and self.queue_length > 0 and self.step >= self.queue_start_step:
            self._enqueue(z)
        return {"loss": swav_loss(scores, codes, self.temperature)}

    def bare_forward(self, batch: dict[str, Tensor]) -> Tensor:
        w = self.prototypes.weight
        return sum((self.embed(batch[v]) @ w.t()).mean() for v in self.views)  # type: ignore[return-value]  # sum() of tensors is a Tensor (its int start is absorbed)
