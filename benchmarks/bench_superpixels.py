"""Superpixel stage of SuperCL: samples/s of the reference behaviour vs the fast paths, measured in one run.

Reference (stevezs315/SuperCL): for every training sample, SLIC (Lab, 100 segments, compactness 10)
on v1 and again on v2. Fast paths: the per-slice cache (memory-mapped read + the pipeline's random
crop + relabel; one map serves both views), and cheaper online settings (grey SLIC, SLIC at half
resolution). The one-off cost of building the cache is printed too.

Usage::

    python benchmarks/bench_superpixels.py                       # synthetic slices
    python benchmarks/bench_superpixels.py --data ../shared/data/chaos_mr_t2spir --sizes 256 512
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from scipy.ndimage import gaussian_filter, zoom

from medssl.data.superpixels import SuperpixelConfig, SuperpixelProvider, build_superpixel_cache, compute_superpixels


def _minmax(x: np.ndarray) -> np.ndarray:
    return (x - x.min()) / max(float(x.max() - x.min()), 1e-8)


def _slices(data: Path | None, n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """n slices of ``size + 32`` px (stored slices are larger than the training crop)."""
    out = []
    full = size + 32
    if data is not None:
        import nibabel as nib

        files = sorted(p for p in data.glob("image*.nii*"))[:n]
        for f in files:
            vol = np.asarray(nib.load(str(f)).dataobj, dtype=np.float32)
            sl = vol[:, :, vol.shape[2] // 2].T
            out.append(zoom(sl, (full / sl.shape[0], full / sl.shape[1]), order=1).astype(np.float32))
    yy, xx = np.mgrid[:full, :full] / full
    while len(out) < n:
        img = 0.2 + 0.1 * np.sin(xx * 40)
        for _ in range(6):
            cy, cx, r = rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85), rng.uniform(0.05, 0.2)
            img = img + rng.uniform(0.3, 0.8) * (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r)
        out.append((img + rng.normal(0, 0.03, img.shape)).astype(np.float32))
    return out


class _ArrayStore:
    """A minimal prepared store: one (D, H, W) volume per case, a root folder for the cache."""

    def __init__(self, root: Path, volumes: dict[str, np.ndarray]) -> None:
        self.root = root
        self._v = volumes
        self.cases = [
            SimpleNamespace(case_id=k, shape=tuple(v.shape), num_slices=v.shape[0]) for k, v in volumes.items()
        ]

    def image(self, case_id: str) -> np.ndarray:
        return self._v[case_id]


def _rate(fn: Callable[[int], object], n: int) -> float:
    fn(0)  # warm-up
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="a folder of image*.nii.gz (default: synthetic)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--samples", type=int, default=12, help="samples timed per setting")
    ap.add_argument("--slices", type=int, default=4)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'size':>5} {'path':<44} {'samples/s':>10} {'x reference':>12}")
    for size in args.sizes:
        stored = _slices(args.data, args.slices, size, rng)
        crops = []
        for i in range(args.samples + 1):
            k = i % len(stored)
            y, x = rng.integers(0, 33, 2)
            crop = stored[k][y : y + size, x : x + size]
            v1 = _minmax(gaussian_filter(_minmax(crop), rng.uniform(1, 3), truncate=0.5))
            v2 = _minmax(gaussian_filter(_minmax(crop), rng.uniform(1, 3), truncate=0.5))
            crops.append((k, int(y), int(x), v1, v2))
        lab = SuperpixelConfig()

        def reference(i: int) -> object:
            _, _, _, v1, v2 = crops[i % len(crops)]
            return compute_superpixels(v1, lab), compute_superpixels(v2, lab)

        def online(cfg: SuperpixelConfig) -> Callable[[int], object]:
            return lambda i: (
                compute_superpixels(crops[i % len(crops)][3], cfg),
                compute_superpixels(crops[i % len(crops)][4], cfg),
            )

        base = _rate(reference, args.samples)
        rows = [("reference: SLIC Lab on v1 and v2 (online)", base)]
        rows.append(
            ("online SLIC grey (c=0.1), twice", _rate(online(SuperpixelConfig(method="slic_grey")), args.samples))
        )
        rows.append(
            ("online SLIC Lab at half resolution, twice", _rate(online(SuperpixelConfig(scale=0.5)), args.samples))
        )
        with tempfile.TemporaryDirectory() as tmp:
            store = _ArrayStore(Path(tmp), {f"case{k}": s[None] for k, s in enumerate(stored)})
            cfg = SuperpixelConfig(mode="cache")
            t0 = time.perf_counter()
            build_superpixel_cache(store, cfg, progress=False)
            build_s = (time.perf_counter() - t0) / len(stored)
            prov = SuperpixelProvider(cfg, store)

            def cached(i: int) -> object:
                k, y, x, v1, _ = crops[i % len(crops)]
                return prov(f"case{k}", 0, v1, geometry=lambda a: a[y : y + size, x : x + size])

            rows.append(("cache: mmap read + crop + relabel (S1 = S2)", _rate(cached, max(args.samples, 200))))
        for name, rate in rows:
            print(f"{size:>5} {name:<44} {rate:>10.1f} {rate / base:>11.1f}x")
        print(f"{size:>5} {'(one-off cache build, per slice)':<44} {1 / build_s:>10.1f} slices/s")


if __name__ == "__main__":
    main()
