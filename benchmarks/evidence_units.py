"""Issue 22's evidence grids in units that finish within one sitting, and a bundle copied back in.

A unit is one method and one seed: its pre-training and every fine-tuning that needs it (the grid's
cells and its variants), run by ``medssl benchmark ... --only method=M,seed=S``. A machine that is
lost (a session's end) takes its checkpoints with it; a unit that finished lost nothing, since its
fine-tunings are done and the bundle (``medssl report --export``) keeps their records. So:

    python benchmarks/evidence_units.py run --grid mscmrseg --seeds 0 1 2 3 4 --until 09:40
        two workers, one thread each, take the units in order (seed by seed, the costliest method
        first) and start only those whose estimated time ends before --until (then try smaller ones;
        at a sitting's tail, single cells, then a pre-training with its shortest cell: see pick)
    python benchmarks/evidence_units.py restore --grid mscmrseg --bundle benchmarks/results/cpu/evidence_mscmrseg
        copies the bundle's finished runs (the bundle verified first) into runs/evidence_<grid>
        where they are missing, so that the grid skips them; pre-trainings come back without weights
        and run again if a cell still needs them (medssl benchmark does so, with the same bytes on a CPU)
    python benchmarks/evidence_units.py export --grid mscmrseg --bundle benchmarks/results/cpu/evidence_mscmrseg
        the bundle made again from runs/evidence_<grid> (a sitting's end), refused if a finished run of
        the bundle it replaces is missing there (not restored)

The estimate of a unit: its pre-training (unless pretrain.pt is there) and its unfinished fine-tunings,
steps x seconds per step: ``--rates`` where given, else the median measured on the grid's own runs so
far (``medssl benchmark --status``'s rates, two one-thread runs side by side), else :data:`RATES`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from medssl.benchmark import CellPlan, has_weights, load_grid, parse_only, select_cells, validate_grid
from medssl.engine.rundir import is_done
from medssl.grid_status import grid_rates, run_progress
from medssl.reporting.bundle import verify_bundle
from medssl.utils.locks import LOCK_NAME, holder, is_held

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"mscmrseg": "configs/evidence_mscmrseg.yaml", "chaos": "configs/evidence_chaos.yaml"}
#: seconds per step at one thread (pre-training by method; fine-tuning) for a kind of run the grid has
#: not measured yet (MS-CMRSeg's, two one-thread runs side by side on a 2-core machine)
RATES = {"pcl": 1.0, "supercl": 1.9, "macl": 1.1, "finetune": 1.4}
#: the costliest first, so that the cheap units fill the end of a sitting
ORDER = ("supercl", "macl", "pcl", "scratch")


def grid_sets(grid: str, out: str) -> list[str]:
    """The ``--set`` values of the chosen fine-tuning (stage 3's choice; CHAOS also its budget)."""
    cmd = [sys.executable, "benchmarks/evidence_choice.py", "sets", "--choice", f"{out}/transfer/choice.json"]
    cmd += ["--steps", "500", "150"] if grid == "mscmrseg" else ["--budget-file", f"{out}/evidence_budget.json"]
    lines = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout.splitlines()
    return [line for line in lines if line.strip()]


def grid_plans(grid: str, sets: list[str], out: str) -> list[CellPlan]:
    """Every cell of the grid with its variants (``sets``), as ``medssl benchmark`` plans them in ``out``."""
    return validate_grid(load_grid(ROOT / CONFIGS[grid], sets), ROOT / out / f"evidence_{grid}")


def unit_todo(plans: list[CellPlan], method: str, seed: int) -> list[CellPlan]:
    """A unit's fine-tunings (the grid's cells and its variants) that are neither finished nor being run
    by a live process (its folder's lock: a runner started again while its children still run)."""
    mine = select_cells(plans, parse_only([f"method={method},seed={seed}"]))
    return [p for p in mine if not is_done(p.finetune.out) and not is_held(p.finetune.out)]


def pretraining_held(todo: list[CellPlan]) -> bool:
    """Whether a live process is making the pre-training that ``todo`` needs (a job given it would wait)."""
    return any(is_held(p.pretrain_dir) for p in todo if p.pretrain_dir is not None)


def busy_pids(folder: Path) -> set[int]:
    """The live processes that hold a lock (a pre-training, a cell, a store being prepared) anywhere
    under ``folder`` (every grid of the evidence): a runner counts those it did not start against its
    ``--workers``, so that a runner started beside others (or again, while its children still run)
    does not put more processes than cores on the machine."""
    return {pid for lock in folder.glob("**/" + LOCK_NAME) if (pid := holder(lock.parent)) is not None}


def unit_rates(plans: list[CellPlan], given: dict[str, float]) -> dict[str, float]:
    """Seconds per step by kind of run: ``given`` (``--rates``), else measured on the grid, else :data:`RATES`."""
    return {**RATES, **grid_rates(plans), **given}


def pretrain_seconds(todo: list[CellPlan], rates: dict[str, float]) -> float:
    """The seconds of the pre-training that ``todo`` still needs (0: none, or its weights are there)."""
    pre = next((p.pretrain for p in todo if p.pretrain is not None), None)
    dirs = {p.pretrain_dir for p in todo if p.pretrain_dir is not None}
    if pre is None or all(has_weights(d) for d in dirs):
        return 0.0
    steps = max(steps_to_make(d, pre.train.max_steps) for d in dirs)
    return steps * rates.get(pre.method, max(rates.values()))


def steps_to_make(run: Path, max_steps: int | None) -> int:
    """The steps ``run`` has still to make: past the last epoch its ``log.csv`` records (it resumes
    from there), or all of them when it is finished (a pre-training made again for its weights)."""
    if not max_steps or is_done(run):
        return max_steps or 0
    return max(max_steps - run_progress(run, max_steps).step, 0)


def cell_seconds(plan: CellPlan, rates: dict[str, float]) -> float:
    """The seconds of one fine-tuning."""
    return steps_to_make(Path(plan.finetune.out), plan.finetune.train.max_steps) * rates["finetune"]


def todo_seconds(todo: list[CellPlan], rates: dict[str, float]) -> float:
    """The estimated seconds of a unit's unfinished fine-tunings ``todo`` and the pre-training they need."""
    return pretrain_seconds(todo, rates) + sum(cell_seconds(p, rates) for p in todo)


def unit_seconds(grid: str, sets: list[str], out: str, method: str, seed: int, rates: dict[str, float]) -> float:
    """The estimated seconds of a unit's remaining work (0: every cell done)."""
    return todo_seconds(unit_todo(grid_plans(grid, sets, out), method, seed), rates)


#: method, seed, variant ("-": the grid's own cell; None: the whole unit)
Job = tuple[str, int, str | None]


def pick(
    units: list[tuple[str, int]],
    todo: Callable[[str, int], list[CellPlan]],
    rates: dict[str, float],
    left_s: float,
    taken: set[Job],
) -> tuple[Job, float] | None:
    """The next job and its estimated seconds, in this order:

    1. the first whole unit that fits in ``left_s`` (then removed from ``units``; units with nothing
       left are removed too);
    2. else one cell that fits and needs no pre-training to be made (none, or its weights are there):
       work that no lost checkpoint can undo;
    3. else, from a unit none of whose work is given out, its pre-training with its shortest cell,
       when both fit: a sitting's tail is not left idle while only pre-trainings remain. The cell is
       kept by the bundle; the weights stay in ``runs/`` only, so a machine lost before the unit's
       other cells run costs that pre-training again (the same bytes on a CPU), never a finished cell.

    ``taken``: the jobs given out (a cell is added). ``todo`` leaves out the cells another live process
    is running; a unit whose pre-training another process is making is not given out whole or with it
    (the job would only wait), so that a runner started again while its children run duplicates nothing."""
    for u in list(units):
        cells = todo(*u)
        need = todo_seconds(cells, rates)
        if not cells:
            units.remove(u)
        elif need < left_s and not any(j[:2] == u for j in taken) and not pretraining_held(cells):
            units.remove(u)
            return (*u, None), need
    for u in units:
        cells = todo(*u)
        if pretrain_seconds(cells, rates) > 0:
            continue
        for p in cells:
            job: Job = (*u, p.variant or "-")
            if job not in taken and cell_seconds(p, rates) < left_s:
                taken.add(job)
                return job, cell_seconds(p, rates)
    return _pretraining_with_a_cell(units, todo, rates, left_s, taken)


def _pretraining_with_a_cell(
    units: list[tuple[str, int]],
    todo: Callable[[str, int], list[CellPlan]],
    rates: dict[str, float],
    left_s: float,
    taken: set[Job],
) -> tuple[Job, float] | None:
    """:func:`pick`'s third choice: the first unit, none of whose work is given out, whose pre-training
    (still to make) and shortest cell fit in ``left_s``, as that cell's job (added to ``taken``)."""
    for u in units:
        cells = todo(*u)
        pre = pretrain_seconds(cells, rates)
        if not cells or pre == 0 or any(j[:2] == u for j in taken) or pretraining_held(cells):
            continue
        p = min(cells, key=lambda c: cell_seconds(c, rates))
        need = pre + cell_seconds(p, rates)
        if need < left_s:
            job: Job = (*u, p.variant or "-")
            taken.add(job)
            return job, need
    return None


#: :func:`run_units`'s ``take`` while the machine's cores are busy: wait, then ask again
WAIT: Job = ("", -1, None)


class Mine:
    """A runner's own processes: ``running`` jobs given out (counted before their process starts) and
    the ``pids`` of those started, whose locks are not foreign."""

    def __init__(self) -> None:
        self.running = 0
        self.pids: set[int] = set()


def deadline(text: str, now: datetime | None = None) -> float:
    """``--until`` as a timestamp: ``HH:MM`` is the next time the clock reads so (today, or tomorrow
    once today's has passed: ``01:56`` given at 23:32 is 2 h 24 min away, never already past), or a
    date and time (``2026-12-08T00:30``). A date and time already past, or anything else, is an
    ``argparse.ArgumentTypeError``."""
    now = now or datetime.now()
    try:
        if "T" in text or " " in text.strip():
            when = datetime.fromisoformat(text.strip())
        else:
            when = datetime.combine(now.date(), datetime.strptime(text, "%H:%M").time())
            when += timedelta(days=when <= now)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--until {text!r}: give HH:MM or YYYY-MM-DDTHH:MM") from None
    if when <= now:
        raise argparse.ArgumentTypeError(f"--until {text!r}: that time is past (it is {now:%Y-%m-%dT%H:%M})")
    return when.timestamp()


def run_units(a: argparse.Namespace) -> int:
    """Two (``--workers``) threads, each running one unit at a time as a ``medssl benchmark`` process;
    returns the number of units left, plus 1000 per unit that failed. Processes this runner did not
    start that hold a lock under ``--out`` (:func:`busy_pids`) count against ``--workers``."""
    sets = grid_sets(a.grid, a.out)
    given = dict((k, float(v)) for k, v in (r.split("=") for r in a.rates))
    until = deadline(a.until)
    print(f"{datetime.now():%H:%M} until {datetime.fromtimestamp(until):%Y-%m-%dT%H:%M}")
    units = [(m, s) for s in a.seeds for m in ORDER if m in load_grid(ROOT / CONFIGS[a.grid])["methods"]]
    lock = threading.Lock()
    failed = [0]
    taken: set[Job] = set()
    mine = Mine()

    def take() -> Job | None:
        with lock:
            left_s = (until - time.time()) / a.margin
            if left_s > 0 and mine.running + len(busy_pids(ROOT / a.out) - mine.pids) >= a.workers:
                return WAIT
            plans = grid_plans(a.grid, sets, a.out)  # once per choice: the runs finished since count
            rates = unit_rates(plans, given)
            got = pick(units, lambda m, s: unit_todo(plans, m, s), rates, left_s, taken)
            if got is None:
                return None
            (m, s, v), need = got
            mine.running += 1  # counted from now: another worker never sees this core free
            at = " ".join(f"{k}={x:.2f}" for k, x in rates.items())
            print(
                f"{datetime.now():%H:%M} start {m} s{s}{f' [{v}]' if v else ''} (about {need / 60:.0f} min; s/step {at})"
            )
            sys.stdout.flush()
            return m, s, v

    def worker(i: int) -> None:
        while (u := take()) is not None:
            if u == WAIT:
                time.sleep(a.poll)
                continue
            failed[0] += run_job(a, sets, u, mine, lock) != 0

    (ROOT / a.out / "logs").mkdir(parents=True, exist_ok=True)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(a.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    left = [f"{m} s{s}" for m, s in units]
    print(
        f"{datetime.now():%H:%M} " + (f"units left (none fits before {a.until}): {left}" if left else "every unit done")
    )
    return len(left) + 1000 * failed[0]


def run_job(a: argparse.Namespace, sets: list[str], u: Job, mine: Mine, lock: threading.Lock) -> int:
    """Run one job (a unit, or one cell of it) as a one-thread ``medssl benchmark`` process, its pid in
    ``mine.pids`` while it runs (``mine.running`` counts it from :func:`run_units`'s ``take`` to its
    end); returns its exit status."""
    only = f"method={u[0]},seed={u[1]}" + (f",variant={u[2]}" if u[2] else "")
    cmd = ["medssl", "benchmark", "--config", CONFIGS[a.grid], "--out", f"{a.out}/evidence_{a.grid}"]
    cmd += [x for s in sets for x in ("--set", s)] + ["--only", only, "--no-report"]
    log = ROOT / a.out / "logs" / f"unit_{a.grid}_{u[0]}_s{u[1]}.log"
    with open(log, "a") as f:
        with lock:  # its locks are this runner's from the start, not a foreign process's
            proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"}
            )
            mine.pids.add(proc.pid)
        rc = proc.wait()
    with lock:
        mine.pids.discard(proc.pid)
        mine.running -= 1
    print(f"{datetime.now():%H:%M} {'done' if rc == 0 else f'FAILED ({rc}, see {log})'} {only}", flush=True)
    return rc


def restore(a: argparse.Namespace) -> None:
    """Copy the bundle's finished runs where they are missing, once the bundle is intact (verify_bundle)."""
    bundle, dest = Path(a.bundle), ROOT / a.out / f"evidence_{a.grid}"
    problems = verify_bundle(bundle)
    if problems:
        raise SystemExit(f"{bundle}: not restored, the bundle is not intact: {'; '.join(problems[:3])}")
    copied = 0
    for rel in finished_runs(bundle):
        if not (dest / rel).exists():
            shutil.copytree(bundle / rel, dest / rel)
            copied += 1
    for f in bundle.glob("commands/*.json"):
        if not (dest / "commands" / f.name).exists():
            (dest / "commands").mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest / "commands" / f.name)
    print(f"restored {copied} finished runs from {bundle} into {dest}")


