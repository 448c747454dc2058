"""Benchmark the pre-training views: samples/s of the 4-view transform against naive baselines.

Run::

    python benchmarks/bench_views.py                 # sizes 128 192 512
    python benchmarks/bench_views.py --sizes 192 --n 50

For each size it prints (one thread, median of ``--repeats`` runs of ``--n`` samples):

* ``medssl``: :class:`medssl.data.views.MultiViewTransform` (v1..v4): the spatial step builds one
  combined sampling grid (mirror + elastic + rotation + scale) and interpolates once (scipy's cubic
  B-spline, as the reference); the elastic field's Gaussian smoothing is one FFT convolution;
* ``torch``: the same with ``backend="torch"`` (``data.spatial_backend=torch``): the interpolation is
  ``grid_sample``'s cubic convolution instead of the B-spline;
* ``lattice``: the torch back-end with the elastic noise on a 4-pixel lattice
  (``data.elastic_noise_stride=4``: the same field covariance within 0.3%, fewer random draws);
* ``naive`` (the baseline): the same draws applied step by step, one ``map_coordinates`` per
  elastic / rotation / scale step (cubic each time), elastic field with ``gaussian_filter``;
* ``bg-style``: batchgenerators' own scheme (one combined grid, ``gaussian_filter`` in float64),
  to separate the gain of the single interpolation from that of the FFT smoothing;

and the ratios medssl / naive, torch / naive, torch / medssl and lattice / medssl in samples/s
(> 1 = faster), plus the cost of one T_int and one T_sp view in ms (scipy, torch and torch + lattice). The same random draws feed every variant (same seeds), so the work is identical.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from scipy import ndimage

from medssl.data.synthetic import make_phantom
from medssl.data.transforms import spatial_coords
from medssl.data.views import MultiViewTransform, intensity_transform, spatial_transform


def _draw(rng: np.random.Generator, shape: tuple[int, int], p: float = 0.67) -> dict:
    """The draws of spatial_params, without building any grid."""
    d = {"flip": (rng.uniform() < 0.5, rng.uniform() < 0.5), "spatial": rng.uniform() < p}
    if d["spatial"]:
        d["alpha"], d["sigma"] = rng.uniform(100, 350), rng.uniform(14, 17)
        d["noise"] = rng.random((2,) + shape) * 2 - 1
        d["angle"] = rng.uniform(0, 2 * math.pi)
        d["scale"] = rng.uniform(0.7, 1.0) if rng.uniform() < 0.5 else rng.uniform(1.0, 1.3)
    return d


def _flip(x: np.ndarray, flip: tuple[bool, bool]) -> np.ndarray:
    if flip[0]:
        x = x[::-1]
    if flip[1]:
        x = x[:, ::-1]
    return np.ascontiguousarray(x)


def naive_sp(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Baseline T_sp: mirror, then elastic, rotation and scale as three separate cubic resamplings."""
    h, w = x.shape
    d = _draw(rng, (h, w))
    x = _flip(x, d["flip"])
    if not d["spatial"]:
        return x.astype(np.float32)
    mc = lambda img, c: ndimage.map_coordinates(img, c, order=3, mode="constant", cval=0.0)  # noqa: E731
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    ctr = np.array([(h - 1) / 2, (w - 1) / 2])[:, None, None]
    cy, cx = yy - ctr[0], xx - ctr[1]
    x = mc(x.astype(np.float64), np.stack([cy, cx]) * d["scale"] + ctr)
    c, s = math.cos(d["angle"]), math.sin(d["angle"])
    x = mc(x, np.stack([cy * c + cx * s, cx * c - cy * s]) + ctr)
    disp = np.stack([ndimage.gaussian_filter(n, d["sigma"], mode="constant") * d["alpha"] for n in d["noise"]])
    x = mc(x, np.stack([yy, xx]) + disp)
    return x.astype(np.float32)


