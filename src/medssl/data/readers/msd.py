"""Medical Segmentation Decathlon (MSD), any task, official layout.

Layout::

    Task04_Hippocampus/dataset.json            (optional)
    Task04_Hippocampus/imagesTr/hippocampus_001.nii.gz
    Task04_Hippocampus/labelsTr/hippocampus_001.nii.gz

The task comes from the ``task`` option, else ``dataset.json`` ``name``, else the folder name
(``Task04_Hippocampus``), else a known task name in the folder or file names
(``msd_hippocampus/imagesTr/hippocampus_001.nii.gz``). Class names come from
``dataset.json`` ``labels``, else a table of the ten MSD tasks, else the label values of the
first case. Multi-modal 4D images ``(X, Y, Z, C)`` keep channel ``modality_index``.

``meta["paper_key"]`` is the 0-based position of the case in the sorted list of training image
file names (hidden ``._`` files excluded): the key of the published split lists, as the
reference code (``generate_MSD.py``) numbers the cases.

- Antonelli et al., "The Medical Segmentation Decathlon", Nature Communications 2022.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from medssl.data.case import CaseSource, DatasetSpec
from medssl.data.readers._common import (
    LabelMap,
    is_nifti,
    make_source,
    nifti_pair_reader,
    nifti_stem,
    read_nifti_volume,
    require_root,
)
from medssl.errors import ConfigError, DataError
from medssl.registry import DATASETS

__all__ = ["MSD_PATCH_SIZE", "MSD_TASKS", "SPEC", "find_task", "scan", "task_spec"]

#: The label names of the ten MSD tasks (from their ``dataset.json`` files).
MSD_TASKS: dict[str, tuple[str, ...]] = {
    "BrainTumour": ("background", "edema", "non-enhancing tumor", "enhancing tumour"),
    "Heart": ("background", "left atrium"),
    "Liver": ("background", "liver", "cancer"),
    "Hippocampus": ("background", "anterior", "posterior"),
    "Prostate": ("background", "PZ", "TZ"),
    "Lung": ("background", "cancer"),
    "Pancreas": ("background", "pancreas", "cancer"),
    "HepaticVessel": ("background", "vessel", "cancer"),
    "Spleen": ("background", "spleen"),
    "Colon": ("background", "colon cancer primaries"),
}
#: The papers' fine-tuning patch sizes (METHODS.md section 6); other tasks use 256.
MSD_PATCH_SIZE = {"Spleen": 512, "Heart": 320, "Hippocampus": 32}
_ALIASES = {"leftatrium": "Heart", "brats": "BrainTumour"}  # dataset.json names of Task02/Task01
_PAPER_SPLIT = {"Spleen": "Spleen", "Heart": "Heart", "Hippocampus": "Hippocampus"}


def _task_dir(base: Path, task: str | None) -> Path:
    if (base / "imagesTr").is_dir():
        return base
    cands = sorted(d for d in base.iterdir() if d.is_dir() and (d / "imagesTr").is_dir())
    if task is not None:
        want = _canonical(task)
        cands = [d for d in cands if _canonical(d.name) == want or d.name == task]
    if len(cands) == 1:
        return cands[0]
    if not cands:
        raise DataError(base, "no imagesTr folder (expected an MSD task folder such as Task04_Hippocampus/imagesTr)")
    raise ConfigError(f"msd: {base} holds several tasks ({', '.join(d.name for d in cands)}); choose one with task=")


def _canonical(name: str) -> str | None:
    """``Hippocampus`` from ``Task04_Hippocampus``, ``msd_hippocampus``, ``hippocampus``..."""
    m = re.match(r"^Task\d+_(.+)$", name)
    core = m.group(1) if m else name
    if core.lower() in _ALIASES:
        return _ALIASES[core.lower()]
    for known in MSD_TASKS:
        if core.lower() == known.lower():
            return known
    low = name.lower()
    for known in MSD_TASKS:
        if known.lower() in low:
            return known
    return core if m else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(path, f"unreadable dataset.json ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise DataError(path, "dataset.json is not a JSON object")
    return data


def _training_images(task_dir: Path) -> list[Path]:
    d = task_dir / "imagesTr"
    return sorted((f for f in d.iterdir() if f.is_file() and is_nifti(f)), key=lambda f: f.name)


def find_task(root: str | Path, task: str | None = None) -> tuple[Path, str, tuple[str, ...] | None, dict[str, Any]]:
    """Locate an MSD task and what is known about it without reading images.

    Args:
        root: a task folder or a folder holding one (or, with ``task``, several).
        task: task name (``Hippocampus``, ``Task04_Hippocampus``) when not inferable.

    Returns:
        ``(task_dir, task_name, class_names or None, dataset_json)``.

    Raises:
        DataError: ``root`` missing or without ``imagesTr``.
        ConfigError: several tasks and no ``task``.
    """
    base = require_root(root)
    tdir = _task_dir(base, task)
    info = _read_json(tdir / "dataset.json") if (tdir / "dataset.json").exists() else {}
    name = _canonical(task) if task else None
    if name is None and re.match(r"^Task\d+_", tdir.name):
        name = _canonical(tdir.name)
    if name is None and isinstance(info.get("name"), str):
        name = _canonical(info["name"]) or info["name"]
    if name is None:
        name = _canonical(tdir.name)
    if name is None:
        files = _training_images(tdir)
        name = _canonical(files[0].name.split("_")[0]) if files else None
    name = name or tdir.name
    classes: tuple[str, ...] | None = None
    labels = info.get("labels")
    if isinstance(labels, dict) and labels:
        try:
            pairs = sorted((int(k), str(v)) for k, v in labels.items())
        except ValueError:  # nnU-Net v2 style {"name": value}
            try:
                pairs = sorted((int(v), str(k)) for k, v in labels.items())
            except (TypeError, ValueError):  # regions ({"tumour": [1, 2]}) or names both ways
                raise DataError(
                    tdir / "dataset.json",
                    f'\'labels\' must map label values to names, e.g. {{"0": "background", "1": "spleen"}}, '
                    f"got {labels!r:.80}",
                ) from None
        classes = tuple(v for _, v in pairs)
    elif name in MSD_TASKS:
        classes = MSD_TASKS[name]
    return tdir, name, classes, info


def _infer_classes(label_path: Path) -> tuple[str, ...]:
    lab, _, _ = read_nifti_volume(label_path)
    vals = np.unique(lab[np.isfinite(lab)] if lab.dtype.kind == "f" else lab)  # NaN is reported per case
    top = int(vals.max()) if vals.size else 0
    return ("background",) + tuple(f"class_{i}" for i in range(1, top + 1))


def _resolve(root: str | Path, task: str | None) -> tuple[Path, str, tuple[str, ...], dict[str, Any]]:
    tdir, name, classes, info = find_task(root, task)
    if classes is None:
        files = _training_images(tdir)
        lab = tdir / "labelsTr" / files[0].name if files else None
        classes = _infer_classes(lab) if lab is not None and lab.exists() else ("background", "foreground")
    return tdir, name, classes, info


def scan(
    root: str | Path, task: str | None = None, modality_index: int = 0, affine_tol: float = 1e-3
) -> list[CaseSource]:
    """Find the training cases of an MSD task.

    Args:
        root: the task folder (or its parent).
        task: task name when it cannot be inferred.
        modality_index: the channel kept from 4D multi-modal images.
        affine_tol: tolerance for the image/label geometry check.

    Returns:
        Lazy cases in sorted file-name order; case and patient id = file stem
        (``hippocampus_001``); ``meta``: ``paper_key`` (position), ``task``, ``class_names``,
        ``modality`` (from ``dataset.json`` when present).

    Raises:
        DataError: ``root`` missing or not an MSD task.
    """
    tdir, name, classes, info = _resolve(root, task)
    lmap = LabelMap.identity(len(classes))
    modalities = info.get("modality") if isinstance(info.get("modality"), dict) else {}
    modality = modalities.get(str(modality_index)) if modalities else None
    out: list[CaseSource] = []
    for pos, img in enumerate(_training_images(tdir)):
        lab = tdir / "labelsTr" / img.name
        cid = nifti_stem(img)
        meta = {"paper_key": pos, "task": name, "class_names": list(classes), "modality": modality, "format": "nifti"}
        read = nifti_pair_reader(img, lab, channel=modality_index)
        out.append(make_source(read, cid, cid, (img, lab), lmap, True, meta, affine_tol))
    return out


def task_spec(root: str | Path, task: str | None = None, **_: Any) -> DatasetSpec:
    """The ``msd`` spec specialised to the task found at ``root`` (class names, patch size, split key).

    Args:
        root: the task folder (or its parent).
        task: task name when it cannot be inferred.

    Returns:
        A ``DatasetSpec`` named ``msd`` with the task's classes, the papers' patch size
        (Spleen 512, Heart 320, Hippocampus 32, else 256) and ``paper_split_key``
        (``Spleen``/``Heart``/``Hippocampus`` or None).
    """
    _tdir, name, classes, _info = _resolve(root, task)
    return dataclasses.replace(
        SPEC,
        description=f"MSD {name}; " + ", ".join(classes[1:]),
        class_names=tuple(classes),
        patch_size=MSD_PATCH_SIZE.get(name, 256),
        paper_split_key=_PAPER_SPLIT.get(name),
        default_options={**SPEC.default_options, "task": name},
    )


SPEC = DatasetSpec(
    name="msd",
    description="Medical Segmentation Decathlon, any task (classes and patch size resolved per task)",
    layout="TaskXX_Name/imagesTr/*.nii.gz + labelsTr/*.nii.gz [+ dataset.json]",
    class_names=("background", "foreground"),
    scan=scan,
    target_spacing=None,
    normalization="slice_minmax",
    patch_size=256,
    paper_split_key=None,
)
DATASETS.register("msd", description=SPEC.description, paper="Antonelli et al., Nat. Commun. 2022")(SPEC)
