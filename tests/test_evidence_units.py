"""benchmarks/evidence_units.py: the evidence in units that end within a sitting, and a bundle restored."""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil

import pytest
from conftest import REPO
from test_replicate_grid import GRID

from medssl.benchmark import run_benchmark
from medssl.engine.rundir import is_done
from medssl.reporting.bundle import export_bundle

spec = importlib.util.spec_from_file_location("evidence_units", REPO / "benchmarks" / "evidence_units.py")
assert spec is not None and spec.loader is not None
units = importlib.util.module_from_spec(spec)
spec.loader.exec_module(units)


def test_a_unit_is_its_pretraining_and_every_finetuning_that_needs_it(tmp_path):
    """MS-CMRSeg's SuperCL seed 0, nothing run: the 1200-step pre-training and five fine-tunings
    (500 and 150 standard, 750 paper, 500 and 150 with the chosen transfer); Scratch has no pre-training."""
    choice = REPO / "benchmarks" / "results" / "cpu" / "evidence_transfer" / "choice.json"
    (tmp_path / "transfer").mkdir()
    shutil.copy(choice, tmp_path / "transfer" / "choice.json")
    sets = units.grid_sets("mscmrseg", str(tmp_path))
    assert [s.split("=")[0] for s in sets] == ["variants.transfer500", "variants.transfer150"]
    rates = {"supercl": 2.0, "finetune": 3.0}
    got = units.unit_seconds("mscmrseg", sets, str(tmp_path), "supercl", 0, rates)
    assert got == 1200 * 2.0 + (500 + 150 + 750 + 500 + 150) * 3.0
    assert units.unit_seconds("mscmrseg", sets, str(tmp_path), "scratch", 0, rates) == (500 + 150 + 750) * 3.0


def test_restore_copies_the_finished_runs_of_an_intact_bundle(tmp_path):
    (tmp_path / "grid.yaml").write_text(GRID)
    runs = tmp_path / "runs" / "evidence_mscmrseg"
    run_benchmark(tmp_path / "grid.yaml", runs, only=["method=simclr,seed=0"])
    unfinished = runs / "finetune" / "simclr__syn__2__s0"
    info = json.loads((unfinished / "run.json").read_text())
    (unfinished / "run.json").write_text(json.dumps({**info, "status": "running"}))
    export_bundle(runs, tmp_path / "bundle")
    args = argparse.Namespace(grid="mscmrseg", out=str(tmp_path / "new"), bundle=str(tmp_path / "bundle"))
    units.restore(args)
    back = tmp_path / "new" / "evidence_mscmrseg"
    assert (
        is_done(back / "pretrain" / "simclr__syn__s0")
        and not (back / "pretrain" / "simclr__syn__s0" / "pretrain.pt").exists()
    )
    assert not (back / "finetune").exists()  # the unfinished cell is run again, not restored
    assert list((back / "commands").glob("*.json"))
    units.restore(args)  # again: nothing is overwritten
    summary = tmp_path / "bundle" / "pretrain" / "simclr__syn__s0" / "run.json"
    summary.write_text(summary.read_text() + " ")
    with pytest.raises(SystemExit, match="not intact: pretrain/simclr__syn__s0/run.json: changed since export"):
        units.restore(args)


def test_export_replaces_a_bundle_only_when_runs_holds_all_its_finished_runs(tmp_path):
    (tmp_path / "grid.yaml").write_text(GRID)
    runs = tmp_path / "runs" / "evidence_mscmrseg"
    run_benchmark(tmp_path / "grid.yaml", runs, only=["method=scratch,seed=0"])
    bundle = tmp_path / "bundle"
    args = argparse.Namespace(grid="mscmrseg", out=str(tmp_path / "runs"), bundle=str(bundle))
    units.export(args)
    assert [str(r) for r in units.finished_runs(bundle)] == ["finetune/scratch__syn__2__s0"]
    shutil.rmtree(tmp_path / "runs")  # a new machine, nothing restored: exporting would lose the run
    run_benchmark(tmp_path / "grid.yaml", runs, only=["method=scratch,seed=1"])
    with pytest.raises(SystemExit, match="not replaced, 1 of its finished runs are not in .*restore first"):
        units.export(args)
    assert [str(r) for r in units.finished_runs(bundle)] == ["finetune/scratch__syn__2__s0"]  # untouched
    units.restore(argparse.Namespace(grid="mscmrseg", out=str(tmp_path / "runs"), bundle=str(bundle)))
    units.export(args)
    assert [str(r) for r in units.finished_runs(bundle)] == [
        "finetune/scratch__syn__2__s0",
        "finetune/scratch__syn__2__s1",
    ]
    assert not (tmp_path / "bundle.old").exists()
