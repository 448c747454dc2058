"""``medssl report``: everything a benchmark grid folder says, as tables, tests, a comparison with
the published numbers, and figures.

Example::

    from medssl.reporting import report
    res = report("runs/grid")          # writes runs/grid/report/...
    text = res.markdown                # results.md, for printing
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import DataError
from .bundle import provenance_notes
from .definitions import mixed_definition_notes
from .figures import (
    FigureResult,
    plot_dsc_vs_labels,
    plot_pretrain_curves,
    plot_pretrain_diagnostics,
    plot_qualitative,
    plot_training_curves,
    slugify,
)
from .pretrain_diagnostics import DIAGNOSTIC_FIELDS, diagnostic_rows, diagnostics_csv_rows, diagnostics_markdown
from .pretrain_losses import LOSS_WINDOW_FIELDS, loss_windows_csv_rows, loss_windows_markdown, pretrain_loss_windows
from .replicates import SEED_STATS_FIELDS, seed_comparisons, seed_stats_csv_rows, seed_stats_markdown
from .stats import (
    PAIRWISE_FIELDS,
    STATS_FIELDS,
    compare_methods,
    pairwise_csv_rows,
    pairwise_markdown,
    pairwise_tests,
    stats_csv_rows,
    stats_markdown,
)
from .tables import (
    CSV_FIELDS,
    METHOD_DISPLAY,
    MetricSummary,
    PretrainRecord,
    ResultsTable,
    RunCollection,
    RunRecord,
    collect_runs,
    format_mean_std,
    labels_sort_key,
    method_display_name,
    method_sort_key,
    results_tables,
    run_metric_value,
    write_csv,
)

__all__ = [
    "COMPARISON_FIELDS",
    "PAPER_METRICS",
    "ComparisonRow",
    "PaperCell",
    "ReportResult",
    "comparison_csv_rows",
    "comparison_markdown",
    "find_reference_csv",
    "load_paper_results",
    "normalise_labels",
    "packaged_reference_csv",
    "paper_comparison",
    "report",
]

#: (key in summary.json / paper_results.csv, header, scale applied to our value)
PAPER_METRICS: tuple[tuple[str, str, float], ...] = (
    ("dsc", "DSC", 100.0),
    ("jc", "JC", 100.0),
    ("hd95", "HD95", 1.0),
    ("asd", "ASD", 1.0),
)

#: the published-results table shipped with the package (``medssl/resources/paper_results.csv``)
PAPER_RESULTS_RESOURCE = "paper_results.csv"


def packaged_reference_csv() -> Path:
    """The published-results table shipped inside the package (checkout, editable or wheel install).

    Returns:
        The path of ``medssl/resources/paper_results.csv``.

    Raises:
        DataError: when the installed package lacks the file (a broken build).
    """
    path = Path(str(resources.files("medssl.resources").joinpath(PAPER_RESULTS_RESOURCE)))
    if not path.is_file():
        raise DataError(path, "the published-results table is missing from the installed package; reinstall medssl")
    return path


def find_reference_csv(explicit: str | Path | None = None) -> Path:
    """The published-results table: ``explicit`` if given, else the one shipped with the package.

    Args:
        explicit: a path given by the user (``medssl report --reference FILE``); it wins.

    Returns:
        The path.

    Raises:
        DataError: when ``explicit`` is given but is not a file, or the packaged table is missing.
    """
    if explicit is not None:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise DataError(p, "reference results file not found")
        return p
    return packaged_reference_csv()


@dataclass(frozen=True)
class PaperCell:
    """One published row of ``paper_results.csv`` (DSC/JC in %, HD95/ASD in pixels)."""

    source: str
    dataset: str
    labels: str
    method: str
    dsc: float
    jc: float
    hd95: float
    asd: float

    def value(self, key: str) -> float:
        """The published value of ``dsc``/``jc``/``hd95``/``asd``."""
        return float(getattr(self, key))


def normalise_labels(labels: str) -> str:
    """Comparison key of a label fraction: whitespace removed, lower case (``"10 %"`` -> ``"10%"``)."""
    return "".join(str(labels).split()).lower()


def load_paper_results(path: str | Path) -> list[PaperCell]:
    """Read ``paper_results.csv`` (columns source, dataset, labels, method, dsc, jc, hd95, asd).

    Raises:
        DataError: when a column is missing or a value is not a number.
    """
    path = Path(path)
    try:
        return _read_paper_cells(path)
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(path, f"not a CSV text file ({e.__class__.__name__}); give the published-results CSV") from None


def _read_paper_cells(path: Path) -> list[PaperCell]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        need = {"source", "dataset", "labels", "method", "dsc", "jc", "hd95", "asd"}
        missing = need - set(reader.fieldnames or [])
        if missing:
            raise DataError(path, f"missing columns {sorted(missing)}")
        cells = []
        for i, r in enumerate(reader, start=2):
            if any(r.get(k) is None for k in need) or "\x00" in "".join(map(str, r.values())):
                raise DataError(path, f"line {i}: the row is cut short or holds binary data")
            try:
                vals = [float(r[k]) if str(r[k]).strip() else math.nan for k in ("dsc", "jc", "hd95", "asd")]
            except ValueError:
                raise DataError(path, f"line {i}: a metric value is not a number") from None
            cells.append(
                PaperCell(r["source"].strip(), r["dataset"].strip(), r["labels"].strip(), r["method"].strip(), *vals)
            )
    return cells


@dataclass
class ComparisonRow:
    """Our runs (paper protocol) beside the published cell of one dataset / labels / method.

    Attributes:
        dataset, labels: the group (our ``dataset_label`` and label fraction).
        method: registry name (lower-case paper spelling for published-only rows).
        ours: metric key -> our summary over seeds (display units), None when we did not run it.
        paper: the published cell, None when not published.
    """

    dataset: str
    labels: str
    method: str
    ours: dict[str, MetricSummary] | None
    paper: PaperCell | None
    seeds: tuple[int, ...] = ()

    def diff(self, key: str) -> float:
        """Ours minus published (mean over seeds), NaN when either is missing."""
        if self.ours is None or self.paper is None:
            return math.nan
        return self.ours[key].mean - self.paper.value(key)


def paper_comparison(runs: Sequence[RunRecord], cells: Sequence[PaperCell]) -> tuple[list[ComparisonRow], list[str]]:
    """Put our ``paper``-protocol runs beside the published cells.

    For every (dataset, labels) we ran with the paper protocol, one row per method that we ran
    or the papers published (published rows we did not run stay empty on our side; nothing is
    invented). Datasets match our ``dataset_label`` against the CSV's ``dataset`` and methods our
    registry names against the CSV spelling (``supercl`` -> ``SuperCL``), case-insensitively.

    Args:
        runs: complete fine-tuning runs (other protocols are ignored).
        cells: published cells from :func:`load_paper_results`.

    Returns:
        ``(rows, notes)``.
    """
    notes: list[str] = []
    ours: dict[tuple[str, str], dict[str, list[RunRecord]]] = {}
    for r in runs:
        if r.protocol == "paper":
            ours.setdefault((r.dataset_label, r.labels), {}).setdefault(r.method, []).append(r)
    index: dict[tuple[str, str, str], PaperCell] = {}
    for c in cells:
        key = (c.dataset.lower(), normalise_labels(c.labels), c.method.lower())
        if key in index:
            notes.append(f"two published cells for {c.dataset} {c.labels} {c.method}; using '{index[key].source}'")
            continue
        index[key] = c
    display_to_key = {v.lower(): k for k, v in METHOD_DISPLAY.items()}
    rows: list[ComparisonRow] = []
    for dataset, labels in sorted(ours, key=lambda k: (k[0].lower(), labels_sort_key(k[1]))):
        by_method = ours[(dataset, labels)]
        published = {
            m: c for (d, lab, m), c in index.items() if d == dataset.lower() and lab == normalise_labels(labels)
        }
        if not published:
            notes.append(f"no published numbers for {dataset} at {labels}")
        keys = set(by_method) | {display_to_key.get(m, m) for m in published}
        for m in sorted(keys, key=method_sort_key):
            rs = sorted(by_method.get(m, []), key=lambda r: r.seed)
            summ = (
                {k: MetricSummary.of([run_metric_value(r, k) * s for r in rs]) for k, _, s in PAPER_METRICS}
                if rs
                else None
            )
            cell = published.get(method_display_name(m).lower()) or published.get(m.lower())
            rows.append(ComparisonRow(dataset, labels, m, summ, cell, tuple(r.seed for r in rs)))
    return rows, notes


COMPARISON_FIELDS = (
    ["dataset", "labels", "method", "n_seeds"]
    + [f"{k}_{part}" for k, _, _ in PAPER_METRICS for part in ("ours", "ours_std", "paper", "diff")]
    + ["source"]
)


def _num(x: float) -> str:
    return "" if not math.isfinite(x) else repr(round(float(x), 6))


def comparison_csv_rows(rows: Sequence[ComparisonRow]) -> list[dict[str, Any]]:
    """Flat rows (columns :data:`COMPARISON_FIELDS`); empty cells where not run / not published."""
    out = []
    for r in rows:
        d: dict[str, Any] = {
            "dataset": r.dataset,
            "labels": r.labels,
            "method": method_display_name(r.method),
            "n_seeds": len(r.seeds),
            "source": r.paper.source if r.paper else "",
        }
        for k, _, _ in PAPER_METRICS:
            d[f"{k}_ours"] = _num(r.ours[k].mean) if r.ours else ""
            d[f"{k}_ours_std"] = _num(r.ours[k].std) if r.ours else ""
            d[f"{k}_paper"] = _num(r.paper.value(k)) if r.paper else ""
            d[f"{k}_diff"] = _num(r.diff(k))
        out.append(d)
    return out


def comparison_markdown(rows: Sequence[ComparisonRow]) -> str:
    """Markdown: our DSC (mean ± std over seeds) vs published DSC and the difference, then JC /
    HD95 / ASD as ``ours / paper``."""
    if not rows:
        return "_No runs with the `paper` protocol: nothing to compare with the published numbers._"
    lines = [
        "| Dataset | Labels | Method | Seeds | DSC ours (%) | DSC paper (%) | Δ DSC | JC ours / paper "
        "| HD95 ours / paper (px) | ASD ours / paper (px) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def pair(r: ComparisonRow, k: str) -> str:
        o = format_mean_std(r.ours[k]) if r.ours else "not run"
        p = f"{r.paper.value(k):.2f}" if r.paper and math.isfinite(r.paper.value(k)) else "–"
        return f"{o} / {p}"

    for r in rows:
        ours = format_mean_std(r.ours["dsc"]) if r.ours else "not run"
        paper = f"{r.paper.dsc:.2f}" if r.paper else "not published"
        d = r.diff("dsc")
        lines.append(
            "| "
            + " | ".join(
                [
                    r.dataset,
                    r.labels,
                    method_display_name(r.method),
                    str(len(r.seeds)) if r.seeds else "–",
                    ours,
                    paper,
                    f"{d:+.2f}" if math.isfinite(d) else "–",
                    pair(r, "jc"),
                    pair(r, "hd95"),
                    pair(r, "asd"),
                ]
            )
            + " |"
        )
    srcs = sorted({r.paper.source for r in rows if r.paper})
    if srcs:
        lines += [
            "",
            "Published numbers: " + "; ".join(srcs) + ". The papers pre-train on other data sets "
            "(METHODS.md section 7), so differences are expected.",
        ]
    return "\n".join(lines)


@dataclass
class ReportResult:
    """What :func:`report` wrote.

    Attributes:
        out_dir: the report folder.
        markdown: the text of ``results.md`` (for printing).
        files: name -> path (``results_md``, ``results_csv``, ``results_tex``, ``stats_md``,
            ``stats_csv``, ``pairwise_md``, ``pairwise_csv``, ``paper_md``, ``paper_csv``, and
            ``pretrain_losses_md``/``_csv`` when there are pre-training runs).
        figures: written PNGs.
        n_runs: complete fine-tuning runs used.
        n_pretrain: pre-training runs found.
        skipped: ``(folder, reason)`` of runs left out.
        notes: remarks (missing reference file, figures not drawn, duplicates).
    """

    out_dir: Path
    markdown: str
    files: dict[str, Path]
    figures: list[Path]
    n_runs: int
    n_pretrain: int
    skipped: list[tuple[Path, str]]
    notes: list[str] = field(default_factory=list)


def _write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text if text.endswith("\n") else text + "\n")
    os.replace(tmp, path)
    return path


def _write_results_tables(runs: Sequence[RunRecord], out: Path, files: dict[str, Path]) -> list[ResultsTable]:
    """Step 1: ``results.csv`` and ``results.tex`` (one table per protocol)."""
    tables = results_tables(runs)
    files["results_csv"] = write_csv(out / "results.csv", CSV_FIELDS, [r for t in tables for r in t.csv_rows()])
    tex = ["% medssl report: needs \\usepackage{booktabs}"] + [t.latex() for t in tables]
    files["results_tex"] = _write_text(out / "results.tex", "\n\n".join(tex))
    return tables


def _write_stats(runs: Sequence[RunRecord], out: Path, files: dict[str, Path], min_pairs: int) -> str:
    """Step 2: ``seed_stats.csv`` (seed-level comparisons, :mod:`medssl.reporting.replicates`), ``stats.md``
    (those first, the case-level Wilcoxon tests second) and ``stats.csv`` (the Wilcoxon tests); returns the Markdown."""
    seed_rows = seed_comparisons(runs)
    files["seed_stats_csv"] = write_csv(out / "seed_stats.csv", SEED_STATS_FIELDS, seed_stats_csv_rows(seed_rows))
    stat_rows = compare_methods(runs, min_pairs=min_pairs)
    stats_md = (
        seed_stats_markdown(seed_rows)
        + "\n\n### Secondary: case-level Wilcoxon tests (pool cases over seeds)\n\n"
        + stats_markdown(stat_rows)
    )
    files["stats_md"] = _write_text(out / "stats.md", "# Comparisons at the seed level\n\n" + stats_md)
    files["stats_csv"] = write_csv(out / "stats.csv", STATS_FIELDS, stats_csv_rows(stat_rows))
    pair_rows = pairwise_tests(runs, min_pairs=min_pairs)
    files["pairwise_md"] = _write_text(
        out / "pairwise.md", "# Paired tests, every pair of methods\n\n" + pairwise_markdown(pair_rows)
    )
    files["pairwise_csv"] = write_csv(out / "pairwise.csv", PAIRWISE_FIELDS, pairwise_csv_rows(pair_rows))
    return stats_md


def _write_pretrain_losses(records: Sequence[PretrainRecord], out: Path, files: dict[str, Path]) -> str:
    """Step 2b: ``pretrain_losses.md``/``.csv`` (each pre-training's loss terms at the start,
    halfway and at the end: did it plateau?); returns the Markdown ("" without pre-training runs)."""
    if not records:
        return ""
    rows = pretrain_loss_windows(records)
    md = loss_windows_markdown(rows)
    files["pretrain_losses_md"] = _write_text(out / "pretrain_losses.md", "# Pre-training losses\n\n" + md)
    files["pretrain_losses_csv"] = write_csv(
        out / "pretrain_losses.csv", LOSS_WINDOW_FIELDS, loss_windows_csv_rows(rows)
    )
    return md


def _write_pretrain_diagnostics(
    records: Sequence[PretrainRecord], out: Path, files: dict[str, Path], notes: list[str]
) -> str:
    """Step 2c: ``pretrain_diagnostics.md``/``.csv`` (each diagnostic at random init and after
    pre-training, over seeds: :mod:`medssl.reporting.pretrain_diagnostics`); returns the Markdown
    ("" when no pre-training run wrote ``diagnostics.json``)."""
    rows = diagnostic_rows(records, notes)
    if not rows:
        return ""
    md = diagnostics_markdown(rows)
    files["pretrain_diagnostics_md"] = _write_text(
        out / "pretrain_diagnostics.md", "# What pre-training learned: diagnostics at random init and after\n\n" + md
    )
    files["pretrain_diagnostics_csv"] = write_csv(
        out / "pretrain_diagnostics.csv", DIAGNOSTIC_FIELDS, diagnostics_csv_rows(rows)
    )
    return md


def _write_paper_comparison(
    runs: Sequence[RunRecord], out: Path, files: dict[str, Path], reference_csv: str | Path | None, notes: list[str]
) -> str:
    """Step 3: ``paper_comparison.md``/``.csv`` against the published table (the user's, else the
    packaged one); returns the Markdown and appends remarks to ``notes``."""
    try:
        ref: Path | None = find_reference_csv(reference_csv)
    except DataError as exc:
        if reference_csv is not None:
            raise
        ref = None
        notes.append(f"{exc}: no comparison with the published numbers")
    comp_rows: list[ComparisonRow] = []
    if ref is None:
        comp_md = "_Reference file paper_results.csv not found (pass reference_csv)._"
    else:
        comp_rows, comp_notes = paper_comparison(runs, load_paper_results(ref))
        notes += comp_notes
        comp_md = comparison_markdown(comp_rows)
    files["paper_md"] = _write_text(
        out / "paper_comparison.md", "# Comparison with the published numbers\n\n" + comp_md
    )
    files["paper_csv"] = write_csv(out / "paper_comparison.csv", COMPARISON_FIELDS, comparison_csv_rows(comp_rows))
    return comp_md


def _draw_figures(
    tables: Sequence[ResultsTable], coll: RunCollection, fig_dir: Path, n_slices: int, dpi: int, notes: list[str]
) -> list[FigureResult]:
    """Step 4: DSC vs labels per table and dataset, qualitative and curve figures per group, the
    pre-training curves; figures that could not be drawn are noted."""
    fig_results: list[FigureResult] = []
    for t in tables:
        for d in t.datasets:
            rows = [r for r in t.rows if r.dataset == d]
            fig_results.append(
                plot_dsc_vs_labels(rows, fig_dir / f"dsc_vs_labels_{slugify(t.protocol, d)}.png", dpi=dpi)
            )
    groups: dict[tuple[str, str, str], list[RunRecord]] = {}
    for r in coll.runs:
        groups.setdefault(r.group, []).append(r)
    for p, d, lab in sorted(groups, key=lambda g: (g[0], g[1].lower(), labels_sort_key(g[2]))):
        rs = groups[(p, d, lab)]
        title = f"{d}, {lab} labels ({p} protocol)"
        fig_results.append(
            plot_qualitative(
                rs, fig_dir / f"qualitative_{slugify(p, d, lab)}.png", n_slices=n_slices, dpi=dpi, title=title
            )
        )
        fig_results.append(
            plot_training_curves(
                rs, fig_dir / f"curves_{slugify(p, d, lab)}.png", title=f"Fine-tuning curves: {title}", dpi=dpi
            )
        )
    for i, pr in enumerate(sorted(coll.pretrain, key=lambda x: (method_sort_key(x.method), str(x.path)))):
        fig_results.append(
            plot_pretrain_curves(pr, fig_dir / f"pretrain_{slugify(pr.method, pr.dataset)}_{i}.png", dpi=dpi)
        )
    for d in sorted({pr.dataset for pr in coll.pretrain}, key=str.lower):
        fig_results.append(
            plot_pretrain_diagnostics(
                [pr for pr in coll.pretrain if pr.dataset == d],
                fig_dir / f"pretrain_diagnostics_{slugify(d)}.png",
                dpi=dpi,
            )
        )
    for fr in fig_results:
        notes += [f"figure '{fr.title}': {n}" for n in [*(fr.notes if fr.path is None else []), *fr.problems]]
    return fig_results


def _results_markdown(
    root: Path,
    out: Path,
    coll: RunCollection,
    tables: Sequence[ResultsTable],
    stats_md: str,
    comp_md: str,
    figures: Sequence[FigureResult],
    notes: Sequence[str],
    pretrain_md: str = "",
    diagnostics_md: str = "",
) -> str:
    """Step 5: the text of ``results.md`` (tables, tests, comparison, figure links, notes)."""
    md = ["# medssl results", ""]
    md.append(
        f"{len(coll.runs)} fine-tuning runs, {len(coll.pretrain)} pre-training runs collected from `{root}`; "
        f"{len(coll.skipped)} skipped."
    )
    if coll.skipped:
        md += ["", "Skipped runs:", ""] + [f"- `{p}`: {why}" for p, why in coll.skipped]
    for t in tables:
        md += [
            "",
            f"## Results, `{t.protocol}` protocol",
            "",
            "Mean ± std over seeds (std omitted for one seed); DSC/JC in %, HD95/"
            f"{t.specs[3].label} in {t.specs[3].unit}. Per dataset column and label fraction: best in "
            "**bold**, second best <u>underlined</u>." + (" " + t.unit_note() if t.unit_note() else ""),
            "",
            t.markdown(),
        ]
    md += [
        "",
        "## Comparisons at the seed level",
        "",
        stats_md,
        "",
        "Every pair of methods: `pairwise.md` / `pairwise.csv`.",
    ]
    if pretrain_md:
        md += ["", "## Pre-training losses: start, halfway, end", "", pretrain_md]
    if diagnostics_md:
        md += ["", "## What pre-training learned: diagnostics at random init and after", "", diagnostics_md]
    md += ["", "## Comparison with the published numbers (`paper` protocol)", "", comp_md]
    if figures:
        md += ["", "## Figures", ""]
        for fr in figures:
            assert fr.path is not None
            rel = fr.path.relative_to(out) if fr.path.is_relative_to(out) else fr.path
            md += [f"![{fr.title}]({rel.as_posix()})", ""]
    if notes:
        md += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(md).rstrip() + "\n"


def _check_report_inputs(out: Path, reference_csv: str | Path | None) -> None:
    """``--out`` can be a folder and ``--reference`` reads: refused before anything is written."""
    if out.exists() and not out.is_dir():
        raise DataError(out, "exists and is not a folder; give a folder for the report (--out)")
    if reference_csv is not None:
        load_paper_results(find_reference_csv(reference_csv))


def _collect_report_runs(root: Path, out: Path, reference_csv: str | Path | None) -> RunCollection:
    """Step 0: the inputs checked (:func:`_check_report_inputs`), then the runs under ``root`` (not those in
    ``out`` or in ``root/variants``: a grid's variants have their own reports); none at all is an error."""
    if not root.is_dir():
        raise DataError(root, "not a folder")
    _check_report_inputs(out, reference_csv)
    coll = collect_runs(root, exclude=[out, root / "variants"])
    if not coll.runs and not coll.pretrain:
        first = f"; first: {coll.skipped[0][1].removeprefix('ERROR: ')}" if coll.skipped else ""
        raise DataError(root, f"no complete fine-tuning run found ({len(coll.skipped)} incomplete skipped{first})")
    return coll


def report(
    dir: str | Path,
    out_dir: str | Path | None = None,
    reference_csv: str | Path | None = None,
    *,
    figures: bool = True,
    n_slices: int = 3,
    min_pairs: int = 6,
    dpi: int = 110,
) -> ReportResult:
    """Write the report of a benchmark grid folder.

    Collects every fine-tuning run under ``dir`` (any depth; runs without ``summary.json`` are
    skipped and counted) and writes into ``out_dir``: ``results.md`` (all tables and figure links),
    ``results.csv``, ``results.tex`` (booktabs), ``stats.md`` and ``seed_stats.csv`` (per-seed
    differences, hierarchical-bootstrap intervals, Holm-corrected seed-level p-values), ``stats.csv``
    (the secondary case-level Wilcoxon tests against Scratch and the best baseline), ``pairwise.md``/``pairwise.csv`` (every pair of methods),
    ``pretrain_losses.md``/``.csv`` (each pre-training's loss terms at the start, halfway and at the
    end: :mod:`medssl.reporting.pretrain_losses`), ``pretrain_diagnostics.md``/``.csv`` (each
    pre-training diagnostic at random init and after, over seeds: :mod:`medssl.reporting.pretrain_diagnostics`),
    ``paper_comparison.md``/``.csv`` and ``figures/*.png``.

    Args:
        dir: the benchmark grid folder.
        out_dir: where to write (default ``dir/report``; never searched for runs).
        reference_csv: published results (default: the table shipped with medssl,
            :func:`packaged_reference_csv`).
        figures: draw the PNGs.
        n_slices: rows of the qualitative figures.
        min_pairs: fewest paired cases for a Wilcoxon p-value.
        dpi: figure resolution.

    Returns:
        A :class:`ReportResult`.

    Raises:
        DataError: when ``dir`` is not a folder, holds no run at all, or ``reference_csv`` is
            given but unreadable.
    """
    root = Path(dir)
    out = Path(out_dir) if out_dir is not None else root / "report"
    coll = _collect_report_runs(root, out, reference_csv)
    notes = [*provenance_notes(root), *mixed_definition_notes(coll.runs), *coll.notes]
    files: dict[str, Path] = {}
    tables = _write_results_tables(coll.runs, out, files)
    stats_md = _write_stats(coll.runs, out, files, min_pairs)
    pretrain_md = _write_pretrain_losses(coll.pretrain, out, files)
    diagnostics_md = _write_pretrain_diagnostics(coll.pretrain, out, files, notes)
    comp_md = _write_paper_comparison(coll.runs, out, files, reference_csv, notes)
    fig_results = _draw_figures(tables, coll, out / "figures", n_slices, dpi, notes) if figures else []
    written = [fr for fr in fig_results if fr.path is not None]
    markdown = _results_markdown(
        root, out, coll, tables, stats_md, comp_md, written, notes, pretrain_md, diagnostics_md
    )
    files["results_md"] = _write_text(out / "results.md", markdown)
    pngs = [fr.path for fr in written if fr.path is not None]
    return ReportResult(out, markdown, files, pngs, len(coll.runs), len(coll.pretrain), list(coll.skipped), notes)
