"""What a fine-tuning run folder says about how to segment a new scan (:class:`RunSpec`).

A run folder holds the network (``checkpoint_best.pt``, else ``checkpoint_latest.pt``), its resolved
configuration (``config.yaml``: network, padding fill, augmentation), its record (``run.json``: kind,
classes, the prepared store it trained on, the git commit) and the post-processing decided on its
validation patients (``postprocessing.json``). The prepared store's ``plan.json`` gives the
preprocessing every input must get: the in-plane target spacing and the intensity normalisation.

Example::

    spec = load_run_spec("runs/ft")
    spec.class_names, spec.target_spacing, spec.normalization   # (['background', 'LV-myo', ...], None, 'zscore')
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, DataError

__all__ = ["SIDE_WORDS", "RunSpec", "check_ensemble", "load_run_spec", "side_defined_classes"]

#: words in a class name that say the class is defined by its side of the body (a mirror swaps it)
SIDE_WORDS: tuple[str, ...] = ("left", "right", "anterior", "posterior", "superior", "inferior")

#: fields the runs of an ensemble must share: their softmax maps must mean the same on the same grid
ENSEMBLE_FIELDS: tuple[str, ...] = ("class_names", "target_spacing", "normalization")


@dataclass
class RunSpec:
    """How one fine-tuning run segments a scan.

    Attributes:
        run: the run folder.
        checkpoint: the weights used (best epoch, else the last one).
        store: the prepared store the run trained on.
        class_names: K names, background first.
        target_spacing: in-plane spacing (mm) the store resampled to; None = kept as read.
        normalization: the store's intensity normalisation (:func:`medssl.data.transforms.normalize`).
        fill: padding value of the slices (``zero`` or ``min``, the slice's minimum).
        multiple: the network's total stride: slices are padded to a multiple of it.
        in_channels: input channels of the network (a grey slice is repeated).
        model: the ``model`` section of ``config.yaml``.
        largest_component: classes whose largest connected component is kept (``postprocessing.json``).
        mirror_trained: the run was trained with random mirroring.
        protocol: ``standard`` or ``paper``.
        dataset: the data set label (``MS-CMRSeg``, ``CHAOS``, ...).
        commit: the git commit the run was trained at (None when unknown).
        status: ``done`` or ``running`` (an unfinished run predicts with its last checkpoint).
    """

    run: Path
    checkpoint: Path
    store: Path
    class_names: list[str]
    target_spacing: float | None
    normalization: str
    fill: str
    multiple: int
    in_channels: int
    model: dict[str, Any]
    largest_component: list[int] = field(default_factory=list)
    mirror_trained: bool = False
    protocol: str = "standard"
    dataset: str = ""
    commit: str | None = None
    status: str = "done"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def side_defined_classes(class_names: Sequence[str]) -> list[str]:
    """The classes whose name says they are defined by side (``right kidney``, ``anterior``).

    Args:
        class_names: the class names.

    Returns:
        The names that contain one of :data:`SIDE_WORDS` as a word (case-insensitive).
    """
    pattern = re.compile(r"\b(" + "|".join(SIDE_WORDS) + r")\b", re.IGNORECASE)
    return [n for n in class_names if pattern.search(str(n).replace("_", " ").replace("-", " "))]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(path, f"unreadable ({e.__class__.__name__})") from None


def _run_record(run: Path) -> dict[str, Any]:
    """``run.json`` of a fine-tuning run (one-line errors for anything else)."""
    if not run.is_dir():
        raise DataError(run, "no such run folder")
    if not (run / "run.json").is_file():
        raise DataError(run, "not a medssl run folder (no run.json)")
    info = _read_json(run / "run.json")
    if not isinstance(info, dict):
        raise DataError(run / "run.json", "not a JSON object")
    if info.get("kind") == "pretrain":
        raise DataError(
            run,
            "is a pre-training run: it has no segmentation head; fine-tune it first "
            f"(medssl finetune --init {run} ...) and predict with that run",
        )
    if info.get("kind") != "finetune":
        raise DataError(run / "run.json", f"kind '{info.get('kind')}' is not a fine-tuning run")
    return info


def _checkpoint(run: Path) -> Path:
    for name in ("checkpoint_best.pt", "checkpoint_latest.pt"):
        if (run / name).is_file():
            return run / name
    raise DataError(run, "no checkpoint (checkpoint_best.pt or checkpoint_latest.pt): train the run first")


def _plan(run: Path, info: dict[str, Any], cfg: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    """The ``plan.json`` of the store the run trained on (run.json's absolute path first), and the store."""
    cands = [info.get("data"), (cfg.get("data") or {}).get("path")]
    for c in cands:
        if c and (Path(c) / "plan.json").is_file():
            return dict(_read_json(Path(c) / "plan.json")), Path(c)
    raise DataError(
        run, f"its prepared store ({cands[0] or cands[1]}) is gone: its plan.json gives the spacing and normalisation"
    )


def _postprocessing(run: Path) -> list[int]:
    p = run / "postprocessing.json"
    if not p.is_file():
        return []
    doc = _read_json(p)
    return [int(k) for k in doc.get("largest_component", [])] if isinstance(doc, dict) else []


def load_run_spec(run: str | Path) -> RunSpec:
    """Read what a fine-tuning run needs to segment a new scan.

    Args:
        run: the run folder (``medssl finetune --out``).

    Returns:
        The run's :class:`RunSpec`.

    Raises:
        DataError: not a folder, not a medssl run, a pre-training run (no segmentation head), no
            checkpoint, an unreadable ``config.yaml``, or its prepared store is gone.
    """
    run = Path(run)
    info = _run_record(run)
    ckpt = _checkpoint(run)
    try:
        cfg = yaml.safe_load((run / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise DataError(run / "config.yaml", f"unreadable ({e.__class__.__name__})") from None
    if not isinstance(cfg, dict):
        raise DataError(run / "config.yaml", f"not a mapping of settings (a {type(cfg).__name__}); the file is damaged")
    plan, store = _plan(run, info, cfg)
    model = dict(cfg.get("model") or {})
    return RunSpec(
        run=run,
        checkpoint=ckpt,
        store=store,
        class_names=list(info.get("class_names") or plan["class_names"]),
        target_spacing=plan.get("target_spacing"),
        normalization=str(plan.get("normalization", "none")),
        fill=str(cfg.get("fill") or "zero"),
        multiple=2 ** int(model.get("depth", 4)),
        in_channels=int(model.get("in_channels", 1)),
        model=model,
        largest_component=_postprocessing(run),
        mirror_trained=bool(cfg.get("mirror")),
        protocol=str(cfg.get("protocol", "standard")),
        dataset=str(info.get("dataset_label") or info.get("dataset") or ""),
        commit=(info.get("environment") or {}).get("git_commit"),
        status=str(info.get("status", "")),
    )


def check_ensemble(specs: Sequence[RunSpec]) -> None:
    """Refuse an ensemble whose runs disagree on classes or preprocessing.

    Args:
        specs: the runs (two or more; one run always passes).

    Raises:
        ConfigError: one line naming the first differing field and the two runs.
    """
    first = specs[0]
    for other in specs[1:]:
        for name in ENSEMBLE_FIELDS:
            a, b = getattr(first, name), getattr(other, name)
            if a != b:
                raise ConfigError(
                    f"ensemble: the runs differ in {name} ({first.run}: {a!r}; {other.run}: {b!r}); "
                    "an ensemble averages the softmax of runs with the same classes and preprocessing"
                )
