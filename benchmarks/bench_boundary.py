"""Boundary metrics against the mesh reference (MeshMetrics) and their speed against medpy and surface-distance.

For real label volumes of ``../shared/data`` (MS-CMRSeg bSSFP, CHAOS MR T2-SPIR, MSD Hippocampus),
three perturbed predictions per case (``erode``: every class eroded by one voxel; ``shift``: every
class moved two voxels in-plane; ``blob``: the label plus a false-positive blob of every class far
from it), and for every case-class:

- HD95, ASSD, MASD, HD and NSD at 2 mm from medssl's ``standard`` protocol (``surface`` definition),
  DeepMind's ``surface-distance`` and medpy (HD95 / ASSD / HD pooled; MASD = mean of the two
  directed means, NSD = share of boundary voxels within 2 mm), each minus MeshMetrics
  (``pymeshmetrics`` 1.4.1, Podobnik & Vrtovec 2024), reported as median and maximum absolute
  difference and the count above 1 mm;
- time per volume: medssl ``case_metrics`` (standard: DSC, JC and every boundary metric with NSD)
  vs medpy ``hd95`` + ``assd`` per class vs ``surface-distance`` (distances + HD95 + averages +
  NSD) per class, measured in the same run (one thread), each the best of ``--repeats`` calls.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_boundary.py [--data ../shared/data] [--cardiac 4] [--chaos 2]
                                                          [--hippocampus 4] [--repeats 2]

MeshMetrics (``pip install pymeshmetrics==1.4.1``: vtk + SimpleITK) and ``surface-distance`` are
benchmark-only; without MeshMetrics the differences are taken against surface-distance.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from medssl.data.case import to_dhw
from medssl.evaluation.metrics import case_metrics
from medssl.evaluation.surface import neighbour_area_table

METRICS = ("hd95", "assd", "masd", "hd", "nsd")
TOL_MM = 2.0


def _default_data() -> Path:
    here = Path(__file__).resolve().parents[1]
    for cand in (Path(os.environ.get("MEDSSL_SHARED_DATA", "/nonexistent")), here.parent / "shared" / "data"):
        if cand.is_dir():
            return cand
    return Path("/work/shared/data")


def _load(path: Path, lut: dict[int, int] | None = None) -> tuple[np.ndarray, tuple[float, ...]]:
    import nibabel as nib

    img = nib.load(str(path))
    arr, sp = to_dhw(np.rint(np.asanyarray(img.dataobj)).astype(np.int64), img.header.get_zooms())
    if lut:
        out = np.zeros(arr.shape, np.uint8)
        for raw, c in lut.items():
            out[arr == raw] = c
        arr = out
    return arr.astype(np.uint8), tuple(float(s) for s in sp)


def _cases(
    data: Path, n_card: int, n_chaos: int, n_hip: int
) -> list[tuple[str, str, np.ndarray, tuple[float, ...], tuple[str, ...]]]:
    out = []
    card = sorted((data / "mscmrseg_bssfp").glob("label_*.nii.gz"), key=lambda p: int(p.name[6:-7]))[:n_card]
    for p in card:
        lab, sp = _load(p, {0: 0, 500: 1, 200: 2, 600: 3})
        out.append(("mscmrseg", p.name, lab, sp, ("bg", "LV", "Myo", "RV")))
    chaos = sorted((data / "chaos_mr_t2spir").glob("label_*.nii.gz"), key=lambda p: int(p.name[6:-7]))[:n_chaos]
    for p in chaos:
        lab, sp = _load(p)
        out.append(("chaos", p.name, lab, sp, ("bg", "liver", "rkidney", "lkidney", "spleen")))
    for p in sorted((data / "msd_hippocampus" / "labelsTr").glob("hippocampus_*.nii.gz"))[:n_hip]:
        lab, sp = _load(p)
        out.append(("hippocampus", p.name, lab, sp, ("bg", "anterior", "posterior")))
    return out


def _blob_at(gt_c: np.ndarray, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """A small block in the corner of the volume farthest from the structure's centre."""
    centre = np.argwhere(gt_c).mean(axis=0)
    size = (1, 5, 5) if shape[0] < 20 else (3, 3, 3)
    start = [int(shape[a] - size[a] - 2 if centre[a] < shape[a] / 2 else 2) for a in range(3)]
    start[0] = int(np.clip(round(centre[0]), 0, shape[0] - size[0]))
    return tuple(slice(s, s + n) for s, n in zip(start, size))


