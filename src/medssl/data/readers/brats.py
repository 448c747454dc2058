"""BraTS 2018 brain tumour MR, used by the papers for pre-training (one modality, images only).

Layout: ``MICCAI_BraTS_2018_Data_Training/{HGG,LGG}/Brats18_XXX/Brats18_XXX_{flair,t1,t1ce,t2}.nii.gz``
(any depth; the ``_seg`` files are ignored). Pre-training patches are 192 px.

- Menze et al., "The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS)", IEEE TMI 2015;
  Bakas et al., "Identifying the Best Machine Learning Algorithms for Brain Tumor Segmentation ...
  in the BRATS Challenge", arXiv 1811.02629.
"""

from __future__ import annotations

from pathlib import Path

from medssl.data.case import CaseSource, DatasetSpec
from medssl.data.readers._common import make_source, nifti_pair_reader, nifti_stem, require_root
from medssl.errors import ConfigError
from medssl.registry import DATASETS

__all__ = ["BRATS_MODALITIES", "SPEC", "scan"]

BRATS_MODALITIES = ("flair", "t1", "t1ce", "t2")


def scan(root: str | Path, modality: str = "flair", affine_tol: float = 1e-3) -> list[CaseSource]:
    """Find the BraTS 2018 subjects under ``root``.

    Args:
        root: the folder (searched recursively for ``Brats18_*`` subject folders).
        modality: ``flair``, ``t1``, ``t1ce`` or ``t2``.
        affine_tol: unused (no labels); uniform interface.

    Returns:
        Lazy image-only cases sorted by subject; case and patient id = subject folder name,
        ``meta``: ``paper_key`` (position), ``grade`` (``HGG``/``LGG`` when the parent says so), ``modality``.

    Raises:
        DataError: ``root`` missing.
        ConfigError: unknown modality.
    """
    modality = modality.lower()
    if modality not in BRATS_MODALITIES:
        raise ConfigError(f"brats: modality must be one of {', '.join(BRATS_MODALITIES)}, not {modality!r}")
    base = require_root(root)
    found = []
    for f in base.rglob("*.nii*"):
        stem = nifti_stem(f)
        if stem.lower() == f"{f.parent.name}_{modality}".lower() and f.parent.name.lower().startswith("brats"):
            found.append(f)
    found.sort(key=lambda f: f.parent.name)
    out: list[CaseSource] = []
    for pos, f in enumerate(found):
        sid = f.parent.name
        grade = f.parent.parent.name if f.parent.parent.name in ("HGG", "LGG") else None
        meta = {"paper_key": pos, "grade": grade, "modality": modality, "format": "nifti"}
        out.append(make_source(nifti_pair_reader(f, None), sid, sid, (f,), None, False, meta, affine_tol))
    return out


SPEC = DatasetSpec(
    name="brats",
    description="BraTS 2018 brain MR, one modality (default FLAIR), images only; pre-trains for HVSMR, CHAOS, Heart, Hippocampus",
    layout="*/Brats18_*/Brats18_*_{flair,t1,t1ce,t2}.nii.gz",
    class_names=("background",),
    scan=scan,
    target_spacing=None,
    normalization="zscore",
    patch_size=192,
    pretrain_only=True,
    default_options={"modality": "flair"},
)
DATASETS.register("brats", description=SPEC.description, paper="Menze et al., IEEE TMI 2015")(SPEC)
