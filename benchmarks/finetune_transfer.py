"""Which fine-tuning of a pre-trained encoder keeps what pre-training learned? Chosen on VALIDATION.

For each real labelled set of ``../shared/data`` (MS-CMRSeg cardiac bSSFP, CHAOS MR T2-SPIR, MSD
Hippocampus) and each seed, one given pre-trained checkpoint is fine-tuned with the ``standard``
recipe and each fine-tuning option of :class:`medssl.config.TransferCfg` (the "arms" below), with
the same steps, batch, patch, split (the seed's) and validation rhythm, plus Scratch as reference:

==================  ==========================================================================
arm                 settings (``--set transfer.*``)
==================  ==========================================================================
scratch             no init (reference)
standard            init, one learning rate for everything (today's default)
lr0.1               pretrained_lr_scale 0.1 (nnssl / OpenMind: 10x lower for pre-trained parts)
warmup              pretrained_lr_scale 0.1, warmup_fraction 0.05 (nnssl's pretrainedTrainer)
lpft                schedule lpft, lpft_fraction 0.1 (Kumar et al. 2022)
lpft_lr0.1          lpft 0.1 + pretrained_lr_scale 0.1
sawtooth            lpft 0.05 + warmup_fraction 0.05 + pretrained_lr_scale 0.1 (nnssl sawtooth)
layer0.75           pretrained_lr_scale 0.5, layer_decay 0.75 (BEiT / MAE style)
==================  ==========================================================================

Choice rule (validation only; the test column is written but never read by the rule): for each
dataset, the arm with the highest mean over seeds of the best validation Dice (the checkpoint that
model selection keeps); overall, the arm with the highest mean over datasets of its gain over
``standard``. ``choice.json`` records the rule, the numbers it compared and the winners. Each run
also records its validation Dice at every ``--val-every`` steps, so the head-start-then-erased shape
(issue 22) is visible in ``transfer.png``.

    # checkpoints: a pre-training run folder per dataset; {seed} = the seed's own pre-training
    python benchmarks/finetune_transfer.py --out runs/transfer --seeds 0 1 2 --jobs 2 \\
        --init mscmrseg=runs/cardiac/pretrain/macl__mscmrseg__s{seed} \\
        --init chaos=runs/chaos/pretrain/macl__chaos__s{seed} \\
        --init hippocampus=runs/hippo/pretrain/macl__hippocampus__s{seed}

Runs go to ``OUT/<dataset>/s<seed>/<arm>/`` (medssl run folders; rerunning resumes and skips
finished runs; two at a time with one thread each by default). Writes ``OUT/transfer.csv``,
``OUT/transfer.md``, ``OUT/choice.json``, ``OUT/transfer.png`` and, with ``--bundle DIR``, the
results bundle of every run (``medssl report DIR`` recomputes the seed-level statistics from it).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from finetune_recipes import DATASETS, _data_root, prepare_store, run_jobs  # noqa: E402

#: arm -> ``--set`` overrides of the fine-tuning configuration (``scratch``: no init)
ARMS: dict[str, list[str]] = {
    "scratch": [],
    "standard": [],
    "lr0.1": ["transfer.pretrained_lr_scale=0.1"],
    "warmup": ["transfer.pretrained_lr_scale=0.1", "transfer.warmup_fraction=0.05"],
    "lpft": ["transfer.schedule=lpft", "transfer.lpft_fraction=0.1"],
    "lpft_lr0.1": ["transfer.schedule=lpft", "transfer.lpft_fraction=0.1", "transfer.pretrained_lr_scale=0.1"],
    "sawtooth": [
        "transfer.schedule=lpft",
        "transfer.lpft_fraction=0.05",
        "transfer.warmup_fraction=0.05",
        "transfer.pretrained_lr_scale=0.1",
    ],
    "layer0.75": ["transfer.pretrained_lr_scale=0.5", "transfer.layer_decay=0.75"],
}
RULE = (
    "per dataset: the arm with the highest mean over seeds of the best validation Dice; overall: the arm with "
    "the highest mean over datasets of its gain over 'standard' (validation only, the test column is not read)"
)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            sys.exit(f"--{what} expects NAME=PATH, got {item!r}")
        k, v = item.split("=", 1)
        out[k] = v
    return out


def checkpoint_width(init: str | None, seed: int, default: int) -> int:
    """The U-Net width a checkpoint was pre-trained with (medssl checkpoints record it), else ``default``."""
    from medssl.models.checkpoint import checkpoint_model_config

    if not init:
        return default
    model = checkpoint_model_config(init.replace("{seed}", str(seed))) or {}
    return int(model.get("base_width", default))


def command(name: str, store: Path, init: str | None, arm: str, seed: int, run: Path, a: argparse.Namespace) -> list:
    """The ``medssl finetune`` command line of one run (every arm of a data set at its checkpoints' width)."""
    size = a.size or DATASETS.get(name, {}).get("size", 128)
    width = checkpoint_width(init, seed, a.width)
    cmd = [sys.executable, "-m", "medssl.cli.main", "finetune", "--data", str(store), "--out", str(run)]
    cmd += ["--labels", a.labels, "--seed", str(seed), "--max-steps", str(a.steps), "--batch-size", str(a.batch)]
    cmd += ["--image-size", str(size), "--workers", str(a.workers), "--no-progress", "--device", "cpu"]
    cmd += ["--set", f"model.base_width={width}", "--set", f"train.val_every_steps={a.val_every}"]
    cmd += ["--method-name", "scratch" if arm == "scratch" else f"{a.method}+{arm}"]
    if arm != "scratch":
        cmd += ["--init", str(init).replace("{seed}", str(seed))]
    for override in ARMS[arm]:
        cmd += ["--set", override]
    return cmd


def result(run: Path) -> dict | None:
    """Validation curve, best and last validation Dice, and the (reported, never chosen on) test Dice."""
    if not (run / "summary.json").is_file():
        return None
    with open(run / "log.csv", newline="") as fh:
        curve = [(int(r["step"]), float(r["val_dice"])) for r in csv.DictReader(fh) if r.get("val_dice")]
    best = max(curve, key=lambda t: t[1]) if curve else (None, float("nan"))
    summary = json.loads((run / "summary.json").read_text())
    return {
        "curve": curve,
        "best_val": best[1],
        "best_step": best[0],
        "last_val": curve[-1][1] if curve else float("nan"),
        "test_dice": float((summary.get("mean") or {}).get("dsc", float("nan"))),
    }


def collect(out: Path, names: list[str], seeds: list[int], arms: list[str]) -> list[dict]:
    rows = []
    for name in names:
        for seed in seeds:
            for arm in arms:
                res = result(out / name / f"s{seed}" / arm)
                if res is not None:
                    rows.append({"dataset": name, "seed": seed, "arm": arm, **res})
    return rows


def choose(rows: list[dict]) -> dict:
    """The arms validation picks (see :data:`RULE`); never reads ``test_dice``."""
    val = {(r["dataset"], r["arm"]): [] for r in rows}
    for r in rows:
        val[(r["dataset"], r["arm"])].append(r["best_val"])
    mean = {k: float(np.mean(v)) for k, v in val.items()}
    names = sorted({d for d, _ in mean})
    per_dataset = {
        d: max((a for dd, a in mean if dd == d and a != "scratch"), key=lambda a: mean[(d, a)]) for d in names
    }
    arms = sorted({a for _, a in mean if a not in ("scratch", "standard")})
    gains = {
        a: float(np.mean([mean[(d, a)] - mean[(d, "standard")] for d in names]))
        for a in arms
        if all((d, a) in mean and (d, "standard") in mean for d in names)
    }
    overall = max(gains, key=gains.get) if gains else None
    if overall is not None and gains[overall] <= 0:
        overall = "standard"
    return {
        "rule": RULE,
        "mean_best_val": {f"{d}/{a}": v for (d, a), v in sorted(mean.items())},
        "gain_over_standard": gains,
        "per_dataset": per_dataset,
        "overall": overall,
        "overrides": ARMS.get(overall or "", []),
    }


def write_outputs(rows: list[dict], out: Path) -> dict:
    """``transfer.csv``, ``transfer.md``, ``choice.json``, ``transfer.png``; returns the choice."""
    with open(out / "transfer.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dataset", "seed", "arm", "best_val", "best_step", "last_val", "test_dice", "curve"])
        for r in rows:
            curve = " ".join(f"{s}:{v:.4f}" for s, v in r["curve"])
            w.writerow([r["dataset"], r["seed"], r["arm"], f"{r['best_val']:.4f}", r["best_step"],
                        f"{r['last_val']:.4f}", f"{r['test_dice']:.4f}", curve])  # fmt: skip
    choice = choose(rows)
    (out / "choice.json").write_text(json.dumps(choice, indent=1) + "\n")
    lines = ["| dataset | arm | seeds | best val DSC (%) | last val DSC (%) | test DSC (%), not used to choose |",
             "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for name in dict.fromkeys(r["dataset"] for r in rows):
        for arm in ARMS:
            rs = [r for r in rows if r["dataset"] == name and r["arm"] == arm]
            if rs:
                m = {k: 100 * np.mean([r[k] for r in rs]) for k in ("best_val", "last_val", "test_dice")}
                lines.append(f"| {name} | {arm} | {len(rs)} | {m['best_val']:.1f} | {m['last_val']:.1f} | "
                             f"{m['test_dice']:.1f} |")  # fmt: skip
    lines += ["", f"Chosen on validation ({RULE}): per dataset {choice['per_dataset']}; overall {choice['overall']}."]
    (out / "transfer.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _plot(rows, out / "transfer.png")
    return choice


def _plot(rows: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(r["dataset"] for r in rows))
    if not names:
        return
    fig = Figure(figsize=(4.4 * len(names), 3.6))
    FigureCanvasAgg(fig)
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        for arm in ARMS:
            curves = [dict(r["curve"]) for r in rows if r["dataset"] == name and r["arm"] == arm]
            if not curves:
                continue
            # seeds validate at their own epoch ends (their training sets differ): each curve is
            # interpolated onto the steps of all of them, within the range every seed covers
            lo, hi = max(min(c) for c in curves), min(max(c) for c in curves)
            steps = sorted({s for c in curves for s in c if lo <= s <= hi})
            y = np.array([np.interp(steps, sorted(c), [c[s] for s in sorted(c)]) for c in curves]) * 100
            (line,) = ax.plot(steps, y.mean(0), marker="o", ms=2, label=f"{arm} (mean of {len(curves)} seeds)",
                              ls="--" if arm == "scratch" else "-")  # fmt: skip
            if len(curves) > 1:  # the spread between seeds: lowest to highest seed at each step
                ax.fill_between(steps, y.min(0), y.max(0), color=line.get_color(), alpha=0.12, lw=0)
        ax.set_title(f"{name}: validation (bands: seed range)")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("validation DSC (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _jobs(a: argparse.Namespace, out: Path, inits: dict[str, str], stores: dict[str, str]) -> list:
    jobs = []
    for name in a.datasets:
        store = Path(stores[name]) if name in stores else prepare_store(name, _data_root(a.data_root), out)
        for seed in a.seeds:
            for arm in a.arms:
                run = out / name / f"s{seed}" / arm
                if arm != "scratch" and name not in inits:
                    sys.exit(f"no --init {name}=PATH given (a pre-trained checkpoint for {name})")
                if not (run / "summary.json").is_file():
                    cmd = command(name, store, inits.get(name), arm, seed, run, a)
                    jobs.append((f"{name} s{seed} {arm}", cmd, out / name / f"s{seed}" / f"{arm}.log"))
    return jobs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--init", action="append", default=[], metavar="DATASET=PATH", help="pre-trained checkpoint")
    ap.add_argument("--store", action="append", default=[], metavar="DATASET=PATH", help="an already prepared store")
    ap.add_argument("--method", default="pretrained", help="name of the pre-training in the reports (macl, supercl)")
    ap.add_argument("--data-root", default=None, help="../shared/data by default")
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--labels", default="10%")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=None, help="patch size (default: per dataset, 128 / 128 / 48)")
    ap.add_argument("--width", type=int, default=16, help="U-Net base width where a checkpoint does not record it")
    ap.add_argument("--val-every", type=int, default=50)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2, help="runs at once (one thread each)")
    ap.add_argument("--bundle", help="also export the results bundle of every run into this new folder")
    ap.add_argument("--report-only", action="store_true", help="collect finished runs, train nothing")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    inits, stores = _pairs(a.init, "init"), _pairs(a.store, "store")
    unknown = [d for d in a.datasets if d not in DATASETS and d not in stores]
    if unknown:
        sys.exit(f"unknown dataset {unknown[0]!r}: one of {', '.join(DATASETS)}, or give --store {unknown[0]}=PATH")
    if not a.report_only:
        run_jobs(_jobs(a, out, inits, stores), a.jobs)
    write_outputs(collect(out, a.datasets, a.seeds, a.arms), out)
    if a.bundle:
        from medssl.reporting.bundle import export_bundle

        res = export_bundle(out, a.bundle, command=" ".join(["python", *sys.argv]))
        print(f"bundle {res.out}: {res.n_runs} runs, {res.n_files} files")


if __name__ == "__main__":
    main()
