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

from medssl.methods.base import example_batch
from medssl.methods.catalog import list_methods
from medssl.models.unet import UNet
from medssl.registry import METHODS

# (method, training progress): GCL's second stage (local loss) runs late in training
CASES = [(m.name, 0.0) for m in list_methods()] + [("gcl", 0.99)]


@pytest.mark.parametrize("name,progress", CASES)
def test_training_step_reads_nothing_back_from_the_device(name: str, progress: float) -> None:
    torch.manual_seed(0)
    method = METHODS.get(name)(UNet(1, 2, 4))
    method.train()
    method.on_step(int(progress * 100), 100)
    batch = example_batch(4, 64)
    method(batch)["loss"].backward()  # on the CPU first: lazy state (queues, centres) exists
    method = method.to("meta")
    meta_batch = {k: v.to("meta") for k, v in batch.items()}
    out = method(meta_batch)
    assert out["loss"].device.type == "meta"
    out["loss"].backward()
    assert any(p.grad is not None and p.grad.device.type == "meta" for p in method.parameters())
