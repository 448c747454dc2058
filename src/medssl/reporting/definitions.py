"""Which boundary definition each run's distances use, so that a report never mixes them silently.

``summary.json`` names its definition (``distances``: ``surface`` or ``medpy``, see
``medssl.evaluation.metrics.DISTANCE_DEFINITIONS``) and NSD tolerance since the ``surface``
definition exists; runs written before it measured every distance as medpy does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["distance_definition_of", "mixed_definition_notes"]

_SAID = {
    "surface": "directed HD95, area-weighted boundary elements (DeepMind surface-distance definition)",
    "medpy": "medpy's pooled HD95, every boundary voxel alike",
}


def distance_definition_of(protocol: str, summary: dict[str, Any]) -> str:
    """The boundary definition of one run: its ``summary.json``'s ``distances``, else ``medpy``.

    Args:
        protocol: the run's protocol.
        summary: its ``summary.json``.

    Returns:
        ``"surface"`` or ``"medpy"`` (``paper`` runs and runs from before the field: ``medpy``).
    """
    if protocol == "paper":
        return "medpy"
    return str(summary.get("distances") or "medpy")


def mixed_definition_notes(runs: Iterable[Any]) -> list[str]:
    """One line per results table (protocol) saying which definition its distances use.

    Args:
        runs: records with ``protocol``, ``summary`` (``summary.json``) and ``path``.

    Returns:
        ``"the standard table's HD95/ASD/ASSD: distances surface (...)"`` per table of one definition,
        or ``"WARNING: the standard table mixes distance definitions ..."`` naming a run of each.
    """
    seen: dict[str, dict[str, list[str]]] = {}
    for r in runs:
        definition = distance_definition_of(r.protocol, r.summary or {})
        seen.setdefault(r.protocol, {}).setdefault(definition, []).append(str(r.path))
    notes = []
    for protocol, by_def in sorted(seen.items()):
        if len(by_def) == 1:
            (d,) = by_def
            notes.append(f"the {protocol} table's HD95/ASD/ASSD: distances `{d}` ({_SAID.get(d, d)})")
            continue
        parts = "; ".join(f"{d}: {len(p)} run(s), e.g. {p[0]}" for d, p in sorted(by_def.items()))
        notes.append(
            f"WARNING: the {protocol} table mixes distance definitions ({parts}): its HD95/ASD/ASSD are not "
            "comparable across them; re-evaluate the older runs (medssl evaluate RUN --distances surface)"
        )
    return notes
