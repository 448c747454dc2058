"""Tests of medssl.data.transforms: closed forms, oracles and alignment of image and label."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from medssl.data import transforms
from medssl.data.transforms import (
    NORMALIZATIONS,
    JointAugment,
    SpatialParams,
    apply_spatial,
    elastic_displacement,
    normalize,
    pad_or_crop,
    resample_inplane,
    spatial_coords,
    spatial_params,
)
from medssl.errors import ConfigError


def _disc_label(n: int = 48) -> np.ndarray:
    """An off-centre disc (2) inside a ring (1) and a small square (3): asymmetric on purpose."""
    yy, xx = np.mgrid[0:n, 0:n]
    r = np.hypot(yy - 0.4 * n, xx - 0.55 * n)
    lab = np.zeros((n, n), np.uint8)
    lab[r <= 0.25 * n] = 1
    lab[r <= 0.15 * n] = 2
    lab[int(0.7 * n) : int(0.8 * n), int(0.15 * n) : int(0.3 * n)] = 3
    return lab


def _centroid(mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask).mean(0)


# ---------------------------------------------------------------------------------------- normalize
def test_zscore_mean0_std1(rng):
    v = rng.normal(5.0, 3.0, (4, 16, 16)) * 7 + 100
    out = normalize(v, "zscore")
    assert out.dtype == np.float32 and out.shape == v.shape
    assert abs(float(out.mean())) < 1e-5
    assert abs(float(out.std()) - 1.0) < 1e-5


def test_clip_zscore_is_zscore_of_clipped(rng):
    v = rng.normal(0.0, 1.0, (3, 20, 20))
    v[0, 0, 0] = 1e6  # an outlier that would crush a plain z-score
    lo, hi = np.percentile(v, [1, 99])
    c = np.clip(v, lo, hi)
    expected = (c - c.mean()) / c.std()
    out = normalize(v, "clip_zscore")
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert out.max() <= (hi - c.mean()) / c.std() + 1e-5
    out2 = normalize(v, "clip_zscore", clip_percentiles=(0, 100))
    np.testing.assert_allclose(out2, normalize(v, "zscore"), atol=1e-6)


def test_minmax_slice_minmax_max(rng):
    v = rng.uniform(-3.0, 9.0, (3, 8, 8))
    v[1] *= 0.1
    mm = normalize(v, "minmax")
    assert mm.min() == 0.0 and mm.max() == pytest.approx(1.0)
    smm = normalize(v, "slice_minmax")
    for k in range(3):
        assert smm[k].min() == 0.0 and smm[k].max() == pytest.approx(1.0)
    # 2D input: one slice
    np.testing.assert_allclose(normalize(v[1], "slice_minmax"), smm[1], atol=1e-7)
    pos = np.abs(v)
    mx = normalize(pos, "max")
    np.testing.assert_allclose(mx, pos / pos.max(), rtol=1e-6)
    none = normalize(v.astype(np.float64), "none")
    assert none.dtype == np.float32
    np.testing.assert_allclose(none, v, rtol=1e-6)


@pytest.mark.parametrize("method", NORMALIZATIONS)
def test_constant_input_no_nan(method):
    v = np.full((2, 5, 5), 7.0)
    out = normalize(v, method)
    assert np.isfinite(out).all()
    if method != "none":
        assert (out == 0).all() or (method == "max" and np.allclose(out, 1.0))


def test_slice_minmax_constant_slice_is_zero():
    v = np.stack([np.full((4, 4), 3.0), np.arange(16.0).reshape(4, 4)])
    out = normalize(v, "slice_minmax")
    assert (out[0] == 0).all() and out[1].max() == 1.0


def test_normalize_unknown_method():
    with pytest.raises(ConfigError, match="unknown normalization"):
        normalize(np.zeros((2, 2)), "robust")


# ---------------------------------------------------------------------------------------- resample
def test_resample_noop():
    img = np.arange(2 * 6 * 6, dtype=np.float32).reshape(2, 6, 6)
    lab = (img > 30).astype(np.uint8)
    for target in (None, 1.5):
        i2, l2, sp = resample_inplane(img, lab, (8.0, 1.5, 1.5), target)
        np.testing.assert_array_equal(i2, img)
        np.testing.assert_array_equal(l2, lab)
        assert sp == (8.0, 1.5, 1.5)


def test_resample_shape_spacing_and_labels():
    n = 48
    lab2d = _disc_label(n)
    lab = np.stack([lab2d, lab2d])
    img = lab.astype(np.float32) * 10.0
    i2, l2, sp = resample_inplane(img, lab, (10.0, 1.5, 1.5), 1.25)
    new = round(n * 1.5 / 1.25)
    assert i2.shape == (2, new, new) and l2.shape == (2, new, new)
    assert i2.dtype == np.float32 and l2.dtype == np.uint8
    assert sp[0] == 10.0 and sp[1] == pytest.approx(n * 1.5 / new) and abs(sp[1] - 1.25) < 0.02
    assert set(np.unique(l2)) <= set(np.unique(lab))
    # physical area of each structure is preserved (within a pixel ring)
    for v in (1, 2, 3):
        a0 = (lab[0] == v).sum() * 1.5 * 1.5
        a1 = (l2[0] == v).sum() * sp[1] * sp[2]
        assert abs(a1 - a0) / a0 < 0.1
    _, l3, _ = resample_inplane(img, lab, (10.0, 1.5, 1.5), 1.25, label_mode="onehot")
    assert set(np.unique(l3)) <= set(np.unique(lab))
    assert (l3 == l2).mean() > 0.97


def test_resample_cubic_reproduces_linear_ramp():
    h, w = 20, 30
    ramp = np.tile(np.arange(w, dtype=np.float64), (1, h, 1))  # intensity = column index
    i2, _, _sp = resample_inplane(ramp, None, (1.0, 1.0, 1.0), 0.5)
    assert i2.shape == (1, 40, 60)
    # pixel centres of the new grid map to x = (j + 0.5) * 0.5 - 0.5 in old pixel units
    expected = (np.arange(60) + 0.5) * 0.5 - 0.5
    np.testing.assert_allclose(i2[0, 10, 12:-12], expected[12:-12], atol=1e-3)  # away from the edge-mode border


@pytest.mark.parametrize("target", [0.7, 1.25, 2.5])
def test_resample_slice_by_slice_equals_the_reference_3d_resize(target):
    """The reference pre-processing resizes the whole volume at once (z zoom 1); resample_inplane
    resizes each slice, clipped to the volume's range: the same values (float32 rounding), including
    where the cubic overshoot of one slice passes its own range but not the volume's."""
    from skimage.transform import resize

    rng = np.random.default_rng(0)
    vol = ndimage.gaussian_filter(rng.normal(size=(5, 33, 27)), 1.5)
    vol[2] *= 0.1  # a dim slice: its overshoot would be clipped by a per-slice range
    vol[3, 10:20, 8:16] += 5.0  # a sharp bright block: cubic overshoot
    got, _, _ = resample_inplane(vol, None, (6.0, 1.0, 1.1), target)
    ref = resize(vol, got.shape, order=3, mode="edge", preserve_range=True).astype(np.float32)
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6 * float(np.ptp(vol)))
    assert float(got.max()) <= float(vol.max()) and float(got.min()) >= float(vol.min())


