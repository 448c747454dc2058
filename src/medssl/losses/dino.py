"""DINO's self-distillation loss, centre update and teacher-temperature schedule (used by DeSD).

The teacher's logits are centred and sharpened, the student's softened; the loss is the cross
entropy between the two distributions::

    P_t = softmax((t - c) / tau_t)   (no gradient)
    L   = mean over rows of  - sum_k P_t[k] * log softmax(s / tau_s)[k]
    c  <- m * c + (1 - m) * mean over rows of t

References:
    - [0] Caron et al., Emerging Properties in Self-Supervised Vision Transformers (DINO), ICCV 2021,
      https://arxiv.org/abs/2104.14294
    - [1] Ye et al., DeSD: Self-Supervised Learning with Deep Self-Distillation for 3D Medical Image
      Segmentation, MICCAI 2022, https://doi.org/10.1007/978-3-031-16440-8_52
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["dino_loss", "teacher_temperature", "update_center"]


def dino_loss(
    student_logits: Tensor, teacher_logits: Tensor, center: Tensor, tau_s: float = 0.1, tau_t: float = 0.04
) -> Tensor:
    """Cross entropy between the centred, sharpened teacher and the student distributions.

    Args:
        student_logits: (..., K) student head outputs.
        teacher_logits: (..., K) teacher head outputs for the rows to match (same leading shape).
        center: (K,) or (1, K) running centre of the teacher outputs.
        tau_s: student temperature (0.1).
        tau_t: teacher temperature (0.04 -> 0.07 over the warm-up).

    Returns:
        Scalar: mean over all leading positions.

    Raises:
        ValueError: on shape mismatch or a non-positive temperature.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student and teacher logits differ in shape: {tuple(student_logits.shape)} vs {tuple(teacher_logits.shape)}"
        )
    if tau_s <= 0 or tau_t <= 0:
        raise ValueError(f"temperatures must be positive, got tau_s={tau_s}, tau_t={tau_t}")
    p_t = F.softmax((teacher_logits.detach().float() - center.float()) / tau_t, dim=-1)
    log_p_s = F.log_softmax(student_logits.float() / tau_s, dim=-1)
    return -(p_t * log_p_s).sum(-1).mean()


@torch.no_grad()
def update_center(center: Tensor, teacher_logits: Tensor, momentum: float = 0.9) -> Tensor:
    """EMA of the batch mean of the teacher outputs: ``m * c + (1 - m) * mean(t)``.

    Args:
        center: (1, K) current centre.
        teacher_logits: (N, K) teacher outputs of the step (all views, all ranks).
        momentum: centre momentum (0.9).

    Returns:
        (1, K) new centre (a new tensor; ``center`` is not modified).
    """
    batch_center = teacher_logits.detach().float().reshape(-1, teacher_logits.shape[-1]).mean(0, keepdim=True)
    return center * momentum + batch_center.to(center.dtype) * (1.0 - momentum)


def teacher_temperature(progress: float, start: float = 0.04, end: float = 0.07, warmup: float = 0.3) -> float:
    """Teacher temperature: linear from ``start`` to ``end`` over the first ``warmup`` of training, then ``end``.

    Args:
        progress: training progress in [0, 1].
        start: initial temperature (0.04).
        end: final temperature (0.07).
        warmup: fraction of training of the linear warm-up (DINO: 30 of 100 epochs).
    """
    if warmup <= 0 or progress >= warmup:
        return end
    return start + (end - start) * max(progress, 0.0) / warmup
