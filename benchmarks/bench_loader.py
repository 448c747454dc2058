"""Does the data pipeline keep up with training? For every method, samples/s that the pre-training
loader delivers (its views, superpixels and neighbours) against samples/s the training step consumes,
both measured in this run, on the same store.

    python benchmarks/bench_loader.py                    # synthetic store, 128 px, CPU step, 2 workers
    python benchmarks/bench_loader.py --store PREPARED --size 512 --device cuda --batch 16

Prints, per method and view variant (`--backend`, a comma list of `scipy` and `torch` (see
`data.spatial_backend`) and `scipy-lattice` / `torch-lattice` (the same with the elastic noise on a
lattice of `--noise-stride` pixels, `data.elastic_noise_stride`); `both` = scipy,torch, `all` = all three
of scipy,torch,torch-lattice):
loader samples/s with `--workers` workers (measured), the per-core rate, the training step's
samples/s, and their ratio (goal: >= 3). It also prints the modelled ratio "per-core rate x this
machine's cores / step rate" (on a GPU machine: the GPU step rate).

Projection to a GPU machine measured earlier (`--project`): the per-core rate measured here x
`--project-cores` / the GPU step rates given, e.g. the H100 figures of `docs/performance.md`:

    python benchmarks/bench_loader.py --size 512 --batch 16 --workers 2 --methods supercl,macl,pcl \
        --no-step --project supercl=80.5,macl=141.1,pcl=162.2 --project-cores 16 \
        --project-scipy supercl=17.9,macl=17.6,pcl=16.3

A core here need not be as fast as one there: `--project-scipy` gives the scipy per-core rates
recorded on that machine, and the projection then uses those, times the ratio of each back-end to
scipy measured here (the `scipy` variant must be in `--backend`), instead of this machine's absolute
rates.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
from torch.utils.data import DataLoader

from medssl.data.datasets import PretrainSlices
from medssl.data.store import SliceStore, prepare
from medssl.data.superpixels import SuperpixelConfig, SuperpixelProvider, build_superpixel_cache
from medssl.data.views import MultiViewTransform
from medssl.methods.catalog import list_methods
from medssl.models.unet import UNet
from medssl.registry import METHODS

#: view variants: name -> (spatial back-end, elastic noise on a lattice)
VARIANTS = {
    "scipy": ("scipy", False),
    "torch": ("torch", False),
    "scipy-lattice": ("scipy", True),
    "torch-lattice": ("torch", True),
}


def loader_rate(ds: PretrainSlices, workers: int, batch: int, n_batches: int) -> float:
    """Sustained samples/s. Timing starts after the first batch, and runs over enough batches that the
    workers' prefetch queue (2 batches each) cannot hide the production cost."""
    dl = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True, persistent_workers=False)
    n_batches = max(n_batches, 6 * max(workers, 1))
    it = iter(dl)
    next(it)  # start-up
    t = time.perf_counter()
    n = 0
    for _ in range(n_batches):
        try:
            next(it)
        except StopIteration:
            break
        n += batch
    return n / (time.perf_counter() - t)


