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

    python benchmarks/supercl_ablation.py --data runs/evidence_mscmrseg/prepared/mscmrseg \\
        --out runs/supercl_ablation --steps 150 --bundle benchmarks/results/cpu/supercl_ablation
    python benchmarks/supercl_ablation.py --report-only --out benchmarks/results/cpu/supercl_ablation

Writes ``OUT/supercl_ablation.md``, ``.csv`` and ``supercl_ablation.png`` (probe Dice and k-NN error
against steps, one line per variant). Rerunning skips the finished pre-trainings. ``--bundle DIR``
also exports the runs' provenance (config, commit, ``log.csv``, ``diagnostics.json``; no checkpoint)
as a results bundle with these outputs; ``--report-only --out DIR`` recomputes them from it alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
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
    ap.add_argument("--data", help="a prepared store with labels (the probe needs them); not with --report-only")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--superpixels", default="cache", choices=("cache", "online"))
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--report-only", action="store_true", help="recompute the outputs from OUT's runs, train nothing")
    ap.add_argument("--bundle", help="also export the runs and these outputs as a results bundle into this new folder")
    a = ap.parse_args()
    if not a.report_only and not a.data:
        ap.error("--data is required unless --report-only")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {name: (out / name if a.report_only else _pretrain(a, name, out)) for name in a.variants}
    missing = [f"{r}/{f}" for r in runs.values() for f in ("diagnostics.json", "log.csv") if not (r / f).is_file()]
    if missing:
        sys.exit(f"{missing[0]}: not found; run the pre-trainings first (without --report-only)")
    data = _data_of(runs, a.data)
    print(write_outputs(out, {name: _curves(run) for name, run in runs.items()}, a, data))
    if a.bundle:
        from medssl.reporting.bundle import export_bundle

        res = export_bundle(out, a.bundle, command=" ".join(["python", *sys.argv]))
        write_outputs(Path(a.bundle), {name: _curves(Path(a.bundle) / name) for name in runs}, a, data)
        print(f"bundle {res.out}: {res.n_runs} runs, {res.n_files} files")


def _data_of(runs: dict[str, Path], given: str | None) -> str:
    """The store the runs pre-trained on: ``--data``, else the first run's ``config.yaml``."""
    if given:
        return given
    import yaml

    cfg = yaml.safe_load((next(iter(runs.values())) / "config.yaml").read_text()) or {}
    return str((cfg.get("data") or {}).get("path", "?"))


def write_outputs(out: Path, curves: dict[str, tuple[dict[str, float], list[dict[str, float]]]], a, data: str) -> str:
    """``supercl_ablation.md``, ``.csv`` and ``.png`` into ``out``; returns the Markdown text."""
    rows = [_summary(name, *curves[name]) for name in curves]
    steps, seed = _settings(next(iter(curves)), out, a)
    with open(out / "supercl_ablation.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"SuperCL term ablation: {steps}, seed {seed}, diagnostics on the validation patients of {data}",
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
    return text


def _settings(name: str, out: Path, a) -> tuple[str, str]:
    """The pre-training's steps, batch, size and seed as its ``config.yaml`` recorded them."""
    import yaml

    cfg = yaml.safe_load((out / name / "config.yaml").read_text()) or {}
    data, train = cfg.get("data") or {}, cfg.get("train") or {}
    steps = f"{train.get('max_steps', a.steps)} steps of batch {data.get('batch_size', a.batch)} at {data.get('image_size', a.size)} px"
    return steps, str(train.get("seed", a.seed))


if __name__ == "__main__":
    main()
