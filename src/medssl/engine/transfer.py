"""Learning-rate schedules per parameter group: one rate for everything (pre-training, Scratch), or
fine-tuning that keeps what pre-training learned (:class:`~medssl.config.TransferCfg`).

The engine asks a schedule for its parameter groups once (:meth:`LrSchedule.param_groups`), then
before every optimiser step for each group's learning rate (:meth:`LrSchedule.lr`) and lets it
change which parameters train (:meth:`LrSchedule.on_step`). :class:`TransferSchedule` implements
the levers of METHODS.md section 6 ("Fine-tuning pre-trained weights"):

* discriminative learning rates: the pre-trained parameters at ``pretrained_lr_scale`` x the rate
  of the new ones (nnssl / OpenMind: 10x lower; mmsegmentation ``lr_mult=0.1``);
* layer-wise decay along the forward path (BEiT / MAE ``layer_decay`` 0.65-0.9);
* LP-FT (Kumar et al., ICLR 2022; fastai ``fine_tune``): the pre-trained parameters frozen
  (``requires_grad`` off, their BatchNorm statistics held) for a first phase, then everything;
* a linear warm-up of the whole net from the moment every part trains (nnssl: 5% of the steps).

Every rate is a pure function of the step: ``base(step) x scale(group) x gate(group, step) x
ramp(step)``, where ``base`` is :func:`~medssl.engine.trainer.lr_at` (cosine, ``optim.warmup_steps``).

Example::

    sched = TransferSchedule(cfg.optim, cfg.transfer, model, pretrained_names(model, report))
    engine = Engine(cfg.train, cfg.optim, out, schedule=sched)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Mapping
from typing import Any, Protocol

from torch import nn

from ..config import OptimCfg, TransferCfg
from ..errors import ConfigError

__all__ = [
    "LrSchedule",
    "SingleRate",
    "TransferSchedule",
    "build_schedule",
    "check_frozen_phase",
    "frozen_phase_steps",
    "layer_index",
    "pretrained_names",
    "transfer_lr",
    "warmup_ramp",
]


class LrSchedule(Protocol):
    """What the engine needs from a learning-rate schedule."""

    #: DDP must tolerate parameters without gradient (a frozen phase)
    find_unused_parameters: bool

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]: ...

    def lr(self, group: Mapping[str, Any], step: int, total: int) -> float: ...

    def on_step(self, step: int, total: int) -> None: ...


class SingleRate:
    """One parameter group at :func:`~medssl.engine.trainer.lr_at` (what the engine always did).

    Args:
        optim: the optimiser settings (``lr``, ``min_lr``, ``warmup_steps``, ``schedule``).
    """

    find_unused_parameters = False

    def __init__(self, optim: OptimCfg) -> None:
        self.optim = optim

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """One group ``all`` of every trainable parameter."""
        return [{"params": [p for p in model.parameters() if p.requires_grad], "name": "all", "lr_scale": 1.0}]

    def lr(self, group: Mapping[str, Any], step: int, total: int) -> float:
        """The cosine schedule with warm-up, the same for every group."""
        from .trainer import lr_at

        return lr_at(step, total, self.optim)

    def on_step(self, step: int, total: int) -> None:
        """Nothing changes during training."""


def pretrained_names(model: nn.Module, loaded: Collection[str]) -> set[str]:
    """The names of ``model``'s trainable parameters that were loaded from a checkpoint.

    Args:
        model: the network after :func:`~medssl.models.checkpoint.load_pretrained`.
        loaded: the state-dict keys loaded (``LoadReport.loaded``, ``load_report.json``'s ``loaded``).

    Returns:
        Parameter names (buffers such as BatchNorm statistics are not parameters); parameters kept
        frozen by the user (``requires_grad`` off) are left out.
    """
    keys = set(loaded)
    return {n for n, p in model.named_parameters() if n in keys and p.requires_grad}


_ENC = re.compile(r"^encoder\.stages\.(\d+)\.")
_DEC = re.compile(r"^decoder\.blocks\.(\d+)\.")


def layer_index(name: str, depth: int) -> int:
    """Position of a U-Net parameter along the forward path (0 = first encoder stage).

    Encoder stages ``0 .. depth-1``, the centre block ``depth``, decoder blocks ``depth+1 ..
    2 depth``, the head (and any unknown name) ``2 depth + 1``.

    Args:
        name: parameter name (``encoder.stages.2.0.0.weight``).
        depth: the U-Net's number of pooling stages.
    """
    m = _ENC.match(name)
    if m:
        return int(m.group(1))
    if name.startswith("encoder."):
        return depth
    m = _DEC.match(name)
    if m:
        return depth + 1 + int(m.group(1))
    return 2 * depth + 1


def frozen_phase_steps(cfg: TransferCfg, total: int) -> int:
    """Steps of the LP-FT phase in which the pre-trained parameters are frozen (0 for ``standard``).

    Args:
        cfg: the transfer settings.
        total: optimiser steps of the run.

    Returns:
        ``lpft_steps``, or ``round(lpft_fraction * total)`` at least 1; 0 when ``schedule`` is ``standard``.
    """
    if cfg.schedule != "lpft":
        return 0
    if cfg.lpft_steps is not None:
        return cfg.lpft_steps
    return max(1, round((cfg.lpft_fraction or 0.0) * total))


def warmup_ramp(step: int, start: int, total: int, fraction: float) -> float:
    """The whole-net warm-up factor: linear from ``1/W`` at ``start`` to 1 after ``W`` steps.

    ``W = max(1, round(fraction * (total - start)))``; 1 before ``start`` and when ``fraction`` is 0.
    """
    if fraction <= 0 or step < start:
        return 1.0
    width = max(1, round(fraction * (total - start)))
    return min(1.0, (step - start + 1) / width)


def transfer_lr(optim: OptimCfg, cfg: TransferCfg, step: int, total: int, scale: float, pretrained: bool) -> float:
    """The learning rate of one parameter group at ``step`` (a pure function).

    Args:
        optim: base schedule (``lr`` cosine to ``min_lr`` after ``warmup_steps``; the warm-up steps are
            ignored when ``cfg.warmup_fraction`` > 0, whose ramp replaces them).
        cfg: the transfer settings.
        step: optimiser step (0-based).
        total: steps of the run.
        scale: the group's multiplier (1 for new parts; ``pretrained_lr_scale`` x layer decay).
        pretrained: whether the group holds pre-trained parameters (0 during the LP-FT phase).

    Returns:
        ``lr_at(step) x scale x gate x ramp``.
    """
    from .trainer import lr_at

    frozen = frozen_phase_steps(cfg, total)
    if pretrained and step < frozen:
        return 0.0
    base = optim if cfg.warmup_fraction <= 0 else dataclasses.replace(optim, warmup_steps=0)
    return lr_at(step, total, base) * scale * warmup_ramp(step, frozen, total, cfg.warmup_fraction)


class TransferSchedule:
    """Fine-tuning with pre-trained parts: per-group rates, LP-FT and whole-net warm-up.

    Args:
        optim: the optimiser settings (base schedule).
        cfg: the transfer settings.
        model: the network (its parameters are grouped once; LP-FT toggles their ``requires_grad``).
        pretrained: names of the pre-trained trainable parameters (:func:`pretrained_names`).
        depth: the U-Net's depth (for ``layer_decay``).

    Raises:
        ConfigError: ``lpft`` without any pre-trained parameter to freeze.
    """

    def __init__(
        self, optim: OptimCfg, cfg: TransferCfg, model: nn.Module, pretrained: Collection[str], depth: int = 4
    ) -> None:
        if cfg.schedule == "lpft" and not pretrained:
            raise ConfigError("transfer.schedule: lpft needs pre-trained parts to freeze (set init)")
        self.optim, self.cfg, self.depth = optim, cfg, depth
        self.pretrained = set(pretrained)
        self.find_unused_parameters = cfg.schedule == "lpft"
        self._frozen_params = [p for n, p in model.named_parameters() if n in self.pretrained]
        self._frozen_norms = [
            m
            for name, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and any(f"{name}.{k}" in self.pretrained for k, _ in m.named_parameters(recurse=False))
        ]

    def group_scale(self, name: str) -> float:
        """The multiplier of a pre-trained parameter: ``pretrained_lr_scale x layer_decay ** (L - layer)``,
        ``L`` the last pre-trained layer."""
        last = max(layer_index(n, self.depth) for n in self.pretrained)
        return self.cfg.pretrained_lr_scale * self.cfg.layer_decay ** (last - layer_index(name, self.depth))

    def param_groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """Group ``new`` (scale 1), then the pre-trained parameters by multiplier (``pretrained``,
        or ``pretrained.L<layer>`` with layer decay); groups without trainable parameters are left out."""
        new = [p for n, p in model.named_parameters() if p.requires_grad and n not in self.pretrained]
        groups: list[dict[str, Any]] = [{"params": new, "name": "new", "lr_scale": 1.0, "pretrained": False}]
        by_layer: dict[int, list[tuple[str, nn.Parameter]]] = {}
        decay = self.cfg.layer_decay < 1
        for n, p in model.named_parameters():
            if n in self.pretrained:
                by_layer.setdefault(layer_index(n, self.depth) if decay else -1, []).append((n, p))
        for layer, named in sorted(by_layer.items()):
            name = f"pretrained.L{layer}" if decay else "pretrained"
            params = [p for _, p in named]
            groups.append(
                {"params": params, "name": name, "lr_scale": self.group_scale(named[0][0]), "pretrained": True}
            )
        return [g for g in groups if g["params"]]

    def lr(self, group: Mapping[str, Any], step: int, total: int) -> float:
        """:func:`transfer_lr` of the group."""
        return transfer_lr(
            self.optim, self.cfg, step, total, float(group.get("lr_scale", 1.0)), bool(group.get("pretrained"))
        )

    def on_step(self, step: int, total: int) -> None:
        """LP-FT: freeze the pre-trained parameters (and hold their BatchNorm statistics) before the
        unfreezing step, train them from it on."""
        if self.cfg.schedule != "lpft":
            return
        train = step >= frozen_phase_steps(self.cfg, total)
        for p in self._frozen_params:
            p.requires_grad_(train)
        for m in self._frozen_norms:
            m.train(train)

    def describe(self, total: int) -> str:
        """One line for the log: the groups' multipliers and the phases."""
        parts = [f"pre-trained parameters at {self.cfg.pretrained_lr_scale:g} x lr" if self.pretrained else "Scratch"]
        if self.cfg.layer_decay < 1:
            parts.append(f"layer decay {self.cfg.layer_decay:g}")
        k = frozen_phase_steps(self.cfg, total)
        if k:
            parts.append(f"LP-FT: frozen for the first {k} of {total} steps")
        if self.cfg.warmup_fraction > 0:
            parts.append(f"whole-net warm-up over {self.cfg.warmup_fraction:g} of the steps from step {k}")
        return "transfer: " + ", ".join(parts)


def check_frozen_phase(cfg: TransferCfg, total: int) -> None:
    """Refuse an LP-FT phase that would last the whole run.

    Raises:
        ConfigError: the frozen phase is as long as the run or longer (the pre-trained parts would never train).
    """
    k = frozen_phase_steps(cfg, total)
    if cfg.schedule == "lpft" and k >= total:
        key = "transfer.lpft_steps" if cfg.lpft_steps is not None else "transfer.lpft_fraction"
        raise ConfigError(f"{key}: the frozen phase ({k} steps) must be shorter than the run ({total} steps)")


def build_schedule(
    optim: OptimCfg, cfg: TransferCfg, model: nn.Module, loaded: Collection[str] | None, depth: int = 4
) -> tuple[LrSchedule, str]:
    """The schedule of a fine-tuning run and one line saying what it does.

    Args:
        optim: the optimiser settings.
        cfg: the transfer settings.
        model: the network, pre-trained weights loaded and user-frozen parts frozen.
        loaded: state-dict keys loaded from the checkpoint (None: no ``init``).
        depth: the U-Net's depth.

    Returns:
        ``(schedule, note)``: :class:`SingleRate` for the default settings (exactly the engine's
        historical behaviour, one parameter group), else a :class:`TransferSchedule`. Without
        pre-trained parameters (Scratch) the options for them have nothing to act on: only
        ``warmup_fraction`` applies, and the note says so.
    """
    if cfg.is_default():
        return SingleRate(optim), ""
    pretrained = pretrained_names(model, loaded or ())
    note = ""
    if not pretrained:
        cfg = dataclasses.replace(cfg, schedule="standard", lpft_steps=None, lpft_fraction=None)
        note = "transfer: no pre-trained parameters (no init): only transfer.warmup_fraction applies"
    return TransferSchedule(optim, cfg, model, pretrained, depth), note
