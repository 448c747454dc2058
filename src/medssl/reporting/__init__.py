"""Result tables, paired statistics, comparison with the published numbers and figures.

The entry point is :func:`report` (the ``medssl report`` command); the pieces are importable
for custom reports.
"""

from __future__ import annotations

from .figures import (
    plot_dsc_vs_labels,
    plot_pretrain_curves,
    plot_pretrain_diagnostics,
    plot_qualitative,
    plot_training_curves,
)
from .report import ReportResult, find_reference_csv, load_paper_results, paper_comparison, report
from .stats import compare_methods, paired_samples, paired_wilcoxon
from .tables import RunCollection, RunRecord, aggregate_runs, collect_runs, results_tables

__all__ = [
    "ReportResult",
    "RunCollection",
    "RunRecord",
    "aggregate_runs",
    "collect_runs",
    "compare_methods",
    "find_reference_csv",
    "load_paper_results",
    "paired_samples",
    "paired_wilcoxon",
    "paper_comparison",
    "plot_dsc_vs_labels",
    "plot_pretrain_curves",
    "plot_pretrain_diagnostics",
    "plot_qualitative",
    "plot_training_curves",
    "report",
    "results_tables",
]
