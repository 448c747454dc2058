"""Fine-tuning (the "Scratch" row and every pre-trained row): a segmentation task on the engine.

``finetune(cfg)`` splits the prepared store by patient, trains the U-Net on the labelled share,
selects the best epoch (on validation for ``standard``; on test for ``paper``, as the papers did, and
says so), predicts the test volumes and evaluates them. Everything lands in ``cfg.out``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from .config import FinetuneConfig, required
from .data.datasets import LabelledSlices, seed_worker
from .data.splits import Split, make_split
from .data.store import SliceStore
from .engine.inference import outside_window_to_zero, predict_volume
from .engine.provenance import check_run_inputs, run_inputs
from .engine.rundir import BoundRun, bind_run_dir, init_run_dir, mark_done
from .engine.trainer import Engine, FitResult, resolve_device, seed_everything
from .errors import ConfigError
from .evaluation.postprocess import choose_largest_component_classes, keep_largest_component
from .losses.segmentation import segmentation_loss
from .models.checkpoint import LoadReport, checkpoint_in_channels, load_pretrained, read_checkpoint
from .models.factory import create_model
from .preflight import check_finetune
from .recipes import describe_recipe, resolve_recipe
from .run_checks import check_freeze, check_init_parts, warn_frozen_random
from .utils import distributed as du
from .utils.files import atomic_save_npy, atomic_write_json

__all__ = ["FinetuneResult", "SegmentationTask", "finetune", "joint_augment", "segmentation_loss"]

log = logging.getLogger("medssl")


@dataclass
class FinetuneResult:
    """Where the run is and its summary."""

    out: Path
    summary: list[dict[str, Any]]
    table: str
    best_epoch: int | None
    selected_on: str


def joint_augment(cfg: FinetuneConfig, patch: int) -> Any:
    """The fine-tuning augmentation of a resolved configuration (pad/crop, mirror, rotation, scale, elastic)."""
    from .data.transforms import JointAugment

    rot = math.radians(cfg.rotation or 0.0)
    angle = (0.0, 2.0 * math.pi) if cfg.rotation is not None and cfg.rotation >= 180 else (-rot, rot)
    scale = tuple(required(cfg.scale, "scale"))
    return JointAugment(
        patch,
        p_spatial=required(cfg.p_spatial, "p_spatial"),
        mirror=required(cfg.mirror, "mirror"),
        backend=cfg.data.spatial_backend,
        fill=required(cfg.fill, "fill"),
        noise_stride=cfg.data.elastic_noise_stride,
        rotation=bool(cfg.rotation),
        angle=angle,
        scaling=scale != (1.0, 1.0),
        scale=scale,
        elastic=bool(cfg.elastic),
    )


class SegmentationTask:
    """The fine-tuning :class:`~medssl.engine.Task`."""

    find_unused_parameters = False

    def __init__(
        self,
        cfg: FinetuneConfig,
        store: SliceStore,
        split: Split,
        model: nn.Module,
        in_channels: int,
        device: torch.device,
    ) -> None:
        self.cfg, self.store, self.split, self.model = cfg, store, split, model
        self.device, self.in_channels = device, in_channels
        self.patch = cfg.data.image_size or store.patch_size
        multiple = 2**cfg.model.depth
        if self.patch % multiple:
            raise ConfigError(f"image size {self.patch} must be divisible by {multiple} (2**depth)")
        #: the recipe-filled settings a step and a prediction use (set once the recipe is resolved)
        self.fill = required(cfg.fill, "fill")
        self.loss, self.dice_mode = required(cfg.loss, "loss"), required(cfg.dice_mode, "dice_mode")
        aug = joint_augment(cfg, self.patch) if cfg.augment else None
        self.dataset = LabelledSlices(
            store, split.train, self.patch, aug, seed=cfg.train.seed, in_channels=in_channels, fill=self.fill
        )
        self.select_on = split.val if cfg.protocol == "standard" else split.test
        self.monitor = "val_dice" if cfg.protocol == "standard" else "test_dice"
        #: the papers score the centre pad/crop of each slice at the patch size; standard, the whole slice
        self.window = self.patch if cfg.protocol == "paper" else None
        self._gen = torch.Generator()

    def steps_per_epoch(self) -> int:
        per_rank = math.ceil(len(self.dataset) / du.world_size())
        bs = self.cfg.data.batch_size
        return max(1, per_rank // bs if per_rank >= bs else 1)

    def train_loader(self, epoch: int) -> DataLoader:
        self.dataset.set_epoch(epoch)
        if du.is_distributed():
            sampler: Any = DistributedSampler(self.dataset, shuffle=True, seed=self.cfg.train.seed)
            sampler.set_epoch(epoch)
        else:
            self._gen.manual_seed(self.cfg.train.seed * 1000 + epoch)
            sampler = RandomSampler(self.dataset, generator=self._gen)
        drop_last = len(self.dataset) // du.world_size() >= self.cfg.data.batch_size
        return DataLoader(
            self.dataset,
            batch_size=self.cfg.data.batch_size,
            sampler=sampler,
            num_workers=self.cfg.data.num_workers,
            drop_last=drop_last,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=seed_worker,
            persistent_workers=False,
        )

    def training_step(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        logits = model(batch["image"])
        return {"loss": segmentation_loss(logits, batch["label"], self.loss, self.dice_mode)}

    def on_step(self, step: int, max_steps: int) -> None:
        pass

    def after_step(self, progress: float) -> None:
        pass

    def predict(self, model: nn.Module, case_id: str) -> np.ndarray:
        """The prediction of a whole volume (0 outside the scored window under the ``paper`` protocol)."""
        return predict_volume(
            model,
            np.asarray(self.store.image(case_id)),
            self.device,
            in_channels=self.in_channels,
            multiple=2**self.cfg.model.depth,
            window=self.window,
            fill=self.fill,
        )

    def reference(self, case_id: str) -> np.ndarray:
        """The label a prediction is scored against (0 outside the window under the ``paper`` protocol)."""
        label = np.asarray(self.store.label(case_id))
        return label if self.window is None else outside_window_to_zero(label, self.window)

    def validate(self, model: nn.Module, epoch: int) -> dict[str, float]:
        """Mean foreground Dice on the selection set: per volume (standard) or pooled (paper)."""
        from .evaluation.metrics import confusion_counts, dice_jaccard_from_counts

        if du.rank() != 0 or not self.select_on:
            return {}
        k = self.store.num_classes
        totals = np.zeros((k, 3), dtype=np.int64)
        per_case = []
        for cid in self.select_on:
            pred = self.predict(model, cid)
            counts = np.asarray(confusion_counts(pred, self.reference(cid), k))
            totals += counts.astype(np.int64)
            dsc, _ = dice_jaccard_from_counts(counts)
            per_case.append(np.nanmean(np.asarray(dsc, dtype=float)[1:]) if k > 1 else np.nan)
        if self.cfg.protocol == "paper":
            dsc, _ = dice_jaccard_from_counts(totals)
            value = float(np.nanmean(np.asarray(dsc, dtype=float)[1:]))
        else:
            value = float(np.nanmean(per_case)) if not np.all(np.isnan(per_case)) else float("nan")
        return {self.monitor: value}


def _decide_postprocessing(
    cfg: FinetuneConfig, task: SegmentationTask, model: nn.Module, split: Split, out: Path, say: Callable[[str], None]
) -> list[int]:
    """The classes whose largest connected component is kept in the test predictions (decided on the
    validation volumes; written to ``postprocessing.json``)."""
    if cfg.postprocess != "largest_component":
        return []
    if not split.val:
        say("postprocess: no validation volumes (paper protocol): nothing applied")
        return []
    preds = [task.predict(model, c) for c in split.val]
    refs = [task.reference(c) for c in split.val]
    classes = choose_largest_component_classes(preds, refs, task.store.num_classes)
    names = [task.store.class_names[k] for k in classes]
    atomic_write_json(
        out / "postprocessing.json",
        {"largest_component": classes, "class_names": names, "decided_on": "validation", "cases": list(split.val)},
    )
    if classes:
        say(f"postprocess: keeping the largest connected component of {', '.join(names)} (raises the validation Dice)")
    return classes


def _transfer_schedule(
    cfg: FinetuneConfig, model: nn.Module, report: Any, total: int, say: Callable[[str], None]
) -> Any:
    """The learning-rate schedule of a run of ``total`` steps (:mod:`medssl.engine.transfer`;
    pre-trained = what ``init`` loaded, as ``load_report.json`` lists)."""
    from .engine.transfer import TransferSchedule, build_schedule, check_frozen_phase

    loaded = report.loaded if report is not None else None
    schedule, note = build_schedule(cfg.optim, cfg.transfer, model, loaded, cfg.model.depth)
    if isinstance(schedule, TransferSchedule):
        check_frozen_phase(schedule.cfg, total)  # Scratch: no frozen phase to check
    for line in (note, schedule.describe(total) if isinstance(schedule, TransferSchedule) else ""):
        if line:
            say(line)
    return schedule


def nsd_tolerances(cfg: FinetuneConfig, class_names: Sequence[str]) -> dict[str, float]:
    """The NSD tolerance (mm) of every foreground class: ``nsd_tolerance_per_class``, else ``nsd_tolerance``.

    Raises:
        ConfigError: ``nsd_tolerance_per_class`` names a class the store does not have.
    """
    from .evaluation.metrics import resolve_nsd_tolerance

    per = {str(c): cfg.nsd_tolerance for c in class_names[1:]}
    try:
        return resolve_nsd_tolerance({**per, **cfg.nsd_tolerance_per_class}, class_names)
    except ValueError as exc:
        raise ConfigError(f"nsd_tolerance_per_class: {exc}") from exc


def _check_boundary_options(cfg: FinetuneConfig, class_names: Sequence[str]) -> None:
    """``distances`` fits the protocol and ``nsd_tolerance_per_class`` names only the store's classes (ConfigError)."""
    from .evaluation.metrics import distance_definition

    try:
        distance_definition(cfg.protocol, cfg.distances)
    except ValueError as exc:
        raise ConfigError(f"distances: {exc}") from exc
    nsd_tolerances(cfg, class_names)


