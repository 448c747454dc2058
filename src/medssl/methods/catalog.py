"""The method catalogue: every registered pre-training method with its description and paper."""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import METHODS

__all__ = ["MethodInfo", "list_methods", "load_all_methods"]


@dataclass(frozen=True)
class MethodInfo:
    name: str
    description: str
    paper: str
    pretrains: tuple[str, ...]
    views: tuple[str, ...]
    needs: tuple[str, ...]
    variants: tuple[str, ...]


def load_all_methods() -> None:
    """Import every module of ``medssl.methods`` so that each registers itself."""
    import importlib
    import pkgutil

    from .. import methods as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name not in ("base", "catalog"):
            importlib.import_module(f"{pkg.__name__}.{mod.name}")


def list_methods(pattern: str = "*") -> list[MethodInfo]:
    """Registered methods matching ``pattern``, sorted by name."""
    load_all_methods()
    out = []
    for name in METHODS.names(pattern):
        e = METHODS.entry(name)
        cls = e.obj
        out.append(
            MethodInfo(
                name,
                e.description,
                e.paper,
                tuple(cls.pretrains),
                tuple(cls.views),
                tuple(sorted(cls.needs)),
                tuple(sorted(cls.variants)),
            )
        )
    return out
