"""Pre-training methods, one module each, found by name through ``medssl.registry.METHODS``."""

from .base import Method, cosine_schedule, deactivate_requires_grad, update_momentum

__all__ = ["Method", "cosine_schedule", "deactivate_requires_grad", "update_momentum"]
