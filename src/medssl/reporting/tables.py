"""Collect benchmark run folders and lay their numbers out as the papers' result tables.

A fine-tuning run folder holds ``run.json`` (``"kind": "finetune"``, method, dataset, labels,
seed, protocol, ...), ``metrics.csv`` (one row per test case and foreground class),
``summary.json`` (``{"protocol", "mean": {"dsc", "jc", "hd95", "asd"}, "per_class"}``),
``log.csv`` (one row per epoch) and ``predictions/{case_id}.npy``. A run without
``summary.json`` is incomplete and skipped (and counted).

The tables follow the layout of the MACL (JBHI 2026, Tables I-II) and SuperCL (TIP 2026)
papers: rows are methods grouped by label fraction (Scratch first, then the papers' order),
columns are datasets, each with DSC / JC (in %) / HD95 / ASD, as mean ± std over seeds; per
column and label fraction the best value is bold and the second best underlined.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.rundir import init_load_problem
from ..evaluation.metrics import SPACING_UNKNOWN_NOTE
from .runfiles import unusable_run_problem

__all__ = [
    "CSV_FIELDS",
    "METHOD_DISPLAY",
    "METHOD_ORDER",
    "NON_LOSS_COLUMNS",
    "AggregateRow",
    "MetricSpec",
    "MetricSummary",
    "PretrainRecord",
    "ResultsTable",
    "RunCollection",
    "RunRecord",
    "aggregate_runs",
    "best_other",
    "collect_runs",
    "format_mean_std",
    "labels_sort_key",
    "latex_escape",
    "method_display_name",
    "method_sort_key",
    "metric_specs_for",
    "read_csv_rows",
    "results_tables",
    "run_metric_value",
    "to_float",
    "write_csv",
]

#: keys of the surface-distance metrics (their unit is mm, voxels or px)
_DISTANCE_KEYS: frozenset[str] = frozenset({"hd95", "asd", "assd", "hd"})

#: registry names in the order of the papers' tables (Scratch first); anything else follows, sorted.
METHOD_ORDER: tuple[str, ...] = (
    "scratch",
    "simclr",
    "moco",
    "byol",
    "swav",
    "simsiam",
    "simtriplet",
    "gcl",
    "pcl",
    "wcl",
    "desd",
    "dira",
    "supercl",
    "macl",
)

#: registry name -> the spelling used in the papers' tables and in ``paper_results.csv``.
METHOD_DISPLAY: Mapping[str, str] = {
    "scratch": "Scratch",
    "simclr": "SimCLR",
    "moco": "MoCo",
    "byol": "BYOL",
    "swav": "SwAV",
    "simsiam": "SimSiam",
    "simtriplet": "SimTriplet",
    "gcl": "GCL",
    "pcl": "PCL",
    "wcl": "WCL",
    "desd": "DeSD",
    "dira": "DiRA",
    "supercl": "SuperCL",
    "macl": "MACL",
}


@dataclass(frozen=True)
class MetricSpec:
    """One metric column of the tables.

    Attributes:
        key: key in ``summary.json["mean"]`` and column of ``metrics.csv``.
        label: column header (``"DSC"``).
        higher_is_better: ranking direction for the best / second-best marks.
        scale: factor applied for display (100 for DSC/JC given as fractions).
        unit: unit shown in headers (``"%"``, ``"mm"``, ``"px"``).
    """

    key: str
    label: str
    higher_is_better: bool
    scale: float = 1.0
    unit: str = ""


def metric_specs_for(protocol: str, has_assd: bool = False) -> tuple[MetricSpec, ...]:
    """The four table metrics of a protocol.

    ``paper``: DSC, JC (pooled, %), HD95, ASD (pixels, ASD directed as in the papers).
    ``standard``: DSC, JC (per volume, %), HD95 and, when the runs report it, ASSD (mm);
    otherwise ASD (mm).

    Args:
        protocol: ``"paper"`` or ``"standard"`` (anything else is treated as ``standard``).
        has_assd: whether the runs' summaries carry an ``assd`` mean.

    Returns:
        Four :class:`MetricSpec`.
    """
    unit = "px" if protocol == "paper" else "mm"
    last = ("assd", "ASSD") if (protocol != "paper" and has_assd) else ("asd", "ASD")
    return (
        MetricSpec("dsc", "DSC", True, 100.0, "%"),
        MetricSpec("jc", "JC", True, 100.0, "%"),
        MetricSpec("hd95", "HD95", False, 1.0, unit),
        MetricSpec(last[0], last[1], False, 1.0, unit),
    )


def method_display_name(method: str) -> str:
    """Paper spelling of a registry method name (``"supercl"`` -> ``"SuperCL"``); others unchanged."""
    return METHOD_DISPLAY.get(method.lower(), method)


def method_sort_key(method: str) -> tuple[int, str]:
    """Sort key putting methods in the papers' table order, unknown methods last (alphabetical)."""
    m = method.lower()
    return (METHOD_ORDER.index(m), m) if m in METHOD_ORDER else (len(METHOD_ORDER), m)


