"""ImageCHD (congenital heart disease CT), used by the papers for pre-training (images only).

Layout: ``ct_1001_image.nii.gz`` (any depth; ``ct_1001_label.nii.gz`` files are ignored).
The reference pre-processing clips to the 1st-99th percentile and z-scores each volume;
pre-training patches are 512 px.

- Xu et al., "ImageCHD: A 3D Computed Tomography Image Dataset for Classification of
  Congenital Heart Disease", MICCAI 2020.
"""

from __future__ import annotations

import re
from pathlib import Path

from medssl.data.case import CaseSource, DatasetSpec
from medssl.data.readers._common import make_source, nifti_pair_reader, require_root
from medssl.registry import DATASETS

__all__ = ["SPEC", "scan"]

_IMAGE = re.compile(r"^ct_(\d+)_image\.nii(\.gz)?$")


def scan(root: str | Path, affine_tol: float = 1e-3) -> list[CaseSource]:
    """Find the CHD CT images under ``root``.

    Args:
        root: the folder (searched recursively).
        affine_tol: unused (no labels); uniform interface.

    Returns:
        Lazy image-only cases sorted by number; case and patient id ``ct_1001``,
        ``meta["paper_key"] = 1001``.

    Raises:
        DataError: ``root`` missing.
    """
    base = require_root(root)
    numbered = sorted(
        ((int(m.group(1)), f) for f in base.rglob("ct_*_image.nii*") if (m := _IMAGE.match(f.name))),
        key=lambda nf: nf[0],
    )
    out: list[CaseSource] = []
    for n, f in numbered:
        meta = {"paper_key": n, "format": "nifti"}
        out.append(make_source(nifti_pair_reader(f, None), f"ct_{n}", f"ct_{n}", (f,), None, False, meta, affine_tol))
    return out


SPEC = DatasetSpec(
    name="chd",
    description="ImageCHD cardiac CT, images only; pre-trains for ACDC and MM-WHS",
    layout="ct_XXXX_image.nii.gz",
    class_names=("background",),
    scan=scan,
    target_spacing=None,
    normalization="clip_zscore",
    patch_size=512,
    pretrain_only=True,
)
DATASETS.register("chd", description=SPEC.description, paper="Xu et al., MICCAI 2020")(SPEC)
