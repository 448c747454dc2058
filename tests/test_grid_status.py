"""`medssl benchmark --status`: done / started / pending runs, compute spent, and what is left."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medssl.benchmark import load_grid, run_benchmark, validate_grid
from medssl.cli.main import main
from medssl.grid_status import FINETUNE, RunProgress, _left_seconds, _rate, grid_rates, run_progress

GRID = (
    "name: t\nmethods: [scratch, simclr]\nlabels: ['2']\nseeds: [0, 1]\n"
    "datasets:\n  - {name: syn, dataset: synthetic, src: builtin, prepare: {reader_options: "
    "{n_patients: 5, frames: 1, slices: 6, size: 32, seed: 0}}}\n"
    "pretrain: {data: {image_size: 32, batch_size: 4, num_workers: 0}, model: {base_width: 4}, "
    "train: {epochs: 1, max_steps: 2, device: cpu, progress: false}}\n"
    "finetune: {data: {image_size: 32, batch_size: 4, num_workers: 0}, model: {base_width: 4}, "
    "train: {epochs: 1, max_steps: 1, device: cpu, progress: false}}\n"
)


def _log(run: Path, rows: list[tuple[int, float]], status: str | None = None, threads: int = 2) -> None:
    run.mkdir(parents=True)
    (run / "log.csv").write_text(
        "epoch,step,lr,seconds\n" + "".join(f"{i},{s},0.1,{t}\n" for i, (s, t) in enumerate(rows))
    )
    if status:
        (run / "run.json").write_text(json.dumps({"status": status, "environment": {"torch_threads": threads}}))


def test_run_progress_states_and_rate(tmp_path: Path) -> None:
    _log(tmp_path / "a", [(10, 20.0), (20, 20.0), (30, 200.0)], status="done")  # one paused epoch
    _log(tmp_path / "b", [(10, 30.0)], status="running", threads=1)
    a, b, c = (run_progress(tmp_path / n, 30) for n in "abc")
    assert (a.state, a.step, a.seconds, a.threads) == ("done", 30, 240.0, 2)
    assert a.epoch_rates == (2.0, 2.0, 20.0) and a.seconds_per_step == 2.0  # the median: the pause does not count
    assert (b.state, b.step, b.seconds_per_step) == ("started", 10, 3.0)
    assert _rate([a, b]) == 2.5  # the median of every epoch: 2, 2, 3, 20
    assert (c.state, c.step, c.seconds_per_step) == ("pending", 0, None)
    left, unknown = _left_seconds([a, b, c, RunProgress("pending", 0, None, 0.0, 1)], rate=2.0)
    assert left == pytest.approx((30 - 10) * 2.0 + 30 * 2.0) and unknown == 1  # no max_steps: not guessed


def test_status_of_a_grid_after_its_pretrainings(tmp_path: Path, capsys) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID)
    out = tmp_path / "b"
    text = run_benchmark(grid, out, status=True)
    assert (
        text.startswith("pre-trainings: 0 done, 0 started, 2 pending")
        and "fine-tunings: 0 done, 0 started, 4 pending" in text
    )
    run_benchmark(grid, out, pretrain_only=True)
    assert main(["benchmark", "--config", str(grid), "--out", str(out), "--status"]) == 0
    text = capsys.readouterr().out
    assert (
        "pre-trainings: 2 done, 0 started, 0 pending" in text and "fine-tunings: 0 done, 0 started, 4 pending" in text
    )
    assert "pre-training simclr" in text and "s/step" in text and "fine-tuning not measured" in text
    assert "left: not estimated yet: 4 runs not estimated" in text and "compute spent:" in text
    assert "left: about" not in text  # no number where nothing left is measured
    plans = validate_grid(load_grid(grid), out)
    rates = grid_rates(plans)  # what evidence_units.py estimates with: measured kinds only
    assert set(rates) == {"simclr"} and rates["simclr"] > 0 and FINETUNE not in rates
    # a bundle copied back brings the record of a pre-training without its weights: while a cell
    # still needs it, it is to be made again, and its steps count in what is left
    (out / "pretrain" / "simclr__syn__s0" / "pretrain.pt").unlink()
    text = run_benchmark(grid, out, status=True)
    assert "pre-trainings: 1 done, 0 started, 0 pending, 1 to make again (finished, but pretrain.pt is missing" in text
    assert "simclr__syn__s0" in text and " redo " in text
    assert "left: at least " in text and "; 4 runs not estimated" in text  # the redo is measured, the cells not
