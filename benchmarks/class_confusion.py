"""Which class does each method mistake for which? Voxel confusion of a grid's test predictions.

A Dice table says that a class is segmented badly, not what it is mistaken for. For every complete
fine-tuning run under ``--grid`` (any ``medssl benchmark`` or ``medssl finetune`` folder), this
reads its saved test predictions (``predictions/<case>.npy``) and the prepared store's labels,
and counts, for each ground-truth class, the fraction of its voxels predicted as each class
(pooled over the run's test cases), beside the class's DSC (mean over the run's test cases,
``metrics.csv``). Rows are then averaged over the seeds of each method. It explains a result after
the fact (it reads test predictions); it chooses nothing.

    python benchmarks/class_confusion.py --grid runs/cpu_chaos --out runs/cpu_chaos/confusion

Writes ``OUT/confusion.md`` and ``OUT/confusion.csv`` and prints the Markdown.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from medssl.reporting.tables import collect_runs, method_display_name, method_sort_key


def run_confusion(pred_dir: Path, labels_dir: Path, cases: list[str], num_classes: int) -> np.ndarray:
    """``(K, K)`` voxel counts, row = ground truth, column = prediction, pooled over ``cases``."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    for cid in cases:
        pred = np.load(pred_dir / f"{cid}.npy").astype(np.int64).ravel()
        gt = np.load(labels_dir / f"{cid}.npy").astype(np.int64).ravel()
        if pred.shape != gt.shape:
            raise SystemExit(f"{pred_dir / (cid + '.npy')}: {pred.size} voxels, its label has {gt.size}")
        counts += np.bincount(gt * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)
    return counts


def row_fractions(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (NaN for a class with no voxel)."""
    tot = counts.sum(axis=1, keepdims=True).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, counts / np.maximum(tot, 1), np.nan)


def class_dsc(metric_rows: list[dict[str, str]], classes: list[str]) -> np.ndarray:
    """Per-class DSC of a run, mean over its test cases (NaN entries, empty classes, left out)."""
    vals: dict[str, list[float]] = defaultdict(list)
    for r in metric_rows:
        v = float(r.get("dsc", "nan") or "nan")
        if np.isfinite(v):
            vals[r["class_name"]].append(v)
    return np.array([np.mean(vals[c]) if vals.get(c) else np.nan for c in classes])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", required=True, help="a folder of fine-tuning runs")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    coll = collect_runs(a.grid)
    by_group: dict[tuple[str, str, str], dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    dsc: dict[tuple[str, str, str], dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    names: dict[tuple[str, str, str], list[str]] = {}
    for r in coll.runs:
        if r.data is None or not r.prediction_ids():
            continue
        classes = ["background", *r.class_names]
        counts = run_confusion(r.path / "predictions", r.data / "labels", sorted(r.prediction_ids()), len(classes))
        by_group[r.group][r.method].append(row_fractions(counts))
        dsc[r.group][r.method].append(class_dsc(r.metric_rows(), r.class_names))
        names[r.group] = classes
    if not by_group:
        raise SystemExit(f"{a.grid}: no complete fine-tuning run with saved predictions and a store")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    md: list[str] = []
    rows: list[dict[str, object]] = []
    for group in sorted(by_group):
        classes = names[group]
        md += [
            f"## {group[1]}, {group[2]} labels ({group[0]} protocol)",
            "",
            "DSC of each class (%, mean over test cases) and the fraction of its test voxels predicted as each "
            "class (%), both mean over seeds.",
            "",
            "| Method | seeds | ground truth | DSC | " + " | ".join(f"as {c}" for c in classes) + " |",
            "|---|---:|---|---:|" + "---:|" * len(classes),
        ]
        for method in sorted(by_group[group], key=method_sort_key):
            mats = by_group[group][method]
            mean = np.nanmean(np.stack(mats), axis=0)
            d = np.nanmean(np.stack(dsc[group][method]), axis=0)
            for i, gt in enumerate(classes[1:], start=1):
                md.append(
                    f"| {method_display_name(method)} | {len(mats)} | {gt} | {100 * d[i - 1]:.1f} | "
                    + " | ".join(f"{100 * v:.1f}" for v in mean[i])
                    + " |"
                )
                rows.append(
                    {
                        "protocol": group[0],
                        "dataset": group[1],
                        "labels": group[2],
                        "method": method_display_name(method),
                        "seeds": len(mats),
                        "ground_truth": gt,
                        "dsc": f"{d[i - 1]:.4f}",
                        **{f"as_{c}": f"{v:.4f}" for c, v in zip(classes, mean[i])},
                    }
                )
        md.append("")
    text = "\n".join(md)
    (out / "confusion.md").write_text(text)
    with open(out / "confusion.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(text)


if __name__ == "__main__":
    main()