# ---------------------------------------------------------------------------------------- pad/crop
def test_pad_or_crop_sizes_and_centre():
    a = np.arange(10 * 7, dtype=np.float32).reshape(10, 7)
    (out,) = pad_or_crop(a, size=(6, 9))
    assert out.shape == (6, 9)
    # centre crop of rows: start 10 // 2 - 6 // 2 = 2; columns padded 1 before, 1 after
    np.testing.assert_array_equal(out[:, 1:8], a[2:8])
    assert (out[:, 0] == 0).all() and (out[:, 8] == 0).all()
    (sq,) = pad_or_crop(a, size=4)
    np.testing.assert_array_equal(sq, a[3:7, 1:5])
    vol = np.ones((3, 5, 5))
    (pv,) = pad_or_crop(vol, size=8)
    assert pv.shape == (3, 8, 8) and pv.sum() == 3 * 25


def test_pad_or_crop_random_shared_window(rng):
    img = np.arange(40 * 30, dtype=np.float32).reshape(40, 30)
    lab = (np.arange(40 * 30) % 251).astype(np.int64).reshape(40, 30)
    starts = set()
    for _ in range(50):
        i2, l2 = pad_or_crop(img, lab, size=16, rng=rng)
        assert i2.shape == l2.shape == (16, 16)
        r0, c0 = divmod(int(i2[0, 0]), 30)
        np.testing.assert_array_equal(i2, img[r0 : r0 + 16, c0 : c0 + 16])
        np.testing.assert_array_equal(l2, lab[r0 : r0 + 16, c0 : c0 + 16])
        assert 0 <= r0 <= 24 and 0 <= c0 <= 14
        starts.add((r0, c0))
    assert len(starts) > 30  # random, not a fixed window


