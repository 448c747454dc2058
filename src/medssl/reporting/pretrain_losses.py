"""Did a pre-training run long enough? Its loss terms at the start, halfway and at the end.

A pre-training's losses are said to plateau when they stop falling over the second half of the
run. :func:`loss_windows` averages each loss term of a run over three windows of equal width
(``window`` of the run's steps each): the first steps, the steps just after the halfway point and
the last steps (for 1200 steps and ``window=1/12``: steps 1-100, 600-700 and 1100-1200), and the
relative change from the halfway window to the end. Averages, not single logged values, because
one step's contrastive loss moves with its batch.

The values come from the run's ``log.csv`` when its epochs are no longer than a window: each row
there is the mean of every step of its epoch, and a window averages the epochs it overlaps,
weighted by the overlap. Otherwise (epochs longer than a window) they come from ``steps.csv``, one
batch's losses every ``log_every`` steps: with ``log_every=10`` a window of 100 steps holds 10
batches, and one batch's contrastive loss moves with its batch by about as much as the few per cent
that separate a still falling loss from a flat one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..evaluation.representation import DIAGNOSTICS
from .tables import NON_LOSS_COLUMNS, PretrainRecord, method_display_name, method_sort_key, read_csv_rows, to_float

__all__ = [
    "LOSS_WINDOW_FIELDS",
    "LossWindows",
    "loss_windows",
    "loss_windows_csv_rows",
    "loss_windows_markdown",
    "pretrain_loss_windows",
]


@dataclass(frozen=True)
class LossWindows:
    """One loss term of one pre-training run, averaged over three windows of steps.

    Attributes:
        method, dataset: the run's.
        term: ``loss`` (the total) or the name of a component.
        steps: the last logged step.
        start, middle, end: mean of the term over the first window, the window that starts
            halfway, and the last window (NaN where a window holds no logged value).
    """

    method: str
    dataset: str
    term: str
    steps: int
    start: float
    middle: float
    end: float

    @property
    def change_second_half(self) -> float:
        """``(end - middle) / |middle|``: the relative change over the second half (NaN if undefined)."""
        if not (math.isfinite(self.middle) and math.isfinite(self.end)) or self.middle == 0:
            return float("nan")
        return (self.end - self.middle) / abs(self.middle)


def loss_windows(
    rows: Sequence[dict[str, str]],
    window: float = 1 / 12,
    x_key: str = "step",
    prefix: str = "",
    spans: bool = False,
) -> dict[str, tuple[int, float, float, float]]:
    """Mean of every loss column over the first, halfway and last ``window`` of the steps.

    With ``N`` the last logged step and ``w = window * N``, the windows are ``(0, w]``,
    ``(N/2, N/2 + w]`` and ``(N - w, N]``.

    Args:
        rows: log rows (``steps.csv`` or ``log.csv``), each with ``x_key``.
        window: width of each window, as a fraction of the run (0 < window <= 0.5).
        x_key: the step column.
        prefix: only columns starting with it are loss terms, named without it (``"train_"`` for
            ``log.csv``); ``""`` takes every column but the step/epoch/lr/time ones and the
            representation diagnostics.
        spans: each row is the mean over the steps since the previous row (``log.csv``: one row
            per epoch); a window's mean weights each row by how many of its steps fall in the
            window. False: each row is the value at its step (``steps.csv``), and a window averages
            the rows inside it.

    Returns:
        ``term -> (N, start, middle, end)``; empty when no row has a finite step.

    Raises:
        ValueError: when ``window`` is outside (0, 0.5].
    """
    if not 0 < window <= 0.5:
        raise ValueError(f"window must be in (0, 0.5], got {window}")
    xs = np.array([to_float(r.get(x_key)) for r in rows], dtype=float)
    ok = np.isfinite(xs)
    if not ok.any():
        return {}
    n = float(xs[ok].max())
    w = window * n
    bounds = {"start": (0.0, w), "middle": (n / 2, n / 2 + w), "end": (n - w, n)}
    cols = [
        c
        for c in (rows[0].keys() if rows else ())
        if c.startswith(prefix)
        and c != x_key
        and c[len(prefix) :].lower() not in NON_LOSS_COLUMNS
        and c not in DIAGNOSTICS
    ]
    order = np.argsort(np.where(ok, xs, np.inf), kind="stable")
    xs_sorted = xs[order]
    starts = np.concatenate([[0.0], xs_sorted[:-1]])
    out: dict[str, tuple[int, float, float, float]] = {}
    for c in cols:
        ys = np.array([to_float(r.get(c)) for r in rows], dtype=float)[order]
        good = np.isfinite(xs_sorted) & np.isfinite(ys)
        means = [_window_mean(starts, xs_sorted, ys, good, lo, hi, spans) for lo, hi in bounds.values()]
        if any(math.isfinite(m) for m in means):
            out[c[len(prefix) :]] = (int(n), means[0], means[1], means[2])
    return out


def _window_mean(
    starts: np.ndarray, ends: np.ndarray, ys: np.ndarray, good: np.ndarray, lo: float, hi: float, spans: bool
) -> float:
    """Mean of ``ys`` over the steps ``(lo, hi]``: rows as spans ``(start, end]`` weighted by their
    overlap with the window, or as points at ``end``; NaN when nothing falls inside."""
    if spans:
        weights = np.where(good, np.clip(np.minimum(ends, hi) - np.maximum(starts, lo), 0.0, None), 0.0)
    else:
        weights = (good & (ends > lo) & (ends <= hi)).astype(float)
    total = float(weights.sum())
    return float((np.nan_to_num(ys) * weights).sum() / total) if total > 0 else float("nan")


def _epochs_fit(rows: Sequence[dict[str, str]], window: float) -> bool:
    """True when every epoch of a ``log.csv`` spans at most ``window`` of the run's steps."""
    xs = sorted(x for x in (to_float(r.get("step")) for r in rows) if math.isfinite(x))
    if len(xs) < 2:
        return False
    longest = max(b - a for a, b in zip([0.0, *xs[:-1]], xs))
    return longest <= window * xs[-1]


