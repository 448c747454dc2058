"""``medssl benchmark --status``: where a long grid stands, and what is left, from its run folders.

A grid that takes tens of core-hours runs over several sessions (each ends its processes; a rerun
resumes). The status reads every pre-training and fine-tuning folder of the grid (variants included)
and says, without running anything, which are done, which started (at which step) and which wait;
the compute spent (the seconds of ``log.csv``, times each run's torch threads: wall time, pauses
included); and an estimate of what is left from the median seconds per step of the epochs measured
in this grid: per pre-training method, and over all fine-tunings (their step costs the same for
every method). Runs of a kind with no measured step yet
are counted, not guessed.

    medssl benchmark --config configs/evidence_mscmrseg.yaml --out runs/evidence_mscmrseg --status
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .benchmark import has_weights
from .engine.rundir import is_done, read_run

__all__ = ["FINETUNE", "RunProgress", "grid_rates", "grid_status", "run_progress"]


@dataclass(frozen=True)
class RunProgress:
    """How far one run folder is.

    Attributes:
        state: ``done``, ``started`` (log rows, not finished), ``pending`` (nothing yet) or, for a
            pre-training, ``redo`` (finished, but its ``pretrain.pt`` is missing and a cell needs it).
        step: the last optimiser step logged (the total for a finished run).
        max_steps: the run's configured length (None when set by epochs only).
        seconds: wall seconds spent (the sum of ``log.csv``'s per-epoch ``seconds``).
        threads: torch threads of the run (``run.json``; 1 when not recorded).
        epoch_rates: seconds per step of each logged epoch (its ``seconds`` over its steps).
    """

    state: str
    step: int
    max_steps: int | None
    seconds: float
    threads: int
    epoch_rates: tuple[float, ...] = ()

    @property
    def seconds_per_step(self) -> float | None:
        """The median of :attr:`epoch_rates`: an epoch slowed by a pause or a busy machine does not move it."""
        return float(np.median(self.epoch_rates)) if self.epoch_rates else None


def run_progress(run: Path, max_steps: int | None) -> RunProgress:
    """The progress of the run folder ``run`` (see :class:`RunProgress`)."""
    info = read_run(run) or {}
    threads = (info.get("environment") or {}).get("torch_threads")
    threads = threads if isinstance(threads, int) and threads > 0 else 1
    step, seconds, rates = 0, 0.0, []
    try:
        with open(run / "log.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                now, secs = int(float(row.get("step") or 0)), float(row.get("seconds") or 0.0)
                if now > step and secs > 0:
                    rates.append(secs / (now - step))
                step, seconds = max(step, now), seconds + secs
    except (OSError, ValueError):
        pass
    state = "done" if is_done(run) else ("started" if step > 0 else "pending")
    return RunProgress(state, step, max_steps, seconds, threads, tuple(rates))


def _collect(plans: list[Any]) -> tuple[dict[str, tuple[str, RunProgress]], dict[str, RunProgress]]:
    """``name -> (method, progress)`` of each distinct pre-training, ``label -> progress`` of each fine-tuning."""
    pre: dict[str, tuple[str, RunProgress]] = {}
    fine: dict[str, RunProgress] = {}
    for p in plans:
        fine[p.label] = run_progress(Path(p.finetune.out), p.finetune.train.max_steps)
        if p.pretrain is None or p.pretrain_dir is None:
            continue
        if p.pretrain_dir.name not in pre:
            pre[p.pretrain_dir.name] = (p.cell.method, run_progress(p.pretrain_dir, p.pretrain.train.max_steps))
        method, r = pre[p.pretrain_dir.name]
        if r.state == "done" and fine[p.label].state != "done" and not has_weights(p.pretrain_dir):
            # a finished record without its weights (a bundle copied back): made again for this cell
            pre[p.pretrain_dir.name] = (method, dataclasses.replace(r, state="redo", step=0))
    return pre, fine


def _left_seconds(runs: list[RunProgress], rate: float | None) -> tuple[float, int]:
    """Seconds left for ``runs`` at ``rate`` s/step, and how many of them have no estimate."""
    left, unknown = 0.0, 0
    for r in runs:
        if r.state == "done":
            continue
        if rate is None or r.max_steps is None:
            unknown += 1
        else:
            left += max(r.max_steps - r.step, 0) * rate * r.threads
    return left, unknown


def _rate(runs: list[RunProgress]) -> float | None:
    """The median seconds per step over every logged epoch of ``runs`` (None when none logged)."""
    rates = [x for r in runs for x in r.epoch_rates]
    return float(np.median(rates)) if rates else None


#: the kind of run of every fine-tuning in :func:`grid_rates` (pre-trainings are keyed by their method)
FINETUNE = "finetune"


def _kinds(pre: dict[str, tuple[str, RunProgress]], fine: dict[str, RunProgress]) -> dict[str, list[RunProgress]]:
    """The runs of each kind: every pre-training method in the grid's order, then :data:`FINETUNE`."""
    kinds = {m: [r for mm, r in pre.values() if mm == m] for m in dict.fromkeys(m for m, _ in pre.values())}
    return {**kinds, FINETUNE: list(fine.values())}


def grid_rates(plans: list[Any]) -> dict[str, float]:
    """The median seconds per step of each kind of run measured in a grid (every logged epoch of its
    runs, finished or not): a pre-training method's name, or :data:`FINETUNE`; kinds with no logged
    epoch are left out. The rates of the machine and the load the grid ran under (threads as run)."""
    pre, fine = _collect(plans)
    return {kind: rate for kind, runs in _kinds(pre, fine).items() if (rate := _rate(runs)) is not None}


def _counts(runs: list[RunProgress]) -> str:
    text = ", ".join(f"{sum(r.state == s for r in runs)} {s}" for s in ("done", "started", "pending"))
    redo = sum(r.state == "redo" for r in runs)
    return text + (f", {redo} to make again (finished, but pretrain.pt is missing and a cell needs it)" if redo else "")


def _line(name: str, r: RunProgress) -> str:
    of = f"/{r.max_steps}" if r.max_steps else ""
    return f"  {name:<44} {r.state:<8} step {r.step}{of}, {r.seconds / 60:.0f} min"


def grid_status(plans: list[Any]) -> str:
    """The status text of a grid's cells (:func:`medssl.benchmark.validate_grid`'s plans).

    Lists every pre-training and every fine-tuning that is not done, the counts, the compute spent
    and the estimate of what is left.
    """
    pre, fine = _collect(plans)
    lines = [f"pre-trainings: {_counts([r for _, r in pre.values()])}"]
    lines += [_line(n, r) for n, (_, r) in pre.items() if r.state != "pending"]
    lines.append(f"fine-tunings: {_counts(list(fine.values()))}")
    lines += [_line(n, r) for n, r in fine.items() if r.state == "started"]
    every = [r for _, r in pre.values()] + list(fine.values())
    spent = sum(r.seconds * r.threads for r in every) / 3600
    left, unknown = 0.0, 0
    rates = []
    for kind, runs in _kinds(pre, fine).items():
        rate = _rate(runs)
        name = "fine-tuning" if kind == FINETUNE else f"pre-training {kind}"
        rates.append(f"{name} {rate:.2f} s/step" if rate else f"{name} not measured")
        s, u = _left_seconds(runs, rate)
        left, unknown = left + s, unknown + u
    lines.append(f"compute spent: {spent:.2f} core-hours (log.csv seconds x torch threads: wall time, pauses included)")
    lines.append(_left_line(left, unknown, rates))
    return "\n".join(lines)


def _left_line(left: float, unknown: int, rates: list[str]) -> str:
    """What is left: ``about`` when every run is estimated, ``at least`` when some are not (their
    kind has no measured step yet, or no ``max_steps``), no number when none is."""
    why = f"{unknown} runs not estimated (no measured step of their kind, or no max_steps)"
    if unknown and not left:
        return f"left: not estimated yet: {why} ({'; '.join(rates)})"
    size = f"{'at least' if unknown else 'about'} {left / 3600:.1f} core-hours"
    return f"left: {size} at this grid's median seconds per step ({'; '.join(rates)})" + (f"; {why}" if unknown else "")