def test_pad_or_crop_errors():
    with pytest.raises(ValueError):
        pad_or_crop(np.zeros((4, 4)), np.zeros((4, 5)), size=2)
    with pytest.raises(ValueError):
        pad_or_crop(size=2)


# ----------------------------------------------------------------------------------------- spatial
def _params(shape, **kw) -> SpatialParams:
    return SpatialParams(tuple(shape), kw.get("flip", (False, False)), True, coords=spatial_coords(shape, **kw))


@pytest.mark.parametrize("order", [0, 1, 3])
def test_rotation_pi_over_2_is_rot90(rng, order):
    x = rng.random((24, 24)).astype(np.float32)
    out = apply_spatial(x, _params((24, 24), angle=math.pi / 2), order=order)
    np.testing.assert_allclose(out, np.rot90(x, 1), atol=1e-5)
    out = apply_spatial(x, _params((24, 24), angle=math.pi), order=order)
    np.testing.assert_allclose(out, np.rot90(x, 2), atol=1e-5)


def test_flips_in_grid_and_fast_path(rng):
    x = rng.random((12, 17)).astype(np.float32)
    for flip, ref in [((True, False), x[::-1]), ((False, True), x[:, ::-1]), ((True, True), x[::-1, ::-1])]:
        np.testing.assert_allclose(apply_spatial(x, _params(x.shape, flip=flip), order=3), ref, atol=1e-5)
        fast = SpatialParams(x.shape, flip, False)
        np.testing.assert_array_equal(apply_spatial(x, fast, order=3), ref)


