"""Does fine-tuning converge at the budget a CPU user runs? The `paper` recipe, the `standard`
(default) recipe and an independent yardstick, at equal steps on the same patient split.

For each real labelled set of ``../shared/data`` (MS-CMRSeg cardiac bSSFP, CHAOS MR T2-SPIR, MSD
Hippocampus), each seed: prepare the store once, draw medssl's seeded split (10% labels by default),
then train from scratch, with the same steps, batch, patch size and validation rhythm:

* ``medssl finetune --recipe paper`` (CE, Adam 5e-4, mirror + p=0.67 elastic/rotation/scale);
* ``medssl finetune --recipe standard`` (the default of the ``standard`` protocol);
* ``benchmarks/yardstick.py``: MONAI BasicUNet + DiceCELoss + Adam 1e-3 cosine in a plain loop,
  flips and +-15 degree rotations, slices resized to the patch size (no medssl code on the path);
* with ``--control``, ``medssl finetune`` with the yardstick's network and recipe (MONAI BasicUNet,
  per-sample Dice + CE, Adam 1e-3 cosine to 0, flips and +-15 degree rotations, no post-processing):
  medssl's engine, data path, sampling and inference against the plain loop, everything else equal
  but the crop (medssl crops patches where the yardstick resizes whole slices).

Validation Dice (per volume, mean over foreground classes, on the split's validation patients)
is recorded every 50 steps; every run keeps its best-validation checkpoint and is then scored on
the test patients with one function (:func:`yardstick.volume_dice`), so the three test columns are
computed alike. Settings are chosen on the validation curves only; the test column is reported.

    python benchmarks/finetune_recipes.py --out runs/recipes                      # all, seed 0
    python benchmarks/finetune_recipes.py --out runs/recipes --datasets mscmrseg --seeds 0 1 2 --jobs 2

Writes ``OUT/recipes.csv`` (one row per run), ``OUT/recipes.md`` (a table) and
``OUT/recipes.png`` (validation Dice against steps, one panel per dataset). Rerunning resumes: a
finished run is not trained again.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from yardstick import volume_dice  # noqa: E402

#: reader, folder under the data root, in-plane spacing of the store, patch size
DATASETS: dict[str, dict] = {
    "mscmrseg": {"reader": "mscmrseg", "src": "mscmrseg_bssfp", "spacing": 2.0, "size": 128},
    "chaos": {"reader": "chaos-nifti", "src": "chaos_mr_t2spir", "spacing": 2.5, "size": 128},
    "hippocampus": {"reader": "msd", "src": "msd_hippocampus", "spacing": None, "size": 48},
}
RECIPES = ("paper", "standard")
ARMS = ("yardstick", *RECIPES, "control")


def _data_root(given: str | None) -> Path:
    for cand in [given, os.environ.get("MEDSSL_SHARED_DATA"), str(HERE.parent.parent / "shared" / "data")]:
        if cand and Path(cand).is_dir():
            return Path(cand)
    sys.exit("real data not found: give --data-root (../shared/data)")


def prepare_store(name: str, root: Path, out: Path) -> Path:
    """The dataset's prepared store under ``out/prepared/<name>`` (prepared once)."""
    from medssl.data.store import prepare

    spec = DATASETS[name]
    store = out / "prepared" / name
    if not (store / "plan.json").is_file():
        prepare(
            spec["reader"],
            root / spec["src"],
            store,
            target_spacing=spec["spacing"],
            progress=False,
            overwrite=store.exists(),
        )
    return store


def split_file(store: Path, labels: str, seed: int, path: Path) -> dict:
    """medssl's seeded split of ``store`` (what ``medssl finetune --seed seed`` draws), as JSON."""
    from medssl.data.splits import make_split
    from medssl.data.store import SliceStore

    split = make_split(SliceStore(store), labels, seed=seed).to_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(split, indent=1))
    return split