def finetune(cfg: FinetuneConfig, resume: bool = True, log_fn: Callable[[str], None] | None = None) -> FinetuneResult:
    """Fine-tune the U-Net on a prepared store and evaluate it on the test patients.

    The steps: :func:`_resolved` (recipe), the run folder bound (or a finished run's result,
    :func:`_finished`), the preflight checks, :func:`_make_split`, :func:`_run_identity` and
    :func:`_build_model` (``init``, ``freeze``), the engine and its schedule, :func:`_start_run_dir`,
    training, then :func:`_test` (best epoch, post-processing, test predictions and metrics).

    Args:
        cfg: the resolved configuration (``cfg.data.path`` = prepared store, ``cfg.out`` = run folder).
        resume: continue an interrupted run from its last complete epoch.
        log_fn: where progress messages go (the CLI prints them).

    Returns:
        A :class:`FinetuneResult` with the run folder and the summary table.
    """
    say = log_fn or log.info
    cfg = _resolved(cfg)
    bound = bind_run_dir(cfg.out, cfg, "finetune", resume)  # compares with a previous run; writes nothing
    if bound.status in ("done", "resume"):
        check_run_inputs(bound.out, bound.info, cfg)  # the same store and --init checkpoint, or refused
    if bound.done:
        return _finished(cfg, bound, say)
    for note in check_finetune(cfg):  # ... and the memory estimate: before anything is written
        say(note)
    store = SliceStore(cfg.data.path)
    _check_boundary_options(cfg, store.class_names)
    out = Path(cfg.out)
    du.init_from_env()
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    device = resolve_device(cfg.train.device)
    split = _make_split(cfg, store)
    method, in_channels = _run_identity(cfg)
    model, report = _build_model(cfg, store, in_channels, say)
    task = SegmentationTask(cfg, store, split, model, in_channels, device)
    engine = Engine(cfg.train, cfg.optim, out, resume=resume)
    total = engine.plan(task.steps_per_epoch()).total
    engine.schedule = _transfer_schedule(cfg, model, report, total, say)
    _start_run_dir(cfg, out, bound, str(device), store, split, method, report, total)
    if cfg.protocol == "paper":
        say(
            "protocol 'paper': the best epoch is selected on the TEST set, as the papers did; use --protocol standard for a sound estimate"
        )
    say(describe_recipe(cfg))

    fit = engine.fit(task)

    if du.rank() != 0:
        return FinetuneResult(out, [], "", fit.best_epoch, task.monitor)
    return _test(cfg, task, engine, fit, out, say)


