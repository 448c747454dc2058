"""SuperCL's superpixels computed online (the reference) or cached once per slice: what each costs.

Pre-trains SuperCL twice with identical settings, ``superpixels.mode=online`` (SLIC on both
intensity views of every sample, as the reference code) and ``superpixels.mode=cache`` (SLIC once
per stored slice, cropped like the view), then reports for each: the pre-training's wall time and
step rate, its final losses and representation diagnostics (linear-probe Dice and k-NN slice
position on the validation patients of the split), and, with ``--finetune-seeds``, the best
VALIDATION Dice of a fine-tuning from it (test patients are never scored here).

    python benchmarks/superpixel_mode.py --data runs/cpu_cardiac/prepared/mscmrseg --out runs/sp_mode \\
        --steps 1200 --cache-run runs/cpu_cardiac/pretrain/supercl__mscmrseg --finetune-seeds 0 1 2

``--cache-run`` reuses a finished cache-mode pre-training with the same settings (the cardiac
grid's) instead of training it again. Writes ``OUT/superpixel_mode.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
from pathlib import Path


def _run(cmd: list[str], log: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with open(log, "w") as fh:
        subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, check=True)


def supercl_pretrain(a: argparse.Namespace, run: Path, sets: list[str], log: Path) -> Path:
    """``medssl pretrain --method supercl`` into ``run`` (skipped when finished) with the scripts' shared
    settings from ``a`` (data, size, batch, steps, workers, width) and the extra ``--set`` values."""
    if not (run / "pretrain.pt").is_file():
        cmd = ["medssl", "pretrain", "--method", "supercl", "--data", a.data, "--out", str(run), "--no-progress"]
        cmd += ["--image-size", str(a.size), "--batch-size", str(a.batch), "--max-steps", str(a.steps)]
        cmd += ["--workers", str(a.workers)]
        for kv in [f"model.base_width={a.width}", "train.log_every=10", *sets]:
            cmd += ["--set", kv]
        _run(cmd, log)
    return run


def _pretrain(a: argparse.Namespace, mode: str, out: Path) -> Path:
    return supercl_pretrain(a, out / f"supercl_{mode}", [f"superpixels.mode={mode}"], out / f"pretrain_{mode}.log")


def _finetune(a: argparse.Namespace, init: Path, seed: int, out: Path) -> float:
    run = out / f"finetune_{init.name}_s{seed}"
    if not (run / "summary.json").is_file():
        _run(
            [
                "medssl",
                "finetune",
                "--data",
                a.data,
                "--init",
                str(init),
                "--labels",
                a.labels,
                "--seed",
                str(seed),
                "--out",
                str(run),
                "--max-steps",
                str(a.finetune_steps),
                "--batch-size",
                "16",
                "--image-size",
                str(a.size),
                "--workers",
                str(a.workers),
                "--no-progress",
                "--set",
                f"model.base_width={a.width}",
            ],
            out / f"{run.name}.log",
        )
    return float(json.loads((run / "run.json").read_text())["best_score"])


def _last_losses(run: Path) -> dict[str, float]:
    with open(run / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {k: float(rows[-1][f"train_{k}"]) for k in ("ins", "intra", "inter") if rows and f"train_{k}" in rows[-1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a prepared store")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--labels", default="10%")
    ap.add_argument("--cache-run", help="a finished cache-mode SuperCL pre-training with the same settings")
    ap.add_argument("--finetune-seeds", nargs="*", type=int, default=[])
    ap.add_argument("--finetune-steps", type=int, default=500)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {
        "online": _pretrain(a, "online", out),
        "cache": Path(a.cache_run) if a.cache_run else _pretrain(a, "cache", out),
    }
    lines = [
        "| superpixels | pre-training wall time | steps/s | L_ins | L_intra | L_inter | linear-probe Dice (val) | k-NN position error (val) |"
        " fine-tuned best validation DSC |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for mode, run in runs.items():
        info = json.loads((run / "run.json").read_text())
        diag = json.loads((run / "diagnostics.json").read_text())["final"]
        losses = _last_losses(run)
        vals = [_finetune(a, run, s, out) for s in a.finetune_seeds]
        ft = " / ".join(f"{100 * v:.1f}" for v in vals) if vals else "-"
        wall = float(info.get("wall_s") or 0)
        lines.append(
            f"| {mode} | {wall / 60:.1f} min | {info.get('steps', a.steps) / max(wall, 1e-9):.2f} | "
            f"{losses.get('ins', float('nan')):.3f} | {losses.get('intra', float('nan')):.3f} | "
            f"{losses.get('inter', float('nan')):.3f} | {diag.get('linear_probe_dice', float('nan')):.3f} | "
            f"{diag.get('knn_position_mae', float('nan')):.3f} | {ft} |"
        )
    text = "\n".join(lines) + "\n"
    (out / "superpixel_mode.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
