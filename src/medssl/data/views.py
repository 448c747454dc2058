"""Pre-training views: the intensity transform T_int and the multi-view transform of every method.

METHODS.md sections 3-5. For a slice ``x`` (min-max to [0, 1]):

* ``v1 = T_fix(x)``, ``v2 = T_fix(x)``: two independent draws of an intensity-only transform
  (``t_fix="intensity"``, the released code of SuperCL and MACL) or the identity
  (``t_fix="identity"``, the MACL paper). Both stay pixel-aligned with ``x``.
* ``v3 = T_sp(v1)``, ``v4 = T_sp(v2)``: mirror on both axes, then with p = 0.67 elastic +
  rotation + scale (:func:`medssl.data.transforms.spatial_params`), independent draws.
* ``neighbor = T_sp(T_fix(x_adjacent))`` for SimTriplet.

T_int follows ``prepare_contrast_JCL`` of ``stevezs315/MACL`` (``dataset/chd.py``), which SuperCL
shares: the min-max'd slice is made an 8-bit PIL image, then torchvision's
``ColorJitter(brightness=(0, 1))``, ``ColorJitter(contrast=(0.8, 1.2))``,
``GaussianBlur(kernel_size=3, sigma=(1, 3))``, each applied with probability 1 in this order, and
the result min-max'd back to [0, 1]. :func:`intensity_transform` re-implements these operations
on numpy arrays, including (``quantize=True``, the default) the 8-bit rounding of the PIL path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from .transforms import apply_spatial, check_spatial_backend, pad_or_crop, spatial_params

__all__ = ["VIEW_NAMES", "MultiViewTransform", "intensity_transform", "spatial_transform"]

#: the view keys a method may request (``Method.views``)
VIEW_NAMES: tuple[str, ...] = ("v1", "v2", "v3", "v4")


def _minmax01(x: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """The reference's ``Normalization_result``: ``(x - min) / (max - min + eps)`` (zeros if constant)."""
    lo = float(x.min())
    hi = float(x.max())
    return ((x - lo) / (hi - lo + eps)).astype(np.float32)


def _blur3(x: np.ndarray, sigma: float, size: int) -> np.ndarray:
    """torchvision ``gaussian_blur``: separable kernel ``exp(-t^2 / 2 sigma^2)`` on ``t = -k//2..k//2``,
    normalised, reflect padding (numpy ``reflect`` = scipy ``mirror``)."""
    half = (size - 1) * 0.5
    t = np.linspace(-half, half, size)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).astype(np.float32)
    out = ndimage.correlate1d(x, k, axis=0, mode="mirror")
    return ndimage.correlate1d(out, k, axis=1, mode="mirror")


def intensity_transform(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    brightness: tuple[float, float] = (0.0, 1.0),
    contrast: tuple[float, float] = (0.8, 1.2),
    blur_sigma: tuple[float, float] = (1.0, 3.0),
    blur_kernel: int = 3,
    quantize: bool = True,
) -> np.ndarray:
    """T_int: brightness, contrast, Gaussian blur, then min-max back to [0, 1] (SuperCL/MACL code).

    Steps, each with probability 1 as in the reference (torchvision on an 8-bit PIL image):

    1. ``u = floor(255 x)`` (``(x * 255).astype(uint8)``);
    2. brightness: factor ``b ~ U(brightness)``, ``u = floor(b u)`` (PIL ``ImageEnhance.Brightness``);
    3. contrast: factor ``c ~ U(contrast)``, ``m = round(mean(u))``,
       ``u = clip(floor(m + c (u - m)), 0, 255)`` (PIL ``ImageEnhance.Contrast``);
    4. blur: ``sigma ~ U(blur_sigma)``, ``blur_kernel`` taps, reflect border, rounded to integers;
    5. ``(u - min) / (max - min + 1e-8)``.

    With ``quantize=False`` the same steps run in floating point on [0, 1] (no floor/round; the
    contrast blend is clipped to [0, 1]). Note that a brightness factor near 0 collapses the 8-bit
    image to a few grey levels (or to zeros): that is the reference's behaviour.

    Args:
        image: ``(H, W)`` float image in [0, 1].
        rng: random generator.
        brightness: range of the multiplicative brightness factor.
        contrast: range of the contrast factor.
        blur_sigma: range of the blur's sigma (the same for both axes).
        blur_kernel: blur kernel size (odd).
        quantize: reproduce the 8-bit PIL arithmetic of the reference.

    Returns:
        float32 ``(H, W)`` in [0, 1], pixel-aligned with ``image``.
    """
    b = float(rng.uniform(brightness[0], brightness[1]))
    c = float(rng.uniform(contrast[0], contrast[1]))
    s = float(rng.uniform(blur_sigma[0], blur_sigma[1]))
    x = np.asarray(image, dtype=np.float32)
    if quantize:
        u = np.floor(np.clip(x, 0.0, 1.0) * np.float32(255.0))
        u = np.floor(u * np.float32(b))
        m = np.float32(math.floor(float(u.mean()) + 0.5))
        u = np.clip(np.floor(m + np.float32(c) * (u - m)), 0.0, 255.0)
        u = np.round(_blur3(u.astype(np.float32), s, blur_kernel))
    else:
        u = x * np.float32(b)
        m = np.float32(u.mean())
        u = np.clip(m + np.float32(c) * (u - m), 0.0, 1.0)
        u = _blur3(u.astype(np.float32), s, blur_kernel)
    return _minmax01(u)