def labels_sort_key(labels: str) -> tuple[int, float, str]:
    """Sort key of a label-fraction string: ``"10%" < "25%" < "100%"``, then ``"N cases"`` by N."""
    s = str(labels).strip()
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*%", s)
    if m:
        return (0, float(m.group(1)), s)
    m = re.fullmatch(r"([0-9]+)\s*(cases?|volumes?|patients?)?", s, flags=re.IGNORECASE)
    if m:
        return (1, float(m.group(1)), s)
    return (2, 0.0, s)


def to_float(value: Any) -> float:
    """``float(value)``, with ``""``/``None``/unparsable -> NaN; booleans as 0/1."""
    if value is None:
        return math.nan
    if isinstance(value, dict):  # {"mean": x, "std": ...} style summaries
        return to_float(value.get("mean"))
    try:
        return float(value)
    except (TypeError, ValueError):
        s = str(value).strip().lower()
        if s in ("true", "false"):
            return 1.0 if s == "true" else 0.0
        return math.nan


#: columns of a training log that are not loss terms (plotted or summarised as losses otherwise).
NON_LOSS_COLUMNS = frozenset({"step", "epoch", "lr", "seconds", "time", "wall", "iteration", "momentum", "val_dice"})


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """All rows of a CSV file with a header line (empty list when the file is missing)."""
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@dataclass
class RunRecord:
    """One complete fine-tuning run folder.

    Attributes:
        path: the run folder.
        method: registry name (``"scratch"``, ``"supercl"``...).
        dataset: registry dataset name.
        dataset_label: display name (matches ``paper_results.csv``'s ``dataset`` where published).
        labels: label fraction string (``"10%"``, ``"25%"``, ``"100%"``, ``"N cases"``).
        seed: fine-tuning seed.
        protocol: ``"paper"`` or ``"standard"``.
        data: the prepared store (``images/``, ``labels/``), or None when not given.
        class_names: foreground class names.
        run: the whole ``run.json``.
        summary: the whole ``summary.json``.
    """

    path: Path
    method: str
    dataset: str
    dataset_label: str
    labels: str
    seed: int
    protocol: str
    data: Path | None
    class_names: list[str]
    run: dict[str, Any]
    summary: dict[str, Any]
    _metric_rows: list[dict[str, str]] | None = field(default=None, repr=False)
    _log_rows: list[dict[str, str]] | None = field(default=None, repr=False)

    @property
    def group(self) -> tuple[str, str, str]:
        """``(protocol, dataset_label, labels)``: runs in one group are comparable."""
        return (self.protocol, self.dataset_label, self.labels)

    def metric_rows(self) -> list[dict[str, str]]:
        """Rows of ``metrics.csv`` (read once)."""
        if self._metric_rows is None:
            self._metric_rows = read_csv_rows(self.path / "metrics.csv")
        return self._metric_rows

    def log_rows(self) -> list[dict[str, str]]:
        """Rows of ``log.csv`` (read once)."""
        if self._log_rows is None:
            self._log_rows = read_csv_rows(self.path / "log.csv")
        return self._log_rows

    @property
    def distance_unit(self) -> str | None:
        """``summary.json``'s ``distance_unit`` (``mm``, ``voxels``, ``px``); None in older summaries."""
        unit = self.summary.get("distance_unit")
        return str(unit) if unit else None

    def prediction_ids(self) -> set[str]:
        """Case ids with a saved prediction ``predictions/{case_id}.npy``."""
        d = self.path / "predictions"
        return {p.stem for p in d.glob("*.npy")} if d.is_dir() else set()


