"""Checks of a run's settings against the model and the machine, made before its run folder is created.

* ``freeze`` and ``init_parts`` name real parts of the model (the U-Net's ``encoder``, ``decoder``,
  ``head``; a MONAI network's top-level modules), and freezing leaves something to train;
* a frozen part that was not pre-trained (``freeze: [encoder]`` with ``--init none``) trains on
  random features: said in a warning line;
* the memory of a training step, estimated from the image size, batch size, width and depth, must fit
  in the memory available (RAM on the CPU, free memory on a GPU); an image size far beyond the
  store's slices is said in a warning line;
* ``MEDSSL_PROGRESS`` holds a known value.

The estimate (:func:`estimate_training_bytes`) is calibrated on this U-Net: the peak RSS of two Adam
steps at widths 8-32, sizes 128-512, batches 2-4 grew by 35.5-45.9 x B x width x size**2 x 4 bytes,
parameters included (``benchmarks/bench_memory_estimate.py``, output in
``benchmarks/results/cpu/bench_memory_estimate.txt``); it takes 48 per image and view, plus the
parameters, their gradients and two Adam moments, plus 0.5 GB for the framework.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from .errors import ConfigError

__all__ = [
    "UNET_PARTS",
    "available_memory",
    "check_environment",
    "check_freeze",
    "check_freeze_names",
    "check_init_parts",
    "check_memory",
    "check_store_labels",
    "estimate_training_bytes",
    "frozen_random_parts",
    "superpixel_cache_notice",
    "warn_frozen_random",
]

#: the top-level parts of medssl's U-Net
UNET_PARTS: tuple[str, ...] = ("encoder", "decoder", "head")

#: activation floats kept per image and view, in units of width x size**2 (measured, see the module docstring)
_ACTIVATION_FACTOR = 48
_FRAMEWORK_BYTES = 512 * 2**20
_GB = 2**30


def _model_parts(model: Any) -> list[str]:
    return [name for name, sub in model.named_children() if any(True for _ in sub.parameters())]


def check_freeze_names(freeze: Sequence[str], parts: Sequence[str]) -> None:
    """``freeze`` names parts of the model, each once, and leaves at least one part to train.

    Args:
        freeze: ``cfg.freeze``.
        parts: the model's parts that hold parameters.

    Raises:
        ConfigError: an unknown or repeated part, or every part frozen.
    """
    for i, part in enumerate(freeze):
        if part not in parts:
            raise ConfigError(f"freeze: the model has no part {part!r}; its parts: {', '.join(parts)}")
        if part in freeze[:i]:
            raise ConfigError(f"freeze: {part!r} is listed twice")
    if parts and set(parts) <= set(freeze):
        raise ConfigError(f"freeze: every part of the model ({', '.join(parts)}) is frozen: nothing would train")


def check_freeze(cfg: Any, model: Any) -> None:
    """:func:`check_freeze_names` against the parts of the built ``model``."""
    check_freeze_names(list(cfg.freeze), _model_parts(model))


def check_init_parts(init_parts: Sequence[str] | None, declared: Sequence[str] | None, init: Any, method: Any) -> None:
    """``init_parts`` asks only for parts the ``--init`` checkpoint pre-trained (when it declares them).

    Raises:
        ConfigError: ``init_parts: the checkpoint ... pre-trained only encoder (simclr): it has no decoder``.
    """
    if not init_parts or not declared:
        return
    absent = [p for p in init_parts if p not in declared]
    if absent:
        raise ConfigError(
            f"init_parts: the checkpoint {init} pre-trained only {', '.join(declared)} ({method or 'unknown method'}): "
            f"it has no {', '.join(absent)} to load; use --set init_parts=[{','.join(declared)}] or leave it unset"
        )


def frozen_random_parts(freeze: Sequence[str], loaded: Sequence[str]) -> list[str]:
    """The frozen parts of the U-Net that keep their random initialisation (``head`` excluded: never pre-trained)."""
    return [p for p in freeze if p in ("encoder", "decoder") and p not in loaded]


def warn_frozen_random(cfg: Any, loaded: Sequence[str], say: Callable[[str], None]) -> None:
    """Say (one line) when a frozen part is not pre-trained: the run trains on random features."""
    random = frozen_random_parts(list(cfg.freeze), loaded)
    if random:
        why = "no --init" if not cfg.init else f"init_parts / the checkpoint load only {', '.join(loaded) or 'nothing'}"
        say(
            f"warning: freeze: {', '.join(random)} frozen but not pre-trained ({why}): it keeps its random "
            "initialisation and the rest of the network trains on random features; load it from a checkpoint "
            "that pre-trained it (--init), or unfreeze it"
        )


def estimate_training_bytes(
    image_size: int, batch_size: int, base_width: int, depth: int = 4, in_channels: int = 1, views: int = 1
) -> int:
    """Memory (bytes) of one training step of the U-Net: activations, parameters, gradients, Adam state.

    Args:
        image_size: patch / view size in pixels.
        batch_size: images per step and process.
        base_width: the U-Net's first width.
        depth: its number of poolings.
        in_channels: input channels.
        views: images forwarded per sample (pre-training methods forward 2-4 views).

    Returns:
        The estimate in bytes (see the module docstring for how it was measured).
    """
    activations = _ACTIVATION_FACTOR * batch_size * views * base_width * image_size**2 * 4
    inputs = batch_size * views * in_channels * image_size**2 * 4
    params = 30 * base_width**2 * 4**depth
    return int(activations + inputs + 4 * params * 4 + _FRAMEWORK_BYTES)


def available_memory(device: Any) -> int | None:
    """Bytes available for a run on ``device``: free GPU memory, or ``MemAvailable`` (Linux); None if unknown."""
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil  # type: ignore[import-untyped]  # optional, and without stubs where installed

        return int(psutil.virtual_memory().available)
    except Exception:
        return None


def check_memory(cfg: Any, image_size: int, device: Any, views: int = 1, store_size: int | None = None) -> str | None:
    """Refuse a run whose training step cannot fit in memory; return a warning for an oversized image.

    Args:
        cfg: the resolved configuration (``data.batch_size``, ``model.base_width``, ``model.depth``).
        image_size: the patch / view size the run will use.
        device: the ``torch.device`` it runs on.
        views: images forwarded per sample.
        store_size: the largest slice side of the prepared store, if known.

    Returns:
        A warning line when the image size is more than twice the store's largest slice, else None.

    Raises:
        ConfigError: the estimate exceeds the memory available, with both numbers.
    """
    need = estimate_training_bytes(
        image_size, cfg.data.batch_size, cfg.model.base_width, cfg.model.depth, cfg.model.in_channels, views
    )
    have = available_memory(device)
    if have is not None and need > have:
        where = "free on the GPU" if getattr(device, "type", "") == "cuda" else "of memory available"
        raise ConfigError(
            f"data.image_size {image_size}, data.batch_size {cfg.data.batch_size}, model.base_width "
            f"{cfg.model.base_width}: a training step needs about {need / _GB:.1f} GB (estimate), this machine has "
            f"{have / _GB:.1f} GB {where}; lower --image-size, --batch-size or model.base_width"
        )
    if store_size and image_size > 2 * store_size:
        return (
            f"warning: data.image_size {image_size} is more than twice the store's largest slice ({store_size} px): "
            "the patches are mostly padding"
        )
    return None


def check_environment() -> None:
    """Environment variables medssl reads hold known values (``MEDSSL_PROGRESS``).

    Raises:
        ConfigError: ``MEDSSL_PROGRESS: expected one of auto, bar, lines, off, got 'x'``.
    """
    from .utils.progress import _MODES, PROGRESS_ENV

    value = os.environ.get(PROGRESS_ENV)
    if value is not None and value.strip().lower() not in _MODES and value.strip():
        raise ConfigError(f"{PROGRESS_ENV} (environment variable): expected one of {', '.join(_MODES)}, got {value!r}")


def check_store_labels(store: Any) -> None:
    """Every label array of a prepared store holds class indices ``0..K-1`` (one pass over the labels),
    and some label holds a foreground class (else there is nothing to segment).

    Raises:
        DataError: ``<store>/labels/<case>.npy: label value 7 not in the store's classes 0..2 (...)``, or
            ``<store>: its labels hold background only ...``.
    """
    import numpy as np

    from .errors import DataError

    k = store.num_classes
    labelled = foreground = 0
    for case in store.cases:
        label = store.label(case.case_id)
        if label is None or label.size == 0:
            continue
        top = int(np.max(label))
        if top >= k:
            raise DataError(
                store.root / "labels" / f"{case.case_id}.npy",
                f"label value {top} not in the store's classes 0..{k - 1} ({', '.join(store.class_names)}); "
                "the store is corrupt: prepare it again (medssl prepare --overwrite)",
            )
        labelled, foreground = labelled + 1, foreground + (top > 0)
    if labelled and (k < 2 or not foreground):
        raise DataError(
            store.root,
            f"its labels hold background only ({labelled} labelled cases, classes: {', '.join(store.class_names)}): "
            "nothing to segment; check the label files, or give the classes when preparing "
            "(--option class_names=... or label_map=...)",
        )


def superpixel_cache_notice(store_root: Any, cache_dir: Any) -> str:
    """The line said before the superpixel cache is written into the prepared store.

    Args:
        store_root: the prepared store.
        cache_dir: the cache folder inside it (``<store>/cache/<settings tag>``).

    Raises:
        ConfigError: the store is read-only (the cache cannot be written there).
    """
    from pathlib import Path

    cache = Path(cache_dir)
    probe = next((p for p in (cache, *cache.parents) if p.exists()), Path(store_root))
    if not os.access(probe, os.W_OK):
        raise ConfigError(
            f"superpixels: the superpixel cache is written into the prepared store ({cache}) but {probe} is not "
            "writable; make the store writable, or set superpixels.mode=online (computed per batch, no cache)"
        )
    state = "reusing or completing" if (cache / "config.json").is_file() else "writing"
    return f"superpixel cache: {state} {cache} inside the prepared store (once per store and settings)"
