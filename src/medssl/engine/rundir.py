"""Run folders: the resolved configuration, provenance and status written next to the results."""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from ..config import config_to_dict
from ..utils.files import atomic_write_json, atomic_write_text, environment_info

__all__ = ["init_run_dir", "mark_done", "is_done", "read_run"]


def init_run_dir(out: str | Path, cfg: Any, kind: str, device: str, extra: dict[str, Any] | None = None) -> Path:
    """Create ``out`` and write ``config.yaml`` and ``run.json`` (kind, seed, git commit, versions, device).

    A finished run keeps its ``run.json`` status; a resumed one keeps its start record.
    """
    from ..utils import distributed as du

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if du.rank() != 0:
        return out
    resolved = config_to_dict(cfg)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
    info = read_run(out) or {}
    info.update({"kind": kind, "status": info.get("status", "running") if info.get("status") == "done" else "running"})
    info.update(extra or {})
    info["seed"] = getattr(getattr(cfg, "train", None), "seed", None)
    now = time.time()
    info.setdefault("started_at", _iso(now))  # the first start; a resume keeps it
    info["attempt_started_at"] = _iso(now)
    info["environment"] = environment_info(device)
    atomic_write_json(out / "run.json", info)
    return out


def read_run(out: str | Path) -> dict[str, Any] | None:
    p = Path(out) / "run.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError:
        return None


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def mark_done(out: str | Path, **fields: Any) -> None:
    """Mark a run finished: ``status: done``, ``finished_at`` and ``wall_s`` (seconds of the last attempt)."""
    info = read_run(out) or {}
    info.update(fields)
    now = time.time()
    info["finished_at"] = _iso(now)
    if "attempt_started_at" in info:
        info["wall_s"] = round(now - datetime.fromisoformat(info["attempt_started_at"]).timestamp(), 1)
    info["status"] = "done"
    atomic_write_json(Path(out) / "run.json", info)


def is_done(out: str | Path) -> bool:
    info = read_run(out)
    return bool(info and info.get("status") == "done")
