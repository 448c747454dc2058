"""Missed structures, counted where the headline is read.

A class present in the ground truth of a case but absent from its prediction has a DSC of 0 and no
surface distance. Per-case means over the classes then leave it out of the distance columns, so a
class missed in every case could leave the ``mean`` row at HD95 0.00 with nothing said. As the
challenges do, the miss is counted instead: every summary row gets ``n_missed`` (case/class pairs
missed), the mean row ``n_no_distance`` (case/class pairs without a distance, not cases), and
:func:`miss_note` states them under every table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["add_miss_counts", "miss_note"]


def _missed(row: Mapping[str, Any]) -> bool:
    return not bool(row.get("gt_empty")) and bool(row.get("pred_empty"))


def add_miss_counts(
    summary: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]], protocol: str = "standard"
) -> list[dict[str, Any]]:
    """The summary rows with ``n_missed`` (and, on the mean row, ``n_no_distance``, ``n_pairs``,
    ``missed_everywhere``: the classes missed in every case, and ``missed_distance``: ``zero`` under
    the ``paper`` protocol, whose slice distances count a miss as 0, else ``none``).

    Args:
        summary: per-class rows then the mean row (``class_index`` None).
        rows: the per-case rows (``class_index``, ``gt_empty``, ``pred_empty``).
        protocol: ``standard`` or ``paper``.

    Returns:
        New summary rows (the input is not changed).
    """
    per_class: dict[int, int] = {}
    cases: dict[int, int] = {}
    for r in rows:
        k = int(r["class_index"])
        cases[k] = cases.get(k, 0) + 1
        per_class[k] = per_class.get(k, 0) + int(_missed(r))
    out = []
    class_rows = [r for r in summary if r.get("class_index") is not None]
    for r in summary:
        row = dict(r)
        if r.get("class_index") is not None:
            row["n_missed"] = per_class.get(int(r["class_index"]), 0)
        else:
            row["n_missed"] = sum(per_class.values())
            row["n_pairs"] = sum(cases.values())
            row["n_no_distance"] = sum(int(c.get("hd95_n_empty", 0) or 0) for c in class_rows)
            row["missed_distance"] = "zero" if protocol == "paper" else "none"
            row["missed_everywhere"] = [
                str(c["class_name"]) for c in class_rows if _everywhere(int(c["class_index"]), per_class, cases)
            ]
        out.append(row)
    return out


def _everywhere(k: int, per_class: Mapping[int, int], cases: Mapping[int, int]) -> bool:
    return cases.get(k, 0) > 0 and per_class.get(k) == cases[k]


def miss_note(summary: Sequence[Mapping[str, Any]]) -> str | None:
    """One line under a table when structures were missed (None when none were)."""
    mean = next((r for r in summary if r.get("class_index") is None), None)
    if not mean or not mean.get("n_missed"):
        return None
    everywhere = mean.get("missed_everywhere") or []
    worst = f"; missed in every case: {', '.join(everywhere)}" if everywhere else ""
    distances = (
        "their slice distances count as 0 (the papers' convention), so the distances flatter these classes"
        if mean.get("missed_distance") == "zero"
        else "they have no HD95/ASD/ASSD, so the distance means cover the other pairs only"
    )
    return (
        f"missed: {mean['n_missed']} of {mean.get('n_pairs', '?')} case/class pairs have the class in the ground "
        f"truth and none predicted (DSC 0 counted; {distances}){worst}"
    )
