"""The report's table of pre-training diagnostics (random init against pre-trained, over seeds),
on hand-made ``diagnostics.json`` files with known answers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from medssl.reporting import report
from medssl.reporting.pretrain_diagnostics import diagnostic_rows, diagnostics_csv_rows, diagnostics_markdown
from medssl.reporting.tables import PretrainRecord


def _pretrain(root: Path, name: str, method: str, initial: dict | None, final: dict | None) -> PretrainRecord:
    folder = root / "pretrain" / name
    folder.mkdir(parents=True)
    info = {"kind": "pretrain", "method": method, "dataset": "mscmrseg"}
    (folder / "run.json").write_text(json.dumps(info))
    if initial is not None:
        (folder / "diagnostics.json").write_text(json.dumps({"initial": initial, "final": final}))
    return PretrainRecord(folder, method, "mscmrseg", info)


def test_rows_average_over_seeds_and_count_the_better_direction(tmp_path: Path) -> None:
    recs = [
        _pretrain(
            tmp_path,
            "macl_s0",
            "macl",
            {"linear_probe_dice": 0.30, "knn_position_mae": 0.13},
            {"linear_probe_dice": 0.20, "knn_position_mae": 0.05},
        ),
        _pretrain(
            tmp_path,
            "macl_s1",
            "macl",
            {"linear_probe_dice": 0.20, "knn_position_mae": 0.12},
            {"linear_probe_dice": 0.25, "knn_position_mae": 0.10},
        ),
        _pretrain(
            tmp_path,
            "macl_s2",
            "macl",
            {"linear_probe_dice": 0.25, "knn_position_mae": "nan"},
            {"linear_probe_dice": 0.15},
        ),
        _pretrain(tmp_path, "pcl_s0", "pcl", None, None),  # an older run without diagnostics: left out silently
    ]
    bad = tmp_path / "pretrain" / "pcl_s0" / "diagnostics.json"
    notes: list[str] = []
    assert diagnostic_rows(recs, notes) != [] and notes == []
    bad.write_text('{"initial": 1')  # cut short
    rows = diagnostic_rows(recs, notes)
    assert len(notes) == 1 and str(bad) in notes[0] and "unreadable diagnostics" in notes[0]
    by = {r.diagnostic: c for r, c in zip(rows, diagnostics_csv_rows(rows))}
    assert [r.method for r in rows] == ["macl", "macl"] and list(by) == ["knn_position_mae", "linear_probe_dice"]
    probe = by["linear_probe_dice"]
    assert probe["runs"] == 3 and probe["initial"] == pytest.approx(0.25) and probe["final"] == pytest.approx(0.2)
    assert probe["change"] == pytest.approx(-0.05)
    assert (probe["change_min"], probe["change_max"]) == (pytest.approx(-0.10), pytest.approx(0.05))
    assert probe["runs_better"] == 1
    knn = by["knn_position_mae"]  # seed 2's NaN / missing value leaves it out; lower is better
    assert knn["runs"] == 2 and knn["change"] == pytest.approx(-0.05) and knn["runs_better"] == 2
    md = diagnostics_markdown(rows)
    assert "| mscmrseg | MACL | linear_probe_dice | 3 | 0.250 | 0.200 | -0.050 (-0.100, +0.050) | 1 of 3 |" in md
    assert diagnostics_markdown([]).startswith("_No pre-training run")


def test_report_writes_the_diagnostics_table_only_when_there_are_diagnostics(tmp_path: Path) -> None:
    grid = tmp_path / "grid"  # a folder with one pre-training run and no fine-tuning is reported too
    _pretrain(grid, "supercl", "supercl", None, None)
    first = report(grid, out_dir=tmp_path / "rep0", figures=False)
    assert "pretrain_diagnostics_csv" not in first.files and "What pre-training learned" not in first.markdown
    (grid / "pretrain" / "supercl" / "diagnostics.json").write_text(
        json.dumps({"initial": {"linear_probe_dice": 0.5}, "final": {"linear_probe_dice": 0.3}})
    )
    res = report(grid, out_dir=tmp_path / "rep1", figures=False)
    with open(res.files["pretrain_diagnostics_csv"], newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["method"] == "supercl" and float(row["change"]) == pytest.approx(-0.2) and row["runs_better"] == "0"
    assert "## What pre-training learned: diagnostics at random init and after" in res.markdown
    assert "| mscmrseg | SuperCL | linear_probe_dice | 1 | 0.500 | 0.300 |" in res.markdown
