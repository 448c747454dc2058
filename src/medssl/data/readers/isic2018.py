"""ISIC 2018 Task 1 (skin lesion boundary segmentation), official release.

Layout::

    ISIC2018_Task1-2_Training_Input/ISIC_0000000.jpg
    ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png

Each image is a case with ``D = 1``: RGB is turned grey with PIL's luminance
(``0.299 R + 0.587 G + 0.114 B``, what the reference code's ``convert('L')`` does), masks
0/255 become 0/1, spacing is ``(1, 1, 1)`` (unknown). ``meta["paper_key"]`` is the image
number (``ISIC_0000043`` -> 43): the reference ISIC data set formats its keys as
``ISIC_{key:07d}.jpg``, and the published lists hold keys up to 16071 for 2594 images, so they
are image numbers, not positions. ``meta["position"]`` keeps the 0-based sorted position.

- Codella et al., "Skin Lesion Analysis Toward Melanoma Detection 2018: A Challenge Hosted by
  the International Skin Imaging Collaboration (ISIC)", arXiv 1902.03368.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from medssl.data.case import CaseSource, DatasetSpec
from medssl.data.io import load_jpeg, load_png
from medssl.data.readers._common import LabelMap, RawCase, make_source, require_root
from medssl.errors import DataError
from medssl.registry import DATASETS

__all__ = ["ISIC_CLASSES", "SPEC", "scan"]

ISIC_CLASSES = ("background", "lesion")
_IMAGE = re.compile(r"^ISIC_(\d+)\.jpe?g$", re.IGNORECASE)


def _reader(image: Path, mask: Path) -> Callable[[], RawCase]:
    def read() -> RawCase:
        img = load_jpeg(image, grey=True)
        msk = load_png(mask, grey=True)
        if msk.shape != img.shape:
            raise DataError(
                mask,
                f"mask size {msk.shape[0]}x{msk.shape[1]} (H x W) differs from image size {img.shape[0]}x{img.shape[1]}",
            )
        return RawCase(img[None], msk[None], (1.0, 1.0, 1.0), str(image), str(mask), meta={"spacing_known": False})

    return read


def _find_dir(base: Path, name: str) -> Path | None:
    if base.name == name:
        return base
    return next((d for d in sorted(base.rglob(name)) if d.is_dir()), None)


def scan(root: str | Path, split: str = "Training", affine_tol: float = 1e-3) -> list[CaseSource]:
    """Find ISIC 2018 Task 1 images and masks.

    Args:
        root: folder holding the ``ISIC2018_Task1-2_{split}_Input`` and
            ``ISIC2018_Task1_{split}_GroundTruth`` folders.
        split: ``Training`` or ``Validation`` (or ``Test``) part of the release.
        affine_tol: unused (2D images); uniform interface.

    Returns:
        Lazy cases sorted by image number; case and patient id ``ISIC_XXXXXXX``.

    Raises:
        DataError: ``root`` missing.
    """
    base = require_root(root)
    idir = _find_dir(base, f"ISIC2018_Task1-2_{split}_Input")
    mdir = _find_dir(base, f"ISIC2018_Task1_{split}_GroundTruth")
    if idir is None:
        return []
    mdir = mdir or base / f"ISIC2018_Task1_{split}_GroundTruth"
    lmap = LabelMap({0: 0, 255: 1}, num_classes=2)
    numbered = sorted(
        ((int(m.group(1)), f) for f in idir.iterdir() if (m := _IMAGE.match(f.name))), key=lambda nf: nf[0]
    )
    out: list[CaseSource] = []
    for pos, (num, f) in enumerate(numbered):
        cid = f"ISIC_{num:07d}"
        mask = mdir / f"{cid}_segmentation.png"
        meta = {"paper_key": num, "position": pos, "spacing_known": False, "format": "jpeg+png"}
        out.append(make_source(_reader(f, mask), cid, cid, (f, mask), lmap, True, meta, affine_tol))
    return out


SPEC = DatasetSpec(
    name="isic2018",
    description="ISIC 2018 Task 1 dermoscopy (grey, 2D); lesion",
    layout="ISIC2018_Task1-2_Training_Input/ISIC_XXXXXXX.jpg + ISIC2018_Task1_Training_GroundTruth/ISIC_XXXXXXX_segmentation.png",
    class_names=ISIC_CLASSES,
    scan=scan,
    target_spacing=None,
    normalization="minmax",
    patch_size=256,
    paper_split_key="ISIC",
)
DATASETS.register("isic2018", description=SPEC.description, paper="Codella et al., arXiv 1902.03368")(SPEC)
