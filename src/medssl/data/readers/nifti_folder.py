"""A generic folder of NIfTI image/label pairs (the way to bring your own data set).

Layouts accepted (the first that matches)::

    images/<name>.nii.gz + labels/<name>.nii.gz   (also imagesTr/labelsTr; nnU-Net's
                                                   <name>_0000.nii.gz image names too)
    <name>_image.nii.gz + <name>_label.nii.gz     (anywhere below the root)

Labels: ``label_map`` ``{raw value: class index}`` (raw 0 is background unless mapped) and
``class_names`` options; without them,
``dataset.json`` ``labels`` when present, else the label values of the first case (0..K-1 kept;
other values mapped in sorted order; a class missing from the first case then makes later cases
fail with "unknown label values", so pass ``class_names`` or ``label_map`` in that case). Patient ids: the first group of ``patient_regex``
(default: the case id without a trailing ``_frameNN``/``_fNN``, so frames of a patient stay
together in splits).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
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
    trailing_int,
)
from medssl.errors import ConfigError
from medssl.registry import DATASETS

__all__ = ["SPEC", "find_pairs", "folder_spec", "resolve_labels", "scan"]

DEFAULT_PATIENT_REGEX = r"^(.+?)(?:_frame\d+|_f\d+)?$"


def find_pairs(base: Path) -> list[tuple[str, Path, Path | None]]:
    """``(case_id, image, label or None)`` for every image of the folder, sorted by case id.

    Args:
        base: the dataset folder.

    Returns:
        One tuple per image; ``label`` is None when no label file exists.
    """
    for idir, ldir in (("images", "labels"), ("imagesTr", "labelsTr")):
        if (base / idir).is_dir():
            out = []
            for f in sorted(p for p in (base / idir).iterdir() if p.is_file() and is_nifti(p)):
                stem = nifti_stem(f)
                cid = re.sub(r"_0000$", "", stem)
                cands = [base / ldir / f"{s}{ext}" for s in (stem, cid) for ext in (".nii.gz", ".nii")]
                out.append((cid, f, next((c for c in cands if c.exists()), None)))
            return out
    out = []
    for f in sorted(base.rglob("*_image.nii*")):
        if not is_nifti(f):
            continue
        cid = nifti_stem(f)[: -len("_image")]
        lab = [f.with_name(f.name.replace("_image.nii", "_label.nii"))]
        out.append((cid, f, lab[0] if lab[0].exists() else None))
    return sorted(out, key=lambda t: t[0])


def _expected_label(base: Path, img: Path) -> Path:
    for idir, ldir in (("images", "labels"), ("imagesTr", "labelsTr")):
        if img.parent == base / idir:
            return base / ldir / re.sub(r"_0000(\.nii(\.gz)?)$", r"\1", img.name)
    return img.with_name(img.name.replace("_image.nii", "_label.nii"))


def resolve_labels(
    base: Path,
    pairs: Sequence[tuple[str, Path, Path | None]],
    label_map: Mapping[Any, Any] | None,
    class_names: Sequence[str] | None,
) -> tuple[LabelMap, tuple[str, ...]]:
    """The label map and class names of the folder (see the module docstring for the order).

    Args:
        base: the dataset folder (for ``dataset.json``).
        pairs: from ``find_pairs``.
        label_map: ``{raw value: class index}`` option (keys may be strings, as from YAML/JSON).
        class_names: class names option, background first.

    Returns:
        ``(LabelMap, class_names)``.

    Raises:
        ConfigError: ``class_names`` shorter than the classes of ``label_map``.
    """
    if label_map:
        values = {int(float(k)): int(v) for k, v in label_map.items()}
        values.setdefault(0, 0)  # raw 0 stays background unless mapped explicitly
        k = max(values.values()) + 1
        names = tuple(class_names) if class_names else ("background",) + tuple(f"class_{i}" for i in range(1, k))
        if len(names) < k:
            raise ConfigError(f"nifti-folder: label_map has {k} classes but class_names has {len(names)}")
        return LabelMap(values, num_classes=len(names)), names
    if class_names:
        return LabelMap.identity(len(class_names)), tuple(class_names)
    js = base / "dataset.json"
    if js.exists():
        try:
            labels = json.loads(js.read_text()).get("labels")
        except (OSError, ValueError, AttributeError):
            labels = None
        if isinstance(labels, dict) and labels:
            try:
                items = sorted((int(k), str(v)) for k, v in labels.items())
            except ValueError:
                items = sorted((int(v), str(k)) for k, v in labels.items())
            return LabelMap.identity(len(items)), tuple(v for _, v in items)
    first = next((lab for _, _, lab in pairs if lab is not None), None)
    if first is None:
        return LabelMap.identity(1), ("background",)
    lab, _, _ = read_nifti_volume(first)
    vals = [int(v) for v in np.unique(np.rint(lab))]
    if vals == list(range(len(vals))):  # 0..K-1
        k = vals[-1] + 1
        return LabelMap.identity(k), ("background",) + tuple(f"class_{i}" for i in range(1, k))
    values = {v: i for i, v in enumerate(sorted(set(vals) | {0}))}
    return LabelMap(values), ("background",) + tuple(f"class_{v}" for v in sorted(values) if v != 0)


def scan(
    root: str | Path,
    label_map: Mapping[Any, Any] | None = None,
    class_names: Sequence[str] | None = None,
    patient_regex: str | None = None,
    affine_tol: float = 1e-3,
) -> list[CaseSource]:
    """Find the image/label pairs of a NIfTI folder.

    Args:
        root: the dataset folder.
        label_map: ``{raw value: class index}``.
        class_names: class names, background first.
        patient_regex: regular expression whose first group is the patient id of a case id.
        affine_tol: tolerance for the image/label geometry check.

    Returns:
        Lazy cases sorted by case id; images without a label file are cases without label;
        ``meta["paper_key"]`` is the case id's trailing number (else its position).

    Raises:
        DataError: ``root`` missing.
    """
    base = require_root(root)
    pairs = find_pairs(base)
    lmap, names = resolve_labels(base, pairs, label_map, class_names)
    rx = re.compile(patient_regex or DEFAULT_PATIENT_REGEX)
    out: list[CaseSource] = []
    for pos, (cid, img, lab) in enumerate(pairs):
        m = rx.match(cid)
        pid = m.group(1) if m and m.groups() and m.group(1) else cid
        key = trailing_int(cid)
        meta = {"paper_key": pos if key is None else key, "class_names": list(names), "format": "nifti"}
        if lab is None:
            meta["expected_label"] = str(_expected_label(base, img))
        paths = (img, lab) if lab is not None else (img,)
        out.append(make_source(nifti_pair_reader(img, lab), cid, pid, paths, lmap, lab is not None, meta, affine_tol))
    return out


def folder_spec(
    root: str | Path, label_map: Mapping[Any, Any] | None = None, class_names: Sequence[str] | None = None, **_: Any
) -> DatasetSpec:
    """The ``nifti-folder`` spec with the class names this folder resolves to."""
    import dataclasses

    base = require_root(root)
    _lmap, names = resolve_labels(base, find_pairs(base), label_map, class_names)
    return dataclasses.replace(SPEC, class_names=names)


SPEC = DatasetSpec(
    name="nifti-folder",
    description="any folder of NIfTI image/label pairs (label_map and class_names options)",
    layout="images/<name>.nii.gz + labels/<name>.nii.gz, or <name>_image.nii.gz + <name>_label.nii.gz",
    class_names=("background", "foreground"),
    scan=scan,
    target_spacing=None,
    normalization="zscore",
    patch_size=256,
    paper_split_key=None,
)
DATASETS.register("nifti-folder", description=SPEC.description)(SPEC)
