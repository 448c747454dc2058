"""benchmarks/evidence_units.py: the evidence in units that end within a sitting, and a bundle restored."""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
from datetime import datetime

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


def test_a_unit_is_its_pretraining_and_every_finetuning_that_needs_it(tmp_path, shared_data, monkeypatch):
    """MS-CMRSeg's SuperCL seed 0, nothing run: the 1200-step pre-training and five fine-tunings
    (500 and 150 standard, 750 paper, 500 and 150 with the chosen transfer); Scratch has no pre-training."""
    grid = (REPO / units.CONFIGS["mscmrseg"]).read_text().replace("../shared/data", str(shared_data))
    (tmp_path / "grid.yaml").write_text(grid)  # the grid's data wherever this checkout lies
    monkeypatch.setitem(units.CONFIGS, "mscmrseg", str(tmp_path / "grid.yaml"))
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


def _plan(method: str, seed: int, variant: str | None, steps: int, pre_dir=None, pre_steps: int = 100):
    from types import SimpleNamespace as NS

    pre = None if pre_dir is None else NS(method=method, train=NS(max_steps=pre_steps))
    out = f"/nonexistent/{method}_s{seed}_{variant}"  # never started: all its steps to make
    return NS(finetune=NS(train=NS(max_steps=steps), out=out), variant=variant, pretrain=pre, pretrain_dir=pre_dir)


def test_pick_takes_whole_units_that_fit_then_fills_the_tail_with_cells_that_need_no_pretraining(tmp_path):
    """Rates: 1 s per fine-tuning step, 2 s per pre-training step. MACL s0 (its pre-training not made,
    200 s, and two cells of 100 and 50 s: 350 s); Scratch s0 (cells of 100 and 50 s); PCL s0 (weights
    there: its cells of 40 s need no pre-training)."""
    made = tmp_path / "pcl_s0"
    made.mkdir()
    (made / "run.json").write_text(json.dumps({"status": "done"}))
    (made / "pretrain.pt").write_bytes(b"w")
    cells = {
        ("macl", 0): [
            _plan("macl", 0, None, 100, tmp_path / "macl_s0"),
            _plan("macl", 0, "short", 50, tmp_path / "macl_s0"),
        ],
        ("scratch", 0): [_plan("scratch", 0, None, 100), _plan("scratch", 0, "short", 50)],
        ("pcl", 0): [_plan("pcl", 0, "short", 40, made)],
        ("pcl", 1): [],
    }
    rates = {"macl": 2.0, "finetune": 1.0}
    units_left = [("macl", 0), ("scratch", 0), ("pcl", 0), ("pcl", 1)]
    taken: set = set()

    def todo(m, s):
        return [p for p in cells[(m, s)] if (m, s, p.variant or "-") not in done]

    done: set = set()
    assert units.pick(units_left, todo, rates, 400, taken) == (("macl", 0, None), 350.0)
    taken.add(("macl", 0, None))
    assert units.pick(units_left, todo, rates, 120, taken) == (("pcl", 0, None), 40.0)  # its weights are there
    taken.add(("pcl", 0, None))
    # 120 s left: Scratch's unit (150 s) does not fit, its cells do; MACL's are not offered (given out whole)
    assert units.pick(units_left, todo, rates, 120, taken) == (("scratch", 0, "-"), 100.0)
    assert units.pick(units_left, todo, rates, 120, taken) == (("scratch", 0, "short"), 50.0)
    assert units.pick(units_left, todo, rates, 120, taken) is None  # all given out
    assert units_left == [("scratch", 0)]  # MACL and PCL s0 taken whole, PCL s1 had nothing left
    # a unit given out cell by cell is never given out whole as well
    done.add(("scratch", 0, "-"))
    assert units.pick(units_left, todo, rates, 1000, taken) is None
    # a cell whose pre-training is not made is never offered alone: only with that pre-training
    assert units.pick([("macl", 0)], todo, rates, 240, set()) is None  # 200 + 50 s do not fit


