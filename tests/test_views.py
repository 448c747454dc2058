"""Tests of medssl.data.views: T_int against PIL (the reference's arithmetic), view geometry,
lazy computation of the requested views only."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageEnhance

import medssl.data.views as views_mod
from medssl.data.synthetic import make_phantom
from medssl.data.transforms import apply_spatial, spatial_params
from medssl.data.views import MultiViewTransform, intensity_transform


def _slice(seed: int = 0, size: int = 64) -> np.ndarray:
    img, _ = make_phantom(np.random.default_rng(seed), slices=6, size=size)
    x = img[2]
    return ((x - x.min()) / (x.max() - x.min())).astype(np.float32)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


# ------------------------------------------------------------------------------ intensity transform
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_intensity_matches_pil_pipeline(seed):
    """Brightness + contrast in 8-bit arithmetic equal PIL's ImageEnhance (what torchvision calls)."""
    x = _slice(seed)
    out = intensity_transform(x, np.random.default_rng(seed), blur_kernel=1, brightness=(0.3, 1.0))
    r = np.random.default_rng(seed)
    b, c = r.uniform(0.3, 1.0), r.uniform(0.8, 1.2)
    pil = Image.fromarray((x * 255).astype(np.uint8))
    pil = ImageEnhance.Brightness(pil).enhance(b)
    pil = ImageEnhance.Contrast(pil).enhance(c)
    u = np.asarray(pil).astype(np.float64)
    expected = (u - u.min()) / (u.max() - u.min() + 1e-8)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_intensity_blur_closed_form():
    """Float path with brightness = contrast = 1: min-max of a 3x3 Gaussian blur with reflect border."""
    x = np.random.default_rng(0).random((9, 11)).astype(np.float32)
    out = intensity_transform(
        x, np.random.default_rng(4), brightness=(1, 1), contrast=(1, 1), blur_sigma=(2.0, 2.0), quantize=False
    )
    k = np.exp(-0.5 * (np.array([-1.0, 0.0, 1.0]) / 2.0) ** 2)
    k /= k.sum()
    p = np.pad(x.astype(np.float64), 1, mode="reflect")
    blur = sum(k[i] * k[j] * p[i : i + 9, j : j + 11] for i in range(3) for j in range(3))
    expected = (blur - blur.min()) / (blur.max() - blur.min() + 1e-8)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_intensity_output_range_and_alignment():
    x = _slice(1)
    rng = np.random.default_rng(0)
    for _ in range(10):
        out = intensity_transform(x, rng, brightness=(0.2, 1.0))
        assert out.dtype == np.float32 and out.shape == x.shape
        assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-6
        assert _corr(out, x) > 0.9  # intensity only: the geometry is untouched


def test_intensity_zero_brightness_gives_zeros_not_nan():
    """The reference's brightness factor U(0, 1) can black out the 8-bit image: the view is all zeros."""
    x = _slice(0)
    out = intensity_transform(x, np.random.default_rng(0), brightness=(0.0, 0.003))
    assert np.isfinite(out).all() and (out == 0).all()
    # the float path keeps the structure whatever the factor
    out = intensity_transform(x, np.random.default_rng(0), brightness=(0.0, 0.003), quantize=False)
    assert _corr(out, x) > 0.9


# ------------------------------------------------------------------------------ multi-view transform
def test_views_pixel_aligned_and_v3_is_tsp_of_v1():
    x = _slice(2)
    out = MultiViewTransform()(x, np.random.default_rng(3))
    assert set(out) == {"v1", "v2", "v3", "v4"}
    for v in out.values():
        assert v.dtype == np.float32 and v.shape == x.shape
    # exact reproduction of the draw order: v1, v2, then T_sp(v1), T_sp(v2)
    r = np.random.default_rng(3)
    v1 = intensity_transform(x, r)
    v2 = intensity_transform(x, r)
    p3 = spatial_params(r, x.shape, 0.67)
    p4 = spatial_params(r, x.shape, 0.67)
    np.testing.assert_array_equal(out["v1"], v1)
    np.testing.assert_array_equal(out["v2"], v2)
    np.testing.assert_allclose(out["v3"], apply_spatial(v1, p3, order=3), atol=1e-6)
    np.testing.assert_allclose(out["v4"], apply_spatial(v2, p4, order=3), atol=1e-6)
    # the torch back-end makes the same draws and applies them with grid_sample
    fast = MultiViewTransform(backend="torch")(x, np.random.default_rng(3))
    np.testing.assert_array_equal(fast["v1"], v1)
    np.testing.assert_allclose(fast["v3"], apply_spatial(v1, p3, order=3, backend="torch"), atol=1e-6)