def _perturb(gt: np.ndarray, how: str) -> np.ndarray:
    pred = np.zeros_like(gt)
    for c in range(1, int(gt.max()) + 1):
        m = gt == c
        if not m.any():
            continue
        if how == "erode":
            m = ndi.binary_erosion(m)
        elif how == "shift":
            m = np.roll(m, (2, -2), axis=(1, 2))
        pred[m & (pred == 0)] = c
        if how == "blob":
            box = _blob_at(gt == c, gt.shape)
            pred[box] = np.where(gt[box] == 0, c, pred[box])
    return pred


def _medpy_row(p: np.ndarray, g: np.ndarray, sp: tuple[float, ...]) -> dict[str, float]:
    from medpy.metric.binary import __surface_distances as msd  # type: ignore[attr-defined]

    a, b = msd(p, g, sp), msd(g, p, sp)
    both = np.concatenate([a, b])
    near = (a <= TOL_MM).sum() + (b <= TOL_MM).sum()
    return {
        "hd95": float(np.percentile(both, 95)),
        "assd": float(both.mean()),
        "masd": float(0.5 * (a.mean() + b.mean())),
        "hd": float(both.max()),
        "nsd": float(near / both.size),
    }


def _sd_row(p: np.ndarray, g: np.ndarray, sp: tuple[float, ...]) -> dict[str, float]:
    import surface_distance as sdm

    r = sdm.compute_surface_distances(g, p, sp)
    g2p, p2g = sdm.compute_average_surface_distance(r)
    wp, wg = r["surfel_areas_pred"], r["surfel_areas_gt"]
    pooled = (np.dot(r["distances_pred_to_gt"], wp) + np.dot(r["distances_gt_to_pred"], wg)) / (wp.sum() + wg.sum())
    return {
        "hd95": float(sdm.compute_robust_hausdorff(r, 95)),
        "assd": float(pooled),
        "masd": float(0.5 * (g2p + p2g)),
        "hd": float(sdm.compute_robust_hausdorff(r, 100)),
        "nsd": float(sdm.compute_surface_dice_at_tolerance(r, TOL_MM)),
    }


def _mesh_row(p: np.ndarray, g: np.ndarray, sp: tuple[float, ...]) -> dict[str, float]:
    from meshmetrics import DistanceMetrics

    dm = DistanceMetrics(verbose=False)
    dm.set_input(ref=g, pred=p, spacing=sp)
    return {"hd95": dm.hd(95), "assd": dm.assd(), "masd": dm.masd(), "hd": dm.hd(100), "nsd": dm.nsd(TOL_MM)}


def _have_meshmetrics() -> bool:
    try:
        import meshmetrics  # noqa: F401
    except ImportError:
        return False
    return True


_HAVE_MESH = _have_meshmetrics()


