"""Results bundles: the slim, recomputable provenance of a benchmark folder.

``medssl report DIR --export BUNDLE`` copies from every run folder under ``DIR`` the files that the
report's tables are computed from, and nothing heavy (no checkpoints, no predictions)::

    BUNDLE/
      bundle.json                 format, export command, git commit, medssl version, every file's sha256,
                                  the runs not finished when exported (``unfinished``)
      grid.json                   the resolved grid (written by `medssl benchmark`), when there is one
      commands/*.json             each `medssl benchmark` invocation: argv, grid file text, overrides, commit
      finetune/<cell>/            config.yaml run.json metrics.csv summary.json steps.csv log.csv
      pretrain/<run>/             diagnostics.json splits.json load_report.json postprocessing.json ...

``medssl report BUNDLE`` then recomputes every table (results, seed-level statistics, Wilcoxon tests,
the comparison with the published numbers, pre-training loss windows) from the bundle alone; the
figures that need images or predictions (qualitative) are skipped and noted.

Example::

    res = export_bundle("runs/cpu_cardiac", "benchmarks/results/cpu_cardiac")
    res.n_runs, res.out / "bundle.json"
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..utils.files import atomic_write_json, git_commit

__all__ = [
    "BUNDLE_FILE",
    "RUN_BUNDLE_FILES",
    "BundleResult",
    "export_bundle",
    "is_bundle",
    "provenance_notes",
    "verify_bundle",
]

#: the manifest at the top of a bundle
BUNDLE_FILE = "bundle.json"
#: the manifest's format version that this medssl writes and reads
BUNDLE_VERSION = 1

#: the files of a run folder a bundle keeps (whichever exist)
RUN_BUNDLE_FILES: tuple[str, ...] = (
    "config.yaml",
    "run.json",
    "metrics.csv",
    "summary.json",
    "summary.csv",
    "steps.csv",
    "log.csv",
    "diagnostics.json",
    "splits.json",
    "load_report.json",
    "postprocessing.json",
)

#: the files at the top of a benchmark folder a bundle keeps
TOP_FILES: tuple[str, ...] = ("grid.json",)


@dataclass
class BundleResult:
    """What :func:`export_bundle` wrote.

    Attributes:
        out: the bundle folder.
        n_runs: run folders exported (fine-tuning and pre-training).
        n_files: files copied.
        bytes: their total size.
        unfinished: the runs exported before they finished (``run.json`` status not ``done``: still
            running, or stopped), as ``"<folder relative to the bundle>: <status>"``; the report skips
            them, so the bundle's tables are those of the finished runs only.
    """

    out: Path
    n_runs: int
    n_files: int
    bytes: int
    unfinished: list[str] = field(default_factory=list)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _run_folders(root: Path, exclude: list[Path]) -> list[Path]:
    """Every folder under ``root`` holding a ``run.json``, except those under ``exclude``."""
    out = []
    for run_json in sorted(root.rglob("run.json")):
        folder = run_json.parent.resolve()
        if not any(folder == e or e in folder.parents for e in exclude):
            out.append(run_json.parent)
    return out


def _files_to_copy(root: Path, exclude: list[Path]) -> tuple[list[Path], int]:
    """Relative paths of the files a bundle of ``root`` holds, and the number of run folders."""
    runs = _run_folders(root, exclude)
    rel = [Path(name) for name in TOP_FILES if (root / name).is_file()]
    commands = root / "commands"
    if commands.is_dir():
        rel += sorted(p.relative_to(root) for p in commands.glob("*.json"))
    for run in runs:
        rel += [(run / name).relative_to(root) for name in RUN_BUNDLE_FILES if (run / name).is_file()]
    return rel, len(runs)


def _run_infos(tmp: Path, rel: list[Path]) -> dict[Path, dict[str, Any]]:
    """Each exported ``run.json`` (read from the copy) by its relative path; unreadable ones as ``{}``."""
    out: dict[Path, dict[str, Any]] = {}
    for p in rel:
        if p.name == "run.json":
            try:
                info = json.loads((tmp / p).read_text())
            except (OSError, ValueError):
                info = {}
            out[p] = info if isinstance(info, dict) else {}
    return out


def _run_commits(infos: dict[Path, dict[str, Any]]) -> set[str]:
    """The git commits the runs were made with (``run.json``'s ``environment.git_commit``)."""
    envs = (info.get("environment") for info in infos.values())
    return {str(env["git_commit"]) for env in envs if isinstance(env, dict) and env.get("git_commit")}


def _unfinished(infos: dict[Path, dict[str, Any]]) -> list[str]:
    """``"<run folder>: <status>"`` for every run whose ``run.json`` does not say ``done``."""
    return [
        f"{p.parent.as_posix()}: {info.get('status') or 'no status'}"
        for p, info in sorted(infos.items())
        if info.get("status") != "done"
    ]


def _manifest(
    root: Path, tmp: Path, rel: list[Path], n_runs: int, command: str | None, infos: dict[Path, dict[str, Any]]
) -> dict[str, Any]:
    from .. import __version__

    return {
        "format": "medssl-bundle",
        "version": BUNDLE_VERSION,
        "source": str(root.resolve()),
        "command": command if command is not None else " ".join(["medssl", *sys.argv[1:]]),
        "git_commit": git_commit(),
        "medssl_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "runs": n_runs,
        "run_git_commits": sorted(_run_commits(infos)),
        "unfinished": _unfinished(infos),
        "files": {p.as_posix(): _sha256(tmp / p) for p in rel},
        "left_out": "checkpoints (*.pt) and predictions/: recompute tables only, not predictions",
    }


def export_bundle(root: str | Path, out: str | Path, command: str | None = None) -> BundleResult:
    """Copy the recomputable provenance of the runs under ``root`` into the new folder ``out``.

    Args:
        root: a benchmark folder (or any folder of run folders).
        out: the bundle folder to create (must not exist, or be empty); written atomically (a
            temporary sibling renamed at the end).
        command: the command to record (default: this process's ``medssl`` arguments).

    Returns:
        A :class:`BundleResult`.

    Raises:
        DataError: ``root`` is not a folder or holds no run; ``out`` exists and is not empty, or lies inside ``root``.
    """
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise DataError(root, "not a folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(out, "exists and is not an empty folder; give a new folder for the bundle (--export)")
    exclude = [(root / "report").resolve(), out.resolve()]
    rel, n_runs = _files_to_copy(root, exclude)
    if not n_runs:
        raise DataError(root, "no run folder (run.json) found: nothing to export")
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    size = 0
    for p in rel:
        (tmp / p).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / p, tmp / p)  # keeps mtimes: the report's choice between duplicates is unchanged
        size += (tmp / p).stat().st_size
    infos = _run_infos(tmp, rel)
    manifest = _manifest(root, tmp, rel, n_runs, command, infos)
    atomic_write_json(tmp / BUNDLE_FILE, manifest)
    if out.exists():
        out.rmdir()
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)
    return BundleResult(out, n_runs, len(rel), size, list(manifest["unfinished"]))


