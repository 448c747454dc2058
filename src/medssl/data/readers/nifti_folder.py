"""A generic folder of NIfTI image/label pairs (the way to bring your own data set).

Layouts accepted (the first that matches)::

    images/<name>.nii.gz + labels/<name>.nii.gz   (also imagesTr/labelsTr; nnU-Net's
                                                   <name>_0000.nii.gz image names too)
    <name>_image.nii.gz + <name>_label.nii.gz     (anywhere below the root)

Labels: ``label_map`` ``{raw value: class index}`` (raw 0 is background unless mapped) and
``class_names`` options; without them, ``dataset.json`` ``labels`` when present (``{"0": "background",
"1": "liver"}`` or ``{"background": 0, "liver": 1}``; a file that does not parse is an error), else the
label values of the first case (0..K-1 kept; other values mapped in sorted order after raw 0, which
stays background; a class missing from the first case then makes later cases fail with "unknown
label values", so pass ``class_names`` or ``label_map`` in that case). Patient ids: the first group of ``patient_regex``
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
from medssl.data.io import one_line
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
from medssl.errors import ConfigError, DataError
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
            # a broken link is kept: reading it then says so, instead of the case silently missing
            for f in sorted(p for p in (base / idir).iterdir() if (p.is_file() or p.is_symlink()) and is_nifti(p)):
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
        DataError: a ``dataset.json`` that is not valid JSON or whose ``labels`` cannot be read.
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
        return _dataset_json_labels(js)
    first = next((lab for _, _, lab in pairs if lab is not None), None)
    if first is None:
        return LabelMap.identity(1), ("background",)
    lab, _, _ = read_nifti_volume(first)
    finite = lab[np.isfinite(lab)] if lab.dtype.kind == "f" else lab  # NaN is reported per case, not here
    vals = [int(v) for v in np.unique(np.rint(finite))]
    if vals and vals == list(range(len(vals))):  # 0..K-1
        k = vals[-1] + 1
        return LabelMap.identity(k), ("background",) + tuple(f"class_{i}" for i in range(1, k))
    values = _background_first(vals)
    return LabelMap(values), ("background",) + tuple(f"class_{v}" for v in values if v != 0)


def _background_first(raw: Sequence[int]) -> dict[int, int]:
    """Raw label values -> class indices: raw 0 is class 0 (background), the others follow in sorted order."""
    return {v: i for i, v in enumerate([0, *sorted(set(raw) - {0})])}


def _dataset_json_labels(js: Path) -> tuple[LabelMap, tuple[str, ...]]:
    """The label map and class names of an MSD / nnU-Net ``dataset.json``: ``labels`` is
    ``{"0": "background", "1": "liver"}`` (MSD, nnU-Net v1) or ``{"background": 0, "liver": 1}`` (nnU-Net v2).

    Raises:
        DataError: the file is not valid JSON, or its ``labels`` is not one of these two forms.
    """
    try:
        doc = json.loads(js.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(
            js, f"not valid JSON ({one_line(e)}); fix it, or remove it and pass --option class_names=..."
        ) from None
    labels = doc.get("labels") if isinstance(doc, dict) else None
    items = None
    if isinstance(labels, dict) and labels:
        for raw_of in (lambda k, v: (k, v), lambda k, v: (v, k)):  # {"0": name} or {name: 0}
            pairs = [raw_of(k, v) for k, v in labels.items()]
            if all(isinstance(r, (str, int)) and re.fullmatch(r"-?\d+", str(r).strip()) for r, _ in pairs):
                items = sorted((int(str(r).strip()), str(n)) for r, n in pairs)
                break
    if items is None or len({r for r, _ in items}) != len(items):
        raise DataError(
            js,
            f'\'labels\' must map label values to names, e.g. {{"0": "background", "1": "liver"}}, got '
            f"{labels!r:.80}; fix it, or pass --option label_map=... and --option class_names=...",
        )
    values = _background_first([r for r, _ in items])
    names = dict(items)
    return LabelMap(values, num_classes=len(values)), tuple(names.get(v, "background") for v in values)


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
        ConfigError: ``patient_regex`` is not a regular expression.
    """
    base = require_root(root)
    pairs = find_pairs(base)
    lmap, names = resolve_labels(base, pairs, label_map, class_names)
    try:
        rx = re.compile(patient_regex or DEFAULT_PATIENT_REGEX)
    except (re.error, TypeError) as e:
        raise ConfigError(f"--option patient_regex: not a regular expression ({e}): {patient_regex!r}") from None
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
