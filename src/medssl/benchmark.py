"""Benchmark grids: pre-training methods (plus Scratch) x datasets x label fractions x seeds.

Each seed is one whole pipeline, an independent replicate: the pre-training seed, the split and the
fine-tuning seed. So each pre-training runs once per (method, dataset, seed) and is reused by every
fine-tuning of that seed (label fractions); ``pretrain_per_seed: false`` instead runs one
pre-training per (method, dataset), seeded by the grid's ``pretrain.train.seed``, shared by every
seed (cheaper, but the seeds then say nothing about the variation between pre-training runs: the
report counts the distinct pre-trainings behind each comparison and says so). Finished cells are skipped on a rerun, so an interrupted grid resumes; ``cells="i/n"`` runs every
n-th fine-tuning cell starting at i, so a grid splits across machines or GPUs (a pre-training needed
by two processes is run by one of them while the other waits for it).

Grid file (YAML)::

    name: cpu-scale
    protocol: standard            # or paper
    methods: [scratch, pcl, supercl, macl]
    labels: ["10%"]
    seeds: [0, 1, 2]
    pretrain_per_seed: true       # default; false = one pre-training shared by every seed
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
    variants:                     # more fine-tunings of the same cells and pre-trainings (optional)
      steps150: {finetune: {train: {max_steps: 150}}}
      paper: {methods: [scratch, macl], finetune: {recipe: paper}}

A variant fine-tunes the grid's cells again (those of its ``methods``, default all) with its
``finetune`` settings merged over the grid's, from the same pre-trainings, into
``OUT/variants/<name>/finetune/<cell>``; ``OUT/variants/<name>/report`` is its report (the main
report leaves the variants out), so budgets and fine-tuning recipes compare on one set of replicates.

Before any work (and for ``--dry-run``) every cell is validated in full: the grid's keys, the
methods, each dataset's reader, source folder and prepare options, every cell's pre-training and
fine-tuning configuration (keys, types, ranges, the method's arguments and minimum batch size,
device, optimiser, loss), and runs already in the benchmark folder against their configuration.
A real run then prepares the stores its cells need and checks every cell's split (a count of
labelled patients larger than the training pool) before the first training starts.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .config import SEED_MAX, FinetuneConfig, PretrainConfig, config_from_dict
from .engine.rundir import bind_run_dir, is_done, read_run
from .errors import ConfigError, DataError
from .recipes import resolve_recipe
from .utils.files import atomic_write_json
from .utils.locks import FolderLock, try_lock, wait_or_lock

__all__ = [
    "CellPlan",
    "GridCell",
    "load_grid",
    "plan_cells",
    "pretrain_name",
    "run_benchmark",
    "validate_grid",
    "variant_plans",
]

#: the keys a grid file may have
GRID_KEYS = (
    "name",
    "protocol",
    "methods",
    "labels",
    "seeds",
    "datasets",
    "pretrain",
    "pretrain_methods",
    "finetune",
    "progress",
    "pretrain_per_seed",
    "variants",
)
#: the keys of one ``variants`` entry
VARIANT_KEYS = ("finetune", "methods")
#: the keys of one ``datasets`` entry
DATASET_KEYS = ("name", "dataset", "src", "prepare", "prepared", "pretrain", "finetune")
#: the method name of the fine-tuning row without pre-training
SCRATCH = "scratch"


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


@dataclass
class CellPlan:
    """One fine-tuning cell with its resolved configurations (and that of its pre-training, if any)."""

    cell: GridCell
    finetune: FinetuneConfig
    pretrain: PretrainConfig | None = None
    pretrain_dir: Path | None = None
    notes: list[str] = field(default_factory=list)
    #: the grid variant this fine-tuning belongs to (None: the grid's own cells)
    variant: str | None = None

    @property
    def label(self) -> str:
        """The cell's name, with its variant: ``macl__acdc__10pct__s0 [steps150]``."""
        return self.cell.name + (f" [{self.variant}]" if self.variant else "")


def _yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML ({' '.join(str(e).split())[:160]})") from None


