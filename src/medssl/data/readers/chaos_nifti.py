"""CHAOS MR T2-SPIR already converted to NIfTI (``image_N.nii.gz`` + ``label_N.nii.gz``).

Labels are stored as 0 background, 1 liver, 2 right kidney, 3 left kidney, 4 spleen; N is the
CHAOS patient number (the key of the published split lists). Normalisation as the papers:
divide by the maximum.

- Kavur et al., "CHAOS Challenge - combined (CT-MR) healthy abdominal organ segmentation",
  Medical Image Analysis 2021.
"""

from __future__ import annotations

from pathlib import Path

from medssl.data.case import CaseSource, DatasetSpec
from medssl.data.readers._common import LabelMap, make_source, nifti_pair_reader, numbered_nifti_pairs, require_root
from medssl.data.readers.chaos import CHAOS_CLASSES
from medssl.registry import DATASETS

__all__ = ["SPEC", "scan"]


def scan(root: str | Path, affine_tol: float = 1e-3) -> list[CaseSource]:
    """Find ``image_N``/``label_N`` pairs directly in ``root``.

    Args:
        root: the folder.
        affine_tol: tolerance for the image/label geometry check.

    Returns:
        Lazy cases sorted by N; case and patient id ``patient{N}``, ``meta["paper_key"] = N``.

    Raises:
        DataError: ``root`` missing.
    """
    base = require_root(root)
    lmap = LabelMap.identity(len(CHAOS_CLASSES))
    out: list[CaseSource] = []
    for n, img, lab in numbered_nifti_pairs(base):
        lab = lab or base / f"label_{n}.nii.gz"
        meta = {"paper_key": n, "format": "nifti"}
        out.append(
            make_source(
                nifti_pair_reader(img, lab), f"patient{n}", f"patient{n}", (img, lab), lmap, True, meta, affine_tol
            )
        )
    return out


SPEC = DatasetSpec(
    name="chaos-nifti",
    description="CHAOS MR T2-SPIR as NIfTI (image_N/label_N, labels 0..4); liver, kidneys, spleen",
    layout="image_N.nii.gz + label_N.nii.gz (0 bg, 1 liver, 2 right kidney, 3 left kidney, 4 spleen)",
    class_names=CHAOS_CLASSES,
    scan=scan,
    target_spacing=None,
    normalization="max",
    patch_size=256,
    paper_split_key="CHAOS",
)
DATASETS.register("chaos-nifti", description=SPEC.description, paper="Kavur et al., MedIA 2021")(SPEC)
