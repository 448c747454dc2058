"""Typed configuration: one dataclass per concern, defaults that match the papers.

Resolution order (as timm's train.py): dataclass defaults -> YAML file (``--config``) -> command-line
flags -> ``--set key=value`` overrides. The resolved configuration is written to ``config.yaml`` in
every run folder.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

from .errors import ConfigError

__all__ = [
    "DataCfg",
    "ModelCfg",
    "OptimCfg",
    "TrainCfg",
    "FinetuneConfig",
    "PretrainConfig",
    "apply_overrides",
    "load_config",
    "config_to_dict",
    "config_from_dict",
]


@dataclass
class DataCfg:
    """Where the prepared data is and how it is fed.

    Attributes:
        path: prepared store (output of ``medssl prepare``).
        image_size: patch / view size in pixels; None = the dataset's paper default (fine-tuning) or 128.
        batch_size: per-process batch size.
        num_workers: data-loader worker processes (0 = in the main process).
        labels: labelled training patients: ``"10%"``, ``"0.25"`` (fraction) or ``"8"`` (count).
        split: ``"seeded"`` (patient-level, from the seed) or ``"paper"`` (the papers' published lists).
        test_fraction: share of patients held out for testing (seeded split).
        val_fraction: share of the training pool carved out for validation (``standard`` protocol).
        split_seed: seed of the split (None = the training seed).
        spatial_backend: interpolation of the spatial augmentation: ``"scipy"`` (cubic B-spline,
            exactly the papers' batchgenerators) or ``"torch"`` (grid_sample's cubic convolution:
            four views 2.2x faster at 512 px, ``benchmarks/bench_views.py``; for GPU-scale
            pre-training whose loader must keep up).
        elastic_noise_stride: lattice spacing in pixels of the noise behind the elastic field; 1 =
            per-pixel noise (the reference), 4 = the same field statistics (covariance within 0.3%)
            about 5x cheaper at 512 px (:func:`medssl.data.transforms.elastic_displacement`).
    """

    path: str = ""
    image_size: int | None = None
    batch_size: int = 5
    num_workers: int = 2
    labels: str = "10%"
    split: str = "seeded"
    test_fraction: float = 0.2
    val_fraction: float = 0.2
    split_seed: int | None = None
    spatial_backend: Literal["scipy", "torch"] = "scipy"
    elastic_noise_stride: float = 1.0

    def __post_init__(self) -> None:
        if not self.elastic_noise_stride >= 1.0:
            raise ConfigError(f"data.elastic_noise_stride: must be >= 1 (1 = per-pixel noise), got {self.elastic_noise_stride}")


@dataclass
class ModelCfg:
    """The network: ``unet`` (the papers') or ``monai:<Name>`` (fine-tuning only)."""

    name: str = "unet"
    base_width: int = 32
    depth: int = 4
    in_channels: int = 1


@dataclass
class OptimCfg:
    """Optimiser and schedule (fine-tuning defaults: Adam 5e-4, wd 1e-5, cosine to 5e-6)."""

    name: str = "adam"
    lr: float = 5e-4
    weight_decay: float = 1e-5
    momentum: float = 0.9
    min_lr: float = 5e-6
    schedule: str = "cosine"
    warmup_steps: int = 0
    grad_clip: float | None = None


@dataclass
class TrainCfg:
    """The engine's settings.

    Attributes:
        epochs: passes over the training slices.
        max_steps: stop after this many optimiser steps (overrides epochs when smaller).
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:1``.
        amp: ``auto`` (bf16/fp16 on CUDA, off on CPU) | ``none`` | ``bf16`` | ``fp16``.
        seed: global seed (the papers use 1234).
        deterministic: deterministic algorithms (CPU results are then bit-identical across runs).
        log_every: steps between step-level log rows.
        logger: ``csv`` or ``tensorboard`` (CSV is always written).
        channels_last: use channels-last memory format.
        compile: wrap the model in ``torch.compile``.
        progress: show a progress bar.
        val_every: epochs between validations.
    """

    epochs: int = 100
    max_steps: int | None = None
    device: str = "auto"
    amp: str = "auto"
    seed: int = 1234
    deterministic: bool = False
    log_every: int = 10
    logger: str = "csv"
    channels_last: bool = False
    compile: bool = False
    progress: bool = True
    val_every: int = 1


@dataclass
class FinetuneConfig:
    """``medssl finetune``: the papers' protocol by default (METHODS.md section 6).

    Attributes:
        init: pre-trained checkpoint (``pretrain.pt`` of a medssl run, a reference-code checkpoint) or None.
        protocol: ``paper`` (select on test, pooled 2D Dice, pixel distances) or ``standard``.
        loss: ``ce`` (papers) | ``dice`` | ``dicece``.
        freeze: parts kept frozen during fine-tuning (``[]``, ``["encoder"]``).
        method: name shown in reports; None = taken from the checkpoint (``scratch`` without one).
        augment: the papers' fine-tuning augmentation (mirror; p_spatial elastic/rotation/scale).
        p_spatial: probability of the spatial transform (0.67 in the papers).
        mirror: random flips on both axes (the papers); harmful where classes are defined by
            position (MSD Hippocampus: anterior / posterior).
    """

    data: DataCfg = field(default_factory=DataCfg)
    model: ModelCfg = field(default_factory=ModelCfg)
    optim: OptimCfg = field(default_factory=OptimCfg)
    train: TrainCfg = field(default_factory=TrainCfg)
    out: str = "runs/finetune"
    init: str | None = None
    protocol: str = "standard"
    loss: str = "ce"
    freeze: list[str] = field(default_factory=list)
    method: str | None = None
    augment: bool = True
    p_spatial: float = 0.67
    mirror: bool = True


def _pretrain_optim() -> OptimCfg:
    return OptimCfg(name="sgd", lr=0.01, weight_decay=1e-5, momentum=0.9, min_lr=0.0)


def _pretrain_data() -> DataCfg:
    return DataCfg(batch_size=16, image_size=128, labels="100%")


@dataclass
class PretrainConfig:
    """``medssl pretrain``: SGD 0.01, momentum 0.9, wd 1e-5, cosine to 0, no warm-up (the papers' scripts).

    Attributes:
        method: registry name (``medssl methods`` lists them).
        method_args: keyword arguments of the method's constructor (``--set method_args.temperature=0.2``).
        variant: a named option set of the method where paper and code disagree (e.g. MACL ``paper``).
        superpixels: options of the superpixel stage (SuperCL): ``mode`` (cache|online), ``method``...
        use_all_cases: pre-train on every case of the store (True, unlabelled use) or the training pool only.
    """

    data: DataCfg = field(default_factory=_pretrain_data)
    model: ModelCfg = field(default_factory=ModelCfg)
    optim: OptimCfg = field(default_factory=_pretrain_optim)
    train: TrainCfg = field(default_factory=TrainCfg)
    out: str = "runs/pretrain"
    method: str = "supercl"
    method_args: dict[str, Any] = field(default_factory=dict)
    variant: str | None = None
    superpixels: dict[str, Any] = field(default_factory=dict)
    use_all_cases: bool = True


# --- generic helpers ------------------------------------------------------------------------------


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A plain ``dict`` of a configuration dataclass (for YAML/JSON)."""
    return asdict(cfg)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    hints = annotation
    origin = typing.get_origin(hints)
    args = typing.get_args(hints)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{key}: cannot use {value!r} ({'; '.join(errors)})")
    if hints is Any:
        return value
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{key}: expected one of {', '.join(map(str, args))}, got {value!r}")
    if hints is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hints is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hints is str:
        return str(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else _bad(key, value, hints)
    if hints is bool:
        return value if isinstance(value, bool) else _bad(key, value, hints)
    if origin is list:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            _bad(key, value, hints)
        return [_coerce(v, args[0] if args else Any, key) for v in value]
    if origin is dict or hints is dict:
        if not isinstance(value, Mapping):
            _bad(key, value, hints)
        return dict(value)
    if isinstance(hints, type) and isinstance(value, hints):
        return value
    return _bad(key, value, hints)


def _bad(key: str, value: Any, hint: Any) -> Any:
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{key}: expected {name}, got {value!r}")


def config_from_dict(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a nested mapping, checking names and types (unknown keys are errors)."""
    hints = typing.get_type_hints(cls)
    names = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"unknown setting '{prefix}{key}'; known: {', '.join(sorted(names))}")
        hint = hints[key]
        if is_dataclass(hint) and isinstance(value, Mapping):
            kwargs[key] = config_from_dict(hint, value, prefix=f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, hint, f"{prefix}{key}")
    return cls(**kwargs)


def _parse_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(cfg: Any, overrides: Mapping[str, Any] | list[str]) -> Any:
    """Return a copy of ``cfg`` with dotted-key overrides applied.

    Args:
        cfg: a configuration dataclass.
        overrides: ``{"optim.lr": 0.1}`` or ``["optim.lr=0.1", "method_args.temperature=0.2"]``
            (string values are parsed as YAML scalars).

    Raises:
        ConfigError: unknown key or a value of the wrong type.
    """
    if isinstance(overrides, list):
        pairs: dict[str, Any] = {}
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"--set expects key=value, got '{item}'")
            k, v = item.split("=", 1)
            pairs[k.strip()] = _parse_scalar(v)
        overrides = pairs
    data = config_to_dict(cfg)
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        node = data
        for p in parts[:-1]:
            if not isinstance(node, dict) or p not in node:
                raise ConfigError(f"unknown setting '{dotted}'")
            if node[p] is None:
                node[p] = {}
            node = node[p]
        if not isinstance(node, dict):
            raise ConfigError(f"unknown setting '{dotted}'")
        # free-form dicts (method_args, superpixels) accept new keys
        node[parts[-1]] = value
    return config_from_dict(type(cfg), data)


def load_config(cls: type, path: str | Path | None = None, overrides: Mapping[str, Any] | list[str] | None = None) -> Any:
    """Defaults of ``cls``, updated by a YAML file, then by ``overrides``."""
    cfg = cls()
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: configuration file not found")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
        flat = _flatten(data)
        cfg = apply_overrides(cfg, flat)
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    return cfg


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, Mapping) and k not in ("method_args", "superpixels"):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def replace(cfg: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` re-exported for convenience."""
    return dataclasses.replace(cfg, **changes)
