"""HVSMR 2016 (whole-heart and great-vessel segmentation from 3D cardiovascular MR in
congenital heart disease), official NIfTI release.

Layout::

    Training dataset/training_axial_full_pat0.nii.gz     (or the cropped _crop_ variant)
    Ground truth/training_axial_full_pat0-label.nii.gz

Labels: 0 background, 1 myocardium, 2 blood pool. The papers (METHODS.md section 6) use
0.7 mm in-plane, clip + z-score, 352 px patches. Patient numbers 0..9 are the keys of the
published split lists.

- Pace et al., "Interactive whole-heart segmentation in congenital heart disease", MICCAI 2015.
"""

from __future__ import annotations

import re
from pathlib import Path

from medssl.data.case import CaseSource, DatasetSpec
from medssl.data.readers._common import LabelMap, make_source, nifti_pair_reader, require_root
from medssl.errors import ConfigError
from medssl.registry import DATASETS

__all__ = ["HVSMR_CLASSES", "SPEC", "scan"]

HVSMR_CLASSES = ("background", "myocardium", "blood_pool")
_FILE = re.compile(r"^training_axial_(full|crop)_pat(\d+)(-label)?\.nii(\.gz)?$")


def scan(root: str | Path, variant: str = "auto", affine_tol: float = 1e-3) -> list[CaseSource]:
    """Find HVSMR training cases under ``root``.

    Args:
        root: the HVSMR folder (holding ``Training dataset`` and ``Ground truth``; searched recursively).
        variant: ``full``, ``crop`` or ``auto`` (the full volume when present, else the cropped one).
        affine_tol: tolerance for the image/label geometry check.

    Returns:
        Lazy cases sorted by patient number, case and patient id ``pat{N}``,
        ``meta["paper_key"] = N``, ``meta["variant"]``.

    Raises:
        DataError: ``root`` missing.
        ConfigError: unknown variant.
    """
    if variant not in ("auto", "full", "crop"):
        raise ConfigError(f"hvsmr: variant must be 'auto', 'full' or 'crop', not {variant!r}")
    base = require_root(root)
    images: dict[tuple[int, str], Path] = {}
    labels: dict[tuple[int, str], Path] = {}
    for f in sorted(base.rglob("training_axial_*")):
        m = _FILE.match(f.name)
        if m and f.is_file():
            (labels if m.group(3) else images)[(int(m.group(2)), m.group(1))] = f
    lmap = LabelMap.identity(len(HVSMR_CLASSES))
    out: list[CaseSource] = []
    for n in sorted({k[0] for k in images}):
        order = ["full", "crop"] if variant == "auto" else [variant]
        v = next((v for v in order if (n, v) in images), None)
        if v is None:
            continue
        img = images[(n, v)]
        gt_dir = img.parent.parent / "Ground truth"
        lab = labels.get((n, v), (gt_dir if gt_dir.is_dir() else img.parent) / img.name.replace(".nii", "-label.nii"))
        meta = {"paper_key": n, "variant": v, "format": "nifti"}
        out.append(
            make_source(nifti_pair_reader(img, lab), f"pat{n}", f"pat{n}", (img, lab), lmap, True, meta, affine_tol)
        )
    return out


SPEC = DatasetSpec(
    name="hvsmr",
    description="HVSMR 2016 cardiovascular MR (congenital heart disease); myocardium, blood pool",
    layout="Training dataset/training_axial_{full,crop}_patN.nii.gz + Ground truth/training_axial_{full,crop}_patN-label.nii.gz",
    class_names=HVSMR_CLASSES,
    scan=scan,
    target_spacing=0.7,
    normalization="clip_zscore",
    patch_size=352,
    paper_split_key="HVSMR",
)
DATASETS.register("hvsmr", description=SPEC.description, paper="Pace et al., MICCAI 2015")(SPEC)
