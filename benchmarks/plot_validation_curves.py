"""Redraw a grid's validation curves, against the optimiser step, from its shipped validation_curves.csv.

``medssl report`` writes the numbers of each fine-tuning curve figure beside it
(``report/figures/curves_*.csv``: per method and step, the validation Dice's mean and std over the
seeds and ``n``, the seeds behind it); the results folders under ``benchmarks/results/cpu/`` ship
them as ``validation_curves.csv``. This script draws them with
:func:`medssl.reporting.figures.plot_validation_curves`: one line per method, only at the steps that
every seed scored (a step where fewer seeds had validated, such as step 50 when the other seeds'
epochs end at 52, is left out and named), so the documentation's figures can be regenerated from the
shipped files alone:

    python benchmarks/plot_validation_curves.py benchmarks/results/cpu/cardiac_grid/validation_curves.csv \\
        docs/figures/curves_standard_mscmrseg_10pct.png --title "MS-CMRSeg, 10% labels, 500 fine-tuning steps"

Prints one line per method (seeds, steps drawn, steps left out).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medssl.errors import MedsslError
from medssl.reporting.figures import plot_validation_curves, read_validation_curves, validation_curve_series


def main(argv: list[str] | None = None) -> int:
    """Read the CSV, draw the PNG, print what was drawn; one-line errors with exit status 2."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", type=Path, help="a validation_curves.csv (medssl report's curves_*.csv)")
    ap.add_argument("out", type=Path, help="PNG to write")
    ap.add_argument("--title", default=None, help="figure title")
    ap.add_argument("--dpi", type=int, default=110)
    args = ap.parse_args(argv)
    try:
        rows = read_validation_curves(args.csv)
    except MedsslError as exc:
        print(f"plot_validation_curves: error: {exc}", file=sys.stderr)
        return 2
    for c in validation_curve_series(rows):
        left = f"; left out: step{'s' if len(c.left_out) > 1 else ''} {', '.join(map(str, c.left_out))}"
        print(f"{c.method}: n={c.n}, steps {c.steps.min():g}-{c.steps.max():g}{left if c.left_out else ''}")
    res = plot_validation_curves(rows, args.out, title=args.title, dpi=args.dpi)
    if res.path is None:
        print(f"plot_validation_curves: error: {args.csv}: {'; '.join(res.notes)}", file=sys.stderr)
        return 2
    print(f"wrote {res.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