def _resolved(cfg: FinetuneConfig) -> FinetuneConfig:
    """``cfg`` with every unset setting from its recipe (``config.yaml`` records the values used).

    Raises:
        ConfigError: an unknown protocol, or no prepared store (``data.path``).
    """
    if cfg.protocol not in ("paper", "standard"):
        raise ConfigError(f"protocol must be 'paper' or 'standard', got '{cfg.protocol}'")
    cfg = resolve_recipe(cfg)
    if not cfg.data.path:
        raise ConfigError("data.path is empty: give the prepared store (--data)")
    return cfg


def _finished(cfg: FinetuneConfig, bound: BoundRun, say: Callable[[str], None]) -> FinetuneResult:
    """The result of a run that is already done (its folder says so): nothing is trained again."""
    from .evaluation.evaluate import format_summary_table

    say(bound.message)
    summary = bound.summary()
    return FinetuneResult(
        bound.out,
        summary,
        format_summary_table(summary),
        bound.info.get("best_epoch"),
        "val_dice" if cfg.protocol == "standard" else "test_dice",
    )


def _make_split(cfg: FinetuneConfig, store: SliceStore) -> Split:
    """The patient split (``data.split_seed``, else the training seed)."""
    return make_split(
        store,
        cfg.data.labels,
        seed=cfg.data.split_seed if cfg.data.split_seed is not None else cfg.train.seed,
        protocol=cfg.protocol,
        kind=cfg.data.split,
        test_fraction=cfg.data.test_fraction,
        val_fraction=cfg.data.val_fraction,
    )


