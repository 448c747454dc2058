"""One small registry class and the tables that find things by name.

Registry key = module file name = command-line value (``supercl``, ``macl``, ``acdc``...).
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["DATASETS", "METHODS", "MODELS", "Registry", "RegistryEntry"]

T = TypeVar("T")


@dataclass(frozen=True)
class RegistryEntry(Generic[T]):
    """A registered object with its one-line description and source paper."""

    name: str
    obj: T
    description: str = ""
    paper: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Maps names to factories (classes or functions).

    Example::

        METHODS = Registry("method")

        @METHODS.register("simclr", description="NT-Xent on two views", paper="Chen et al. 2020")
        class SimCLR(Method): ...

        METHODS.get("simclr")
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, RegistryEntry[T]] = {}

    def register(self, name: str, *, description: str = "", paper: str = "", **extra: Any) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (a duplicate name warns and replaces)."""

        def deco(obj: T) -> T:
            if name in self._entries:
                warnings.warn(f"{self.kind} '{name}' registered twice; the later one wins", stacklevel=2)
            self._entries[name] = RegistryEntry(name, obj, description, paper, dict(extra))
            return obj

        return deco

    def get(self, name: str) -> T:
        """The object registered as ``name``; ``KeyError`` with the known names otherwise."""
        return self.entry(name).obj

    def entry(self, name: str) -> RegistryEntry[T]:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise KeyError(f"unknown {self.kind} '{name}'; known: {known}") from None

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted registered names matching a shell-style ``pattern``."""
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[RegistryEntry[T]]:
        return iter(self._entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._entries)


METHODS: Registry[Any] = Registry("method")
MODELS: Registry[Any] = Registry("model")
DATASETS: Registry[Any] = Registry("dataset")
