"""The shared contrastive loss of both papers: SupCon with a positive mask (METHODS.md section 2).

For embeddings ``u_1..u_N`` (all first views, then all second views) and a boolean positive mask
``M`` (diagonal ignored)::

    s_ab = cos(u_a, u_b) / tau
    l_a  = -(tau / tau_base) * mean_{p: M_ap} [ s_ap - log sum_{b != a} exp(s_ab) ]
    L    = mean of l_a over anchors with at least one positive

References:
    - [0] Khosla et al., Supervised Contrastive Learning, 2020, https://arxiv.org/abs/2004.11362
    - [1] Zeng et al., Positional Contrastive Learning, 2021, https://arxiv.org/abs/2106.09157
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "cosine_logits",
    "instance_mask",
    "label_mask",
    "positional_mask",
    "supcon_from_logits",
    "supcon_loss",
    "tile_views",
]


def cosine_logits(z: Tensor, temperature: float) -> Tensor:
    """``cos(z_a, z_b) / temperature`` for every pair, in float32.

    Shape: ``z`` (N, D) -> (N, N).
    """
    if abs(temperature) < 1e-8:
        raise ValueError(f"temperature must be non-zero, got {temperature}")
    zn = F.normalize(z.float(), dim=-1)
    return zn @ zn.transpose(-1, -2) / temperature


def supcon_from_logits(
    logits: Tensor, pos_mask: Tensor, temperature: float = 0.1, base_temperature: float = 0.07
) -> Tensor:
    """SupCon from precomputed similarity logits, so that losses sharing a similarity matrix compute it once.

    Args:
        logits: (N, N) or (G, N, N) similarities already divided by ``temperature``.
        pos_mask: boolean, same shape (or broadcastable); the diagonal is ignored.
        temperature: tau (only used for the ``tau / tau_base`` scale).
        base_temperature: tau_base (0.07 in both reference codes).

    Returns:
        Scalar: mean over anchors (over all groups) having at least one positive; 0 if none has.
    """
    n = logits.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=logits.device)
    logits = logits.float()
    pos = (pos_mask.bool() & ~eye).expand_as(logits)
    log_denom = torch.logsumexp(logits.masked_fill(eye, float("-inf")), dim=-1, keepdim=True)
    log_prob = logits - log_denom
    n_pos = pos.sum(-1)
    mean_log_prob_pos = (log_prob * pos).sum(-1) / n_pos.clamp_min(1)
    # mean over the anchors with a positive, as a masked sum: no boolean indexing and no host-side
    # test, so the step never waits for the device here (0 with a zero gradient when no anchor has one)
    valid = (n_pos > 0).to(mean_log_prob_pos.dtype)
    per_anchor = -(temperature / base_temperature) * mean_log_prob_pos
    return (per_anchor * valid).sum() / valid.sum().clamp_min(1.0)


def supcon_loss(z: Tensor, pos_mask: Tensor, temperature: float = 0.1, base_temperature: float = 0.07) -> Tensor:
    """SupCon on embeddings ``z`` (N, D) with a boolean positive mask (N, N). See the module docstring."""
    if z.ndim != 2 or pos_mask.shape != (z.shape[0], z.shape[0]):
        raise ValueError(f"expected z (N, D) and mask (N, N), got {tuple(z.shape)} and {tuple(pos_mask.shape)}")
    return supcon_from_logits(cosine_logits(z, temperature), pos_mask, temperature, base_temperature)


def tile_views(mask: Tensor, views: int = 2) -> Tensor:
    """Repeat a (B, B) image-level mask to (V*B, V*B) for V stacked views."""
    return mask.repeat(views, views)


def label_mask(labels: Tensor, views: int = 2) -> Tensor:
    """Positives = same label (GCL partitions, class labels); the two views of an image share its label.

    Shape: labels (B,) -> (V*B, V*B) bool.
    """
    lab = labels.reshape(-1)
    return tile_views(lab[:, None] == lab[None, :], views)


def positional_mask(positions: Tensor, delta: float, views: int = 2) -> Tensor:
    """PCL positives: ``|p_i - p_j| < delta`` with ``p = (slice index + 1) / slices``.

    Shape: positions (B,) -> (V*B, V*B) bool.
    """
    p = positions.reshape(-1).float()
    return tile_views((p[:, None] - p[None, :]).abs() < delta, views)


def instance_mask(batch_size: int, views: int = 2, device: torch.device | str | None = None) -> Tensor:
    """SimCLR positives: the other views of the same image. Shape: (V*B, V*B) bool."""
    idx = torch.arange(batch_size, device=device)
    return label_mask(idx, views)
