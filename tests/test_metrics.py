"""Metrics: closed forms, medpy as the oracle (hand-made and real labels), the empty-mask policy of
both protocols, pooled paper Dice and summaries recomputed from rows."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from medssl.evaluation.metrics import (
    METRIC_NAMES,
    MetricAccumulator,
    asd,
    assd,
    case_metrics,
    confusion_counts,
    dice_jaccard_from_counts,
    distance_metrics,
    hd,
    hd95,
    summarize,
    surface_distances,
)

medpy_binary = pytest.importorskip("medpy.metric.binary")
_medpy_sd = getattr(medpy_binary, "__surface_distances")

TOL = 1e-6


def _ball(shape, center, radii) -> np.ndarray:
    grid = np.indices(shape, dtype=np.float64)
    r = sum(((g - c) / rr) ** 2 for g, c, rr in zip(grid, center, radii))
    return r <= 1.0


def _medpy_all(a, b, spacing=None, connectivity=1) -> dict[str, float]:
    return {
        "hd95": medpy_binary.hd95(a, b, spacing, connectivity),
        "asd": medpy_binary.asd(a, b, spacing, connectivity),
        "assd": medpy_binary.assd(a, b, spacing, connectivity),
        "hd": medpy_binary.hd(a, b, spacing, connectivity),
    }


def _assert_matches_medpy(a, b, spacing=None, connectivity=1) -> None:
    ours = distance_metrics(a, b, spacing, connectivity)
    ref = _medpy_all(a, b, spacing, connectivity)
    for k, v in ref.items():
        assert abs(ours[k] - v) <= TOL, (k, ours[k], v)
    d_ab, d_ba = surface_distances(a, b, spacing, connectivity)
    np.testing.assert_allclose(d_ab, _medpy_sd(a, b, spacing, connectivity), rtol=0, atol=TOL)
    np.testing.assert_allclose(d_ba, _medpy_sd(b, a, spacing, connectivity), rtol=0, atol=TOL)


# ------------------------------------------------------------------------------------------
# Confusion counts, Dice, Jaccard
# ------------------------------------------------------------------------------------------
def test_confusion_counts_hand_made():
    pred = np.array([[0, 1], [1, 2]])
    gt = np.array([[0, 1], [2, 2]])
    c = confusion_counts(pred, gt, 3)
    np.testing.assert_array_equal(c, [[1, 0, 0], [1, 1, 0], [1, 0, 1]])


def test_confusion_counts_matches_per_class_loop(rng):
    pred = rng.integers(0, 5, size=(3, 17, 19))
    gt = rng.integers(0, 5, size=(3, 17, 19))
    c = confusion_counts(pred, gt, 5)
    for k in range(5):
        p, g = pred == k, gt == k
        assert tuple(c[k]) == ((p & g).sum(), (p & ~g).sum(), (~p & g).sum())
    # memory layout does not matter (NIfTI arrays are Fortran-ordered, predictions C-ordered)
    np.testing.assert_array_equal(confusion_counts(pred, np.asfortranarray(gt), 5), c)
    np.testing.assert_array_equal(confusion_counts(pred[:, ::-1], gt[:, ::-1], 5), c)
    # float labels with integral values are accepted (NIfTI stores labels as float)
    np.testing.assert_array_equal(confusion_counts(pred.astype(np.float64), gt.astype(np.float32), 5), c)


@pytest.mark.parametrize(
    "pred, gt, match",
    [
        (np.array([0, 3]), np.array([0, 1]), "label value 3"),
        (np.array([0, -1]), np.array([0, 1]), "label value -1"),
        (np.array([0, 0.5]), np.array([0, 1]), "not integers"),
        (np.array([0, 1, 1]), np.array([0, 1]), "shape"),
    ],
)
def test_confusion_counts_rejects_bad_labels(pred, gt, match):
    with pytest.raises(ValueError, match=match):
        confusion_counts(pred, gt, 3)


def test_dice_jaccard_closed_form():
    dsc, jc = dice_jaccard_from_counts([[2, 1, 1], [0, 0, 0], [0, 3, 0], [5, 0, 0]])
    np.testing.assert_allclose(dsc[[0, 2, 3]], [4 / 6, 0.0, 1.0])
    np.testing.assert_allclose(jc[[0, 2, 3]], [2 / 4, 0.0, 1.0])
    assert math.isnan(dsc[1]) and math.isnan(jc[1])
    # dsc = 2 jc / (1 + jc) for every non-empty count
    counts = np.random.default_rng(1).integers(0, 50, size=(20, 3)) + [1, 0, 0]
    d, j = dice_jaccard_from_counts(counts)
    np.testing.assert_allclose(d, 2 * j / (1 + j))


# ------------------------------------------------------------------------------------------
# Surface distances: closed forms
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("spacing", [None, (2.5, 0.7, 1.3)])
def test_one_voxel_shift_gives_hd_equal_to_the_spacing(axis, spacing):
    # Every surface voxel a of A has a + e on the surface of B = A + e, and the extreme voxel of A
    # along the axis is one step from all of B: so HD = the spacing along the shift axis, exactly.
    a = _ball((20, 22, 24), (9.3, 10.6, 11.2), (6.0, 7.5, 5.5))
    b = np.roll(a, 1, axis=axis)
    step = 1.0 if spacing is None else spacing[axis]
    assert hd(a, b, spacing) == pytest.approx(step, abs=1e-12)
    assert hd(b, a, spacing) == pytest.approx(step, abs=1e-12)
    _assert_matches_medpy(a, b, spacing)


def test_cube_shift_closed_form():
    # cube 6^3 -> 152 surface voxels; shifted by one along axis 0, 52 of them (the 36 of the back
    # face and the 16 inner voxels of the front face) are one step from the other surface
    a = np.zeros((10, 10, 10), bool)
    a[2:8, 2:8, 2:8] = True
    b = np.roll(a, 1, axis=0)
    m = distance_metrics(a, b)
    assert m["asd"] == pytest.approx(52 / 152) and m["assd"] == pytest.approx(52 / 152)
    assert m["hd95"] == pytest.approx(1.0) and m["hd"] == pytest.approx(1.0)
    # spacing 2 along the shift: the back face is 2 away; of the 16 front-face voxels the 12 next to
    # a side face are 1 away (a side face is 1 mm across), the 4 central ones 2 away
    m = distance_metrics(a, b, (2.0, 1.0, 1.0))
    assert m["asd"] == pytest.approx((36 * 2 + 12 * 1 + 4 * 2) / 152)
    assert m["hd"] == pytest.approx(2.0)
    assert hd95(a, b, 0.5) == pytest.approx(0.5)  # a scalar spacing applies to every axis
    assert asd(a, a) == 0.0 and assd(a, a) == 0.0


# ------------------------------------------------------------------------------------------
# Surface distances: medpy as the oracle on hand-made masks
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spacing", [None, (3.0, 0.8, 1.1), 0.5])
def test_matches_medpy_on_spheres(spacing):
    a = _ball((18, 24, 20), (8.0, 11.0, 9.5), (5.0, 8.0, 6.0))
    b = _ball((18, 24, 20), (9.0, 12.5, 8.0), (4.0, 7.0, 7.0))
    b[2:5, 2:6, 14:19] = True  # a second, far component makes the distributions skewed
    _assert_matches_medpy(a, b, spacing)
    _assert_matches_medpy(b, a, spacing)


def test_matches_medpy_when_masks_touch_the_border_and_in_2d(rng):
    a = np.zeros((16, 16), bool)
    b = np.zeros((16, 16), bool)
    a[0:6, 0:16] = True  # touches three edges: the zero border makes them surface
    b[3:9, 2:15] = True
    _assert_matches_medpy(a, b)
    _assert_matches_medpy(a, b, (0.7, 1.9))
    noisy_a = ndi.binary_opening(rng.random((24, 24)) > 0.45)
    noisy_b = ndi.binary_closing(rng.random((24, 24)) > 0.55)
    _assert_matches_medpy(noisy_a, noisy_b, (1.3, 0.6))
    _assert_matches_medpy(noisy_a, noisy_b, None, connectivity=2)
    one = np.zeros((16, 16), bool)
    one[10, 12] = True  # a single voxel is its own surface
    _assert_matches_medpy(one, a)


def test_surface_distances_errors():
    a = np.zeros((4, 4), bool)
    b = a.copy()
    b[1, 1] = True
    with pytest.raises(ValueError, match="prediction mask is empty"):
        surface_distances(a, b)
    with pytest.raises(ValueError, match="ground-truth mask is empty"):
        surface_distances(b, a)
    with pytest.raises(ValueError, match="spacing"):
        surface_distances(b, b, (1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="shape"):
        surface_distances(b, np.ones((4, 5), bool))


# ------------------------------------------------------------------------------------------
# Real labels (read by path, never copied)
# ------------------------------------------------------------------------------------------
def _load_dhw(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    nib = pytest.importorskip("nibabel")
    from medssl.data.case import to_dhw

    img = nib.load(str(path))
    arr, spacing = to_dhw(np.rint(np.asanyarray(img.dataobj)).astype(np.uint8), img.header.get_zooms())
    return arr, spacing


def _perturb(mask: np.ndarray, how: str) -> np.ndarray:
    if how == "shift":
        return np.roll(mask, (1, 2), axis=(1, 2))
    if how == "erode":
        return ndi.binary_erosion(mask)
    return ndi.binary_dilation(mask, iterations=2)


def test_matches_medpy_on_hippocampus_labels(shared_data):
    files = sorted((shared_data / "msd_hippocampus" / "labelsTr").glob("hippocampus_*.nii.gz"))[:3]
    assert files, "no hippocampus labels found"
    for f in files:
        gt, spacing = _load_dhw(f)
        for c in (1, 2):
            g = gt == c
            for how in ("shift", "erode", "dilate"):
                p = _perturb(g, how)
                if not p.any():
                    continue
                _assert_matches_medpy(p, g, spacing)


def test_matches_medpy_on_chaos_labels(shared_data):
    gt, spacing = _load_dhw(shared_data / "chaos_mr_t2spir" / "label_1.nii.gz")
    assert spacing[0] > 5 * spacing[1]  # anisotropic (about 7.7 x 1.25 x 1.25 mm)
    pred = gt.copy()
    pred = np.where(ndi.binary_erosion(gt == 1, iterations=2), 1, np.where(gt == 1, 0, pred))  # eroded liver
    pred = np.roll(pred, 3, axis=2)
    for c in range(1, 5):
        p, g = pred == c, gt == c
        assert p.any() and g.any()
        # the medpy oracle on the full 256x256xZ volume: both directed distance sets, element by element
        d_ab, d_ba = surface_distances(p, g, spacing)
        np.testing.assert_allclose(d_ab, _medpy_sd(p, g, spacing), rtol=0, atol=TOL)
        np.testing.assert_allclose(d_ba, _medpy_sd(g, p, spacing), rtol=0, atol=TOL)
    rows = case_metrics(pred, gt, ("bg", "liver", "rk", "lk", "spleen"), spacing, distances="medpy")
    p, g = pred == 4, gt == 4
    assert rows[3]["hd95"] == pytest.approx(medpy_binary.hd95(p, g, spacing), abs=TOL)
    assert rows[3]["asd"] == pytest.approx(medpy_binary.asd(p, g, spacing), abs=TOL)
    assert rows[3]["dsc"] == pytest.approx(medpy_binary.dc(p, g), abs=1e-12)
    assert rows[3]["jc"] == pytest.approx(medpy_binary.jc(p, g), abs=1e-12)


# ------------------------------------------------------------------------------------------
# Empty-mask policy
# ------------------------------------------------------------------------------------------
NAMES = ("background", "organ")


def _vol(filled: bool) -> np.ndarray:
    v = np.zeros((2, 8, 8), np.uint8)
    if filled:
        v[:, 2:5, 2:6] = 1
    return v


@pytest.mark.parametrize(
    "gt_filled, pred_filled, dsc",
    [(True, True, 1.0), (True, False, 0.0), (False, True, 0.0), (False, False, float("nan"))],
)
def test_standard_empty_policy(gt_filled, pred_filled, dsc):
    (row,) = case_metrics(_vol(pred_filled), _vol(gt_filled), NAMES, (2.0, 1.0, 1.0), "standard", "medpy")
    assert row["gt_empty"] is (not gt_filled) and row["pred_empty"] is (not pred_filled)
    assert (math.isnan(row["dsc"]) and math.isnan(dsc)) or row["dsc"] == dsc
    assert (math.isnan(row["jc"]) and math.isnan(dsc)) or row["jc"] == dsc
    for m in ("hd95", "asd", "assd", "hd"):
        if gt_filled and pred_filled:
            assert row[m] == 0.0
        else:
            assert math.isnan(row[m]), m
    for f in (hd95, asd, assd, hd):
        assert math.isnan(f(_vol(pred_filled), _vol(gt_filled))) == (not (gt_filled and pred_filled))


@pytest.mark.parametrize("gt_filled, pred_filled", [(True, True), (True, False), (False, True), (False, False)])
def test_paper_empty_policy_scores_zero(gt_filled, pred_filled):
    gt, pred = _vol(gt_filled), _vol(pred_filled)
    if gt_filled and pred_filled:
        pred = np.roll(pred, 1, axis=2)
    (row,) = case_metrics(pred, gt, NAMES, (5.0, 3.0, 3.0), "paper")
    assert row["n_slices"] == 2
    if gt_filled and pred_filled:
        assert row["hd95"] == pytest.approx(medpy_binary.hd95(pred[0], gt[0]))  # pixels, spacing ignored
        assert row["asd"] == pytest.approx(medpy_binary.asd(pred[0], gt[0]))
    else:
        assert row["hd95"] == 0.0 and row["asd"] == 0.0 and row["assd"] == 0.0 and row["hd"] == 0.0
    assert row["gt_empty"] is (not gt_filled) and row["pred_empty"] is (not pred_filled)


def test_paper_slices_in_pixels_with_zero_for_empty_slices():
    gt = np.zeros((4, 12, 12), np.uint8)
    pred = np.zeros_like(gt)
    gt[0, 2:7, 3:9] = 1
    pred[0, 3:9, 3:8] = 1  # slice 0: both present
    gt[1, 4:8, 4:8] = 1  # slice 1: prediction missed it -> 0
    pred[2, 1:3, 1:3] = 1  # slice 2: false positive only -> 0; slice 3 empty -> 0
    gt[3, 5:9, 2:10] = 1
    pred[3, 6:9, 1:9] = 1  # slice 3: both present
    (row,) = case_metrics(pred, gt, NAMES, (9.0, 9.0, 9.0), "paper")
    for m, f in (("hd95", medpy_binary.hd95), ("asd", medpy_binary.asd), ("assd", medpy_binary.assd)):
        expected = (f(pred[0], gt[0]) + f(pred[3], gt[3])) / 4
        assert row[m] == pytest.approx(expected, abs=TOL)
    assert row["asd"] != pytest.approx((medpy_binary.asd(gt[0], pred[0]) + medpy_binary.asd(gt[3], pred[3])) / 4)


# ------------------------------------------------------------------------------------------
# Pooled paper Dice and summaries recomputed from rows
# ------------------------------------------------------------------------------------------
def test_paper_dice_is_pooled_over_the_test_set():
    g1 = np.zeros((1, 4, 4), np.uint8)
    g1[0, 0, :] = 1  # 4 voxels
    p1 = np.zeros_like(g1)
    p1[0, 0, :2] = 1  # tp 2, fn 2
    g2 = np.zeros_like(g1)
    p2 = np.zeros_like(g1)
    p2[0, 3, :2] = 1  # fp 2
    acc = MetricAccumulator(NAMES, "paper")
    acc.add("a", p1, g1)
    acc.add("b", p2, g2)
    rows = acc.rows()
    assert rows[0]["dsc"] == pytest.approx(4 / 6) and rows[1]["dsc"] == 0.0
    cls, mean = acc.summary()
    assert cls["dsc_mean"] == pytest.approx(2 * 2 / (2 * 2 + 2 + 2))  # pooled 0.5, not (2/3 + 0)/2
    assert cls["jc_mean"] == pytest.approx(2 / 6)
    assert mean["dsc_mean"] == pytest.approx(0.5)
    assert (cls["tp"], cls["fp"], cls["fn"]) == (2, 2, 2)
    # the standard protocol averages per-case values instead
    std = summarize(rows, "standard")
    assert std[0]["dsc_mean"] == pytest.approx((4 / 6 + 0.0) / 2)


def _random_case(rng, shape=(5, 20, 20), k=3):
    gt = np.zeros(shape, np.uint8)
    for c in range(1, k):
        ctr = rng.uniform(5, 15, size=2)
        for z in range(shape[0]):
            if rng.random() < 0.8:
                gt[z][_ball(shape[1:], ctr + rng.normal(0, 1, 2), (rng.uniform(2, 5), rng.uniform(2, 5)))] = c
    pred = gt.copy()
    pred[rng.random(shape) < 0.05] = 0
    pred = np.roll(pred, int(rng.integers(-1, 2)), axis=1)
    return pred, gt


def test_paper_summary_equals_scoring_all_slices_at_once(rng):
    cases = [_random_case(rng, shape=(n, 20, 20)) for n in (3, 5, 2)]
    names = ("bg", "a", "b")
    acc = MetricAccumulator(names, "paper")
    for i, (p, g) in enumerate(cases):
        acc.add(f"c{i}", p, g, (4.0, 1.0, 1.0))
    summary = acc.summary()
    stacked_p = np.concatenate([p for p, _ in cases])
    stacked_g = np.concatenate([g for _, g in cases])
    whole = case_metrics(stacked_p, stacked_g, names, None, "paper")  # one "case" = the whole test set
    for c in (0, 1):
        for m in METRIC_NAMES:
            assert summary[c][f"{m}_mean"] == pytest.approx(whole[c][m], abs=1e-12, nan_ok=True), m
        assert summary[c]["n_slices"] == 10
    for m in METRIC_NAMES:
        assert summary[2][f"{m}_mean"] == pytest.approx(np.mean([whole[0][m], whole[1][m]]), nan_ok=True)


def test_standard_summary_recomputed_from_rows(rng):
    names = ("bg", "a", "b")
    acc = MetricAccumulator(names, "standard")
    for i in range(4):
        p, g = _random_case(rng)
        if i == 3:
            p[p == 2] = 0  # class b missed entirely in one case -> NaN distances, counted as empty
        acc.add(f"c{i}", p, g, (3.0, 0.9, 0.9))
    rows = acc.rows()
    summary = acc.summary()
    assert [s["class_name"] for s in summary] == ["a", "b", "mean"]
    for j, c in enumerate((1, 2)):
        for m in METRIC_NAMES:
            v = np.array([r[m] for r in rows if r["class_index"] == c])
            assert summary[j][f"{m}_mean"] == pytest.approx(np.nanmean(v))
            assert summary[j][f"{m}_std"] == pytest.approx(np.nanstd(v))
            assert summary[j][f"{m}_n_valid"] + summary[j][f"{m}_n_empty"] == 4
    assert summary[1]["hd95_n_empty"] == 1 and summary[1]["n_pred_empty"] == 1
    assert summary[1]["dsc_n_empty"] == 0  # a missed structure is DSC 0, not NaN
    per_case = [np.nanmean([r["hd95"] for r in rows if r["case_id"] == f"c{i}"]) for i in range(4)]
    assert summary[2]["hd95_mean"] == pytest.approx(np.mean(per_case))
    assert summary[2]["hd95_std"] == pytest.approx(np.std(per_case))
    assert summary[2]["tp"] == sum(r["tp"] for r in rows)


def test_accumulator_buffer_and_errors():
    acc = MetricAccumulator(NAMES)
    acc.add("x", _vol(True), _vol(True), 1.0)
    with pytest.raises(ValueError, match="already added"):
        acc.add("x", _vol(True), _vol(True), 1.0)
    assert len(acc) == 1 and acc.aggregate() == acc.summary()
    acc.reset()
    assert len(acc) == 0 and acc.rows() == [] and acc.summary() == []
    with pytest.raises(ValueError, match="protocol"):
        MetricAccumulator(NAMES, "nnunet")
    with pytest.raises(ValueError, match="case_id"):
        summarize(case_metrics(_vol(True), _vol(True), NAMES))
    with pytest.raises(ValueError, match="label value 2 not in 0..1"):
        case_metrics(_vol(True) * 2, _vol(True), NAMES)
    with pytest.raises(ValueError, match="at least one foreground"):
        case_metrics(_vol(True), _vol(True), ("background",))
