"""CHAOS 2019 (Combined Healthy Abdominal Organ Segmentation), MR, official DICOM release.

Layout (``CHAOS_Train_Sets/Train_Sets/MR`` or any folder above the patient folders)::

    MR/1/T2SPIR/DICOM_anon/IMG-0002-00001.dcm ...
    MR/1/T2SPIR/Ground/IMG-0002-00001.png ...          # one mask per DICOM slice
    MR/1/T1DUAL/DICOM_anon/{InPhase,OutPhase}/*.dcm + MR/1/T1DUAL/Ground/*.png

Masks pair with slices by file stem (by sorted order when the stems differ, as the reference
code does). Mask grey values follow the challenge's ranges: 55-70 liver (63), 110-135 right
kidney (126), 175-200 left kidney (189), 240-255 spleen (252) -> 1..4; 0 is background. The
papers (METHODS.md section 6) use T2-SPIR, divide by the maximum, 256 px patches.

- Kavur et al., "CHAOS Challenge - combined (CT-MR) healthy abdominal organ segmentation",
  Medical Image Analysis 2021.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from medssl.data.case import CaseSource, DatasetSpec
from medssl.data.io import load_dicom_series, load_png
from medssl.data.readers._common import LabelMap, RawCase, make_source, require_root
from medssl.errors import ConfigError, DataError
from medssl.registry import DATASETS

__all__ = ["CHAOS_CLASSES", "CHAOS_LABEL_MAP", "SPEC", "scan"]

CHAOS_CLASSES = ("background", "liver", "right_kidney", "left_kidney", "spleen")
CHAOS_LABEL_MAP = LabelMap({0: 0}, ranges=((55, 70, 1), (110, 135, 2), (175, 200, 3), (240, 255, 4)), num_classes=5)


def _pair_masks(files: list[Path], ground: Path) -> list[Path]:
    pngs = sorted(p for p in ground.glob("*.png") if not p.name.startswith("."))
    by_stem = {p.stem: p for p in pngs}
    if all(f.stem in by_stem for f in files):
        return [by_stem[f.stem] for f in files]
    if len(pngs) != len(files):
        raise DataError(ground, f"{len(pngs)} PNG masks for {len(files)} DICOM slices")
    by_name = dict(zip(sorted(files, key=lambda f: f.name), pngs))
    return [by_name[f] for f in files]


def _reader(dicom_dir: Path, ground: Path) -> Callable[[], RawCase]:
    def read() -> RawCase:
        volume, spacing, files = load_dicom_series(dicom_dir)
        if not ground.is_dir():
            raise DataError(ground, "mask folder not found")
        masks = []
        for f, png in zip(files, _pair_masks(files, ground)):
            m = load_png(png, grey=True)
            if m.shape != volume.shape[1:]:
                raise DataError(
                    png,
                    f"mask size {m.shape[0]}x{m.shape[1]} differs from slice size {volume.shape[1]}x{volume.shape[2]} of {f.name}",
                )
            masks.append(m)
        meta = {"slice_files": [f.name for f in files]}
        return RawCase(volume, np.stack(masks, 0), spacing, str(dicom_dir), str(ground), meta=meta)

    return read


def scan(
    root: str | Path, sequence: str = "T2SPIR", phase: str = "InPhase", affine_tol: float = 1e-3
) -> list[CaseSource]:
    """Find CHAOS MR patients under ``root``.

    Args:
        root: folder above the numbered patient folders (e.g. ``Train_Sets/MR``).
        sequence: ``T2SPIR`` or ``T1DUAL``.
        phase: for ``T1DUAL``: ``InPhase`` or ``OutPhase``.
        affine_tol: unused (slices and masks share a grid); uniform interface.

    Returns:
        Lazy cases sorted by patient number; case and patient id ``patient{N}``,
        ``meta["paper_key"] = N``.

    Raises:
        DataError: ``root`` missing.
        ConfigError: unknown sequence or phase.
    """
    if sequence not in ("T2SPIR", "T1DUAL"):
        raise ConfigError(f"chaos: sequence must be 'T2SPIR' or 'T1DUAL', not {sequence!r}")
    if sequence == "T1DUAL" and phase not in ("InPhase", "OutPhase"):
        raise ConfigError(f"chaos: phase must be 'InPhase' or 'OutPhase', not {phase!r}")
    base = require_root(root)
    found: dict[int, Path] = {}
    for seq_dir in sorted(base.rglob(sequence)):
        if seq_dir.is_dir() and re.fullmatch(r"\d+", seq_dir.parent.name) and (seq_dir / "DICOM_anon").is_dir():
            found.setdefault(int(seq_dir.parent.name), seq_dir)
    out: list[CaseSource] = []
    for n, seq_dir in sorted(found.items()):
        dicom = seq_dir / "DICOM_anon" / phase if sequence == "T1DUAL" else seq_dir / "DICOM_anon"
        ground = seq_dir / "Ground"
        meta = {"paper_key": n, "sequence": sequence, "format": "dicom+png"}
        if sequence == "T1DUAL":
            meta["phase"] = phase
        out.append(
            make_source(
                _reader(dicom, ground),
                f"patient{n}",
                f"patient{n}",
                (dicom, ground),
                CHAOS_LABEL_MAP,
                True,
                meta,
                affine_tol,
            )
        )
    return out


SPEC = DatasetSpec(
    name="chaos",
    description="CHAOS 2019 abdominal MR (T2-SPIR, DICOM + PNG masks); liver, kidneys, spleen",
    layout="MR/N/T2SPIR/DICOM_anon/*.dcm + MR/N/T2SPIR/Ground/*.png (63/126/189/252)",
    class_names=CHAOS_CLASSES,
    scan=scan,
    target_spacing=None,
    normalization="max",
    patch_size=256,
    paper_split_key="CHAOS",
)
DATASETS.register("chaos", description=SPEC.description, paper="Kavur et al., MedIA 2021")(SPEC)
