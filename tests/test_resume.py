"""Interrupted jobs: a fine-tuning process killed with SIGKILL resumes from its last complete epoch
and finishes with the same metrics as an uninterrupted run (CPU, deterministic mode); a benchmark
grid rerun skips its finished cells."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch


def _cmd(store: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "medssl.cli.main",
        "finetune",
        "--data",
        str(store),
        "--out",
        str(out),
        "--labels",
        "50%",
        "--epochs",
        "8",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--deterministic",
        "--no-progress",
        "--set",
        "model.base_width=4",
        "--set",
        "train.val_every=1",
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def test_sigkill_then_rerun_gives_the_same_metrics(synthetic_store, tmp_path):
    ref = subprocess.run(
        _cmd(synthetic_store, tmp_path / "ref"), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert ref.returncode == 0, ref.stderr[-2000:]

    run = tmp_path / "killed"
    proc = subprocess.Popen(
        _cmd(synthetic_store, run), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ckpt = run / "checkpoint_latest.pt"
    deadline = time.time() + 240
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if ckpt.is_file():
            try:
                epoch = torch.load(ckpt, weights_only=False)["epoch"]
            except Exception:
                continue
            if epoch >= 2:
                proc.send_signal(signal.SIGKILL)
                killed_at = epoch
                break
        time.sleep(0.05)
    proc.wait(30)
    if killed_at is None:
        pytest.fail("the run finished before it could be killed; make it longer")
    assert not (run / "summary.json").exists()

    again = subprocess.run(_cmd(synthetic_store, run), env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    log_rows = (run / "log.csv").read_text().strip().splitlines()[1:]
    assert [r.split(",")[0] for r in log_rows] == [str(e) for e in range(8)]  # no epoch lost or repeated
    assert (run / "metrics.csv").read_text() == (tmp_path / "ref" / "metrics.csv").read_text()


def test_benchmark_rerun_skips_finished_cells(tmp_path):
    from medssl.benchmark import run_benchmark
    from medssl.demo import demo_config_path

    quick = [
        "datasets=[{name: synthetic, dataset: synthetic, src: builtin, prepare: {reader_options: {n_patients: 5, frames: 1, slices: 6, size: 32, seed: 0}}}]",
        "pretrain.train.max_steps=2",
        "pretrain.train.epochs=1",
        "pretrain.data.image_size=32",
        "pretrain.data.batch_size=4",
        "pretrain.model.base_width=4",
        "finetune.model.base_width=4",
        "finetune.train.max_steps=2",
        "finetune.train.epochs=1",
        "finetune.data.image_size=32",
        "pretrain.train.device=cpu",
        "finetune.train.device=cpu",
        "pretrain.train.progress=false",
        "finetune.train.progress=false",
        "seeds=[0, 1]",
        "methods=[scratch, supercl]",
    ]
    cells = run_benchmark(demo_config_path(), tmp_path, dry_run=True, overrides=quick)
    assert cells.splitlines()[-1] == "4 of 4 cells"
    half = run_benchmark(demo_config_path(), tmp_path, cells="0/2", overrides=quick, report=False)
    assert "2 cells run" in half
    rest = run_benchmark(demo_config_path(), tmp_path, overrides=quick)
    assert "2 cells run, 2 already done" in rest and "report:" in rest
    assert (tmp_path / "report" / "results.md").is_file()
    assert len(list((tmp_path / "pretrain").iterdir())) == 2  # SuperCL pre-trained once per seed
    assert "compute:" in rest and "over 6 timed runs" in rest  # 2 pre-trainings + 4 fine-tunings
    run = json.loads(next((tmp_path / "finetune").iterdir()).joinpath("run.json").read_text())
    assert run["wall_s"] > 0 and run["started_at"] <= run["finished_at"]


def test_wall_time_counts_every_attempt_up_to_its_last_checkpoint(tmp_path: Path) -> None:
    """A resumed run's ``wall_s_total`` adds what earlier attempts spent on the work it keeps."""
    from datetime import datetime

    from medssl.config import FinetuneConfig
    from medssl.engine.rundir import init_run_dir, mark_done, read_run

    out = tmp_path / "run"
    init_run_dir(out, FinetuneConfig(), "finetune", "cpu")
    first = read_run(out)
    assert first is not None and first["earlier_attempts_s"] == 0.0
    began = datetime.fromisoformat(first["attempt_started_at"]).timestamp()
    (out / "checkpoint_latest.pt").write_bytes(b"x")
    os.utime(out / "checkpoint_latest.pt", (began + 100, began + 100))  # its last save, 100 s in
    init_run_dir(out, FinetuneConfig(), "finetune", "cpu")  # interrupted, then resumed
    assert read_run(out)["earlier_attempts_s"] == 100.0
    os.utime(out / "checkpoint_latest.pt", (time.time() - 1, time.time() - 1))
    init_run_dir(out, FinetuneConfig(), "finetune", "cpu")  # resumed again: the second attempt adds its
    again = read_run(out)["earlier_attempts_s"]  # seconds up to its checkpoint (0 if it predates the attempt)
    assert 100.0 <= again <= 105.0
    mark_done(out)
    done = read_run(out)
    assert done["wall_s_total"] == pytest.approx(done["wall_s"] + again, abs=0.11)
