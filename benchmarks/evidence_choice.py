"""Issue 22's choices for the later stages of ``benchmarks/run_evidence.sh``, made on VALIDATION only.

``budget``: the fine-tuning budget for CHAOS, picked on the MS-CMRSeg evidence grid. For each budget
(the grid's own cells: 500 steps; its variant ``steps150``: 150 steps), the gain of each pre-trained
method over Scratch in best validation Dice (the checkpoint model selection keeps), per seed (each
seed its own pre-training, split and fine-tuning), averaged over methods and seeds. The budget with
the larger mean gain wins (500 on a tie: the longer fine-tuning). Test Dice is never read.

``sets``: the ``--set`` arguments that add the chosen fine-tuning of pre-trained encoders
(``choice.json`` of ``benchmarks/finetune_transfer.py``) to a grid as variants, one per budget, and,
with ``--budget-file``, the chosen budget for every cell. Nothing is printed for a variant when
validation chose ``standard`` (the grid's own cells are that already).

    python benchmarks/evidence_choice.py budget runs/evidence_mscmrseg > runs/evidence_budget.json
    python benchmarks/evidence_choice.py sets --choice runs/transfer/choice.json --steps 500 150
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

RULE = (
    "per budget: the mean over pre-trained methods and seeds of (best validation Dice of the method's cell - "
    "best validation Dice of Scratch's cell of the same seed); the budget with the larger mean gain, 500 on a tie "
    "(validation only, the test Dice is not read)"
)


def best_val(run: Path) -> float | None:
    """The best validation Dice in a finished run's ``log.csv`` (None for an unfinished run)."""
    if not (run / "summary.json").is_file() or not (run / "log.csv").is_file():
        return None
    with open(run / "log.csv", newline="") as fh:
        vals = [float(r["val_dice"]) for r in csv.DictReader(fh) if r.get("val_dice")]
    return max(vals) if vals else None


def _cells(folder: Path) -> dict[tuple[str, int], float]:
    """``(method, seed) -> best validation Dice`` of every finished cell of a grid's ``finetune`` folder."""
    out = {}
    for run in sorted(folder.glob("*__*__s*")):
        method, seed = run.name.split("__")[0], int(run.name.rsplit("__s", 1)[1])
        val = best_val(run)
        if val is not None:
            out[(method, seed)] = val
    return out


def budget_choice(grid: Path) -> dict:
    """The budget :data:`RULE` picks on the grid folder ``grid`` (its cells: 500 steps; ``steps150``: 150)."""
    folders = {500: grid / "finetune", 150: grid / "variants" / "steps150" / "finetune"}
    gains: dict[int, dict[str, float]] = {}
    for steps, folder in folders.items():
        cells = _cells(folder)
        per = {
            f"{m}/s{s}": v - cells[("scratch", s)]
            for (m, s), v in cells.items()
            if m != "scratch" and ("scratch", s) in cells
        }
        gains[steps] = per
    means = {steps: (sum(p.values()) / len(p) if p else math.nan) for steps, p in gains.items()}
    if any(math.isnan(v) for v in means.values()):
        sys.exit(f"{grid}: finished cells missing for a budget ({', '.join(map(str, means))} steps)")
    chosen = 150 if means[150] > means[500] else 500
    return {"rule": RULE, "gain_per_cell": gains, "mean_gain": means, "max_steps": chosen}


#: the evidence grids' pre-trained methods (configs/evidence_*.yaml; a test keeps them in step)
PRETRAINED = ("pcl", "supercl", "macl")


def variant_sets(choice: dict, steps: list[int]) -> list[str]:
    """``--set variants.transfer<steps>={methods: [...], finetune: {...}}`` for the chosen arm's overrides.

    The variant fine-tunes the pre-trained methods only when the arm's options all act on pre-trained
    weights (a learning-rate scale, LP-FT, layer decay): Scratch has none, so its runs would repeat the
    grid's own cells of the same budget, which the summary (``evidence_summary.py``) compares with
    instead. An arm with a warm-up changes Scratch too, and its variant trains Scratch again.
    """
    overrides = choice.get("overrides") or []
    if choice.get("overall") in (None, "standard") or not overrides:
        return []
    transfer = ", ".join(o.split(".", 1)[1].replace("=", ": ") for o in overrides)
    touches_scratch = any(o.startswith("transfer.warmup_fraction") for o in overrides)
    methods = "" if touches_scratch else f"methods: [{', '.join(PRETRAINED)}], "
    return [
        f"variants.transfer{n}={{{methods}finetune: {{train: {{max_steps: {n}}}, transfer: {{{transfer}}}}}}}"
        for n in steps
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("budget", help="the budget for CHAOS, from the MS-CMRSeg grid")
    b.add_argument("grid", type=Path)
    s = sub.add_parser("sets", help="--set arguments: the chosen transfer as variants (and the budget)")
    s.add_argument("--choice", type=Path, required=True, help="choice.json of finetune_transfer.py")
    s.add_argument("--steps", type=int, nargs="+", default=[500], help="one variant per budget")
    s.add_argument("--budget-file", type=Path, help="the budget JSON: its max_steps for every cell and variant")
    a = ap.parse_args()
    if a.cmd == "budget":
        print(json.dumps(budget_choice(a.grid), indent=1))
        return
    choice = json.loads(a.choice.read_text())
    steps = a.steps
    lines = []
    if a.budget_file:
        n = int(json.loads(a.budget_file.read_text())["max_steps"])
        lines.append(f"finetune.train.max_steps={n}")
        steps = [n]
    lines += variant_sets(choice, steps)
    if lines:
        print("\n".join(lines))


if __name__ == "__main__":
    main()