def step_rate(method, batch_dict, device: torch.device, reps: int = 3) -> float:
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=1e-4)
    dtype = torch.bfloat16 if device.type == "cuda" else None

    def step():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = method(batch_dict)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return reps * next(iter(batch_dict.values())).shape[0] / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", help="prepared store (default: a synthetic one made here)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--methods", default="*")
    ap.add_argument(
        "--backend",
        default="both",
        help="comma list of scipy, torch, scipy-lattice, torch-lattice; both = scipy,torch; "
        "all = scipy,torch,torch-lattice",
    )
    ap.add_argument(
        "--noise-stride",
        type=float,
        default=4.0,
        help="elastic noise lattice of the *-lattice variants (data.elastic_noise_stride)",
    )
    ap.add_argument("--no-step", action="store_true", help="do not measure the training step here")
    ap.add_argument("--project", default="", help="METHOD=STEP_SAMPLES_PER_S,... of a GPU machine")
    ap.add_argument("--project-cores", type=int, default=16, help="CPU cores of that machine")
    ap.add_argument("--project-scipy", default="", help="METHOD=PER_CORE_RATE,...: scipy per-core rates recorded there")
    a = ap.parse_args()

    def rates(text: str) -> dict[str, float]:
        return {k: float(v) for k, v in (kv.split("=") for kv in text.split(",") if kv)}

    project, project_scipy = rates(a.project), rates(a.project_scipy)
    aliases = {"both": "scipy,torch", "all": "scipy,torch,torch-lattice"}
    backends = aliases.get(a.backend, a.backend).split(",")
    bad = [b for b in backends if b not in VARIANTS]
    if bad:
        ap.error(f"unknown --backend variant(s) {bad}; known: {', '.join(VARIANTS)}, both, all")
    backends.sort(key=lambda b: b != "scipy")  # scipy first: the projection scales by it
    if project_scipy and "scipy" not in backends:
        ap.error("--project-scipy needs the scipy variant in --backend (it scales by the measured ratio to it)")
    device = torch.device(a.device)
    tmp = None
    if a.store:
        store = SliceStore(a.store)
    else:
        tmp = tempfile.mkdtemp()
        store = SliceStore(
            prepare(
                "synthetic",
                "builtin",
                tmp,
                progress=False,
                reader_options=dict(n_patients=6, frames=2, slices=12, size=a.size),
            ).root
        )
    sp_cfg = SuperpixelConfig(mode="cache")
    build_superpixel_cache(store, sp_cfg, workers=min(8, os.cpu_count() or 1), progress=False)
    cores = os.cpu_count() or 1
    print(f"store {store.root}, {a.size}px, batch {a.batch}, {a.workers} workers, step on {device}, {cores} cores here")
    print(
        f"{'method':<11} {'backend':<13} {'loader/s':>9} {'per core':>9} {'step/s':>8} {'ratio':>6} {'modelled':>9}"
        + (f" {'projected':>9}" if project else "")
    )
    cases = [c.case_id for c in store.cases]
    for info in [i for pat in a.methods.split(",") for i in list_methods(pat)]:
        cls = METHODS.get(info.name)
        method = cls(UNet(1, 2, a.width)).to(device).train()
        provider = SuperpixelProvider(sp_cfg, store) if "superpixels" in cls.needs else None
        consume = float("nan")
        scipy_here = float("nan")
        for backend in backends:
            interp, lattice = VARIANTS[backend]
            views = MultiViewTransform(
                views=cls.views,
                neighbor="neighbor" in cls.needs,
                backend=interp,
                noise_stride=a.noise_stride if lattice else 1.0,
                **method.view_options(),
            )
            ds = PretrainSlices(store, cases, a.size, views, cls.needs, provider, seed=0)
            torch.set_num_threads(1)  # the per-core rate: one sample at a time on one thread, as a worker
            single = loader_rate(ds, 0, a.batch, a.batches)
            torch.set_num_threads(cores)
            multi = loader_rate(ds, a.workers, a.batch, a.batches) if a.workers else single
            if consume != consume and not a.no_step:
                sample = next(iter(DataLoader(ds, batch_size=a.batch, drop_last=True)))
                batch = {k: v.to(device) for k, v in sample.items()}
                consume = step_rate(method, batch, device)
            row = (
                f"{info.name:<11} {backend:<13} {multi:9.1f} {single:9.1f} {consume:8.1f} {multi / consume:6.1f} "
                f"{single * cores / consume:9.1f}"
            )
            if backend == "scipy":
                scipy_here = single
            if project:
                rate = project.get(info.name)
                per_core = single
                if project_scipy:  # that machine's scipy rate x this back-end's speed-up measured here
                    per_core = project_scipy.get(info.name, float("nan")) * single / scipy_here
                row += f" {per_core * a.project_cores / rate:9.1f}" if rate else f" {'-':>9}"
            print(row, flush=True)


if __name__ == "__main__":
    main()
