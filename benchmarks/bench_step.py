"""Step time of every pre-training method against the bare cost of its network passes.

For each registered method, on one fixed batch, this measures
  * the full training step: ``forward`` (all losses) + backward + optimiser step, and
  * the bare step: ``bare_forward`` (the same network passes with a trivial loss) + backward + step,
and prints their ratio (goal: 1.15 or less: the losses, masks and bookkeeping cost little next to
the network), plus peak memory on CUDA.

    python benchmarks/bench_step.py                       # CPU, 64 px, batch 8, width 16
    python benchmarks/bench_step.py --device cuda --size 512 --batch 16 --width 32 --amp bf16
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from medssl.methods.base import example_batch
from medssl.methods.catalog import list_methods
from medssl.models.unet import UNet
from medssl.registry import METHODS


def timed(fn, device: torch.device, warmup: int, reps: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--methods", default="*", help="comma-separated names or patterns")
    ap.add_argument("--channels-last", action="store_true")
    a = ap.parse_args()
    device = torch.device(a.device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(a.amp)
    print(f"device {device}{' (' + torch.cuda.get_device_name(0) + ')' if device.type == 'cuda' else ''}, {a.size}px, batch {a.batch}, width {a.width}, amp {a.amp}")
    print(f"{'method':<11} {'step ms':>9} {'bare ms':>9} {'ratio':>6} {'img/s':>8} {'peak MiB':>9}")
    infos = [i for pat in a.methods.split(",") for i in list_methods(pat)]
    for info in infos:
        cls = METHODS.get(info.name)
        torch.manual_seed(0)
        method = cls(UNet(1, 2, a.width)).to(device)
        if a.channels_last:
            method = method.to(memory_format=torch.channels_last)
        method.train()
        method.on_step(0, 100)
        opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
        batch = example_batch(a.batch, a.size, device=device)

        def step(bare: bool) -> None:
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = method.bare_forward(batch) if bare else method(batch)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        full = timed(lambda: step(False), device, 2, a.reps)
        peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
        bare = timed(lambda: step(True), device, 2, a.reps)
        print(f"{info.name:<11} {full * 1e3:9.1f} {bare * 1e3:9.1f} {full / bare:6.2f} {a.batch / full:8.1f} {peak:9.0f}", flush=True)


if __name__ == "__main__":
    main()
