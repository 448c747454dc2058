"""Does ``medssl predict`` keep the network busy? Slices/s of the whole command (read, resample,
normalise, predict, map the softmax back, argmax, post-process, write) next to the bare forward
passes of the same batches, both measured in this run; and peak memory for a few and for more files.

    python benchmarks/bench_predict.py                          # MS-CMRSeg, 8 scans, store at 1.5 mm
    python benchmarks/bench_predict.py --cases 16 --spacing keep --width 32 --threads 2

A tiny store of 3 MS-CMRSeg patients (read from ../shared/data by path) is prepared and a network of
``--width`` is fine-tuned for 2 steps (speed does not depend on the weights); ``--cases`` other raw
scans (256 x 256 at 1.25 mm) are then segmented. Goal: predict >= 0.8 x bare on 2 CPU cores, and a peak
memory that does not grow with the number of files (each measurement in a fresh process).

On a machine shared with other jobs, the operating system shares the cores per thread: predict (the
network's threads plus a reader and a writer thread) then gets a larger share than the bare loop,
and its ratio can exceed 1. The stage times measured one after another in one thread give the bound
without overlap (network time / total time), which does not depend on that.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medssl.config import DataCfg, FinetuneConfig, ModelCfg, TrainCfg
from medssl.data.store import prepare
from medssl.finetune import finetune
from medssl.inference import Segmenter, discover_inputs, predict_inputs, read_scan
from medssl.inference.segmenter import _pad_slices

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_recipes import _data_root


def make_run(data: Path, root: Path, spacing: float | None, width: int) -> Path:
    src = root / "train"
    src.mkdir()
    for n in (1, 2, 3):
        for kind in ("image", "label"):
            (src / f"{kind}_{n}.nii.gz").symlink_to(data / "mscmrseg_bssfp" / f"{kind}_{n}.nii.gz")
    prepare("mscmrseg", src, root / "store", target_spacing=spacing, progress=False)
    cfg = FinetuneConfig(
        data=DataCfg(path=str(root / "store"), labels="100%", batch_size=4, num_workers=0, image_size=64),
        model=ModelCfg(base_width=width),
        train=TrainCfg(device="cpu", progress=False, epochs=1, max_steps=2, val_every_steps=1000),
        out=str(root / "ft"),
    )
    return finetune(cfg).out


def input_folder(data: Path, root: Path, n: int) -> Path:
    folder = root / f"inputs_{n}"
    folder.mkdir()
    for k in range(4, 4 + n):
        (folder / f"scan{k:03d}.nii.gz").symlink_to(data / "mscmrseg_bssfp" / f"image_{k}.nii.gz")
    return folder


@torch.no_grad()
def bare_forward(seg: Segmenter, folder: Path) -> tuple[int, float]:
    """Slices and seconds of the network alone on the batches predict feeds it (inputs prepared untimed)."""
    spec, model = seg.specs[0], seg.models[0]
    batches = []
    for item in discover_inputs(folder):
        scan = read_scan(item)
        vol = seg.preprocess(scan.image, scan.spacing)
        for s in range(0, len(vol), seg.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(vol[s : s + seg.batch_size]))[:, None]
            batches.append(_pad_slices(x, spec.multiple, spec.fill)[0])
    model(batches[0])  # warm-up
    t0 = time.perf_counter()
    for x in batches:
        model(x)
    return sum(len(x) for x in batches), time.perf_counter() - t0


def stage_seconds(seg: Segmenter, folder: Path) -> dict[str, float]:
    """Seconds per stage when the stages run one after another in one thread (no overlap): what the
    threads of predict hide, and a bound that does not depend on how a loaded machine shares its cores."""
    from medssl.inference import save_label_map

    t: dict[str, float] = {"read": 0.0, "preprocess": 0.0, "network": 0.0, "back-map+post-process": 0.0, "write": 0.0}
    with tempfile.TemporaryDirectory() as out:
        for item in discover_inputs(folder):
            t0 = time.perf_counter()
            scan = read_scan(item)
            t1 = time.perf_counter()
            vol = seg.preprocess(scan.image, scan.spacing)
            t2 = time.perf_counter()
            probs = seg.network_probabilities(vol)
            t3 = time.perf_counter()
            labels, _ = seg.finish(probs, scan.image.shape)
            t4 = time.perf_counter()
            save_label_map(labels, scan, Path(out) / f"{item.case}.nii.gz")
            t5 = time.perf_counter()
            for k, a, b in zip(t, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5)):
                t[k] += b - a
    return t


def peak_rss_mb(run: Path, folder: Path, out: Path, threads: int) -> float:
    """Peak resident memory (MB) of a fresh process that predicts every file of ``folder``."""
    code = (
        "import resource, sys, torch; torch.set_num_threads(int(sys.argv[4]));"
        "from medssl.inference import Segmenter, predict_inputs;"
        "predict_inputs(Segmenter.from_run(sys.argv[1], device='cpu'), sys.argv[2], sys.argv[3], progress=False);"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(run), str(folder), str(out), str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="the shared data folder (default: ../shared/data)")
    p.add_argument("--cases", type=int, default=8, help="raw scans to segment (MS-CMRSeg patients 4..)")
    p.add_argument("--spacing", default="1.5", help="the store's in-plane spacing in mm, or keep")
    p.add_argument("--width", type=int, default=32, help="U-Net base width (medssl's default: 32)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (this machine: 2 cores)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--reps", type=int, default=2, help="alternated repetitions (best of each is reported)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    spacing = None if a.spacing == "keep" else float(a.spacing)
    data = _data_root(a.data)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = make_run(data, root, spacing, a.width)
        seg = Segmenter.from_run(run, device="cpu", batch_size=a.batch_size)
        folder = input_folder(data, root, a.cases)
        best_predict, best_bare = 0.0, 0.0
        for _ in range(a.reps):  # alternated, best of each: the machine's load changes between them
            res = predict_inputs(seg, folder, root / "out", overwrite=True, progress=False)
            n_bare, t_bare = bare_forward(seg, folder)
            best_predict, best_bare = max(best_predict, res.slices_per_s), max(best_bare, n_bare / t_bare)
        stages = stage_seconds(seg, folder)
        small = input_folder(data, root, 2) if a.cases > 2 else folder
        rss = {n: peak_rss_mb(run, f, root / f"mem_{n}", a.threads) for n, f in ((2, small), (a.cases, folder))}
    bare = best_bare
    print(f"# python benchmarks/bench_predict.py {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"# torch {torch.__version__}, {a.threads} threads, {os.cpu_count()} cores; store spacing {a.spacing}, U-Net width {a.width}"
    )
    print(f"cases {res.predicted}, slices {res.slices}")
    print(
        f"predict (read + resample + normalise + network + back-map + argmax + post-process + write): {best_predict:.1f} slices/s"
    )
    print(f"bare forward passes of the same batches: {bare:.1f} slices/s ({n_bare} slices)")
    print(f"ratio predict / bare: {best_predict / bare:.2f} (goal >= 0.8; best of {a.reps} alternated runs each)")
    total = sum(stages.values())
    print("one thread, stages in sequence: " + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()))
    print(f"network share of the sequential time: {stages['network'] / total:.2f} (predict / bare without any overlap)")
    print("peak RSS: " + ", ".join(f"{n} files {mb:.0f} MB" for n, mb in rss.items()))
    print(
        json.dumps(
            {"predict_slices_per_s": best_predict, "bare_slices_per_s": bare, "stages_s": stages, "peak_rss_mb": rss}
        )
    )


if __name__ == "__main__":
    main()
