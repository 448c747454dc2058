"""medssl: label-efficient medical image segmentation with self-supervised pre-training.

Public API (each command of the ``medssl`` CLI is a thin layer over one of these)::

    import medssl
    medssl.prepare("msd", "data/Task04_Hippocampus", "prepared/hippo")
    run = medssl.pretrain(medssl.PretrainConfig(method="supercl", data=medssl.DataCfg(path="prepared/hippo")))
    res = medssl.finetune(medssl.FinetuneConfig(data=medssl.DataCfg(path="prepared/hippo"), init=str(run.checkpoint)))
    medssl.evaluate_run(res.out)
    medssl.Segmenter.from_run(res.out).predict_file("new_scan.nii.gz", "seg/new_scan.nii.gz")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "prepare": ("medssl.data.store", "prepare"),
    "SliceStore": ("medssl.data.store", "SliceStore"),
    "finetune": ("medssl.finetune", "finetune"),
    "pretrain": ("medssl.pretrain", "pretrain"),
    "evaluate_run": ("medssl.evaluation.run", "evaluate_run"),
    "evaluate_folders": ("medssl.evaluation.evaluate", "evaluate_folders"),
    "report": ("medssl.reporting.report", "report"),
    "run_benchmark": ("medssl.benchmark", "run_benchmark"),
    "run_demo": ("medssl.demo", "run_demo"),
    "list_methods": ("medssl.methods.catalog", "list_methods"),
    "list_datasets": ("medssl.data.readers", "list_datasets"),
    "create_model": ("medssl.models.factory", "create_model"),
    "Segmenter": ("medssl.inference.segmenter", "Segmenter"),
    "export_run": ("medssl.inference.export", "export_run"),
    "FinetuneConfig": ("medssl.config", "FinetuneConfig"),
    "PretrainConfig": ("medssl.config", "PretrainConfig"),
    "DataCfg": ("medssl.config", "DataCfg"),
    "ModelCfg": ("medssl.config", "ModelCfg"),
    "OptimCfg": ("medssl.config", "OptimCfg"),
    "TrainCfg": ("medssl.config", "TrainCfg"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'medssl' has no attribute '{name}'")