def load_grid(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read a grid file, apply ``key=value`` overrides (dotted keys, YAML values) and check its shape.

    Raises:
        ConfigError: a missing file, invalid YAML, unknown keys, or lists of the wrong type.
    """
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p}: is a folder; --config takes a grid YAML file")
    if not p.is_file():
        raise ConfigError(f"{p}: grid file not found")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a text file (binary data); --config takes a grid YAML file") from None
    grid = _yaml(text, str(p))
    grid = {} if grid is None else grid
    if not isinstance(grid, dict):
        raise ConfigError(f"{p}: expected a mapping of grid settings at the top level, got a {type(grid).__name__}")
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got '{item}'")
        key, value = item.split("=", 1)
        node = grid
        parts = key.strip().split(".")
        if parts[0] not in GRID_KEYS:  # the user's --set, not the grid file, names an unknown key
            raise ConfigError(f"--set {key.strip()}: unknown grid key '{parts[0]}'; known: {', '.join(GRID_KEYS)}")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: '{part}' is not a section of the grid")
        node[parts[-1]] = _yaml(value, f"--set {key}")
    _check_grid_shape(grid, p)
    grid.setdefault("labels", ["10%"])
    grid.setdefault("seeds", [1234])
    grid.setdefault("protocol", "standard")
    grid.setdefault("pretrain_per_seed", True)
    return grid


def _check_grid_shape(grid: dict[str, Any], p: Path) -> None:
    from .data.splits import canonical_labels

    unknown = sorted(set(grid) - set(GRID_KEYS))
    if unknown:
        raise ConfigError(f"{p}: unknown grid key '{unknown[0]}'; known: {', '.join(GRID_KEYS)}")
    for key in ("methods", "datasets"):
        if not grid.get(key) or not isinstance(grid[key], list):
            raise ConfigError(f"{p}: the grid needs a non-empty '{key}' list")
    for key in ("pretrain", "pretrain_methods", "finetune"):
        if grid.get(key) is not None and not isinstance(grid[key], dict):
            raise ConfigError(f"{p}: '{key}' must be a mapping of settings, got {grid[key]!r}")
    _check_methods_and_seeds(grid, p)
    if "labels" in grid:
        if not isinstance(grid["labels"], list) or not grid["labels"]:
            raise ConfigError(f'{p}: labels must be a non-empty list such as ["10%", "25%"], got {grid["labels"]!r}')
        try:
            grid["labels"] = list(dict.fromkeys(canonical_labels(v) for v in grid["labels"]))
        except ConfigError as e:
            raise ConfigError(f"{p}: {e}") from None
    if not isinstance(grid.get("pretrain_per_seed", True), bool):
        raise ConfigError(f"{p}: pretrain_per_seed must be true or false, got {grid['pretrain_per_seed']!r}")
    if grid.get("pretrain_per_seed", True) and "seed" in ((grid.get("pretrain") or {}).get("train") or {}):
        raise ConfigError(
            f"{p}: pretrain.train.seed: each grid seed seeds its own pre-training (pretrain_per_seed: true); "
            "remove it, or set pretrain_per_seed: false to share one pre-training across seeds"
        )
    _check_variants_shape(grid.get("variants"), grid["methods"], p)
    if grid.get("protocol", "standard") not in ("paper", "standard"):
        raise ConfigError(f"{p}: protocol must be paper or standard, got {grid.get('protocol')!r}")
    names: set[str] = set()
    for i, ds in enumerate(grid["datasets"]):
        where = f"{p}: datasets[{i}]"
        if not isinstance(ds, dict):
            raise ConfigError(f"{where}: expected a mapping (name, dataset, src, ...), got {ds!r}")
        bad = sorted(set(ds) - set(DATASET_KEYS))
        if bad:
            raise ConfigError(f"{where}: unknown key '{bad[0]}'; known: {', '.join(DATASET_KEYS)}")
        name = ds.get("name")
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise ConfigError(f"{where}: needs a 'name' (a folder name), got {name!r}")
        if name in names:
            raise ConfigError(f"{where}: the name '{name}' is used twice")
        names.add(name)
        if not ds.get("prepared") and not (ds.get("dataset") and ds.get("src")):
            raise ConfigError(
                f"{where} ({name}): give 'dataset' and 'src' (prepared by the benchmark) or 'prepared' (a prepared store)"
            )
        for key in ("prepare", "pretrain", "finetune"):
            if ds.get(key) is not None and not isinstance(ds[key], dict):
                raise ConfigError(f"{where} ({name}): '{key}' must be a mapping, got {ds[key]!r}")


def _check_methods_and_seeds(grid: dict[str, Any], p: Path) -> None:
    """``methods``: names, each once; ``seeds`` (when given): integers in [0, SEED_MAX], each once (a seed
    or method listed twice would make two cells of one run folder, one replicate counted twice)."""
    if not all(isinstance(m, str) and m for m in grid["methods"]):
        raise ConfigError(f"{p}: methods must be a list of method names, got {grid['methods']!r}")
    twice = sorted({m for m in grid["methods"] if grid["methods"].count(m) > 1})
    if twice:
        raise ConfigError(f"{p}: methods: {twice[0]} is listed twice")
    if "seeds" not in grid:
        return
    seeds = grid["seeds"]
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= SEED_MAX for x in seeds)
    ):
        raise ConfigError(f"{p}: seeds must be a non-empty list of integers in [0, {SEED_MAX}], got {seeds!r}")
    dup = sorted({x for x in seeds if seeds.count(x) > 1})
    if dup:
        raise ConfigError(f"{p}: seeds: {dup[0]} is listed twice; each seed is one replicate")


def _check_variants_shape(variants: Any, grid_methods: list[str], p: Path) -> None:
    """``variants``: a mapping of folder names to ``{finetune: {...}, methods: [...]}``."""
    if variants is None:
        return
    if not isinstance(variants, dict):
        raise ConfigError(
            f"{p}: variants must be a mapping of names to {{finetune: ..., methods: ...}}, got {variants!r}"
        )
    for name, v in variants.items():
        where = f"{p}: variants.{name}"
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise ConfigError(f"{p}: variants: a variant needs a folder name, got {name!r}")
        if not isinstance(v, dict):
            raise ConfigError(f"{where}: expected a mapping (finetune, methods), got {v!r}")
        bad = sorted(set(v) - set(VARIANT_KEYS))
        if bad:
            raise ConfigError(f"{where}: unknown key '{bad[0]}'; known: {', '.join(VARIANT_KEYS)}")
        if v.get("finetune") is not None and not isinstance(v["finetune"], dict):
            raise ConfigError(f"{where}: 'finetune' must be a mapping of settings, got {v['finetune']!r}")
        methods = v.get("methods")
        if methods is not None and (
            not isinstance(methods, list) or not methods or not set(methods) <= set(grid_methods)
        ):
            raise ConfigError(f"{where}: methods must be a non-empty list of the grid's methods, got {methods!r}")


def plan_cells(grid: dict[str, Any]) -> list[GridCell]:
    """Every fine-tuning cell, ordered dataset > labels > seed > method."""
    from .data.splits import canonical_labels

    return [
        GridCell(m, d["name"], canonical_labels(lab), int(s))
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


def _store_path(ds: dict[str, Any], root: Path) -> Path:
    return Path(ds["prepared"]) if ds.get("prepared") else root / "prepared" / ds["name"]


def _check_dataset(ds: dict[str, Any], where: str) -> None:
    """A dataset entry's reader, source folder and prepare options (or its prepared store)."""
    from .data.readers import resolve_spec, scan_dataset
    from .data.store import prepare
    from .preflight import check_store_path

    if ds.get("prepared"):
        try:
            check_store_path(str(ds["prepared"]))
        except ConfigError as e:
            raise ConfigError(f"{where}: prepared: {e}") from None
        except DataError as e:
            raise DataError(None, f"{where}: prepared: {e}") from None
        return
    opts = dict(ds.get("prepare") or {})
    allowed = [
        n
        for n, prm in inspect.signature(prepare).parameters.items()
        if prm.kind is inspect.Parameter.KEYWORD_ONLY and n != "log"
    ]
    bad = sorted(set(opts) - set(allowed))
    if bad:
        raise ConfigError(f"{where}: prepare: unknown option '{bad[0]}'; known: {', '.join(allowed)}")
    spacing = opts.get("target_spacing", "default")
    if spacing not in ("default", None) and (
        isinstance(spacing, bool) or not isinstance(spacing, (int, float)) or not spacing > 0
    ):
        raise ConfigError(
            f"{where}: prepare: target_spacing must be a positive number of mm, null (keep) or default, got {spacing!r}"
        )
    reader_options = opts.get("reader_options") or {}
    if not isinstance(reader_options, dict):
        raise ConfigError(f"{where}: prepare: reader_options must be a mapping, got {reader_options!r}")
    try:
        resolve_spec(ds["dataset"], ds["src"], **reader_options)
        scan_dataset(ds["dataset"], ds["src"], **{**resolve_spec(ds["dataset"]).default_options, **reader_options})
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    except DataError as e:
        raise DataError(None, f"{where}: {e}") from None


def _prepared(grid: dict[str, Any], ds: dict[str, Any], root: Path, say: Callable[[str], None]) -> Path:
    from .data.store import prepare

    if ds.get("prepared"):
        return Path(ds["prepared"])
    out = root / "prepared" / ds["name"]
    ready = lambda: (out / "plan.json").is_file()  # noqa: E731 - plan.json is written last
    if ready():
        return out
    # one process prepares a store that several processes (--cells i/n) need; the others wait
    lock = _wait_or_lock(root / "prepared" / ".locks" / ds["name"], ready)
    if lock:
        with lock:
            opts = dict(ds.get("prepare") or {})
            say(f"preparing {ds['name']} ({ds['dataset']} from {ds['src']})")
            prepare(ds["dataset"], ds["src"], out, progress=grid.get("progress", True), log=say, **opts)
    return out


def _try_lock(run: Path, done: Callable[[], bool] | None = None) -> FolderLock | Literal[False] | None:
    """Take ``run/.lock`` if ``run`` is neither finished nor being made (:func:`medssl.utils.locks.try_lock`):
    a lock (this process makes it), False (finished), None (another live process holds the lock)."""
    return try_lock(run, done or (lambda: is_done(run)))


def _wait_or_lock(run: Path, done: Callable[[], bool] | None = None) -> FolderLock | Literal[False]:
    """A lock if this process must make ``run``; False once another finished it.

    ``done`` tells whether it is finished (default: the run folder's status).
    """
    return wait_or_lock(run, done or (lambda: is_done(run)))


def pretrain_name(grid: dict[str, Any], cell: GridCell) -> str:
    """The pre-training folder of a cell: ``method__dataset__s<seed>`` (one per seed, the default) or
    ``method__dataset`` (``pretrain_per_seed: false``, shared by every seed)."""
    shared = f"{cell.method}__{cell.dataset}"
    return shared if grid.get("pretrain_per_seed", True) is False else f"{shared}__s{cell.seed}"


def _cell_configs(grid: dict[str, Any], ds: dict[str, Any], cell: GridCell, root: Path) -> CellPlan:
    """The resolved fine-tuning (and pre-training) configuration of one cell, checked without data."""
    from .preflight import check_finetune_settings, check_pretrain_settings
    from .pretrain import apply_variant

    store = _store_path(ds, root)
    pcfg = pre_dir = None
    if cell.method != SCRATCH:
        pre_dir = root / "pretrain" / pretrain_name(grid, cell)
        pdict = _deep_update(grid.get("pretrain") or {}, (grid.get("pretrain_methods") or {}).get(cell.method) or {})
        pdict = _deep_update(pdict, ds.get("pretrain") or {})
        pdict.update({"method": cell.method, "out": str(pre_dir)})
        if grid.get("pretrain_per_seed", True):
            pdict.setdefault("train", {})["seed"] = cell.seed
        pdict.setdefault("data", {})["path"] = str(store)
        try:
            pcfg = config_from_dict(PretrainConfig, pdict)
            check_pretrain_settings(pcfg)
            pcfg = apply_variant(pcfg)
        except ConfigError as e:
            raise ConfigError(f"pre-training of {cell.method} on {cell.dataset}: {e}") from None
    fdict = _deep_update(grid.get("finetune") or {}, ds.get("finetune") or {})
    fdict.update(
        {
            "out": str(root / "finetune" / cell.name),
            "init": str(pre_dir / "pretrain.pt") if pre_dir else None,
            "protocol": grid["protocol"],
            "method": cell.method,
        }
    )
    fdict.setdefault("data", {}).update({"path": str(store), "labels": cell.labels})
    fdict.setdefault("train", {})["seed"] = cell.seed
    try:
        fcfg = resolve_recipe(config_from_dict(FinetuneConfig, fdict))  # as finetune() resolves it
        check_finetune_settings(fcfg)
        _check_same_network(pcfg, fcfg)
    except ConfigError as e:
        raise ConfigError(f"cell {cell.name}: {e}") from None
    return CellPlan(cell, fcfg, pcfg, pre_dir)


def _check_same_network(pcfg: PretrainConfig | None, fcfg: FinetuneConfig) -> None:
    """The fine-tuning network can load the pre-trained one: the same width and depth (else the cell
    would fail only after its pre-training has run)."""
    for key in ("base_width", "depth"):
        if pcfg is not None and getattr(pcfg.model, key) != getattr(fcfg.model, key):
            raise ConfigError(
                f"model.{key}: pre-training uses {getattr(pcfg.model, key)}, fine-tuning {getattr(fcfg.model, key)}: "
                f"the pre-trained weights would not fit; give both the same model.{key} (pretrain/finetune sections)"
            )


def variant_plans(grid: dict[str, Any], root: str | Path, cells: list[GridCell] | None = None) -> list[CellPlan]:
    """The fine-tunings of the grid's ``variants``: each variant's methods' cells, its ``finetune``
    settings merged over the grid's, the same pre-trainings, out ``root/variants/<name>/finetune/<cell>``.

    Raises:
        ConfigError: a cell configuration that is not valid, naming the variant.
    """
    import dataclasses

    root = Path(root)
    datasets = {d["name"]: d for d in grid["datasets"]}
    out: list[CellPlan] = []
    for name, v in (grid.get("variants") or {}).items():
        vgrid = {**grid, "finetune": _deep_update(grid.get("finetune") or {}, v.get("finetune") or {})}
        for c in cells if cells is not None else plan_cells(grid):
            if v.get("methods") and c.method not in v["methods"]:
                continue
            try:
                plan = _cell_configs(vgrid, datasets[c.dataset], c, root)
            except ConfigError as e:
                raise ConfigError(f"variants.{name}: {e}") from None
            run = root / "variants" / name / "finetune" / c.name
            plan.finetune = dataclasses.replace(plan.finetune, out=str(run))
            plan.variant = name
            out.append(plan)
    return out


def validate_grid(grid: dict[str, Any], root: str | Path, cells: list[GridCell] | None = None) -> list[CellPlan]:
    """Check every cell of the grid before any work; writes nothing.

    Checks the methods, each dataset (reader, source folder, prepare options, or prepared store),
    every cell's configurations (see :func:`_cell_configs`), the runs already in ``root`` against
    them, and, where a dataset's store is already prepared, every cell's split.

    Args:
        grid: from :func:`load_grid`.
        root: the benchmark folder.
        cells: the cells to check (default: all).

    Returns:
        One :class:`CellPlan` per cell, in order.

    Raises:
        ConfigError, DataError: the first problem, naming the dataset, method or cell.
    """
    from .methods.catalog import load_all_methods
    from .registry import METHODS

    root = Path(root)
    load_all_methods()
    known = [SCRATCH, *METHODS.names("*")]
    for m in grid["methods"]:
        if m not in known:
            raise ConfigError(f"methods: unknown method '{m}'; known: {', '.join(known)}")
    for m in grid.get("pretrain_methods") or {}:
        # a registered method that the grid does not run is allowed (`--set methods=[...]` narrows a grid)
        if m not in known or m == SCRATCH:
            raise ConfigError(f"pretrain_methods: unknown method '{m}'; known: {', '.join(known[1:])}")
    datasets = {d["name"]: d for d in grid["datasets"]}
    for name, ds in datasets.items():
        _check_dataset(ds, f"datasets: {name}")
    cells = cells if cells is not None else plan_cells(grid)
    plans = [_cell_configs(grid, datasets[c.dataset], c, root) for c in cells]
    plans += variant_plans(grid, root, cells)
    seen: set[Path] = set()
    for plan in plans:
        pairs: list[tuple[str, FinetuneConfig | PretrainConfig, str]] = [(plan.finetune.out, plan.finetune, "finetune")]
        # a cell has a pre-training folder exactly when it has a pre-training (see _cell_configs)
        if plan.pretrain is not None and plan.pretrain_dir is not None and plan.pretrain_dir not in seen:
            seen.add(plan.pretrain_dir)
            pairs.insert(0, (plan.pretrain.out, plan.pretrain, "pretrain"))
        for out, cfg, kind in pairs:
            bound = bind_run_dir(
                out, cfg, kind, resume=True, remedy="change the grid back, or delete that run folder to run it again"
            )
            _check_reuse(bound, cfg, kind)
    stores = {name: _store_path(ds, root) for name, ds in datasets.items()}
    ready = {name for name, path in stores.items() if (path / "plan.json").is_file()}
    check_splits([p for p in plans if p.cell.dataset in ready])
    return plans


def _check_reuse(bound: Any, cfg: Any, kind: str) -> None:
    """A run of the grid that will be resumed or reused was made on the same store and pre-trained weights,
    and a finished fine-tuning cell has whole result files (:mod:`medssl.reporting.runfiles`)."""
    from .engine.provenance import check_run_inputs
    from .reporting.runfiles import run_files_problem

    if bound.status not in ("done", "resume"):
        return
    check_run_inputs(bound.out, bound.info, cfg, remedy="delete that run folder to run it again")
    problem = run_files_problem(bound.out) if bound.done and kind == "finetune" else None
    if problem:
        raise DataError(
            None,
            f"finished cell {bound.out} cannot be reused: {problem}; rewrite its results from its predictions "
            f"(medssl evaluate {bound.out}) or delete that run folder to run it again",
        )


def _unchecked_note(grid: dict[str, Any], root: Path) -> str:
    """What a dry run could not check: the splits (label counts) of datasets not yet prepared."""
    todo = [d["name"] for d in grid["datasets"] if not (_store_path(d, root) / "plan.json").is_file()]
    if not todo:
        return ""
    return (
        f" as far as can be checked before preparing: the splits (label counts vs patients) of "
        f"{', '.join(todo)} are checked once prepared"
    )


def check_splits(plans: list[CellPlan]) -> None:
    """Every cell's split (a count of labelled patients must fit the training pool) and every
    pre-training's data (batch size vs slices), on prepared stores; writes nothing."""
    from .data.splits import make_split
    from .data.store import SliceStore
    from .preflight import check_pretrain

    stores: dict[str, Any] = {}
    for plan in plans:
        f = plan.finetune
        if f.data.path not in stores:
            stores[f.data.path] = SliceStore(f.data.path)
        try:
            make_split(
                stores[f.data.path],
                f.data.labels,
                seed=f.data.split_seed if f.data.split_seed is not None else f.train.seed,
                protocol=f.protocol,
                kind=f.data.split,
                test_fraction=f.data.test_fraction,
                val_fraction=f.data.val_fraction,
            )
            if plan.pretrain is not None:
                check_pretrain(plan.pretrain)
        except ConfigError as e:
            raise ConfigError(f"cell {plan.cell.name}: {e}") from None


@contextlib.contextmanager
def _named(config: str | Path) -> Iterator[None]:
    """Prefix validation errors with the grid file."""
    try:
        yield
    except ConfigError as e:
        raise ConfigError(f"{config}: {e}") from None
    except DataError as e:
        raise DataError(None, f"{config}: {e}") from None


def _pretrain_line(grid: dict[str, Any], plans: list[CellPlan]) -> str:
    """One line: how many pre-trainings the grid runs and whether seeds share them."""
    n = len({p.pretrain_dir for p in plans if p.pretrain_dir is not None})
    how = (
        "one per method, dataset and seed: independent replicates"
        if grid.get("pretrain_per_seed", True)
        else "pretrain_per_seed: false, one per method and dataset SHARED by every seed"
    )
    return f"{n} pre-trainings ({how})"


def _record_command(
    root: Path,
    config: str | Path,
    overrides: list[str] | None,
    cells: str | None,
    pretrain_only: bool,
    only: list[str] | None = None,
) -> None:
    """``root/commands/<time>_<pid>.json``: this invocation (argv, the grid file's text, overrides, commit),
    one file per process so that ``--cells i/n`` processes never write the same file."""
    import sys
    from datetime import datetime, timezone

    from .utils.files import git_commit

    now = datetime.now(timezone.utc)
    record = {
        "argv": ["medssl", *sys.argv[1:]],
        "config": str(config),
        "config_text": Path(config).read_text(),
        "overrides": list(overrides or []),
        "cells": cells,
        "only": list(only or []),
        "pretrain_only": pretrain_only,
        "git_commit": git_commit(),
        "started_at": now.isoformat(timespec="seconds"),
    }
    atomic_write_json(root / "commands" / f"{now.strftime('%Y%m%dT%H%M%S')}_{os.getpid()}.json", record)


def _compute_line(runs: list[Path]) -> str:
    """``compute: M min over N timed runs = H core-hours``: wall time x torch threads (run.json) summed.

    The wall time is ``wall_s_total`` (every attempt of a resumed run) where the run recorded it,
    else ``wall_s`` (its last attempt: runs made before ``wall_s_total`` existed).
    """
    timed = []
    for d in runs:
        info = read_run(d) or {}
        wall = info.get("wall_s_total", info.get("wall_s"))
        if isinstance(wall, (int, float)):
            threads = (info.get("environment") or {}).get("torch_threads")
            timed.append((float(wall), threads if isinstance(threads, int) and threads > 0 else None))
    if not timed:
        return ""
    minutes = sum(w for w, _ in timed) / 60
    core_h = sum(w * (t or 1) for w, t in timed) / 3600
    unknown = sum(t is None for _, t in timed)
    return (
        f"\ncompute: {minutes:.1f} min over {len(timed)} timed runs (pre-training + fine-tuning, wall time in run.json)"
        f" = {core_h:.2f} core-hours (wall time x torch threads"
        + (f"; {unknown} runs without a thread count counted as 1)" if unknown else ")")
    )


def _parse_share(cells: str | None) -> tuple[int, int]:
    """``--cells i/n`` as ``(i, n)``; ``(0, 1)`` (every cell) when not given."""
    if not cells:
        return (0, 1)
    try:
        i, n = (int(x) for x in cells.split("/"))
        assert 0 <= i < n
    except (ValueError, AssertionError):
        raise ConfigError(f"--cells expects i/n with 0 <= i < n, got '{cells}'") from None
    return (i, n)


#: the keys of ``--only`` (``variant=-``: the grid's own cells, no variant)
ONLY_KEYS = ("method", "seed", "dataset", "labels", "variant")


def parse_only(specs: list[str] | None) -> list[dict[str, str]]:
    """``--only`` values (``key=value[,key=value...]``) as conditions; a cell is selected when it meets
    every condition of one of them.

    Raises:
        ConfigError: a malformed condition or an unknown key.
    """
    out: list[dict[str, str]] = []
    for spec in specs or []:
        cond: dict[str, str] = {}
        for part in spec.split(","):
            key, eq, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or not value:
                raise ConfigError(f"--only expects key=value[,key=value...], got '{spec}'")
            if key not in ONLY_KEYS:
                raise ConfigError(f"--only: unknown key '{key}' in '{spec}'; known: {', '.join(ONLY_KEYS)}")
            cond[key] = value
        out.append(cond)
    return out


def _cell_values(plan: CellPlan) -> dict[str, str]:
    """A plan's values of the ``--only`` keys, as strings (labels as written in the grid: ``10%``)."""
    c = plan.cell
    return {
        "method": c.method,
        "seed": str(c.seed),
        "dataset": c.dataset,
        "labels": c.labels,
        "variant": plan.variant or "-",
    }


def select_cells(plans: list[CellPlan], only: list[dict[str, str]]) -> list[CellPlan]:
    """The plans that meet one of the ``only`` conditions (:func:`parse_only`; all plans when empty).

    Raises:
        ConfigError: a condition that selects no cell (a typo would otherwise run nothing, silently).
    """
    if not only:
        return plans

    def meets(plan: CellPlan, cond: dict[str, str]) -> bool:
        values = _cell_values(plan)
        return all(values[k] == v for k, v in cond.items())

    for cond in only:
        if not any(meets(p, cond) for p in plans):
            raise ConfigError(f"--only {','.join(f'{k}={v}' for k, v in cond.items())}: no cell of the grid matches it")
    return [p for p in plans if any(meets(p, c) for c in only)]


def _my_cells(plans: list[CellPlan], share: tuple[int, int], pretrain_only: bool) -> list[CellPlan]:
    """This process's cells: every n-th fine-tuning cell; with ``pretrain_only``, the first cell of
    every distinct pre-training, starting at the i-th n-th of the list: the processes then claim the
    pre-trainings one at a time (a lock each), so that they share them whatever each one costs."""
    i, n = share
    if not pretrain_only:
        return plans[i::n]
    first: dict[Path, CellPlan] = {}
    for plan in plans:
        if plan.pretrain is not None and plan.pretrain_dir is not None:
            first.setdefault(plan.pretrain_dir, plan)
    ordered = list(first.values())
    start = i * len(ordered) // n
    return ordered[start:] + ordered[:start]


def _write_reports(root: Path, grid: dict[str, Any]) -> str:
    """The report of the grid's cells and one per variant; returns the lines naming them."""
    from .reporting.report import report as make_report

    text = ""
    for folder in [root, *(root / "variants" / v for v in grid.get("variants") or {})]:
        rep = make_report(folder)
        text += f"\nreport: {getattr(rep, 'out_dir', folder / 'report')}"
        text += "".join(f"\nwarning: left out of the report: {w.removeprefix('ERROR: ')}" for _, w in rep.skipped)
    return text


def run_benchmark(
    config: str | Path,
    out: str | Path,
    cells: str | None = None,
    dry_run: bool = False,
    overrides: list[str] | None = None,
    log_fn: Callable[[str], None] | None = None,
    report: bool = True,
    pretrain_only: bool = False,
    status: bool = False,
    only: list[str] | None = None,
) -> str:
    """Run (or resume) a grid and write its report.

    Args:
        config: grid YAML file (see the module docstring).
        out: benchmark folder.
        cells: ``"i/n"``: only the fine-tuning cells i, i+n, i+2n... (0-based).
        dry_run: validate every cell (as a real run does first) and list this process's cells.
        overrides: ``key=value`` changes of the grid file (dotted keys).
        log_fn: where messages go.
        report: write ``out/report`` at the end.
        pretrain_only: run only the pre-trainings that this process's cells need (fine-tune later,
            or elsewhere, with the same command without it).
        status: run nothing; say which runs are done, started or pending, the compute spent and an
            estimate of what is left (:mod:`medssl.grid_status`).
        only: ``key=value[,...]`` conditions (:func:`parse_only`): only the cells meeting one (then ``cells``).

    Returns:
        A short text: what ran, what was skipped, where the report is.

    Raises:
        ConfigError, DataError: a cell that cannot run (before any work; splits once stores are prepared).
    """
    say = log_fn or print
    grid = load_grid(config, overrides)
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise DataError(root, "exists and is not a folder; give a folder for the benchmark (--out)")
    share, conds = _parse_share(cells), parse_only(only)
    with _named(config):
        every = validate_grid(grid, root)  # every cell (and variant), before any work
    plans = select_cells(every, conds)
    if status:
        from .grid_status import grid_status

        return grid_status(plans)
    mine = _my_cells(plans, share, pretrain_only)
    if dry_run:
        return _dry_run_text(grid, root, plans, mine, pretrain_only)
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(root / "grid.json", grid)
    _record_command(root, config, overrides, cells, pretrain_only, only)
    todo = [p for p in mine if not is_done(Path(p.finetune.out))]
    _prepare_cells(grid, root, config, todo, say)
    ran = _run_cells(todo, mine, pretrain_only, say)
    text = _outcome_line(grid.get("name", Path(config).stem), plans, mine, todo, ran, pretrain_only)
    text += "\n" + _pretrain_line(grid, plans)
    runs = [*(root / "pretrain").glob("*"), *(root / "finetune").glob("*"), *root.glob("variants/*/finetune/*")]
    return text + _compute_line(runs) + (_write_reports(root, grid) if report and _all_done(every) else "")


def _all_done(plans: list[CellPlan]) -> bool:
    """Whether every fine-tuning of ``plans`` is finished (the report waits for the whole grid, whatever
    ``--only`` or ``--cells`` ran)."""
    return all(is_done(Path(p.finetune.out)) for p in plans)


def _outcome_line(
    name: str, plans: list[CellPlan], mine: list[CellPlan], todo: list[CellPlan], ran: int, pretrain_only: bool
) -> str:
    """The first line of what a benchmark process prints at its end."""
    if pretrain_only:
        dirs = {p.pretrain_dir for p in plans if p.pretrain_dir is not None}
        finished = sum(is_done(d) for d in dirs)
        return f"grid '{name}': {finished} of {len(dirs)} pre-trainings done (fine-tuning not run: --pretrain-only)"
    busy = len(todo) - ran  # skipped: another process held their lock (or finished them meanwhile)
    return (
        f"grid '{name}': {ran} cells run, {len(mine) - len(todo)} already done, "
        + (f"{busy} being run by another process, " if busy else "")
        + f"{len(plans) - len(mine)} left to other processes"
    )


def _dry_run_text(
    grid: dict[str, Any], root: Path, plans: list[CellPlan], mine: list[CellPlan], pretrain_only: bool = False
) -> str:
    """What ``--dry-run`` prints: this process's cells (or pre-trainings), the pre-trainings, and that
    every cell is valid."""
    if pretrain_only:
        total = len({p.pretrain_dir for p in plans if p.pretrain is not None})
        lines = [f"pretrain {p.pretrain_dir.name}" for p in mine if p.pretrain_dir is not None]
        share = f"{len(mine)} of {total} pre-trainings"
    else:
        lines, share = [p.label for p in mine], f"{len(mine)} of {len(plans)} cells"
    return "\n".join(
        [
            *lines,
            _pretrain_line(grid, plans),
            f"all {len(plans)} cells of the grid are valid{_unchecked_note(grid, root)}",
            share,
        ]
    )


def _prepare_cells(
    grid: dict[str, Any], root: Path, config: str | Path, todo: list[CellPlan], say: Callable[[str], None]
) -> None:
    """The stores that the cells to run need, then every split of those cells: no late failure."""
    datasets = {d["name"]: d for d in grid["datasets"]}
    for name in dict.fromkeys(p.cell.dataset for p in todo):
        _prepared(grid, datasets[name], root, say)
    with _named(config):
        check_splits(todo)


def _run_cells(todo: list[CellPlan], mine: list[CellPlan], pretrain_only: bool, say: Callable[[str], None]) -> int:
    """Each cell that no other process is fine-tuning (its folder's lock: skipped if another live process
    holds it, as when two processes run one grid without ``--cells``): its pre-training (unless done, or
    being run by another process: then wait for it), then its fine-tuning. With ``pretrain_only``: each
    free pre-training, skipping those that another process is running. Returns the fine-tunings run."""
    from .finetune import finetune

    ran = 0
    for plan in todo:
        k = mine.index(plan) + 1
        if pretrain_only:
            _claim_pretraining(plan, say)
            continue
        cell = _try_lock(Path(plan.finetune.out))
        if cell is None:
            say(f"[finetune {k}/{len(mine)}] {plan.label}: being run by another process; skipped")
        if not cell:
            continue
        try:
            if plan.pretrain is not None and plan.pretrain_dir is not None:
                lock = _wait_or_lock(plan.pretrain_dir, functools.partial(has_weights, plan.pretrain_dir))
                if lock:
                    _pretrain_locked(plan, lock, say)
            say(f"[finetune {k}/{len(mine)}] {plan.label}")
            finetune(plan.finetune, log_fn=say)
            ran += 1
        finally:
            cell.release()
    return ran


def _claim_pretraining(plan: CellPlan, say: Callable[[str], None]) -> None:
    """Run ``plan``'s pre-training if it is neither finished nor being run by another process."""
    if plan.pretrain is None or plan.pretrain_dir is None:
        return
    got = _try_lock(plan.pretrain_dir, functools.partial(has_weights, plan.pretrain_dir))
    if got is None:
        say(f"[pretrain] {plan.pretrain_dir.name}: being run by another process; skipped")
    elif got:
        _pretrain_locked(plan, got, say)


def has_weights(run: Path) -> bool:
    """Whether the pre-training in ``run`` is finished and its ``pretrain.pt`` is there: the record of
    a finished run without its weights (a results bundle copied back) cannot initialise a fine-tuning."""
    return is_done(run) and (run / "pretrain.pt").is_file()


def _pretrain_locked(plan: CellPlan, lock: FolderLock, say: Callable[[str], None]) -> None:
    """``plan``'s pre-training, whose ``lock`` this process holds (released at the end, also on failure).
    A finished record without its weights is run again from the start (its files replaced)."""
    from .pretrain import pretrain

    assert plan.pretrain is not None and plan.pretrain_dir is not None
    again = is_done(plan.pretrain_dir)
    try:
        say(
            f"[pretrain] {plan.pretrain_dir.name}"
            + (": finished, but pretrain.pt is missing; run again" if again else "")
        )
        pretrain(plan.pretrain, resume=not again, log_fn=say)
    finally:
        lock.release()
