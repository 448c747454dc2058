"""DeSD: deep self-distillation (Ye et al. 2022), a 2D adaptation, METHODS.md section 5.

DINO-style self-distillation where the student has a head on EVERY encoder stage:

* teacher = EMA copy of the encoder and of the last-stage head (momentum 0.996 -> 1, cosine);
  its output on each view is centred (centre momentum 0.9) and sharpened (tau_t 0.04 -> 0.07
  linearly over the first ``teacher_temp_warmup`` of training);
* student = the online encoder with one DINO head per stage (pooled skips 1..4 and the
  bottleneck, tau_s 0.1); each stage's output on one view matches the teacher's last-stage
  output on the other view (cross-view pairs only, as DINO without local crops);
* ``L`` = the mean over stages of each stage's loss (DeSD weighs its 4 ResNet stages 1/4 each).

The DINO head (3-layer MLP with GELU, hidden 2048, bottleneck 256, L2 normalisation, then a
weight-normalised linear layer to ``out_dim`` = 65536 with its norm fixed to 1) is written here;
the last layer gets no gradient during the first ``freeze_last_layer`` of training (DINO: 1 epoch).

References:
    - [0] Ye et al., DeSD: Self-Supervised Learning with Deep Self-Distillation for 3D Medical Image
      Segmentation, MICCAI 2022, https://doi.org/10.1007/978-3-031-16440-8_52
    - [1] Caron et al., Emerging Properties in Self-Supervised Vision Transformers (DINO), ICCV 2021,
      https://arxiv.org/abs/2104.14294
"""

from __future__ import annotations

import copy
import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses.dino import dino_loss, teacher_temperature, update_center
from ..models.heads import ProjectionHead
from ..models.unet import UNet
from ..registry import METHODS
from ..utils.distributed import gather_nograd
from .base import Method, cosine_schedule, deactivate_requires_grad

__all__ = ["DINOHead", "DeSD"]


