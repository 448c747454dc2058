"""Comparisons of methods at the level of their independent replicates: the seeds.

A seed of a benchmark grid is one whole pipeline (pre-training, split, fine-tuning), so the seed is
the unit of replication; the test cases of one seed share its pre-trained encoder and its split and
are not independent of each other. Pooling the cases of every seed into one test (the Wilcoxon of
:mod:`medssl.reporting.stats`) counts them as independent and overstates the evidence: three
seeds of which one disagrees can give p < 1e-5 over 60 pooled cases. This module compares methods
the way a reviewer accepts (see ``docs/statistics.md``):

* per seed, the mean over paired test cases of the per-case DSC difference (method minus the other),
  and how many seeds the method is ahead in;
* their mean with a 95% interval from a hierarchical bootstrap (seeds resampled with replacement,
  then the cases within each drawn seed; seeded, so the report is reproducible);
* a two-sided one-sample t-test of the per-seed differences (df = seeds - 1), with an exact
  sign-flip permutation p beside it (whose smallest attainable value is 2 / 2**seeds: 0.0625 with
  5 seeds, so it can never be under 0.05 there);
* Holm's step-down correction of the t-test p-values over every comparison of the folder;
* a verdict, ``ahead`` / ``behind``, only when the interval excludes 0 AND the Holm-corrected
  p < 0.05; else ``inconclusive``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps

from .stats import PairedTest, case_dsc, paired_samples, paired_wilcoxon
from .tables import RunRecord, best_other, labels_sort_key, method_display_name, method_sort_key

__all__ = [
    "SEED_STATS_FIELDS",
    "SeedComparison",
    "compare_pair",
    "csv_number",
    "format_p",
    "hierarchical_bootstrap",
    "holm",
    "min_sign_flip_p",
    "per_seed_differences",
    "seed_comparisons",
    "seed_stats_csv_rows",
    "seed_stats_markdown",
    "seed_t_test",
    "sign_flip_p",
    "verdict",
]

#: bootstrap resamples of the report (and the generator seed that makes it reproducible)
N_BOOT = 10_000
BOOT_SEED = 0
ALPHA = 0.05


def per_seed_differences(runs_a: Sequence[RunRecord], runs_b: Sequence[RunRecord]) -> dict[int, np.ndarray]:
    """Per-case DSC differences A - B (fractions), per seed, over the cases both runs of that seed scored.

    Args:
        runs_a: runs of method A (one per seed) in one group.
        runs_b: runs of method B in the same group.

    Returns:
        ``seed -> (n_cases,) array`` for the seeds both methods ran (seeds without a common case left out).
    """
    a = {r.seed: case_dsc(r) for r in runs_a}
    b = {r.seed: case_dsc(r) for r in runs_b}
    out: dict[int, np.ndarray] = {}
    for seed in sorted(set(a) & set(b)):
        cases = sorted(set(a[seed]) & set(b[seed]))
        d = np.array([a[seed][c] - b[seed][c] for c in cases], dtype=float)
        d = d[np.isfinite(d)]
        if d.size:
            out[seed] = d
    return out


def hierarchical_bootstrap(
    diffs: Sequence[np.ndarray], n_boot: int = N_BOOT, level: float = 0.95, seed: int = BOOT_SEED
) -> tuple[float, float, float]:
    """Mean of the per-seed means and its percentile interval from a two-level bootstrap.

    Each resample draws as many seeds as there are, with replacement, then within each drawn seed as
    many of its cases as it has, with replacement, and takes the mean over the drawn seeds of their
    case means. Constant differences give a degenerate interval at that constant.

    Args:
        diffs: per seed, the (n_cases,) differences.
        n_boot: resamples.
        level: coverage of the interval.
        seed: seed of the generator (the same inputs give the same interval).

    Returns:
        ``(estimate, low, high)``; NaNs without data.
    """
    diffs = [np.asarray(d, dtype=float) for d in diffs if np.asarray(d).size]
    if not diffs:
        return (math.nan, math.nan, math.nan)
    estimate = float(np.mean([d.mean() for d in diffs]))
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(diffs), size=(n_boot, len(diffs)))
    means = np.empty(pick.shape, dtype=float)
    for s, d in enumerate(diffs):
        where = pick == s
        k = int(where.sum())
        if k:
            means[where] = d[rng.integers(0, d.size, size=(k, d.size))].mean(axis=1)
    stat = means.mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(stat, [tail, 1.0 - tail])
    return (estimate, float(low), float(high))


def seed_t_test(seed_diffs: Sequence[float]) -> float:
    """Two-sided one-sample t-test of per-seed differences against 0 (df = n - 1).

    Returns:
        The p-value; NaN with fewer than 2 seeds; 0 when every seed has the same non-zero difference
        (no spread), 1 when all are 0.
    """
    d = np.asarray([x for x in seed_diffs if math.isfinite(x)], dtype=float)
    n = d.size
    if n < 2:
        return math.nan
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd <= 1e-12 * max(1.0, abs(mean)):
        return 1.0 if mean == 0 else 0.0
    t = mean / (sd / math.sqrt(n))
    return float(min(1.0, 2.0 * sps.t.sf(abs(t), n - 1)))


def sign_flip_p(seed_diffs: Sequence[float], n_random: int = 100_000, seed: int = BOOT_SEED) -> float:
    """Two-sided sign-flip permutation p of the mean per-seed difference (exact up to 16 seeds).

    Under the null each seed's difference is as likely positive as negative; p is the share of the
    2**n sign patterns whose |mean| is at least the observed one (the observed pattern included).
    """
    d = np.asarray([x for x in seed_diffs if math.isfinite(x)], dtype=float)
    n = d.size
    if n == 0:
        return math.nan
    observed = abs(d.mean()) - 1e-12
    if n <= 16:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(n_random, n))
    return float(np.mean(np.abs(signs @ d / n) >= observed))


def min_sign_flip_p(n_seeds: int) -> float:
    """The smallest two-sided sign-flip p with ``n_seeds`` seeds: 2 / 2**n (0.0625 for 5, 0.0039 for 9)."""
    return min(1.0, 2.0 / 2**n_seeds) if n_seeds > 0 else math.nan


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaNs are left out of the family and stay NaN).

    The i-th smallest of m p-values is multiplied by m - i (i from 0), made non-decreasing in that
    order, and capped at 1. Example: ``[0.01, 0.04, 0.03, 0.005] -> [0.03, 0.06, 0.06, 0.02]``.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, math.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    running = 0.0
    for rank, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def verdict(low: float, high: float, p_holm: float, alpha: float = ALPHA) -> str:
    """``ahead`` / ``behind`` when the interval excludes 0 and the corrected p < ``alpha``; else ``inconclusive``."""
    if not (math.isfinite(low) and math.isfinite(high) and math.isfinite(p_holm)) or p_holm >= alpha:
        return "inconclusive"
    if low > 0:
        return "ahead"
    if high < 0:
        return "behind"
    return "inconclusive"


@dataclass
class SeedComparison:
    """Method A against B in one group (protocol, dataset, labels), at the seed level.

    Attributes:
        seeds: seeds both ran; ``seed_diffs`` their mean differences A - B in DSC points.
        n_ahead: seeds with a positive difference.
        mean_diff, ci_low, ci_high: mean of ``seed_diffs`` and its hierarchical-bootstrap 95% interval (points).
        p: t-test over seeds; ``p_sign_flip``: exact sign-flip p; ``p_holm``: ``p`` corrected over the folder.
        pretrainings: distinct pre-trained checkpoints (``init``) among A's runs of these seeds (0: Scratch).
        pooled: the case-level Wilcoxon, which pools cases over seeds (secondary).
        verdict: ``ahead`` / ``behind`` / ``inconclusive`` (:func:`verdict`).
    """

    protocol: str
    dataset: str
    labels: str
    method: str
    other: str
    seeds: tuple[int, ...]
    seed_diffs: tuple[float, ...]
    n_ahead: int
    mean_diff: float
    ci_low: float
    ci_high: float
    p: float
    p_sign_flip: float
    pretrainings: int
    pooled: PairedTest
    p_holm: float = math.nan
    verdict: str = "inconclusive"
    notes: list[str] = field(default_factory=list)


def compare_pair(group: tuple[str, str, str], a: str, b: str, by_method: dict[str, list[RunRecord]]) -> SeedComparison:
    """Method ``a`` against ``b`` in one group at the seed level (no correction: ``p_holm`` is NaN).

    Args:
        group: ``(protocol, dataset_label, labels)`` of the runs.
        a: the method compared, a key of ``by_method``.
        b: the method it is compared with, a key of ``by_method``.
        by_method: the group's runs per method (one per seed).

    Returns:
        A :class:`SeedComparison` with per-seed differences, the bootstrap interval and the t-test p.
    """
    diffs = per_seed_differences(by_method[a], by_method[b])
    seeds = tuple(diffs)
    seed_diffs = tuple(float(d.mean() * 100.0) for d in diffs.values())
    est, lo, hi = hierarchical_bootstrap([d * 100.0 for d in diffs.values()])
    inits = {str(r.run.get("init")) for r in by_method[a] if r.seed in seeds and r.run.get("init")}
    pooled = paired_wilcoxon(*paired_samples(by_method[a], by_method[b])[:2])
    cmp = SeedComparison(
        *group, a, b, seeds, seed_diffs, sum(d > 0 for d in seed_diffs), est, lo, hi,
        seed_t_test(seed_diffs), sign_flip_p(seed_diffs), len(inits), pooled,
    )  # fmt: skip
    if len(seeds) < 2:
        cmp.notes.append(f"{len(seeds)} seed{'' if len(seeds) == 1 else 's'}: no seed-level test")
    if 1 == len(inits) < len(seeds):
        cmp.notes.append("one pre-training shared by every seed: the interval omits pre-training variation")
    return cmp


def seed_comparisons(runs: Sequence[RunRecord]) -> list[SeedComparison]:
    """Every method against Scratch and against the best other pre-trained method, per group, at the
    seed level, with Holm's correction over all of them (each unordered pair counted once). The other
    method is chosen on validation Dice where the runs were selected on validation
    (:func:`~.tables.best_other`).

    Args:
        runs: complete fine-tuning runs (any mix of groups).

    Returns:
        :class:`SeedComparison` rows in table order (group, method, Scratch first).
    """
    groups: dict[tuple[str, str, str], dict[str, list[RunRecord]]] = {}
    for r in runs:
        groups.setdefault(r.group, {}).setdefault(r.method, []).append(r)
    rows: dict[tuple[Any, ...], SeedComparison] = {}
    for group, by_method in groups.items():
        for m in sorted(by_method, key=method_sort_key):
            others = ["scratch"] if m != "scratch" and "scratch" in by_method else []
            best, basis = best_other(by_method, m)
            others += [best] if best and m != "scratch" else []
            for o in others:
                key = (*group, *sorted((m, o)))
                if key not in rows:
                    rows[key] = compare_pair(group, m, o, by_method)
                    if o != "scratch" and basis == "test":
                        rows[key].notes.append("other method chosen on test DSC: its runs were selected on test")
    out = list(rows.values())
    for cmp, ph in zip(out, holm([c.p for c in out])):
        cmp.p_holm = float(ph)
        cmp.verdict = verdict(cmp.ci_low, cmp.ci_high, cmp.p_holm)
    out.sort(key=lambda c: (c.protocol, c.dataset.lower(), labels_sort_key(c.labels), method_sort_key(c.method),
                            c.other != "scratch", method_sort_key(c.other)))  # fmt: skip
    return out


SEED_STATS_FIELDS = [
    "protocol",
    "dataset",
    "labels",
    "method",
    "vs",
    "n_seeds",
    "pretrainings",
    "seed_diffs",
    "seeds_ahead",
    "mean_diff",
    "ci_low",
    "ci_high",
    "p_t_seeds",
    "p_sign_flip",
    "p_holm",
    "verdict",
    "p_wilcoxon_pooled_cases",
    "n_pairs_pooled",
    "notes",
]


def csv_number(x: float) -> str:
    """A number for a CSV cell: rounded to 6 decimals, empty for NaN or None."""
    return "" if x is None or not math.isfinite(x) else repr(round(float(x), 6))


def seed_stats_csv_rows(rows: Sequence[SeedComparison]) -> list[dict[str, Any]]:
    """Flat rows (columns :data:`SEED_STATS_FIELDS`) for ``seed_stats.csv``; differences in DSC points."""
    return [
        {
            "protocol": c.protocol,
            "dataset": c.dataset,
            "labels": c.labels,
            "method": method_display_name(c.method),
            "vs": method_display_name(c.other),
            "n_seeds": len(c.seeds),
            "pretrainings": c.pretrainings,
            "seed_diffs": " ".join(f"s{s}:{d:+.4f}" for s, d in zip(c.seeds, c.seed_diffs)),
            "seeds_ahead": c.n_ahead,
            "mean_diff": csv_number(c.mean_diff),
            "ci_low": csv_number(c.ci_low),
            "ci_high": csv_number(c.ci_high),
            "p_t_seeds": csv_number(c.p),
            "p_sign_flip": csv_number(c.p_sign_flip),
            "p_holm": csv_number(c.p_holm),
            "verdict": c.verdict,
            "p_wilcoxon_pooled_cases": csv_number(c.pooled.p_value),
            "n_pairs_pooled": c.pooled.n_pairs,
            "notes": "; ".join(c.notes),
        }
        for c in rows
    ]


def format_p(p: float) -> str:
    """A p-value for a table: ``n/a`` for NaN, scientific below 0.001 (``2.0e-04``), else 3 decimals."""
    if not math.isfinite(p):
        return "n/a"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def _pp(x: float) -> str:
    return f"{x:+.2f}" if math.isfinite(x) else "–"


def _markdown_row(c: SeedComparison) -> str:
    ci = f"[{_pp(c.ci_low)}, {_pp(c.ci_high)}]" if math.isfinite(c.ci_low) else "–"
    cells = [
        c.protocol,
        c.dataset,
        c.labels,
        method_display_name(c.method),
        method_display_name(c.other),
        str(len(c.seeds)),
        str(c.pretrainings) if c.method != "scratch" else "–",
        " / ".join(_pp(d) for d in c.seed_diffs) or "–",
        f"{c.n_ahead} of {len(c.seeds)}",
        _pp(c.mean_diff),
        ci,
        format_p(c.p),
        format_p(c.p_holm),
        f"**{c.verdict}**" if c.verdict != "inconclusive" else c.verdict,
        f"{format_p(c.pooled.p_value)} ({c.pooled.n_pairs})",
        "; ".join(c.notes),
    ]
    return "| " + " | ".join(cells) + " |"


def seed_stats_markdown(rows: Sequence[SeedComparison]) -> str:
    """Markdown table of the seed-level comparisons and the paragraph that says how to read it."""
    if not rows:
        return "_No pairs of methods with common seeds to compare._"
    lines = [
        "| Protocol | Dataset | Labels | Method | vs | Seeds | Pre-trainings | Δ per seed (pp) | Seeds ahead "
        "| Mean Δ (pp) | 95% CI (pp) | p (t, seeds) | p Holm | Verdict | Wilcoxon p, pools cases over seeds (pairs) "
        "| Notes |",
        "|---|---|---|---|---|---:|---:|---|---:|---:|---|---:|---:|---|---:|---|",
        *map(_markdown_row, rows),
    ]
    counts = sorted({len(c.seeds) for c in rows if c.seeds})
    floor = ", ".join(f"{min_sign_flip_p(n):.4g} with {n} seeds" for n in counts)
    lines += [
        "",
        "Δ = method minus the other, per seed the mean over the test cases both scored of the per-case DSC "
        "(mean over foreground classes), in DSC points. A seed is one whole pipeline (pre-training, split, "
        "fine-tuning). 95% CI: hierarchical bootstrap of the mean Δ (seeds resampled, then cases within each "
        f"seed; {N_BOOT} resamples, generator seed {BOOT_SEED}). p (t, seeds): two-sided one-sample t-test of "
        f"the per-seed Δ (df = seeds - 1); p Holm: Holm's correction over all {len(rows)} comparisons of this "
        "folder. The verdict names a direction only when the interval excludes 0 and p Holm < 0.05. "
        f"The exact sign-flip test over seeds (`seed_stats.csv`) cannot go below 2 / 2^seeds ({floor}). "
        "The Wilcoxon column pools cases over seeds as if they were independent; it is shown for comparison "
        "with older reports and overstates the evidence. Pre-trainings: distinct pre-trained checkpoints "
        "among the method's seeds (1 = one pre-training shared by every seed). Each method is compared with "
        "Scratch and with the best other pre-trained method by mean validation Dice (by test DSC only where "
        "the runs were selected on test, as the `paper` protocol does; noted).",
    ]
    return "\n".join(lines)
