"""Step time of every pre-training method against the bare cost of its network passes.

For each registered method, on one fixed batch, this measures
  * the full training step: ``forward`` (all losses) + backward + optimiser step, and
  * the bare step: ``bare_forward`` (the same network passes with a trivial loss) + backward + step,
and prints their ratio (goal: 1.15 or less: the losses, masks and bookkeeping cost little next to
the network), plus peak memory on CUDA.

    python benchmarks/bench_step.py                       # CPU, 64 px, batch 8, width 16
    python benchmarks/bench_step.py --device cuda --size 512 --batch 16 --width 32 --amp bf16
    python benchmarks/bench_step.py --count-ops            # + kernels launched per step and bare step

``--count-ops`` adds, for each, the number of ATen operations that do work (views, detaches and other
metadata-only operations left out) in one step and one bare step, counted with a
``TorchDispatchMode`` (forward, backward and optimiser): on a GPU each is at least one kernel
launch, so the difference is the launch overhead the losses add, whatever the device. Both counted
calls start from the same random state (DiRA draws how much distortion work it does).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode

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


#: ATen operations that only make views or aliases (no kernel on any device)
_METADATA_OPS = frozenset(
    {
        "detach",
        "view",
        "_unsafe_view",
        "expand",
        "t",
        "transpose",
        "permute",
        "unsqueeze",
        "squeeze",
        "slice",
        "select",
        "as_strided",
        "alias",
        "reshape",
        "unbind",
        "split",
        "split_with_sizes",
        "chunk",
        "narrow",
        "diagonal",
        "unflatten",
        "flatten",
        "lift_fresh",
        "_reshape_alias",
        "expand_as",
        "view_as",
        "_to_copy_noop",
    }
)


class OpCounter(TorchDispatchMode):
    """Counts the ATen operations that do work (see ``_METADATA_OPS``) dispatched inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ not in _METADATA_OPS:
            self.count += 1
        return func(*args, **(kwargs or {}))


def rng_snapshot(method: torch.nn.Module):
    """A function that puts every ``torch.Generator`` the method holds (and the global one) back to
    its state now, so that two counted calls draw the same random work (DiRA's distortions)."""
    gens = [g for mod in method.modules() for g in vars(mod).values() if isinstance(g, torch.Generator)]
    states = [g.get_state() for g in gens]
    global_state = torch.get_rng_state()

    def restore() -> None:
        for g, st in zip(gens, states):
            g.set_state(st)
        torch.set_rng_state(global_state)

    return restore


def count_ops(fn, restore) -> int:
    """Working ATen operations of one call of ``fn``, with the random state put back first."""
    restore()
    with OpCounter() as counter:
        fn()
    return counter.count


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
    ap.add_argument("--count-ops", action="store_true", help="also count the operations of each step (kernels)")
    a = ap.parse_args()
    device = torch.device(a.device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(a.amp)
    print(
        f"device {device}{' (' + torch.cuda.get_device_name(0) + ')' if device.type == 'cuda' else ''}, {a.size}px, batch {a.batch}, width {a.width}, amp {a.amp}"
    )
    print(
        f"{'method':<11} {'step ms':>9} {'bare ms':>9} {'ratio':>6} {'img/s':>8} {'peak MiB':>9}"
        + (f" {'step ops':>9} {'bare ops':>9} {'extra':>6}" if a.count_ops else "")
    )
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
        row = (
            f"{info.name:<11} {full * 1e3:9.1f} {bare * 1e3:9.1f} {full / bare:6.2f} {a.batch / full:8.1f} {peak:9.0f}"
        )
        if a.count_ops:
            restore = rng_snapshot(method)
            n_step, n_bare = count_ops(lambda: step(False), restore), count_ops(lambda: step(True), restore)
            row += f" {n_step:9d} {n_bare:9d} {n_step - n_bare:6d}"
        print(row, flush=True)


if __name__ == "__main__":
    main()
