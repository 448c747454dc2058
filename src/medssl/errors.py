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


def _unwrap_worker(message: str) -> str:
    """The original one-line message of an error re-raised from a data-loader worker.

    PyTorch re-raises a worker's exception as ``type(message)`` where ``message`` is ``"Caught
    DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last): ... \n
    medssl.errors.DataError: FILE: problem"``; the user needs the last line only.
    """
    if not message.startswith("Caught ") or "Original Traceback" not in message:
        return message
    last = message.rstrip().splitlines()[-1]
    head, sep, tail = last.partition(": ")
    return tail if sep and head.rsplit(".", 1)[-1].endswith("Error") else last


class MedsslError(Exception):
    """Base of every error the CLI reports as ``medssl: error: <message>``.

    Raised in a data-loader worker, it reaches the main process as the same type with its own
    one-line message (not the worker's traceback).
    """

    #: the process exit status the CLI uses for this error
    exit_code: int = EXIT_FAILURE

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (_unwrap_worker(args[0]),)
        super().__init__(*args)


class DataError(MedsslError):
    """A problem with one input file: the message names the file and the problem.

    Example::

        raise DataError("/data/label_3.nii.gz", "label value 7 not in {0, 1, 2}")
    """

    exit_code = EXIT_USAGE

    def __init__(self, path: str | Path | None, problem: str | None = None) -> None:
        if problem is None:  # one argument: the whole message (re-raised from a data-loader worker)
            path, problem = None, _unwrap_worker(str(path))
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
