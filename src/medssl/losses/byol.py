"""BYOL's regression loss: ``2 - 2 cos(q, sg(z'))``, symmetrised over the two views.

For online predictions ``q`` and target projections ``z'`` (stop-gradient: the target is an EMA network)::

    l(q, z') = || q/|q| - z'/|z'| ||^2 = 2 - 2 cos(q, z')
    L        = mean_b l(q1_b, z2'_b) + mean_b l(q2_b, z1'_b)

(the paper's ``L + L~``: the sum of the two directions, so the loss lies in [0, 8]).

References:
    - [0] Grill et al., Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning, 2020,
      https://arxiv.org/abs/2006.07733
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["byol_loss", "byol_regression"]


def byol_regression(prediction: Tensor, target: Tensor) -> Tensor:
    """``mean_b (2 - 2 cos(prediction_b, sg(target_b)))``; no gradient flows into ``target``.

    Args:
        prediction: (B, D) online predictor outputs.
        target: (B, D) target projections.

    Returns:
        Scalar in [0, 4], computed in float32.

    Raises:
        ValueError: on mismatched shapes.
    """
    if prediction.ndim != 2 or prediction.shape != target.shape:
        raise ValueError(
            f"expected two (B, D) tensors of equal shape, got {tuple(prediction.shape)} and {tuple(target.shape)}"
        )
    cos = F.cosine_similarity(prediction.float(), target.detach().float(), dim=1)
    return (2.0 - 2.0 * cos).mean()


def byol_loss(q1: Tensor, q2: Tensor, z1: Tensor, z2: Tensor) -> Tensor:
    """Symmetric BYOL loss: view 1's prediction regresses view 2's target and vice versa.

    Args:
        q1: (B, D) online predictions of view 1.
        q2: (B, D) online predictions of view 2.
        z1: (B, D) target projections of view 1 (detached here).
        z2: (B, D) target projections of view 2 (detached here).

    Returns:
        Scalar ``byol_regression(q1, z2) + byol_regression(q2, z1)``.
    """
    return byol_regression(q1, z2) + byol_regression(q2, z1)
