"""Loading pre-trained weights into the U-Net, with a report of what was loaded.

Accepted files: ``pretrain.pt`` written by ``medssl pretrain`` (declares which parts it pre-trained),
checkpoints released by the reference code (SuperCL: state dict under ``"net"`` with positional_cl
names; MACL: ``share_encoder.*`` / ``online_decoder.*``), or a plain state dict of this U-Net.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..errors import DataError
from .unet import convert_reference_state_dict

__all__ = ["LoadReport", "read_checkpoint", "load_pretrained", "checkpoint_in_channels"]


@dataclass
class LoadReport:
    """Which keys were loaded into the model, which model keys stayed as initialised, which file keys were unused."""

    source: str
    format: str
    method: str | None
    parts: tuple[str, ...]
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"loaded {len(self.loaded)} tensors ({', '.join(self.parts)}) from {self.source} [{self.format}"
            f"{', method ' + self.method if self.method else ''}]; missing (left as initialised) {len(self.missing)}; "
            f"unexpected (ignored) {len(self.unexpected)}; shape mismatch {len(self.shape_mismatch)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], str, str | None, tuple[str, ...] | None]:
    """Return ``(state_dict in this U-Net's names, format, method, declared parts)``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a corrupt file for the user
        raise DataError(path, f"not a readable PyTorch checkpoint ({e.__class__.__name__})") from None
    if not isinstance(obj, Mapping):
        raise DataError(path, f"expected a dict checkpoint, got {type(obj).__name__}")
    if obj.get("format") == "medssl-pretrain":
        return dict(obj["state_dict"]), "medssl", obj.get("method"), tuple(obj.get("pretrains", ("encoder",)))
    for key in ("net", "state_dict", "model"):
        if key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    state = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
    if not state:
        raise DataError(path, "no tensors found in the checkpoint")
    ref = any(k.startswith(("share_encoder.", "online_decoder.")) or ".contr_" in k or "upscale" in k for k in state)
    converted = convert_reference_state_dict(state)
    return converted, "reference" if ref else "state_dict", None, None


def checkpoint_in_channels(state: Mapping[str, Tensor]) -> int | None:
    """Input channels of the first encoder conv in a converted state dict."""
    w = state.get("encoder.stages.0.0.0.weight")
    return int(w.shape[1]) if w is not None else None


def load_pretrained(model: nn.Module, path: str | Path, parts: Sequence[str] | None = None) -> LoadReport:
    """Load the pre-trained ``parts`` (``encoder``, ``decoder``) of a checkpoint into ``model``.

    Args:
        model: a :class:`~medssl.models.UNet`.
        path: checkpoint file.
        parts: parts to load; None = what the checkpoint declares (medssl) or every U-Net part it holds.

    Returns:
        A :class:`LoadReport` (loaded, missing, unexpected and shape-mismatched keys).
    """
    state, fmt, method, declared = read_checkpoint(path)
    if parts is None:
        parts = declared or tuple(p for p in ("encoder", "decoder") if any(k.startswith(p + ".") for k in state))
    prefixes = tuple(p + "." for p in parts)
    own = model.state_dict()
    report = LoadReport(str(path), fmt, method, tuple(parts))
    to_load: dict[str, Tensor] = {}
    for k, v in state.items():
        if not k.startswith(prefixes):
            report.unexpected.append(k)
        elif k not in own:
            report.unexpected.append(k)
        elif own[k].shape != v.shape:
            report.shape_mismatch.append(f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}")
        else:
            to_load[k] = v
    model.load_state_dict(to_load, strict=False)
    report.loaded = sorted(to_load)
    report.missing = sorted(k for k in own if k.startswith(prefixes) and k not in to_load)
    if not report.loaded:
        raise DataError(path, f"no {'/'.join(parts)} weights of this U-Net found in the checkpoint ({report.summary()})")
    return report
