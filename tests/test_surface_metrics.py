"""The ``surface`` boundary definition of the ``standard`` protocol, checked against DeepMind's
``surface-distance`` (test-only reference, the ``dev`` extra) and on cases with known answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from medpy.metric import binary as medpy_binary
from scipy import ndimage as ndi

from medssl.cli.main import main
from medssl.evaluation.evaluate import ROW_COLUMNS, evaluate_arrays, write_results
from medssl.evaluation.metrics import case_metrics, parse_nsd_tolerance, resolve_nsd_tolerance
from medssl.evaluation.surface import (
    SurfaceDistances,
    boundary_elements,
    directed_surface_distances,
    neighbour_area_table,
    surface_metrics,
    weighted_percentile,
)

sdm = pytest.importorskip("surface_distance")
nib = pytest.importorskip("nibabel")

TOL = 1e-6
NAMES = ("background", "RV", "Myo")


def _reference(pred: np.ndarray, gt: np.ndarray, spacing, tol: float = 2.0) -> dict[str, float]:
    """The same metrics from ``surface-distance``."""
    ref = sdm.compute_surface_distances(gt.astype(bool), pred.astype(bool), tuple(spacing))
    gt_to_pred, pred_to_gt = sdm.compute_average_surface_distance(ref)
    wp, wg = ref["surfel_areas_pred"], ref["surfel_areas_gt"]
    pooled = (np.dot(ref["distances_pred_to_gt"], wp) + np.dot(ref["distances_gt_to_pred"], wg)) / (wp.sum() + wg.sum())
    return {
        "hd95": sdm.compute_robust_hausdorff(ref, 95),
        "hd": sdm.compute_robust_hausdorff(ref, 100),
        "asd": pred_to_gt,
        "masd": 0.5 * (gt_to_pred + pred_to_gt),
        "assd": pooled,
        "nsd": sdm.compute_surface_dice_at_tolerance(ref, tol),
    }


def _blobs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return ndi.binary_dilation(rng.random(shape) > 0.97, iterations=2)


def _assert_matches(mine: dict[str, float], ref: dict[str, float]) -> None:
    for m, v in ref.items():
        assert mine[m] == pytest.approx(v, abs=TOL), m


# ------------------------------------------------------------------------------------------
# Against surface-distance (same representation: exact)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_masks_match_surface_distance(ndim, seed):
    rng = np.random.default_rng(seed)
    shape = (36, 40) if ndim == 2 else (10, 24, 26)
    pred, gt = _blobs(rng, shape), _blobs(rng, shape)
    spacing = tuple(rng.uniform(0.4, 6.0, ndim))
    tol = float(rng.uniform(0.5, 4.0))
    _assert_matches(
        surface_metrics(directed_surface_distances(pred, gt, spacing), tol), _reference(pred, gt, spacing, tol)
    )


def test_area_table_matches_surface_distance_for_anisotropic_spacings():
    lookup = pytest.importorskip("surface_distance.lookup_tables")
    for sp in [(1.0, 1.0, 1.0), (8.0, 1.25, 1.25), (1.3, 0.7, 2.1), (0.3, 5.0, 1.0)]:
        ref = lookup.create_table_neighbour_code_to_surface_area(sp)
        np.testing.assert_allclose(neighbour_area_table(sp), ref, rtol=0, atol=1e-12)
    for sp in [(1.0, 1.0), (0.6, 3.0)]:
        ref = lookup.create_table_neighbour_code_to_contour_length(sp)
        np.testing.assert_allclose(neighbour_area_table(sp), ref, rtol=0, atol=1e-12)


def test_one_voxel_shift_anisotropic_3d():
    gt = np.zeros((6, 14, 14), bool)
    gt[1:5, 3:10, 4:11] = True
    pred = np.roll(gt, 1, axis=0)  # one 8 mm slice
    spacing = (8.0, 1.25, 1.25)
    mine = surface_metrics(directed_surface_distances(pred, gt, spacing))
    _assert_matches(mine, _reference(pred, gt, spacing))
    assert mine["hd"] == pytest.approx(8.0)  # every corner moved by one slice
    assert 0.0 < mine["nsd"] < 1.0  # side walls coincide, top/bottom caps are 8 mm off


# ------------------------------------------------------------------------------------------
# Known answers
# ------------------------------------------------------------------------------------------
def test_single_voxel_boundary_is_an_octahedron_and_a_diamond():
    v3 = np.zeros((3, 3, 3), bool)
    v3[1, 1, 1] = True
    _, w3 = boundary_elements(v3, (1.0, 1.0, 1.0))
    assert len(w3) == 8 and w3.sum() == pytest.approx(math.sqrt(3.0))  # 8 triangles of side sqrt(2)/2
    v2 = np.zeros((3, 3), bool)
    v2[1, 1] = True
    _, w2 = boundary_elements(v2, (2.0, 1.0))
    assert w2.sum() == pytest.approx(4 * 0.5 * math.hypot(2.0, 1.0))  # a diamond through the edge midpoints


def test_stray_blob_shows_in_directed_hd95_not_in_pooled_medpy():
    gt = np.zeros((12, 40, 12), bool)
    gt[1:11, 1:11, 1:11] = True
    pred = gt.copy()
    pred[5:8, 33:36, 5:8] = True  # a 3x3x3 false positive 22 voxels away: 8 % of the predicted area
    mine = surface_metrics(directed_surface_distances(pred, gt, (1.0, 1.0, 1.0)))
    _assert_matches(mine, _reference(pred, gt, (1.0, 1.0, 1.0)))
    assert mine["hd95"] >= 22.0  # the blob's distance to the organ
    assert medpy_binary.hd95(pred, gt) < 1.0  # pooled with the other direction it falls under P95
    (row,) = case_metrics(pred.astype(np.uint8), gt.astype(np.uint8), ("bg", "organ"), (1.0, 1.0, 1.0))
    assert row["hd95"] == pytest.approx(mine["hd95"])
    (old,) = case_metrics(
        pred.astype(np.uint8), gt.astype(np.uint8), ("bg", "organ"), (1.0, 1.0, 1.0), distances="medpy"
    )
    assert old["hd95"] == pytest.approx(medpy_binary.hd95(pred, gt), abs=TOL)


def test_weighted_percentile_takes_the_first_distance_reaching_the_share():
    d = np.array([3.0, 1.0, 2.0, 10.0])
    w = np.array([1.0, 1.0, 1.0, 0.1])  # the 10 holds 3 % of the weight
    assert weighted_percentile(d, w, 95) == 3.0
    assert weighted_percentile(d, w, 100) == 10.0
    sd = SurfaceDistances(np.array([0.0, 4.0]), np.array([1.0, 1.0]), np.array([0.0]), np.array([2.0]))
    m = surface_metrics(sd, nsd_tolerance=2.0)
    assert m["asd"] == 2.0 and m["assd"] == pytest.approx(4.0 / 4.0) and m["masd"] == pytest.approx(1.0)
    assert m["nsd"] == pytest.approx(3.0 / 4.0) and m["hd"] == 4.0


@pytest.mark.parametrize(
    "gt_filled, pred_filled, nsd, dist",
    [(True, False, 0.0, math.nan), (False, True, 0.0, math.nan), (False, False, 1.0, 0.0)],
)
@pytest.mark.parametrize("distances", ["surface", "medpy"])
def test_empty_masks_follow_metrics_reloaded(gt_filled, pred_filled, nsd, dist, distances):
    vol = np.zeros((2, 8, 8), np.uint8)
    filled = vol.copy()
    filled[:, 2:5, 2:6] = 1
    pred, gt = (filled if pred_filled else vol), (filled if gt_filled else vol)
    (row,) = case_metrics(pred, gt, ("bg", "organ"), (2.0, 1.0, 1.0), distances=distances)
    assert row["nsd"] == nsd
    expected = math.nan if distances == "medpy" else dist  # medpy keeps its earlier NaN distances
    for m in ("hd95", "asd", "assd", "masd", "hd"):
        assert (math.isnan(row[m]) and math.isnan(expected)) or row[m] == expected, m


# ------------------------------------------------------------------------------------------
# NSD tolerance: parsing, per class, files, CLI
# ------------------------------------------------------------------------------------------
def test_nsd_tolerance_parsing_and_resolution():
    assert parse_nsd_tolerance("2") == 2.0
    assert parse_nsd_tolerance("RV=2, Myo=1.5") == {"RV": 2.0, "Myo": 1.5}
    for bad in ("-1", "RV=-2", "RV=x", "=3", "abc"):
        with pytest.raises(ValueError):
            parse_nsd_tolerance(bad)
    assert resolve_nsd_tolerance({"Myo": 1.5}, NAMES) == {"RV": 2.0, "Myo": 1.5}
    with pytest.raises(ValueError, match="unknown class 'LV'"):
        resolve_nsd_tolerance({"LV": 1.0}, NAMES)


def _cardiac_case() -> tuple[np.ndarray, np.ndarray]:
    gt = np.zeros((4, 20, 20), np.uint8)
    gt[:, 3:9, 3:9] = 1
    gt[:, 11:17, 11:17] = 2
    return np.roll(gt, 1, axis=2), gt


def test_per_class_tolerance_and_files(tmp_path):
    pred, gt = _cardiac_case()
    res = evaluate_arrays([("c0", pred, gt, (8.0, 1.5, 1.5))], NAMES, nsd_tolerance={"RV": 0.0, "Myo": 100.0})
    rv, myo = res.rows
    assert rv["nsd"] < 1.0 and myo["nsd"] == 1.0
    paths = write_results(res, tmp_path)
    header = paths["metrics_csv"].read_text().splitlines()[0].split(",")
    assert tuple(header) == ROW_COLUMNS and "nsd" in header
    doc = json.loads(paths["summary_json"].read_text())
    assert doc["distances"] == "surface" and doc["nsd_tolerance_mm"] == {"RV": 0.0, "Myo": 100.0}
    assert "nsd" in doc["mean"] and "Metrics Reloaded" in doc["empty_masks"]
    md = paths["summary_md"].read_text()
    assert "NSD tolerance RV 0 mm, Myo 100 mm" in md and "Empty masks" in md and "| NSD |" in md


def _save(path: Path, dhw: np.ndarray, spacing=(8.0, 1.5, 1.5)) -> None:
    sz, sy, sx = spacing
    img = nib.Nifti1Image(np.ascontiguousarray(dhw.transpose(2, 1, 0)), np.diag([sx, sy, sz, 1.0]))
    img.header.set_zooms((sx, sy, sz))
    nib.save(img, str(path))


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    pd, gd = tmp_path / "pred", tmp_path / "gt"
    pd.mkdir()
    gd.mkdir()
    pred, gt = _cardiac_case()
    _save(pd / "c0.nii.gz", pred)
    _save(gd / "c0.nii.gz", gt)
    return pd, gd


def test_cli_nsd_tolerance_and_its_errors(tmp_path, capsys):
    pd, gd = _folders(tmp_path)
    base = ["evaluate", "--pred", str(pd), "--gt", str(gd), "--labels", ",".join(NAMES)]
    assert main([*base, "--nsd-tolerance", "RV=2,Myo=1.5", "--out", str(tmp_path / "a")]) == 0
    doc = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert doc["nsd_tolerance_mm"] == {"RV": 2.0, "Myo": 1.5} and doc["distances"] == "surface"
    assert main([*base, "--distances", "medpy", "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["distances"] == "medpy"
    capsys.readouterr()
    for bad, says in (("LV=2", "unknown class 'LV'"), ("-1", ">= 0"), ("RV=two", "not a number")):
        assert main([*base, "--nsd-tolerance", bad, "--out", str(tmp_path / "c")]) == 2
        err = capsys.readouterr().err.strip()
        assert says in err and len(err.splitlines()) == 1, err


def test_report_states_mixed_distance_definitions():
    from types import SimpleNamespace

    from medssl.reporting.definitions import distance_definition_of, mixed_definition_notes

    def run(protocol, summary, path):
        return SimpleNamespace(protocol=protocol, summary=summary, path=Path(path))

    same = [run("standard", {"distances": "surface"}, "a"), run("paper", {}, "b"), run("paper", {}, "c")]
    paper_note, std_note = mixed_definition_notes(same)
    assert "paper table's HD95/ASD/ASSD: distances `medpy`" in paper_note and "`surface`" in std_note
    mixed = [*same, run("standard", {}, "old")]  # a run from before the field: medpy
    _, note = mixed_definition_notes(mixed)
    assert note.startswith("WARNING: the standard table mixes distance definitions") and "old" in note
    assert distance_definition_of("paper", {"distances": "surface"}) == "medpy"


def test_finetune_config_fields_and_their_checks():
    from medssl.config import FinetuneConfig, config_from_dict
    from medssl.errors import ConfigError
    from medssl.finetune import _check_boundary_options, nsd_tolerances

    cfg = config_from_dict(
        FinetuneConfig, {"nsd_tolerance": 3, "nsd_tolerance_per_class": {"Myo": 1.5}, "distances": "medpy"}
    )
    assert cfg.distances == "medpy"
    _check_boundary_options(cfg, NAMES)
    assert nsd_tolerances(cfg, NAMES) == {"RV": 3.0, "Myo": 1.5}
    for bad in ({"nsd_tolerance": -1.0}, {"nsd_tolerance_per_class": {"RV": "x"}}, {"distances": "mesh"}):
        with pytest.raises(ConfigError):
            config_from_dict(FinetuneConfig, bad)
    with pytest.raises(ConfigError, match="unknown class 'LV'"):
        _check_boundary_options(config_from_dict(FinetuneConfig, {"nsd_tolerance_per_class": {"LV": 1.0}}), NAMES)
    with pytest.raises(ConfigError, match="paper protocol"):
        _check_boundary_options(config_from_dict(FinetuneConfig, {"protocol": "paper", "distances": "surface"}), NAMES)


def test_reevaluation_goes_beside_a_run_of_another_definition(tmp_path):
    from medssl.evaluation.run import _out_dir

    std = {"protocol": "standard"}
    assert _out_dir(tmp_path, std, {"distances": None}, "standard", "surface") == tmp_path
    assert _out_dir(tmp_path, std, {}, "standard", "surface") == tmp_path / "eval-standard-surface"  # an old run
    assert _out_dir(tmp_path, std, {}, "standard", "medpy") == tmp_path
    assert _out_dir(tmp_path, std, {"distances": "medpy"}, "standard", "surface") == tmp_path / "eval-standard-surface"
    assert _out_dir(tmp_path, std, {}, "paper", "medpy") == tmp_path / "eval-paper"