def test_scale_closed_form():
    h, w = 21, 31
    ramp = np.tile(np.arange(w, dtype=np.float32), (h, 1))  # value = column
    out = apply_spatial(ramp, _params((h, w), scale=0.5), order=1)
    ctr = (w - 1) / 2
    expected = ctr + 0.5 * (np.arange(w) - ctr)
    np.testing.assert_allclose(out[h // 2], expected, atol=1e-4)


def test_composed_grid_equals_sequential_resampling(rng):
    """One map_coordinates on the combined grid == scale, then rotation, then elastic one after another."""
    n = 64
    yy, xx = np.mgrid[0:n, 0:n]
    x = (np.sin(yy / 7.0) + np.cos(xx / 9.0)).astype(np.float64)
    disp = elastic_displacement(rng, (n, n), 60.0, 8.0).astype(np.float64)
    ang, sc = 0.7, 1.15
    combined = apply_spatial(x, _params((n, n), displacement=disp, angle=ang, scale=sc), order=3)
    ctr = (n - 1) / 2
    base = np.stack([yy, xx]).astype(np.float64)
    mc = lambda img, c: ndimage.map_coordinates(img, c, order=3, mode="constant", cval=0.0)  # noqa: E731
    s1 = mc(x, (base - ctr) * sc + ctr)
    c, s = math.cos(ang), math.sin(ang)
    cy, cx = base[0] - ctr, base[1] - ctr
    s2 = mc(s1, np.stack([cy * c + cx * s, cx * c - cy * s]) + ctr)
    s3 = mc(s2, base + disp)
    inner = slice(16, 48)
    np.testing.assert_allclose(combined[inner, inner], s3[inner, inner], atol=0.02)


def test_elastic_displacement_matches_gaussian_filter():
    sh, alpha, sigma = (40, 52), 120.0, 5.3
    d = elastic_displacement(np.random.default_rng(3), sh, alpha, sigma)
    noise = np.random.default_rng(3).random((2,) + sh, dtype=np.float32) * 2.0 - 1.0
    ref = np.stack(
        [
            ndimage.gaussian_filter(noise[i].astype(np.float64), sigma, mode="constant", cval=0.0) * alpha
            for i in range(2)
        ]
    )
    assert d.shape == (2,) + sh and d.dtype == np.float32
    np.testing.assert_allclose(d, ref, atol=1e-4 * np.abs(ref).max())


def _reference_covariance_1d(n: int, sigma: float) -> np.ndarray:
    """Covariance factor of one axis of gaussian_filter(white noise, mode="constant"): K K^T."""
    eye = np.eye(n)
    k = np.stack([ndimage.gaussian_filter1d(eye[:, j], sigma, mode="constant", cval=0.0) for j in range(n)], axis=1)
    return k @ k.T


@pytest.mark.parametrize("sigma", [14.0, 17.0])
@pytest.mark.parametrize("stride, tol", [(4.0, 3e-3), (8.0, 1.3e-2)])
def test_lattice_elastic_field_has_the_reference_covariance(sigma, stride, tol):
    """The covariance of the lattice field equals the per-pixel field's within the documented error.

    Both are linear in i.i.d. noise of the same variance, so the 2D covariance is the Kronecker
    product of one matrix per axis: exact, with no sampling noise. The border fade is included.
    """
    n = 48
    ref = _reference_covariance_1d(n, sigma)
    basis = transforms._lattice_basis(n, sigma, stride).astype(np.float64)
    lat = basis @ basis.T
    ref2, lat2 = np.kron(ref, ref), np.kron(lat, lat)
    err = np.abs(lat2 - ref2).max() / ref2.max()
    assert err < tol
    # and it is a real approximation, not the same matrix: the error grows with the stride
    assert err > tol / 20
    # the corner holds about a quarter of the centre's variance, as in the reference
    assert lat[0, 0] / lat[n // 2, n // 2] == pytest.approx(ref[0, 0] / ref[n // 2, n // 2], rel=0.01)


def test_lattice_elastic_field_samples_have_the_predicted_variance():
    """The sampled field (alpha applied, both axes, layout of rows/columns) has the variance map the
    weights predict: U(-1, 1) noise has variance 1/3."""
    sh, alpha, sigma = (48, 64), 10.0, 14.0
    rng = np.random.default_rng(0)
    d = np.stack([elastic_displacement(rng, sh, alpha, sigma, noise_stride=4.0) for _ in range(1000)])
    ref = np.stack([elastic_displacement(rng, sh, alpha, sigma) for _ in range(1000)])
    assert d.shape == (1000, 2) + sh and d.dtype == np.float32
    rows = transforms._lattice_basis(sh[0], sigma, 4.0).astype(np.float64)
    cols = transforms._lattice_basis(sh[1], sigma, 4.0).astype(np.float64)
    pred = alpha**2 / 3.0 * np.outer((rows**2).sum(1), (cols**2).sum(1))
    emp = (d.astype(np.float64) ** 2).mean(axis=(0, 1))
    emp_ref = (ref.astype(np.float64) ** 2).mean(axis=(0, 1))  # the per-pixel field, for scale
    for i, j in [(24, 32), (0, 0), (0, 32), (47, 63), (24, 0)]:
        assert emp[i, j] == pytest.approx(pred[i, j], rel=0.12), (i, j)
        assert emp_ref[i, j] == pytest.approx(pred[i, j], rel=0.12), (i, j)
    assert pred[0, 0] < 0.4 * pred[24, 32]  # the border fade is there


def test_lattice_elastic_field_rejects_a_stride_below_one():
    with pytest.raises(ValueError, match="noise_stride"):
        elastic_displacement(np.random.default_rng(0), (8, 8), 1.0, 2.0, noise_stride=0.5)
    p = spatial_params(np.random.default_rng(0), (32, 32), 1.0, noise_stride=4.0)
    assert p.coords is not None and p.coords.shape == (2, 32, 32)


def test_spatial_params_probabilities_and_ranges():
    rng = np.random.default_rng(1)
    draws = [spatial_params(rng, (16, 16), 0.67, elastic=False) for _ in range(600)]
    frac_sp = np.mean([p.spatial for p in draws])
    assert abs(frac_sp - 0.67) < 0.06
    assert abs(np.mean([p.flip[0] for p in draws]) - 0.5) < 0.07
    assert abs(np.mean([p.flip[1] for p in draws]) - 0.5) < 0.07
    sp = [p for p in draws if p.spatial]
    scales = np.array([p.scale for p in sp])
    angles = np.array([p.angle for p in sp])
    assert scales.min() >= 0.7 and scales.max() <= 1.3
    assert abs(np.mean(scales < 1.0) - 0.5) < 0.1  # batchgenerators: half below 1, half above
    assert angles.min() >= 0 and angles.max() <= 2 * math.pi
    assert all(p.coords is None for p in draws if not p.spatial)
    el = spatial_params(np.random.default_rng(0), (32, 32), 1.0)
    assert 100 <= el.alpha <= 350 and 14 <= el.sigma <= 17 and el.coords.shape == (2, 32, 32)
    none = spatial_params(np.random.default_rng(0), (8, 8), 0.0, mirror=False)
    assert not none.spatial and none.flip == (False, False)


def test_spatial_params_deterministic():
    a = spatial_params(np.random.default_rng(7), (32, 32), 1.0)
    b = spatial_params(np.random.default_rng(7), (32, 32), 1.0)
    np.testing.assert_array_equal(a.coords, b.coords)
    assert (a.angle, a.scale, a.flip) == (b.angle, b.scale, b.flip)


def test_image_label_alignment_under_random_draws():
    n = 48
    lab = _disc_label(n)
    img = ndimage.gaussian_filter((lab == 2).astype(np.float32) * 100.0, 1.0)
    rng = np.random.default_rng(11)
    moved = 0
    for _ in range(12):
        p = spatial_params(rng, (n, n), 1.0)
        li = apply_spatial(lab, p, order=0)
        ii = apply_spatial(img, p, order=3)
        assert li.dtype == np.uint8 and ii.dtype == np.float32
        # the label equals the nearest-sampled transform of the label, by an independent route
        ref = ndimage.map_coordinates(lab.astype(np.float64), p.coords, order=0, mode="constant", cval=0)
        np.testing.assert_array_equal(li, ref.astype(np.uint8))
        assert set(np.unique(li)) <= {0, 1, 2, 3}
        if (li == 2).sum() < 20:
            continue
        c_img = np.array(ndimage.center_of_mass(np.clip(ii, 0, None)))
        c_lab = _centroid(li == 2)
        assert np.linalg.norm(c_img - c_lab) < 1.0
        moved += np.linalg.norm(c_lab - _centroid(lab == 2)) > 2
    assert moved >= 3  # the draws really moved the structure


def test_apply_spatial_shape_check_and_channels(rng):
    p = spatial_params(rng, (16, 16), 1.0)
    with pytest.raises(ValueError):
        apply_spatial(np.zeros((16, 15)), p, order=3)
    x = rng.random((2, 16, 16)).astype(np.float32)
    out = apply_spatial(x, p, order=3)
    np.testing.assert_allclose(out[1], apply_spatial(x[1], p, order=3))


# ------------------------------------------------------------------------------------ JointAugment
def test_joint_augment_shapes_values_alignment():
    lab = _disc_label(60)
    img = ndimage.gaussian_filter((lab == 2).astype(np.float32) * 50.0, 1.0)
    aug = JointAugment(48)
    rng = np.random.default_rng(5)
    for _ in range(8):
        i2, l2 = aug(img, lab, rng)
        assert i2.shape == l2.shape == (48, 48)
        assert i2.dtype == np.float32 and l2.dtype == np.uint8
        assert set(np.unique(l2)) <= {0, 1, 2, 3}
        if (l2 == 2).sum() > 20:
            c_img = np.array(ndimage.center_of_mass(np.clip(i2, 0, None)))
            assert np.linalg.norm(c_img - _centroid(l2 == 2)) < 1.0
    # small input: padded; no spatial, no mirror: exact centre placement
    small = JointAugment(64, p_spatial=0.0, mirror=False)
    i3, l3 = small(img, lab, rng)
    np.testing.assert_array_equal(l3[2:62, 2:62], lab)
    np.testing.assert_allclose(i3[2:62, 2:62], img)
    with pytest.raises(ValueError):
        JointAugment(0)


# ------------------------------------------------------------------------------ torch back-end
def test_torch_backend_linear_nearest_equal_scipy_cubic_close():
    """grid_sample reproduces map_coordinates for linear/nearest (same edge rule: cval outside
    [0, n-1]); its cubic convolution stays within a few percent of the cubic B-spline inside."""
    lab = _disc_label(64)
    img = ndimage.gaussian_filter(lab.astype(np.float32), 1.5)
    img /= img.max()
    for seed in range(4):
        p = spatial_params(np.random.default_rng(seed), (64, 64), 1.0)
        np.testing.assert_allclose(apply_spatial(img, p, 1, backend="torch"), apply_spatial(img, p, 1), atol=1e-5)
        got = apply_spatial(lab, p, 0, backend="torch")
        assert got.dtype == np.uint8
        assert (got != apply_spatial(lab, p, 0)).mean() < 1e-3  # only exact .5 rounding ties may differ
        c = p.coords
        inner = (c[0] >= 2) & (c[0] <= 61) & (c[1] >= 2) & (c[1] <= 61)
        d = np.abs(apply_spatial(img, p, 3, backend="torch") - apply_spatial(img, p, 3))
        assert d[inner].max() < 0.05 and d.mean() < 0.01
    # closed forms hold for both back-ends; cval is honoured outside the field of view
    x = np.random.default_rng(0).random((20, 20)).astype(np.float32)
    rot = apply_spatial(x, _params((20, 20), angle=math.pi / 2), order=3, backend="torch")
    np.testing.assert_allclose(rot, np.rot90(x, 1), atol=1e-5)
    zoomed_out = apply_spatial(x, _params((20, 20), scale=2.0), order=1, cval=-1.0, backend="torch")
    assert zoomed_out[0, 0] == -1.0 and zoomed_out[10, 10] != -1.0
    with pytest.raises(ValueError, match="backend"):
        apply_spatial(x, _params((20, 20), angle=0.3), order=3, backend="cv2")
    with pytest.raises(ValueError, match="order"):
        apply_spatial(x, _params((20, 20), angle=0.3), order=2, backend="torch")
    aug = JointAugment(32, backend="torch")
    i2, l2 = aug(img, lab, np.random.default_rng(1))
    assert i2.shape == l2.shape == (32, 32) and set(np.unique(l2)) <= {0, 1, 2, 3}


def test_fill_min_pads_and_rotates_in_the_background() -> None:
    """A z-scored slice's background is its minimum, not 0 (its mean): fill="min" pads with it."""
    from medssl.data.transforms import JointAugment, fill_value, pad_or_crop

    img = np.full((20, 20), -0.8, dtype=np.float32)
    img[5:15, 5:15] = 2.0
    lab = (img > 0).astype(np.uint8)
    p_img, p_lab = pad_or_crop(img, lab, size=32, values=(fill_value(img, "min"), 0))
    assert p_img[0, 0] == np.float32(-0.8) and p_lab[0, 0] == 0 and p_img.shape == (32, 32)
    assert pad_or_crop(img, size=32)[0][0, 0] == 0  # the reference pads with 0
    with pytest.raises(ValueError, match="padding values"):
        pad_or_crop(img, lab, size=32, values=(1.0,))
    # a rotation by 45 degrees brings corners in from outside: the image's minimum there, label 0
    aug = JointAugment(
        32, p_spatial=1.0, mirror=False, fill="min", elastic=False, scaling=False, angle=(np.pi / 4, np.pi / 4)
    )
    a_img, a_lab = aug(img, lab, np.random.default_rng(0))
    assert np.isclose(a_img[0, 0], -0.8, atol=1e-5) and a_lab[0, 0] == 0
    ref = JointAugment(32, p_spatial=1.0, mirror=False, elastic=False, scaling=False, angle=(np.pi / 4, np.pi / 4))
    assert ref(img, lab, np.random.default_rng(0))[0][0, 0] == 0
    with pytest.raises(ValueError, match="fill"):
        JointAugment(32, fill="edge")


def test_inference_pads_with_the_slice_minimum_when_asked() -> None:
    import torch

    from medssl.engine.inference import predict_volume

    class Mean(torch.nn.Module):  # class 1 where the mean of the whole (padded) input is above -0.5
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
            return torch.cat([torch.zeros_like(x), m + 0.5], dim=1)

    vol = np.full((2, 10, 12), -0.8, dtype=np.float32)  # padded to 16 x 16
    assert predict_volume(Mean(), vol, torch.device("cpu"), multiple=16).all()  # zero padding raised the mean
    low = predict_volume(Mean(), vol, torch.device("cpu"), multiple=16, fill="min")
    assert low.shape == vol.shape and not low.any()
