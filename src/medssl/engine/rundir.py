"""Run folders: the resolved configuration, provenance and status written next to the results.

A run folder is bound to its configuration. Before anything is written, :func:`bind_run_dir`
compares the ``config.yaml`` already in the folder with the new resolved configuration:

* a new or empty folder starts a new run;
* the same configuration resumes an unfinished run, or, for a finished one, only returns its results;
* another configuration is refused, naming the fields that differ, unless the caller asks to start
  over (``--no-resume`` / ``resume=False``): the previous run's files are then deleted when the new
  run starts (:func:`init_run_dir` with ``start_over=True``), never before it is known to be valid.

Fields that do not change the result may differ between attempts (:data:`RESULT_NEUTRAL_FIELDS`:
where it runs and how it reports progress). A folder holding another kind of run (pre-training vs
fine-tuning) or files that are not a medssl run is refused in every case.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from ..config import config_from_dict, config_to_dict
from ..errors import ConfigError, DataError, MedsslError
from ..utils.files import atomic_write_json, atomic_write_text, environment_info

__all__ = [
    "RESULT_NEUTRAL_FIELDS",
    "RUN_FILES",
    "BoundRun",
    "bind_run_dir",
    "config_differences",
    "init_load_problem",
    "init_run_dir",
    "is_done",
    "mark_done",
    "read_run",
]

#: settings that may change between attempts of one run: they do not change its result
RESULT_NEUTRAL_FIELDS: frozenset[str] = frozenset(
    {"out", "train.device", "data.num_workers", "train.progress", "train.logger", "train.log_every"}
)

#: what a run writes into its folder (deleted when a run starts over; other files are left alone)
RUN_FILES: tuple[str, ...] = (
    "config.yaml",
    "run.json",
    "splits.json",
    "load_report.json",
    "log.csv",
    "steps.csv",
    "checkpoint_latest.pt",
    "checkpoint_best.pt",
    "pretrain.pt",
    "diagnostics.json",
    "metrics.csv",
    "summary.md",
    "summary.csv",
    "summary.json",
    "predictions",
    "tensorboard",
    "postprocessing.json",
)

_KIND_NAMES = {"finetune": "fine-tuning", "pretrain": "pre-training"}


@dataclass
class BoundRun:
    """What :func:`bind_run_dir` found in a run folder.

    Attributes:
        out: the run folder.
        status: ``new`` (nothing there), ``resume`` (an unfinished run of the same configuration),
            ``done`` (a finished run of the same configuration: only report its results) or
            ``start_over`` (a previous run that the new one replaces).
        info: the previous ``run.json`` (empty when none).
        differences: the fields that differ from the previous run (``start_over`` only).
    """

    out: Path
    status: str
    info: dict[str, Any] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.status == "done"

    @property
    def message(self) -> str:
        """One line for the user about what happens to the folder."""
        if self.status == "done":
            return f"{self.out}: finished run with the same configuration; its results (--no-resume trains it again):"
        if self.status == "resume":
            return f"{self.out}: resuming the unfinished run from its last complete epoch"
        if self.status == "start_over":
            why = f" (changed: {', '.join(self.differences)})" if self.differences else ""
            return f"{self.out}: starting over; the previous run's files are replaced{why}"
        return f"{self.out}: new run"

    def summary(self) -> list[dict[str, Any]]:
        """The ``summary`` rows of a finished fine-tuning run (``summary.json``), its result files validated.

        Raises:
            DataError: a result file is missing, truncated or corrupt (named, with how to rewrite it).
        """
        from ..reporting.runfiles import finished_summary_rows

        return finished_summary_rows(self.out)

    def last_metrics(self) -> dict[str, float]:
        """The last row of ``log.csv`` (train losses and validation metrics), as numbers."""
        path = self.out / "log.csv"
        if not path.is_file():
            return {}
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows:
            return {}
        out: dict[str, float] = {}
        for k, v in rows[-1].items():
            if k in ("epoch", "step", "lr", "seconds") or v in (None, ""):
                continue
            try:
                out[k] = float(v)
            except ValueError:
                continue
        return out


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping) and k not in ("method_args", "superpixels"):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _normalise(key: str, value: Any) -> Any:
    """Comparison form of a value: paths resolved, a run folder given to ``init`` as its checkpoint."""
    if value in (None, "") or not isinstance(value, str):
        return value
    if key == "data.path":
        return str(Path(value).resolve())
    if key == "init":
        from ..models.checkpoint import resolve_checkpoint

        try:
            return str(resolve_checkpoint(value).resolve())
        except MedsslError:
            return str(Path(value).resolve())
    return value


def config_differences(old: Mapping[str, Any], new: Any, neutral: frozenset[str] = RESULT_NEUTRAL_FIELDS) -> list[str]:
    """Fields whose values differ between a stored configuration (a dict) and ``new`` (a dataclass).

    The stored dict is first rebuilt as ``type(new)`` so that fields added since it was written take
    their defaults and values are compared in canonical form (``labels: "0.1"`` equals ``"10%"``).

    Returns:
        ``["data.labels: '10%' -> '50%'", ...]`` sorted by field, ``neutral`` fields left out.
    """
    try:
        old_dict = config_to_dict(config_from_dict(type(new), old))
    except (MedsslError, TypeError):
        old_dict = dict(old)
    a, b = _flat(old_dict), _flat(config_to_dict(new))
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key in neutral:
            continue
        va, vb = _normalise(key, a.get(key)), _normalise(key, b.get(key))
        if va != vb:
            diffs.append(
                f"{key}: {a.get(key)!r} -> {b.get(key)!r}"
                if key in a and key in b
                else f"{key}: {'added' if key in b else 'removed'}"
            )
    return diffs


def _visible(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if not p.name.startswith(".")]


_REMEDY = (
    "rerun with --no-resume (Python: resume=False) to start over in it, deleting its results, or give another --out"
)


def bind_run_dir(out: str | Path, cfg: Any, kind: str, resume: bool = True, remedy: str = _REMEDY) -> BoundRun:
    """Check that ``out`` can hold this run; writes nothing.

    Args:
        out: the run folder (``--out``).
        cfg: the resolved configuration of the new run.
        kind: ``finetune`` or ``pretrain``.
        resume: continue (or report) a previous run of the same configuration; False = start over.
        remedy: what the error of a different configuration tells the user to do.

    Returns:
        A :class:`BoundRun` saying whether the run is new, resumes, is already done or starts over.

    Raises:
        DataError: ``out`` is a file, holds files that are not a medssl run, or holds another kind of run.
        ConfigError: ``out`` holds a run of another configuration and ``resume`` is True; the message
            names the differing fields and says how to start over.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(out, "exists and is not a folder; give a folder for the run (--out)")
    if not out.is_dir() or not _visible(out):
        return BoundRun(out, "new")
    cfg_path, info = out / "config.yaml", read_run(out)
    stored: Any = None
    if cfg_path.is_file():
        try:
            stored = yaml.safe_load(cfg_path.read_text())
        except (OSError, ValueError, yaml.YAMLError):
            stored = None
    if info is None and stored is None:
        if (out / "run.json").is_file() or cfg_path.is_file():
            if not resume:
                return BoundRun(out, "start_over")
            raise DataError(
                out,
                "its run.json / config.yaml are unreadable; rerun with --no-resume (Python: resume=False) to start over in it, or give another --out",
            )
        names = ", ".join(sorted(p.name for p in _visible(out))[:5])
        raise DataError(out, f"is not empty and holds no medssl run ({names}); give a new or empty folder (--out)")
    info = info or {}
    old_kind = info.get("kind", kind)
    if old_kind != kind:
        raise DataError(
            out,
            f"holds a {_KIND_NAMES.get(old_kind, old_kind)} run; give another folder (--out) for this {_KIND_NAMES.get(kind, kind)} run",
        )
    diffs = config_differences(stored, cfg) if isinstance(stored, Mapping) else ["config.yaml: missing"]
    if not resume:
        return BoundRun(out, "start_over", info, diffs)
    if diffs:
        shown = "; ".join(diffs[:6]) + (f"; ... ({len(diffs) - 6} more)" if len(diffs) > 6 else "")
        raise ConfigError(
            f"{out}: holds a {_KIND_NAMES.get(kind, kind)} run with another configuration ({shown}); {remedy}"
        )
    finished = (
        info.get("status") == "done" and (out / ("summary.json" if kind == "finetune" else "pretrain.pt")).is_file()
    )
    return BoundRun(out, "done" if finished else "resume", info)


