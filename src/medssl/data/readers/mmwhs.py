"""MM-WHS 2017 (Multi-Modality Whole Heart Segmentation), CT and MR, official NIfTI release.

Layout::

    ct_train/ct_train_1001_image.nii.gz + ct_train/ct_train_1001_label.nii.gz
    mr_train/mr_train_1001_image.nii.gz + mr_train/mr_train_1001_label.nii.gz
    ct_test/ct_test_2001_image.nii.gz   (no label; skipped unless include_unlabeled)

Raw label values 205, 420, 500, 550, 600, 820, 850 become 1..7: LV myocardium (205),
left atrium (420), LV blood cavity (500), right atrium (550), RV blood cavity (600),
ascending aorta (820), pulmonary artery (850). The papers use CT (METHODS.md section 6):
1.0 mm in-plane, 1-99 percentile clip, z-score, 256 px patches.

- Zhuang et al., "Evaluation of algorithms for Multi-Modality Whole Heart Segmentation: An
  open-access grand challenge", Medical Image Analysis 2019.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from medssl.data.case import CaseSource, DatasetSpec
from medssl.data.readers._common import LabelMap, make_source, nifti_pair_reader, require_root
from medssl.errors import ConfigError
from medssl.registry import DATASETS

__all__ = ["MMWHS_CLASSES", "MMWHS_LABEL_VALUES", "SPEC", "scan"]

MMWHS_CLASSES = ("background", "LV-myo", "LA", "LV", "RA", "RV", "AA", "PA")
MMWHS_LABEL_VALUES = (0, 205, 420, 500, 550, 600, 820, 850)
_IMAGE = re.compile(r"^((ct|mr)_(train|test)_(\d+))_image\.nii(\.gz)?$", re.IGNORECASE)


def scan(
    root: str | Path,
    modality: str = "ct",
    include_unlabeled: bool = False,
    label_aliases: Mapping[int, int] | None = None,
    affine_tol: float = 1e-3,
) -> list[CaseSource]:
    """Find MM-WHS cases under ``root``.

    Args:
        root: folder holding ``ct_train``/``mr_train`` (searched recursively).
        modality: ``ct``, ``mr`` or ``all``.
        include_unlabeled: also return the test images (without label).
        label_aliases: extra raw values mapped onto a standard raw value, e.g. ``{421: 420}``
            for a stray value in one MR label file.
        affine_tol: tolerance for the image/label geometry check.

    Returns:
        Lazy cases sorted by id (``ct_train_1001``); patient id ``ct_1001``;
        ``meta["paper_key"]`` is the case number (1001) and ``meta["modality"]`` ``ct``/``mr``.

    Raises:
        DataError: ``root`` missing.
        ConfigError: unknown modality.
    """
    modality = modality.lower()
    if modality not in ("ct", "mr", "all"):
        raise ConfigError(f"mmwhs: modality must be 'ct', 'mr' or 'all', not {modality!r}")
    base = require_root(root)
    values = {v: i for i, v in enumerate(MMWHS_LABEL_VALUES)}
    for raw, target in (label_aliases or {}).items():
        values[int(raw)] = values[int(target)]
    lmap = LabelMap(values, num_classes=len(MMWHS_CLASSES))
    out: list[CaseSource] = []
    for f in sorted(base.rglob("*_image.nii*")):
        m = _IMAGE.match(f.name)
        if not m or f.name.startswith("."):
            continue
        mod, part, num = m.group(2).lower(), m.group(3).lower(), int(m.group(4))
        if modality != "all" and mod != modality:
            continue
        label = f.with_name(f.name.replace("_image", "_label"))
        if part == "test" and not label.exists() and not include_unlabeled:
            continue
        has_label = label.exists() or not include_unlabeled
        meta = {"paper_key": num, "modality": mod, "part": part, "format": "nifti"}
        read = nifti_pair_reader(f, label if has_label else None)
        paths = (f, label) if has_label else (f,)
        out.append(make_source(read, m.group(1).lower(), f"{mod}_{num}", paths, lmap, has_label, meta, affine_tol))
    return out


SPEC = DatasetSpec(
    name="mmwhs",
    description="MM-WHS 2017 whole-heart CT (or MR); 7 structures",
    layout="ct_train/ct_train_NNNN_image.nii.gz + ct_train_NNNN_label.nii.gz (labels 205..850)",
    class_names=MMWHS_CLASSES,
    scan=scan,
    target_spacing=1.0,
    normalization="clip_zscore",
    patch_size=256,
    paper_split_key="MMWHS",
    default_options={"modality": "ct"},
)
DATASETS.register("mmwhs", description=SPEC.description, paper="Zhuang et al., MedIA 2019")(SPEC)
