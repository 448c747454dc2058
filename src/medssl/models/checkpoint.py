"""Loading pre-trained weights into the U-Net, with a report of what was loaded.

Accepted sources: a pre-training run folder (the ``--out`` of ``medssl pretrain``: its
``pretrain.pt`` is used), ``pretrain.pt`` itself (declares which parts it pre-trained), checkpoints
released by the reference code (SuperCL: state dict under ``"net"`` with positional_cl names; MACL:
``share_encoder.*`` / ``online_decoder.*``), or a plain state dict of this U-Net.

Loading is all or nothing per part: every tensor of each pre-trained part (``encoder``,
``decoder``) must exist in the checkpoint with this model's shape, else :func:`load_pretrained`
fails and names the first mismatches (a checkpoint of another width or depth cannot silently become
a Scratch run). BatchNorm's ``num_batches_tracked`` counters are not counted: they carry no weights.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import DataError
from .unet import convert_reference_state_dict

__all__ = [
    "PRETRAIN_FILE",
    "LoadReport",
    "check_finite_weights",
    "checkpoint_in_channels",
    "checkpoint_model_config",
    "load_pretrained",
    "read_checkpoint",
    "resolve_checkpoint",
]

#: the file ``medssl pretrain`` writes into its run folder
PRETRAIN_FILE = "pretrain.pt"

_COUNTER = "num_batches_tracked"


def _weighty(key: str) -> bool:
    return not key.endswith(_COUNTER)


@dataclass
class LoadReport:
    """What was loaded into the model, per part and in all.

    Attributes:
        source: the checkpoint file that was read.
        format: ``medssl``, ``reference`` or ``state_dict``.
        method: the pre-training method (medssl checkpoints), else None.
        parts: the parts that were loaded (``encoder``, ``decoder``).
        loaded: model keys loaded from the checkpoint.
        missing: model keys of the parts that stayed as initialised.
        unexpected: checkpoint keys not used (other parts, heads, unknown names).
        shape_mismatch: ``key: checkpoint (..) vs model (..)`` for keys of the parts whose shapes differ.
        per_part: ``{part: {"loaded": n, "expected": m, "missing": k, "shape_mismatch": j}}`` (weight
            tensors, BatchNorm counters not counted).
        complete: every weight tensor of every part was loaded.
    """

    source: str
    format: str
    method: str | None
    parts: tuple[str, ...]
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)
    per_part: dict[str, dict[str, int]] = field(default_factory=dict)
    complete: bool = False

    def summary(self) -> str:
        """One line: what was loaded from which file."""
        parts = ", ".join(f"{p} {d['loaded']}/{d['expected']}" for p, d in self.per_part.items()) or ", ".join(
            self.parts
        )
        return (
            f"loaded {sum(1 for k in self.loaded if _weighty(k))} tensors ({parts}) from {self.source} [{self.format}"
            f"{', method ' + self.method if self.method else ''}]; missing (left as initialised) {len(self.missing)}; "
            f"unexpected (ignored) {len(self.unexpected)}; shape mismatch {len(self.shape_mismatch)}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The content of ``load_report.json``."""
        return dict(self.__dict__)


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint file named by ``path``: the file itself, or ``pretrain.pt`` of a pre-training run folder.

    Raises:
        DataError: nothing there, a folder that holds no finished pre-training, or a fine-tuning run.
    """
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise DataError(path, "checkpoint not found (give a pre-training run folder or a checkpoint file)")
    if not path.is_dir():
        raise DataError(path, "not a checkpoint file or a run folder")
    ckpt = path / PRETRAIN_FILE
    if ckpt.is_file():
        return ckpt
    info: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        info = json.loads((path / "run.json").read_text())
    kind = info.get("kind") if isinstance(info, dict) else None
    if kind == "finetune":
        raise DataError(
            path, f"is a fine-tuning run; give a pre-training run folder (with {PRETRAIN_FILE}) or a checkpoint file"
        )
    if kind == "pretrain":
        raise DataError(
            path,
            f"this pre-training run has not finished (no {PRETRAIN_FILE} yet); rerun its pretrain command to finish it",
        )
    raise DataError(path, f"no {PRETRAIN_FILE} in this folder; give a pre-training run folder or a checkpoint file")


def _load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise DataError(path, f"not a readable PyTorch checkpoint ({e.__class__.__name__})") from None


def read_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], str, str | None, tuple[str, ...] | None]:
    """Return ``(state_dict in this U-Net's names, format, method, declared parts)``.

    Args:
        path: a checkpoint file or a pre-training run folder (see :func:`resolve_checkpoint`).
    """
    path = resolve_checkpoint(path)
    obj = _load(path)
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


def checkpoint_model_config(path: str | Path) -> dict[str, Any] | None:
    """The ``model`` settings a medssl pre-training checkpoint was trained with (None for other formats)."""
    try:
        obj = _load(resolve_checkpoint(path))
    except DataError:
        return None
    model = obj.get("model") if isinstance(obj, Mapping) and obj.get("format") == "medssl-pretrain" else None
    return dict(model) if isinstance(model, Mapping) else None


def check_finite_weights(path: str | Path, state: Mapping[str, Any]) -> None:
    """Every floating-point tensor of ``state`` is finite: NaN or infinite weights give NaN outputs
    (a diverged training, or a damaged file), never a usable network.

    Raises:
        DataError: ``<path>: N of M weight tensors hold NaN or infinite values (first: key); ...``.
    """
    tensors = [(k, v) for k, v in state.items() if isinstance(v, Tensor) and v.is_floating_point()]
    bad = [k for k, v in tensors if not bool(torch.isfinite(v).all())]
    if bad:
        raise DataError(
            path,
            f"{len(bad)} of {len(tensors)} weight tensors hold NaN or infinite values (first: {bad[0]}); the "
            "training that wrote it diverged or the file is damaged: train again or give another checkpoint",
        )


def checkpoint_in_channels(state: Mapping[str, Tensor]) -> int | None:
    """Input channels of the first encoder conv in a converted state dict."""
    w = state.get("encoder.stages.0.0.0.weight")
    return int(w.shape[1]) if w is not None else None


def _first(items: Sequence[str], n: int = 3) -> str:
    return "; ".join(items[:n]) + (f"; ... ({len(items) - n} more)" if len(items) > n else "")


def _mismatch_message(report: LoadReport, model: nn.Module, path: Path) -> str:
    bad = [p for p, d in report.per_part.items() if d["loaded"] < d["expected"]]
    lines = []
    for p in bad:
        d = report.per_part[p]
        shape = [s for s in report.shape_mismatch if s.startswith(p + ".")]
        missing = [
            k
            for k in report.missing
            if k.startswith(p + ".") and _weighty(k) and not any(s.startswith(k + ":") for s in shape)
        ]
        what = []
        if shape:
            what.append(f"{len(shape)} differ in shape (first: {_first(shape, 2)})")
        if missing:
            what.append(f"{len(missing)} are not in the checkpoint (first: {_first(missing, 2)})")
        lines.append(f"{p}: {d['loaded']} of {d['expected']} tensors loaded, {' and '.join(what)}")
    msg = f"pre-trained weights do not fit this model ({'; '.join(lines)})"
    trained = checkpoint_model_config(path)
    if trained:
        keys = ("base_width", "depth", "in_channels")
        theirs = ", ".join(f"{k}={trained[k]}" for k in keys if k in trained)
        ours = ", ".join(f"{k}={getattr(model, k)}" for k in keys if hasattr(model, k))
        differ = [k for k in keys if k in trained and hasattr(model, k) and trained[k] != getattr(model, k)]
        if ours and not differ:  # the settings agree: the file itself lacks tensors
            return msg + (
                f"; the checkpoint's model settings match this model ({ours}): the file itself is partial or "
                "edited; pre-train again or give the complete checkpoint"
            )
        msg += f"; the checkpoint was pre-trained with model {theirs}" + (f", this model has {ours}" if ours else "")
        msg += f"; fine-tune with the pre-training's model settings (--set model.{(differ or ['base_width'])[0]}=...)"
    return msg


def load_pretrained(
    model: nn.Module, path: str | Path, parts: Sequence[str] | None = None, strict: bool = True
) -> LoadReport:
    """Load the pre-trained ``parts`` (``encoder``, ``decoder``) of a checkpoint into ``model``.

    Args:
        model: a :class:`~medssl.models.UNet`.
        path: checkpoint file, or a pre-training run folder (its ``pretrain.pt``).
        parts: parts to load; None = what the checkpoint declares (medssl) or every U-Net part it holds.
        strict: fail unless every weight tensor of every part loads (the default; the model is then
            left untouched on failure).

    Returns:
        A :class:`LoadReport` (loaded, missing, unexpected and shape-mismatched keys, per part).

    Raises:
        DataError: nothing of the parts found, or (``strict``) a part that does not load completely:
            the message names the first mismatched or missing tensors and the checkpoint's model settings.
    """
    path = resolve_checkpoint(path)
    state, fmt, method, declared = read_checkpoint(path)
    if parts is None:
        parts = declared or tuple(p for p in ("encoder", "decoder") if any(k.startswith(p + ".") for k in state))
    prefixes = tuple(p + "." for p in parts)
    own = model.state_dict()
    report = LoadReport(str(path), fmt, method, tuple(parts))
    to_load: dict[str, Tensor] = {}
    for k, v in state.items():
        if not k.startswith(prefixes) or k not in own:
            report.unexpected.append(k)
        elif own[k].shape != v.shape:
            report.shape_mismatch.append(f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}")
        else:
            to_load[k] = v
    report.loaded = sorted(to_load)
    report.missing = sorted(k for k in own if k.startswith(prefixes) and k not in to_load)
    for p in parts:
        expected = [k for k in own if k.startswith(p + ".") and _weighty(k)]
        report.per_part[p] = {
            "loaded": sum(1 for k in expected if k in to_load),
            "expected": len(expected),
            "missing": sum(1 for k in expected if k not in to_load and k not in state),
            "shape_mismatch": sum(1 for k in expected if k in state and k not in to_load),
        }
    report.complete = all(d["loaded"] == d["expected"] > 0 for d in report.per_part.values())
    if not any(_weighty(k) for k in to_load) and not report.shape_mismatch:
        raise DataError(
            path, f"no {'/'.join(parts)} weights of this U-Net found in the checkpoint ({report.summary()})"
        )
    if not any(_weighty(k) for k in to_load) or (strict and not report.complete):
        raise DataError(path, _mismatch_message(report, model, path))
    check_finite_weights(path, to_load)
    model.load_state_dict(to_load, strict=False)
    return report
