"""KiTS 2019 kidney tumour CT, used by the papers for pre-training (images only).

Layout: ``case_00000/imaging.nii.gz`` (the ``segmentation.nii.gz`` files are ignored).
KiTS19 stores volumes as ``(Z, Y, X)``: the slice axis is found from the affine (the voxel axis
that moves most along world z) and moved to ``D``. Pre-training patches are 512 px.

- Heller et al., "The KiTS19 Challenge Data: 300 Kidney Tumor Cases with Clinical Context,
  CT Semantic Segmentations, and Surgical Outcomes", arXiv 1904.00445.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from medssl.data.case import CaseSource, DatasetSpec, to_dhw
from medssl.data.io import load_nifti
from medssl.data.readers._common import RawCase, make_source, require_root, zero_spacing_meta
from medssl.errors import DataError
from medssl.registry import DATASETS

__all__ = ["SPEC", "scan", "slice_axis"]

_CASE = re.compile(r"^case_(\d+)$")


def slice_axis(affine: np.ndarray) -> int:
    """The voxel axis (0, 1 or 2) whose direction has the largest world-z component.

    Args:
        affine: ``(4, 4)`` NIfTI affine.

    Returns:
        The slice axis index.
    """
    return int(np.argmax(np.abs(np.asarray(affine)[2, :3])))


def _reader(path: Path) -> Callable[[], RawCase]:
    def read() -> RawCase:
        arr, zooms, affine = load_nifti(path)
        if arr.ndim != 3:
            raise DataError(path, f"expected a 3D volume, got a {arr.ndim}D array of shape {arr.shape}")
        ax = slice_axis(affine)
        order = [a for a in range(3) if a != ax] + [ax]
        vol, spacing = to_dhw(np.transpose(arr, order), [zooms[a] for a in order])
        return RawCase(vol, None, spacing, str(path), None, meta={"slice_axis": ax, **zero_spacing_meta(path)})

    return read


def scan(root: str | Path, affine_tol: float = 1e-3) -> list[CaseSource]:
    """Find the KiTS19 cases under ``root``.

    Args:
        root: the ``data`` folder of the KiTS19 repository (searched recursively).
        affine_tol: unused (no labels); uniform interface.

    Returns:
        Lazy image-only cases sorted by number; case and patient id ``case_00000``,
        ``meta["paper_key"]`` = the case number.

    Raises:
        DataError: ``root`` missing.
    """
    base = require_root(root)
    found = sorted((f, int(m.group(1))) for f in base.rglob("imaging.nii*") if (m := _CASE.match(f.parent.name)))
    out: list[CaseSource] = []
    for f, key in found:
        cid = f.parent.name
        meta = {"paper_key": key, "format": "nifti"}
        out.append(make_source(_reader(f), cid, cid, (f,), None, False, meta, affine_tol))
    return out


SPEC = DatasetSpec(
    name="kits",
    description="KiTS 2019 abdominal CT, images only; pre-trains for Spleen and ISIC",
    layout="case_XXXXX/imaging.nii.gz",
    class_names=("background",),
    scan=scan,
    target_spacing=None,
    normalization="minmax",
    patch_size=512,
    pretrain_only=True,
)
DATASETS.register("kits", description=SPEC.description, paper="Heller et al., arXiv 1904.00445")(SPEC)