def test_a_tail_where_only_pretrainings_remain_takes_one_with_its_shortest_cell(tmp_path):
    """Rates as above. MACL s0: pre-training 200 s, cells 100 and 50 s (350 s whole); SuperCL s0:
    pre-training 300 s, one cell of 50 s. With 300 s left no unit fits whole and no cell is free of a
    pre-training: MACL's pre-training with its 50-s cell is given out; its other cell waits for the
    weights, and is then a free cell; SuperCL's (350 s) does not fit."""
    cells = {
        ("supercl", 0): [_plan("supercl", 0, None, 50, tmp_path / "supercl_s0", pre_steps=150)],
        ("macl", 0): [
            _plan("macl", 0, None, 100, tmp_path / "macl_s0"),
            _plan("macl", 0, "short", 50, tmp_path / "macl_s0"),
        ],
    }
    rates = {"supercl": 2.0, "macl": 2.0, "finetune": 1.0}
    units_left = [("supercl", 0), ("macl", 0)]
    taken: set = set()

    def todo(m, s):
        return cells[(m, s)]

    assert units.pick(units_left, todo, rates, 300, taken) == (("macl", 0, "short"), 250.0)
    assert taken == {("macl", 0, "short")}
    # while its pre-training runs, nothing of MACL s0 is given out again, whole, alone or with it
    assert units.pick(units_left, todo, rates, 1000, taken) == (("supercl", 0, None), 350.0)
    assert units.pick(units_left, todo, rates, 1000, taken) is None
    # once its weights are there, MACL's other cell is a free cell
    made = tmp_path / "macl_s0"
    made.mkdir()
    (made / "run.json").write_text(json.dumps({"status": "done"}))
    (made / "pretrain.pt").write_bytes(b"w")
    assert units.pick(units_left, todo, rates, 150, taken) == (("macl", 0, "-"), 100.0)
    assert units.pick(units_left, todo, rates, 150, taken) is None


def test_a_runner_started_again_leaves_what_live_processes_run(tmp_path):
    """A runner started while the previous one's children still run: a cell whose folder a live process
    locks is not to do; a unit whose pre-training a live process makes is given out neither whole nor
    with its pre-training (it would wait); a dead process's lock counts for nothing."""
    import os

    from medssl.utils.locks import LOCK_NAME, process_stamp

    held, dead = tmp_path / "macl_s0", tmp_path / "pcl_s0"
    for d, stamp in ((held, process_stamp(os.getpid())), (dead, "999999999 1 another-boot")):
        d.mkdir()
        (d / LOCK_NAME).write_text(stamp)
    cell = tmp_path / "cell"
    cell.mkdir()
    (cell / LOCK_NAME).write_text(process_stamp(os.getpid()))
    macl = [_plan("macl", 0, None, 100, held), _plan("macl", 0, "short", 50, held)]
    pcl = [_plan("pcl", 0, "short", 50, dead)]
    cells = {("macl", 0): macl, ("pcl", 0): pcl}
    rates = {"macl": 2.0, "pcl": 2.0, "finetune": 1.0}
    assert units.pretraining_held(macl) and not units.pretraining_held(pcl)
    assert units.pick([("macl", 0)], lambda m, s: cells[(m, s)], rates, 1000, set()) is None
    assert units.pick([("macl", 0), ("pcl", 0)], lambda m, s: cells[(m, s)], rates, 1000, set()) == (
        ("pcl", 0, None),
        250.0,
    )
    assert units.pick([("macl", 0)], lambda m, s: cells[(m, s)], rates, 280, set()) is None  # nor with its cell
    # unit_todo leaves out the cell being run
    from types import SimpleNamespace as NS

    plans = [NS(cell=NS(method="pcl", seed=0, dataset="d", labels="1"), variant=None, finetune=NS(out=str(cell)))]
    plans.append(
        NS(
            cell=NS(method="pcl", seed=0, dataset="d", labels="1"),
            variant="short",
            finetune=NS(out=str(tmp_path / "free")),
        )
    )
    assert [p.variant for p in units.unit_todo(plans, "pcl", 0)] == ["short"]


def test_busy_pids_are_the_live_lock_holders_anywhere_under_the_evidence_folder(tmp_path):
    import os

    from medssl.utils.locks import LOCK_NAME, process_stamp

    assert units.busy_pids(tmp_path) == set()
    for d, stamp in (
        ("evidence_chaos/pretrain/macl__chaos__s0", process_stamp(os.getpid())),
        ("evidence_mscmrseg/variants/v/finetune/cell", process_stamp(os.getpid())),
        ("evidence_chaos/pretrain/pcl__chaos__s0", "999999999 1 another-boot"),  # its process ended
        ("evidence_chaos/finetune/empty", ""),
    ):
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / LOCK_NAME).write_text(stamp)
    assert units.busy_pids(tmp_path) == {os.getpid()}


