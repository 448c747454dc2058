"""Errors that the command line prints as one line (never a traceback).

Exit codes (one convention for every command): **2** when the command cannot run as given (a bad
argument, setting, path or input file: :class:`ConfigError`, :class:`DataError`, and argparse's own
usage errors), **1** when it ran and failed (:class:`TrainingError`, an I/O error, an internal error),
**130** when interrupted (Ctrl-C).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_USAGE", "ConfigError", "DataError", "MedsslError", "TrainingError"]

#: the command cannot run as given: fix the arguments, settings or input data
EXIT_USAGE = 2
#: the command ran and failed
EXIT_FAILURE = 1
#: interrupted by the user (Ctrl-C)
EXIT_INTERRUPTED = 130


class MedsslError(Exception):
    """Base of every error the CLI reports as ``medssl: error: <message>``."""

    #: the process exit status the CLI uses for this error
    exit_code: int = EXIT_FAILURE


class DataError(MedsslError):
    """A problem with one input file: the message names the file and the problem.

    Example::

        raise DataError("/data/label_3.nii.gz", "label value 7 not in {0, 1, 2}")
    """

    exit_code = EXIT_USAGE

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = str(path) if path is not None else None
        self.problem = problem
        self.problems: list[Any] = []  # every problem found, where a check reports several (prepare's verify)
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class ConfigError(MedsslError):
    """An invalid configuration value or combination (the message starts with the setting's name)."""

    exit_code = EXIT_USAGE


class TrainingError(MedsslError):
    """Training cannot go on (non-finite loss, ...)."""

    exit_code = EXIT_FAILURE
