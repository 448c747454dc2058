"""The one training engine (optimiser, schedule, AMP, EMA updates, DDP, logging, checkpoints, resume)."""

from .trainer import Engine, Task, build_optimizer, lr_at, resolve_device

__all__ = ["Engine", "Task", "build_optimizer", "lr_at", "resolve_device"]