@dataclass
class PretrainRecord:
    """One pre-training run folder (``run.json`` with ``"kind": "pretrain"``)."""

    path: Path
    method: str
    dataset: str
    run: dict[str, Any]

    def log_rows(self) -> list[dict[str, str]]:
        """Rows of ``log.csv``."""
        return read_csv_rows(self.path / "log.csv")


@dataclass
class RunCollection:
    """What :func:`collect_runs` found.

    Attributes:
        runs: complete fine-tuning runs (duplicates of one method/dataset/labels/seed/protocol
            removed, the newest kept).
        pretrain: pre-training runs.
        skipped: ``(folder, reason)`` for every fine-tuning run left out.
        notes: human-readable remarks (duplicates, unreadable files).
    """

    runs: list[RunRecord] = field(default_factory=list)
    pretrain: list[PretrainRecord] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _resolve_data(value: Any, run_dir: Path) -> Path | None:
    if not value:
        return None
    p = Path(str(value)).expanduser()
    if not p.is_absolute() and not p.exists() and (run_dir / p).exists():
        p = run_dir / p
    return p


def _normalise_summary(summary: Any) -> dict[str, Any]:
    """Give every accepted ``summary.json`` layout a ``"mean"`` dict of metric -> value.

    Accepted: ``{"mean": {"dsc": ..}}`` (the run folder layout); a list of summary rows or
    ``{"summary": [rows]}`` (``medssl.evaluation.write_results``) whose row with
    ``class_name == "mean"`` carries ``dsc_mean``, ``jc_mean``...
    """
    if isinstance(summary, list):
        summary = {"summary": summary}
    if not isinstance(summary, dict):
        return {}
    if isinstance(summary.get("mean"), dict):
        return summary
    rows = summary.get("summary")
    if isinstance(rows, list):
        mean_row = next((r for r in rows if isinstance(r, dict) and str(r.get("class_name")) == "mean"), None)
        if mean_row is not None:
            mean = {k[: -len("_mean")]: v for k, v in mean_row.items() if k.endswith("_mean")}
            return {**summary, "mean": mean}
    return summary


def collect_runs(root: str | Path, exclude: Iterable[str | Path] = ()) -> RunCollection:
    """Find every run folder under ``root`` (at any depth).

    A fine-tuning run is skipped (with its reason) when ``run.json`` is unreadable or
    ``summary.json`` is missing or unreadable. Of several runs with the same
    ``(protocol, method, dataset_label, labels, seed)`` the newest ``summary.json`` wins.

    Args:
        root: benchmark grid folder.
        exclude: folders not to search (e.g. the report's own output folder).

    Returns:
        A :class:`RunCollection`, runs sorted by group, method order and seed.
    """
    root = Path(root)
    excluded = [Path(e).resolve() for e in exclude]
    out = RunCollection()
    found: dict[tuple[str, str, str, str, int], tuple[float, RunRecord]] = {}
    for run_json in sorted(root.rglob("run.json")):
        folder = run_json.parent
        rf = folder.resolve()
        if any(rf == e or e in rf.parents for e in excluded):
            continue
        try:
            info = json.loads(run_json.read_text())
            if not isinstance(info, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            out.skipped.append((folder, f"ERROR: {run_json}: unreadable, not a JSON object ({exc})"))
            continue
        kind = str(info.get("kind", "finetune"))
        if kind == "pretrain":
            out.pretrain.append(
                PretrainRecord(folder, str(info.get("method", "?")), str(info.get("dataset", "?")), info)
            )
        elif kind == "finetune":
            read = _read_finetune_run(folder, info)
            if isinstance(read, str):
                out.skipped.append((folder, read))
            else:
                _keep_newest(found, out, *read)
    out.runs = sorted(
        (r for _, r in found.values()),
        key=lambda r: (r.protocol, r.dataset_label, labels_sort_key(r.labels), method_sort_key(r.method), r.seed),
    )
    return out


def _read_finetune_run(folder: Path, info: dict[str, Any]) -> tuple[RunRecord, float] | str:
    """A fine-tuning run folder as ``(record, mtime of its summary.json)``, or why it is left out."""
    init_problem = init_load_problem(folder)  # e.g. a checkpoint of another width: the run is not what it claims
    if init_problem:
        return f"ERROR: {init_problem}"
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        return "no summary.json (incomplete run)"
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError) as exc:
        return f"ERROR: {summary_path}: unreadable, not valid JSON ({exc})"
    problem = unusable_run_problem(folder, info)  # incomplete or corrupt results, or a changed store
    if problem:
        return f"ERROR: {problem}"
    return _run_record(folder, info, _normalise_summary(summary)), summary_path.stat().st_mtime


