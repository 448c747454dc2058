"""Errors that the command line prints as one line (never a traceback)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["MedsslError", "DataError", "ConfigError", "TrainingError"]


class MedsslError(Exception):
    """Base of every error the CLI reports as ``medssl: error: <message>``."""


class DataError(MedsslError):
    """A problem with one input file: the message names the file and the problem.

    Example::

        raise DataError("/data/label_3.nii.gz", "label value 7 not in {0, 1, 2}")
    """

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = str(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class ConfigError(MedsslError):
    """An invalid configuration value or combination."""


class TrainingError(MedsslError):
    """Training cannot go on (non-finite loss, ...)."""
