"""Throughput of SuperCL and MACL pre-training steps against the papers, lever by lever.

The MACL paper reports 285 s per epoch on one A100 at 512 px, batch 16 (about 61 slices/s). For
each method and each lever (cumulative: fp32 -> bf16 autocast -> + channels-last -> + torch.compile
of the whole step's network and loss -> + CUDA graphs through ``mode="reduce-overhead"``), on one
fixed synthetic batch, this prints:

* images/s of the full training step (forward with every loss, backward, optimiser step), median of
  ``--reps`` after warm-up, and the peak memory;
* the step's floating-point work (``torch.utils.flop_counter``, counted once in fp32) and, with a
  known peak (``--peak-tflops``, or looked up from the device name: H100/H200 989, A100 312 dense
  bf16 TFLOP/s), the share of the device's peak that the step reaches;
* whether the lever changes the computation: the first step's loss and the cosine of its gradient
  with the fp32 baseline's, from the same weights and batch (a lever that is only a speed-up keeps
  the loss within numerical noise and the cosine near 1);

then, for the fastest variant, images/s over ``--batches`` (the largest batch that fits), and with
``--profile`` a profiler table of where one step's time goes.

    python benchmarks/gpu_throughput.py --device cuda                          # 512 px, batch 16, f = 32
    python benchmarks/gpu_throughput.py --device cuda --batches 16 32 64 --profile
    python benchmarks/gpu_throughput.py --size 64 --batch 4 --width 8 --reps 2  # CPU, tiny (the test)

Goal of issue 14 on one H100/H200: MACL >= 600 and SuperCL >= 400 images/s at 512 px, peak memory
under 8 GB, the same losses.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch

from medssl.methods.base import example_batch
from medssl.methods.catalog import list_methods, load_all_methods
from medssl.models.unet import UNet
from medssl.registry import METHODS

#: dense bf16 tensor-core peak, TFLOP/s, by a substring of the device name
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}

#: the levers, cumulative: (name, autocast dtype, channels_last, compile mode or None)
VARIANTS: dict[str, tuple[torch.dtype | None, bool, str | None]] = {
    "fp32": (None, False, None),
    "bf16": (torch.bfloat16, False, None),
    "bf16+cl": (torch.bfloat16, True, None),
    "bf16+cl+compile": (torch.bfloat16, True, "default"),
    "bf16+cl+cudagraphs": (torch.bfloat16, True, "reduce-overhead"),
}


@dataclass
class StepResult:
    ms: float
    images_per_s: float
    peak_mib: float
    loss: float
    grad_cos: float
    loss_rel: float


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def build(name: str, width: int, device: torch.device, channels_last: bool, seed: int = 0) -> torch.nn.Module:
    """The method on a seeded U-Net of base width ``width``, in training mode."""
    load_all_methods()
    torch.manual_seed(seed)
    method = METHODS.get(name)(UNet(1, 2, width)).to(device)
    if channels_last:
        method = method.to(memory_format=torch.channels_last)
    method.train()
    method.on_step(0, 100)
    return method


def batch_for(size: int, batch: int, device: torch.device, channels_last: bool) -> dict[str, torch.Tensor]:
    b = example_batch(batch, size, device=device)
    if channels_last:
        b = {k: v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v for k, v in b.items()}
    return b


def make_step(
    method: torch.nn.Module, batch: dict, device: torch.device, dtype: torch.dtype | None, compile_mode: str | None
):
    """One training step (forward with losses, backward, SGD step); returns the loss tensor."""
    forward = torch.compile(method, mode=compile_mode) if compile_mode else method
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)

    def step(update: bool = True) -> torch.Tensor:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = forward(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if update:
            opt.step()
        return loss.detach()

    return step


def grads(method: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.detach().float().flatten() for p in method.parameters() if p.grad is not None])


def step_flops(name: str, width: int, size: int, batch: int, device: torch.device) -> float:
    """Floating-point operations of one fp32 step (forward + backward), counted by PyTorch."""
    from torch.utils.flop_counter import FlopCounterMode

    method = build(name, width, device, False)
    step = make_step(method, batch_for(size, batch, device, False), device, None, None)
    with FlopCounterMode(display=False) as counter:
        step(update=False)
    return float(counter.get_total_flops())


def measure(
    name: str,
    variant: str,
    a: argparse.Namespace,
    device: torch.device,
    batch_size: int,
    reference: tuple[float, torch.Tensor] | None,
) -> tuple[StepResult, tuple[float, torch.Tensor]]:
    """Time one variant; also returns its first step's loss and gradient (the next reference)."""
    dtype, cl, mode = VARIANTS[variant]
    method = build(name, a.width, device, cl)
    batch = batch_for(a.size, batch_size, device, cl)
    step = make_step(method, batch, device, dtype, mode)
    # the first step, from the seeded weights: its loss and gradient against the fp32 baseline's
    loss = float(step(update=False))
    g = grads(method)
    if reference is None:
        cos, rel = 1.0, 0.0
    else:
        ref_loss, ref_g = reference
        cos = float(torch.nn.functional.cosine_similarity(g, ref_g.to(g.device), dim=0))
        rel = abs(loss - ref_loss) / max(abs(ref_loss), 1e-12)
    for _ in range(a.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(a.reps):
        _sync(device)
        t = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t)
    ms = statistics.median(times) * 1e3
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
    return StepResult(ms, batch_size / ms * 1e3, peak, loss, cos, rel), (loss, g.cpu())