def _clear(out: Path) -> None:
    for name in RUN_FILES:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    for p in out.glob("eval-*"):
        if p.is_dir():
            shutil.rmtree(p)


def init_run_dir(
    out: str | Path, cfg: Any, kind: str, device: str, extra: dict[str, Any] | None = None, start_over: bool = False
) -> Path:
    """Create ``out`` and write ``config.yaml`` and ``run.json`` (kind, seed, git commit, versions, device).

    Call it only once the run is known to be valid (:func:`bind_run_dir` first). A resumed run keeps
    its start record; ``start_over`` first deletes the previous run's files (:data:`RUN_FILES`).
    """
    from ..utils import distributed as du

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if du.rank() != 0:
        return out
    if start_over:
        _clear(out)
    resolved = config_to_dict(cfg)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
    info = read_run(out) or {}
    info.update({"kind": kind, "status": "running"})
    info.update(extra or {})
    info["seed"] = getattr(getattr(cfg, "train", None), "seed", None)
    now = time.time()
    info.setdefault("started_at", _iso(now))  # the first start; a resume keeps it
    info["earlier_attempts_s"] = _earlier_attempts_s(out, info)
    info["attempt_started_at"] = _iso(now)
    info["environment"] = environment_info(device)
    atomic_write_json(out / "run.json", info)
    return out