def test_views_alignment_statistics():
    """v1/v2 correlate with x and with each other; v3/v4 are moved (lower correlation on average)."""
    x = _slice(3)
    # brightness from 0.1: a factor near 0 blacks out the 8-bit image (tested separately below)
    tf = MultiViewTransform(intensity_kwargs={"brightness": (0.1, 1.0)})
    rng = np.random.default_rng(0)
    c12, c3 = [], []
    for _ in range(8):
        out = tf(x, rng)
        assert _corr(out["v1"], x) > 0.85 and _corr(out["v2"], x) > 0.85
        c12.append(_corr(out["v1"], out["v2"]))
        c3.append(_corr(out["v3"], out["v1"]))
    assert min(c12) > 0.85
    assert np.mean(c3) < np.mean(c12) - 0.2


def test_views_no_spatial_is_identity_geometry():
    x = _slice(4)
    tf = MultiViewTransform(p_spatial=0.0, spatial_kwargs={"mirror": False})
    out = tf(x, np.random.default_rng(1))
    np.testing.assert_array_equal(out["v3"], out["v1"])
    np.testing.assert_array_equal(out["v4"], out["v2"])


def test_identity_t_fix_and_real_slice(shared_data):
    import h5py

    with h5py.File(shared_data / "acdc_h5_sample" / "patient094_frame01_slice_2.h5") as f:
        x = np.asarray(f["image"], dtype=np.float32)
    out = MultiViewTransform(t_fix="identity")(x, np.random.default_rng(0))
    ref = (x - x.min()) / (x.max() - x.min() + 1e-8)
    np.testing.assert_allclose(out["v1"], ref, atol=1e-6)
    np.testing.assert_array_equal(out["v1"], out["v2"])
    out = MultiViewTransform()(x, np.random.default_rng(0))
    assert _corr(out["v1"], x) > 0.85 and _corr(out["v1"], out["v2"]) > 0.85


@pytest.mark.parametrize(
    "views, n_int, n_sp",
    [
        (("v1",), 1, 0),
        (("v1", "v2"), 2, 0),
        (("v3",), 1, 1),
        (("v3", "v4"), 2, 2),
        (("v1", "v2", "v3", "v4"), 2, 2),
        (("v4",), 1, 1),
    ],
)
def test_only_requested_views_computed(monkeypatch, views, n_int, n_sp):
    calls = {"int": 0, "sp": 0}
    real_int, real_sp = views_mod.intensity_transform, views_mod.spatial_transform

    def fake_int(*a, **k):
        calls["int"] += 1
        return real_int(*a, **k)

    def fake_sp(*a, **k):
        calls["sp"] += 1
        return real_sp(*a, **k)

    monkeypatch.setattr(views_mod, "intensity_transform", fake_int)
    monkeypatch.setattr(views_mod, "spatial_transform", fake_sp)
    out = MultiViewTransform(views=views)(_slice(0, 32), np.random.default_rng(0))
    assert set(out) == set(views)
    assert calls == {"int": n_int, "sp": n_sp}


def test_neighbor_view_and_patch_window():
    x = _slice(5)
    nb = _slice(5)[::-1].copy()
    tf = MultiViewTransform(
        views=("v1",), t_fix="identity", neighbor=True, patch_size=40, p_spatial=0.0, spatial_kwargs={"mirror": False}
    )
    with pytest.raises(ValueError, match="neighbor_image"):
        tf(x, np.random.default_rng(0))
    out = tf(x, np.random.default_rng(0), neighbor_image=nb)
    assert set(out) == {"v1", "neighbor"} and out["neighbor"].shape == (40, 40)
    # same random window for the slice and its neighbour: find it from v1, check it on the neighbour
    r = np.random.default_rng(0)
    r0, c0 = int(r.integers(0, 25)), int(r.integers(0, 25))
    crop = x[r0 : r0 + 40, c0 : c0 + 40]
    np.testing.assert_allclose(out["v1"], (crop - crop.min()) / (crop.max() - crop.min() + 1e-8), atol=1e-6)
    ncrop = nb[r0 : r0 + 40, c0 : c0 + 40]
    np.testing.assert_allclose(out["neighbor"], (ncrop - ncrop.min()) / (ncrop.max() - ncrop.min() + 1e-8), atol=1e-6)


def test_deterministic_and_bad_args():
    x = _slice(6, 32)
    a = MultiViewTransform()(x, np.random.default_rng(9))
    b = MultiViewTransform()(x, np.random.default_rng(9))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    with pytest.raises(ValueError):
        MultiViewTransform(views=("v5",))
    with pytest.raises(ValueError):
        MultiViewTransform(t_fix="gamma")
    with pytest.raises(ValueError, match="backend"):
        MultiViewTransform(backend="opencv")
    with pytest.raises(ValueError):
        MultiViewTransform()(np.zeros((2, 8, 8)), np.random.default_rng(0))
