"""Which of SuperCL's terms moves its frozen features, and how: a term ablation with diagnostics.

Pre-trains SuperCL with identical settings (data, seed, steps, schedule) four times, changing only
the weights of its terms: the default (L_ins + L_intra + 0.5 L_inter), without L_intra, without
L_inter, and L_ins alone. For each it reports, from the run's own ``log.csv`` and
``diagnostics.json``, the representation diagnostics on the validation patients of the store's split
(linear-probe Dice on frozen hypercolumns, k-NN error of the slice position, effective rank), at
the randomly initialised encoder and after each epoch, and the losses of the first and last epoch.
No test patient is scored here, and nothing is fine-tuned: the question is which term trades the
random encoder's per-pixel information (a high linear probe) for the cross-patient layout (a low
k-NN error).

    python benchmarks/supercl_ablation.py --data runs/cpu_cardiac/prepared/mscmrseg --out runs/supercl_ablation \\
        --steps 150

Writes ``OUT/supercl_ablation.md``, ``.csv`` and ``supercl_ablation.png`` (probe Dice and k-NN error
against steps, one line per variant). Rerunning skips the finished pre-trainings.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from superpixel_mode import supercl_pretrain

#: variant -> (w_intra, w_inter); L_ins keeps weight 1 (the reference's) in every variant
VARIANTS: dict[str, tuple[float, float]] = {
    "default": (1.0, 0.5),
    "no_intra": (0.0, 0.5),
    "no_inter": (1.0, 0.0),
    "ins_only": (0.0, 0.0),
}
DIAG = ("linear_probe_dice", "knn_position_mae", "effective_rank")


def _pretrain(a: argparse.Namespace, name: str, out: Path) -> Path:
    w_intra, w_inter = VARIANTS[name]
    sets = [f"superpixels.mode={a.superpixels}", f"method_args.w_intra={w_intra}", f"method_args.w_inter={w_inter}"]
    return supercl_pretrain(a, out / name, [f"train.seed={a.seed}", *sets], out / f"{name}.log")


def _curves(run: Path) -> tuple[dict[str, float], list[dict[str, float]]]:
    """The random encoder's diagnostics and the per-epoch rows of ``log.csv`` (as floats)."""
    initial = json.loads((run / "diagnostics.json").read_text())["initial"]
    with open(run / "log.csv", newline="") as fh:
        rows = [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(fh)]
    return initial, rows


def _summary(name: str, initial: dict[str, float], rows: list[dict[str, float]]) -> dict[str, object]:
    def mean(key: str) -> float:
        vals = [r[key] for r in rows if key in r]
        return sum(vals) / len(vals) if vals else float("nan")

    first, last = rows[0], rows[-1]
    w_intra, w_inter = VARIANTS[name]
    out: dict[str, object] = {
        "variant": name,
        "w_intra": w_intra,
        "w_inter": w_inter,
        "epochs": len(rows),
        "steps": int(last["step"]),
    }
    for key in DIAG:
        out[f"{key}_init"] = initial.get(key, float("nan"))
        out[f"{key}_mean"] = mean(key)
        out[f"{key}_last"] = last.get(key, float("nan"))
    for term in ("ins", "intra", "inter"):
        out[f"L_{term}_first"] = first.get(f"train_{term}", float("nan"))
        out[f"L_{term}_last"] = last.get(f"train_{term}", float("nan"))
    return out


def _figure(curves: dict[str, tuple[dict[str, float], list[dict[str, float]]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, title in (
        (axes[0], "linear_probe_dice", "linear-probe Dice, frozen features (higher = more)"),
        (axes[1], "knn_position_mae", "k-NN slice-position error (lower = better)"),
    ):
        for name, (initial, rows) in curves.items():
            steps = [0] + [r["step"] for r in rows if key in r]
            vals = [initial.get(key, float("nan"))] + [r[key] for r in rows if key in r]
            ax.plot(steps, vals, marker="o", ms=3, label=name)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("pre-training step (0 = random encoder)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("SuperCL term ablation (validation patients)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a prepared store with labels (the probe needs them)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--superpixels", default="cache", choices=("cache", "online"))
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    curves = {name: _curves(_pretrain(a, name, out)) for name in a.variants}
    rows = [_summary(name, *curves[name]) for name in a.variants]
    with open(out / "supercl_ablation.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"SuperCL term ablation: {a.steps} steps of batch {a.batch} at {a.size} px, seed {a.seed}, "
        f"diagnostics on the validation patients of {a.data}",
        "",
        "| variant | w_intra | w_inter | probe Dice: random / mean over epochs / last | "
        "k-NN position error: random / mean / last | eff. rank: random / last | "
        "L_ins first -> last | L_intra first -> last | L_inter first -> last |",
        "|---|---:|---:|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['w_intra']:g} | {r['w_inter']:g} | "
            f"{r['linear_probe_dice_init']:.3f} / {r['linear_probe_dice_mean']:.3f} / {r['linear_probe_dice_last']:.3f} | "
            f"{r['knn_position_mae_init']:.3f} / {r['knn_position_mae_mean']:.3f} / {r['knn_position_mae_last']:.3f} | "
            f"{r['effective_rank_init']:.1f} / {r['effective_rank_last']:.1f} | "
            f"{r['L_ins_first']:.2f} -> {r['L_ins_last']:.2f} | {r['L_intra_first']:.2f} -> {r['L_intra_last']:.2f} | "
            f"{r['L_inter_first']:.2f} -> {r['L_inter_last']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    (out / "supercl_ablation.md").write_text(text)
    _figure(curves, out / "supercl_ablation.png")
    print(text)


if __name__ == "__main__":
    main()
