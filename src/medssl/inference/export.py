"""``medssl export``: a fine-tuned run's network as TorchScript or ONNX, with a ``model.json`` that
says everything a deployment needs to reproduce ``medssl predict`` without medssl.

``model.json`` holds the classes, the in-plane target spacing, the normalisation and how its
statistics are taken, the network's size multiple and padding fill, the input channels, the
post-processing, how labels go back to the input grid, the medssl version and the run's commit.
``examples/onnx_predict.py`` is a reference implementation of the whole path with numpy, nibabel
and onnxruntime only.

Example::

    res = export_run("runs/ft", "onnx", "deploy/")
    res.model, res.meta        # deploy/model.onnx, deploy/model.json
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from ..utils.files import atomic_write, atomic_write_json
from .runspec import RunSpec
from .segmenter import Segmenter

__all__ = ["EXPORT_FORMATS", "NORMALIZATION_RULES", "ExportResult", "export_run", "model_metadata"]

EXPORT_FORMATS: dict[str, str] = {"torchscript": "model.pt", "onnx": "model.onnx"}

#: how each normalisation takes its statistics (applied after the in-plane resampling)
NORMALIZATION_RULES: dict[str, str] = {
    "zscore": "(v - mean) / std over the whole volume (zeros when std is 0)",
    "clip_zscore": "clip to the volume's 1st and 99th percentiles, then (v - mean) / std over the whole volume",
    "minmax": "(v - min) / (max - min) over the whole volume (zeros when constant)",
    "slice_minmax": "(v - min) / (max - min) of each slice separately (zeros for a constant slice)",
    "max": "v / max over the whole volume (zeros when max <= 0)",
    "none": "no change (cast to float32)",
}


@dataclass
class ExportResult:
    """Where the export went: the network file and ``model.json``."""

    model: Path
    meta: Path


def model_metadata(spec: RunSpec, fmt: str, file: str) -> dict[str, Any]:
    """The ``model.json`` of an exported run (see the module docstring)."""
    from .. import __version__

    return {
        "format": fmt,
        "file": file,
        "class_names": spec.class_names,
        "labels": {str(i): n for i, n in enumerate(spec.class_names)},
        "input": {
            "layout": "NCHW: a batch of slices (D, H, W) -> (N, C, H, W), the grey slice repeated C times",
            "channels": spec.in_channels,
            "axes": "NIfTI voxels [x, y, z] -> slices (D, H, W) = array.transpose(2, 1, 0); no reorientation",
            "size_multiple": spec.multiple,
            "padding": "each slice padded to a multiple of size_multiple, before // 2 and the rest after, "
            + ("with the slice's minimum" if spec.fill == "min" else "with 0"),
            "fill": spec.fill,
        },
        "output": "logits (N, K, H, W); softmax over K",
        "target_spacing": spec.target_spacing,
        "resampling": "in-plane only (z kept), slice by slice: image cubic with anti-aliasing "
        "(skimage.transform.resize order 3, mode edge, no clipping per slice) to shape round(H * sy / target), "
        "then clipped to the volume's [min, max]; none when target_spacing is null",
        "normalization": {"method": spec.normalization, "statistics": NORMALIZATION_RULES.get(spec.normalization, "")},
        "label_back_mapping": "softmax resampled bilinearly (pixel centres aligned, edge repeated) to the input's "
        "in-plane grid, then argmax",
        "postprocessing": {"largest_component": spec.largest_component, "connectivity": "3D, 6-connected"},
        "medssl_version": __version__,
        "run": {"path": str(spec.run.resolve()), "commit": spec.commit, "dataset": spec.dataset},
    }


def _example(spec: RunSpec) -> torch.Tensor:
    side = max(spec.multiple * 2, 32)
    return torch.zeros((1, spec.in_channels, side, side), dtype=torch.float32)


def _save_torchscript(model: torch.nn.Module, spec: RunSpec, out: Path) -> None:
    with warnings.catch_warnings():  # the U-Net's skip crop is never taken on padded inputs
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, _example(spec), check_trace=False)
    atomic_write(out, lambda tmp: torch.jit.save(traced, tmp))


def _save_onnx(model: torch.nn.Module, spec: RunSpec, out: Path) -> None:
    axes = {0: "batch", 2: "height", 3: "width"}

    def write(tmp: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _onnx_export(tmp)

    def _onnx_export(tmp: str) -> None:
        torch.onnx.export(
            model,
            (_example(spec),),
            tmp,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": axes, "logits": axes},
            opset_version=17,
            dynamo=False,
        )

    atomic_write(out, write)


def export_run(run: str | Path, fmt: str, out: str | Path) -> ExportResult:
    """Export a fine-tuning run's network (on the CPU) and its ``model.json`` into ``out``.

    Args:
        run: the fine-tuning run folder.
        fmt: ``torchscript`` (``model.pt``, load with ``torch.jit.load``) or ``onnx`` (``model.onnx``,
            opset 17, dynamic batch, height and width).
        out: the output folder (created).

    Returns:
        An :class:`ExportResult`.

    Raises:
        ConfigError: an unknown format.
        DataError: the run cannot be loaded (see :meth:`Segmenter.from_run`), or ``out`` is a file.
    """
    from ..errors import DataError

    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"--format: expected one of {', '.join(EXPORT_FORMATS)}, got '{fmt}'")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(out, "exists and is not a folder; give a folder for the export (--out)")
    seg = Segmenter.from_run(run, device="cpu")
    spec, model = seg.specs[0], seg.models[0]
    out.mkdir(parents=True, exist_ok=True)
    target = out / EXPORT_FORMATS[fmt]
    (_save_torchscript if fmt == "torchscript" else _save_onnx)(model, spec, target)
    meta = atomic_write_json(out / "model.json", model_metadata(spec, fmt, target.name))
    for p in (target, meta):
        p.chmod(0o644)  # deployable files: readable by others (temporary files are created 0600)
    return ExportResult(target, meta)
