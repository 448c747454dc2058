"""Array transforms shared by pre-processing, fine-tuning and pre-training.

Everything here works on channel-less numpy arrays: 2D slices ``(H, W)`` or volumes ``(D, H, W)``.
Randomness is always an explicit :class:`numpy.random.Generator` argument (MONAI's ``Randomizable``
idea without the hidden state): the same generator state gives the same output, global numpy is
never touched.

* :func:`normalize` -- the papers' intensity normalisations (per volume / per slice).
* :func:`resample_inplane` -- in-plane resampling to a target spacing (ACDC 1.25 mm, MMWHS 1.0 mm...).
* :func:`pad_or_crop` -- the reference's ``pad_and_or_crop``: zero padding, centre or random window,
  the same window for every array.
* :func:`spatial_params` / :func:`apply_spatial` -- the reference's ``MirrorTransform`` +
  ``RndTransform(SpatialTransform, prob=0.67)`` from batchgenerators, drawn once and applied to any
  number of aligned arrays (image cubic, label nearest) with ONE ``map_coordinates`` call per array.
* :class:`JointAugment` -- the fine-tuning augmentation (pad/crop + mirror + spatial) for an image
  and its label.

Reference: the data loaders of ``dewenzeng/positional_cl`` (Zeng et al., MICCAI 2021), reused by
``stevezs315/SuperCL`` (arXiv 2504.14737) and ``stevezs315/MACL`` (arXiv 2309.11876), which call
batchgenerators 0.23/0.25 as::

    MirrorTransform((0, 1))
    RndTransform(SpatialTransform(patch_size, patch_size // 2,
                                  True, (100., 350.), (14., 17.),          # elastic alpha, sigma
                                  True, (0, 2 pi), (~0, ~0), (~0, ~0),     # rotation (2D: angle_x only)
                                  True, (0.7, 1.3),                         # scale
                                  'constant', 0, 3, 'constant', 0, 0,       # data: cval 0, cubic; seg: nearest
                                  random_crop=False),
                 prob=0.67, alternative_transform=RandomCropTransform(patch_size))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage

from ..errors import ConfigError

__all__ = [
    "FILLS",
    "NORMALIZATIONS",
    "SPATIAL_BACKENDS",
    "JointAugment",
    "SpatialParams",
    "apply_spatial",
    "check_fill",
    "check_spatial_backend",
    "elastic_displacement",
    "fill_value",
    "normalize",
    "pad_or_crop",
    "resample_inplane",
    "spatial_coords",
    "spatial_params",
]

#: names accepted by :func:`normalize` (also ``DatasetSpec.normalization``)
NORMALIZATIONS: tuple[str, ...] = ("zscore", "clip_zscore", "minmax", "slice_minmax", "max", "none")


# --------------------------------------------------------------------------------------------------
# intensity normalisation
# --------------------------------------------------------------------------------------------------
def _zscore(x: np.ndarray) -> np.ndarray:
    mean = float(x.mean())
    std = float(x.std())
    if not np.isfinite(std) or std <= 0.0:
        return np.zeros_like(x)
    return (x - mean) / std


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    if not hi > lo:
        return np.zeros_like(x)
    return (x - lo) / (hi - lo)


def normalize(
    volume: np.ndarray,
    method: str,
    clip_percentiles: tuple[float, float] = (1.0, 99.0),
) -> np.ndarray:
    """Intensity normalisation as the papers pre-process each dataset (METHODS.md section 6).

    Args:
        volume: image ``(D, H, W)`` or ``(H, W)``, any real dtype.
        method: one of :data:`NORMALIZATIONS`:

            * ``zscore``: ``(v - mean) / std`` over the whole volume (ACDC);
            * ``clip_zscore``: clip to the ``clip_percentiles`` of the volume, then z-score (MMWHS, HVSMR);
            * ``minmax``: the volume to [0, 1];
            * ``slice_minmax``: every slice ``volume[k]`` to [0, 1] separately (MSD; a 2D input is one slice);
            * ``max``: divide by the volume maximum (CHAOS);
            * ``none``: only the cast to float32.
        clip_percentiles: (low, high) percentiles for ``clip_zscore``.

    Returns:
        float32 array of the input's shape. A constant volume (or slice, for ``slice_minmax``)
        gives zeros rather than NaN; the integrity check is the place that reports constant images.

    Raises:
        ConfigError: unknown ``method`` or invalid percentiles.
    """
    if method not in NORMALIZATIONS:
        raise ConfigError(f"unknown normalization '{method}'; known: {', '.join(NORMALIZATIONS)}")
    x = np.asarray(volume, dtype=np.float64)
    if x.size == 0 or method == "none":
        return x.astype(np.float32)
    if method == "zscore":
        out = _zscore(x)
    elif method == "clip_zscore":
        lo_p, hi_p = clip_percentiles
        if not 0.0 <= lo_p <= hi_p <= 100.0:
            raise ConfigError(f"clip_percentiles must satisfy 0 <= low <= high <= 100, got {clip_percentiles}")
        lo, hi = np.percentile(x, [lo_p, hi_p])
        out = _zscore(np.clip(x, lo, hi))
    elif method == "minmax":
        out = _minmax(x)
    elif method == "slice_minmax":
        if x.ndim < 3:
            out = _minmax(x)
        else:
            out = np.stack([_minmax(s) for s in x]) if len(x) else x
    else:  # "max"
        m = float(x.max())
        out = x / m if m > 0 else np.zeros_like(x)
    return out.astype(np.float32)


# --------------------------------------------------------------------------------------------------
# resampling
# --------------------------------------------------------------------------------------------------
def resample_inplane(
    image: np.ndarray,
    label: np.ndarray | None,
    spacing: tuple[float, float, float],
    target: float | None,
    *,
    label_mode: str = "nearest",
) -> tuple[np.ndarray, np.ndarray | None, tuple[float, float, float]]:
    """Resample every slice of a volume to an in-plane spacing of ``target`` mm (z is kept).

    The image uses cubic interpolation (order 3, edge mode, anti-aliasing when down-sampling): this
    is what the reference pre-processing does (``positional_cl/dataset/generate_acdc.py`` calls
    ``skimage.transform.resize(image, new_shape, order=3, mode='edge')`` with the z spacing kept),
    and cubic keeps edges sharper than linear for the up-sampling that ACDC (about 1.5 mm -> 1.25 mm)
    needs. Each slice is resized on its own (a 2D ``resize`` per slice, clipped to the volume's
    range): the same values as the reference's single 3D call (whose z zoom of 1 interpolates nothing
    along z) at about a quarter of its cost. The label uses nearest neighbour by default (``label_mode="nearest"``, no new values);
    ``label_mode="onehot"`` is the reference's own choice: each class indicator resized linearly,
    then the argmax (smoother boundaries, also no new values).

    Args:
        image: ``(D, H, W)`` volume.
        label: ``(D, H, W)`` integer label or None.
        spacing: ``(sz, sy, sx)`` in mm.
        target: in-plane spacing in mm; None (or equal to the current spacing) returns the inputs
            unchanged.
        label_mode: ``nearest`` or ``onehot``.

    Returns:
        ``(image, label, new_spacing)``: image float32 ``(D, H', W')`` with
        ``H' = round(H * sy / target)``; label of the input dtype (or None); ``new_spacing =
        (sz, H * sy / H', W * sx / W')``, the spacing of the new grid (it covers the same field
        of view, so it equals ``target`` up to the rounding of the shape).

    Raises:
        ValueError: wrong dimensions, shape mismatch, non-positive spacing or unknown label mode.
    """

    if image.ndim != 3:
        raise ValueError(f"resample_inplane expects a (D, H, W) volume, got shape {image.shape}")
    if label is not None and label.shape != image.shape:
        raise ValueError(f"label shape {label.shape} differs from image shape {image.shape}")
    if label_mode not in ("nearest", "onehot"):
        raise ValueError(f"label_mode must be 'nearest' or 'onehot', got '{label_mode}'")
    sz, sy, sx = (float(s) for s in spacing)
    if target is None or (math.isclose(sy, target, rel_tol=1e-6) and math.isclose(sx, target, rel_tol=1e-6)):
        return image.astype(np.float32, copy=False), label, (sz, sy, sx)
    if target <= 0 or sy <= 0 or sx <= 0:
        raise ValueError(f"spacings must be positive (spacing {spacing}, target {target})")
    d, h, w = image.shape
    nh = max(1, int(round(h * sy / target)))
    nw = max(1, int(round(w * sx / target)))
    new_shape = (d, nh, nw)
    img = _resize_slices(image, (nh, nw))
    lab = None if label is None else _resize_label(label, new_shape, label_mode)
    return img, lab, (sz, h * sy / nh, w * sx / nw)


def _resize_slices(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Each slice of ``image`` resized to ``shape`` (cubic, edge mode, anti-aliased), float32, clipped to
    the volume's range: the values of one 3D ``resize`` with a z zoom of 1 (which clips to the volume's
    range), for 16 spline taps per voxel instead of 64."""
    from skimage.transform import resize

    img = np.empty((image.shape[0], *shape), dtype=np.float32)
    for k, plane in enumerate(image):
        img[k] = resize(plane.astype(np.float64), shape, order=3, mode="edge", preserve_range=True, clip=False)
    if image.size:
        np.clip(img, np.float32(image.min()), np.float32(image.max()), out=img)
    return img


