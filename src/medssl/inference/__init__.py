"""From a fine-tuned run to segmentations of new scans: :class:`Segmenter`, ``medssl predict``
(:func:`predict_inputs`), and ``medssl export`` (:func:`export_run`: TorchScript / ONNX plus
``model.json``). The user guide is ``docs/predict.md``."""

from __future__ import annotations

from .export import ExportResult, export_run
from .pipeline import PredictSummary, predict_inputs
from .runspec import RunSpec, load_run_spec
from .scans import discover_inputs, read_scan, save_label_map
from .segmenter import Segmenter

__all__ = [
    "ExportResult",
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