def commands(
    name: str, store: Path, split_json: Path, run: Path, a: argparse.Namespace, seed: int
) -> dict[str, list[str]]:
    """The three runs of one dataset and seed (command lines)."""
    size = a.size or DATASETS[name]["size"]
    common = [
        "--data",
        str(store),
        "--labels",
        a.labels,
        "--seed",
        str(seed),
        "--max-steps",
        str(a.steps),
        "--batch-size",
        str(a.batch),
        "--image-size",
        str(size),
        "--workers",
        str(a.workers),
        "--no-progress",
        "--set",
        f"model.base_width={a.width}",
        "--set",
        f"train.val_every_steps={a.val_every}",
    ]
    cmds = {r: ["medssl", "finetune", *common, "--recipe", r, "--out", str(run / r)] for r in RECIPES}
    if a.control:
        cmds["control"] = [
            "medssl",
            "finetune",
            *common,
            "--out",
            str(run / "control"),
            "--set",
            "model.name=monai:BasicUNet",
            "--set",
            "dice_mode=sample",
            "--set",
            "mirror=true",
            "--set",
            "p_spatial=1.0",
            "--set",
            "rotation=15",
            "--set",
            "scale=[1.0,1.0]",
            "--set",
            "optim.warmup_steps=0",
            "--set",
            "optim.min_lr=0",
            "--set",
            "postprocess=none",
        ]
    cmds["yardstick"] = [
        sys.executable,
        str(HERE / "yardstick.py"),
        "--store",
        str(store),
        "--split",
        str(split_json),
        "--out",
        str(run / "yardstick.json"),
        "--steps",
        str(a.steps),
        "--batch",
        str(a.batch),
        "--size",
        str(size),
        "--val-every",
        str(a.val_every),
        "--seed",
        str(seed),
    ]
    return cmds


