"""Fingerprints of a run's inputs: the prepared store and the ``--init`` checkpoint it was trained on.

Every run records them in ``run.json`` (``"inputs": {"store": ..., "init": ...}``). A rerun,
resume, ``evaluate``, ``report`` or ``benchmark`` reuse of that folder recomputes them and refuses
(one line naming what changed and how to start afresh) when they differ: results of a store that was
since prepared again with other data are never shown as current.

Fingerprints are cheap:

* a store's is the SHA-256 of its index files (``plan.json``, ``cases.json``, ``fingerprint.json``
  with the per-case shapes, label counts and intensity statistics, ``slices.csv``) and of the name and
  content digest of every prepared array; it changes when the store is prepared again from other data
  or with other settings, or when an array is edited in place, and not when the same data is prepared
  again. The digests are kept in the store's ``cache/array_digests.json`` by size and modification
  time, so an array is read again only after it changed on disk. Derived files (``cache/``) are left
  out. Runs recorded before content digests (fingerprints ``sha256:...``: names and sizes only) are
  compared with that older definition, so their resumes and reports keep working.
* a checkpoint's is the SHA-256 of the file (tens of MB for the U-Net: well under a second), cached by
  path, size and modification time within a process; a store's is cached by the modification times of
  its index files and array folders (``report`` over hundreds of runs of one store hashes it once).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = [
    "STORE_FP_PREFIX",
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


#: the prefix of store fingerprints with content digests of the arrays (``sha256:``: names and sizes only)
STORE_FP_PREFIX = "sha256c:"
_DIGESTS = Path("cache") / "array_digests.json"
_digest_cache: dict[tuple[str, str, int, int], str] = {}


def store_fingerprint(path: str | Path, contents: bool = True) -> str | None:
    """The fingerprint of a prepared store, or None when ``path`` holds no store (no ``plan.json``).

    Args:
        path: the store folder (``data.path``).
        contents: digest every array's content (the current definition, ``sha256c:``); False: only
            the arrays' names and sizes (the definition before, ``sha256:``, to compare old runs).

    Returns:
        ``"sha256c:<hex>"`` (or ``"sha256:<hex>"``) over the index files and the arrays of
        ``images/`` and ``labels/``.
    """
    root = Path(path)
    if not (root / "plan.json").is_file():
        return None
    if contents:
        return _content_fingerprint(root)
    key = _store_key(root)
    if key is not None and key in _store_cache:
        return _store_cache[key]
    h = _index_hash(root)
    try:
        for sub, entry in _arrays(root):
            h.update(f"{sub}/{entry.name}:{entry.stat().st_size}".encode())
    except OSError:
        return None
    fp = f"sha256:{h.hexdigest()}"
    if key is not None:
        _store_cache[key] = fp
    return fp


def _index_hash(root: Path) -> Any:
    """A SHA-256 fed with the store's index files (absent ones marked)."""
    h = hashlib.sha256()
    for name in STORE_INDEX_FILES:
        p = root / name
        h.update(name.encode())
        h.update(p.read_bytes() if p.is_file() else b"<absent>")
    return h


def _arrays(root: Path) -> list[tuple[str, os.DirEntry]]:
    """The ``.npy`` arrays of ``images/`` and ``labels/``, sorted by name."""
    out = []
    for sub in ("images", "labels"):
        d = root / sub
        if d.is_dir():
            out += [(sub, e) for e in sorted(os.scandir(d), key=lambda e: e.name) if e.name.endswith(".npy")]
    return out


def _content_fingerprint(root: Path) -> str | None:
    """``sha256c:`` over the index files and each array's name and content digest."""
    try:
        h = _index_hash(root)
        digests = _array_digests(root)
    except OSError:
        return None
    for name, digest in digests.items():
        h.update(f"{name}:{digest}".encode())
    return f"{STORE_FP_PREFIX}{h.hexdigest()}"


def _array_digests(root: Path) -> dict[str, str]:
    """``images/x.npy -> sha256 hex`` of every array; unchanged files (size and modification time as
    recorded in ``cache/array_digests.json``, or already digested by this process) are not read again.
    The cache file is read only when this process has not digested every array yet (``report`` asks
    once per run of a store), and rewritten (atomically) when it changed; a read-only store is only read."""
    import json

    from ..utils.files import atomic_write_json

    real = os.path.realpath(root)
    stamps = {f"{sub}/{e.name}": (e.stat().st_size, e.stat().st_mtime_ns) for sub, e in _arrays(root)}
    keys = {name: (real, name, *stamp) for name, stamp in stamps.items()}
    if all(k in _digest_cache for k in keys.values()):
        return {name: _digest_cache[k] for name, k in keys.items()}
    try:
        saved = json.loads((root / _DIGESTS).read_text())
    except (OSError, ValueError):
        saved = {}
    saved = saved if isinstance(saved, dict) else {}
    out = {}
    for name, stamp in stamps.items():
        hit = saved.get(name)
        if keys[name] in _digest_cache:
            out[name] = _digest_cache[keys[name]]
        elif isinstance(hit, list) and len(hit) == 3 and tuple(hit[:2]) == stamp:
            out[name] = str(hit[2])
        else:
            out[name] = _file_sha256(root / name)
        _digest_cache[keys[name]] = out[name]
    fresh = {name: [*stamps[name], out[name]] for name in out}
    if fresh != saved:
        with contextlib.suppress(OSError):  # a read-only store: digests are recomputed by the next process
            atomic_write_json(root / _DIGESTS, fresh)
    return out


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


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
        _ckpt_cache[key] = f"sha256:{_file_sha256(file)}"
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
    return str(fp).split(":", 1)[-1][:12] if fp else "none"


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
        now = store_fingerprint(store, contents=str(recorded["store"]).startswith(STORE_FP_PREFIX))
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
