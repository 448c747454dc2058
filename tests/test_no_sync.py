"""No host-device synchronisation inside a training step, checked without a GPU.

A tensor on PyTorch's ``meta`` device has shapes but no values: ``.item()``, ``int(t)``, ``bool(t)``,
``torch.equal``, ``unique``, ``nonzero`` or boolean-mask indexing on it raise. Every method's forward and
backward run on ``meta`` here, so a step that reads a device value back to the host (which on CUDA
makes the CPU wait for the GPU) fails this test. Randomness from CPU generators and shape arithmetic
are allowed: they never touch the device.
"""
from __future__ import annotations

import pytest
import torch

from medssl.methods.catalog import list_methods
from medssl.models.unet import UNet
from medssl.registry import METHODS

# (method, training progress): GCL's second stage (local loss) runs late in training
CASES = [(m.name, 0.0) for m in list_methods()] + [("gcl", 0.99)]


def _batch(b: int = 4, size: int = 64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    img = torch.rand(b, 1, size, size, generator=g)
    batch = {k: (img + 0.05 * torch.randn(img.shape, generator=g)).clamp(0, 1) for k in ("v1", "v2", "v3", "v4", "neighbor")}
    batch["image"] = img
    batch["position"] = torch.linspace(0.05, 1.0, b)
    batch["partition"] = torch.arange(b) % 4
    batch["volume"] = torch.arange(b) // 2
    cell = size // 8
    sp = (torch.arange(size)[:, None] // cell) * 8 + torch.arange(size)[None] // cell
    batch["superpixels"] = sp.expand(b, size, size).clone()
    return batch


@pytest.mark.parametrize("name,progress", CASES)
def test_training_step_reads_nothing_back_from_the_device(name: str, progress: float) -> None:
    torch.manual_seed(0)
    method = METHODS.get(name)(UNet(1, 2, 4))
    method.train()
    method.on_step(int(progress * 100), 100)
    batch = _batch()
    method(batch)["loss"].backward()  # on the CPU first: lazy state (queues, centres) exists
    method = method.to("meta")
    meta_batch = {k: v.to("meta") for k, v in batch.items()}
    out = method(meta_batch)
    assert out["loss"].device.type == "meta"
    out["loss"].backward()
    assert any(p.grad is not None and p.grad.device.type == "meta" for p in method.parameters())