class DINOHead(nn.Module):
    """DINO projection head: pool -> MLP (GELU) -> L2-normalise -> weight-normalised linear.

    Args:
        in_dim: input channels.
        out_dim: output dimension K (65536 in DINO and DeSD).
        hidden_dim: MLP hidden width (2048).
        bottleneck_dim: MLP output width before the last layer (256).
        norm_last_layer: fix the last layer's weight norm to 1 (DINO default True).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 65536,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        norm_last_layer: bool = True,
    ) -> None:
        super().__init__()
        self.mlp = ProjectionHead(
            [
                (in_dim, hidden_dim, None, nn.GELU()),
                (hidden_dim, hidden_dim, None, nn.GELU()),
                (hidden_dim, bottleneck_dim, None, None),
            ]
        )
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        self.last_direction = nn.Parameter(torch.empty(out_dim, bottleneck_dim))
        nn.init.kaiming_uniform_(self.last_direction, a=math.sqrt(5))
        self.last_norm = nn.Parameter(torch.ones(out_dim, 1), requires_grad=not norm_last_layer)

    def forward(self, x: Tensor, freeze_last_layer: bool = False) -> Tensor:
        """(B, C, H, W) map or (B, C) vector -> (B, K) logits; ``freeze_last_layer`` detaches the last layer."""
        if x.ndim == 4:
            x = x.mean(dim=(-2, -1))
        x = F.normalize(self.mlp(x), dim=-1)
        w = F.normalize(self.last_direction, dim=1) * self.last_norm
        if freeze_last_layer:
            w = w.detach()
        return F.linear(x, w)


@METHODS.register(
    "desd",
    description="DINO self-distillation with a student head on every encoder stage (2D DeSD)",
    paper="Ye et al., DeSD: Self-Supervised Learning with Deep Self-Distillation for 3D Medical Image Segmentation, MICCAI 2022, https://doi.org/10.1007/978-3-031-16440-8_52",
)
class DeSD(Method):
    """Deep self-distillation of the encoder.

    Args:
        backbone: the U-Net whose encoder is pre-trained.
        out_dim: head output dimension K (65536).
        hidden_dim: DINO head hidden width (2048).
        bottleneck_dim: DINO head bottleneck width (256).
        norm_last_layer: weight-normalised last layer with norm fixed to 1 (True).
        momentum_start: teacher EMA at the start, rising to 1 by a cosine (0.996).
        center_momentum: centre EMA (0.9).
        student_temp: tau_s (0.1).
        teacher_temp_start: tau_t at the start (0.04).
        teacher_temp_end: tau_t after the warm-up (0.07).
        teacher_temp_warmup: fraction of training of the linear tau_t warm-up (0.3, DINO's 30 of 100 epochs).
        freeze_last_layer: fraction of training without gradient to the last layers (0.01, DINO's 1 of 100 epochs).
    """

    center: Tensor  # buffer

    pretrains: ClassVar[tuple[str, ...]] = ("encoder",)
    views: ClassVar[tuple[str, ...]] = ("v3", "v4")

    def __init__(
        self,
        backbone: UNet,
        out_dim: int = 65536,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        norm_last_layer: bool = True,
        momentum_start: float = 0.996,
        center_momentum: float = 0.9,
        student_temp: float = 0.1,
        teacher_temp_start: float = 0.04,
        teacher_temp_end: float = 0.07,
        teacher_temp_warmup: float = 0.3,
        freeze_last_layer: float = 0.01,
    ) -> None:
        super().__init__(backbone)
        self.momentum_start, self.center_momentum, self.student_temp = momentum_start, center_momentum, student_temp
        self.teacher_temp_start, self.teacher_temp_end = teacher_temp_start, teacher_temp_end
        self.teacher_temp_warmup, self.freeze_last_layer = teacher_temp_warmup, freeze_last_layer
        channels = [info["channels"] for info in backbone.encoder.feature_info]
        self.student_heads = nn.ModuleList(
            DINOHead(c, out_dim, hidden_dim, bottleneck_dim, norm_last_layer) for c in channels
        )
        self.teacher_encoder = deactivate_requires_grad(copy.deepcopy(backbone.encoder))
        self.teacher_head = deactivate_requires_grad(copy.deepcopy(self.student_heads[-1]))
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.progress = 0.0
        self.teacher_temp = teacher_temp_start

    def on_step(self, step: int, max_steps: int) -> None:
        """Sets the training progress, hence the teacher temperature and the last-layer freeze."""
        self.progress = step / max_steps if max_steps > 0 else 1.0
        self.teacher_temp = teacher_temperature(
            self.progress, self.teacher_temp_start, self.teacher_temp_end, self.teacher_temp_warmup
        )

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone.encoder, self.teacher_encoder), (self.student_heads[-1], self.teacher_head)]

    def momentum(self, progress: float) -> float:
        """Cosine from ``momentum_start`` (progress 0) to 1 (progress 1)."""
        return cosine_schedule(progress, 1, self.momentum_start, 1.0)

    @torch.no_grad()
    def _teacher(self, x: Tensor) -> Tensor:
        return self.teacher_head(self.teacher_encoder(x)[-1])

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Batch keys v3, v4 -> ``{"loss", "stage1".."stageN"}`` (stage N = bottleneck)."""
        t3, t4 = self._teacher(batch["v3"]), self._teacher(batch["v4"])
        f3, f4 = self.backbone.encode(batch["v3"]), self.backbone.encode(batch["v4"])
        freeze = self.progress < self.freeze_last_layer
        out: dict[str, Tensor] = {}
        stage_losses = []
        for i, head in enumerate(self.student_heads):
            s3, s4 = head(f3[i], freeze), head(f4[i], freeze)
            li = 0.5 * (
                dino_loss(s4, t3, self.center, self.student_temp, self.teacher_temp)
                + dino_loss(s3, t4, self.center, self.student_temp, self.teacher_temp)
            )
            out[f"stage{i + 1}"] = li
            stage_losses.append(li)
        out["loss"] = torch.stack(stage_losses).mean()
        if self.training:
            self.center.copy_(update_center(self.center, gather_nograd(torch.cat([t3, t4])), self.center_momentum))
        return out

    def bare_forward(self, batch: dict[str, Tensor]) -> Tensor:
        t = self._teacher(batch["v3"]).mean() + self._teacher(batch["v4"]).mean()
        f3, f4 = self.backbone.encode(batch["v3"]), self.backbone.encode(batch["v4"])
        freeze = self.progress < self.freeze_last_layer  # the same frozen last layer as the real step
        return t + sum(
            head(f3[i], freeze).mean() + head(f4[i], freeze).mean() for i, head in enumerate(self.student_heads)
        )
