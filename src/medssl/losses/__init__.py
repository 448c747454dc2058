"""Losses: pure functions of tensors (no model, optimiser or logging inside)."""

from .supcon import (
    cosine_logits,
    instance_mask,
    label_mask,
    positional_mask,
    supcon_from_logits,
    supcon_loss,
    tile_views,
)

__all__ = [
    "cosine_logits",
    "instance_mask",
    "label_mask",
    "positional_mask",
    "supcon_from_logits",
    "supcon_loss",
    "tile_views",
]