def _run_identity(cfg: FinetuneConfig) -> tuple[str, int]:
    """The method name the reports show and the input channels: the ``init`` checkpoint's when given
    (its ``init_parts`` checked against the parts it declares), else ``method`` (or ``scratch``)."""
    in_channels = cfg.model.in_channels
    method = cfg.method
    if cfg.init:
        state, _, ck_method, declared = read_checkpoint(cfg.init)
        check_init_parts(cfg.init_parts, declared, cfg.init, ck_method)
        in_channels = checkpoint_in_channels(state) or in_channels
        method = method or ck_method or Path(cfg.init).stem
    return method or "scratch", in_channels


def _build_model(
    cfg: FinetuneConfig, store: SliceStore, in_channels: int, say: Callable[[str], None]
) -> tuple[nn.Module, LoadReport | None]:
    """The network, the pre-trained parts of ``init`` loaded into it and the ``freeze`` parts frozen.

    Returns:
        The model and what was loaded into it (None without ``init``).

    Raises:
        ConfigError: ``init_parts`` without ``init``, ``init`` into a model other than the U-Net,
            or a ``freeze`` part the model does not have.
    """
    model = create_model(cfg.model, store.num_classes, in_channels)
    report = None
    if cfg.init_parts and not cfg.init:
        raise ConfigError("init_parts: set init (a pre-trained checkpoint) too, or leave init_parts unset")
    if cfg.init:
        if cfg.model.name != "unet":
            raise ConfigError("pre-trained weights load into model.name=unet only")
        report = load_pretrained(model, cfg.init, parts=cfg.init_parts)
        say(report.summary())
    check_freeze(cfg, model)  # real parts of this model, and something left to train
    warn_frozen_random(cfg, report.parts if report is not None else (), say)
    for part in cfg.freeze:
        sub = getattr(model, part, None)
        if sub is None:
            raise ConfigError(f"freeze: the model has no part '{part}'")
        for p in sub.parameters():
            p.requires_grad_(False)
    return model, report


def _start_run_dir(
    cfg: FinetuneConfig,
    out: Path,
    bound: BoundRun,
    device: str,
    store: SliceStore,
    split: Split,
    method: str,
    report: LoadReport | None,
    total: int,
) -> None:
    """The run folder, only now that the run is known to be valid: ``config.yaml``, ``run.json``
    (what the reports read), ``splits.json`` and ``load_report.json``."""
    init_run_dir(
        out,
        cfg,
        "finetune",
        device,
        {
            "method": method,
            "dataset": store.plan.get("dataset"),
            "dataset_label": store.plan.get("dataset_label") or store.plan.get("dataset"),
            "labels": cfg.data.labels,
            "protocol": cfg.protocol,
            "data": str(Path(cfg.data.path).resolve()),
            "class_names": store.class_names,
            "init": cfg.init,
            "selected_on": "validation" if cfg.protocol == "standard" else "test (as the papers did)",
            "train_cases": len(split.train),
            "pretrained_parts": list(report.parts) if report is not None else [],
            "total_steps": total,
            "inputs": run_inputs(cfg),
        },
        start_over=bound.status == "start_over",
    )
    if du.rank() == 0:
        atomic_write_json(out / "splits.json", split.to_dict())
        if report is not None:
            atomic_write_json(out / "load_report.json", report.to_dict())


def _test(
    cfg: FinetuneConfig, task: SegmentationTask, engine: Engine, fit: FitResult, out: Path, say: Callable[[str], None]
) -> FinetuneResult:
    """The best epoch's model on the test patients: post-processing decided on validation,
    ``predictions/<case>.npy``, the metrics (``results``) and the run marked done."""
    from .evaluation.evaluate import evaluate_arrays, format_summary_table, write_results

    model, store, split = task.model, task.store, task.split
    if engine.best_path.is_file():
        model.load_state_dict(torch.load(engine.best_path, map_location=task.device, weights_only=False)["model"])
    model.to(task.device)
    keep_largest = _decide_postprocessing(cfg, task, model, split, out, say)
    items = []
    (out / "predictions").mkdir(exist_ok=True)
    for cid in split.test:
        pred = task.predict(model, cid)
        if keep_largest:
            pred = keep_largest_component(pred, keep_largest)
        atomic_save_npy(out / "predictions" / f"{cid}.npy", pred)
        items.append((cid, pred, task.reference(cid), store.info(cid).spacing))
    result = evaluate_arrays(
        items,
        store.class_names,
        cfg.protocol,
        spacing_known=store.spacing_known,
        distances=cfg.distances,
        nsd_tolerance=nsd_tolerances(cfg, store.class_names),
    )
    write_results(result, out)
    table = format_summary_table(result.summary)
    mark_done(out, best_epoch=fit.best_epoch, best_score=fit.best_score, steps=fit.steps)
    return FinetuneResult(out, result.summary, table, fit.best_epoch, task.monitor)
