"""The one training loop of medssl. Fine-tuning and every pre-training method run through
:class:`Engine`; what differs is the :class:`Task` (what a step computes, how to validate).

The engine owns: device and AMP, DDP (``torchrun``), the optimiser and its per-iteration cosine
schedule, gradient clipping, EMA updates of target networks, non-finite loss detection, CSV (and
TensorBoard) logs, a progress bar with rate and ETA, atomic per-epoch checkpoints and resume.
"""

from __future__ import annotations

import csv
import math
import os
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..config import OptimCfg, TrainCfg, required
from ..errors import ConfigError, TrainingError
from ..utils import distributed as du
from ..utils.files import atomic_write, torch_save
from .transfer import LrSchedule, SingleRate

__all__ = [
    "Engine",
    "Task",
    "autocast_dtype",
    "build_optimizer",
    "cpu_has_bf16_matmul",
    "lr_at",
    "resolve_device",
    "seed_everything",
]


class Task(Protocol):
    """What the engine trains. ``model`` holds every trained parameter.

    ``model`` and ``monitor`` are read-only to the engine: a task may declare them as plain
    attributes of a narrower type (a :class:`~medssl.methods.base.Method`, a fixed metric name or None).
    """

    #: DDP must look for parameters without gradient (methods with unused heads/blocks)
    find_unused_parameters: bool

    @property
    def model(self) -> nn.Module:
        """The module that holds every trained parameter."""
        ...

    @property
    def monitor(self) -> str | None:
        """The metric of ``validate`` that selects the best checkpoint (higher is better), or None (the last epoch)."""
        ...

    def steps_per_epoch(self) -> int: ...

    def train_loader(self, epoch: int) -> Iterable[dict[str, Any]]: ...

    def training_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Tensor]: ...

    def on_step(self, step: int, max_steps: int) -> None: ...

    def after_step(self, progress: float) -> None: ...

    def validate(self, model: nn.Module, epoch: int) -> dict[str, float]: ...


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> this rank's CUDA device if available, else CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' asked for but CUDA is not available; use --device cpu")
    return dev


def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU has bfloat16 matrix units (Intel AMX) that oneDNN uses for bf16 convolutions.

    There bf16 autocast makes a 128-px training step 1.8-2.2x faster (``benchmarks/bench_amp.py``);
    without them bf16 arithmetic is emulated. ``amp=auto`` stays fp32 on CPUs all the same (the
    Hippocampus grid lost Dice with bf16; docs/performance.md). False when PyTorch cannot tell.
    """
    try:
        return bool(torch.cpu._is_amx_tile_supported()) and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - older or non-x86 builds
        return False


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` (``auto``: bf16 on CUDA if supported else fp16; off on CPU)."""
    if amp == "none":
        return None
    if amp == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp in ("bf16", "bfloat16"):
        return torch.bfloat16
    if amp in ("fp16", "float16"):
        if device.type != "cuda":
            raise ConfigError("amp=fp16 needs a CUDA device; use amp=bf16 on CPU")
        return torch.float16
    raise ConfigError(f"amp must be auto|none|bf16|fp16, got '{amp}'")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed torch (all devices), numpy's legacy global state and ``random``; optionally deterministic kernels."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def build_optimizer(params: Iterable[Any], cfg: OptimCfg) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (momentum, Nesterov off) from the configuration.

    Args:
        params: parameters, or parameter groups (dicts with ``params`` and any other keys, as
            :meth:`~medssl.engine.transfer.LrSchedule.param_groups` gives); frozen parameters are left out.
        cfg: the optimiser settings.
    """
    params = list(params)
    if params and isinstance(params[0], dict):
        params = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in params]
        params = [g for g in params if g["params"]]
    else:
        params = [p for p in params if p.requires_grad]
    name = cfg.name.lower()
    if name not in ("adam", "adamw", "sgd"):
        raise ConfigError(f"optim.name must be adam|adamw|sgd, got '{cfg.name}'")
    lr = required(cfg.lr, "optim.lr")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def lr_at(step: int, total: int, cfg: OptimCfg) -> float:
    """Learning rate at ``step`` of ``total``: linear warm-up, then cosine from ``lr`` to ``min_lr`` (or constant).

    Raises:
        ConfigError: an unknown ``optim.schedule``, or a setting it needs left unset (None).
    """
    lr = required(cfg.lr, "optim.lr")
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return lr
    if cfg.schedule != "cosine":
        raise ConfigError(f"optim.schedule must be cosine|constant, got '{cfg.schedule}'")
    warmup, min_lr = required(cfg.warmup_steps, "optim.warmup_steps"), required(cfg.min_lr, "optim.min_lr")
    span = max(total - warmup, 1)
    t = min(max(step - warmup, 0) / span, 1.0)
    return min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * t))


@dataclass
class FitResult:
    """What :meth:`Engine.fit` returns."""

    epochs: int
    steps: int
    best_score: float | None
    best_epoch: int | None
    last_metrics: dict[str, float]
    stopped_early: bool = False


class _CsvLog:
    """Append-only CSV whose header grows with new columns (rewritten atomically when it does)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if path.is_file():
            with open(path, newline="") as f:
                self.rows = list(csv.DictReader(f))

    def truncate_after(self, key: str, value: float) -> None:
        self.rows = [r for r in self.rows if float(r.get(key, 0) or 0) <= value]
        self._flush()

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self._flush()

    def _flush(self) -> None:
        cols: list[str] = []
        for r in self.rows:
            cols += [k for k in r if k not in cols]

        def write(tmp: str) -> None:
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=cols)
                w.writeheader()
                for r in self.rows:
                    w.writerow({k: _fmt(v) for k, v in r.items()})

        atomic_write(self.path, write)


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