def spatial_transform(
    image: np.ndarray,
    rng: np.random.Generator,
    p_spatial: float = 0.67,
    order: int = 3,
    backend: str = "scipy",
    **spatial_kwargs: Any,
) -> np.ndarray:
    """T_sp: one draw of mirror + (p = ``p_spatial``) elastic/rotation/scale applied to ``image``.

    Args:
        image: ``(H, W)`` float image.
        rng: random generator.
        p_spatial: probability of the elastic/rotation/scale step.
        order: interpolation order (3 = cubic, as the reference).
        backend: ``"scipy"`` (the reference's cubic B-spline) or ``"torch"`` (faster cubic
            convolution); see :func:`medssl.data.transforms.apply_spatial`.
        **spatial_kwargs: passed to :func:`medssl.data.transforms.spatial_params`.

    Returns:
        float32 ``(H, W)``.
    """
    h, w = image.shape[-2:]
    params = spatial_params(rng, (h, w), p_spatial, **spatial_kwargs)
    return apply_spatial(image, params, order=order, backend=backend)


class MultiViewTransform:
    """The views of every pre-training method: v1..v4 (and a neighbour view) of one slice.

    ``v1 = T_fix(x)``, ``v2 = T_fix(x)`` (independent draws, pixel-aligned with ``x``),
    ``v3 = T_sp(v1)``, ``v4 = T_sp(v2)``; only what ``views`` asks for is computed (``v3``
    needs ``v1``, ``v4`` needs ``v2``; such intermediates are computed but not returned unless
    requested). ``neighbor = T_sp(T_fix(x_adjacent))`` when ``neighbor=True`` (with the default
    ``t_fix="intensity"`` that is ``T_sp(T_int(.))``).

    References: SuperCL (arXiv 2504.14737) section 3 and MACL (arXiv 2309.11876) section 4 of
    METHODS.md; the code's ``prepare_contrast_JCL`` (``stevezs315/MACL/dataset/chd.py``).

    Args:
        views: subset of ``("v1", "v2", "v3", "v4")`` to return.
        t_fix: ``"intensity"`` (code) or ``"identity"`` (MACL paper) for v1/v2.
        neighbor: also return ``"neighbor"`` (requires ``neighbor_image`` at call time).
        patch_size: if set, the slice (and its neighbour, with the same window) is first zero-padded
            / randomly cropped to this size, as the reference's ``pad_and_or_crop(mode="random")``.
        normalize_input: min-max the (cropped) slice to [0, 1] first, as the reference does.
        p_spatial: probability of the elastic/rotation/scale step of T_sp.
        quantize: 8-bit arithmetic in T_int (see :func:`intensity_transform`).
        backend: interpolation back-end of T_sp, ``"scipy"`` (the reference) or ``"torch"``.
        noise_stride: lattice spacing of T_sp's elastic noise (1 = per pixel, the reference; see
            :func:`medssl.data.transforms.elastic_displacement`).
        intensity_kwargs: extra options of :func:`intensity_transform`.
        spatial_kwargs: extra options of :func:`medssl.data.transforms.spatial_params`.

    Raises:
        ValueError: unknown view name or ``t_fix``.

    Example::

        tf = MultiViewTransform(views=("v1", "v2", "v3", "v4"))
        out = tf(slice01, np.random.default_rng(0))   # {"v1": ..., "v2": ..., "v3": ..., "v4": ...}
    """

    def __init__(
        self,
        views: Sequence[str] = VIEW_NAMES,
        t_fix: str = "intensity",
        neighbor: bool = False,
        *,
        patch_size: int | None = None,
        normalize_input: bool = True,
        p_spatial: float = 0.67,
        quantize: bool = True,
        backend: str = "scipy",
        noise_stride: float = 1.0,
        intensity_kwargs: dict | None = None,
        spatial_kwargs: dict[str, Any] | None = None,
    ) -> None:
        bad = [v for v in views if v not in VIEW_NAMES]
        if bad:
            raise ValueError(f"unknown view(s) {bad}; known: {', '.join(VIEW_NAMES)}")
        if t_fix not in ("intensity", "identity"):
            raise ValueError(f"t_fix must be 'intensity' or 'identity', got '{t_fix}'")
        self.views = tuple(v for v in VIEW_NAMES if v in views)
        self.t_fix = t_fix
        self.backend = check_spatial_backend(backend)
        self.neighbor = bool(neighbor)
        self.patch_size = patch_size
        self.normalize_input = bool(normalize_input)
        self.p_spatial = float(p_spatial)
        self.intensity_kwargs = {"quantize": quantize, **(intensity_kwargs or {})}
        self.spatial_kwargs = {"noise_stride": float(noise_stride), **(spatial_kwargs or {})}

    def _fix(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.t_fix == "identity":
            return x.copy()
        return intensity_transform(x, rng, **self.intensity_kwargs)

    def _sp(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return spatial_transform(x, rng, self.p_spatial, backend=self.backend, **self.spatial_kwargs)

    def __call__(
        self,
        image: np.ndarray,
        rng: np.random.Generator,
        neighbor_image: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Make the views of one slice.

        Args:
            image: ``(H, W)`` float slice (in [0, 1] unless ``normalize_input``).
            rng: random generator; draws happen in the order v1, v2, v3, v4, neighbor.
            neighbor_image: ``(H, W)`` adjacent slice of the same volume (when ``neighbor``).

        Returns:
            ``{name: float32 (H, W)}`` for each requested view (``(P, P)`` with ``patch_size``),
            plus ``"neighbor"`` when asked.

        Raises:
            ValueError: ``neighbor=True`` but no ``neighbor_image``, or not a 2D image.
        """
        if image.ndim != 2:
            raise ValueError(f"MultiViewTransform expects a 2D (H, W) slice, got shape {image.shape}")
        if self.neighbor and neighbor_image is None:
            raise ValueError("this transform makes a 'neighbor' view: pass neighbor_image")
        x = np.asarray(image, dtype=np.float32)
        nb = np.asarray(neighbor_image, dtype=np.float32) if self.neighbor else None
        if self.patch_size is not None:
            if nb is not None:
                x, nb = pad_or_crop(x, nb, size=self.patch_size, rng=rng)
            else:
                (x,) = pad_or_crop(x, size=self.patch_size, rng=rng)
        if self.normalize_input:
            x = _minmax01(x)
            if nb is not None:
                nb = _minmax01(nb)
        want = set(self.views)
        out: dict[str, np.ndarray] = {}
        v1 = self._fix(x, rng) if want & {"v1", "v3"} else None
        v2 = self._fix(x, rng) if want & {"v2", "v4"} else None
        # v1 (v2) is drawn exactly when v1 or v3 (v2 or v4) is wanted
        if v1 is not None and "v1" in want:
            out["v1"] = v1
        if v2 is not None and "v2" in want:
            out["v2"] = v2
        if v1 is not None and "v3" in want:
            out["v3"] = self._sp(v1, rng)
        if v2 is not None and "v4" in want:
            out["v4"] = self._sp(v2, rng)
        if nb is not None:
            out["neighbor"] = self._sp(self._fix(nb, rng), rng)
        return out

    def __repr__(self) -> str:
        return (
            f"MultiViewTransform(views={self.views}, t_fix='{self.t_fix}', neighbor={self.neighbor}, "
            f"patch_size={self.patch_size}, p_spatial={self.p_spatial}, backend='{self.backend}', "
            f"noise_stride={self.spatial_kwargs['noise_stride']})"
        )
