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

``default``: whether stage 3's chosen fine-tuning becomes medssl's default whenever ``--init`` is
given (issue 22, item 1). Stage 3 picks the arm the evidence grids carry (a mean gain above 0 on 3
seeds x 3 sets suffices); changing a default for every user asks more, so this rule, written down
before any stage 4-5 fine-tuning ran, reads the grids' validation curves: see :data:`DEFAULT_RULE`.
Works on run folders and on their exported bundles alike.

    python benchmarks/evidence_choice.py budget runs/evidence_mscmrseg > runs/evidence_budget.json
    python benchmarks/evidence_choice.py sets --choice runs/transfer/choice.json --steps 500 150
    python benchmarks/evidence_choice.py default --choice runs/transfer/choice.json \\
        --pair mscmrseg:runs/evidence_mscmrseg/finetune:runs/evidence_mscmrseg/variants/transfer500/finetune \\
        --pair mscmrseg:runs/evidence_mscmrseg/variants/steps150/finetune:runs/evidence_mscmrseg/variants/transfer150/finetune \\
        --pair chaos:runs/evidence_chaos/finetune:runs/evidence_chaos/variants/transfer500/finetune
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


DEFAULT_RULE = (
    "units: (set, seed) of the evidence grids, each seed its own pre-training and split; per unit, the mean over "
    "pre-trained methods and budgets of (best validation Dice with the chosen fine-tuning - best validation Dice of "
    "the same method, seed and budget with the standard one); the chosen fine-tuning becomes the default for "
    "--init when the mean over units is above 0 and its 95% t-interval over units excludes 0, else the default "
    "stays 'standard' (validation only, the test Dice is not read)"
)


def default_choice(choice: dict, pairs: list[tuple[str, Path, Path]]) -> dict:
    """Apply :data:`DEFAULT_RULE` to ``(set, standard finetune folder, chosen finetune folder)`` pairs.

    Returns the rule, every paired cell's gain, each unit's mean, the mean over units with its 95%
    t-interval, and ``default``: stage 3's ``overall`` arm when the rule holds, else ``standard``.
    """
    from scipy import stats

    arm = choice.get("overall") or "standard"
    if arm == "standard":  # stage 3 kept the standard fine-tuning: the grids carry no other to compare
        return {"rule": DEFAULT_RULE, "arm": arm, "gain_per_cell": {}, "gain_per_unit": {}, "mean_gain": None,
                "ci95": None, "default": "standard"}  # fmt: skip
    cells: dict[str, float] = {}
    units: dict[str, list[float]] = {}
    for name, std_dir, chosen_dir in pairs:
        for folder in (std_dir, chosen_dir):
            if not folder.is_dir():
                sys.exit(f"{folder}: no such finetune folder (pair {name})")
        std, chosen = _cells(std_dir), _cells(chosen_dir)
        for (method, seed), v in sorted(chosen.items()):
            if method == "scratch" or (method, seed) not in std:
                continue
            gain = v - std[(method, seed)]
            cells[f"{name}/{chosen_dir.parent.name}/{method}/s{seed}"] = gain
            units.setdefault(f"{name}/s{seed}", []).append(gain)
    if not cells:
        sys.exit("no finished pre-trained cell in both folders of any --pair: nothing to decide on")
    means = {u: sum(g) / len(g) for u, g in units.items()}
    out: dict = {"rule": DEFAULT_RULE, "arm": arm, "gain_per_cell": cells, "gain_per_unit": means}
    if len(means) < 2:  # no interval from one unit
        return out | {"mean_gain": None, "ci95": None, "default": "standard"}
    x = list(means.values())
    mean = sum(x) / len(x)
    low, high = stats.ttest_1samp(x, 0.0).confidence_interval(0.95)
    ci = [float(low), float(high)]
    return out | {"mean_gain": mean, "ci95": ci, "default": arm if mean > 0 and ci[0] > 0 else "standard"}


def _pair(text: str) -> tuple[str, Path, Path]:
    parts = text.split(":")
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError(f"expected SET:STANDARD_DIR:CHOSEN_DIR, got {text!r}")
    return parts[0], Path(parts[1]), Path(parts[2])


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
    d = sub.add_parser("default", help="whether the chosen fine-tuning becomes the default for --init")
    d.add_argument("--choice", type=Path, required=True, help="choice.json of finetune_transfer.py")
    d.add_argument("--pair", type=_pair, action="append", required=True, metavar="SET:STANDARD_DIR:CHOSEN_DIR",
                   help="finetune folders of the same budget: standard fine-tuning, chosen fine-tuning")  # fmt: skip
    a = ap.parse_args()
    if a.cmd == "default":
        print(json.dumps(default_choice(json.loads(a.choice.read_text()), a.pair), indent=1))
        return
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
