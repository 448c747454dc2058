"""Benchmark grids: pre-training methods (plus Scratch) x datasets x label fractions x seeds.

Each pre-training runs once per (method, dataset) and is reused by every fine-tuning that needs
it; finished cells are skipped on a rerun, so an interrupted grid resumes; ``cells="i/n"`` runs every
n-th fine-tuning cell starting at i, so a grid splits across machines or GPUs (a pre-training needed
by two processes is run by one of them while the other waits for it).

Grid file (YAML)::

    name: cpu-scale
    protocol: standard            # or paper
    methods: [scratch, pcl, supercl, macl]
    labels: ["10%"]
    seeds: [0, 1, 2]
    datasets:
      - name: hippocampus         # folder name inside the benchmark folder
        dataset: msd              # reader (medssl datasets)
        src: ../shared/data/msd_hippocampus
        prepare: {target_spacing: default}
    pretrain:                     # PretrainConfig fields, for every method
      train: {epochs: 2}
      data: {image_size: 64, batch_size: 16}
    pretrain_methods:             # per-method overrides of PretrainConfig fields
      supercl: {superpixels: {mode: cache}}
    finetune:                     # FinetuneConfig fields
      train: {epochs: 10}
"""
from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from .config import FinetuneConfig, PretrainConfig, config_from_dict
from .engine.rundir import is_done, read_run
from .errors import ConfigError
from .utils.files import atomic_write_json

__all__ = ["GridCell", "load_grid", "plan_cells", "run_benchmark"]


@dataclass(frozen=True)
class GridCell:
    """One fine-tuning cell of the grid."""

    method: str
    dataset: str
    labels: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.method}__{self.dataset}__{self.labels.replace('%', 'pct')}__s{self.seed}"


def load_grid(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: grid file not found")
    grid = yaml.safe_load(p.read_text()) or {}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got '{item}'")
        key, value = item.split("=", 1)
        node = grid
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value)
    for key in ("methods", "datasets"):
        if not grid.get(key):
            raise ConfigError(f"{p}: the grid needs a non-empty '{key}' list")
    grid.setdefault("labels", ["10%"])
    grid.setdefault("seeds", [1234])
    grid.setdefault("protocol", "standard")
    return grid


def plan_cells(grid: dict[str, Any]) -> list[GridCell]:
    """Every fine-tuning cell, ordered dataset > labels > seed > method."""
    return [
        GridCell(m, d["name"], str(lab), int(s))
        for d in grid["datasets"]
        for lab in grid["labels"]
        for s in grid["seeds"]
        for m in grid["methods"]
    ]


