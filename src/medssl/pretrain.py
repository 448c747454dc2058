"""Self-supervised pre-training of the U-Net with any registered method, on the one engine.

``pretrain(cfg)`` builds the method around a fresh U-Net, the data pipeline the method declares
(views, superpixels, neighbours), trains it and writes ``pretrain.pt``: the pre-trained parts of the
U-Net (``encoder`` and, for MACL/GCL/DiRA, ``decoder``), which ``medssl finetune --init`` loads.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from .config import PretrainConfig, apply_overrides, config_to_dict
from .data.datasets import PretrainSlices, seed_worker
from .data.store import SliceStore
from .engine.provenance import check_run_inputs, run_inputs
from .engine.rundir import BoundRun, bind_run_dir, init_run_dir, mark_done
from .engine.trainer import Engine, FitResult, resolve_device, seed_everything
from .errors import ConfigError, DataError
from .evaluation.representation import build_probe_set, collapsed, format_diagnostics, probe_diagnostics
from .methods.base import Method, update_momentum
from .models.unet import UNet
from .preflight import check_pretrain
from .registry import METHODS
from .utils import distributed as du
from .utils.files import atomic_write, atomic_write_json, torch_save

__all__ = ["PretrainResult", "PretrainTask", "apply_variant", "build_method", "pretrain"]

log = logging.getLogger("medssl")


def _load_methods() -> None:
    from .methods.catalog import load_all_methods

    load_all_methods()


def apply_variant(cfg: PretrainConfig) -> PretrainConfig:
    """Apply the method's named variant (``cfg.variant``) under the user's explicit settings.

    Method arguments given in ``cfg.method_args`` win over the variant's; optimiser fields are taken
    from the variant only where they still have the pre-training default.
    """
    if not cfg.variant:
        return cfg
    _load_methods()
    cls = METHODS.get(cfg.method)
    if cfg.variant not in cls.variants:
        known = ", ".join(sorted(cls.variants)) or "none"
        raise ConfigError(f"method '{cfg.method}' has no variant '{cfg.variant}' (known: {known})")
    spec = cls.variants[cfg.variant]
    overrides: dict[str, Any] = {}
    default_optim = config_to_dict(PretrainConfig().optim)
    current = config_to_dict(cfg.optim)
    for k, v in spec.get("optim", {}).items():
        if current.get(k) == default_optim.get(k):
            overrides[f"optim.{k}"] = v
    for k, v in spec.get("method", {}).items():
        if k not in cfg.method_args:
            overrides[f"method_args.{k}"] = v
    return apply_overrides(cfg, overrides) if overrides else cfg


def build_method(cfg: PretrainConfig) -> Method:
    """The method named by ``cfg.method`` around a fresh U-Net."""
    _load_methods()
    try:
        cls = METHODS.get(cfg.method)
    except KeyError as e:
        raise ConfigError(str(e.args[0])) from None
    if cfg.model.name != "unet":
        raise ConfigError("pre-training supports model.name=unet only")
    backbone = UNet(cfg.model.in_channels, 2, cfg.model.base_width, cfg.model.depth)
    try:
        return cls(backbone, **cfg.method_args)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"method '{cfg.method}': {e}") from None


@dataclass
class PretrainResult:
    out: Path
    checkpoint: Path
    method: str
    pretrains: tuple[str, ...]
    final_losses: dict[str, float]


class PretrainTask:
    """The pre-training :class:`~medssl.engine.Task`."""

    monitor = None
    find_unused_parameters = True

    def __init__(
        self, cfg: PretrainConfig, store: SliceStore, method: Method, device: torch.device, say: Callable[[str], None]
    ) -> None:
        from .data.views import MultiViewTransform

        self.cfg, self.store, self.model, self.device = cfg, store, method, device
        size = cfg.data.image_size or 128
        if size % (2**cfg.model.depth):
            raise ConfigError(f"image size {size} must be divisible by {2**cfg.model.depth} (2**depth)")
        cases = [c.case_id for c in store.cases]
        provider = None
        if "superpixels" in method.needs:
            from .data.superpixels import (
                SuperpixelConfig,
                SuperpixelProvider,
                build_superpixel_cache,
                superpixel_cache_dir,
            )
            from .run_checks import superpixel_cache_notice

            known = {f.name for f in fields(SuperpixelConfig)}
            unknown = sorted(set(cfg.superpixels) - known)
            if unknown:
                raise ConfigError(
                    f"superpixels.{unknown[0]}: unknown setting; the superpixel settings are {', '.join(sorted(known))}"
                )
            try:
                sp_cfg = SuperpixelConfig(**{"cell_size": 2**cfg.model.depth, "view_size": size, **cfg.superpixels})
            except TypeError as e:
                raise ConfigError(f"superpixels: {e}") from None
            if sp_cfg.mode == "cache" and du.rank() == 0:
                say(superpixel_cache_notice(store.root, superpixel_cache_dir(store.root, sp_cfg)))
                say(f"superpixel cache: {build_superpixel_cache(store, sp_cfg, progress=cfg.train.progress)}")
            if du.is_distributed():
                torch.distributed.barrier()
            provider = SuperpixelProvider(sp_cfg, store)
        views = MultiViewTransform(
            views=method.views,
            neighbor="neighbor" in method.needs,
            backend=cfg.data.spatial_backend,
            noise_stride=cfg.data.elastic_noise_stride,
            **method.view_options(),
        )
        self.dataset = PretrainSlices(store, cases, size, views, method.needs, provider, seed=cfg.train.seed)
        self._gen = torch.Generator()
        self.probe = build_probe_set(store, size, labelled_cases=_probe_label_cases(cfg, store))
        #: the diagnostics of the randomly initialised encoder, the baseline of every later epoch
        self.initial_diagnostics = probe_diagnostics(method.backbone.encoder, self.probe)
        self._peak_spread = self.initial_diagnostics["embed_spread"]

    def steps_per_epoch(self) -> int:
        per_rank = math.ceil(len(self.dataset) / du.world_size())
        return max(1, per_rank // self.cfg.data.batch_size)

    def train_loader(self, epoch: int) -> DataLoader:
        self.dataset.set_epoch(epoch)
        if du.is_distributed():
            sampler: Any = DistributedSampler(self.dataset, shuffle=True, seed=self.cfg.train.seed, drop_last=True)
            sampler.set_epoch(epoch)
        else:
            self._gen.manual_seed(self.cfg.train.seed * 1000 + epoch)
            sampler = RandomSampler(self.dataset, generator=self._gen)
        if len(self.dataset) < self.cfg.data.batch_size:
            raise ConfigError(
                f"batch size {self.cfg.data.batch_size} is larger than the {len(self.dataset)} slices available"
            )
        return DataLoader(
            self.dataset,
            batch_size=self.cfg.data.batch_size,
            sampler=sampler,
            num_workers=self.cfg.data.num_workers,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=seed_worker,
        )

    def training_step(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return model(batch)

    def on_step(self, step: int, max_steps: int) -> None:
        self.model.on_step(step, max_steps)

    def after_step(self, progress: float) -> None:
        pairs = self.model.momentum_pairs()
        if pairs:
            m = self.model.momentum(progress)
            for online, target in pairs:
                update_momentum(online, target, m)

    def validate(self, model: nn.Module, epoch: int) -> dict[str, float]:
        """Representation diagnostics of the encoder on the fixed probe set (``log.csv``, TensorBoard).

        ``embed_spread`` (1 = spread over the sphere, 0 = collapsed), ``effective_rank``,
        ``knn_position_mae`` (k-NN slice position across volumes) and, when the store has labelled
        validation patients, ``linear_probe_dice`` (:mod:`medssl.evaluation.representation`).
        Warns when the representation collapses.
        """
        out = probe_diagnostics(self.model.backbone.encoder, self.probe, self.device)
        spread = out["embed_spread"]
        if collapsed(spread, self._peak_spread):
            warnings.warn(
                f"epoch {epoch}: embedding spread {out['embed_spread']:.3f} (1 = spread, 0 = one point): "
                f"the representation may have collapsed (it reached {self._peak_spread:.3f})",
                stacklevel=2,
            )
        self._peak_spread = max(self._peak_spread, spread)
        return out


def _probe_label_cases(cfg: PretrainConfig, store: SliceStore) -> list[str]:
    """Labelled cases the linear probe may use: the validation patients of the seeded split.

    Fine-tuning with the same split seed never tests on them, so the probe is not a test score.
    """
    if not any(c.has_label for c in store.cases):
        return []
    from .data.splits import make_split

    try:
        seed = cfg.data.split_seed if cfg.data.split_seed is not None else cfg.train.seed
        return make_split(
            store,
            "100%",
            seed=seed,
            protocol="standard",
            test_fraction=cfg.data.test_fraction,
            val_fraction=cfg.data.val_fraction,
        ).val
    except (ConfigError, DataError):
        return []


def pretrain(cfg: PretrainConfig, resume: bool = True, log_fn: Callable[[str], None] | None = None) -> PretrainResult:
    """Pre-train the U-Net with ``cfg.method`` on a prepared store.

    The steps: the preflight checks, the method's variant, the run folder bound (or a finished
    run's result, :func:`_finished`), the method and its :class:`PretrainTask`, :func:`_start_run_dir`,
    training, then :func:`_write_outputs` (``pretrain.pt``, ``diagnostics.json``).

    Args:
        cfg: resolved configuration (``cfg.data.path`` = prepared store; ``cfg.out`` = run folder).
        resume: continue an interrupted run from its last complete epoch.
        log_fn: where messages go.

    Returns:
        A :class:`PretrainResult`; ``checkpoint`` is the ``pretrain.pt`` to pass to ``finetune --init``.
    """
    say = log_fn or log.info
    for note in check_pretrain(cfg):  # method, arguments, batch size, store, device, memory: before anything is written
        say(note)
    cfg = apply_variant(cfg)
    bound = bind_run_dir(cfg.out, cfg, "pretrain", resume)  # compares with a previous run; writes nothing
    if bound.status in ("done", "resume"):
        check_run_inputs(bound.out, bound.info, cfg)  # the same store, or refused
    if bound.done:
        return _finished(cfg, bound, say)
    if not cfg.data.path:
        raise ConfigError("data.path is empty: give the prepared store (--data)")
    store = SliceStore(cfg.data.path)
    du.init_from_env()
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    device = resolve_device(cfg.train.device)
    method = build_method(cfg)
    out = Path(cfg.out)
    task = PretrainTask(cfg, store, method, device, say)
    _start_run_dir(cfg, out, bound, str(device), store, method)
    fit = Engine(cfg.train, cfg.optim, out, resume=resume).fit(task)
    ckpt = _write_outputs(cfg, out, task, fit, say)
    return PretrainResult(out, ckpt, cfg.method, tuple(method.pretrains), fit.last_metrics)


def _finished(cfg: PretrainConfig, bound: BoundRun, say: Callable[[str], None]) -> PretrainResult:
    """The result of a run that is already done (its folder says so): nothing is trained again."""
    say(bound.message)
    return PretrainResult(
        bound.out,
        bound.out / "pretrain.pt",
        cfg.method,
        tuple(bound.info.get("pretrains", ())),
        bound.last_metrics(),
    )


def _start_run_dir(
    cfg: PretrainConfig, out: Path, bound: BoundRun, device: str, store: SliceStore, method: Method
) -> None:
    """The run folder, only now that the run is known to be valid: ``config.yaml`` and ``run.json``."""
    init_run_dir(
        out,
        cfg,
        "pretrain",
        device,
        {
            "method": cfg.method,
            "dataset": store.plan.get("dataset"),
            "data": str(Path(cfg.data.path).resolve()),
            "pretrains": list(method.pretrains),
            "variant": cfg.variant,
            "inputs": run_inputs(cfg),
        },
        start_over=bound.status == "start_over",
    )


def _write_outputs(
    cfg: PretrainConfig, out: Path, task: PretrainTask, fit: FitResult, say: Callable[[str], None]
) -> Path:
    """``pretrain.pt`` (the pre-trained parts, for ``finetune --init``), ``diagnostics.json`` (the
    representation at the start and the end) and the run marked done, on the main process; returns
    the checkpoint's path."""
    method = task.model
    ckpt = out / "pretrain.pt"
    payload = {
        "format": "medssl-pretrain",
        "method": cfg.method,
        "pretrains": list(method.pretrains),
        "state_dict": {k: v.detach().cpu() for k, v in method.pretrained_state_dict().items()},
        "model": config_to_dict(cfg.model),
        "config": config_to_dict(cfg),
        "steps": fit.steps,
    }
    if du.rank() == 0:
        atomic_write(ckpt, lambda tmp: torch_save(payload, tmp))
        final = {k: v for k, v in fit.last_metrics.items() if k in task.initial_diagnostics}
        atomic_write_json(
            out / "diagnostics.json",
            {"initial": task.initial_diagnostics, "final": final, "probe_volumes": task.probe.volumes},
        )
        say(format_diagnostics(task.initial_diagnostics, final))
        mark_done(out, steps=fit.steps, checkpoint=str(ckpt))
    return ckpt
