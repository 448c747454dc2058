"""Progress display that suits where the output goes: a tqdm bar on a terminal, plain lines elsewhere.

A tqdm bar redraws itself with carriage returns; written to a file (``medssl demo > log``,
``nohup``, CI) every redraw stays in the file. :func:`progress_bar` returns a tqdm bar when the
stream is a terminal and a :class:`LineProgress` otherwise, which prints one plain line every few
percent (count, rate, ETA and the postfix, e.g. the loss). Both have the same ``update``,
``set_postfix``, ``set_description``, ``close`` and iteration interface.

``MEDSSL_PROGRESS`` overrides the choice: ``auto`` (default), ``bar``, ``lines`` or ``off``.

Example::

    from medssl.utils.progress import progress_bar

    bar = progress_bar(total=200, desc="pretrain", unit="step")
    for step in range(200):
        ...
        bar.set_postfix(loss=f"{loss:.4f}")
        bar.update(1)
    bar.close()
    # on a terminal: a tqdm bar; in a log file: 20 lines such as
    # pretrain: 50% 100/200 step [00:10 elapsed, ETA 00:10, 10.0 step/s] loss=0.4321
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sized
from typing import IO, Any

__all__ = ["PROGRESS_ENV", "LineProgress", "format_seconds", "progress_bar"]

#: environment variable choosing the display: ``auto``, ``bar``, ``lines`` or ``off``
PROGRESS_ENV = "MEDSSL_PROGRESS"
_MODES = ("auto", "bar", "lines", "off")


def format_seconds(seconds: float) -> str:
    """``"mm:ss"`` or ``"h:mm:ss"`` (``"?"`` when not finite)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class LineProgress:
    """A progress counter that prints plain lines (no carriage return): one every ``every_percent``
    percent of ``total``, or every ``interval_s`` seconds when the total is unknown, and a last one
    on :meth:`close` if the final count was not printed yet.

    Args:
        iterable: optional iterable to wrap (``for x in LineProgress(items)`` counts one per item).
        total: expected count (default ``len(iterable)`` when it has one; None = unknown).
        desc: prefix of every line.
        unit: unit of the count (``"step"``, ``"case"``).
        initial: starting count (a resumed run); percentages are printed from there on.
        disable: print nothing.
        file: stream written to (default ``sys.stderr``, like tqdm).
        every_percent: print a line each time the count crosses a multiple of this percentage.
        interval_s: with an unknown total, the seconds between lines.

    Example::

        bar = LineProgress(total=10, desc="prepare", unit="case", every_percent=50)
        for _ in range(10):
            bar.update()
        bar.close()   # printed "prepare:  50% 5/10 case [...]" and "prepare: 100% 10/10 case [...]"
    """

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        initial: int = 0,
        disable: bool = False,
        file: IO[str] | None = None,
        every_percent: float = 5.0,
        interval_s: float = 60.0,
    ) -> None:
        if every_percent <= 0:
            raise ValueError(f"every_percent must be > 0, got {every_percent}")
        if total is None and isinstance(iterable, Sized):
            total = len(iterable)
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.unit = unit
        self.initial = int(initial)
        self.n = int(initial)
        self.disable = disable
        self.file = file if file is not None else sys.stderr
        self.every_percent = float(every_percent)
        self.interval_s = float(interval_s)
        self.postfix: dict[str, str] = {}
        self._start = time.monotonic()
        self._last_print = self._start
        self._printed_n: int | None = None
        self._next_mark = self._mark_after(self.n)
        self._closed = False

    # -- tqdm interface ---------------------------------------------------------------------------
    def update(self, n: int = 1) -> None:
        """Add ``n`` to the count; print a line if a percentage mark (or the interval) was passed."""
        self.n += int(n)
        if self.disable or self._closed:
            return
        if self.total:
            if self._percent(self.n) >= self._next_mark - 1e-9:
                self._emit()
                self._next_mark = self._mark_after(self.n)
        elif time.monotonic() - self._last_print >= self.interval_s:
            self._emit()

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        """Values shown at the end of the next line (``loss=0.4321``); replaces the previous ones."""
        items = {**(dict(ordered_dict) if ordered_dict else {}), **kwargs}
        self.postfix = {str(k): _format_value(v) for k, v in items.items()}

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        """Change the prefix of the following lines."""
        self.desc = desc or ""

    def close(self) -> None:
        """Print the final count (if not printed yet) and stop printing."""
        if self._closed:
            return
        self._closed = True
        if not self.disable and self._printed_n != self.n:
            self._emit()

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("LineProgress was created without an iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        except GeneratorExit:  # the loop was left early (break, or an error in its body): stop quietly,
            self._closed = True  # so that no progress line is printed after the error message
            raise
        self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------------
    def _percent(self, n: int) -> float:
        return 100.0 * n / self.total if self.total else 0.0

    def _mark_after(self, n: int) -> float:
        """The first percentage mark strictly above the percentage of ``n``."""
        return (math.floor(self._percent(n) / self.every_percent + 1e-9) + 1) * self.every_percent

    def line(self) -> str:
        """The line that would be printed now."""
        now = time.monotonic()
        elapsed = now - self._start
        done = self.n - self.initial
        rate = done / elapsed if elapsed > 0 and done > 0 else math.nan
        head = f"{self.desc}: " if self.desc else ""
        if self.total:
            eta = (self.total - self.n) / rate if math.isfinite(rate) and rate > 0 else math.nan
            if self.n >= self.total:
                eta = 0.0
            count = f"{self._percent(self.n):3.0f}% {self.n}/{self.total} {self.unit}"
            timing = f"{format_seconds(elapsed)} elapsed, ETA {format_seconds(eta)}"
        else:
            count = f"{self.n} {self.unit}"
            timing = f"{format_seconds(elapsed)} elapsed"
        rate_text = f"{rate:.3g} {self.unit}/s" if math.isfinite(rate) else f"? {self.unit}/s"
        post = " " + ", ".join(f"{k}={v}" for k, v in self.postfix.items()) if self.postfix else ""
        return f"{head}{count} [{timing}, {rate_text}]{post}"

    def _emit(self) -> None:
        self.file.write(self.line() + "\n")
        self.file.flush()
        self._printed_n = self.n
        self._last_print = time.monotonic()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    initial: int = 0,
    disable: bool = False,
    file: IO[str] | None = None,
    every_percent: float = 5.0,
    mode: str | None = None,
    **tqdm_kwargs: Any,
) -> Any:
    """A progress bar for a terminal, plain progress lines for a file or a pipe.

    Args:
        iterable: optional iterable to wrap.
        total: expected count (default ``len(iterable)``).
        desc: label of the bar / prefix of the lines.
        unit: unit of the count.
        initial: starting count (resumed runs).
        disable: show nothing.
        file: the stream (default ``sys.stderr``, read at call time).
        every_percent: with plain lines, one line per this many percent.
        mode: ``auto`` (a bar if ``file`` is a terminal, else lines), ``bar``, ``lines`` or ``off``;
            default ``$MEDSSL_PROGRESS`` or ``auto``.
        **tqdm_kwargs: passed to tqdm only (e.g. ``dynamic_ncols=True``).

    Returns:
        A ``tqdm.auto.tqdm`` bar or a :class:`LineProgress`; both support ``update``,
        ``set_postfix``, ``set_description``, ``close`` and iteration.

    Raises:
        ValueError: an unknown ``mode`` (or value of ``MEDSSL_PROGRESS``).
    """
    chosen = (mode or os.environ.get(PROGRESS_ENV) or "auto").strip().lower()
    if chosen not in _MODES:
        raise ValueError(
            f"progress mode must be one of {', '.join(_MODES)}, got {chosen!r} (set by {PROGRESS_ENV} or mode=)"
        )
    stream = file if file is not None else sys.stderr
    if chosen == "off":
        disable = True
    if chosen == "bar" or (chosen == "auto" and _is_terminal(stream)):
        from tqdm.auto import tqdm

        return tqdm(
            iterable, total=total, initial=initial, desc=desc, unit=unit, disable=disable, file=stream, **tqdm_kwargs
        )
    return LineProgress(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        initial=initial,
        disable=disable,
        file=stream,
        every_percent=every_percent,
    )