def finished_runs(folder: Path) -> list[Path]:
    """The finished runs under ``folder`` (a benchmark folder or a bundle), relative to it; reports left out."""
    runs = sorted({p.parent for p in folder.glob("**/run.json")})
    return [r.relative_to(folder) for r in runs if r.relative_to(folder).parts[0] != "report" and is_done(r)]


def export(a: argparse.Namespace) -> None:
    """The grid's bundle made again from ``runs/`` (``medssl report --export``), once every finished run
    of the bundle it replaces is in ``runs/`` too (restored): a new machine's export loses nothing."""
    src, dest = ROOT / a.out / f"evidence_{a.grid}", Path(a.bundle)
    if dest.exists():
        lost = [str(r) for r in finished_runs(dest) if not is_done(src / r)]
        if lost:
            raise SystemExit(
                f"{dest}: not replaced, {len(lost)} of its finished runs are not in {src} ({lost[0]}, ...): restore first"
            )
        old = dest.with_name(dest.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        dest.rename(old)
    try:
        rel = os.path.relpath(src, ROOT)  # the command the bundle records names the folders as a user would
        subprocess.run(["medssl", "report", rel, "--export", os.path.relpath(dest, ROOT)], cwd=ROOT, check=True)
    except BaseException:
        if dest.with_name(dest.name + ".old").exists():
            shutil.rmtree(dest, ignore_errors=True)
            dest.with_name(dest.name + ".old").rename(dest)
        raise
    shutil.rmtree(dest.with_name(dest.name + ".old"), ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["run", "restore", "export"])
    ap.add_argument("--grid", choices=sorted(CONFIGS), required=True)
    ap.add_argument("--out", default="runs", help="the evidence's folder (runs/evidence_<grid>, runs/transfer)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--until",
        default="23:59",
        help="HH:MM (its next coming) or YYYY-MM-DDTHH:MM: start no unit that would end later",
    )
    ap.add_argument("--margin", type=float, default=1.15, help="the estimate times this must end before --until")
    ap.add_argument("--poll", type=float, default=30.0, help="seconds between looks while every core is busy")
    ap.add_argument(
        "--rates",
        nargs="*",
        default=[],
        help="seconds per step, over what the grid measured: pcl=1.0 supercl=1.9 finetune=1.4",
    )
    ap.add_argument("--bundle", help="restore, export: the bundle folder")
    a = ap.parse_args()
    if a.action != "run":
        (restore if a.action == "restore" else export)(a)
        return
    try:
        deadline(a.until)
    except argparse.ArgumentTypeError as e:
        ap.error(str(e))
    n = run_units(a)
    sys.exit(0 if n == 0 else 1 if n >= 1000 else 3)  # 3: units left for another sitting


if __name__ == "__main__":
    main()