def _earlier_attempts_s(out: Path, info: Mapping[str, Any]) -> float:
    """Seconds the earlier attempts of a resumed run spent on the work it keeps.

    An interrupted attempt counts from its start to its last checkpoint (``checkpoint_latest.pt``,
    which the resumed attempt starts from); the work after it is lost and redone, so counted once.
    A fresh run (no earlier ``attempt_started_at``) has 0.
    """
    before = float(info.get("earlier_attempts_s") or 0.0)
    start, latest = info.get("attempt_started_at"), out / "checkpoint_latest.pt"
    if not isinstance(start, str) or not latest.is_file():
        return before
    try:
        began = datetime.fromisoformat(start).timestamp()
    except ValueError:
        return before
    return round(before + max(0.0, latest.stat().st_mtime - began), 1)


def read_run(out: str | Path) -> dict[str, Any] | None:
    """The ``run.json`` of a run folder, or None when absent or unreadable."""
    p = Path(out) / "run.json"
    if not p.is_file():
        return None
    try:
        info = json.loads(p.read_text())
    except (OSError, ValueError):  # unreadable, not UTF-8 text, or not JSON
        return None
    return info if isinstance(info, dict) else None


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def mark_done(out: str | Path, **fields: Any) -> None:
    """Mark a run finished: ``status: done``, ``finished_at``, ``wall_s`` (seconds of the last attempt)
    and ``wall_s_total`` (with the earlier attempts' seconds up to the checkpoint each resume started
    from: the run's compute, work lost to an interruption not counted)."""
    info = read_run(out) or {}
    info.update(fields)
    now = time.time()
    info["finished_at"] = _iso(now)
    if "attempt_started_at" in info:
        info["wall_s"] = round(now - datetime.fromisoformat(info["attempt_started_at"]).timestamp(), 1)
        info["wall_s_total"] = round(info["wall_s"] + float(info.get("earlier_attempts_s") or 0.0), 1)
    info["status"] = "done"
    atomic_write_json(Path(out) / "run.json", info)


def is_done(out: str | Path) -> bool:
    """Whether ``out`` holds a finished run (``run.json`` status ``done``)."""
    info = read_run(out)
    return bool(info and info.get("status") == "done")


def init_load_problem(run_dir: str | Path) -> str | None:
    """Why the pre-trained weights of a fine-tuning run did not load completely, or None when they did.

    Reads ``run_dir/load_report.json`` (runs without ``--init`` have none: None). Reports written
    before loading became strict are judged from their lists (shape mismatches, missing tensors).
    """
    p = Path(run_dir) / "load_report.json"
    if not p.is_file():
        return None
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        return f"unreadable load_report.json ({e.__class__.__name__})"
    if not isinstance(doc, dict):
        return "unreadable load_report.json (not a JSON object)"
    if "complete" in doc:
        if doc["complete"]:
            return None
        parts = doc.get("per_part") or {}
        detail = ", ".join(f"{k} {v.get('loaded')}/{v.get('expected')}" for k, v in parts.items())
        return f"the pre-trained weights did not load completely ({detail or 'see load_report.json'})"
    shape = list(doc.get("shape_mismatch") or [])
    missing = [k for k in doc.get("missing") or [] if not str(k).endswith("num_batches_tracked")]
    loaded = [k for k in doc.get("loaded") or [] if not str(k).endswith("num_batches_tracked")]
    if shape or missing or not loaded:
        return (
            f"the pre-trained weights did not load: {len(loaded)} tensors loaded, {len(shape)} shape mismatches, "
            f"{len(missing)} missing (load_report.json)"
        )
    return None