def _run_record(folder: Path, info: dict[str, Any], summary: dict[str, Any]) -> RunRecord:
    """The :class:`RunRecord` of a readable fine-tuning run (``run.json`` and its normalised summary)."""
    dataset = str(info.get("dataset", "?"))
    seed_raw = info.get("seed", 0)
    try:
        seed = int(seed_raw)
    except (TypeError, ValueError):
        seed = 0
    return RunRecord(
        path=folder,
        method=str(info.get("method", "?")).lower(),
        dataset=dataset,
        dataset_label=str(info.get("dataset_label") or dataset),
        labels=str(info.get("labels", "?")),
        seed=seed,
        protocol=str(info.get("protocol") or summary.get("protocol") or "standard"),
        data=_resolve_data(info.get("data"), folder),
        class_names=[str(c) for c in info.get("class_names", [])][1:],  # run.json lists background first
        run=info,
        summary=summary,
    )


def _keep_newest(
    found: dict[tuple[str, str, str, str, int], tuple[float, RunRecord]],
    out: RunCollection,
    rec: RunRecord,
    mtime: float,
) -> None:
    """Add ``rec`` to ``found``; of two runs of one (protocol, method, dataset, labels, seed) the newer
    ``summary.json`` is kept and the other noted and skipped."""
    key = (rec.protocol, rec.method, rec.dataset_label, rec.labels, rec.seed)
    if key in found:
        old_mtime, old = found[key]
        keep, drop = (rec, old) if mtime >= old_mtime else (old, rec)
        out.notes.append(f"duplicate run {key}: kept {keep.path}, ignored {drop.path}")
        out.skipped.append((drop.path, "duplicate of a newer run"))
        found[key] = (max(mtime, old_mtime), keep)
    else:
        found[key] = (mtime, rec)


