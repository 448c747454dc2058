"""Fine-tuning budget: rerun the fine-tuning cells of a finished grid at other step budgets.

Pre-training buys a head start; whether it survives depends on how long fine-tuning runs. This
script takes a finished benchmark folder (``medssl benchmark --out GRID``), reruns each of its
fine-tuning cells with the cell's own resolved configuration (same split, seed, recipe and
pre-trained weights) and only ``train.max_steps`` changed, into ``OUT/steps<N>/finetune/<cell>``,
then writes a ``medssl report`` for each budget. The budgets are chosen from the grid's validation
curves, never from its test numbers.

    python benchmarks/finetune_budget.py --grid runs/cpu_cardiac --out runs/cpu_cardiac_budget \\
        --steps 150 --methods scratch supercl macl pcl --jobs 2

Rerunning skips finished cells (each is a resumable medssl run folder). ``--set KEY=VALUE`` changes
one more setting of every cell (e.g. ``init_parts=[encoder]``: MACL without its pre-trained
decoder) and ``--tag`` names the output folder ``steps<N>_<tag>``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def _cells(grid: Path, methods: list[str] | None, seeds: list[int] | None) -> list[Path]:
    cells = sorted(p for p in (grid / "finetune").iterdir() if (p / "config.yaml").is_file())
    if methods:
        cells = [c for c in cells if c.name.split("__")[0] in methods]
    if seeds is not None:
        cells = [c for c in cells if c.name.rsplit("__s", 1)[-1] in {str(s) for s in seeds}]
    return cells


def _finetune(cell: Path, out: Path, steps: int, sets: list[str]) -> Path:
    run = out / "finetune" / cell.name
    if (run / "summary.json").is_file():
        return run
    run.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [
        "medssl",
        "finetune",
        "--config",
        str(cell / "config.yaml"),
        "--out",
        str(run),
        "--max-steps",
        str(steps),
        "--no-progress",
        *[x for kv in sets for x in ("--set", kv)],
    ]
    with open(out / f"{cell.name}.log", "w") as fh:
        subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, check=True)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", required=True, help="a finished `medssl benchmark` folder")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, nargs="+", required=True, help="fine-tuning budgets (optimiser steps)")
    ap.add_argument("--methods", nargs="*", help="methods to rerun (default: all the grid's)")
    ap.add_argument("--seeds", nargs="*", type=int)
    ap.add_argument("--jobs", type=int, default=1, help="fine-tunings run at once (one thread each)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="one more setting for every cell")
    ap.add_argument("--tag", help="output folder steps<N>_<tag> (use with --set)")
    a = ap.parse_args()
    cells = _cells(Path(a.grid), a.methods, a.seeds)
    if not cells:
        raise SystemExit(f"error: no fine-tuning cells under {a.grid}/finetune match")
    for steps in a.steps:
        out = Path(a.out) / (f"steps{steps}_{a.tag}" if a.tag else f"steps{steps}")
        out.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
            list(pool.map(lambda c: _finetune(c, out, steps, a.set), cells))
        subprocess.run(["medssl", "report", str(out)], check=True, stdout=subprocess.DEVNULL)
        print(f"{steps} steps: {len(cells)} cells -> {out / 'report' / 'results.md'}")
        print((out / "report" / "stats.md").read_text())


if __name__ == "__main__":
    main()
