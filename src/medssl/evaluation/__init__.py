"""Evaluation: segmentation metrics for the ``standard`` and ``paper`` protocols, and writing results.

See ``metrics`` (DSC/JC from confusion counts, boundary metrics by the ``surface`` or the
medpy-exact ``medpy`` definition, per-case rows, summaries, ``MetricAccumulator``), ``surface``
(area-weighted directed surface distances and NSD, as DeepMind's surface-distance) and ``evaluate``
(arrays or NIfTI folders -> rows -> files).
"""

from __future__ import annotations

from .evaluate import (
    EvaluationResult,
    evaluate_arrays,
    evaluate_folders,
    format_summary_table,
    write_results,
)
from .metrics import (
    DEFAULT_NSD_TOLERANCE,
    DISTANCE_DEFINITIONS,
    METRIC_NAMES,
    PROTOCOLS,
    SPACING_UNKNOWN_NOTE,
    MetricAccumulator,
    asd,
    assd,
    case_metrics,
    confusion_counts,
    dice_jaccard_from_counts,
    distance_definition,
    distance_metrics,
    distance_unit,
    hd,
    hd95,
    parse_nsd_tolerance,
    resolve_nsd_tolerance,
    summarize,
    surface_distances,
)
from .surface import SurfaceDistances, directed_surface_distances, surface_metrics

__all__ = [
    "DEFAULT_NSD_TOLERANCE",
    "DISTANCE_DEFINITIONS",
    "METRIC_NAMES",
    "PROTOCOLS",
    "SPACING_UNKNOWN_NOTE",
    "EvaluationResult",
    "MetricAccumulator",
    "SurfaceDistances",
    "asd",
    "assd",
    "case_metrics",
    "confusion_counts",
    "dice_jaccard_from_counts",
    "directed_surface_distances",
    "distance_definition",
    "distance_metrics",
    "distance_unit",
    "evaluate_arrays",
    "evaluate_folders",
    "format_summary_table",
    "hd",
    "hd95",
    "parse_nsd_tolerance",
    "resolve_nsd_tolerance",
    "summarize",
    "surface_distances",
    "surface_metrics",
    "write_results",
]
