"""Typed configuration: one dataclass per concern, defaults that match the papers.

Resolution order (as timm's train.py): dataclass defaults -> YAML file (``--config``) -> command-line
flags -> ``--set key=value`` overrides. The resolved configuration is written to ``config.yaml`` in
every run folder.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from .errors import ConfigError

__all__ = [
    "DataCfg",
    "FinetuneConfig",
    "ModelCfg",
    "OptimCfg",
    "PretrainConfig",
    "Range",
    "TrainCfg",
    "TransferCfg",
    "apply_overrides",
    "check_config",
    "checked",
    "config_from_dict",
    "config_to_dict",
    "in_range",
    "load_config",
    "numeric_fields_without_range",
    "required",
]

_T = TypeVar("_T")


# --- declared ranges ------------------------------------------------------------------------------
# Every numeric field declares the interval it must lie in, in its ``field(metadata=...)``; one
# function checks them all when a configuration object is built (``__post_init__``), so the command
# line, YAML files and the Python API are held to the same limits. A new field only declares its range:
#
#     batch_size: int = field(default=5, metadata=in_range(ge=1))
#     momentum: float = field(default=0.9, metadata=in_range(ge=0, lt=1))
#
# Non-numeric fields may declare ``checked(fn)``: ``fn(value)`` returns a problem (str) or None.
# ``tests/test_bad_inputs.py`` fails for a numeric field without a declared range.


@dataclass(frozen=True)
class Range:
    """The interval a numeric setting must lie in (``None`` = unbounded on that side)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def contains(self, value: float) -> bool:
        """Whether ``value`` (a finite real number) lies in the interval."""
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return not (self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi))

    def __str__(self) -> str:
        def num(v: float) -> str:
            return f"{v:g}" if isinstance(v, float) else str(v)

        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{num(self.lo)}, {num(self.hi)}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {num(self.lo)}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {num(self.hi)}"
        return "any number"


def in_range(
    *, ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None, why: str = ""
) -> dict[str, Any]:
    """``field`` metadata declaring the range of a numeric setting.

    Args:
        ge: inclusive lower bound (give at most one of ``ge``/``gt``).
        gt: exclusive lower bound.
        le: inclusive upper bound (give at most one of ``le``/``lt``).
        lt: exclusive upper bound.
        why: a short reason shown after the error (``"1 = per-pixel noise"``).

    Example::

        lr: float = field(default=5e-4, metadata=in_range(gt=0))
    """
    if (ge is not None and gt is not None) or (le is not None and lt is not None):
        raise ValueError("give at most one lower bound (ge/gt) and one upper bound (le/lt)")
    rng = Range(ge if gt is None else gt, le if lt is None else lt, gt is not None, lt is not None)
    return {"range": rng, "why": why}


def checked(fn: Callable[[Any], str | None]) -> dict[str, Any]:
    """``field`` metadata for a non-numeric setting: ``fn(value)`` returns a problem or None."""
    return {"check": fn}


def _number_problem(value: Any, rng: Range) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"expected a number {rng}, got {value!r}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number {rng}, got {value}"
    if not rng.contains(value):
        return f"must be {rng}, got {value!r}"
    return None


def check_config(cfg: Any, section: str = "") -> None:
    """Check every field of dataclass ``cfg`` against its declared range or check (not recursive).

    Raises:
        ConfigError: the first field out of range, as ``<section.field>: must be >= 1, got 0``.
    """
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if value is None:
            continue
        key = f"{section}.{f.name}" if section else f.name
        problem = None
        if "range" in f.metadata:
            problem = _number_problem(value, f.metadata["range"])
            if problem and f.metadata.get("why"):
                problem += f" ({f.metadata['why']})"
        elif "check" in f.metadata:
            problem = f.metadata["check"](value)
        if problem:
            raise ConfigError(f"{key}: {problem}")


class _Checked:
    """Mixin of the configuration dataclasses: declared ranges are checked when an object is built."""

    #: the dotted prefix of this class's fields in error messages (``data`` -> ``data.batch_size``)
    _section = ""
    #: checks of several fields together: ``fn(cfg)`` returns a problem or None
    _together: tuple[Callable[[Any], str | None], ...] = ()

    def __post_init__(self) -> None:
        check_config(self, self._section)
        for fn in type(self)._together:
            problem = fn(self)
            if problem:
                raise ConfigError(problem)