@dataclass
class _Plan:
    """The run's length: optimiser steps per epoch, steps in all, epochs."""

    steps_per_epoch: int
    total: int
    epochs: int


@dataclass
class _Run:
    """What :meth:`Engine.fit` trains: the model, its DDP/compiled wrapper, optimiser and scaler."""

    model: nn.Module
    train_model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: Any


@dataclass
class _State:
    """Where the run is: next epoch, steps done, best score and epoch, step of the last validation."""

    epoch: int = 0
    step: int = 0
    best: float | None = None
    best_epoch: int | None = None
    validated_at: int = 0
    resumed_from: int | None = None


class _Logs:
    """``log.csv`` (one row per epoch), ``steps.csv`` (every ``log_every`` steps) and TensorBoard."""

    def __init__(self, engine: Engine, state: _State) -> None:
        main = engine.is_main
        self.epochs = _CsvLog(engine.out / "log.csv") if main else None
        self.steps = _CsvLog(engine.out / "steps.csv") if main else None
        if state.resumed_from is not None and self.epochs is not None and self.steps is not None:
            self.epochs.truncate_after("epoch", state.resumed_from)
            self.steps.truncate_after("step", state.step)
        self.tb = engine._tensorboard()

    def step_row(self, step: int, epoch: int, lrs: dict[str, float], losses: dict[str, Tensor], bar: Any) -> None:
        if self.steps is None:
            return
        lr = lrs["lr"]
        row = {"step": step, "epoch": epoch, **lrs, **{k: float(v) for k, v in losses.items()}}
        self.steps.append(row)
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("step", "epoch"):
                    self.tb.add_scalar(f"train/{k}", v, step)
        bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{lr:.2e}")

    def epoch_row(self, row: dict[str, Any], metrics: dict[str, float]) -> None:
        if self.epochs is None:
            return
        self.epochs.append(row)
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(f"val/{k}", v, row["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


class Engine:
    """Runs a :class:`Task`.

    Args:
        train: engine settings (epochs, steps, device, AMP, seed, logging...).
        optim: optimiser and schedule.
        out_dir: run folder (logs and checkpoints go here).
        resume: continue from ``checkpoint_latest.pt`` when present.
        schedule: parameter groups and their per-step learning rates (default: one group at
            :func:`lr_at`; fine-tuning with pre-trained parts: :class:`~medssl.engine.transfer.TransferSchedule`).

    Example::

        engine = Engine(cfg.train, cfg.optim, run_dir, resume=True)
        result = engine.fit(task)
    """

    def __init__(
        self,
        train: TrainCfg,
        optim: OptimCfg,
        out_dir: str | Path,
        resume: bool = True,
        schedule: LrSchedule | None = None,
    ) -> None:
        self.cfg, self.optim_cfg = train, optim
        #: parameter groups and their learning rates (one group at ``lr_at`` by default)
        self.schedule: LrSchedule = schedule or SingleRate(optim)
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.resume = resume
        self.device = resolve_device(train.device)
        self.amp_dtype = autocast_dtype(train.amp, self.device)
        self.is_main = du.rank() == 0
        if self.device.type == "cuda" and not train.deterministic:
            torch.backends.cudnn.benchmark = True  # fixed patch sizes: let cuDNN pick the fastest kernels

    # -- checkpoints -----------------------------------------------------------------------------
    @property
    def latest_path(self) -> Path:
        return self.out / "checkpoint_latest.pt"

    @property
    def best_path(self) -> Path:
        return self.out / "checkpoint_best.pt"

    def _save(self, path: Path, payload: dict[str, Any]) -> None:
        if self.is_main:
            atomic_write(path, lambda tmp: torch_save(payload, tmp))

    # -- the loop --------------------------------------------------------------------------------
    def fit(self, task: Task) -> FitResult:
        """Train ``task`` to the end of its schedule (resuming from ``checkpoint_latest.pt`` if asked).

        Each epoch: :meth:`_train_epoch` (the optimiser steps), :meth:`_validate` when the rhythm
        says so, :meth:`_select` (best checkpoint), then :meth:`_end_epoch` (checkpoint and log row).
        """
        run = self._build(task)
        plan = self.plan(task.steps_per_epoch())
        state = self._restore(run)
        logs = _Logs(self, state)
        from ..utils.progress import progress_bar

        bar = progress_bar(
            total=plan.total,
            initial=state.step,
            desc=self.out.name,
            unit="step",
            disable=not (self.cfg.progress and self.is_main),
            dynamic_ncols=True,
        )
        last_metrics: dict[str, float] = {}
        for epoch in range(state.epoch, plan.epochs):
            if state.step >= plan.total:
                break
            t0 = time.time()
            train_means = self._train_epoch(task, run, plan, state, epoch, logs, bar)
            metrics = self._validate(task, run.model, plan, state, epoch)
            last_metrics = {
                **{f"train_{k}" if k != "loss" else "train_loss": v for k, v in train_means.items()},
                **metrics,
            }
            self._select(task, run.model, state, epoch, metrics)
            self._end_epoch(run, plan, state, epoch, logs, last_metrics, metrics, time.time() - t0)
        bar.close()
        logs.close()
        if du.is_distributed():
            dist.barrier()
        return FitResult(plan.epochs, state.step, state.best, state.best_epoch, last_metrics)

    def plan(self, steps_per_epoch: int) -> _Plan:
        """How long the run is: ``max_steps`` and/or ``epochs`` (100 when neither is given)."""
        cfg = self.cfg
        spe = max(1, steps_per_epoch)
        if cfg.epochs is None and cfg.max_steps is not None:
            total = cfg.max_steps
        else:
            total = (cfg.epochs if cfg.epochs is not None else 100) * spe
            if cfg.max_steps is not None:
                total = min(total, cfg.max_steps)
        return _Plan(spe, total, math.ceil(total / spe))

    def _build(self, task: Task) -> _Run:
        """The model on its device (DDP, SyncBatchNorm, channels-last, compile), optimiser and scaler."""
        cfg = self.cfg
        model = task.model.to(self.device)
        if cfg.channels_last:
            # Module.to takes memory_format (documented, and it works); torch's stubs list no overload with it
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        train_model: nn.Module = model
        if du.is_distributed():
            if self.device.type == "cuda":
                train_model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            train_model = nn.parallel.DistributedDataParallel(
                train_model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=getattr(task, "find_unused_parameters", False)
                or self.schedule.find_unused_parameters,
            )
        if cfg.compile:
            # torch.compile returns a callable wrapper typed as a function; it is the compiled module
            train_model = torch.compile(train_model)  # type: ignore[assignment]
        optimizer = build_optimizer(self.schedule.param_groups(model), self.optim_cfg)
        scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        return _Run(model, train_model, optimizer, scaler)

    def _restore(self, run: _Run) -> _State:
        """The state to start from: ``checkpoint_latest.pt`` when resuming, else a fresh one."""
        state = _State()
        if self.resume and self.latest_path.is_file():
            ck = _read_resume_checkpoint(self.latest_path, self.device)
            run.model.load_state_dict(ck["model"])
            run.optimizer.load_state_dict(ck["optimizer"])
            if ck.get("scaler"):
                run.scaler.load_state_dict(ck["scaler"])
            state = _State(
                ck["epoch"] + 1,
                ck["step"],
                ck.get("best"),
                ck.get("best_epoch"),
                ck.get("validated_at", ck["step"]),
                resumed_from=ck["epoch"],
            )
            torch.set_rng_state(ck["torch_rng"])
        return state

    def _train_epoch(
        self, task: Task, run: _Run, plan: _Plan, state: _State, epoch: int, logs: _Logs, bar: Any
    ) -> dict[str, float]:
        """One pass over ``task.train_loader(epoch)`` (or up to the last step); the mean losses."""
        cfg = self.cfg
        run.model.train()
        check_every = 1 if self.device.type == "cpu" else max(1, cfg.log_every)
        sums: dict[str, Tensor] = {}
        n = 0
        pending: list[tuple[int, dict[str, Tensor]]] = []
        for batch in task.train_loader(epoch):
            if state.step >= plan.total:
                break
            lrs, losses = self._step(task, run, plan, state.step, _to_device(batch, self.device, cfg.channels_last))
            state.step += 1
            task.after_step(state.step / plan.total)
            detached = {k: v.detach().float() for k, v in losses.items()}
            pending.append((state.step, detached))
            for k, v in detached.items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
            if state.step % check_every == 0 or state.step == plan.total:
                self._check_finite(pending)
                pending = []
            if state.step % max(1, cfg.log_every) == 0:
                logs.step_row(state.step, epoch, lrs, detached, bar)
            bar.update(1)
        self._check_finite(pending)
        return {k: float(du.all_reduce_mean(v / max(n, 1))) for k, v in sums.items()}

    def _step(
        self, task: Task, run: _Run, plan: _Plan, step: int, batch: Any
    ) -> tuple[dict[str, float], dict[str, Tensor]]:
        """One optimiser step at ``step``: learning rate, forward (autocast), backward, clip, update."""
        lrs = self._set_lrs(run, step, plan.total)
        self.schedule.on_step(step, plan.total)
        task.on_step(step, plan.total)
        with torch.autocast(
            self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None
        ):
            losses = task.training_step(run.train_model, batch)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(losses["loss"]).backward()
        if self.optim_cfg.grad_clip:
            run.scaler.unscale_(run.optimizer)
            nn.utils.clip_grad_norm_(run.model.parameters(), self.optim_cfg.grad_clip)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        return lrs, losses

    def _set_lrs(self, run: _Run, step: int, total: int) -> dict[str, float]:
        """Each parameter group's learning rate at ``step`` (from the schedule); returns what the logs
        show: ``lr`` (the first group's) and ``lr_<name>`` of the others."""
        lrs: dict[str, float] = {}
        for i, g in enumerate(run.optimizer.param_groups):
            g["lr"] = self.schedule.lr(g, step, total)
            lrs["lr" if i == 0 else f"lr_{g.get('name', i)}"] = g["lr"]
        return lrs

    def should_validate(self, epoch: int, step: int, validated_at: int, last: bool) -> bool:
        """Whether to validate after ``epoch``: the last epoch always; else every ``val_every``
        epochs, or once ``val_every_steps`` steps have passed since the last validation, or (neither
        set) every epoch."""
        cfg = self.cfg
        if last:
            return True
        if cfg.val_every is not None and (epoch + 1) % cfg.val_every == 0:
            return True
        if cfg.val_every_steps is not None:
            return step // cfg.val_every_steps > validated_at // cfg.val_every_steps
        return cfg.val_every is None

    def _validate(self, task: Task, model: nn.Module, plan: _Plan, state: _State, epoch: int) -> dict[str, float]:
        last = state.step >= plan.total or epoch == plan.epochs - 1
        if not self.should_validate(epoch, state.step, state.validated_at, last):
            return {}
        state.validated_at = state.step
        model.eval()
        with torch.no_grad():
            return task.validate(model, epoch) or {}

    def _select(self, task: Task, model: nn.Module, state: _State, epoch: int, metrics: dict[str, float]) -> None:
        """Keep the best checkpoint by ``task.monitor`` (higher is better); without one, the last epoch."""
        if task.monitor is None:
            state.best_epoch = epoch
            return
        score = metrics.get(task.monitor)
        if score is None or math.isnan(score) or (state.best is not None and score <= state.best):
            return
        state.best, state.best_epoch = score, epoch
        self._save(
            self.best_path, {"model": model.state_dict(), "epoch": epoch, "score": score, "monitor": task.monitor}
        )

    def _end_epoch(
        self,
        run: _Run,
        plan: _Plan,
        state: _State,
        epoch: int,
        logs: _Logs,
        last_metrics: dict[str, float],
        metrics: dict[str, float],
        seconds: float,
    ) -> None:
        """The atomic ``checkpoint_latest.pt`` and the epoch's row of ``log.csv``."""
        self._save(
            self.latest_path,
            {
                "model": run.model.state_dict(),
                "optimizer": run.optimizer.state_dict(),
                "scaler": run.scaler.state_dict(),
                "epoch": epoch,
                "step": state.step,
                "best": state.best,
                "best_epoch": state.best_epoch,
                "validated_at": state.validated_at,
                "torch_rng": torch.get_rng_state(),
            },
        )
        group = run.optimizer.param_groups[0]
        lr = self.schedule.lr(group, max(state.step - 1, 0), plan.total)
        logs.epoch_row(
            {"epoch": epoch, "step": state.step, "lr": lr, **last_metrics, "seconds": round(seconds, 3)}, metrics
        )

    def _check_finite(self, pending: list[tuple[int, dict[str, Tensor]]]) -> None:
        if not pending:
            return
        flags = torch.stack([torch.isfinite(torch.stack(list(d.values()))).all() for _, d in pending])
        if bool(flags.all()):
            return
        for s, d in pending:
            bad = [k for k, v in d.items() if not bool(torch.isfinite(v))]
            if bad:
                parts = [k for k in bad if k != "loss"] or bad
                raise TrainingError(
                    f"non-finite loss at step {s} (component: {', '.join(parts)}); the last complete checkpoint is "
                    f"{self.latest_path}; lower optim.lr, set optim.grad_clip, or check the input data"
                )

    def _tensorboard(self) -> Any:
        if self.cfg.logger != "tensorboard" or not self.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            warnings.warn(
                "tensorboard is not installed (pip install medssl[tensorboard]); logging to CSV only", stacklevel=2
            )
            return None
        return SummaryWriter(str(self.out / "tensorboard"))


def _to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    if isinstance(batch, Tensor):
        t = batch.to(device, non_blocking=True)
        if channels_last and t.ndim == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        return t
    if isinstance(batch, dict):
        return {k: _to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device, channels_last) for v in batch)
    return batch


def _read_resume_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """``checkpoint_latest.pt`` of an interrupted run; a truncated or corrupt file is named (one line)."""
    from ..errors import DataError

    try:
        ck = torch.load(path, map_location=device, weights_only=False)
    except Exception as e:
        raise DataError(
            path,
            f"cannot resume from this checkpoint (truncated or corrupt: {e.__class__.__name__}); "
            "rerun with --no-resume to start the run over",
        ) from None
    if not isinstance(ck, dict) or not {"model", "optimizer", "epoch", "step", "torch_rng"} <= set(ck):
        raise DataError(path, "not a medssl training checkpoint; rerun with --no-resume to start the run over")
    return ck