def profile_table(name: str, variant: str, a: argparse.Namespace, device: torch.device, rows: int = 15) -> str:
    from torch.profiler import ProfilerActivity, profile

    dtype, cl, mode = VARIANTS[variant]
    method = build(name, a.width, device, cl)
    step = make_step(method, batch_for(a.size, a.batch, device, cl), device, dtype, mode)
    for _ in range(max(1, a.warmup)):
        step()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(3):
            step()
        _sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def peak_tflops(a: argparse.Namespace, device: torch.device) -> float | None:
    if a.peak_tflops:
        return a.peak_tflops
    if device.type != "cuda":
        return None
    dev = torch.cuda.get_device_name(0)
    return next((v for k, v in PEAK_TFLOPS.items() if k in dev), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--methods", default="supercl,macl")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument(
        "--batches", nargs="*", type=int, default=[], help="images/s of the fastest variant at these batches"
    )
    ap.add_argument("--peak-tflops", type=float, default=None, help="the device's dense peak (default: by device name)")
    ap.add_argument("--profile", action="store_true", help="a profiler table of the fastest variant's step")
    a = ap.parse_args()
    device = torch.device(a.device)
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if device.type != "cuda":
        variants = [v for v in variants if "cudagraphs" not in v]
    peak = peak_tflops(a, device)
    name_dev = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    print(f"device {name_dev}, {a.size}px, batch {a.batch}, width {a.width}, peak {peak or 'unknown'} TFLOP/s")
    print(
        f"{'method':<8} {'variant':<19} {'ms':>8} {'img/s':>8} {'x fp32':>7} {'TFLOP/s':>8} {'% peak':>7} "
        f"{'peak MiB':>9} {'loss':>9} {'loss rel':>9} {'grad cos':>9}"
    )
    for name in [i.name for pat in a.methods.split(",") for i in list_methods(pat.strip())]:
        flops = step_flops(name, a.width, a.size, a.batch, device)
        results: dict[str, StepResult] = {}
        reference = None
        for v in variants:
            try:
                r, first = measure(name, v, a, device, a.batch, reference)
            except Exception as e:  # a lever that fails here (no compiler, no CUDA graphs) is reported, not fatal
                print(f"{name:<8} {v:<19} failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}")
                continue
            reference = reference or first
            results[v] = r
            base = results.get("fp32", r)
            tf = flops / (r.ms / 1e3) / 1e12
            share = f"{100 * tf / peak:7.1f}" if peak else f"{'-':>7}"
            print(
                f"{name:<8} {v:<19} {r.ms:8.1f} {r.images_per_s:8.1f} {base.ms / r.ms:7.2f} {tf:8.2f} {share} "
                f"{r.peak_mib:9.0f} {r.loss:9.4f} {r.loss_rel:9.1e} {r.grad_cos:9.5f}",
                flush=True,
            )
        if not results:
            continue
        best = max(results, key=lambda v: results[v].images_per_s)
        print(f"{name}: fastest {best}, {results[best].images_per_s:.1f} images/s; step {flops / 1e9:.1f} GFLOP")
        for b in a.batches:
            try:
                r, _ = measure(name, best, a, device, b, None)
                print(f"{name:<8} {best:<19} batch {b:>4}: {r.images_per_s:8.1f} img/s, peak {r.peak_mib:.0f} MiB")
            except torch.cuda.OutOfMemoryError:
                print(f"{name:<8} {best:<19} batch {b:>4}: out of memory")
                break
        if a.profile:
            print(profile_table(name, best, a, device))


if __name__ == "__main__":
    main()
