"""Time medssl's surface metrics and overlap metrics against the usual implementations.

1. HD95 + ASD + ASSD per foreground class: ``medssl.evaluation.metrics.distance_metrics`` (one pass,
   bounding-box restricted) vs ``medpy.metric.binary.hd95``, ``asd`` and ``assd`` called one after
   the other (what evaluation scripts do), on real CHAOS MR T2-SPIR and MSD Hippocampus label
   volumes (predictions made by shifting / eroding / dilating the labels) and on a larger synthetic
   3D case. Values are checked to agree to 1e-6.
2. DSC + JC for all classes: one confusion matrix (``confusion_counts`` + ``dice_jaccard_from_counts``)
   vs a per-class loop of boolean masks.

Usage::

    python benchmarks/bench_metrics.py [--data ../shared/data] [--chaos 3] [--hippocampus 5]
                                       [--synthetic-size 128]

Prints one line per case and the overall ratio, e.g. ``metrics speed-up vs medpy: 25.1x``.
Exits with status 1 if any value differs from medpy by more than 1e-6.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from medssl.data.case import to_dhw
from medssl.evaluation.metrics import confusion_counts, dice_jaccard_from_counts, distance_metrics

TOL = 1e-6


def _default_data() -> Path:
    env = os.environ.get("MEDSSL_SHARED_DATA")
    here = Path(__file__).resolve().parents[1]
    for cand in ([Path(env)] if env else []) + [here.parent / "shared" / "data", Path("/work/shared/data")]:
        if cand.is_dir():
            return cand
    return here.parent / "shared" / "data"


def _load(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    import nibabel as nib

    img = nib.load(str(path))
    return to_dhw(np.rint(np.asanyarray(img.dataobj)).astype(np.uint8), img.header.get_zooms())


def _fake_prediction(gt: np.ndarray, seed: int) -> np.ndarray:
    """A plausible prediction: per class a shift, an erosion or a dilation of the label."""
    rng = np.random.default_rng(seed)
    pred = np.zeros_like(gt)
    for c in range(1, int(gt.max()) + 1):
        m = gt == c
        how = rng.integers(0, 3)
        if how == 0:
            m = np.roll(m, tuple(rng.integers(-2, 3, size=2)), axis=(1, 2))
        elif how == 1:
            eroded = ndi.binary_erosion(m)
            m = eroded if eroded.any() else m
        else:
            m = ndi.binary_dilation(m, iterations=2)
        pred[m] = c
    return pred


def _synthetic(size: int, seed: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    rng = np.random.default_rng(seed)
    grid = np.indices((size // 2, size, size), dtype=np.float32)
    gt = np.zeros(grid.shape[1:], np.uint8)
    for c, (ctr, rad) in enumerate(
        [((0.5, 0.45, 0.5), (0.3, 0.25, 0.3)), ((0.45, 0.7, 0.3), (0.2, 0.12, 0.1))], start=1
    ):
        r = sum(((g / s - cc) / rr) ** 2 for g, s, cc, rr in zip(grid, gt.shape, ctr, rad))
        gt[r <= 1.0] = c
    noise = ndi.gaussian_filter(rng.standard_normal(gt.shape).astype(np.float32), 2.0)
    pred = gt.copy()
    pred[(noise > 0.12) & (gt > 0)] = 0
    pred = np.roll(pred, 2, axis=2)
    return pred, gt, (2.0, 0.8, 0.8)


def _time_case(pred: np.ndarray, gt: np.ndarray, spacing, medpy_binary) -> tuple[float, float, float]:
    """(seconds ours, seconds medpy, largest absolute difference) over all foreground classes."""
    t_ours = t_ref = 0.0
    worst = 0.0
    for c in range(1, int(max(pred.max(), gt.max())) + 1):
        p, g = pred == c, gt == c
        if not p.any() or not g.any():
            continue
        t0 = time.perf_counter()
        ours = distance_metrics(p, g, spacing)
        t1 = time.perf_counter()
        ref = {
            "hd95": medpy_binary.hd95(p, g, spacing),
            "asd": medpy_binary.asd(p, g, spacing),
            "assd": medpy_binary.assd(p, g, spacing),
        }
        t2 = time.perf_counter()
        t_ours += t1 - t0
        t_ref += t2 - t1
        worst = max(worst, *(abs(ours[k] - v) for k, v in ref.items()))
    return t_ours, t_ref, worst


def _loop_dice(pred: np.ndarray, gt: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    dsc, jc = np.full(k, np.nan), np.full(k, np.nan)
    for c in range(k):
        p, g = pred == c, gt == c
        tp = np.count_nonzero(p & g)
        fp = np.count_nonzero(p & ~g)
        fn = np.count_nonzero(~p & g)
        if tp + fp + fn:
            dsc[c], jc[c] = 2 * tp / (2 * tp + fp + fn), tp / (tp + fp + fn)
    return dsc, jc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=_default_data(), help="the shared data folder")
    ap.add_argument("--chaos", type=int, default=3, help="CHAOS label volumes to time")
    ap.add_argument("--hippocampus", type=int, default=5, help="MSD Hippocampus label volumes to time")
    ap.add_argument("--synthetic-size", type=int, default=128, help="side of the synthetic case (0 = skip)")
    ap.add_argument("--dice-repeats", type=int, default=5, help="repeats of the DSC/JC timing")
    args = ap.parse_args(argv)

    try:
        from medpy.metric import binary as medpy_binary
    except ImportError:
        print("medpy is not installed (pip install medpy): nothing to compare against")
        return 2

    cases: list[tuple[str, np.ndarray, np.ndarray, tuple[float, ...]]] = []
    chaos = sorted((args.data / "chaos_mr_t2spir").glob("label_*.nii.gz"))[: args.chaos]
    hippo = sorted((args.data / "msd_hippocampus" / "labelsTr").glob("hippocampus_*.nii.gz"))[: args.hippocampus]
    if not chaos and not hippo:
        print(f"no real labels under {args.data}: timing the synthetic case only")
    for i, f in enumerate(chaos + hippo):
        gt, spacing = _load(f)
        cases.append((str(f.relative_to(args.data)), _fake_prediction(gt, i), gt, spacing))
    if args.synthetic_size > 0:
        pred, gt, spacing = _synthetic(args.synthetic_size, 0)
        cases.append((f"synthetic {gt.shape}", pred, gt, spacing))

    print(f"{'case':48s} {'shape':>16s} {'medssl s':>9s} {'medpy s':>9s} {'speed-up':>9s} {'max |diff|':>11s}")
    total_ours = total_ref = 0.0
    worst = 0.0
    for name, pred, gt, spacing in cases:
        t_ours, t_ref, diff = _time_case(pred, gt, spacing, medpy_binary)
        total_ours += t_ours
        total_ref += t_ref
        worst = max(worst, diff)
        ratio = t_ref / t_ours if t_ours > 0 else float("inf")
        print(f"{name:48s} {gt.shape!s:>16s} {t_ours:9.4f} {t_ref:9.4f} {ratio:8.1f}x {diff:11.2e}")
    print(
        f"metrics speed-up vs medpy: {total_ref / total_ours:.1f}x  (hd95+asd+assd, {len(cases)} cases, "
        f"max |diff| {worst:.1e})"
    )

    t_vec = t_loop = 0.0
    dice_diff = 0.0
    for _, pred, gt, _ in cases:
        k = int(max(pred.max(), gt.max())) + 1
        t0 = time.perf_counter()
        for _ in range(args.dice_repeats):
            d1, j1 = dice_jaccard_from_counts(confusion_counts(pred, gt, k))
        t1 = time.perf_counter()
        for _ in range(args.dice_repeats):
            d2, j2 = _loop_dice(pred, gt, k)
        t2 = time.perf_counter()
        t_vec += t1 - t0
        t_loop += t2 - t1
        dice_diff = max(dice_diff, float(np.nanmax(np.abs(d1 - d2))), float(np.nanmax(np.abs(j1 - j2))))
    print(
        f"DSC/JC speed-up vs per-class loop: {t_loop / t_vec:.1f}x  ({t_vec:.3f} s vs {t_loop:.3f} s, "
        f"max |diff| {dice_diff:.1e})"
    )
    ok = worst <= TOL and dice_diff <= 1e-12
    if not ok:
        print("MISMATCH: values differ from the reference")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
