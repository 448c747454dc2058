"""Atomic writes and the run-folder provenance record (config, git commit, seed, environment)."""

from __future__ import annotations

import json
import os
import platform
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "atomic_save_npy",
    "atomic_write",
    "atomic_write_json",
    "atomic_write_text",
    "environment_info",
    "git_commit",
    "torch_save",
]


def torch_save(obj: object, path: str) -> None:
    """``torch.save(obj)`` into ``path`` through an open file: the archive's inner folder is then
    always ``archive``, not the file's (temporary, random) name, so the same tensors give the same
    bytes, and the same sha256 fingerprint (``run.json["inputs"]``) when a run is made again."""
    import torch

    with open(path, "wb") as f:
        torch.save(obj, f)


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see a partial file.

    The file gets the permissions of any file made here (``0o666`` less the umask, as ``open``
    gives), not the owner-only ``0o600`` of :func:`tempfile.mkstemp`: results on a shared server stay
    readable by the group.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            break
        except FileExistsError:  # pragma: no cover - a 48-bit name taken
            continue
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda t: Path(t).write_text(text))


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, default=_json_default, allow_nan=True) + "\n")


def atomic_save_npy(path: str | Path, array: np.ndarray) -> Path:
    def _w(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    return atomic_write(path, _w)


def git_commit(path: str | Path | None = None) -> str | None:
    """The commit of the source tree at ``path`` (default: the installed ``medssl`` package), with
    ``+dirty`` when a tracked file under ``path`` is modified, or None outside git.

    Only ``path`` decides the flag: an export that moves result files about, or an edited note,
    does not mark the code that ran as modified.
    """
    here = Path(path) if path is not None else Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment_info(device: str | None = None) -> dict[str, Any]:
    """Host, Python, package versions and accelerator, for ``run.json``."""
    import torch

    versions = {}
    for mod in ("numpy", "scipy", "monai", "nibabel", "skimage", "h5py", "medssl"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:
            continue
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": platform.node(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "versions": versions,
        "cuda": torch.version.cuda,
        "device": device,
        "git_commit": git_commit(),
        "argv": sys.argv,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cudnn"] = torch.backends.cudnn.version()
    return info
