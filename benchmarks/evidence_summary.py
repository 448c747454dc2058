"""Issue 22's summary: every pre-trained method against Scratch in every grid and variant, one family.

Each GRID (a benchmark folder or its results bundle) and each of its ``variants/*`` is one setting,
labelled from its runs' configurations (recipe, transfer options, budget); a variant that only
changes how pre-trained weights are fine-tuned is compared with the Scratch runs of the same recipe
and budget (``medssl.reporting.family.grid_settings``). Per-seed differences, hierarchical-bootstrap
intervals and t-tests over seeds, with Holm's correction over ALL comparisons of all grids together:

    python benchmarks/evidence_summary.py --out benchmarks/results/cpu/evidence_summary \\
        benchmarks/results/cpu/evidence_mscmrseg benchmarks/results/cpu/evidence_chaos

writes OUT/summary.md (table + legend), summary.csv, summary.tex, summary.txt (the sentences the
README's paragraph quotes), table.md (the README's table: a row per set and setting, a column per
method), forest.png and provenance.json (this command, medssl's commit, the bundles read), and
prints summary.txt.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from medssl import __version__
from medssl.errors import MedsslError
from medssl.reporting.family import (
    ReadCache,
    check_distinct_grids,
    family_comparisons,
    grid_settings,
    grid_warnings,
    write_family,
)
from medssl.utils.files import atomic_write_json, git_commit


def write_provenance(out: Path, argv: list[str] | None, grids: list[Path], n: int) -> Path:
    """OUT/provenance.json: the command, medssl's commit and version, and per grid the bundle it read
    (its manifest's commit and run count, when it is a bundle), so the summary says what made it."""
    grid_info = []
    for g in grids:
        manifest = g / "bundle.json"
        info = json.loads(manifest.read_text()) if manifest.is_file() else {}
        grid_info.append({"path": str(g), "bundle_git_commit": info.get("git_commit"), "runs": info.get("runs")})
    return atomic_write_json(
        out / "provenance.json",
        {
            "command": " ".join(
                ["python", "benchmarks/evidence_summary.py", *(sys.argv[1:] if argv is None else argv)]
            ),
            "git_commit": git_commit(),
            "medssl_version": __version__,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "comparisons": n,
            "grids": grid_info,
        },
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("grids", nargs="+", type=Path, help="benchmark folders or results bundles")
    ap.add_argument("--out", type=Path, required=True, help="folder for summary.* and forest.png")
    a = ap.parse_args(argv)
    try:
        check_distinct_grids(a.grids)
        read: ReadCache = {}  # each folder's runs read once for the warnings, the settings and the comparisons
        for line in (w for g in a.grids for w in grid_warnings(g, read)):
            print(f"evidence_summary: warning: left out or unverified: {' '.join(line.split())}", file=sys.stderr)
        settings = [st for g in a.grids for st in grid_settings(g, read)]
        rows = family_comparisons(settings, read)
        files = write_family(rows, a.out)
        files["provenance"] = write_provenance(a.out, argv, a.grids, len(rows))
    except MedsslError as e:
        print(f"evidence_summary: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(files["txt"].read_text(), end="")
    print(f"({len(rows)} comparisons in {len(settings)} settings: {', '.join(str(p) for p in files.values())})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