def bg_sp(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """batchgenerators-style T_sp: one combined float64 grid, direct gaussian_filter."""
    h, w = x.shape
    d = _draw(rng, (h, w))
    if not d["spatial"]:
        return _flip(x, d["flip"]).astype(np.float32)
    x = _flip(x, d["flip"])
    disp = np.stack([ndimage.gaussian_filter(n, d["sigma"], mode="constant") * d["alpha"] for n in d["noise"]])
    coords = spatial_coords((h, w), displacement=disp, angle=d["angle"], scale=d["scale"]).astype(np.float64)
    return ndimage.map_coordinates(x.astype(np.float64), coords, order=3, mode="constant", cval=0.0).astype(np.float32)


def four_views(x: np.ndarray, rng: np.random.Generator, sp) -> dict:
    v1, v2 = intensity_transform(x, rng), intensity_transform(x, rng)
    return {"v1": v1, "v2": v2, "v3": sp(v1, rng), "v4": sp(v2, rng)}


def _rate(fn, images: list[np.ndarray], n: int, repeats: int) -> float:
    """Median samples/s of fn over ``repeats`` runs of ``n`` samples (fixed seeds)."""
    rates = []
    for r in range(repeats):
        rng = np.random.default_rng(1000 + r)
        t = time.perf_counter()
        for i in range(n):
            fn(images[i % len(images)], rng)
        rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 192, 512])
    ap.add_argument("--n", type=int, default=0, help="samples per run (default: 40 / 30 / 8 by size)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    try:
        import threadpoolctl

        threadpoolctl.threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass

    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    print(
        f"{'size':>5} {'medssl/s':>9} {'torch/s':>8} {'naive/s':>8} {'bg-style/s':>10} {'medssl/naive':>12} "
        f"{'medssl/bg':>9} {'torch/naive':>11} {'torch/medssl':>12} {'lattice/s':>9} {'lattice/medssl':>14} "
        f"{'T_int ms':>9} {'T_sp ms':>8} {'T_sp torch':>10} {'T_sp lattice':>12}"
    )
    for size in args.sizes:
        n = args.n or (40 if size <= 128 else 30 if size <= 256 else 8)
        vol, _ = make_phantom(np.random.default_rng(0), slices=4, size=size)
        images = [((s - s.min()) / (s.max() - s.min())).astype(np.float32) for s in vol]
        tf, tf_torch = MultiViewTransform(), MultiViewTransform(backend="torch")
        tf_lat = MultiViewTransform(backend="torch", noise_stride=4.0)
        fast = _rate(lambda x, rng: tf(x, rng), images, n, args.repeats)
        fastest = _rate(lambda x, rng: tf_torch(x, rng), images, n, args.repeats)
        lattice = _rate(lambda x, rng: tf_lat(x, rng), images, n, args.repeats)
        naive = _rate(lambda x, rng: four_views(x, rng, naive_sp), images, n, args.repeats)
        bg = _rate(lambda x, rng: four_views(x, rng, bg_sp), images, n, args.repeats)
        t_int = 1e3 / _rate(lambda x, rng: intensity_transform(x, rng), images, 2 * n, args.repeats)
        t_sp = 1e3 / _rate(lambda x, rng: spatial_transform(x, rng, 1.0), images, n, args.repeats)
        t_sp_torch = 1e3 / _rate(
            lambda x, rng: spatial_transform(x, rng, 1.0, backend="torch"), images, n, args.repeats
        )
        t_sp_lat = 1e3 / _rate(
            lambda x, rng: spatial_transform(x, rng, 1.0, backend="torch", noise_stride=4.0), images, n, args.repeats
        )
        print(
            f"{size:>5} {fast:>9.1f} {fastest:>8.1f} {naive:>8.1f} {bg:>10.1f} {fast / naive:>12.2f} "
            f"{fast / bg:>9.2f} {fastest / naive:>11.2f} {fastest / fast:>12.2f} {lattice:>9.1f} "
            f"{lattice / fast:>14.2f} {t_int:>9.2f} {t_sp:>8.2f} {t_sp_torch:>10.2f} {t_sp_lat:>12.2f}"
        )
    print(
        "T_sp ms = one spatial view with the spatial step always on (p_spatial = 1); "
        "4-view rates include p_spatial = 0.67."
    )


if __name__ == "__main__":
    main()
