"""Paired significance tests between methods over test cases.

The ``standard`` protocol of METHODS.md section 6 asks for "a paired test between methods over
test cases". Each method is compared, on the same dataset, label fraction and protocol, with
Scratch and with the best baseline (the best non-Scratch method other than itself by mean
validation Dice over seeds, or mean test DSC where runs were selected on test:
:func:`~.tables.best_other`), using the two-sided Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, default
options) on per-case DSC averaged over foreground classes. Runs are paired by
``(seed, case_id)``: a case of seed s of method A is paired with the same case of seed s of
method B, so several seeds pool into one test.

That pooling counts the cases of one seed (one pre-training, one split) as independent and
overstates the evidence; the report's primary comparisons are made at the seed level
(:mod:`medssl.reporting.replicates`) and these tests are shown beside them as a secondary column
labelled "pools cases over seeds".
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps

from .tables import (
    RunRecord,
    best_other,
    labels_sort_key,
    method_display_name,
    method_sort_key,
    run_metric_value,
    to_float,
)

__all__ = [
    "PAIRWISE_FIELDS",
    "STATS_FIELDS",
    "PairRow",
    "PairedTest",
    "StatRow",
    "case_dsc",
    "compare_methods",
    "paired_samples",
    "paired_wilcoxon",
    "pairwise_csv_rows",
    "pairwise_markdown",
    "pairwise_tests",
    "stats_csv_rows",
    "stats_markdown",
]

#: below 6 non-tied pairs the exact two-sided Wilcoxon p-value cannot fall under 0.05 (2 / 2**5).
DEFAULT_MIN_PAIRS = 6


def case_dsc(run: RunRecord) -> dict[str, float]:
    """Per-case DSC of a run: the NaN-mean over its foreground classes of ``metrics.csv``'s ``dsc``.

    Args:
        run: a fine-tuning run.

    Returns:
        ``case_id -> DSC`` (fraction 0..1); cases whose classes are all NaN are left out.
    """
    vals: dict[str, list[float]] = {}
    for r in run.metric_rows():
        cid = str(r.get("case_id", ""))
        if cid:
            vals.setdefault(cid, []).append(to_float(r.get("dsc")))
    out = {}
    for cid, v in vals.items():
        arr = np.asarray(v, dtype=float)
        if np.isfinite(arr).any():
            out[cid] = float(np.nanmean(arr))
    return out


def paired_samples(
    runs_a: Sequence[RunRecord], runs_b: Sequence[RunRecord]
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Per-case DSC of two methods paired by ``(seed, case_id)``.

    Args:
        runs_a: runs of method A (one per seed) on one dataset / label fraction / protocol.
        runs_b: runs of method B on the same.

    Returns:
        ``(x, y, keys)``: x[i] and y[i] are A's and B's DSC (fractions) on pair ``keys[i]``;
        shapes (n,), sorted by key.
    """
    a = {(r.seed, cid): v for r in runs_a for cid, v in case_dsc(r).items()}
    b = {(r.seed, cid): v for r in runs_b for cid, v in case_dsc(r).items()}
    keys = sorted(set(a) & set(b))
    return (np.array([a[k] for k in keys], dtype=float), np.array([b[k] for k in keys], dtype=float), keys)


@dataclass(frozen=True)
class PairedTest:
    """The result of one paired comparison A vs B.

    Attributes:
        p_value: two-sided Wilcoxon signed-rank p-value (NaN when not computed; see ``note``).
        n_pairs: number of paired cases (all of them, ties included).
        n_nonzero: pairs with a non-zero difference (the ones the test ranks).
        statistic: Wilcoxon statistic (NaN when not computed).
        mean_diff: mean of A - B over the pairs, in DSC percentage points.
        note: why the p-value is NaN, or remarks (zero differences dropped).
    """

    p_value: float
    n_pairs: int
    n_nonzero: int
    statistic: float
    mean_diff: float
    note: str = ""


