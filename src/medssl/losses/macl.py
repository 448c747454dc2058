"""The three losses of MACL (METHODS.md section 4), as pure functions of tensors.

MACL contrasts an auxiliary branch (full-resolution input, encoder only) with a dominant branch
(input downsampled by ``factor``, encoder plus the first decoder blocks) at three levels:

* image level ``L_g``: PCL loss on the pooled-and-projected embeddings ``[Z~g, Z^g]``;
* pixel level ``L_d``: for every spatial location ``s``, PCL loss on ``[Z~l[:, :, s], Z^l[:, :, s]]``
  across the batch (the same location in different images), averaged over ``s``;
* feature level ``L_ER`` (equivariance): ``mean |down_factor(Y~) - Y|`` between the two bottlenecks.

Total: ``L = 1.0 * L_g + 0.5 * L_d + 1.0 * L_ER`` (the reference scripts' ``--alpha 0.5 --alpha_ER 1.0``).
Positives are given by slice position as in PCL: ``|p_i - p_j| < delta``.

References:
    - [0] Zhang et al., Multi-level Asymmetric Contrastive Learning for Volumetric Medical Image
      Segmentation Pre-training (MACL), IEEE JBHI 2026, https://arxiv.org/abs/2309.11876
    - [1] Zeng et al., Positional Contrastive Learning, 2021, https://arxiv.org/abs/2106.09157
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .supcon import cosine_logits, positional_mask, supcon_from_logits, supcon_loss

__all__ = ["MACL_WEIGHTS", "equivariance_loss", "image_level_loss", "macl_loss", "pixel_level_loss"]

#: weights of (L_g, L_d, L_ER) in the reference scripts and the paper
MACL_WEIGHTS: tuple[float, float, float] = (1.0, 0.5, 1.0)


def _check_positions(positions: Tensor, batch_size: int) -> Tensor:
    p = positions.reshape(-1)
    if p.numel() != batch_size:
        raise ValueError(f"expected {batch_size} slice positions (one per image), got {p.numel()}")
    return p


def image_level_loss(
    zg_aux: Tensor,
    zg_dom: Tensor,
    positions: Tensor,
    delta: float = 0.1,
    temperature: float = 0.1,
    base_temperature: float = 0.07,
) -> Tensor:
    """MACL's image-level loss ``L_g``: PCL (SupCon, positional positives) on ``[Z~g, Z^g]``.

    Args:
        zg_aux: auxiliary-branch embeddings ``Z~g``. Shape: (B, D).
        zg_dom: dominant-branch embeddings ``Z^g`` of the same images. Shape: (B, D).
        positions: slice positions ``(index + 1) / slices``. Shape: (B,).
        delta: positives are pairs with ``|p_i - p_j| < delta`` (0.1; 0.05 for BraTS).
        temperature: tau.
        base_temperature: tau_base (the loss is scaled by ``tau / tau_base``).

    Returns:
        Scalar loss.

    Raises:
        ValueError: if the shapes disagree.
    """
    if zg_aux.ndim != 2 or zg_aux.shape != zg_dom.shape:
        raise ValueError(
            f"expected zg_aux and zg_dom of the same (B, D) shape, got {tuple(zg_aux.shape)} and {tuple(zg_dom.shape)}"
        )
    p = _check_positions(positions, zg_aux.shape[0]).to(zg_aux.device)
    z = torch.cat([zg_aux, zg_dom], dim=0)
    return supcon_loss(z, positional_mask(p, delta), temperature, base_temperature)


def pixel_level_loss(
    zl_aux: Tensor,
    zl_dom: Tensor,
    positions: Tensor,
    delta: float = 0.1,
    temperature: float = 0.1,
    base_temperature: float = 0.07,
) -> Tensor:
    """MACL's pixel-level loss ``L_d``: one PCL loss per spatial location, averaged over locations.

    For every location ``s`` the ``2B`` vectors ``[Z~l[:, :, s], Z^l[:, :, s]]`` (the same location in
    every image of the batch, both branches) are contrasted with positional positives; the ``S``
    problems are solved at once with a batched (S, 2B, 2B) similarity.

    Args:
        zl_aux: auxiliary pixel features ``Z~l = G_pix(Y~)``. Shape: (B, C, h, w).
        zl_dom: dominant pixel features ``Z^l`` (decoder output). Shape: (B, C, h, w).
        positions: slice positions. Shape: (B,).
        delta: positional threshold.
        temperature: tau.
        base_temperature: tau_base.

    Returns:
        Scalar: the mean over the ``h * w`` locations of the per-location PCL loss.

    Raises:
        ValueError: if the two maps differ in shape (channels or spatial size).
    """
    if zl_aux.ndim != 4 or zl_aux.shape != zl_dom.shape:
        raise ValueError(
            f"expected zl_aux and zl_dom of the same (B, C, h, w) shape, "
            f"got {tuple(zl_aux.shape)} and {tuple(zl_dom.shape)}"
        )
    b = zl_aux.shape[0]
    p = _check_positions(positions, b).to(zl_aux.device)
    # (B, C, h, w) -> (S, B, C); stack the branches along the sample axis -> (S, 2B, C)
    tokens = torch.cat([zl_aux.flatten(2).permute(2, 0, 1), zl_dom.flatten(2).permute(2, 0, 1)], dim=1)
    logits = cosine_logits(tokens, temperature)  # (S, 2B, 2B)
    # the same (2B, 2B) mask at every location (expanded: supcon_from_logits indexes anchors by it)
    mask = positional_mask(p, delta).unsqueeze(0).expand_as(logits)
    # every anchor has its other view as a positive, so the mean over all S * 2B anchors is the mean over s
    return supcon_from_logits(logits, mask, temperature, base_temperature)


def equivariance_loss(y_full: Tensor, y_dom: Tensor, factor: float = 0.25) -> Tensor:
    """MACL's feature-level equivariance loss ``L_ER = mean |down_factor(Y~) - Y|``.

    ``Y~`` (bottleneck of the full-resolution input) is resized bilinearly with
    ``align_corners=True`` (as the reference code does) to the size of ``Y`` (bottleneck of the
    downsampled input); gradients flow into both sides.

    Args:
        y_full: ``Y~``. Shape: (B, C, H, W).
        y_dom: ``Y``. Shape: (B, C, floor(H * factor), floor(W * factor)).
        factor: the dominant branch's downsampling factor (0.25).

    Returns:
        Scalar L1 loss (mean over every element).

    Raises:
        ValueError: if ``y_dom`` is not ``y_full`` scaled by ``factor``.
    """
    if y_full.ndim != 4 or y_dom.ndim != 4 or y_full.shape[:2] != y_dom.shape[:2]:
        raise ValueError(
            f"expected (B, C, H, W) maps with equal B and C, got {tuple(y_full.shape)} and {tuple(y_dom.shape)}"
        )
    size = tuple(int(s * factor) for s in y_full.shape[-2:])
    if size != tuple(y_dom.shape[-2:]):
        raise ValueError(
            f"y_full {tuple(y_full.shape[-2:])} scaled by {factor} is {size}, but y_dom is {tuple(y_dom.shape[-2:])}"
        )
    down = y_full
    if size != tuple(y_full.shape[-2:]):
        down = F.interpolate(y_full, size=size, mode="bilinear", align_corners=True)
    return (down.float() - y_dom.float()).abs().mean()


def macl_loss(
    zg_aux: Tensor,
    zg_dom: Tensor,
    zl_aux: Tensor,
    zl_dom: Tensor,
    y_full: Tensor,
    y_dom: Tensor,
    positions: Tensor,
    delta: float = 0.1,
    temperature: float = 0.1,
    base_temperature: float = 0.07,
    factor: float = 0.25,
    weights: Sequence[float] = MACL_WEIGHTS,
) -> dict[str, Tensor]:
    """The MACL objective ``L = w_g * L_g + w_d * L_d + w_er * L_ER``.

    Args:
        zg_aux: image-level embeddings of the auxiliary branch. Shape: (B, D).
        zg_dom: image-level embeddings of the dominant branch. Shape: (B, D).
        zl_aux: pixel-level features of the auxiliary branch. Shape: (B, C, h, w).
        zl_dom: pixel-level features of the dominant branch. Shape: (B, C, h, w).
        y_full: bottleneck of the auxiliary input. Shape: (B, C', H, W).
        y_dom: bottleneck of the dominant input. Shape: (B, C', H * factor, W * factor).
        positions: slice positions. Shape: (B,).
        delta: PCL's positional threshold (0.1).
        temperature: PCL's temperature (0.1).
        base_temperature: PCL's base temperature (0.07).
        factor: downsampling factor of the dominant branch (0.25).
        weights: ``(w_g, w_d, w_er)``, default ``(1.0, 0.5, 1.0)``.

    Returns:
        ``{"loss": total, "global": L_g, "dense": L_d, "equivariance": L_ER}`` (scalars).
    """
    if len(weights) != 3:
        raise ValueError(f"weights must be (w_global, w_dense, w_equivariance), got {tuple(weights)}")
    l_g = image_level_loss(zg_aux, zg_dom, positions, delta, temperature, base_temperature)
    l_d = pixel_level_loss(zl_aux, zl_dom, positions, delta, temperature, base_temperature)
    l_er = equivariance_loss(y_full, y_dom, factor)
    total = weights[0] * l_g + weights[1] * l_d + weights[2] * l_er
    return {"loss": total, "global": l_g, "dense": l_d, "equivariance": l_er}