def _image_size_fits(cfg: Any) -> str | None:
    size, depth = cfg.data.image_size, cfg.model.depth
    if size is not None and size % 2**depth:
        return f"data.image_size: {size} must be a multiple of {2**depth} (2**model.depth, depth {depth})"
    return None


def _numeric(hint: Any) -> bool:
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return any(a in (int, float) for a in args)


def numeric_fields_without_range(cls: type, prefix: str = "") -> list[str]:
    """Dotted names of the numeric fields of ``cls`` (and its nested configurations) that declare no range."""
    hints = typing.get_type_hints(cls)
    out: list[str] = []
    for f in fields(cls):
        hint = hints[f.name]
        if isinstance(hint, type) and is_dataclass(hint):  # a section class (never an instance)
            out += numeric_fields_without_range(hint, f"{prefix}{f.name}.")
        elif _numeric(hint) and "range" not in f.metadata:
            out.append(f"{prefix}{f.name}")
    return out


def _device_problem(value: Any) -> str | None:
    if isinstance(value, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        return None
    return f"expected auto, cpu, cuda, cuda:N or mps, got {value!r}"


def _labels_problem(value: Any) -> str | None:
    from .data.splits import parse_label_spec

    try:
        parse_label_spec(value)
    except ConfigError as e:
        return str(e).split(": ", 1)[-1]
    return None


SEED_MAX = 2**32 - 1


def _recipe_problem(value: Any) -> str | None:
    from .recipes import RECIPES

    return (
        None if value == "auto" or value in RECIPES else f"expected auto or one of {', '.join(RECIPES)}, got {value!r}"
    )


def _init_parts_problem(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not value or any(v not in ("encoder", "decoder") for v in value):
        return f"expected null or a non-empty list of encoder / decoder, got {value!r}"
    return None


def _postprocess_problem(value: Any) -> str | None:
    return None if value in ("none", "largest_component") else f"expected none or largest_component, got {value!r}"


def _fill_problem(value: Any) -> str | None:
    return None if value in ("zero", "min") else f"expected zero or min, got {value!r}"


def _distances_problem(value: Any) -> str | None:
    return None if value in (None, "surface", "medpy") else f"expected surface or medpy, got {value!r}"


def _nsd_per_class_problem(value: Any) -> str | None:
    ok = isinstance(value, Mapping) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 for v in value.values()
    )
    return None if ok else f"expected class name -> mm >= 0 ({{RV: 2, Myo: 1.5}}), got {value!r}"


def _scale_problem(value: Any) -> str | None:
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and 0 < value[0] <= value[1]
    )
    return None if ok else f"expected [low, high] with 0 < low <= high, got {value!r}"


