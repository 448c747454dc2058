"""Speed-ups that must not change the computation: a training step's loss and gradients with and
without each lever of ``benchmarks/gpu_throughput.py`` (channels-last, bf16 autocast, torch.compile),
from the same weights and batch, for the two flagship methods.

torch.compile is exercised where it is quick (``MEDSSL_TEST_COMPILE=1``: the GPU check script sets
it); on a 2-core CPU its inductor build takes minutes per method.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from gpu_throughput import VARIANTS, batch_for, build, grads, make_step

from medssl.methods.catalog import load_all_methods

load_all_methods()

SIZE, BATCH, WIDTH = 32, 4, 4


def first_step(
    name: str, dtype: torch.dtype | None, channels_last: bool, compile_mode: str | None
) -> tuple[float, torch.Tensor]:
    """Loss and flattened gradient of one step from the seeded weights (no optimiser update)."""
    device = torch.device("cpu")
    method = build(name, WIDTH, device, channels_last)
    step = make_step(method, batch_for(SIZE, BATCH, device, channels_last), device, dtype, compile_mode)
    loss = float(step(update=False))
    return loss, grads(method).cpu()


def _compare(name: str, lever: tuple, loss_rel: float, min_cos: float) -> None:
    ref_loss, ref_g = first_step(name, None, False, None)
    loss, g = first_step(name, *lever)
    assert abs(loss - ref_loss) <= loss_rel * abs(ref_loss), (lever, loss, ref_loss)
    cos = float(torch.nn.functional.cosine_similarity(g, ref_g, dim=0))
    assert cos >= min_cos, (lever, cos)


def test_the_levers_tested_are_the_benchmarks():
    assert VARIANTS["bf16+cl"] == (torch.bfloat16, True, None)
    assert VARIANTS["bf16+cl+compile"] == (torch.bfloat16, True, "default")


@pytest.mark.parametrize("name", ["supercl", "macl"])
def test_channels_last_is_the_same_step(name: str) -> None:
    # only the memory layout changes: fp32 arithmetic in another order
    _compare(name, (None, True, None), loss_rel=1e-5, min_cos=0.99999)


@pytest.mark.parametrize("name", ["supercl", "macl"])
def test_bf16_autocast_stays_within_bf16_noise(name: str) -> None:
    # bf16 keeps 8 bits of mantissa: the loss moves by well under 1%, the gradient keeps its direction
    _compare(name, (torch.bfloat16, False, None), loss_rel=1e-2, min_cos=0.9)


@pytest.mark.parametrize("name", ["supercl", "macl"])
def test_compile_is_the_same_step(name: str) -> None:
    if os.environ.get("MEDSSL_TEST_COMPILE") != "1":
        pytest.skip(
            "torch.compile builds for minutes on a small CPU; set MEDSSL_TEST_COMPILE=1 (benchmarks/gpu_check.sh does)"
        )
    _compare(name, (None, False, "default"), loss_rel=1e-4, min_cos=0.9999)