def test_a_runner_counts_processes_it_did_not_start_against_its_workers(tmp_path, monkeypatch):
    """One worker, a foreign process busy for the first two looks: the runner waits, then runs its two
    jobs one after the other; its own process's locks (its pid) never count as foreign."""
    import time
    from datetime import datetime
    from types import SimpleNamespace

    looks, ran = [], []
    foreign, live = iter([{4242}, {4242}]), set()

    def busy(folder):
        looks.append(len(ran))
        return next(foreign, set()) | live  # live: this runner's own child (pid 777) holding its lock

    def run_job(a, sets, u, mine, lock):
        with lock:
            mine.pids.add(777)
            live.add(777)
        assert busy(None) - mine.pids == set()  # its own lock is not a foreign process
        ran.append(u)
        with lock:
            mine.pids.discard(777)
            live.discard(777)
            mine.running -= 1
        return 0

    monkeypatch.setattr(units, "grid_sets", lambda grid, out: [])
    monkeypatch.setattr(units, "load_grid", lambda path: {"methods": ["pcl"]})
    monkeypatch.setattr(units, "grid_plans", lambda grid, sets, out: [])
    monkeypatch.setattr(units, "pick", lambda u, todo, rates, left, taken: ((*u.pop(0), None), 60.0) if u else None)
    monkeypatch.setattr(units, "busy_pids", busy)
    monkeypatch.setattr(units, "run_job", run_job)
    noon = datetime.combine(datetime.now().date(), datetime.min.time()).replace(hour=12).timestamp()
    monkeypatch.setattr(units, "time", SimpleNamespace(time=lambda: noon, sleep=time.sleep))  # --until is ahead
    a = argparse.Namespace(grid="mscmrseg", out=str(tmp_path), rates=[], until="23:59", seeds=[0, 1],
                           margin=1.0, workers=1, poll=0.01)  # fmt: skip
    assert units.run_units(a) == 0
    assert ran == [("pcl", 0, None), ("pcl", 1, None)]
    assert looks[:3] == [0, 0, 0]  # two looks found the core busy, the third started the first job


def test_a_started_run_is_estimated_from_its_last_logged_epoch_and_a_redo_in_full(tmp_path):
    """A fine-tuning at step 300 of 500 resumes there (200 steps); a pre-training whose record is
    finished but whose weights are missing is made again (all 100 steps); a finished one costs nothing."""
    run = tmp_path / "ft"
    run.mkdir()
    (run / "log.csv").write_text("epoch,step,lr,seconds\n0,150,0.1,200\n1,300,0.1,200\n")
    assert units.steps_to_make(run, 500) == 200
    assert units.steps_to_make(tmp_path / "never", 500) == 500
    redo = tmp_path / "pre"
    redo.mkdir()
    (redo / "run.json").write_text(json.dumps({"status": "done"}))
    (redo / "log.csv").write_text("epoch,step,lr,seconds\n0,100,0.1,100\n")
    assert units.steps_to_make(redo, 100) == 100
    plans = [_plan("macl", 0, None, 500, redo)]
    plans[0].finetune.out = str(run)
    assert units.todo_seconds(plans, {"macl": 2.0, "finetune": 1.0}) == 100 * 2.0 + 200 * 1.0
    (redo / "pretrain.pt").write_bytes(b"w")
    assert units.todo_seconds(plans, {"macl": 2.0, "finetune": 1.0}) == 200 * 1.0


def test_rates_given_win_over_those_the_grid_measured_which_win_over_the_defaults(monkeypatch):
    monkeypatch.setattr(units, "grid_rates", lambda plans: {"macl": 3.0, "finetune": 2.0})
    got = units.unit_rates([], {"finetune": 1.5})
    assert got == {**units.RATES, "macl": 3.0, "finetune": 1.5}


def test_until_is_the_next_coming_of_a_clock_time_or_a_date_and_time():
    late = datetime(2026, 12, 7, 23, 32)
    assert units.deadline("23:50", late) == datetime(2026, 12, 7, 23, 50).timestamp()
    # past midnight: 01:56 given at 23:32 is tomorrow's, not today's (which would start nothing)
    assert units.deadline("01:56", late) == datetime(2026, 12, 8, 1, 56).timestamp()
    assert units.deadline("23:32", late) == datetime(2026, 12, 8, 23, 32).timestamp()
    assert units.deadline("2026-12-08T00:30", late) == datetime(2026, 12, 8, 0, 30).timestamp()
    assert units.deadline("2026-12-08 00:30", late) == datetime(2026, 12, 8, 0, 30).timestamp()
    for bad in ("25:00", "tomorrow", "2026-13-01T00:00"):
        with pytest.raises(argparse.ArgumentTypeError, match="give HH:MM"):
            units.deadline(bad, late)
    with pytest.raises(argparse.ArgumentTypeError, match="that time is past"):
        units.deadline("2026-12-07T23:00", late)