def _timed(fn: Callable[[], Any], repeats: int = 1) -> tuple[Any, float]:
    """``fn()``'s result and its best time over ``repeats`` calls (as ``timeit`` reports)."""
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def _score_volume(
    lab: np.ndarray, pred: np.ndarray, sp: tuple[float, ...], names: tuple[str, ...], repeats: int
) -> dict[str, Any]:
    """Every tool's per-class values and each tool's time for the whole volume (best of ``repeats``)."""
    from medpy.metric.binary import assd, hd95

    classes = [c for c in range(1, len(names)) if (lab == c).any() and (pred == c).any()]
    ours, t_ours = _timed(lambda: case_metrics(pred, lab, names, sp, "standard", nsd_tolerance=TOL_MM), repeats)
    med = [_medpy_row(pred == c, lab == c, sp) for c in classes]
    sdr, t_sd = _timed(lambda: [_sd_row(pred == c, lab == c, sp) for c in classes], repeats)
    pairs = lambda: [(hd95(pred == c, lab == c, sp), assd(pred == c, lab == c, sp)) for c in classes]  # noqa: E731
    _, t_medpy_pair = _timed(pairs, repeats)
    mesh = [_mesh_row(pred == c, lab == c, sp) for c in classes] if _HAVE_MESH else sdr
    ours_by = {r["class_index"]: r for r in ours}
    return {
        "classes": classes,
        "medssl": [ours_by[c] for c in classes],
        "medpy": med,
        "surface-distance": sdr,
        "mesh": mesh,
        "t": {"medssl": t_ours, "medpy": t_medpy_pair, "surface-distance": t_sd},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=_default_data())
    ap.add_argument("--cardiac", type=int, default=4)
    ap.add_argument("--chaos", type=int, default=2)
    ap.add_argument("--hippocampus", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2, help="each tool's time is its best of this many calls")
    a = ap.parse_args()
    neighbour_area_table((1.0, 1.0, 1.0))  # builds the marching-cubes triangulation once per process (~0.1 s)
    diffs: dict[str, dict[str, list[float]]] = {
        t: {m: [] for m in METRICS} for t in ("medssl", "surface-distance", "medpy")
    }
    times: dict[str, dict[str, float]] = {}
    worst: list[tuple[float, str]] = []
    same = 0.0  # max |medssl - surface-distance| over every metric: the same representation, so ~1e-12
    for ds, name, lab, sp, names in _cases(a.data, a.cardiac, a.chaos, a.hippocampus):
        for how in ("erode", "shift", "blob"):
            res = _score_volume(lab, _perturb(lab, how), sp, names, a.repeats)
            for tool, t in res["t"].items():
                times.setdefault(ds, {}).setdefault(tool, 0.0)
                times[ds][tool] += t
            for i, c in enumerate(res["classes"]):
                same = max(same, *(abs(res["medssl"][i][m] - res["surface-distance"][i][m]) for m in METRICS))
                for tool in diffs:
                    for m in METRICS:
                        diffs[tool][m].append(abs(res[tool][i][m] - res["mesh"][i][m]))
                d = abs(res["medssl"][i]["hd95"] - res["mesh"][i]["hd95"])
                worst.append(
                    (d / max(sp), f"{ds} {name} {how} {names[c]}: |HD95 - mesh| {d:.2f} mm, slice {max(sp):.2f} mm")
                )
            print(
                f"{ds:12s} {name:24s} {how:5s} shape {lab.shape} spacing {tuple(round(s, 2) for s in sp)}", flush=True
            )
    _print(diffs, times, worst)
    print(f"max |medssl - surface-distance| over every metric and case-class: {same:.1e}")


def _print(
    diffs: dict[str, dict[str, list[float]]], times: dict[str, dict[str, float]], worst: list[tuple[float, str]]
) -> None:
    n = len(diffs["medssl"]["hd95"])
    if not _HAVE_MESH:
        print("\nMeshMetrics (pymeshmetrics) is not installed: the reference below is surface-distance")
    print(
        f"\n|difference| from {'MeshMetrics' if _HAVE_MESH else 'surface-distance'} over {n} case-classes: median / max (count > 1 mm; NSD: count > 0.05)"
    )
    print(f"{'tool':18s}" + "".join(f"{m.upper():>26s}" for m in METRICS))
    for tool, per in diffs.items():
        cells = []
        for m in METRICS:
            v = np.asarray(per[m])
            cut = 0.05 if m == "nsd" else 1.0
            cells.append(f"{np.median(v):.3f} / {v.max():.3f} ({int((v > cut).sum())})")
        print(f"{tool:18s}" + "".join(f"{c:>26s}" for c in cells))
    print("\nworst medssl HD95 case-class, in slice thicknesses:", max(worst)[1], f"({max(worst)[0]:.2f} x)")
    top = max(worst, key=lambda w: float(w[1].split("| ")[1].split(" mm")[0]))
    print("largest absolute medssl HD95 difference:", top[1], f"({top[0]:.2f} x)")
    print(
        "\ntime per data set (s, all volumes): medssl standard (all metrics + NSD) | medpy hd95+assd | surface-distance"
    )
    tot = dict.fromkeys(("medssl", "medpy", "surface-distance"), 0.0)
    for ds, t in times.items():
        print(
            f"{ds:12s} {t['medssl']:8.3f} {t['medpy']:8.3f} {t['surface-distance']:8.3f}  "
            f"vs medpy {t['medpy'] / t['medssl']:6.1f}x  vs surface-distance {t['surface-distance'] / t['medssl']:5.1f}x"
        )
        for k in tot:
            tot[k] += t[k]
    print(
        f"speed-up of medssl standard (with NSD): {tot['medpy'] / tot['medssl']:.1f}x medpy hd95+assd, "
        f"{tot['surface-distance'] / tot['medssl']:.1f}x surface-distance (total time, all volumes)"
    )


if __name__ == "__main__":
    main()
