"""Where ``prepare()`` may write: a new or empty folder, a store of the same plan (continued), or,
with ``overwrite``, anything else whose store files are then replaced.

A prepared store marks itself complete with ``plan.json`` (written last); while it is being written
``.prepare_plan.json`` holds the plan, so that an interrupted ``prepare`` continues when rerun with the
same settings. Nothing is written or deleted until :func:`begin_store_folder`, which ``prepare()``
calls only after the data has passed its integrity check.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError

__all__ = ["PARTIAL_PLAN", "STORE_FILES", "begin_store_folder", "check_prepare_target"]

#: the files and folders of a prepared store (what ``overwrite`` replaces; other files are left alone)
STORE_FILES = ("plan.json", "fingerprint.json", "cases.json", "slices.csv", "skipped.json", "images", "labels", "cache")
#: the plan of a store being written (an interrupted prepare continues when the plan is the same)
PARTIAL_PLAN = ".prepare_plan.json"


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    new = json.loads(json.dumps(dict(new), default=str))  # as stored: tuples become lists
    return [f"{k}: {old.get(k)!r} -> {v!r}" for k, v in new.items() if old.get(k) != v]


def check_prepare_target(out: str | Path, plan: Mapping[str, Any], overwrite: bool = False) -> str:
    """Decide what ``prepare()`` does with ``out``; writes nothing.

    Args:
        out: the store folder.
        plan: the plan of this preparation (``plan.json``).
        overwrite: replace a store of another plan (or any non-empty folder's store files).

    Returns:
        ``"new"`` (absent or empty), ``"reuse"`` (a complete or interrupted store of the same plan:
        cases already written are kept) or ``"replace"`` (``overwrite``: the old store files go).

    Raises:
        ConfigError: the plan's ``target_spacing`` is not a positive number or None.
        DataError: ``out`` is a file; or, without ``overwrite``, a non-empty folder that is not a store
            of the same plan (the message names what differs).
    """
    out = Path(out)
    spacing = plan.get("target_spacing")
    if spacing is not None and (isinstance(spacing, bool) or not isinstance(spacing, (int, float)) or not spacing > 0):
        raise ConfigError(f"target_spacing: expected a positive spacing in mm or None (keep), got {spacing!r}")
    if out.exists() and not out.is_dir():
        raise DataError(out, "exists and is not a folder; give a folder for the prepared store")
    if not out.is_dir() or not any(out.iterdir()):
        return "new"
    if overwrite:
        return "replace"
    old = _read(out / "plan.json")
    what = "a prepared store"
    if not isinstance(old, dict):
        old, what = _read(out / PARTIAL_PLAN), "an unfinished prepared store"
    if not isinstance(old, dict):
        names = ", ".join(sorted(p.name for p in out.iterdir())[:5])
        raise DataError(
            out,
            f"folder is not empty and is not a prepared store ({names}); give a new or empty folder, "
            "or --overwrite to write the store into it",
        )
    diffs = _differences(old, plan)
    if diffs:
        shown = "; ".join(diffs[:4]) + (f"; ... ({len(diffs) - 4} more)" if len(diffs) > 4 else "")
        raise DataError(
            out,
            f"holds {what} of another dataset or settings ({shown}); give another folder, or --overwrite to replace it",
        )
    return "reuse"


def begin_store_folder(out: str | Path, plan: Mapping[str, Any], decision: str) -> None:
    """Start writing: for ``replace`` delete the previous store's files; record the plan of this attempt."""
    out = Path(out)
    if decision == "replace":
        for name in (*STORE_FILES, PARTIAL_PLAN):
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / PARTIAL_PLAN).write_text(json.dumps(dict(plan), indent=2, default=str) + "\n")
