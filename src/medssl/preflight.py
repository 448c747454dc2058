"""Checks that a run can start, made before anything is written into its run folder.

The configuration objects check each field's declared range when they are built
(:mod:`medssl.config`); the checks here need more than one field or the machine: does the prepared
store exist, is the device there, do the optimiser, schedule, precision and loss names exist, does
the pre-trained checkpoint resolve, are the method's arguments its own, is the batch large enough
for the method. :func:`medssl.finetune.finetune`, :func:`medssl.pretrain.pretrain` and
``medssl benchmark`` (for every cell, before the first one runs) call them.

Names are checked by calling the functions that use them on tiny dummies, so an optimiser, schedule
or loss added later is accepted without changes here.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from .errors import ConfigError, DataError

__all__ = [
    "check_device",
    "check_engine_settings",
    "check_finetune",
    "check_finetune_settings",
    "check_method_args",
    "check_pretrain",
    "check_pretrain_settings",
    "check_store_path",
]


def check_store_path(path: str) -> None:
    """``data.path`` names an existing prepared store (``plan.json`` in a folder).

    Raises:
        ConfigError: the path is empty.
        DataError: the path does not exist, is a file, or is not a prepared store.
    """
    if not path:
        raise ConfigError("data.path is empty: give the prepared store (--data)")
    p = Path(path)
    if not p.exists():
        raise DataError(p, "no such folder; give the prepared store written by `medssl prepare` (--data)")
    if not p.is_dir():
        raise DataError(p, "is a file; give the prepared store folder written by `medssl prepare` (--data)")
    if not (p / "plan.json").is_file():
        raise DataError(p, "not a prepared store (no plan.json); run `medssl prepare` first")


def check_device(name: str) -> Any:
    """The ``torch.device`` for ``train.device`` on this machine.

    Raises:
        ConfigError: the device is not available here (CUDA index out of range, no MPS).
    """
    import torch

    from .engine.trainer import resolve_device

    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError(
                "train.device: 'mps' asked for but this PyTorch has no usable MPS device; use --device cpu"
            )
        return torch.device("mps")
    try:
        dev = resolve_device(name)
    except RuntimeError as e:
        raise ConfigError(f"train.device: {name!r} cannot be used ({' '.join(str(e).split())[:120]})") from None
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(
            f"train.device: {name!r} asked for but this machine has {torch.cuda.device_count()} CUDA device(s)"
        )
    return dev


def check_engine_settings(cfg: Any) -> Any:
    """Device, precision, optimiser and schedule of ``cfg.train`` / ``cfg.optim``; returns the device."""
    import torch

    from .engine.trainer import autocast_dtype, build_optimizer, lr_at

    dev = check_device(cfg.train.device)
    autocast_dtype(cfg.train.amp, dev)
    build_optimizer([torch.nn.Parameter(torch.zeros(1))], cfg.optim)
    lr_at(0, 10, cfg.optim)
    if cfg.train.logger not in ("csv", "tensorboard"):
        raise ConfigError(f"train.logger: expected csv or tensorboard, got {cfg.train.logger!r}")
    return dev


def check_finetune_settings(cfg: Any) -> None:
    """The fine-tuning settings that need no data: protocol, split kind, device, optimiser, schedule, loss.

    Raises:
        ConfigError: the first problem, as one line naming the setting.
    """
    import torch

    from .losses.segmentation import segmentation_loss
    from .recipes import resolve_recipe

    if cfg.protocol not in ("paper", "standard"):
        raise ConfigError(f"protocol: expected paper or standard, got {cfg.protocol!r}")
    if cfg.data.split not in ("seeded", "paper"):
        raise ConfigError(f"data.split: expected seeded or paper, got {cfg.data.split!r}")
    if cfg.protocol == "standard" and cfg.data.val_fraction == 0:
        raise ConfigError(
            "data.val_fraction: 0 leaves no validation patient, but the standard protocol selects the best epoch "
            "on validation; give a fraction > 0 (at least one patient is used), or --protocol paper"
        )
    cfg = resolve_recipe(cfg)
    check_engine_settings(cfg)
    if cfg.model.name == "unet":
        from .run_checks import UNET_PARTS, check_freeze_names

        check_freeze_names(list(cfg.freeze), UNET_PARTS)
    segmentation_loss(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long), cfg.loss, cfg.dice_mode)


def check_finetune(cfg: Any) -> list[str]:
    """Everything :func:`medssl.finetune.finetune` can check before it writes the run folder.

    Returns:
        Warning lines for the user (an image size far beyond the store's slices).

    Raises:
        ConfigError, DataError: the first problem, as one line naming the setting or file.
    """
    from .run_checks import check_environment

    check_environment()
    check_finetune_settings(cfg)
    check_store_path(cfg.data.path)
    if cfg.init:
        from .models.checkpoint import resolve_checkpoint

        resolve_checkpoint(cfg.init)
    return _store_notes(cfg, None, views=1, labels=True)


def _store_notes(cfg: Any, default_size: int | None, views: int, labels: bool) -> list[str]:
    """Checks against the prepared store and the machine: its labels (``labels``: fine-tuning's targets)
    and the memory estimate of a training step (refused when it cannot fit); returns warning lines."""
    from .data.store import SliceStore
    from .run_checks import check_memory, check_store_labels

    store = SliceStore(cfg.data.path)
    if labels:
        check_store_labels(store)
    size = cfg.data.image_size or default_size or store.patch_size
    largest = max((max(c.shape[1:]) for c in store.cases if len(c.shape) == 3), default=None)
    note = check_memory(cfg, int(size), check_device(cfg.train.device), views, largest)
    return [note] if note else []


def check_method_args(method: str, cls: type, args: dict[str, Any]) -> None:
    """Every key of ``method_args`` is an argument of the method's constructor.

    Raises:
        ConfigError: ``method_args.<key>: not an argument of <method>; its arguments: ...``.
    """
    params = inspect.signature(cls).parameters  # the constructor's arguments, without ``self``
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = [
        n for n, p in params.items() if n not in ("self", "backbone") and p.kind is not inspect.Parameter.VAR_POSITIONAL
    ]
    for key in args:
        if key not in known:
            raise ConfigError(
                f"method_args.{key}: not an argument of {method}; its arguments: {', '.join(known) or 'none'}"
            )


def check_pretrain_settings(cfg: Any) -> None:
    """The pre-training settings that need no data: method, variant, its arguments, batch size, device...

    Raises:
        ConfigError: the first problem, as one line naming the setting.
    """
    from .methods.arg_checks import check_method_arg_values
    from .methods.catalog import load_all_methods
    from .registry import METHODS

    load_all_methods()
    try:
        cls = METHODS.get(cfg.method)
    except KeyError as e:
        raise ConfigError(f"method: {e.args[0]}") from None
    if cfg.model.name != "unet":
        raise ConfigError("model.name: pre-training supports model.name=unet only")
    if cfg.variant and cfg.variant not in cls.variants:
        raise ConfigError(
            f"variant: method '{cfg.method}' has no variant '{cfg.variant}' (known: {', '.join(sorted(cls.variants)) or 'none'})"
        )
    check_method_args(cfg.method, cls, cfg.method_args)
    check_method_arg_values(cfg.method, cls, cfg.method_args)  # temperatures > 0, thresholds in their domain...
    need = int(getattr(cls, "min_batch_size", 1))
    if cfg.data.batch_size < need:
        raise ConfigError(
            f"data.batch_size: {cfg.method} needs at least {need} images per batch and process "
            f"(its loss compares the images of a batch), got {cfg.data.batch_size}"
        )
    check_engine_settings(cfg)


def check_pretrain(cfg: Any) -> list[str]:
    """Everything :func:`medssl.pretrain.pretrain` can check before it writes the run folder.

    Returns:
        Warning lines for the user (an image size far beyond the store's slices).

    Raises:
        ConfigError, DataError: the first problem, as one line naming the setting or file.
    """
    from .data.store import SliceStore
    from .registry import METHODS
    from .run_checks import check_environment

    check_environment()
    check_pretrain_settings(cfg)
    check_store_path(cfg.data.path)
    store = SliceStore(cfg.data.path)
    slices = sum(c.num_slices for c in store.cases)
    if slices < cfg.data.batch_size:
        raise ConfigError(
            f"data.batch_size: {cfg.data.batch_size} is larger than the {slices} slices of {cfg.data.path}"
        )
    views = max(2, len(getattr(METHODS.get(cfg.method), "views", ())))
    return _store_notes(cfg, 128, views, labels=False)
