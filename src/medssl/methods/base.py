"""The contract between a pre-training method and the one training engine.

A method is a plain ``nn.Module`` built around a :class:`~medssl.models.UNet` backbone:

* ``forward(batch) -> dict[str, Tensor]`` returns named scalar losses; ``"loss"`` is the total
  that the engine back-propagates, every other entry is logged separately (detached by the engine).
* ``momentum_pairs()`` lists ``(online, target)`` module pairs; the engine updates each target as
  ``t = m * t + (1 - m) * o`` with ``m = self.momentum(progress)`` after every optimiser step.
* ``on_step(step, max_steps)`` is called before each step for schedules (teacher temperature,
  two-stage methods such as GCL and DiRA).
* Class attributes declare what the data pipeline must produce (``views``, ``needs``) and what
  fine-tuning loads (``pretrains``).

Batch keys produced by :mod:`medssl.data.views`:

* ``v1``, ``v2``: (B, 1, H, W) intensity-only views, pixel-aligned with each other and with ``image``;
* ``v3``, ``v4``: (B, 1, H, W) spatial transforms of ``v1`` / ``v2`` (mirror, p=0.67 elastic/rotation/scale);
* ``image``: (B, 1, H, W) the un-augmented slice in [0, 1];
* ``position``: (B,) float, (slice index + 1) / slices of its volume (for 2D data sets a distinct
  negative value per sample, so that positional positives reduce to the image's own views);
* ``partition``: (B,) long, which of ``n`` equal z-partitions the slice lies in (GCL);
* ``volume``: (B,) long, index of the volume the slice comes from;
* ``neighbor``: (B, 1, H, W) an augmented view of an adjacent slice (if ``"neighbor"`` in needs);
* ``superpixels``: (B, H, W) long superpixel labels of ``v1`` (if ``"superpixels"`` in needs);
* ``superpixels2``: (B, H, W) labels of ``v2`` (online superpixel mode only, as the reference code).
"""

from __future__ import annotations

import copy
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..models.unet import UNet

__all__ = ["Method", "cosine_schedule", "deactivate_requires_grad", "example_batch", "momentum_copy", "update_momentum"]


class Method(nn.Module):
    """Base class of every pre-training method (see the module docstring for the contract)."""

    #: parts of the U-Net that pre-training trains and fine-tuning loads: "encoder", "decoder"
    pretrains: ClassVar[tuple[str, ...]] = ("encoder",)
    #: views the data pipeline must produce (subset of v1..v4; v3 implies v1, v4 implies v2)
    views: ClassVar[tuple[str, ...]] = ("v3", "v4")
    #: extra batch fields: "superpixels", "neighbor"
    needs: ClassVar[frozenset[str]] = frozenset()
    #: named option sets where paper and code disagree, e.g.
    #: ``{"paper": {"method": {"t_fix": "identity"}, "optim": {"lr": 0.1}}}``; applied by ``--variant``
    variants: ClassVar[dict[str, dict[str, dict]]] = {}
    #: smallest per-process batch the loss is defined for (in-batch negatives, BatchNorm in heads);
    #: checked before a run starts (``medssl.preflight``). At 1 every method fails or learns nothing.
    min_batch_size: ClassVar[int] = 2

    def view_options(self) -> dict:
        """Keyword options for the multi-view transform (e.g. MACL's ``{"t_fix": "identity"}``)."""
        return {}

    def __init__(self, backbone: UNet) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, target) pairs the engine updates by EMA after each optimiser step."""
        return []

    def momentum(self, progress: float) -> float:
        """EMA coefficient at training progress in [0, 1] (only used when ``momentum_pairs`` is non-empty)."""
        return 0.99

    def on_step(self, step: int, max_steps: int) -> None:
        """Hook called by the engine before each training step."""

    def bare_forward(self, batch: dict[str, Tensor]) -> Tensor:
        """The same network passes as ``forward`` with a trivial loss (sum of output means).

        Used by ``benchmarks/bench_step.py`` to measure the method's overhead over the bare cost
        of its forward+backward passes. Methods should override it; the default runs ``forward``.
        """
        return self.forward(batch)["loss"]

    def pretrained_state_dict(self) -> dict[str, Tensor]:
        """The backbone keys that fine-tuning loads (``encoder.*`` and, if declared, ``decoder.*``)."""
        prefixes = tuple(p + "." for p in self.pretrains)
        return {k: v for k, v in self.backbone.state_dict().items() if k.startswith(prefixes)}


def deactivate_requires_grad(module: nn.Module) -> nn.Module:
    """Freeze every parameter of ``module`` (target networks)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def momentum_copy(module: nn.Module) -> nn.Module:
    """A frozen deep copy of ``module`` to serve as its EMA target."""
    return deactivate_requires_grad(copy.deepcopy(module))


@torch.no_grad()
def update_momentum(online: nn.Module, target: nn.Module, m: float) -> None:
    """``target = m * target + (1 - m) * online`` for parameters; BatchNorm running buffers are copied.

    Buffers are copied rather than averaged: the target's statistics then follow the online network,
    which is what MoCo/BYOL implementations that re-use the online BN do in effect.
    """
    for po, pt in zip(online.parameters(), target.parameters()):
        pt.mul_(m).add_(po.detach(), alpha=1.0 - m)
    for bo, bt in zip(online.buffers(), target.buffers()):
        bt.copy_(bo)


def cosine_schedule(step: float, max_steps: int, start: float, end: float) -> float:
    """Cosine interpolation from ``start`` (step 0) to ``end`` (step ``max_steps``)."""
    import math

    if max_steps <= 0:
        return end
    t = min(max(step / max_steps, 0.0), 1.0)
    return end - (end - start) * (math.cos(math.pi * t) + 1) / 2


def example_batch(
    batch_size: int = 4, size: int = 64, seed: int = 0, device: torch.device | str = "cpu"
) -> dict[str, Tensor]:
    """A synthetic batch with every key of the contract above, for trying a method without data.

    Views are the same random image plus small noise (in [0, 1]); positions are evenly spaced; two
    slices per volume; four partitions; superpixels are an 8 x 8 grid of square cells. Used by the
    step benchmark and the tests, and handy when writing a new method.

    Args:
        batch_size: B.
        size: H = W (a multiple of 8).
        seed: seed of the CPU generator.
        device: where the tensors go.

    Returns:
        ``{"v1", "v2", "v3", "v4", "neighbor", "image"}`` (B, 1, H, W) float, ``"position"`` (B,)
        float, ``"partition"``, ``"volume"`` (B,) long, ``"superpixels"`` (B, H, W) long.
    """
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(batch_size, 1, size, size, generator=g)
    batch = {
        k: (img + 0.05 * torch.randn(img.shape, generator=g)).clamp(0, 1) for k in ("v1", "v2", "v3", "v4", "neighbor")
    }
    batch["image"] = img
    batch["position"] = torch.linspace(0.05, 1.0, batch_size)
    batch["partition"] = torch.arange(batch_size) % 4
    batch["volume"] = torch.arange(batch_size) // 2
    cell = max(size // 8, 1)
    grid = (torch.arange(size)[:, None] // cell) * 8 + torch.arange(size)[None] // cell
    batch["superpixels"] = grid.expand(batch_size, size, size).clone()
    return {k: v.to(device) for k, v in batch.items()}
