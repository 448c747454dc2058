"""From a fine-tuned run to segmentations of new scans: :class:`Segmenter`, ``medssl predict``,
and :func:`export_run` (``medssl export``: TorchScript / ONNX plus ``model.json``)."""

from __future__ import annotations

from .pipeline import PredictSummary, predict_inputs
from .runspec import RunSpec, load_run_spec
from .scans import discover_inputs, read_scan, save_label_map
from .segmenter import Segmenter

__all__ = [
    "PredictSummary",
    "RunSpec",
    "Segmenter",
    "discover_inputs",
    "export_run",
    "load_run_spec",
    "predict_inputs",
    "read_scan",
    "save_label_map",
]


def export_run(*args, **kwargs):  # type: ignore[no-untyped-def]
    """See :func:`medssl.inference.export.export_run` (imported lazily: it needs onnx only for ONNX)."""
    from .export import export_run as _export

    return _export(*args, **kwargs)