def _resize_label(label: np.ndarray, new_shape: tuple[int, int, int], label_mode: str) -> np.ndarray:
    """``label`` resized to ``new_shape`` by nearest neighbour, or by the argmax of linearly resized
    class indicators (``label_mode="onehot"``); no new values either way, the input's dtype."""
    from skimage.transform import resize

    if label_mode == "nearest":
        return resize(label, new_shape, order=0, mode="edge", preserve_range=True, anti_aliasing=False).astype(
            label.dtype
        )
    values = np.unique(label)
    scores = np.stack(
        [
            resize(
                (label == v).astype(np.float32),
                new_shape,
                order=1,
                mode="edge",
                preserve_range=True,
                anti_aliasing=False,
            )
            for v in values
        ]
    )
    return values[scores.argmax(0)].astype(label.dtype)


# --------------------------------------------------------------------------------------------------
# pad / crop
# --------------------------------------------------------------------------------------------------
def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    s = tuple(int(v) for v in size)
    if len(s) != 2:
        raise ValueError(f"size must be an int or (h, w), got {size}")
    return s


def pad_or_crop(
    *arrays: np.ndarray,
    size: int | Sequence[int],
    rng: np.random.Generator | None = None,
    values: float | Sequence[float] = 0,
) -> tuple[np.ndarray, ...]:
    """Zero-pad and/or crop the last two axes of every array to ``size``, with one shared window.

    Follows the reference's ``pad_and_or_crop``: an axis shorter than the target is zero-padded
    symmetrically (the extra pixel of an odd difference goes after); a longer axis is cropped,
    at the centre (start ``n // 2 - size // 2``) when ``rng`` is None, else at a start drawn
    uniformly from ``0 .. n - size``. All arrays get the same padding and window, so an image and
    its label stay aligned.

    Args:
        *arrays: arrays ``(..., H, W)`` with the same last two dimensions.
        size: target ``(h, w)`` or an int for a square.
        rng: generator for a random window, or None for the centre.
        values: the padding value, one for all arrays or one per array (0: the reference).

    Returns:
        A tuple of arrays ``(..., h, w)``, one per input, each of its input's dtype.

    Raises:
        ValueError: no arrays, arrays of different in-plane shapes, or a non-positive size.
    """
    if not arrays:
        raise ValueError("pad_or_crop needs at least one array")
    th, tw = _pair(size)
    if th <= 0 or tw <= 0:
        raise ValueError(f"size must be positive, got {size}")
    h, w = arrays[0].shape[-2:]
    for a in arrays[1:]:
        if a.shape[-2:] != (h, w):
            raise ValueError(f"arrays differ in-plane: {arrays[0].shape} vs {a.shape}")

    def window(n: int, t: int) -> tuple[int, int, int]:
        """(pad_before, crop_start, pad_total) for one axis."""
        if n <= t:
            return (t - n) // 2, 0, t - n
        start = n // 2 - t // 2 if rng is None else int(rng.integers(0, n - t + 1))
        return 0, start, 0

    pb_h, st_h, pt_h = window(h, th)
    pb_w, st_w, pt_w = window(w, tw)
    fills = [values] * len(arrays) if isinstance(values, (int, float, np.generic)) else list(values)
    if len(fills) != len(arrays):
        raise ValueError(f"{len(fills)} padding values for {len(arrays)} arrays")
    out = []
    for a, fill in zip(arrays, fills):
        a = a[..., st_h : st_h + min(h, th), st_w : st_w + min(w, tw)]
        if pt_h or pt_w:
            pad = [(0, 0)] * (a.ndim - 2) + [(pb_h, pt_h - pb_h), (pb_w, pt_w - pb_w)]
            a = np.pad(a, pad, mode="constant", constant_values=fill)
        out.append(np.ascontiguousarray(a))
    return tuple(out)