def paired_wilcoxon(x: np.ndarray, y: np.ndarray, min_pairs: int = DEFAULT_MIN_PAIRS) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test of paired samples (``scipy.stats.wilcoxon(x, y)``).

    Zero differences are dropped as in scipy's default ``zero_method="wilcox"``.

    Args:
        x: (n,) values of method A (fractions).
        y: (n,) values of method B on the same cases.
        min_pairs: fewer pairs than this gives NaN with a note (default 6: below that the exact
            two-sided p-value cannot be under 0.05).

    Returns:
        A :class:`PairedTest`.

    Raises:
        ValueError: when ``x`` and ``y`` differ in shape.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in shape: {x.shape} vs {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = int(x.size)
    d = x - y
    nz = int(np.count_nonzero(d))
    mean_diff = float(d.mean() * 100.0) if n else math.nan
    if n == 0:
        return PairedTest(math.nan, 0, 0, math.nan, math.nan, "no paired cases")
    if n < min_pairs:
        return PairedTest(math.nan, n, nz, math.nan, mean_diff, f"too few pairs ({n} < {min_pairs})")
    if nz == 0:
        return PairedTest(math.nan, n, 0, math.nan, mean_diff, "all differences are zero (ties)")
    note = f"{n - nz} zero differences dropped" if nz < n else ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = sps.wilcoxon(x, y)
    except ValueError as exc:
        return PairedTest(math.nan, n, nz, math.nan, mean_diff, f"test failed: {exc}")
    p = float(res.pvalue)
    return PairedTest(p, n, nz, float(res.statistic), mean_diff, note if math.isfinite(p) else (note or "p is NaN"))


@dataclass
class StatRow:
    """One method's tests on one dataset / label fraction / protocol.

    Attributes:
        protocol, dataset, labels, method: the group and the method (registry name).
        mean_dsc: mean over seeds of the run-level DSC (%).
        n_seeds: runs of the method in this group.
        vs_scratch: test against Scratch (None for Scratch itself or when Scratch was not run).
        best_baseline: the best non-Scratch method other than this one (registry name; chosen on
            validation Dice where the runs were selected on validation: :func:`~.tables.best_other`), or None.
        vs_best: test against ``best_baseline`` (None when there is none).
    """

    protocol: str
    dataset: str
    labels: str
    method: str
    mean_dsc: float
    n_seeds: int
    vs_scratch: PairedTest | None = None
    best_baseline: str | None = None
    vs_best: PairedTest | None = None
    notes: list[str] = field(default_factory=list)


def _by_group(runs: Sequence[RunRecord]) -> dict[tuple[str, str, str], dict[str, list[RunRecord]]]:
    """``(protocol, dataset, labels) -> method -> runs``: the groups within which methods compare."""
    groups: dict[tuple[str, str, str], dict[str, list[RunRecord]]] = {}
    for r in runs:
        groups.setdefault(r.group, {}).setdefault(r.method, []).append(r)
    return groups


def compare_methods(runs: Sequence[RunRecord], min_pairs: int = DEFAULT_MIN_PAIRS) -> list[StatRow]:
    """Test every method against Scratch and against the best baseline, per comparable group.

    Args:
        runs: complete fine-tuning runs (any mix of datasets, label fractions, protocols).
        min_pairs: see :func:`paired_wilcoxon`.

    Returns:
        One :class:`StatRow` per (protocol, dataset, labels, method), in table order.
    """
    groups = _by_group(runs)
    rows: list[StatRow] = []
    for (protocol, dataset, labels), by_method in groups.items():
        mean_dsc = {}
        for m, rs in by_method.items():
            v = np.array([run_metric_value(r, "dsc") for r in rs], dtype=float)
            mean_dsc[m] = float(np.nanmean(v) * 100.0) if np.isfinite(v).any() else math.nan
        for m in sorted(by_method, key=method_sort_key):
            row = StatRow(protocol, dataset, labels, m, mean_dsc[m], len(by_method[m]))
            if m != "scratch" and "scratch" in by_method:
                row.vs_scratch = paired_wilcoxon(*paired_samples(by_method[m], by_method["scratch"])[:2], min_pairs)
            best = best_other(by_method, m)[0]
            if best is not None:
                row.best_baseline = best
                row.vs_best = paired_wilcoxon(*paired_samples(by_method[m], by_method[best])[:2], min_pairs)
            rows.append(row)
    rows.sort(key=lambda s: (s.protocol, s.dataset.lower(), labels_sort_key(s.labels), method_sort_key(s.method)))
    return rows


STATS_FIELDS = [
    "protocol",
    "dataset",
    "labels",
    "method",
    "mean_dsc",
    "n_seeds",
    "vs_scratch_mean_diff",
    "vs_scratch_p",
    "vs_scratch_n_pairs",
    "vs_scratch_n_nonzero",
    "vs_scratch_statistic",
    "vs_scratch_note",
    "best_baseline",
    "vs_best_mean_diff",
    "vs_best_p",
    "vs_best_n_pairs",
    "vs_best_n_nonzero",
    "vs_best_statistic",
    "vs_best_note",
]


def _f(x: float) -> str:
    return "" if x is None or not math.isfinite(x) else repr(float(x))


def stats_csv_rows(rows: Sequence[StatRow]) -> list[dict[str, Any]]:
    """Flat rows (columns :data:`STATS_FIELDS`) for ``stats.csv``; NaN written as empty."""
    out = []
    for s in rows:
        d: dict[str, Any] = {
            "protocol": s.protocol,
            "dataset": s.dataset,
            "labels": s.labels,
            "method": method_display_name(s.method),
            "mean_dsc": _f(s.mean_dsc),
            "n_seeds": s.n_seeds,
            "best_baseline": method_display_name(s.best_baseline) if s.best_baseline else "",
        }
        for pre, t in (("vs_scratch", s.vs_scratch), ("vs_best", s.vs_best)):
            d[f"{pre}_mean_diff"] = _f(t.mean_diff) if t else ""
            d[f"{pre}_p"] = _f(t.p_value) if t else ""
            d[f"{pre}_n_pairs"] = t.n_pairs if t else ""
            d[f"{pre}_n_nonzero"] = t.n_nonzero if t else ""
            d[f"{pre}_statistic"] = _f(t.statistic) if t else ""
            d[f"{pre}_note"] = t.note if t else ""
        out.append(d)
    return out


def _fmt_p(p: float) -> str:
    if not math.isfinite(p):
        return "n/a"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def _fmt_test(t: PairedTest | None) -> tuple[str, str, str]:
    if t is None:
        return ("–", "–", "–")
    diff = f"{t.mean_diff:+.2f}" if math.isfinite(t.mean_diff) else "–"
    return (diff, _fmt_p(t.p_value), str(t.n_pairs))


def stats_markdown(rows: Sequence[StatRow]) -> str:
    """Markdown table of the tests: ΔDSC in percentage points (method - other), p, pairs, notes."""
    if not rows:
        return "_No runs to compare._"
    head = (
        "| Protocol | Dataset | Labels | Method | DSC (%) | Seeds | Δ vs Scratch (pp) | p vs Scratch | pairs "
        "| Best baseline | Δ vs best (pp) | p vs best | pairs | Notes |"
    )
    lines = [head, "|---|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"]
    for s in rows:
        a = _fmt_test(s.vs_scratch)
        b = _fmt_test(s.vs_best)
        notes = []
        if s.vs_scratch and s.vs_scratch.note:
            notes.append(f"vs Scratch: {s.vs_scratch.note}")
        if s.vs_best and s.vs_best.note:
            notes.append(f"vs best: {s.vs_best.note}")
        dsc = f"{s.mean_dsc:.2f}" if math.isfinite(s.mean_dsc) else "–"
        bb = method_display_name(s.best_baseline) if s.best_baseline else "–"
        lines.append(
            "| "
            + " | ".join(
                [
                    s.protocol,
                    s.dataset,
                    s.labels,
                    method_display_name(s.method),
                    dsc,
                    str(s.n_seeds),
                    *a,
                    bb,
                    *b,
                    "; ".join(notes),
                ]
            )
            + " |"
        )
    lines.append("")
    lines.append(
        "Two-sided Wilcoxon signed-rank test (scipy defaults) on per-case DSC averaged over classes, "
        "pairs = (seed, case) present in both methods, which pools cases over seeds as if they were independent; "
        "Δ = mean paired difference in DSC points."
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# every pair of methods
# --------------------------------------------------------------------------------------------------
@dataclass
class PairRow:
    """One paired test A vs B on one dataset / label fraction / protocol (A after B in table order)."""

    protocol: str
    dataset: str
    labels: str
    method_a: str
    method_b: str
    test: PairedTest


def pairwise_tests(runs: Sequence[RunRecord], min_pairs: int = DEFAULT_MIN_PAIRS) -> list[PairRow]:
    """The paired Wilcoxon test of every pair of methods in each comparable group.

    :func:`compare_methods` tests each method against Scratch and the best baseline only; a claim
    such as "ahead of SimCLR and PCL" needs the test against each of them. A is the method later in
    table order (the methods of the papers come last), so ``mean_diff`` > 0 means A ahead of B.

    Args:
        runs: complete fine-tuning runs.
        min_pairs: see :func:`paired_wilcoxon`.

    Returns:
        One :class:`PairRow` per unordered pair of methods per group, in table order.
    """
    groups = _by_group(runs)
    rows: list[PairRow] = []
    for (protocol, dataset, labels), by_method in groups.items():
        methods = sorted(by_method, key=method_sort_key)
        for i, a in enumerate(methods):
            for b in methods[:i]:
                t = paired_wilcoxon(*paired_samples(by_method[a], by_method[b])[:2], min_pairs)
                rows.append(PairRow(protocol, dataset, labels, a, b, t))
    rows.sort(
        key=lambda r: (
            r.protocol,
            r.dataset.lower(),
            labels_sort_key(r.labels),
            method_sort_key(r.method_a),
            method_sort_key(r.method_b),
        )
    )
    return rows


PAIRWISE_FIELDS = [
    "protocol",
    "dataset",
    "labels",
    "method_a",
    "method_b",
    "mean_diff",
    "p",
    "n_pairs",
    "n_nonzero",
    "statistic",
    "note",
]


def pairwise_csv_rows(rows: Sequence[PairRow]) -> list[dict[str, Any]]:
    """Flat rows (columns :data:`PAIRWISE_FIELDS`) for ``pairwise.csv``; NaN written as empty."""
    return [
        {
            "protocol": r.protocol,
            "dataset": r.dataset,
            "labels": r.labels,
            "method_a": method_display_name(r.method_a),
            "method_b": method_display_name(r.method_b),
            "mean_diff": _f(r.test.mean_diff),
            "p": _f(r.test.p_value),
            "n_pairs": r.test.n_pairs,
            "n_nonzero": r.test.n_nonzero,
            "statistic": _f(r.test.statistic),
            "note": r.test.note,
        }
        for r in rows
    ]


def pairwise_markdown(rows: Sequence[PairRow]) -> str:
    """Markdown table of every pair: Δ DSC (A - B, points), p and pairs."""
    if not rows:
        return "_No pairs of methods to compare._"
    lines = [
        "| Protocol | Dataset | Labels | A | B | Δ A - B (pp) | p | pairs | Notes |",
        "|---|---|---|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        diff, p, n = _fmt_test(r.test)
        lines.append(
            "| "
            + " | ".join(
                [
                    r.protocol,
                    r.dataset,
                    r.labels,
                    method_display_name(r.method_a),
                    method_display_name(r.method_b),
                    diff,
                    p,
                    n,
                    r.test.note,
                ]
            )
            + " |"
        )
    lines.append("")
    lines.append(
        "Two-sided Wilcoxon signed-rank test (scipy defaults) on per-case DSC averaged over classes, "
        "pairs = (seed, case) present in both methods, which pools cases over seeds as if independent "
        "(the seed-level comparisons are in stats.md); Δ > 0: A's mean above B's."
    )
    return "\n".join(lines)