def _deep_update(base: dict[str, Any], upd: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in (upd or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_update(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _prepared(grid: dict[str, Any], ds: dict[str, Any], root: Path, say: Callable[[str], None]) -> Path:
    from .data.store import prepare

    if ds.get("prepared"):
        return Path(ds["prepared"])
    out = root / "prepared" / ds["name"]
    if (out / "plan.json").is_file():
        return out
    opts = dict(ds.get("prepare") or {})
    say(f"preparing {ds['name']} ({ds['dataset']} from {ds['src']})")
    prepare(ds["dataset"], ds["src"], out, progress=grid.get("progress", True), log=say, **opts)
    return out


def _wait_or_lock(run: Path) -> bool:
    """True if this process must run ``run`` (it took the lock); False once another finished it."""
    run.mkdir(parents=True, exist_ok=True)
    lock = run / ".lock"
    while True:
        if is_done(run):
            return False
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            return True
        except FileExistsError:
            try:
                pid = int(lock.read_text() or 0)
                os.kill(pid, 0)
            except (ValueError, ProcessLookupError, PermissionError, OSError):
                lock.unlink(missing_ok=True)  # stale lock of a dead process
                continue
            time.sleep(5)


def run_benchmark(
    config: str | Path,
    out: str | Path,
    cells: str | None = None,
    dry_run: bool = False,
    overrides: list[str] | None = None,
    log_fn: Callable[[str], None] | None = None,
    report: bool = True,
) -> str:
    """Run (or resume) a grid and write its report.

    Args:
        config: grid YAML file (see the module docstring).
        out: benchmark folder.
        cells: ``"i/n"``: only the fine-tuning cells i, i+n, i+2n... (0-based).
        dry_run: only list the cells.
        overrides: ``key=value`` changes of the grid file (dotted keys).
        log_fn: where messages go.
        report: write ``out/report`` at the end.

    Returns:
        A short text: what ran, what was skipped, where the report is.
    """
    from .finetune import finetune
    from .pretrain import pretrain

    say = log_fn or print
    grid = load_grid(config, overrides)
    root = Path(out)
    all_cells = plan_cells(grid)
    mine = all_cells
    if cells:
        try:
            i, n = (int(x) for x in cells.split("/"))
            assert 0 <= i < n
        except (ValueError, AssertionError):
            raise ConfigError(f"--cells expects i/n with 0 <= i < n, got '{cells}'") from None
        mine = all_cells[i::n]
    if dry_run:
        return "\n".join(c.name for c in mine) + f"\n{len(mine)} of {len(all_cells)} cells"
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(root / "grid.json", grid)
    datasets = {d["name"]: d for d in grid["datasets"]}
    stores: dict[str, Path] = {}
    ran = skipped = 0
    for k, cell in enumerate(mine, 1):
        run_dir = root / "finetune" / cell.name
        if is_done(run_dir):
            skipped += 1
            continue
        ds = datasets[cell.dataset]
        if cell.dataset not in stores:
            stores[cell.dataset] = _prepared(grid, ds, root, say)
        store = stores[cell.dataset]
        init = None
        if cell.method != "scratch":
            pre_dir = root / "pretrain" / f"{cell.method}__{cell.dataset}"
            if _wait_or_lock(pre_dir):
                try:
                    pdict = _deep_update(grid.get("pretrain", {}), (grid.get("pretrain_methods") or {}).get(cell.method, {}))
                    pdict = _deep_update(pdict, ds.get("pretrain", {}))
                    pdict.update({"method": cell.method, "out": str(pre_dir)})
                    pdict.setdefault("data", {})["path"] = str(store)
                    pcfg = config_from_dict(PretrainConfig, pdict)
                    say(f"[pretrain] {cell.method} on {cell.dataset}")
                    pretrain(pcfg, log_fn=say)
                finally:
                    (pre_dir / ".lock").unlink(missing_ok=True)
            init = str(pre_dir / "pretrain.pt")
        fdict = _deep_update(grid.get("finetune", {}), ds.get("finetune", {}))
        fdict.update({"out": str(run_dir), "init": init, "protocol": grid["protocol"], "method": cell.method})
        fdict.setdefault("data", {}).update({"path": str(store), "labels": cell.labels})
        fdict.setdefault("train", {})["seed"] = cell.seed
        fcfg = config_from_dict(FinetuneConfig, fdict)
        say(f"[finetune {k}/{len(mine)}] {cell.name}")
        finetune(fcfg, log_fn=say)
        ran += 1
    text = f"grid '{grid.get('name', Path(config).stem)}': {ran} cells run, {skipped} already done, {len(all_cells) - len(mine)} left to other processes"
    walls = [(read_run(d) or {}).get("wall_s") for d in [*(root / "pretrain").glob("*"), *(root / "finetune").glob("*")]]
    timed = [w for w in walls if isinstance(w, (int, float))]
    if timed:
        text += f"\ncompute: {sum(timed) / 60:.1f} min over {len(timed)} timed runs (pre-training + fine-tuning, wall_s in run.json)"
    if report and all(is_done(root / "finetune" / c.name) for c in all_cells):
        from .reporting.report import report as make_report

        rep = make_report(root)
        text += f"\nreport: {getattr(rep, 'out_dir', root / 'report')}"
    return text