@dataclass
class DataCfg(_Checked):
    """Where the prepared data is and how it is fed.

    Attributes:
        path: prepared store (output of ``medssl prepare``).
        image_size: patch / view size in pixels; None = the dataset's paper default (fine-tuning) or 128.
        batch_size: per-process batch size.
        num_workers: data-loader worker processes (0 = in the main process).
        labels: labelled training patients: a count is an integer (``"8"``: eight patients), a
            fraction has a ``%`` or a decimal point (``"10%"``, ``"0.1"``; ``"100%"``/``"1.0"`` = all).
            Stored in canonical form (``"0.1"`` -> ``"10%"``).
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

    _section = "data"

    path: str = ""
    image_size: int | None = field(default=None, metadata=in_range(ge=8))
    batch_size: int = field(default=5, metadata=in_range(ge=1))
    num_workers: int = field(default=2, metadata=in_range(ge=0))
    labels: str = field(default="10%", metadata=checked(_labels_problem))
    split: str = "seeded"
    test_fraction: float = field(default=0.2, metadata=in_range(gt=0, lt=1))
    val_fraction: float = field(default=0.2, metadata=in_range(ge=0, lt=1))
    split_seed: int | None = field(default=None, metadata=in_range(ge=0, le=SEED_MAX))
    spatial_backend: Literal["scipy", "torch"] = "scipy"
    elastic_noise_stride: float = field(default=1.0, metadata=in_range(ge=1.0, why="1 = per-pixel noise"))

    def __post_init__(self) -> None:
        super().__post_init__()
        from .data.splits import canonical_labels

        self.labels = canonical_labels(self.labels)


@dataclass
class ModelCfg(_Checked):
    """The network: ``unet`` (the papers') or ``monai:<Name>`` (fine-tuning only).

    Attributes:
        name: ``unet`` (the papers' 2D U-Net, the only one pre-training supports) or ``monai:UNet`` /
            ``monai:BasicUNet`` (MONAI's 2D networks of matching width, for fine-tuning from scratch).
        base_width: channels of the first stage (f; the papers: 32); stage i has f * 2**i.
        depth: pooling stages (4: a bottleneck of 16f channels at 1/16 of the input side).
        in_channels: input channels (1; 4 for the papers' BraTS models).
    """

    _section = "model"

    name: str = "unet"
    base_width: int = field(default=32, metadata=in_range(ge=1))
    depth: int = field(default=4, metadata=in_range(ge=1, le=8))
    in_channels: int = field(default=1, metadata=in_range(ge=1))


@dataclass
class OptimCfg(_Checked):
    """Optimiser and schedule: cosine per iteration from ``lr`` to ``min_lr`` after ``warmup_steps``.

    In fine-tuning, ``lr``, ``min_lr`` and ``warmup_steps`` left at None come from the recipe
    (:mod:`medssl.recipes`).

    Attributes:
        name: ``adam``, ``adamw`` or ``sgd``.
        lr: peak learning rate (None in fine-tuning: the recipe's).
        weight_decay: L2 weight decay (decoupled for ``adamw``).
        momentum: SGD momentum (``sgd`` only).
        min_lr: the learning rate at the end of the cosine schedule (None in fine-tuning: the recipe's).
        schedule: ``cosine`` (per step, from ``lr`` to ``min_lr``) or ``constant``.
        warmup_steps: steps of linear warm-up before the schedule (None in fine-tuning: the recipe's).
        grad_clip: clip the gradients' global norm to this value (None = no clipping).
    """

    _section = "optim"

    name: str = "adam"
    lr: float | None = field(default=5e-4, metadata=in_range(gt=0))
    weight_decay: float = field(default=1e-5, metadata=in_range(ge=0))
    momentum: float = field(default=0.9, metadata=in_range(ge=0, lt=1))
    min_lr: float | None = field(default=5e-6, metadata=in_range(ge=0))
    schedule: str = "cosine"
    warmup_steps: int | None = field(default=0, metadata=in_range(ge=0))
    grad_clip: float | None = field(default=None, metadata=in_range(gt=0))


@dataclass
class TrainCfg(_Checked):
    """The engine's settings.

    Attributes:
        epochs: passes over the training slices; None = 100 (the papers), or as many as
            ``max_steps`` needs when only that is given.
        max_steps: stop after this many optimiser steps (the smaller of the two when both are given).
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:1`` | ``mps``.
        amp: ``auto`` (bf16/fp16 on CUDA, off on CPU) | ``none`` | ``bf16`` | ``fp16``.
        seed: global seed (the papers use 1234), 0 .. 2**32 - 1.
        deterministic: deterministic algorithms (CPU results are then bit-identical across runs).
        log_every: steps between step-level log rows.
        logger: ``csv`` or ``tensorboard`` (CSV is always written).
        channels_last: use channels-last memory format.
        compile: wrap the model in ``torch.compile``.
        progress: show a progress bar.
        val_every: epochs between validations (None and no ``val_every_steps``: every epoch, or
            the fine-tuning recipe's rhythm).
        val_every_steps: validate at the end of the first epoch after every N optimiser steps.
    """

    _section = "train"

    epochs: int | None = field(default=None, metadata=in_range(ge=1))
    max_steps: int | None = field(default=None, metadata=in_range(ge=1))
    device: str = field(default="auto", metadata=checked(_device_problem))
    amp: str = "auto"
    seed: int = field(default=1234, metadata=in_range(ge=0, le=SEED_MAX))
    deterministic: bool = False
    log_every: int = field(default=10, metadata=in_range(ge=1))
    logger: str = "csv"
    channels_last: bool = False
    compile: bool = False
    progress: bool = True
    val_every: int | None = field(default=None, metadata=in_range(ge=1))
    val_every_steps: int | None = field(default=None, metadata=in_range(ge=1))


def _lpft_problem(cfg: Any) -> str | None:
    if cfg.schedule == "lpft" and cfg.lpft_steps is None and cfg.lpft_fraction is None:
        return "transfer.schedule: lpft needs transfer.lpft_fraction or transfer.lpft_steps"
    if cfg.lpft_steps is not None and cfg.lpft_fraction is not None:
        return "transfer: give transfer.lpft_steps or transfer.lpft_fraction, not both"
    return None


@dataclass
class TransferCfg(_Checked):
    """How fine-tuning treats the parts loaded from a pre-trained checkpoint (``init``).

    "Pre-trained" means exactly the parameters :func:`~medssl.models.checkpoint.load_pretrained`
    loaded (``load_report.json``); the rest (the head, a decoder not pre-trained) is "new". The
    defaults change nothing (one learning rate, one phase, the optimiser's own warm-up); without
    ``init`` nothing is pre-trained and only ``warmup_fraction`` acts. See ``docs/finetuning.md``.

    Attributes:
        schedule: ``standard`` (every part trains from step 0) or ``lpft`` (Kumar et al. 2022: the
            new parts train alone, the pre-trained ones frozen, for the first ``lpft_steps`` /
            ``lpft_fraction`` of the steps; then everything).
        lpft_steps: length of the frozen phase in optimiser steps (``lpft`` only).
        lpft_fraction: length of the frozen phase as a share of all steps (``lpft`` only).
        pretrained_lr_scale: learning-rate multiplier of the pre-trained parts (discriminative
            learning rates; nnssl uses 0.1 against training from scratch; 1 = one learning rate).
        layer_decay: layer-wise decay (BEiT / MAE 0.65-0.9): the pre-trained layer nearest the output
            keeps ``pretrained_lr_scale``, each layer before it along the forward path (U-Net: encoder
            stages, centre, decoder blocks) a further factor ``layer_decay``; 1 = off.
        warmup_fraction: linear warm-up of the whole net over this share of the steps from the
            moment every part trains (step 0; with ``lpft``, the unfreezing step), replacing
            ``optim.warmup_steps`` (nnssl: 0.05); 0 = off.
    """

    _section = "transfer"
    _together = (_lpft_problem,)

    schedule: Literal["standard", "lpft"] = "standard"
    lpft_steps: int | None = field(default=None, metadata=in_range(ge=1))
    lpft_fraction: float | None = field(default=None, metadata=in_range(gt=0, lt=1))
    pretrained_lr_scale: float = field(default=1.0, metadata=in_range(gt=0, le=1, why="1 = the new parts' rate"))
    layer_decay: float = field(default=1.0, metadata=in_range(gt=0, le=1, why="1 = off"))
    warmup_fraction: float = field(default=0.0, metadata=in_range(ge=0, lt=1, why="0 = off"))

    def is_default(self) -> bool:
        """Whether these settings leave fine-tuning as it was (one rate, one phase, no extra warm-up)."""
        return self == TransferCfg()


def required(value: _T | None, key: str) -> _T:
    """The value of the setting ``key``, which a run cannot do without.

    Fine-tuning leaves the recipe's settings at None until :func:`~medssl.recipes.resolve_recipe`
    fills them; past that point (and in pre-training, which has no recipe) None is a mistake.

    Args:
        value: the setting's value.
        key: its dotted name (``optim.lr``), for the message.

    Returns:
        ``value``, known not to be None.

    Raises:
        ConfigError: ``<key>: not set; ...`` when ``value`` is None.
    """
    if value is None:
        raise ConfigError(f"{key}: not set; give a value (fine-tuning takes it from its recipe)")
    return value


def _finetune_optim() -> OptimCfg:
    """Adam, wd 1e-5; learning rate, its floor and warm-up from the recipe."""
    return OptimCfg(name="adam", lr=None, weight_decay=1e-5, min_lr=None, warmup_steps=None)


@dataclass
class FinetuneConfig(_Checked):
    """``medssl finetune``: the ``standard`` protocol and its recipe by default.

    Settings left at None come from the recipe (:mod:`medssl.recipes`): ``paper`` (the papers'
    recipe exactly) or ``standard`` (converges at small budgets); ``auto`` picks the protocol's own.

    Attributes:
        data: the prepared store and how it is fed (:class:`DataCfg`).
        model: the network (:class:`ModelCfg`).
        optim: optimiser and schedule (:class:`OptimCfg`); Adam, the rest from the recipe.
        train: the engine's settings (:class:`TrainCfg`).
        out: the run folder (created; rerunning into it resumes).
        init: pre-trained checkpoint (``pretrain.pt`` of a medssl run or its run folder, a
            reference-code checkpoint) or None.
        init_parts: parts of ``init`` to load (``["encoder"]``, ``["encoder", "decoder"]``); None =
            every part the checkpoint declares (MACL's pre-trains the decoder too). Loading only the
            encoder of a MACL checkpoint measures what its pre-trained decoder adds.
        protocol: ``standard`` (the default: validation split, per-volume 3D metrics in mm) or
            ``paper`` (select on test, pooled 2D Dice, pixel distances, as the papers did).
        recipe: ``auto`` | ``paper`` | ``standard``.
        loss: ``ce`` (papers) | ``dice`` | ``dicece`` (:mod:`medssl.losses.segmentation`).
        dice_mode: the Dice term's form: ``batch`` (foreground classes, sums over the batch) or
            ``sample`` (per sample and class, background included, as MONAI's DiceLoss).
        freeze: parts kept frozen during fine-tuning (``[]``, ``["encoder"]``).
        method: name shown in reports; None = taken from the checkpoint (``scratch`` without one).
        augment: False turns every augmentation off (random pad/crop only).
        p_spatial: probability of the spatial transform (rotation, scale, elastic; 0.67 in the papers).
        mirror: random flips on both axes (the papers); harmful where classes are defined by
            side (CHAOS kidneys, MSD Hippocampus anterior / posterior).
        rotation: largest rotation in degrees (180: any angle, the papers).
        scale: ``[low, high]`` of the coordinate scale factor (the papers: 0.7, 1.3).
        elastic: elastic deformation in the spatial transform (the papers).
        fill: the image's value where it has no data (padding to the patch or to the network's
            stride, rotated-in corners): ``zero`` (the papers) or ``min`` (the slice's minimum, the
            background of a z-scored slice, whose 0 is its mean intensity).
        postprocess: ``none`` or ``largest_component``: keep each class's largest 3D connected
            component in the test predictions, for the classes where that raises the Dice of the
            validation volumes (decided after training, written to ``postprocessing.json``; the
            ``paper`` protocol has no validation set, so nothing is applied there).
        transfer: how the pre-trained parts are fine-tuned (:class:`TransferCfg`: learning-rate
            scale, LP-FT, layer-wise decay, warm-up of the whole net); the defaults change nothing.
        distances: how the ``standard`` protocol measures boundaries: ``surface`` (directed HD95,
            area-weighted boundary elements, as DeepMind's surface-distance; the default) or
            ``medpy`` (the earlier medpy-exact values); None = the protocol's own (``paper``: medpy).
        nsd_tolerance: NSD tolerance in mm of every class without its own.
        nsd_tolerance_per_class: class name -> NSD tolerance in mm (``{RV: 2, Myo: 1.5}``).
    """

    _together = (_image_size_fits,)

    data: DataCfg = field(default_factory=DataCfg)
    model: ModelCfg = field(default_factory=ModelCfg)
    optim: OptimCfg = field(default_factory=_finetune_optim)
    train: TrainCfg = field(default_factory=TrainCfg)
    out: str = "runs/finetune"
    init: str | None = None
    init_parts: list[str] | None = field(default=None, metadata=checked(_init_parts_problem))
    protocol: str = "standard"
    recipe: str = field(default="auto", metadata=checked(_recipe_problem))
    loss: str | None = None
    dice_mode: str | None = None
    freeze: list[str] = field(default_factory=list)
    method: str | None = None
    augment: bool = True
    p_spatial: float | None = field(default=None, metadata=in_range(ge=0, le=1))
    mirror: bool | None = None
    rotation: float | None = field(default=None, metadata=in_range(ge=0, le=180))
    scale: list[float] | None = field(default=None, metadata=checked(_scale_problem))
    elastic: bool | None = None
    fill: str | None = field(default=None, metadata=checked(_fill_problem))
    postprocess: str | None = field(default=None, metadata=checked(_postprocess_problem))
    transfer: TransferCfg = field(default_factory=TransferCfg)
    distances: str | None = field(default=None, metadata=checked(_distances_problem))
    nsd_tolerance: float = field(default=2.0, metadata=in_range(ge=0))
    # values checked by _nsd_per_class_problem (typed Any: a dict of floats would count as a numeric setting)
    nsd_tolerance_per_class: dict[str, Any] = field(default_factory=dict, metadata=checked(_nsd_per_class_problem))


def _pretrain_optim() -> OptimCfg:
    return OptimCfg(name="sgd", lr=0.01, weight_decay=1e-5, momentum=0.9, min_lr=0.0)


def _pretrain_data() -> DataCfg:
    return DataCfg(batch_size=16, image_size=128, labels="100%")


@dataclass
class PretrainConfig(_Checked):
    """``medssl pretrain``: SGD 0.01, momentum 0.9, wd 1e-5, cosine to 0, no warm-up (the papers' scripts).

    Attributes:
        data: the prepared store and how it is fed (:class:`DataCfg`); batch 16 at 128 px, every label.
        model: the network (:class:`ModelCfg`).
        optim: optimiser and schedule (:class:`OptimCfg`); SGD 0.01, momentum 0.9, cosine to 0.
        train: the engine's settings (:class:`TrainCfg`).
        out: the run folder (created; rerunning into it resumes).
        method: registry name (``medssl methods`` lists them).
        method_args: keyword arguments of the method's constructor (``--set method_args.temperature=0.2``).
        variant: a named option set of the method where paper and code disagree (e.g. MACL ``paper``).
        superpixels: options of the superpixel stage (SuperCL): ``mode`` (cache|online), ``method``...
        use_all_cases: pre-train on every case of the store (True, unlabelled use) or the training pool only.
    """

    _together = (_image_size_fits,)

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
        return (
            str(value)
            if isinstance(value, (str, int, float)) and not isinstance(value, bool)
            else _bad(key, value, hints)
        )
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
        if isinstance(hint, type) and is_dataclass(hint) and isinstance(value, Mapping):  # a section class
            # a partial section keeps the parent's own defaults for it (PretrainConfig's SGD optimiser,
            # FinetuneConfig's recipe-filled learning rate), not the section class's
            factory = names[key].default_factory
            if factory is not dataclasses.MISSING:
                value = {**asdict(factory()), **value}
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


def load_config(
    cls: type, path: str | Path | None = None, overrides: Mapping[str, Any] | list[str] | None = None
) -> Any:
    """Defaults of ``cls``, updated by a YAML file, then by ``overrides``."""
    cfg = cls()
    if path:
        p = Path(path)
        if p.is_dir():
            raise ConfigError(f"{p}: is a folder; --config takes a YAML configuration file")
        if not p.is_file():
            raise ConfigError(f"{p}: configuration file not found")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{p}: not a text file (binary data); --config takes a YAML configuration file") from None
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{p}: expected a mapping of settings (key: value) at the top level, got a {type(data).__name__}"
            )
        try:
            cfg = apply_overrides(cfg, _flatten(data))
        except ConfigError as e:
            raise ConfigError(f"{p}: {e}") from None
    if overrides:
        cfg = _switch_recipe(cfg, overrides) if hasattr(cfg, "recipe") else apply_overrides(cfg, overrides)
    return cfg


def _switch_recipe(cfg: Any, overrides: Mapping[str, Any] | list[str]) -> Any:
    """``overrides`` applied to a fine-tuning configuration; when they change its concrete recipe (a
    run's resolved ``config.yaml`` with ``recipe=paper``), the settings the old recipe had filled are
    unset first, so that the new recipe fills them (:func:`medssl.recipes.unresolve_recipe`)."""
    from .recipes import RECIPES, recipe_name, unresolve_recipe

    new = apply_overrides(cfg, overrides)
    if cfg.recipe not in RECIPES or recipe_name(new) == cfg.recipe:
        return new
    unset, names = unresolve_recipe(cfg)
    if names:
        logging.getLogger("medssl").info(
            "recipe %s -> %s: %s unset so that %s fills them (settings that differ from %s are kept)",
            cfg.recipe, recipe_name(new), ", ".join(names), recipe_name(new), cfg.recipe,
        )  # fmt: skip
    return apply_overrides(unset, overrides)


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