def run_jobs(jobs: list[tuple[str, list[str], Path]], n: int) -> None:
    """Run ``(name, command, log)`` jobs, ``n`` at a time, one thread each (the fastest on few cores)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    pending, running = list(jobs), []
    while pending or running:
        while pending and len(running) < n:
            name, cmd, log = pending.pop(0)
            log.parent.mkdir(parents=True, exist_ok=True)
            print(f"start {name}", flush=True)
            with open(log, "w") as handle:  # the child keeps its own copy of the descriptor
                proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env)
            running.append((name, proc, time.time()))
        time.sleep(2)
        for job in list(running):
            name, proc, t0 = job
            if proc.poll() is not None:
                running.remove(job)
                status = "done" if proc.returncode == 0 else f"FAILED ({proc.returncode})"
                print(f"{status} {name} in {time.time() - t0:.0f} s", flush=True)


def medssl_result(run: Path, store: Path, k: int) -> dict | None:
    """Validation curve and test Dice (scored by :func:`volume_dice`) of a finished medssl run."""
    if not (run / "summary.json").is_file():
        return None
    with open(run / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    curve = [(int(r["step"]), float(r["val_dice"])) for r in rows if r.get("val_dice")]
    split = json.loads((run / "splits.json").read_text())
    test = [
        volume_dice(np.load(run / "predictions" / f"{c}.npy"), np.load(store / "labels" / f"{c}.npy"), k)
        for c in split["test"]
    ]
    info = json.loads((run / "run.json").read_text())
    best = max(curve, key=lambda t: t[1]) if curve else (None, float("nan"))
    return {
        "curve": curve,
        "test_dice": float(np.nanmean(test)),
        "best_step": best[0],
        "best_val": best[1],
        "seconds": info.get("wall_s"),
    }


def collect(out: Path, names: list[str], seeds: list[int]) -> list[dict]:
    rows = []
    for name in names:
        store = out / "prepared" / name
        if not (store / "plan.json").is_file():
            continue
        k = len(json.loads((store / "plan.json").read_text())["class_names"])
        for seed in seeds:
            run = out / name / f"s{seed}"
            results = {r: medssl_result(run / r, store, k) for r in (*RECIPES, "control")}
            y = run / "yardstick.json"
            results["yardstick"] = json.loads(y.read_text()) if y.is_file() else None
            for recipe, res in results.items():
                if res is not None:
                    rows.append({"dataset": name, "seed": seed, "recipe": recipe, **res})
    return rows


def write_outputs(rows: list[dict], out: Path) -> None:
    """``recipes.csv``, ``recipes.md`` and ``recipes.png``."""
    with open(out / "recipes.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dataset", "seed", "recipe", "test_dice", "best_val", "best_step", "seconds", "curve"])
        for r in rows:
            w.writerow(
                [
                    r["dataset"],
                    r["seed"],
                    r["recipe"],
                    f"{r['test_dice']:.4f}",
                    f"{r['best_val']:.4f}",
                    r["best_step"],
                    round(r["seconds"] or 0),
                    " ".join(f"{s}:{v:.3f}" for s, v in r["curve"]),
                ]
            )
    lines = [
        "| dataset | recipe | test DSC (%) | best val DSC (%) | at step | seeds | minutes per run |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in dict.fromkeys(r["dataset"] for r in rows):
        for recipe in ARMS:
            rs = [r for r in rows if r["dataset"] == name and r["recipe"] == recipe]
            if not rs:
                continue
            t = np.array([r["test_dice"] for r in rs]) * 100
            v = np.array([r["best_val"] for r in rs]) * 100
            sd = f" ± {t.std(ddof=1):.1f}" if len(t) > 1 else ""
            lines.append(
                f"| {name} | {recipe} | {t.mean():.1f}{sd} | {v.mean():.1f} | {np.mean([r['best_step'] for r in rs]):.0f} | "
                f"{len(rs)} | {np.mean([r['seconds'] or 0 for r in rs]) / 60:.1f} |"
            )
    (out / "recipes.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _plot(rows, out / "recipes.png")


def _plot(rows: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(r["dataset"] for r in rows))
    if not names:
        return
    fig = Figure(figsize=(4.2 * len(names), 3.4))
    FigureCanvasAgg(fig)
    colours = {"yardstick": "0.35", "paper": "tab:red", "standard": "tab:blue", "control": "tab:green"}
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        for recipe in ARMS:
            curves = [dict(r["curve"]) for r in rows if r["dataset"] == name and r["recipe"] == recipe]
            if not curves:
                continue
            steps = sorted(set.intersection(*(set(c) for c in curves)))
            y = np.array([[c[s] for s in steps] for c in curves]) * 100
            label = {
                "yardstick": "plain MONAI loop",
                "paper": "medssl paper",
                "standard": "medssl standard (default)",
                "control": "medssl engine, yardstick's net + recipe",
            }[recipe]
            ax.plot(steps, y.mean(0), color=colours[recipe], marker="o", ms=2.5, label=f"{label} (n={len(curves)})")
            if len(curves) > 1:
                ax.fill_between(steps, y.min(0), y.max(0), color=colours[recipe], alpha=0.15)
        ax.set_title(name)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("validation DSC (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--data-root", default=None, help="../shared/data by default")
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--labels", default="10%")
    ap.add_argument("--steps", type=int, default=750)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=None, help="patch size (default: per dataset, 128 / 128 / 48)")
    ap.add_argument("--width", type=int, default=16, help="U-Net base width of the medssl runs")
    ap.add_argument("--val-every", type=int, default=50)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2, help="runs at once (one thread each)")
    ap.add_argument("--control", action="store_true", help="also medssl with the yardstick's network and recipe")
    ap.add_argument("--report-only", action="store_true", help="collect finished runs, train nothing")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if not a.report_only:
        root = _data_root(a.data_root)
        jobs = []
        for name in a.datasets:
            store = prepare_store(name, root, out)
            for seed in a.seeds:
                run = out / name / f"s{seed}"
                split_file(store, a.labels, seed, run / "split.json")
                for recipe, cmd in commands(name, store, run / "split.json", run, a, seed).items():
                    done = (
                        (run / "yardstick.json").is_file()
                        if recipe == "yardstick"
                        else (run / recipe / "summary.json").is_file()
                    )
                    if not done:
                        jobs.append((f"{name} s{seed} {recipe}", cmd, run / f"{recipe}.log"))
        run_jobs(jobs, a.jobs)
    write_outputs(collect(out, a.datasets, a.seeds), out)


if __name__ == "__main__":
    main()
