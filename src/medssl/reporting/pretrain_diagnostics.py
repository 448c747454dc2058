"""What did pre-training learn? Each diagnostic at random initialisation and at the end, over seeds.

Every pre-training writes ``diagnostics.json`` (:mod:`medssl.evaluation.representation`): the
embedding spread, effective rank, k-NN slice-position error and linear-probe Dice of its randomly
initialised network (``initial``) and of the pre-trained one (``final``), on the same probe slices.
:func:`diagnostic_rows` gathers them per dataset, method and diagnostic: the mean over runs (seeds,
each its own pre-training) of both values, the per-run change (final minus initial) as a mean with
its smallest and largest value, and how many runs moved in the better direction. With one run per
seed this is the seed-level answer to "did pre-training improve the frozen features?", the question
behind a fine-tuning gain or its absence; it involves no test patient (the linear probe is fitted and
scored on validation patients).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..evaluation.representation import DIAGNOSTICS
from .tables import PretrainRecord, method_display_name, method_sort_key

__all__ = [
    "DIAGNOSTIC_FIELDS",
    "LOWER_IS_BETTER",
    "DiagnosticRow",
    "diagnostic_rows",
    "diagnostics_csv_rows",
    "diagnostics_markdown",
]

#: diagnostics for which a fall is the improvement (the others improve by rising)
LOWER_IS_BETTER = frozenset({"knn_position_mae"})

DIAGNOSTIC_FIELDS = [
    "dataset",
    "method",
    "diagnostic",
    "runs",
    "initial",
    "final",
    "change",
    "change_min",
    "change_max",
    "runs_better",
]


@dataclass(frozen=True)
class DiagnosticRow:
    """One diagnostic of one method on one dataset, over its pre-training runs.

    Attributes:
        dataset, method, diagnostic: what it describes (``diagnostic``: a key of ``DIAGNOSTICS``).
        initial, final: the values of each run at random initialisation and at the end of pre-training.
    """

    dataset: str
    method: str
    diagnostic: str
    initial: tuple[float, ...]
    final: tuple[float, ...]

    @property
    def changes(self) -> np.ndarray:
        """Final minus initial, per run."""
        return np.asarray(self.final, dtype=float) - np.asarray(self.initial, dtype=float)

    @property
    def runs_better(self) -> int:
        """Runs whose diagnostic moved in the better direction (down for ``LOWER_IS_BETTER``, else up)."""
        sign = -1.0 if self.diagnostic in LOWER_IS_BETTER else 1.0
        return int(np.sum(sign * self.changes > 0))


def _read(record: PretrainRecord, notes: list[str]) -> dict[str, Any] | None:
    path = record.path / "diagnostics.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if not isinstance(data.get("initial"), dict) or not isinstance(data.get("final"), dict):
            raise ValueError("no 'initial' and 'final' objects")
    except (OSError, ValueError, AttributeError) as e:
        notes.append(f"`{path}`: unreadable diagnostics ({' '.join(str(e).split())}); left out")
        return None
    return data


def _value(section: dict[str, Any], key: str) -> float:
    try:
        v = float(section[key])
    except (KeyError, TypeError, ValueError):
        return float("nan")
    return v


def diagnostic_rows(records: Sequence[PretrainRecord], notes: list[str] | None = None) -> list[DiagnosticRow]:
    """The diagnostics of ``records``, grouped by dataset, method and diagnostic.

    A run contributes to a diagnostic when both its initial and final values are finite numbers; runs
    without ``diagnostics.json`` (older runs, methods without an encoder probe) are left out silently,
    an unreadable one with a note.

    Args:
        records: pre-training runs (:attr:`~.tables.RunCollection.pretrain`).
        notes: where remarks about unreadable files go.

    Returns:
        Rows sorted by dataset, then method (the report's order), then the order of ``DIAGNOSTICS``.
    """
    notes = [] if notes is None else notes
    groups: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    for rec in sorted(records, key=lambda r: str(r.path)):
        data = _read(rec, notes)
        if data is None:
            continue
        for key in DIAGNOSTICS:
            a, b = _value(data["initial"], key), _value(data["final"], key)
            if math.isfinite(a) and math.isfinite(b):
                groups.setdefault((rec.dataset, rec.method, key), []).append((a, b))
    order = list(DIAGNOSTICS)
    keys = sorted(groups, key=lambda k: (k[0], method_sort_key(k[1]), order.index(k[2])))
    return [
        DiagnosticRow(d, m, k, tuple(a for a, _ in groups[(d, m, k)]), tuple(b for _, b in groups[(d, m, k)]))
        for d, m, k in keys
    ]


def diagnostics_csv_rows(rows: Sequence[DiagnosticRow]) -> list[dict[str, Any]]:
    """Rows of ``pretrain_diagnostics.csv`` (``DIAGNOSTIC_FIELDS``; means over runs, full precision)."""
    return [
        {
            "dataset": r.dataset,
            "method": r.method,
            "diagnostic": r.diagnostic,
            "runs": len(r.initial),
            "initial": float(np.mean(r.initial)),
            "final": float(np.mean(r.final)),
            "change": float(np.mean(r.changes)),
            "change_min": float(np.min(r.changes)),
            "change_max": float(np.max(r.changes)),
            "runs_better": r.runs_better,
        }
        for r in rows
    ]


def diagnostics_markdown(rows: Sequence[DiagnosticRow]) -> str:
    """Markdown table of :func:`diagnostic_rows`'s rows, with a legend."""
    if not rows:
        return "_No pre-training run wrote `diagnostics.json`._"
    lines = [
        "| Dataset | Method | Diagnostic | Runs | random init | pre-trained | change (min, max) | runs better |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r, c in zip(rows, diagnostics_csv_rows(rows)):
        lines.append(
            f"| {r.dataset} | {method_display_name(r.method)} | {r.diagnostic} | {c['runs']} | {c['initial']:.3f} | "
            f"{c['final']:.3f} | {c['change']:+.3f} ({c['change_min']:+.3f}, {c['change_max']:+.3f}) | "
            f"{c['runs_better']} of {c['runs']} |"
        )
    legend = "; ".join(f"`{k}`: {v}" for k, v in DIAGNOSTICS.items())
    lines += [
        "",
        "Means over the pre-training runs (one per seed where the grid pre-trains per seed) of each diagnostic "
        "of the randomly initialised network and of the pre-trained one, on the same probe slices; the change "
        "is pre-trained minus random init per run, and a run is better when it rises (falls for "
        f"`knn_position_mae`). {legend}. No test patient is involved.",
    ]
    return "\n".join(lines)
