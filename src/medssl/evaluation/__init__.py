"""Evaluation: segmentation metrics for the ``standard`` and ``paper`` protocols, and writing results.

See ``metrics`` (DSC/JC from confusion counts, medpy-exact HD95/ASD/ASSD/HD, per-case rows,
summaries, ``MetricAccumulator``) and ``evaluate`` (arrays or NIfTI folders -> rows -> files).
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
    METRIC_NAMES,
    PROTOCOLS,
    SPACING_UNKNOWN_NOTE,
    MetricAccumulator,
    asd,
    assd,
    case_metrics,
    confusion_counts,
    dice_jaccard_from_counts,
    distance_metrics,
    distance_unit,
    hd,
    hd95,
    summarize,
    surface_distances,
)

__all__ = [
    "METRIC_NAMES",
    "PROTOCOLS",
    "SPACING_UNKNOWN_NOTE",
    "EvaluationResult",
    "MetricAccumulator",
    "asd",
    "assd",
    "case_metrics",
    "confusion_counts",
    "dice_jaccard_from_counts",
    "distance_metrics",
    "distance_unit",
    "evaluate_arrays",
    "evaluate_folders",
    "format_summary_table",
    "hd",
    "hd95",
    "summarize",
    "surface_distances",
    "write_results",
]
