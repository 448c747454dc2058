"""Curve figures draw only what their data hold: no point with fewer seeds than the legend says, no
empty figure, and pre-training loss windows that use every step where the log has them."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medssl.errors import DataError
from medssl.reporting.figures import (
    _full_band,
    plot_pretrain_curves,
    plot_validation_curves,
    read_validation_curves,
    validation_curve_series,
)
from medssl.reporting.pretrain_losses import loss_windows, pretrain_loss_windows
from medssl.reporting.tables import PretrainRecord

REPO = Path(__file__).resolve().parents[1]


def _rows(spec: list[tuple[str, int, float, int]]) -> list[dict[str, str]]:
    return [
        {"method": m, "step": str(s), "val_dice_mean": str(v), "val_dice_std": "0.01" if n > 1 else "", "n": str(n)}
        for m, s, v, n in spec
    ]


def test_validation_series_leave_out_steps_not_every_seed_scored() -> None:
    # one seed validated at step 50, the two others (longer epochs) first at 52
    rows = _rows([("A", 100, 0.5, 3), ("A", 50, 0.2, 1), ("A", 52, 0.25, 3), ("B", 50, 0.3, 2), ("B", 100, 0.6, 2)])
    a, b = validation_curve_series(rows)
    assert (a.method, a.n, a.steps.tolist(), a.left_out) == ("A", 3, [52.0, 100.0], (50,))
    assert a.mean.tolist() == [0.25, 0.5]
    assert (b.method, b.n, b.steps.tolist(), b.left_out) == ("B", 2, [50.0, 100.0], ())


def test_full_band_keeps_only_steps_every_seed_covers() -> None:
    xs, mean, std = _full_band([{50.0: 0.2, 100.0: 0.4}, {52.0: 0.3, 102.0: 0.5}])
    assert xs.tolist() == [52.0, 100.0]  # 50 (first seed only) and 102 (second only) left out
    assert mean[0] == pytest.approx((0.2 + 0.2 * 2 / 50 + 0.3) / 2) and np.isfinite(std).all()


def test_plot_validation_curves_writes_a_png_or_refuses(tmp_path: Path) -> None:
    rows = _rows([("A", 50, 0.2, 1), ("A", 52, 0.25, 3), ("A", 100, 0.5, 3)])
    res = plot_validation_curves(rows, tmp_path / "c.png", title="t")
    assert res.path is not None and res.path.stat().st_size > 1000
    # one step per method: nothing to draw a line through
    empty = plot_validation_curves(_rows([("A", 50, 0.2, 3)]), tmp_path / "e.png")
    assert empty.path is None and "nothing to draw" in empty.notes[0]
    assert not (tmp_path / "e.png").exists()


def test_read_validation_curves_names_the_file_and_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "v.csv"
    bad.write_text("method,step\nA,50\n")
    with pytest.raises(DataError, match=r"v\.csv: .*missing column\(s\) val_dice_mean, val_dice_std, n"):
        read_validation_curves(bad)
    with pytest.raises(DataError, match="no such file"):
        read_validation_curves(tmp_path / "absent.csv")


def test_plot_validation_curves_script_on_a_shipped_file(tmp_path: Path) -> None:
    src = REPO / "benchmarks" / "results" / "cpu" / "chaos_grid" / "finetune_150_steps" / "validation_curves.csv"
    out = tmp_path / "fig.png"
    cmd = [sys.executable, str(REPO / "benchmarks" / "plot_validation_curves.py"), str(src), str(out), "--title", "x"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and "left out: step 50" in proc.stdout
    bad = subprocess.run([*cmd[:2], str(tmp_path / "none.csv"), str(out)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "none.csv: no such file" in bad.stderr and "Traceback" not in bad.stderr


def _pretrain(folder: Path, log_rows: list[dict[str, object]], steps_rows: list[dict[str, object]] | None = None):
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"kind": "pretrain", "method": "supercl", "dataset": "d"}))
    for name, rows in (("log.csv", log_rows), ("steps.csv", steps_rows)):
        if rows:
            with open(folder / name, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
    return PretrainRecord(folder, "supercl", "d", {})


def test_pretrain_curves_refuse_a_log_with_one_step(tmp_path: Path) -> None:
    # a 200-step pre-training of one epoch logs one row: the figure would be an empty frame
    rec = _pretrain(tmp_path / "one", [{"epoch": 0, "step": 200, "lr": 0.01, "train_loss": 9.0, "train_ins": 4.3}])
    res = plot_pretrain_curves(rec, tmp_path / "one.png")
    assert res.path is None and "one step" in res.notes[0] and not (tmp_path / "one.png").exists()
    two = _pretrain(
        tmp_path / "two", [{"epoch": e, "step": 100 * (e + 1), "lr": 0.01, "train_loss": 9.0 - e} for e in range(2)]
    )
    assert plot_pretrain_curves(two, tmp_path / "two.png").path is not None


def test_loss_windows_spans_weight_epoch_means_by_overlap() -> None:
    # epochs of 40 steps, 120 steps in all, windows of 0.25 * 120 = 30 steps
    log = [{"step": "40", "train_loss": "3"}, {"step": "80", "train_loss": "2"}, {"step": "120", "train_loss": "1"}]
    # (0, 30] inside epoch 1; (60, 90]: 20 steps of epoch 2, 10 of epoch 3; (90, 120] inside epoch 3
    assert loss_windows(log, 0.25, prefix="train_", spans=True) == {"loss": (120, 3.0, pytest.approx(5 / 3), 1.0)}
    # as points, (0, 30] holds no row at all
    start = loss_windows(log, 0.25, prefix="train_")["loss"][1]
    assert np.isnan(start)


def test_pretrain_loss_windows_prefer_every_step_over_sampled_batches(tmp_path: Path) -> None:
    # the epoch means fall steadily; the batches logged every 10 steps happen to sit low mid-run
    log = [{"epoch": e, "step": 10 * (e + 1), "train_loss": 10 - 0.1 * e} for e in range(24)]
    steps = [{"step": 10 * (e + 1), "epoch": e, "loss": 8.0 if 12 <= e < 14 else 10 - 0.1 * e} for e in range(24)]
    (row,) = pretrain_loss_windows([_pretrain(tmp_path / "short", log, steps)], window=1 / 12)
    assert (row.start, row.middle, row.end) == (pytest.approx(9.95), pytest.approx(8.75), pytest.approx(7.75))
    # epochs longer than a window: the sampled batches are all there is at that resolution
    long_log = [{"epoch": e, "step": 120 * (e + 1), "train_loss": 10 - e} for e in range(2)]
    (row2,) = pretrain_loss_windows([_pretrain(tmp_path / "long", long_log, steps)], window=1 / 12)
    assert row2.middle == pytest.approx(8.0)
