"""Measured memory of a U-Net training step against medssl's estimate (``medssl.run_checks``).

Each configuration runs in a fresh process: two Adam steps of the U-Net (cross-entropy, CPU, one
thread); the growth of the peak resident set size over the process's size before the steps is the
measured cost. The factor ``measured / (batch x width x size**2 x 4 bytes)`` is what
``_ACTIVATION_FACTOR`` (48) must cover; ``estimate / (measured + framework)`` shows the margin.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_memory_estimate.py > benchmarks/results/cpu/bench_memory_estimate.txt
"""

from __future__ import annotations

import subprocess
import sys

CONFIGS = [(8, 256, 4), (16, 256, 4), (8, 512, 2), (32, 128, 4), (32, 256, 2)]

CHILD = r"""
import resource, sys, torch
torch.set_num_threads(1)
from medssl.models.unet import UNet
w, S, B = (int(v) for v in sys.argv[1:4])
m = UNet(1, 4, w, 4)
opt = torch.optim.Adam(m.parameters())
x = torch.randn(B, 1, S, S)
y = torch.randint(0, 4, (B, S, S))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(2):
    loss = torch.nn.functional.cross_entropy(m(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def main() -> None:
    from medssl.run_checks import _FRAMEWORK_BYTES, estimate_training_bytes

    print("width  size  batch  measured_MB  factor  estimate_MB  estimate/(measured+framework)")
    for w, s, b in CONFIGS:
        out = subprocess.run([sys.executable, "-c", CHILD, str(w), str(s), str(b)], capture_output=True, text=True)
        measured = int(out.stdout.strip())
        est = estimate_training_bytes(s, b, w)
        factor = measured / (b * w * s * s * 4)
        print(
            f"{w:5d}  {s:4d}  {b:5d}  {measured / 1e6:11.1f}  {factor:6.1f}  {est / 1e6:11.1f}  "
            f"{est / (measured + _FRAMEWORK_BYTES):.2f}"
        )


if __name__ == "__main__":
    main()
