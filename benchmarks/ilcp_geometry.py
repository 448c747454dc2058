"""SuperCL's intra-image contrast (ILCP) at the sizes people run: does every anchor have positives
and negatives?

For real slices of a prepared store, at each view size, this draws the superpixels that
pre-training would use (online: SLIC of the view; cache: SLIC of the whole stored slice at the same
density per pixel, then the crop), downsamples them to the bottleneck grid as ILCP does, keeps the
tokens ILCP keeps, and counts, per view: tokens, superpixels actually returned by SLIC, the share of
anchors with a positive other than their own twin in the other view (a superpixel spanning several
kept tokens), and the share of views in which every anchor has a negative. It compares the default
geometry (:func:`medssl.losses.supercl.ilcp_stride`, :meth:`SuperpixelConfig.segments_for`) with
the reference's fixed settings (stride 16, 100 superpixels), which only make sense at 512 px.

    python benchmarks/ilcp_geometry.py --data runs/cpu_cardiac/prepared/mscmrseg --sizes 64 128 256
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from medssl.data.datasets import minmax01
from medssl.data.store import SliceStore
from medssl.data.superpixels import SuperpixelConfig, compute_superpixels, relabel_consecutive
from medssl.data.transforms import pad_or_crop
from medssl.losses.supercl import downsample_superpixels, ilcp_stride


def view_stats(labels: torch.Tensor, grid: int, stride: int) -> tuple[int, float, bool]:
    """(kept tokens, share of anchors with an in-view positive, every anchor has a negative)."""
    lab = downsample_superpixels(labels[None], (grid, grid)).reshape(-1)[::stride]
    same = lab[:, None] == lab[None, :]
    in_view_pos = float(((same.sum(1) - 1) > 0).float().mean())
    all_neg = bool(((~same).sum(1) > 0).all())
    return len(lab), in_view_pos, all_neg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a prepared store")
    ap.add_argument("--sizes", nargs="+", type=int, default=[64, 128, 256])
    ap.add_argument("--cases", type=int, default=8, help="volumes to sample slices from")
    ap.add_argument("--depth", type=int, default=4)
    a = ap.parse_args()
    store = SliceStore(a.data)
    cases = store.cases[:: max(1, len(store.cases) // a.cases)][: a.cases]
    slices = [np.asarray(store.image(c.case_id)[z], np.float32) for c in cases for z in range(1, c.num_slices - 1, 2)]
    cell = 2**a.depth
    print(f"{store.plan.get('dataset')}: {len(slices)} slices of {len(cases)} volumes, stored {slices[0].shape}")
    print(
        "| view | geometry | mode | tokens per view | superpixels per view (asked -> returned) | anchors with an in-view positive | views where every anchor has a negative |"
    )
    print("|---:|---|---|---:|---|---:|---:|")
    for size in a.sizes:
        grid = size // cell
        settings = {
            "reference (stride 16, 100 superpixels)": (SuperpixelConfig(n_segments=100), 16),
            "default": (SuperpixelConfig(cell_size=cell, view_size=size), ilcp_stride(grid, grid)),
        }
        for name, (cfg, stride) in settings.items():
            for mode in ("online", "cache"):
                toks, pos, neg, got = [], [], [], []
                for s in slices:
                    if mode == "online":
                        (v,) = pad_or_crop(s, size=size)
                        lab = compute_superpixels(minmax01(v), cfg)
                    else:  # the cache's map of the whole slice (min-max'd), then the view's crop (+1: padding)
                        full = compute_superpixels(minmax01(s), cfg) + 1
                        (lab,) = pad_or_crop(full, size=size)
                        lab = relabel_consecutive(lab)
                    got.append(int(lab.max()) + 1)
                    t, p, n = view_stats(torch.from_numpy(lab.astype(np.int64)), grid, stride)
                    toks.append(t)
                    pos.append(p)
                    neg.append(n)
                asked = cfg.segments_for(size, size)
                print(
                    f"| {size} | {name} | {mode} | {np.mean(toks):.0f} | {asked} -> {np.mean(got):.1f} (min {min(got)}) | "
                    f"{100 * np.mean(pos):.0f}% | {100 * np.mean(neg):.0f}% |"
                )


if __name__ == "__main__":
    main()