def _loss_rows(record: PretrainRecord, window: float) -> tuple[list[dict[str, str]], str, bool]:
    """The rows a run's windows are computed from, their column prefix, and whether rows are spans:
    ``log.csv`` (every step, as epoch means) when its epochs fit in a window, else ``steps.csv``
    (one batch every ``log_every`` steps), else ``log.csv`` anyway."""
    log = record.log_rows()
    prefix = "train_" if log and any(c.startswith("train_") for c in log[0]) else ""
    if prefix and _epochs_fit(log, window):
        return log, prefix, True
    steps = read_csv_rows(record.path / "steps.csv") if (record.path / "steps.csv").is_file() else []
    if steps:
        return steps, "", False
    return log, prefix, bool(prefix)


def pretrain_loss_windows(records: Sequence[PretrainRecord], window: float = 1 / 12) -> list[LossWindows]:
    """:func:`loss_windows` of every pre-training run: the total loss first, then its terms.

    Args:
        records: pre-training runs.
        window: see :func:`loss_windows`.

    Returns:
        Rows in table order (dataset, method, run folder, term).
    """
    rows: list[LossWindows] = []
    for r in sorted(records, key=lambda x: (x.dataset.lower(), method_sort_key(x.method), str(x.path))):
        rows_, prefix, spans = _loss_rows(r, window)
        terms = loss_windows(rows_, window, prefix=prefix, spans=spans)
        for term in sorted(terms, key=lambda t: (t != "loss", t)):
            n, a, b, c = terms[term]
            rows.append(LossWindows(r.method, r.dataset, term, n, a, b, c))
    return rows


LOSS_WINDOW_FIELDS = ["dataset", "method", "term", "steps", "start", "middle", "end", "change_second_half"]


def _f(x: float, fmt: str = ".4g") -> str:
    return format(x, fmt) if math.isfinite(x) else ""


def loss_windows_csv_rows(rows: Sequence[LossWindows]) -> list[dict[str, Any]]:
    """Flat rows (columns :data:`LOSS_WINDOW_FIELDS`); NaN written as empty."""
    return [
        {
            "dataset": r.dataset,
            "method": method_display_name(r.method),
            "term": r.term,
            "steps": r.steps,
            "start": _f(r.start),
            "middle": _f(r.middle),
            "end": _f(r.end),
            "change_second_half": _f(r.change_second_half),
        }
        for r in rows
    ]


def loss_windows_markdown(rows: Sequence[LossWindows], window: float = 1 / 12) -> str:
    """Markdown table of :func:`pretrain_loss_windows`'s rows."""
    if not rows:
        return "_No pre-training run logged its losses._"
    pct = f"{100 * window:.3g}%"
    lines = [
        "| Dataset | Method | Term | Steps | start | halfway | end | change over the second half |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ch = r.change_second_half
        lines.append(
            f"| {r.dataset} | {method_display_name(r.method)} | {r.term} | {r.steps} | {_f(r.start, '.3f')} | "
            f"{_f(r.middle, '.3f')} | {_f(r.end, '.3f')} | {_f(100 * ch, '+.1f') + '%' if math.isfinite(ch) else ''} |"
        )
    lines += [
        "",
        f"Means over windows of {pct} of the steps each: the first, the one that starts halfway, and the last "
        "(`log.csv`, every step as epoch means, where its epochs fit in a window; else `steps.csv`, one batch "
        "every `log_every` steps). A term that still falls over the second half has not plateaued.",
    ]
    return "\n".join(lines)
