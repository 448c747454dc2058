"""Mixed precision and memory format: training-step time against fp32 in the same run.

For the fine-tuning step (U-Net + cross-entropy) and chosen pre-training methods, on one fixed batch,
it times forward + backward + SGD step in four variants and prints each one's speed-up over fp32
(> 1 = faster):

* ``fp32``: no autocast, contiguous tensors (the baseline);
* ``bf16``: ``torch.autocast(dtype=bfloat16)`` (``train.amp=bf16``);
* ``cl``: fp32 with channels-last model and input (``train.channels_last=true``);
* ``bf16+cl``: both.

It also prints whether this CPU has bfloat16 matrix units (AMX), where bf16 pays, and what
``train.amp=auto`` picks here (fp32 on every CPU: on the Hippocampus grid bf16 lowered the Dice,
``results/cpu/amp_grid_hippocampus.md``; bf16 or fp16 on CUDA).

    python benchmarks/bench_amp.py                                 # CPU, 128 px, batch 8, f = 32
    python benchmarks/bench_amp.py --device cuda --size 192 --batch 32
"""

from __future__ import annotations

import argparse

import torch
from bench_step import timed

from medssl.engine.trainer import autocast_dtype, cpu_has_bf16_matmul
from medssl.losses.segmentation import segmentation_loss
from medssl.methods.base import example_batch
from medssl.methods.catalog import list_methods
from medssl.models.unet import UNet
from medssl.registry import METHODS

VARIANTS = {
    "fp32": (None, False),
    "bf16": (torch.bfloat16, False),
    "cl": (None, True),
    "bf16+cl": (torch.bfloat16, True),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument(
        "--methods",
        default="finetune,simclr,pcl,supercl,macl",
        help="'finetune' and/or pre-training method names or patterns",
    )
    a = ap.parse_args()
    device = torch.device(a.device)
    auto = autocast_dtype("auto", device)
    where = (
        torch.cuda.get_device_name(0)
        if device.type == "cuda"
        else f"cpu, bf16 matrix units (AMX): {'yes' if cpu_has_bf16_matmul() else 'no'}"
    )
    print(
        f"device {device} ({where}), {a.size}px, batch {a.batch}, width {a.width}; "
        f"train.amp=auto here: {str(auto).replace('torch.', '') if auto else 'fp32'}"
    )
    print(
        f"{'step':<11}"
        + "".join(f" {v + ' ms':>11}" for v in VARIANTS)
        + "".join(f" {v + '/fp32':>12}" for v in list(VARIANTS)[1:])
    )
    names = [
        n
        for pat in a.methods.split(",")
        for n in (["finetune"] if pat == "finetune" else [i.name for i in list_methods(pat)])
    ]
    for name in names:
        times = {}
        for variant, (dtype, channels_last) in VARIANTS.items():
            torch.manual_seed(0)
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            if name == "finetune":
                net = UNet(1, 3, a.width).to(device).to(memory_format=fmt).train()
                image = torch.rand(a.batch, 1, a.size, a.size, device=device).contiguous(memory_format=fmt)
                label = torch.randint(0, 3, (a.batch, a.size, a.size), device=device)
                params, run = (
                    net.parameters(),
                    (lambda net=net, image=image, label=label: segmentation_loss(net(image), label)),
                )
            else:
                method = METHODS.get(name)(UNet(1, 2, a.width)).to(device).to(memory_format=fmt).train()
                method.on_step(0, 100)
                batch = {
                    k: (v.contiguous(memory_format=fmt) if v.ndim == 4 else v)
                    for k, v in example_batch(a.batch, a.size, device=device).items()
                }
                params = [p for p in method.parameters() if p.requires_grad]

                def run(method=method, batch=batch):
                    return method(batch)["loss"]

            opt = torch.optim.SGD(params, lr=1e-4, momentum=0.9)

            def step(run=run, opt=opt, dtype=dtype) -> None:
                with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                    loss = run()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            times[variant] = timed(step, device, 2, a.reps)
        base = times["fp32"]
        print(
            f"{name:<11}"
            + "".join(f" {t * 1e3:11.1f}" for t in times.values())
            + "".join(f" {base / times[v]:12.2f}" for v in list(VARIANTS)[1:]),
            flush=True,
        )


if __name__ == "__main__":
    main()