def is_bundle(folder: str | Path) -> bool:
    """Whether ``folder`` is a results bundle (holds ``bundle.json``)."""
    return (Path(folder) / BUNDLE_FILE).is_file()


def verify_bundle(folder: str | Path) -> list[str]:
    """The problems of a bundle: files listed in ``bundle.json`` that are missing or changed, and runs
    (``run.json``) that it does not list.

    Returns:
        One line per problem (empty: the bundle is intact).

    Raises:
        DataError: ``bundle.json`` unreadable.
    """
    folder = Path(folder)
    try:
        manifest = json.loads((folder / BUNDLE_FILE).read_text())
        files = dict(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(folder / BUNDLE_FILE, f"not a readable bundle manifest ({e.__class__.__name__})") from None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise DataError(folder / BUNDLE_FILE, "not a readable bundle manifest ('files' maps names to sha256 digests)")
    _check_format(folder / BUNDLE_FILE, manifest)
    problems = []
    inside = folder.resolve()
    for name, digest in sorted(files.items()):
        p = folder / name
        if Path(name).is_absolute() or inside not in (folder / name).resolve().parents:
            problems.append(f"{name}: names a file outside the bundle (not read)")
        elif not p.is_file():
            problems.append(f"{name}: missing")
        elif _sha256(p) != digest:
            problems.append(f"{name}: changed since export (sha256 differs)")
    for p in sorted(folder.rglob("run.json")):  # a run copied in later would enter the tables unverified
        name = p.relative_to(folder).as_posix()
        if name not in files and not name.startswith("report/"):
            problems.append(f"{name}: added since export (not in {BUNDLE_FILE})")
    return problems


def _check_format(path: Path, manifest: dict[str, Any]) -> None:
    """A manifest of this format and of a version this medssl reads (a newer bundle may hold files or
    meanings it does not know: refused rather than misread)."""
    version = manifest.get("version")
    if manifest.get("format") != "medssl-bundle" or not isinstance(version, int) or isinstance(version, bool):
        raise DataError(path, "not a medssl results bundle manifest (format 'medssl-bundle' with an integer version)")
    if version > BUNDLE_VERSION:
        raise DataError(
            path, f"bundle format version {version} is newer than this medssl reads ({BUNDLE_VERSION}): upgrade medssl"
        )


def provenance_notes(folder: str | Path) -> list[str]:
    """Report notes on where the runs of ``folder`` come from: the bundle they were exported in
    (command, commit, files verified) and whether the grid's seeds share one pre-training."""
    folder = Path(folder)
    notes = []
    if is_bundle(folder):
        problems = verify_bundle(folder)  # first: it names an unreadable manifest
        manifest = json.loads((folder / BUNDLE_FILE).read_text())
        notes.append(
            f"recomputed from the results bundle exported by `{manifest.get('command')}` (medssl commit "
            f"{manifest.get('git_commit')}; runs made at {', '.join(manifest.get('run_git_commits') or ['?'])}); "
            + (f"{len(manifest.get('files', {}))} files verified" if not problems else "; ".join(problems))
        )
        unfinished = manifest.get("unfinished") or []
        if unfinished:
            notes.append(
                f"{len(unfinished)} run(s) were not finished when the bundle was exported and are not in its tables: "
                + "; ".join(map(str, unfinished))
            )
    grid_file = folder / "grid.json"
    if grid_file.is_file():
        try:
            grid = json.loads(grid_file.read_text())
        except (OSError, ValueError):
            return notes
        if isinstance(grid, dict) and grid.get("pretrain_per_seed") is False:
            notes.append(
                "pretrain_per_seed: false: one pre-training per method is shared by every seed, so the seed-level "
                "intervals and tests cover split and fine-tuning variation only, not pre-training variation"
            )
        elif isinstance(grid, dict) and grid.get("pretrain_per_seed") is True:  # older grids: not recorded
            notes.append("one pre-training per seed: each seed is an independent replicate of the whole pipeline")
    return notes
