"""GCL's local contrastive loss on decoder feature maps (Chaitanya et al. 2020), METHODS.md section 5.

Thirteen fixed 3x3 regions of a (H, W) feature map are compared between two pixel-aligned
(intensity-only) views of the same image. With ``ix = H - 4`` and ``iy = W - 4`` the regions'
top-left corners are, in quarters ``q`` of ``(ix, iy)`` (index ``q * ix // 4``)::

    (0,0) (0,2) (0,4)      a 3 x 3 grid of corners at 0, 1/2 and 1,
    (2,0) (2,2) (2,4)      then the 4 corners at 1/4 and 3/4
    (4,0) (4,2) (4,4)
    (1,1) (1,3) (3,1) (3,3)

For each region ``r`` of view ``a`` the positive is the same region of the other view ``b``; the
negatives are, by default, the 5 neighbouring 3x3 windows that the authors' code lists for ``r``
(each taken from both views, so 10 negatives), or, with ``negatives="all"``, the other 12 regions
of both views (24 negatives). Each region is flattened to a ``9 C`` vector; with
``s = cos / tau``::

    l(r, a) = -log( exp(s(r_a, r_b)) / (exp(s(r_a, r_b)) + sum_{n in neg(r)} exp(s(r_a, n_a)) + exp(s(r_a, n_b))) )

and the loss is the mean of ``l`` over images, regions and both directions. (The authors' code
sums over images and directions and divides by the number of regions only; the mean differs by
the constant factor ``2 B``.)

References:
    - [0] Chaitanya et al., Contrastive learning of global and local features for medical image
      segmentation with limited annotations, NeurIPS 2020, https://arxiv.org/abs/2006.10511
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["NUM_REGIONS", "REGION_SIZE", "gcl_local_loss", "local_region_corners", "region_vectors"]

#: side of each local region
REGION_SIZE = 3
#: number of fixed local regions
NUM_REGIONS = 13

# Corner of every region, in quarters of (ix, iy).
_POS_QUARTERS: tuple[tuple[int, int], ...] = (
    (0, 0), (0, 2), (0, 4),
    (2, 0), (2, 2), (2, 4),
    (4, 0), (4, 2), (4, 4),
    (1, 1), (1, 3), (3, 1), (3, 3),
)  # fmt: skip

# The 5 neighbouring windows used as negatives of each region (3x3 regions), in quarters.
_NEG_QUARTERS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((0, 2), (1, 1), (1, 2), (2, 0), (2, 1)),
    ((0, 0), (0, 4), (1, 1), (1, 3), (2, 2)),
    ((0, 2), (1, 2), (1, 3), (2, 3), (2, 4)),
    ((0, 0), (1, 1), (2, 2), (4, 0), (3, 1)),
    ((1, 1), (1, 3), (3, 1), (3, 3), (2, 0)),
    ((0, 4), (2, 2), (4, 4), (1, 3), (3, 3)),
    ((2, 0), (2, 1), (4, 2), (3, 1), (3, 2)),
    ((2, 2), (4, 0), (4, 4), (3, 1), (3, 3)),
    ((2, 3), (2, 4), (4, 2), (3, 3), (3, 2)),
    ((0, 0), (0, 2), (2, 0), (2, 2), (1, 3)),
    ((0, 2), (0, 4), (1, 1), (2, 2), (2, 4)),
    ((2, 0), (2, 2), (4, 0), (4, 2), (3, 3)),
    ((2, 2), (2, 4), (4, 2), (4, 4), (3, 1)),
)


def local_region_corners(
    height: int, width: int, negatives: Literal["neighbours", "all"] = "neighbours"
) -> tuple[Tensor, Tensor]:
    """Top-left ``(row, col)`` corners of the 13 regions and of each region's negatives.

    Args:
        height: feature-map height ``H`` (at least 8).
        width: feature-map width ``W`` (at least 8).
        negatives: ``"neighbours"`` (the authors' 5 windows per region) or ``"all"`` (the 12 other regions).

    Returns:
        ``(pos, neg)``: long tensors of shapes (13, 2) and (13, K, 2) with K = 5 or 12.

    Raises:
        ValueError: if the map is smaller than 8 x 8 or ``negatives`` is unknown.
    """
    if height < 8 or width < 8:
        raise ValueError(f"GCL local regions need a feature map of at least 8 x 8, got {height} x {width}")
    ix, iy = height - REGION_SIZE - 1, width - REGION_SIZE - 1

    def corner(q: tuple[int, int]) -> tuple[int, int]:
        return (q[0] * ix // 4, q[1] * iy // 4)

    pos = torch.tensor([corner(q) for q in _POS_QUARTERS], dtype=torch.long)
    if negatives == "neighbours":
        neg = torch.tensor([[corner(q) for q in row] for row in _NEG_QUARTERS], dtype=torch.long)
    elif negatives == "all":
        idx = torch.arange(NUM_REGIONS)
        others = torch.stack([idx[idx != r] for r in range(NUM_REGIONS)])  # (13, 12)
        neg = pos[others]
    else:
        raise ValueError(f"negatives must be 'neighbours' or 'all', got {negatives!r}")
    return pos, neg


def region_vectors(fmap: Tensor, corners: Tensor) -> Tensor:
    """Flattened 3x3 windows of a feature map.

    Args:
        fmap: (B, C, H, W) feature map.
        corners: (N, 2) long top-left ``(row, col)`` corners.

    Returns:
        (B, N, 9 C) window vectors (channel-major within each window).
    """
    offs = torch.arange(REGION_SIZE, device=fmap.device)
    corners = corners.to(fmap.device)
    rows = corners[:, 0, None] + offs  # (N, 3)
    cols = corners[:, 1, None] + offs  # (N, 3)
    win = fmap[:, :, rows[:, :, None], cols[:, None, :]]  # (B, C, N, 3, 3)
    return win.permute(0, 2, 1, 3, 4).flatten(2)


def gcl_local_loss(
    f1: Tensor,
    f2: Tensor,
    temperature: float = 0.1,
    negatives: Literal["neighbours", "all"] = "neighbours",
) -> Tensor:
    """GCL local contrastive loss between two pixel-aligned views (see the module docstring).

    Args:
        f1: (B, C, H, W) projected decoder features of view 1.
        f2: (B, C, H, W) the same for view 2 (pixel-aligned with view 1).
        temperature: tau (0.1 in the paper).
        negatives: ``"neighbours"`` (authors' code, default) or ``"all"`` other regions.

    Returns:
        Scalar loss, the mean over images, the 13 regions and both directions.

    Raises:
        ValueError: on shape mismatch, a too small map or a zero temperature.
    """
    if f1.shape != f2.shape or f1.ndim != 4:
        raise ValueError(f"expected two (B, C, H, W) maps of equal shape, got {tuple(f1.shape)} and {tuple(f2.shape)}")
    if abs(temperature) < 1e-8:
        raise ValueError(f"temperature must be non-zero, got {temperature}")
    b = f1.shape[0]
    pos, neg = local_region_corners(f1.shape[-2], f1.shape[-1], negatives)
    k = neg.shape[1]
    a1 = F.normalize(region_vectors(f1.float(), pos), dim=-1)  # (B, 13, D)
    a2 = F.normalize(region_vectors(f2.float(), pos), dim=-1)
    n1 = F.normalize(region_vectors(f1.float(), neg.reshape(-1, 2)), dim=-1).reshape(b, NUM_REGIONS, k, -1)
    n2 = F.normalize(region_vectors(f2.float(), neg.reshape(-1, 2)), dim=-1).reshape(b, NUM_REGIONS, k, -1)

    s_pos = (a1 * a2).sum(-1) / temperature  # (B, 13), symmetric in the two views

    def direction(anchor: Tensor, same: Tensor, other: Tensor) -> Tensor:
        s_same = torch.einsum("brd,brkd->brk", anchor, same) / temperature
        s_other = torch.einsum("brd,brkd->brk", anchor, other) / temperature
        logits = torch.cat([s_pos[..., None], s_same, s_other], dim=-1)
        return torch.logsumexp(logits, dim=-1) - s_pos  # (B, 13)

    return 0.5 * (direction(a1, n1, n2).mean() + direction(a2, n2, n1).mean())
