"""Evaluation: arrays -> rows -> files, and NIfTI folders with their one-line errors."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from medssl.errors import DataError
from medssl.evaluation.evaluate import (
    ROW_COLUMNS,
    evaluate_arrays,
    evaluate_folders,
    format_summary_table,
    write_results,
)
from medssl.evaluation.metrics import case_metrics

nib = pytest.importorskip("nibabel")

NAMES = ("background", "liver", "kidney")


def _case(shift: int = 0, kidney: bool = True) -> tuple[np.ndarray, np.ndarray]:
    gt = np.zeros((3, 12, 10), np.uint8)
    gt[:, 2:7, 2:6] = 1
    if kidney:
        gt[1:, 8:11, 6:9] = 2
    pred = np.roll(gt, shift, axis=2)
    return pred, gt


def _save(path: Path, dhw: np.ndarray, spacing=(2.0, 0.5, 0.75), dtype=np.uint8) -> None:
    """Write a (D, H, W) array as NIfTI (X, Y, Z) with zooms (sx, sy, sz)."""
    sz, sy, sx = spacing
    img = nib.Nifti1Image(np.ascontiguousarray(dhw.transpose(2, 1, 0)).astype(dtype), np.diag([sx, sy, sz, 1.0]))
    img.header.set_zooms((sx, sy, sz))
    nib.save(img, str(path))


def test_evaluate_arrays_rows_match_case_metrics():
    p1, g1 = _case(1)
    p2, g2 = _case(0, kidney=False)
    res = evaluate_arrays([("a", p1, g1, (2.0, 0.5, 0.75)), ("b", p2, g2, (2.0, 0.5, 0.75))], NAMES)
    assert [(r["case_id"], r["class_name"]) for r in res.rows] == [
        ("a", "liver"),
        ("a", "kidney"),
        ("b", "liver"),
        ("b", "kidney"),
    ]
    expected = case_metrics(p1, g1, NAMES, (2.0, 0.5, 0.75))
    for m in ("dsc", "jc", "hd95", "asd", "assd", "tp"):
        assert res.rows[0][m] == expected[0][m]
    assert res.rows[3]["gt_empty"] and res.rows[3]["pred_empty"] and math.isnan(res.rows[3]["dsc"])
    kidney = res.summary[1]
    assert kidney["n_gt_empty"] == 1 and kidney["dsc_n_valid"] == 1 and kidney["dsc_n_empty"] == 1
    assert kidney["dsc_mean"] == pytest.approx(res.rows[1]["dsc"])
    with pytest.raises(ValueError, match="^c: prediction: label value 6 not in 0..2"):
        evaluate_arrays([("c", p1 * 3, g1, None)], NAMES)


def test_write_results_files(tmp_path):
    p1, g1 = _case(1)
    p2, g2 = _case(0, kidney=False)
    res = evaluate_arrays([("a", p1, g1, (2.0, 0.5, 0.75)), ("b", p2, g2, (2.0, 0.5, 0.75))], NAMES)
    paths = write_results(res, tmp_path / "out")
    assert set(paths) == {"metrics_csv", "summary_csv", "summary_md", "summary_json"}
    with open(paths["metrics_csv"]) as fh:
        lines = list(csv.DictReader(fh))
    assert tuple(lines[0]) == ROW_COLUMNS
    assert len(lines) == 4 and {r["protocol"] for r in lines} == {"standard"}
    assert float(lines[0]["dsc"]) == res.rows[0]["dsc"]  # full precision
    assert lines[3]["dsc"] == "nan" and lines[3]["gt_empty"] == "1"
    with open(paths["summary_csv"]) as fh:
        summary = list(csv.DictReader(fh))
    assert [r["class_name"] for r in summary] == ["liver", "kidney", "mean"]
    doc = json.loads(paths["summary_json"].read_text())  # strict JSON: NaN written as null
    assert doc["protocol"] == "standard" and doc["class_names"] == list(NAMES)
    assert doc["metric_per_case"][3]["dsc"] is None
    assert doc["summary"][2]["dsc_mean"] == pytest.approx(res.summary[2]["dsc_mean"])
    assert doc["mean"]["dsc"] == pytest.approx(res.summary[2]["dsc_mean"])
    assert doc["per_class"]["kidney"]["hd95"] == pytest.approx(res.summary[1]["hd95_mean"])
    md = paths["summary_md"].read_text()
    mean = res.summary[2]
    assert f"| mean | 2 | {mean['dsc_mean']:.4f} ± {mean['dsc_std']:.4f} |" in md
    assert "| kidney | 2 |" in md


def test_format_summary_table():
    p, g = _case(1)
    res = evaluate_arrays([("a", p, g, 1.0)], NAMES, protocol="paper")
    text = format_summary_table(res.summary)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["class", "cases", "DSC"]
    assert lines[2].startswith("mean") and lines[3].startswith("liver") and lines[4].startswith("kidney")
    assert f"{res.summary[0]['dsc_mean']:.4f}" in lines[3]
    assert format_summary_table([]) == ""


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    pd, gd = tmp_path / "pred", tmp_path / "gt"
    pd.mkdir()
    gd.mkdir()
    for i, shift in enumerate((0, 1, 2)):
        p, g = _case(shift)
        _save(pd / f"case_{i}.nii.gz", p)
        _save(gd / f"case_{i}.nii.gz", g, dtype=np.float64)  # float labels as CHAOS stores them
    return pd, gd


def test_evaluate_folders_matches_arrays(tmp_path):
    pd, gd = _folders(tmp_path)
    res = evaluate_folders(pd, gd, NAMES, protocol="standard")
    ref = evaluate_arrays([(f"case_{i}", *_case(s), (2.0, 0.5, 0.75)) for i, s in enumerate((0, 1, 2))], NAMES)
    assert [r["case_id"] for r in res.rows] == [r["case_id"] for r in ref.rows]
    for a, b in zip(res.rows, ref.rows):
        for m in ("dsc", "hd95", "asd", "assd", "tp", "fp", "fn"):
            assert a[m] == pytest.approx(b[m], abs=1e-6), m
    assert res.rows[2]["hd95"] == pytest.approx(0.75)  # a one-voxel shift along x (0.75 mm)
    inferred = evaluate_folders(pd, gd)  # class names inferred from the largest label
    assert inferred.class_names == ("background", "class_1", "class_2")


def test_evaluate_folders_label_map(tmp_path):
    pd, gd = tmp_path / "pred", tmp_path / "gt"
    pd.mkdir()
    gd.mkdir()
    p, g = _case(1)
    _save(pd / "x.nii.gz", p)
    _save(gd / "x.nii", np.choose(g, [0, 63, 126]).astype(np.uint8))  # raw CHAOS-style values
    res = evaluate_folders(pd, gd, NAMES, label_map={0: 0, 63: 1, 126: 2})
    ref = case_metrics(p, g, NAMES, (2.0, 0.5, 0.75))
    assert [r["dsc"] for r in res.rows] == pytest.approx([r["dsc"] for r in ref])
    with pytest.raises(DataError, match=r"x\.nii: label value 126 not in the label map"):
        evaluate_folders(pd, gd, NAMES, label_map={0: 0, 63: 1})


def test_evaluate_folders_errors(tmp_path):
    pd, gd = _folders(tmp_path)
    (gd / "case_1.nii.gz").rename(gd / "other.nii.gz")
    with pytest.raises(DataError) as err:
        evaluate_folders(pd, gd, NAMES)
    assert str(err.value).startswith(str(pd / "case_1.nii.gz") + ": no ground truth")
    assert "\n" not in str(err.value)
    (gd / "other.nii.gz").rename(gd / "case_1.nii.gz")

    p, _g = _case(0)
    _save(pd / "case_1.nii.gz", p[:, :, :8])
    with pytest.raises(
        DataError, match=r"case_1\.nii\.gz: shape \(3, 12, 8\) .*does not match the ground truth \(3, 12, 10\)"
    ):
        evaluate_folders(pd, gd, NAMES)
    _save(pd / "case_1.nii.gz", p, spacing=(2.0, 0.5, 0.8))
    with pytest.raises(DataError, match=r"case_1\.nii\.gz: spacing .* does not match"):
        evaluate_folders(pd, gd, NAMES)
    _save(pd / "case_1.nii.gz", p * 2)  # labels 0, 2, 4
    with pytest.raises(DataError, match=r"pred/case_1\.nii\.gz: label value 4 not in the classes 0\.\.2"):
        evaluate_folders(pd, gd, NAMES)
    _save(pd / "case_1.nii.gz", p.astype(np.float32) + 0.5, dtype=np.float32)
    with pytest.raises(DataError, match=r"case_1\.nii\.gz: label value 0\.5 is not an integer"):
        evaluate_folders(pd, gd, NAMES)
    (pd / "case_1.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(DataError, match=r"case_1\.nii\.gz: .*not a readable NIfTI"):
        evaluate_folders(pd, gd, NAMES)
    _save(pd / "case_1.nii.gz", p)
    whole = (pd / "case_1.nii.gz").read_bytes()
    (pd / "case_1.nii.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"case_1\.nii\.gz: corrupt or truncated gzip data"):
        evaluate_folders(pd, gd, NAMES)
    _save(pd / "case_1.nii.gz", p[:0])
    with pytest.raises(DataError, match=r"case_1\.nii\.gz: zero-size volume"):
        evaluate_folders(pd, gd, NAMES)
    with pytest.raises(DataError, match="not a folder"):
        evaluate_folders(tmp_path / "missing", gd, NAMES)


def test_distance_units_in_every_summary(tmp_path):
    """mm with a known spacing, voxels without one (said in every output), px under the paper protocol."""
    from medssl.evaluation import SPACING_UNKNOWN_NOTE, distance_unit

    assert (distance_unit("standard"), distance_unit("standard", False), distance_unit("paper", False)) == (
        "mm",
        "voxels",
        "px",
    )
    p, g = _case(1)
    known = evaluate_arrays([("a", p, g, (2.0, 0.5, 0.75))], NAMES)
    assert known.distance_unit == "mm" and {r["distance_unit"] for r in known.summary} == {"mm"}
    text = format_summary_table(known.summary)
    assert "HD95 (mm)" in text.splitlines()[0] and "DSC " in text and SPACING_UNKNOWN_NOTE not in text
    unknown = evaluate_arrays([("a", p, g, (1.0, 1.0, 1.0))], NAMES, spacing_known=False)
    assert unknown.distance_unit == "voxels" and unknown.summary[0]["hd95_mean"] == pytest.approx(1.0)
    lines = format_summary_table(unknown.summary).splitlines()
    assert "HD95 (voxels)" in lines[0] and "ASSD (voxels)" in lines[0] and lines[-1] == SPACING_UNKNOWN_NOTE
    paths = write_results(unknown, tmp_path / "u")
    doc = json.loads(paths["summary_json"].read_text())
    assert doc["spacing_known"] is False and doc["distance_unit"] == "voxels" and doc["notes"] == [SPACING_UNKNOWN_NOTE]
    md = paths["summary_md"].read_text()
    assert SPACING_UNKNOWN_NOTE in md and "| HD95 (voxels) |" in md
    with open(paths["summary_csv"]) as fh:
        assert {r["distance_unit"] for r in csv.DictReader(fh)} == {"voxels"}
    assert evaluate_arrays([("a", p, g, None)], NAMES).distance_unit == "voxels"  # no spacing given: voxels
    assert evaluate_arrays([("a", p, g, 1.0)], NAMES, protocol="paper", spacing_known=False).distance_unit == "px"
