"""MS-CMRSeg 2019 (multi-sequence cardiac MR segmentation), bSSFP (C0) sequence.

Layouts accepted::

    image_N.nii.gz + label_N.nii.gz                  (the converted copy in shared/data)
    patientN_C0.nii.gz + patientN_C0_manual.nii.gz   (the official release; ``sequence`` picks C0/LGE/T2)

Raw labels 0, 200, 500, 600 become 0 background, 1 LV myocardium, 2 LV blood pool, 3 RV.

- Zhuang, "Multivariate mixture model for myocardial segmentation combining multi-source
  images", IEEE TPAMI 2019.
"""

from __future__ import annotations

import re
from pathlib import Path

from medssl.data.case import CaseSource, DatasetSpec
from medssl.data.readers._common import LabelMap, make_source, nifti_pair_reader, numbered_nifti_pairs, require_root
from medssl.registry import DATASETS

__all__ = ["MSCMRSEG_CLASSES", "MSCMRSEG_LABEL_MAP", "SPEC", "scan"]

MSCMRSEG_CLASSES = ("background", "LV-myo", "LV", "RV")
MSCMRSEG_LABEL_MAP = LabelMap({0: 0, 200: 1, 500: 2, 600: 3}, num_classes=4)


def scan(root: str | Path, sequence: str = "C0", affine_tol: float = 1e-3) -> list[CaseSource]:
    """Find MS-CMRSeg cases in ``root``.

    Args:
        root: the folder.
        sequence: for the official layout, ``C0`` (bSSFP), ``LGE`` or ``T2``.
        affine_tol: tolerance for the image/label geometry check.

    Returns:
        Lazy cases sorted by N; case and patient id ``patient{N}``, ``meta["paper_key"] = N``.

    Raises:
        DataError: ``root`` missing.
    """
    base = require_root(root)
    pairs = [(n, img, lab or base / f"label_{n}.nii.gz") for n, img, lab in numbered_nifti_pairs(base)]
    if not pairs:
        pat = re.compile(rf"^patient(\d+)_{re.escape(sequence)}\.nii(\.gz)?$")
        for f in sorted(base.rglob(f"patient*_{sequence}.nii*")):
            if m := pat.match(f.name):
                pairs.append(
                    (int(m.group(1)), f, f.with_name(f.name.replace(f"_{sequence}.nii", f"_{sequence}_manual.nii")))
                )
        pairs.sort(key=lambda t: t[0])
    out: list[CaseSource] = []
    for n, img, lab in pairs:
        meta = {"paper_key": n, "sequence": sequence, "format": "nifti"}
        out.append(
            make_source(
                nifti_pair_reader(img, lab),
                f"patient{n}",
                f"patient{n}",
                (img, lab),
                MSCMRSEG_LABEL_MAP,
                True,
                meta,
                affine_tol,
            )
        )
    return out


SPEC = DatasetSpec(
    name="mscmrseg",
    description="MS-CMRSeg 2019 bSSFP cardiac MR; LV myocardium, LV blood pool, RV",
    layout="image_N.nii.gz + label_N.nii.gz (raw labels 0/200/500/600) or patientN_C0[_manual].nii.gz",
    class_names=MSCMRSEG_CLASSES,
    scan=scan,
    target_spacing=None,
    normalization="zscore",
    patch_size=256,
    paper_split_key=None,
)
DATASETS.register("mscmrseg", description=SPEC.description, paper="Zhuang, IEEE TPAMI 2019")(SPEC)
