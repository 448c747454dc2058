"""Fingerprints of a run's inputs: the prepared store and the ``--init`` checkpoint it was trained on.

Every run records them in ``run.json`` (``"inputs": {"store": ..., "init": ...}``). A rerun,
resume, ``evaluate``, ``report`` or ``benchmark`` reuse of that folder recomputes them and refuses
(one line naming what changed and how to start afresh) when they differ: results of a store that was
since prepared again with other data are never shown as current.

Fingerprints are cheap:

* a store's is the SHA-256 of its index files (``plan.json``, ``cases.json``, ``fingerprint.json``
  with the per-case shapes, label counts and intensity statistics, ``slices.csv``) and of the name and
  size of every prepared array; it changes when the store is prepared again from other data or with
  other settings, and not when the same data is prepared again. Derived files (``cache/``) are left out.
* a checkpoint's is the SHA-256 of the file (tens of MB for the U-Net: well under a second), cached by
  path, size and modification time within a process; a store's is cached by the modification times of
  its index files and array folders (``report`` over hundreds of runs of one store hashes it once).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = [
    "STORE_INDEX_FILES",
    "changed_inputs",
    "check_run_inputs",
    "checkpoint_fingerprint",
    "run_inputs",
    "store_fingerprint",
]

#: the files of a prepared store whose bytes enter its fingerprint (arrays enter by name and size)
STORE_INDEX_FILES: tuple[str, ...] = ("plan.json", "cases.json", "fingerprint.json", "slices.csv")

_CHUNK = 1 << 20
_ckpt_cache: dict[tuple[str, int, int], str] = {}
_store_cache: dict[tuple[Any, ...], str] = {}

_DEFAULT_REMEDY = "rerun with --no-resume to start afresh in it (deleting its results), or give another --out"


def store_fingerprint(path: str | Path) -> str | None:
    """The fingerprint of a prepared store, or None when ``path`` holds no store (no ``plan.json``).

    Args:
        path: the store folder (``data.path``).

    Returns:
        ``"sha256:<hex>"`` over the index files and the names and sizes of ``images/`` and ``labels/``.
    """
    root = Path(path)
    if not (root / "plan.json").is_file():
        return None
    key = _store_key(root)
    if key is not None and key in _store_cache:
        return _store_cache[key]
    h = hashlib.sha256()
    try:
        for name in STORE_INDEX_FILES:
            p = root / name
            h.update(name.encode())
            h.update(p.read_bytes() if p.is_file() else b"<absent>")
        for sub in ("images", "labels"):
            d = root / sub
            if d.is_dir():
                for entry in sorted(os.scandir(d), key=lambda e: e.name):
                    if entry.name.endswith(".npy"):
                        h.update(f"{sub}/{entry.name}:{entry.stat().st_size}".encode())
    except OSError:
        return None
    fp = f"sha256:{h.hexdigest()}"
    if key is not None:
        _store_cache[key] = fp
    return fp


def _store_key(root: Path) -> tuple[Any, ...] | None:
    """What changes whenever a store's fingerprint can (modification times of its index files and of the
    array folders, which change when a file is added, removed or atomically replaced): a cache key."""
    try:
        parts: list[Any] = [str(root.resolve())]
        for name in (*STORE_INDEX_FILES, "images", "labels"):
            p = root / name
            parts.append(p.stat().st_mtime_ns if p.exists() else None)
    except OSError:
        return None
    return tuple(parts)


def checkpoint_fingerprint(path: str | Path) -> str | None:
    """The SHA-256 of a checkpoint file (a run folder stands for its ``pretrain.pt``); None if absent.

    Args:
        path: ``--init``: a checkpoint file or a pre-training run folder.
    """
    from ..errors import DataError
    from ..models.checkpoint import resolve_checkpoint

    try:
        file = resolve_checkpoint(path)
        st = file.stat()
    except (DataError, OSError):
        return None
    key = (str(file.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _ckpt_cache:
        h = hashlib.sha256()
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(_CHUNK), b""):
                h.update(block)
        _ckpt_cache[key] = f"sha256:{h.hexdigest()}"
    return _ckpt_cache[key]


def run_inputs(cfg: Any) -> dict[str, str | None]:
    """The fingerprints a run records in ``run.json["inputs"]``: ``store`` and ``init`` (None without ``--init``).

    Args:
        cfg: a resolved ``FinetuneConfig`` or ``PretrainConfig``.
    """
    init = getattr(cfg, "init", None)
    return {
        "store": store_fingerprint(cfg.data.path) if cfg.data.path else None,
        "init": checkpoint_fingerprint(init) if init else None,
    }


def _short(fp: Any) -> str:
    return str(fp).removeprefix("sha256:")[:12] if fp else "none"


def changed_inputs(recorded: Any, store: str | Path | None, init: str | Path | None = None) -> list[str]:
    """What differs between a run's recorded input fingerprints and the inputs as they are now.

    Inputs that cannot be fingerprinted now (a store or checkpoint no longer there) and runs made
    before fingerprints were recorded are not judged.

    Args:
        recorded: ``run.json["inputs"]`` (anything else: nothing to compare).
        store: the run's prepared store.
        init: the run's ``--init`` checkpoint, if any.

    Returns:
        Readable descriptions, e.g. ``["the prepared store /data/p changed (fingerprint 1a2b.. -> 3c4d..)"]``.
    """
    if not isinstance(recorded, Mapping):
        return []
    out = []
    if store and recorded.get("store"):
        now = store_fingerprint(store)
        if now is not None and now != recorded["store"]:
            out.append(
                f"the prepared store {store} changed since this run (fingerprint "
                f"{_short(recorded['store'])} -> {_short(now)}: prepared again with other data or settings)"
            )
    if init and recorded.get("init"):
        now = checkpoint_fingerprint(init)
        if now is not None and now != recorded["init"]:
            out.append(
                f"the --init checkpoint {init} changed since this run (fingerprint "
                f"{_short(recorded['init'])} -> {_short(now)})"
            )
    return out


def check_run_inputs(out: str | Path, info: Mapping[str, Any], cfg: Any, remedy: str = _DEFAULT_REMEDY) -> None:
    """Refuse to resume or reuse the run in ``out`` when its store or ``--init`` checkpoint changed.

    Args:
        out: the run folder.
        info: its ``run.json``.
        cfg: the configuration of the new attempt (its ``data.path`` and ``init`` are fingerprinted).
        remedy: what the message tells the user to do.

    Raises:
        ConfigError: ``<out>: holds a run made on other inputs: <what changed>; <remedy>``.
    """
    changes = changed_inputs(info.get("inputs"), cfg.data.path or None, getattr(cfg, "init", None))
    if changes:
        raise ConfigError(f"{out}: holds a run made on other inputs: {'; '.join(changes)}; {remedy}")
