"""SimSiam's negative cosine similarity with stop-gradient, and the symmetric loss of SimSiam / SimTriplet.

``D(p, z) = -cos(p, sg(z))``, averaged over the batch::

    SimSiam:    L = D(p1, z2)/2 + D(p2, z1)/2
    SimTriplet: L = D(p1, z2)/2 + D(p2, z1)/2  +  D(p1, z3)/2 + D(p3, z1)/2     (z3: neighbour)

References:
    - [0] Chen & He, Exploring Simple Siamese Representation Learning, 2021, https://arxiv.org/abs/2011.10566
    - [1] Liu et al., SimTriplet: Simple Triplet Representation Learning with a Single GPU, 2021,
      https://arxiv.org/abs/2103.05585
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["negative_cosine", "simsiam_loss"]


def negative_cosine(p: Tensor, z: Tensor) -> Tensor:
    """``D(p, z) = -mean_b cos(p_b, sg(z_b))``; no gradient flows into ``z``.

    Args:
        p: (B, D) predictor outputs.
        z: (B, D) projections of the other view (stop-gradient).

    Returns:
        Scalar in [-1, 1], computed in float32.

    Raises:
        ValueError: on mismatched shapes.
    """
    if p.ndim != 2 or p.shape != z.shape:
        raise ValueError(f"expected two (B, D) tensors of equal shape, got {tuple(p.shape)} and {tuple(z.shape)}")
    return -F.cosine_similarity(p.float(), z.detach().float(), dim=1).mean()


def simsiam_loss(p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor) -> Tensor:
    """Symmetric SimSiam loss ``D(p1, z2)/2 + D(p2, z1)/2`` (each argument (B, D)); minimum -1."""
    return 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)
