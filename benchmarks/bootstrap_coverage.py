"""How often do the report's 95% interval and its seed-level t-test cover a true difference of 0?

Simulates comparisons shaped like the evidence grids (``--cases`` test patients per seed, each seed
with its own random offset: pre-training, split and fine-tuning differ between seeds) under the null
hypothesis (the true mean difference is 0), and counts how often

* the hierarchical-bootstrap percentile interval (:func:`medssl.reporting.replicates.hierarchical_bootstrap`)
  contains 0, and
* the t-test over seeds (:func:`medssl.reporting.replicates.seed_t_test`) gives p >= 0.05, and
* the report's verdict (:func:`medssl.reporting.replicates.verdict`, one comparison, so no Holm)
  wrongly says ``ahead`` or ``behind``,

for 3, 5 and 10 seeds. The first two should be near 95%, the last near 5% or below. A percentile
bootstrap over few top-level units is known to be too narrow (it resamples 5 seeds as if they were
the population, with no small-sample correction such as the t-test's), which is why the report's
verdict also needs the t-test (docs/statistics.md):

    python benchmarks/bootstrap_coverage.py                  # 1000 simulated comparisons per row
    python benchmarks/bootstrap_coverage.py --reps 200       # quicker, noisier

The printed +- is the binomial standard error of each share. About 2.5 minutes on one core.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from medssl.reporting.replicates import hierarchical_bootstrap, seed_t_test, verdict


def coverage(
    n_seeds: int, n_cases: int, seed_sd: float, case_sd: float, reps: int, n_boot: int, rng: np.random.Generator
) -> tuple[float, float, float]:
    """Shares of ``reps`` null comparisons whose bootstrap interval holds 0, whose t-test p >= 0.05, and
    whose verdict is ``ahead`` or ``behind`` (a false claim)."""
    boot = t = wrong = 0
    for r in range(reps):
        diffs = [rng.normal(rng.normal(0.0, seed_sd), case_sd, size=n_cases) for _ in range(n_seeds)]
        _, low, high = hierarchical_bootstrap(diffs, n_boot=n_boot, seed=r)
        p = seed_t_test([float(d.mean()) for d in diffs])
        boot += low <= 0.0 <= high
        t += p >= 0.05
        wrong += verdict(low, high, p) != "inconclusive"
    return boot / reps, t / reps, wrong / reps


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1000, help="simulated comparisons per row")
    ap.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples per interval")
    ap.add_argument("--cases", type=int, default=7, help="test patients per seed (MS-CMRSeg's split: 7)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 10])
    ap.add_argument("--rng", type=int, default=1, help="seed of the simulation")
    a = ap.parse_args(argv)
    rng = np.random.default_rng(a.rng)
    # DSC points: between-seed spread as in the grids' per-seed differences, within-seed case spread
    scenarios = [("seeds differ (sd 3), cases sd 5", 3.0, 5.0), ("seeds alike (sd 0), cases sd 5", 0.0, 5.0)]
    print(f"# python benchmarks/bootstrap_coverage.py --reps {a.reps} --n-boot {a.n_boot} --cases {a.cases}")
    print(
        "| scenario | seeds | bootstrap 95% interval holds 0 | t-test over seeds p >= 0.05 | verdict ahead or behind |"
    )
    print("|---|---:|---:|---:|---:|")
    start = time.time()
    for name, seed_sd, case_sd in scenarios:
        for n in a.seeds:
            shares = coverage(n, a.cases, seed_sd, case_sd, a.reps, a.n_boot, rng)
            cells = " | ".join(f"{100 * p:.1f}% +- {100 * math.sqrt(p * (1 - p) / a.reps):.1f}" for p in shares)
            print(f"| {name} | {n} | {cells} |")
    print(f"({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
