"""Known-answer tests of the seed-level statistics (medssl.reporting.replicates)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from medssl.reporting.replicates import (
    hierarchical_bootstrap,
    holm,
    min_sign_flip_p,
    per_seed_differences,
    seed_comparisons,
    seed_stats_csv_rows,
    seed_stats_markdown,
    seed_t_test,
    sign_flip_p,
    verdict,
)
from medssl.reporting.stats import paired_samples, paired_wilcoxon
from medssl.reporting.tables import RunRecord


def _run(method: str, seed: int, dsc: dict[str, float], init: str | None = None, dataset: str = "MS-CMRSeg"):
    rows = [{"case_id": c, "class_index": "1", "dsc": repr(float(v))} for c, v in dsc.items()]
    return RunRecord(
        path=Path(f"/nowhere/{method}_{seed}"),
        method=method,
        dataset=dataset.lower(),
        dataset_label=dataset,
        labels="10%",
        seed=seed,
        protocol="standard",
        data=None,
        class_names=["LV"],
        run={"init": init} if init else {},
        summary={"mean": {"dsc": float(np.mean(list(dsc.values())))}},
        _metric_rows=rows,
    )


def _grid(seed_shift: dict[int, float], n_cases: int = 20, shared: bool = False) -> list[RunRecord]:
    """Scratch and MACL over seeds; MACL = Scratch + seed_shift[seed] + a tiny per-case wobble."""
    runs = []
    for s, shift in seed_shift.items():
        g = np.random.default_rng(s)
        base = {f"c{i:02d}": float(v) for i, v in enumerate(g.uniform(0.5, 0.8, n_cases))}
        wobble = g.uniform(-0.002, 0.002, n_cases)
        runs.append(_run("scratch", s, base))
        init = "pre/macl.pt" if shared else f"pre/macl_s{s}.pt"
        runs.append(_run("macl", s, {c: v + shift + w for (c, v), w in zip(base.items(), wobble)}, init))
    return runs


def test_holm_matches_a_hand_computed_example():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = holm([math.nan, 0.01, 0.04])  # NaN is not in the family: m = 2
    assert math.isnan(out[0]) and out[1:] == pytest.approx([0.02, 0.04])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_bootstrap_of_constant_differences_is_degenerate():
    est, lo, hi = hierarchical_bootstrap([np.full(7, 0.03), np.full(12, 0.03), np.full(5, 0.03)])
    assert est == pytest.approx(0.03) and lo == pytest.approx(0.03) and hi == pytest.approx(0.03)


def test_bootstrap_interval_spans_the_seed_means_when_cases_agree_within_seeds():
    # two seeds at 1 and 3: a resample's mean is 1, 2 or 3 with probabilities 1/4, 1/2, 1/4
    est, lo, hi = hierarchical_bootstrap([np.full(4, 1.0), np.full(6, 3.0)])
    assert (est, lo, hi) == (2.0, 1.0, 3.0)
    again = hierarchical_bootstrap([np.full(4, 1.0), np.full(6, 3.0)])
    assert again == (est, lo, hi)  # seeded: deterministic


def test_bootstrap_interval_narrows_with_more_seeds():
    g = np.random.default_rng(3)
    few = hierarchical_bootstrap([g.normal(0.02, 0.05, 20) + g.normal(0, 0.02) for _ in range(3)])
    many = hierarchical_bootstrap([g.normal(0.02, 0.05, 20) + g.normal(0, 0.02) for _ in range(30)])
    assert (many[2] - many[1]) < (few[2] - few[1])


def test_seed_level_tests_known_answers():
    # t = 2 / (1 / sqrt 3) = 2 sqrt 3, df 2: p = 1 - 2 sqrt3 / sqrt(14) (closed form of the t(2) cdf)
    assert seed_t_test([1.0, 2.0, 3.0]) == pytest.approx(1 - 2 * math.sqrt(3) / math.sqrt(14), rel=1e-9)
    assert math.isnan(seed_t_test([4.0]))
    assert seed_t_test([2.0, 2.0, 2.0]) == 0.0 and seed_t_test([0.0, 0.0]) == 1.0
    assert sign_flip_p([1, 2, 3, 4, 5]) == pytest.approx(2 / 32)
    assert sign_flip_p([1, -1]) == pytest.approx(1.0)
    assert min_sign_flip_p(5) == pytest.approx(0.0625) and min_sign_flip_p(9) == pytest.approx(2 / 512)


def test_verdict_needs_both_the_interval_and_the_corrected_p():
    assert verdict(0.5, 2.0, 0.01) == "ahead"
    assert verdict(-2.0, -0.5, 0.01) == "behind"
    assert verdict(-0.1, 2.0, 0.01) == "inconclusive"  # interval touches 0
    assert verdict(0.5, 2.0, 0.06) == "inconclusive"  # corrected p too large
    assert verdict(0.5, 2.0, math.nan) == "inconclusive"


def test_pooled_cases_look_significant_but_disagreeing_seeds_are_not_called_ahead():
    runs = _grid({0: 0.05, 1: 0.05, 2: -0.01})
    pooled = paired_wilcoxon(*paired_samples(runs[1::2], runs[0::2])[:2])
    assert pooled.n_pairs == 60 and pooled.p_value < 1e-4  # what the old report called significant
    (cmp,) = seed_comparisons(runs)
    assert cmp.method == "macl" and cmp.other == "scratch" and cmp.n_ahead == 2
    assert cmp.seed_diffs == pytest.approx([5.0, 5.0, -1.0], abs=0.05)
    assert cmp.p > 0.2 and cmp.verdict == "inconclusive"
    md = seed_stats_markdown([cmp])
    row = md.splitlines()[2]
    assert "2 of 3" in row and "| inconclusive |" in row and "pools cases over seeds" in md
    assert "**ahead**" not in md and "significant" not in md


def test_consistent_seeds_are_ahead_and_holm_counts_every_comparison():
    runs = _grid({0: 0.05, 1: 0.06, 2: 0.04, 3: 0.05, 4: 0.055})
    (cmp,) = seed_comparisons(runs)
    assert cmp.n_ahead == 5 and cmp.ci_low > 3.0 and cmp.p < 1e-3
    assert cmp.p_holm == pytest.approx(cmp.p) and cmp.verdict == "ahead" and cmp.pretrainings == 5
    assert "| **ahead** |" in seed_stats_markdown([cmp]).splitlines()[2]
    # a second data set doubles the family: Holm multiplies the smaller p by 2
    other = [_run(r.method, r.seed, {c: v for c, v in _case(r).items()}, r.run.get("init"), "CHAOS") for r in runs]
    both = seed_comparisons(runs + other)
    assert len(both) == 2 and both[0].p_holm == pytest.approx(2 * min(c.p for c in both))


def _case(r: RunRecord) -> dict[str, float]:
    return {row["case_id"]: float(row["dsc"]) for row in r.metric_rows()}


def test_shared_pretraining_is_counted_and_noted():
    (cmp,) = seed_comparisons(_grid({0: 0.05, 1: 0.06, 2: 0.04}, shared=True))
    assert cmp.pretrainings == 1 and any("shared" in n for n in cmp.notes)
    row = seed_stats_csv_rows([cmp])[0]
    assert row["pretrainings"] == 1 and row["seeds_ahead"] == 3 and row["vs"] == "Scratch"


def test_per_seed_differences_use_only_common_cases():
    a = [_run("macl", 0, {"x": 0.9, "y": 0.8}), _run("macl", 1, {"x": 0.5})]
    b = [_run("scratch", 0, {"x": 0.7, "z": 0.1}), _run("scratch", 2, {"x": 0.5})]
    d = per_seed_differences(a, b)
    assert list(d) == [0] and d[0] == pytest.approx([0.2])


def test_the_other_method_is_chosen_on_validation_never_on_test():
    """PCL is best on test, SuperCL on validation: with every run selected on validation the comparator
    of MACL is SuperCL (chosen before any test number is read); once a run was selected on test (the
    papers' protocol), the test DSC chooses, and the row says so."""
    from medssl.reporting.stats import compare_methods
    from medssl.reporting.tables import best_other

    runs = []
    for s in range(3):
        base = {f"c{i}": 0.6 + 0.01 * i + 0.003 * s for i in range(8)}
        for m, test_shift, val in (
            ("scratch", 0.0, 0.70),
            ("pcl", 0.05, 0.72),
            ("supercl", 0.02, 0.80),
            ("macl", 0.03, 0.75),
        ):
            r = _run(m, s, {c: v + test_shift for c, v in base.items()}, None if m == "scratch" else f"pre/{m}_s{s}.pt")
            r.run.update(selected_on="validation", best_score=val)
            runs.append(r)
    by: dict[str, list[RunRecord]] = {}
    for r in runs:
        by.setdefault(r.method, []).append(r)
    assert best_other(by, "macl") == ("supercl", "validation")
    assert best_other(by, "supercl") == ("macl", "validation")
    rows = seed_comparisons(runs)
    assert {(c.method, c.other) for c in rows if c.other != "scratch"} == {("pcl", "supercl"), ("supercl", "macl")}
    assert not any("chosen on test" in n for c in rows for n in c.notes)
    assert {s.method: s.best_baseline for s in compare_methods(runs)}["macl"] == "supercl"
    runs[1].run["selected_on"] = "test (as the papers did)"  # pcl, seed 0
    assert best_other(by, "macl") == ("pcl", "test")
    vs = [c for c in seed_comparisons(runs) if c.method == "macl" and c.other == "pcl"]
    assert len(vs) == 1 and "other method chosen on test DSC: its runs were selected on test" in vs[0].notes