# --------------------------------------------------------------------------------------------------
# spatial augmentation (mirror + elastic / rotation / scale)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SpatialParams:
    """One draw of the mirror + spatial transform, applicable to any array of ``shape``.

    Attributes:
        shape: in-plane ``(H, W)`` the draw was made for (input and output shape).
        flip: (flip rows, flip columns) of the mirror step.
        spatial: whether the elastic/rotation/scale step fired (probability ``p_spatial``).
        alpha, sigma: elastic magnitude and smoothness (0 when no elastic deformation).
        angle: rotation angle in radians (0 when none).
        scale: coordinate scale factor (1 when none; > 1 shows more of the image, i.e. zooms out).
        coords: ``(2, H, W)`` float sampling positions in the input for every output pixel, the
            mirror folded in; None when only flips apply (then no interpolation at all).
    """

    shape: tuple[int, int]
    flip: tuple[bool, bool]
    spatial: bool
    alpha: float = 0.0
    sigma: float = 0.0
    angle: float = 0.0
    scale: float = 1.0
    coords: np.ndarray | None = None


def _gauss_kernel1d(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """The 1D kernel of ``scipy.ndimage.gaussian_filter`` (radius ``int(truncate * sigma + 0.5)``)."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _lattice_basis(n: int, sigma: float, stride: float) -> np.ndarray:
    """``(n, m)`` weights from ``m = ceil(n / stride)`` noise cells to the ``n`` pixels of one axis.

    The cells tile ``[-0.5, n - 0.5]`` exactly (spacing ``s = n / m``, centres ``(j + 0.5) s - 0.5``);
    the weight is the Gaussian of :func:`_gauss_kernel1d` (same normalisation and radius, widened by
    half a cell) at the pixel-to-centre distance, times ``sqrt(s)`` so that one cell carries the
    variance of the ``s`` pixels it stands for.
    """
    m = max(1, math.ceil(n / stride))
    s = n / m
    centres = (np.arange(m, dtype=np.float64) + 0.5) * s - 0.5
    d = np.arange(n, dtype=np.float64)[:, None] - centres[None, :]
    radius = int(4.0 * float(sigma) + 0.5)
    norm = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).sum()
    weights = np.exp(-0.5 * (d / sigma) ** 2) * (math.sqrt(s) / norm)
    weights[np.abs(d) > radius + 0.5 * s] = 0.0  # the kernel's support (and no float32 denormals: slow BLAS)
    return weights.astype(np.float32)


def elastic_displacement(
    rng: np.random.Generator,
    shape: tuple[int, int],
    alpha: float,
    sigma: float,
    *,
    noise_stride: float = 1.0,
) -> np.ndarray:
    """batchgenerators' ``elastic_deform_coordinates`` offsets: smoothed uniform noise times alpha.

    For each axis: ``alpha * gaussian_filter(U(-1, 1) noise, sigma, mode="constant", cval=0)``.
    With ``noise_stride = 1`` (the reference) the noise is drawn per pixel and the Gaussian filter is
    one zero-padded FFT convolution with the same truncated kernel as ``scipy.ndimage.gaussian_filter``
    (radius ``int(4 sigma + 0.5)``): the same field (to float32 rounding) 1.5-3 times faster than
    the direct filter at the kernel sizes used (sigma 14..17: 113..137 taps).

    With ``noise_stride = k > 1`` the noise is drawn on a lattice of cells about ``k`` pixels wide
    that tile the image, each weighted by ``sqrt(cell area)``, and smoothed by the same Gaussian
    evaluated at every pixel (two small matrix products, no interpolation). The result is a Gaussian
    random field with the reference's covariance up to a lattice error that grows with ``k / sigma``:
    at sigma 14..17, on images of 48 px or more, the covariance of any two pixels differs from the
    reference's by at most 0.3% of its peak at ``k = 4`` and 1.2% at ``k = 8`` (more on smaller
    images, which lie wholly in the border fade); ``tests/test_transforms.py`` checks it exactly,
    from the weights, the border fade of ``mode="constant"`` included. Only the random draws
    differ; at 512 px the field costs about 5 times less at ``k = 4`` (``benchmarks/bench_views.py``).

    Args:
        rng: random generator.
        shape: ``(H, W)``.
        alpha: magnitude.
        sigma: smoothness in pixels (> 0).
        noise_stride: noise lattice spacing in pixels (1 = per pixel, the reference).

    Returns:
        float32 ``(2, H, W)`` displacements in pixels (rows, columns).

    Raises:
        ValueError: ``noise_stride < 1``.
    """
    if not noise_stride >= 1.0:
        raise ValueError(f"noise_stride must be >= 1 (1 = per-pixel noise), got {noise_stride}")
    if noise_stride > 1.0:
        return _lattice_field(rng, shape, alpha, sigma, noise_stride)
    return _per_pixel_field(rng, shape, alpha, sigma)


def _lattice_field(
    rng: np.random.Generator, shape: tuple[int, int], alpha: float, sigma: float, noise_stride: float
) -> np.ndarray:
    """:func:`elastic_displacement` with noise on a lattice of cells ``noise_stride`` pixels wide."""
    import torch

    h, w = shape
    rows, cols = _lattice_basis(h, sigma, noise_stride), _lattice_basis(w, sigma, noise_stride)
    noise = rng.random((2, rows.shape[1], cols.shape[1]), dtype=np.float32) * 2.0 - 1.0
    # torch's matmul: one thread inside a loader worker, where numpy's BLAS would start one
    # thread per core in every worker and oversubscribe the machine
    field = torch.from_numpy(rows) @ torch.from_numpy(noise) @ torch.from_numpy(cols).T
    field *= float(alpha)
    return field.numpy()


def _per_pixel_field(rng: np.random.Generator, shape: tuple[int, int], alpha: float, sigma: float) -> np.ndarray:
    """:func:`elastic_displacement` with per-pixel noise (the reference): one zero-padded FFT convolution."""
    h, w = shape
    noise = rng.random((2, h, w), dtype=np.float32) * 2.0 - 1.0
    k = _gauss_kernel1d(sigma)
    r = (len(k) - 1) // 2
    # linear (zero-padded) convolution through the FFT: pad to >= n + 2r so nothing wraps around;
    # the 2D kernel is separable, so its spectrum is the outer product of two 1D spectra
    hp, wp = sp_fft.next_fast_len(h + 2 * r, real=True), sp_fft.next_fast_len(w + 2 * r, real=True)
    spec = (np.fft.fft(k, hp)[:, None] * np.fft.rfft(k, wp)[None, :]).astype(np.complex64)
    spec *= np.float32(alpha)
    field = sp_fft.irfft2(sp_fft.rfft2(noise, s=(hp, wp)) * spec, s=(hp, wp))
    return np.ascontiguousarray(field[:, r : r + h, r : r + w], dtype=np.float32)


def spatial_coords(
    shape: tuple[int, int],
    *,
    flip: tuple[bool, bool] = (False, False),
    displacement: np.ndarray | None = None,
    angle: float = 0.0,
    scale: float = 1.0,
) -> np.ndarray:
    """Sampling grid of the composed mirror -> elastic -> rotation -> scale transform.

    Follows batchgenerators' ``augment_spatial`` (2D, ``random_crop=False``): start from the
    zero-centred mesh ``c = index - (n - 1) / 2``; add the elastic displacement; rotate as
    ``c <- c @ R(angle)`` with ``R = [[cos, -sin], [sin, cos]]`` (so ``angle = pi / 2`` gives
    ``np.rot90(x, 1)``); multiply by ``scale``; add the centre back. The mirror, which the
    reference applies to the array before the spatial transform, is folded in as
    ``q -> n - 1 - q`` on the flipped axes, so the whole chain costs one interpolation.

    Args:
        shape: ``(H, W)`` of the input and the output.
        flip: mirror rows / columns first.
        displacement: ``(2, H, W)`` elastic offsets in pixels or None.
        angle: rotation in radians.
        scale: coordinate scale (> 1 zooms out).

    Returns:
        float32 ``(2, H, W)`` input positions for :func:`scipy.ndimage.map_coordinates`.
    """
    h, w = shape
    c0 = (np.arange(h, dtype=np.float32) - np.float32((h - 1) / 2.0))[:, None]
    c1 = (np.arange(w, dtype=np.float32) - np.float32((w - 1) / 2.0))[None, :]
    if displacement is not None:
        y = c0 + displacement[0]
        x = c1 + displacement[1]
    else:
        y = np.broadcast_to(c0, (h, w))
        x = np.broadcast_to(c1, (h, w))
    if angle:
        cos, sin = np.float32(math.cos(angle)), np.float32(math.sin(angle))
        y, x = y * cos + x * sin, x * cos - y * sin
    coords = np.empty((2, h, w), dtype=np.float32)
    s = np.float32(scale)
    ctr_h, ctr_w = np.float32(h / 2.0 - 0.5), np.float32(w / 2.0 - 0.5)
    # input position; a flipped axis reads n - 1 - q, i.e. ctr - scaled offset
    np.multiply(y, -s if flip[0] else s, out=coords[0])
    coords[0] += ctr_h
    np.multiply(x, -s if flip[1] else s, out=coords[1])
    coords[1] += ctr_w
    return coords


def spatial_params(
    rng: np.random.Generator,
    shape: tuple[int, int],
    p_spatial: float = 0.67,
    *,
    mirror: bool = True,
    elastic: bool = True,
    alpha: tuple[float, float] = (100.0, 350.0),
    sigma: tuple[float, float] = (14.0, 17.0),
    rotation: bool = True,
    angle: tuple[float, float] = (0.0, 2.0 * math.pi),
    scaling: bool = True,
    scale: tuple[float, float] = (0.7, 1.3),
    p_el_per_sample: float = 1.0,
    p_rot_per_sample: float = 1.0,
    p_scale_per_sample: float = 1.0,
    noise_stride: float = 1.0,
) -> SpatialParams:
    """Draw one mirror + spatial transform with the reference's parameters (see the module docstring).

    The draws follow batchgenerators 0.23 in order and probability: ``MirrorTransform((0, 1))`` (each
    axis flipped with probability 0.5), then ``RndTransform(..., prob=p_spatial)``: elastic
    (:func:`elastic_displacement`), rotation, scale (with probability 0.5 ``U(scale[0], 1)``, else
    ``U(1, scale[1])``), zero border, centre crop; otherwise nothing.

    Args:
        rng: random generator (the only source of randomness).
        shape: ``(H, W)`` of the arrays it will be applied to.
        p_spatial: probability of the elastic/rotation/scale step (0.67 in both papers).
        mirror: switch the random flips on or off.
        elastic: switch the elastic deformation on or off.
        rotation: switch the rotation on or off.
        scaling: switch the scaling on or off.
        alpha: range of the elastic magnitude.
        sigma: range of the elastic smoothness.
        angle: range of the rotation angle (radians).
        scale: range of the scale factor.
        p_el_per_sample: batchgenerators' probability of the elastic part inside the spatial step.
        p_rot_per_sample: batchgenerators' probability of the rotation inside the spatial step.
        p_scale_per_sample: batchgenerators' probability of the scaling inside the spatial step.
        noise_stride: lattice spacing of the elastic noise (1 = per pixel, the reference).

    Returns:
        A :class:`SpatialParams` for :func:`apply_spatial`.
    """
    h, w = int(shape[0]), int(shape[1])
    flip = (bool(mirror and rng.uniform() < 0.5), bool(mirror and rng.uniform() < 0.5))
    if not rng.uniform() < p_spatial:
        return SpatialParams((h, w), flip, False)
    a = s = ang = 0.0
    sc = 1.0
    disp: np.ndarray | None = None
    if elastic and rng.uniform() < p_el_per_sample:
        a, s, disp = _draw_elastic(rng, (h, w), alpha, sigma, noise_stride)
    if rotation and rng.uniform() < p_rot_per_sample:
        ang = float(rng.uniform(angle[0], angle[1]))
    if scaling and rng.uniform() < p_scale_per_sample:
        sc = _draw_scale(rng, scale)
    coords = spatial_coords((h, w), flip=flip, displacement=disp, angle=ang, scale=sc)
    return SpatialParams((h, w), flip, True, a, s, ang, sc, coords)


def _draw_elastic(
    rng: np.random.Generator,
    shape: tuple[int, int],
    alpha: tuple[float, float],
    sigma: tuple[float, float],
    noise_stride: float,
) -> tuple[float, float, np.ndarray]:
    """The elastic part of :func:`spatial_params`: ``(alpha, sigma, displacement)`` drawn in that order."""
    a = float(rng.uniform(alpha[0], alpha[1]))
    s = float(rng.uniform(sigma[0], sigma[1]))
    return a, s, elastic_displacement(rng, shape, a, s, noise_stride=noise_stride)


def _draw_scale(rng: np.random.Generator, scale: tuple[float, float]) -> float:
    """batchgenerators' scale draw: with probability 0.5 ``U(scale[0], 1)`` (when ``scale[0] < 1``),
    otherwise ``U(max(scale[0], 1), scale[1])``."""
    if scale[0] < 1 and rng.uniform() < 0.5:
        return float(rng.uniform(scale[0], 1.0))
    return float(rng.uniform(max(scale[0], 1.0), scale[1]))


#: interpolation back-ends of :func:`apply_spatial`
SPATIAL_BACKENDS: tuple[str, ...] = ("scipy", "torch")
_TORCH_MODES = {0: "nearest", 1: "bilinear", 3: "bicubic"}


def check_spatial_backend(backend: str) -> str:
    """``backend`` if it is one of :data:`SPATIAL_BACKENDS`, else ``ValueError`` (one line)."""
    if backend not in SPATIAL_BACKENDS:
        raise ValueError(f"unknown spatial backend '{backend}'; known: {', '.join(SPATIAL_BACKENDS)}")
    return backend


def _grid_sample(image: np.ndarray, coords: np.ndarray, order: int, cval: float, out_dtype: np.dtype) -> np.ndarray:
    """``torch.nn.functional.grid_sample`` at the input positions ``coords`` (``(2, H, W)``, pixels)."""
    import torch

    h, w = image.shape
    grid = np.empty((1, h, w, 2), dtype=np.float32)
    # align_corners=True: pixel q of an axis of length n sits at -1 + 2 q / (n - 1)
    np.multiply(coords[1], np.float32(2.0 / max(w - 1, 1)), out=grid[0, ..., 0])
    np.multiply(coords[0], np.float32(2.0 / max(h - 1, 1)), out=grid[0, ..., 1])
    grid -= np.float32(1.0)
    src = np.asarray(image, dtype=np.float32)
    if cval:
        src = src - np.float32(cval)
    out = torch.nn.functional.grid_sample(
        torch.from_numpy(np.ascontiguousarray(src))[None, None],
        torch.from_numpy(grid),
        mode=_TORCH_MODES[order],
        padding_mode="zeros",
        align_corners=True,
    )[0, 0].numpy()
    if cval:
        out = out + np.float32(cval)
    # scipy's mode="constant": no interpolation beyond the edges, every position outside [0, n - 1] is cval
    eps = np.float32(1e-4)
    outside = (coords[0] < -eps) | (coords[0] > h - 1 + eps) | (coords[1] < -eps) | (coords[1] > w - 1 + eps)
    out[outside] = np.float32(cval)
    return out.astype(out_dtype, copy=False)


def apply_spatial(
    image: np.ndarray,
    params: SpatialParams,
    order: int,
    cval: float = 0.0,
    backend: str = "scipy",
) -> np.ndarray:
    """Apply a drawn transform to one array: ONE interpolation call (or only flips).

    Args:
        image: ``(H, W)`` or ``(C, H, W)`` (each channel gets the same transform) with
            ``(H, W) == params.shape``.
        params: from :func:`spatial_params` or built by hand.
        order: 3 (cubic) for images as the reference, 0 (nearest) for labels, or 1 (linear).
        cval: value outside the input (the reference uses 0 for both image and label).
        backend: ``"scipy"``: ``scipy.ndimage.map_coordinates``, cubic B-spline for ``order=3``,
            exactly the reference's batchgenerators; ``"torch"``: ``torch.nn.functional.grid_sample``
            (one thread in a loader worker), the cubic-convolution kernel (Keys, a = -0.75) for
            ``order=3``; a whole spatial view at 512 px (elastic field included) 2.5x faster
            (``benchmarks/bench_views.py``, T_sp columns). Both cubics
            interpolate the samples; they differ by a few percent of the local contrast at edges.
            Linear and nearest agree between back-ends (up to rounding ties).

    Returns:
        Array of the input's shape; float32 for ``order > 0``, the input's dtype for ``order == 0``
        (so a label keeps its values: no new ones can appear except ``cval``).

    Raises:
        ValueError: the in-plane shape differs from ``params.shape``.
    """
    if tuple(image.shape[-2:]) != tuple(params.shape):
        raise ValueError(f"array shape {image.shape} does not match the drawn transform {params.shape}")
    if check_spatial_backend(backend) == "torch" and order not in _TORCH_MODES:
        raise ValueError(f"the torch backend supports order 0, 1 or 3, got {order}")
    if image.ndim == 3:
        return np.stack([apply_spatial(c, params, order, cval, backend) for c in image])
    out_dtype = image.dtype if order == 0 else np.dtype(np.float32)
    if params.coords is None:
        out = image
        if params.flip[0]:
            out = out[::-1]
        if params.flip[1]:
            out = out[:, ::-1]
        return np.ascontiguousarray(out, dtype=out_dtype)
    if backend == "torch":
        return _grid_sample(image, params.coords, order, cval, out_dtype)
    src = image if order == 0 else image.astype(np.float32, copy=False)
    # the stubs take the spline order as Literal[0..5]; ``order`` is a plain int that scipy checks itself
    return ndimage.map_coordinates(src, params.coords, output=out_dtype, order=order, mode="constant", cval=cval)  # type: ignore[call-overload]


#: what an image gets where it has no data: ``zero`` (the reference) or ``min`` (its minimum)
FILLS: tuple[str, ...] = ("zero", "min")


def check_fill(fill: str) -> str:
    """``fill`` if it is one of :data:`FILLS`, else ``ValueError`` (one line)."""
    if fill not in FILLS:
        raise ValueError(f"unknown fill '{fill}'; known: {', '.join(FILLS)}")
    return fill


def fill_value(image: np.ndarray, fill: str) -> float:
    """The value for padding / rotated-in corners of ``image``: 0, or its minimum for ``"min"``."""
    return float(np.min(image)) if check_fill(fill) == "min" and np.size(image) else 0.0


class JointAugment:
    """Fine-tuning augmentation of an image and its label (METHODS.md section 6, the papers' protocol).

    Pad/crop to ``patch_size`` (random window when larger, zero padding when smaller), then mirror
    on both axes, then with probability ``p_spatial`` elastic + rotation + scale: the reference's
    ``prepare_supervised`` (``positional_cl`` / SuperCL / MACL dataset classes). One draw is applied
    to both arrays: cubic for the image, nearest for the label, so they stay aligned and the label
    keeps its values (0 outside the field of view).

    Args:
        patch_size: output side (ACDC 352, MMWHS 256, ...).
        p_spatial: probability of the spatial step (0.67).
        mirror: random flips of both axes.
        backend: interpolation back-end of :func:`apply_spatial` (``"scipy"`` = the reference).
        fill: what the image gets where it has no data (padding, rotated-in corners): ``"zero"``
            (the reference) or ``"min"`` (the slice's minimum: the background of a z-scored MR or CT
            slice, where 0 is its mean intensity). Labels always get 0 (background).
        **spatial_kwargs: passed to :func:`spatial_params` (``alpha``, ``sigma``, ``angle``, ``scale``,
            ``elastic``, ``rotation``, ``scaling``, ``noise_stride``...).

    Example::

        aug = JointAugment(64)
        img, lab = aug(image, label, np.random.default_rng(0))
    """

    def __init__(
        self,
        patch_size: int,
        p_spatial: float = 0.67,
        mirror: bool = True,
        backend: str = "scipy",
        fill: str = "zero",
        **spatial_kwargs: Any,
    ) -> None:
        if patch_size <= 0:
            raise ValueError(f"patch_size must be positive, got {patch_size}")
        self.fill = check_fill(fill)
        self.backend = check_spatial_backend(backend)
        self.patch_size = int(patch_size)
        self.p_spatial = float(p_spatial)
        self.mirror = bool(mirror)
        self.spatial_kwargs = dict(spatial_kwargs)

    def __call__(self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Augment one slice.

        Args:
            image: ``(H, W)`` (or ``(C, H, W)``) float image.
            label: ``(H, W)`` integer label.
            rng: random generator.

        Returns:
            ``(image, label)``: float32 ``(P, P)`` (or ``(C, P, P)``) and ``(P, P)`` of the label dtype.
        """
        value = fill_value(image, self.fill)
        image, label = pad_or_crop(image, label, size=self.patch_size, rng=rng, values=(value, 0))
        params = spatial_params(
            rng, (self.patch_size, self.patch_size), self.p_spatial, mirror=self.mirror, **self.spatial_kwargs
        )
        return (
            apply_spatial(image, params, order=3, cval=value, backend=self.backend),
            apply_spatial(label, params, order=0, backend=self.backend),
        )

    def __repr__(self) -> str:
        return (
            f"JointAugment(patch_size={self.patch_size}, p_spatial={self.p_spatial}, mirror={self.mirror}, "
            f"backend='{self.backend}', fill='{self.fill}')"
        )