def _recompute_mean(run: RunRecord, key: str) -> float:
    """A run's mean metric recomputed from ``metrics.csv`` (used when the summary lacks it).

    ``paper``: DSC/JC pooled per class from summed tp/fp/fn, distances n_slices-weighted per
    class; then the mean over classes. ``standard``: each case's NaN-mean over classes, then the
    NaN-mean over cases.
    """
    rows = run.metric_rows()
    if not rows:
        return math.nan
    if run.protocol != "paper":
        by_case: dict[str, list[float]] = {}
        for r in rows:
            by_case.setdefault(str(r.get("case_id", "")), []).append(to_float(r.get(key)))
        cases = np.array(
            [np.nanmean(v) if np.isfinite(v).any() else math.nan for v in map(np.asarray, by_case.values())]
        )
        return float(np.nanmean(cases)) if np.isfinite(cases).any() else math.nan
    by_class: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_class.setdefault(str(r.get("class_index", r.get("class_name", ""))), []).append(r)
    per_class = []
    for crow in by_class.values():
        if key in ("dsc", "jc") and all("tp" in r for r in crow):
            tp = sum(to_float(r["tp"]) for r in crow)
            fp = sum(to_float(r.get("fp")) for r in crow)
            fn = sum(to_float(r.get("fn")) for r in crow)
            den = (2 * tp + fp + fn) if key == "dsc" else (tp + fp + fn)
            num = 2 * tp if key == "dsc" else tp
            per_class.append(num / den if den > 0 else math.nan)
        else:
            v = np.array([to_float(r.get(key)) for r in crow])
            w = np.array([to_float(r.get("n_slices", 1)) for r in crow])
            ok = np.isfinite(v) & np.isfinite(w) & (w > 0)
            per_class.append(float((v[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else math.nan)
    arr = np.array(per_class)
    return float(np.nanmean(arr)) if np.isfinite(arr).any() else math.nan


def run_metric_value(run: RunRecord, key: str) -> float:
    """The run's mean value of one metric (fractions for DSC/JC; NaN when unknown).

    Read from ``summary.json["mean"][key]``; recomputed from ``metrics.csv`` when absent.
    """
    mean = run.summary.get("mean", {})
    if isinstance(mean, dict) and key in mean:
        return to_float(mean[key])
    return _recompute_mean(run, key)


def _selection_score(run: RunRecord) -> float:
    """The score ``run``'s checkpoint was selected on, when that was validation (else NaN)."""
    if run.run.get("selected_on") != "validation":
        return float("nan")
    return to_float(run.run.get("best_score"))


def best_other(by_method: Mapping[str, Sequence[RunRecord]], method: str) -> tuple[str | None, str]:
    """The comparator of ``method`` besides Scratch: the best other non-Scratch method of its group.

    Best by the mean over seeds of the **validation** Dice each run's checkpoint was selected on
    (``run.json``'s ``best_score``), when every candidate run was selected on validation: which pair
    is compared (and so which p-values enter Holm's family) is then fixed before any test number is
    read. When some run was not (the ``paper`` protocol selects on test, as the papers did; older
    runs), by the mean test DSC. Ties go to the method earlier in the papers' order.

    Args:
        by_method: the runs of one comparable group, by method.
        method: the method to find a comparator for.

    Returns:
        ``(registry name or None, "validation" | "test")``: the comparator and what chose it.
    """
    cands = {k: rs for k, rs in by_method.items() if k not in ("scratch", method) and rs}
    runs = [r for rs in cands.values() for r in rs]
    on_val = bool(runs) and all(math.isfinite(_selection_score(r)) for r in runs)
    score = _selection_score if on_val else (lambda r: run_metric_value(r, "dsc"))
    means = {}
    for k, rs in cands.items():
        v = np.array([score(r) for r in rs], dtype=float)
        if np.isfinite(v).any():
            means[k] = float(np.nanmean(v))
    basis = "validation" if on_val else "test"
    if not means:
        return None, basis
    top = max(means.values())
    return min((k for k, v in means.items() if v == top), key=method_sort_key), basis


@dataclass(frozen=True)
class MetricSummary:
    """Mean ± sample standard deviation (ddof=1) over seeds of one metric, in display units.

    Attributes:
        mean: NaN-mean over the finite values.
        std: sample std (ddof 1) over the finite values; NaN with fewer than two.
        n: number of finite values (seeds).
        values: the per-seed values (display units), in seed order.
    """

    mean: float
    std: float
    n: int
    values: tuple[float, ...]

    @staticmethod
    def of(values: Sequence[float]) -> MetricSummary:
        """Summary of a list of per-seed values (NaNs ignored)."""
        arr = np.asarray(values, dtype=float)
        fin = arr[np.isfinite(arr)]
        mean = float(fin.mean()) if fin.size else math.nan
        std = float(fin.std(ddof=1)) if fin.size > 1 else math.nan
        return MetricSummary(mean, std, int(fin.size), tuple(float(v) for v in arr))


@dataclass
class AggregateRow:
    """One method on one dataset at one label fraction, over its seeds."""

    protocol: str
    labels: str
    method: str
    dataset: str
    seeds: tuple[int, ...]
    metrics: dict[str, MetricSummary]
    runs: list[RunRecord] = field(default_factory=list, repr=False)


def aggregate_runs(runs: Sequence[RunRecord], specs: Sequence[MetricSpec] | None = None) -> list[AggregateRow]:
    """Group runs by ``(protocol, labels, method, dataset_label)`` and summarise each metric over seeds.

    Args:
        runs: complete fine-tuning runs.
        specs: metrics to summarise (default: :func:`metric_specs_for` of each run's protocol).

    Returns:
        Rows in table order (protocol, label fraction, method order, dataset); values in display
        units (DSC/JC in %).
    """
    groups: dict[tuple[str, str, str, str], list[RunRecord]] = {}
    for r in runs:
        groups.setdefault((r.protocol, r.labels, r.method, r.dataset_label), []).append(r)
    spec_cache: dict[str, tuple[MetricSpec, ...]] = {}
    rows = []
    for (protocol, labels, method, dataset), rs in groups.items():
        rs = sorted(rs, key=lambda r: r.seed)
        if specs is None:
            if protocol not in spec_cache:
                spec_cache[protocol] = _protocol_specs(runs, protocol)
            use = spec_cache[protocol]
        else:
            use = tuple(specs)
        metrics = {s.key: MetricSummary.of([run_metric_value(r, s.key) * s.scale for r in rs]) for s in use}
        rows.append(AggregateRow(protocol, labels, method, dataset, tuple(r.seed for r in rs), metrics, rs))
    rows.sort(key=lambda a: (a.protocol, labels_sort_key(a.labels), method_sort_key(a.method), a.dataset))
    return rows


def _protocol_specs(runs: Sequence[RunRecord], protocol: str) -> tuple[MetricSpec, ...]:
    has_assd = any(
        isinstance(r.summary.get("mean"), dict) and "assd" in r.summary["mean"] for r in runs if r.protocol == protocol
    )
    return metric_specs_for(protocol, has_assd)


def format_mean_std(s: MetricSummary, decimals: int = 2, pm: str = " ± ") -> str:
    """``"86.63 ± 0.42"``; the std is omitted for one seed; ``"–"`` when there is no value."""
    if s.n == 0 or not math.isfinite(s.mean):
        return "–"
    text = f"{s.mean:.{decimals}f}"
    if s.n > 1 and math.isfinite(s.std):
        text += f"{pm}{s.std:.{decimals}f}"
    return text


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    r"""Escape LaTeX special characters (``10%`` -> ``10\%``, ``a_b`` -> ``a\_b``, ...)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


@dataclass
class ResultsTable:
    """The results table of one protocol.

    Attributes:
        protocol: ``"paper"`` or ``"standard"``.
        specs: the four metric columns per dataset.
        datasets: column groups, sorted.
        labels: label-fraction row groups, in order.
        rows: aggregate rows of this protocol.
        marks: ``(labels, method, dataset, metric_key) -> "best" | "second"``.
        distance_units: dataset -> unit of its distance columns where it differs from the specs'
            (``"voxels"`` for a data set that stores no voxel spacing).
    """

    protocol: str
    specs: tuple[MetricSpec, ...]
    datasets: list[str]
    labels: list[str]
    rows: list[AggregateRow]
    marks: dict[tuple[str, str, str, str], str]
    decimals: int = 2
    distance_units: dict[str, str] = field(default_factory=dict)

    def cell(self, labels: str, method: str, dataset: str) -> AggregateRow | None:
        """The aggregate row of one method/dataset/label fraction, if run."""
        for r in self.rows:
            if (r.labels, r.method, r.dataset) == (labels, method, dataset):
                return r
        return None

    def methods(self, labels: str) -> list[str]:
        """Methods with at least one run at this label fraction, in table order."""
        return sorted({r.method for r in self.rows if r.labels == labels}, key=method_sort_key)

    def _cell_text(self, labels: str, method: str, dataset: str, spec: MetricSpec, style: str) -> str:
        row = self.cell(labels, method, dataset)
        if row is None:
            return "–" if style != "latex" else "--"
        s = row.metrics[spec.key]
        pm = r" $\pm$ " if style == "latex" else " ± "
        text = format_mean_std(s, self.decimals, pm)
        if style == "latex" and text == "–":
            return "--"
        mark = self.marks.get((labels, method, dataset, spec.key), "")
        if style == "markdown":
            if mark == "best":
                text = f"**{text}**"
            elif mark == "second":
                text = f"<u>{text}</u>"
        elif style == "latex":
            if mark == "best":
                text = rf"\textbf{{{text}}}"
            elif mark == "second":
                text = rf"\underline{{{text}}}"
        return text

    def unit(self, spec: MetricSpec, dataset: str | None = None) -> str:
        """The unit of a metric column of ``dataset`` (distances in voxels where the spacing is unknown)."""
        if dataset is not None and spec.key in _DISTANCE_KEYS and dataset in self.distance_units:
            return self.distance_units[dataset]
        return spec.unit

    def header_labels(self, dataset: str | None = None) -> list[str]:
        """Metric headers with units (``"DSC (%)"``, ``"HD95 (px)"``; ``"HD95 (voxels)"`` for a
        ``dataset`` without a voxel spacing)."""
        return [f"{s.label} ({self.unit(s, dataset)})" if s.unit else s.label for s in self.specs]

    def unit_note(self) -> str:
        """A sentence naming the datasets whose distances are not in the specs' unit ('' if none)."""
        if not self.distance_units:
            return ""
        names = ", ".join(f"{d} ({u})" for d, u in sorted(self.distance_units.items()))
        return f"Distances not in {self.specs[2].unit}: {names}; {SPACING_UNKNOWN_NOTE}."

    def markdown(self) -> str:
        """Markdown table: one column per dataset and metric, rows grouped by label fraction.

        Best per column and label fraction in bold (``**x**``), second best underlined (``<u>x</u>``).
        """
        cols = ["Labels", "Method"] + [f"{_md_escape(d)} {h}" for d in self.datasets for h in self.header_labels(d)]
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(cols) - 2)) + "|"]
        for lab in self.labels:
            for m in self.methods(lab):
                cells = [self._cell_text(lab, m, d, s, "markdown") for d in self.datasets for s in self.specs]
                lines.append("| " + " | ".join([_md_escape(lab), _md_escape(method_display_name(m))] + cells) + " |")
        return "\n".join(lines)

    def latex(self, caption: str | None = None) -> str:
        r"""A booktabs ``table`` (needs ``\usepackage{booktabs}``); best \textbf, second \underline."""
        nd, nm = len(self.datasets), len(self.specs)
        colspec = "l" + "c" * (nd * nm)
        out = [r"\begin{table}[t]", r"\centering", r"\small"]
        cap = caption or f"Fine-tuning results ({self.protocol} protocol): mean $\\pm$ std over seeds."
        out.append(rf"\caption{{{cap}}}")
        out.append(rf"\label{{tab:results-{re.sub(r'[^A-Za-z0-9-]', '', self.protocol)}}}")
        out.append(rf"\begin{{tabular}}{{{colspec}}}")
        out.append(r"\toprule")
        out.append(
            " & ".join(["Method"] + [rf"\multicolumn{{{nm}}}{{c}}{{{latex_escape(d)}}}" for d in self.datasets])
            + r" \\"
        )
        out.append(" ".join(rf"\cmidrule(lr){{{2 + i * nm}-{1 + (i + 1) * nm}}}" for i in range(nd)))
        out.append(" & ".join([""] + [latex_escape(h) for d in self.datasets for h in self.header_labels(d)]) + r" \\")
        for lab in self.labels:
            out.append(r"\midrule")
            out.append(rf"\multicolumn{{{1 + nd * nm}}}{{l}}{{\textit{{{latex_escape(lab)} labels}}}} \\")
            for m in self.methods(lab):
                cells = [self._cell_text(lab, m, d, s, "latex") for d in self.datasets for s in self.specs]
                out.append(" & ".join([latex_escape(method_display_name(m))] + cells) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        return "\n".join(out)

    def csv_rows(self) -> list[dict[str, Any]]:
        """Long-format rows: protocol, labels, method, dataset, metric, unit, mean, std, n_seeds,
        seeds, mark, cell (the displayed text)."""
        out = []
        for lab in self.labels:
            for m in self.methods(lab):
                for d in self.datasets:
                    row = self.cell(lab, m, d)
                    if row is None:
                        continue
                    for s in self.specs:
                        ms = row.metrics[s.key]
                        out.append(
                            {
                                "protocol": self.protocol,
                                "labels": lab,
                                "method": method_display_name(m),
                                "method_key": m,
                                "dataset": d,
                                "metric": s.label,
                                "unit": self.unit(s, d),
                                "mean": _num(ms.mean),
                                "std": _num(ms.std),
                                "n_seeds": ms.n,
                                "seeds": " ".join(str(x) for x in row.seeds),
                                "mark": self.marks.get((lab, m, d, s.key), ""),
                                "cell": format_mean_std(ms, self.decimals),
                            }
                        )
        return out


CSV_FIELDS = [
    "protocol",
    "labels",
    "method",
    "method_key",
    "dataset",
    "metric",
    "unit",
    "mean",
    "std",
    "n_seeds",
    "seeds",
    "mark",
    "cell",
]


def _num(x: float) -> str:
    return "" if not math.isfinite(x) else repr(round(x, 6))


def _rank_marks(
    rows: Sequence[AggregateRow], specs: Sequence[MetricSpec], decimals: int
) -> dict[tuple[str, str, str, str], str]:
    """Best / second-best per (label fraction, dataset, metric), comparing the displayed (rounded)
    means, so equal displayed values get the same mark. A column with a single value gets no mark."""
    marks: dict[tuple[str, str, str, str], str] = {}
    cols: dict[tuple[str, str, str], list[tuple[float, str]]] = {}
    for r in rows:
        for s in specs:
            v = r.metrics[s.key].mean
            if math.isfinite(v):
                cols.setdefault((r.labels, r.dataset, s.key), []).append((round(v, decimals), r.method))
    better = {s.key: s.higher_is_better for s in specs}
    for (lab, d, key), vals in cols.items():
        if len(vals) < 2:
            continue
        distinct = sorted({v for v, _ in vals}, reverse=better[key])
        best = distinct[0]
        second = distinct[1] if len(distinct) > 1 else None
        for v, m in vals:
            if v == best:
                marks[(lab, m, d, key)] = "best"
            elif second is not None and v == second:
                marks[(lab, m, d, key)] = "second"
    return marks


def _distance_units(runs: Sequence[RunRecord], specs: Sequence[MetricSpec]) -> dict[str, str]:
    """dataset -> the distance unit its runs' summaries report, where that differs from the specs'
    (``voxels`` when the data set stores no spacing; ``"mm or voxels"`` when its runs disagree)."""
    default = next((s.unit for s in specs if s.key in _DISTANCE_KEYS), "")
    found: dict[str, set[str]] = {}
    for r in runs:
        found.setdefault(r.dataset_label, set()).add(r.distance_unit or default)
    return {d: " or ".join(sorted(u)) for d, u in found.items() if u != {default}}


def results_tables(runs: Sequence[RunRecord], decimals: int = 2) -> list[ResultsTable]:
    """One :class:`ResultsTable` per protocol present in ``runs`` (``paper`` first).

    Args:
        runs: complete fine-tuning runs.
        decimals: decimals shown (2 as in the papers).

    Returns:
        Tables, sorted ``paper``, ``standard``, then other protocols.
    """
    protocols = sorted({r.protocol for r in runs}, key=lambda p: ({"paper": 0, "standard": 1}.get(p, 2), p))
    tables = []
    for p in protocols:
        prs = [r for r in runs if r.protocol == p]
        specs = _protocol_specs(prs, p)
        rows = aggregate_runs(prs, specs)
        datasets = sorted({r.dataset for r in rows}, key=str.lower)
        labels = sorted({r.labels for r in rows}, key=labels_sort_key)
        tables.append(
            ResultsTable(
                p,
                specs,
                datasets,
                labels,
                rows,
                _rank_marks(rows, specs, decimals),
                decimals,
                _distance_units(prs, specs),
            )
        )
    return tables


def write_csv(path: Path, fields: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write rows (dicts) to ``path`` with the given header; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fields), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    os.replace(tmp, path)
    return path
