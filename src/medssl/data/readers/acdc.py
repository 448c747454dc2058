"""ACDC (Automated Cardiac Diagnosis Challenge, MICCAI 2017), official NIfTI release.

Layout (``training/`` and ``testing/`` or ``database/training`` ... may sit in between)::

    patient001/Info.cfg                    # ED: 1, ES: 12, Group: DCM, ...
    patient001/patient001_frame01.nii.gz   # the ED frame
    patient001/patient001_frame01_gt.nii.gz
    patient001/patient001_frame12.nii.gz   # the ES frame
    patient001/patient001_frame12_gt.nii.gz

The ED and ES frames are the cases (``patient001_frame01``), the patient is ``patient001``.
Labels: 0 background, 1 RV, 2 myocardium, 3 LV. Pre-processing of the papers (METHODS.md
section 6): 1.25 mm in-plane, per-volume z-score, 352 px patches.

- Bernard et al., "Deep Learning Techniques for Automatic MRI Cardiac Multi-structures
  Segmentation and Diagnosis: Is the Problem Solved?", IEEE TMI 2018.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from medssl.data.case import CaseSource, DatasetSpec
from medssl.data.readers._common import LabelMap, make_source, nifti_pair_reader, require_root
from medssl.errors import DataError
from medssl.registry import DATASETS

__all__ = ["ACDC_CLASSES", "SPEC", "read_info_cfg", "scan"]

ACDC_CLASSES = ("background", "RV", "Myo", "LV")
_PATIENT = re.compile(r"^patient(\d+)$")


def read_info_cfg(path: Path) -> dict[str, str]:
    """Parse an ACDC ``Info.cfg`` (``key: value`` lines).

    Args:
        path: the ``Info.cfg`` file.

    Returns:
        ``{"ED": "1", "ES": "12", "Group": "DCM", ...}``.

    Raises:
        DataError: unreadable file or a line without ``:``.
    """
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"unreadable Info.cfg ({type(exc).__name__})") from None
    out: dict[str, str] = {}
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if ":" not in line:
            raise DataError(path, f"line {i} is not 'key: value'")
        k, v = line.split(":", 1)
        out[k.strip()] = v.strip()
    return out


def _nii(folder: Path, stem: str) -> Path:
    for ext in (".nii.gz", ".nii"):
        if (folder / f"{stem}{ext}").exists():
            return folder / f"{stem}{ext}"
    return folder / f"{stem}.nii.gz"


def scan(
    root: str | Path, frames: Sequence[str] = ("ED", "ES"), include_unlabeled: bool = False, affine_tol: float = 1e-3
) -> list[CaseSource]:
    """Find the ED/ES cases of every ``patientXXX`` folder under ``root``.

    Args:
        root: the ACDC folder (any depth above the ``patientXXX`` folders).
        frames: which phases to use (``ED``, ``ES``).
        include_unlabeled: keep frames without a ``_gt`` file (as cases without label);
            otherwise such a frame is kept with its missing ground-truth path, so that loading
            or ``verify_dataset`` reports it.
        affine_tol: tolerance for the image/label geometry check.

    Returns:
        Lazy cases sorted by patient and frame; ``meta`` has ``phase``, ``frame``, ``group``,
        ``paper_key`` (the patient number).

    Raises:
        DataError: ``root`` missing; an ``Info.cfg`` without the requested phase.
    """
    base = require_root(root)
    lmap = LabelMap.identity(len(ACDC_CLASSES))
    dirs = sorted(
        {d for d in base.rglob("patient*") if d.is_dir() and _PATIENT.match(d.name)}
        | ({base} if _PATIENT.match(base.name) else set())
    )
    out: list[CaseSource] = []
    for d in dirs:
        pid = d.name
        num = int(pid.removeprefix("patient"))  # the name matched _PATIENT
        cfg_path = d / "Info.cfg"
        chosen: list[tuple[str | None, int]] = []
        group = None
        if cfg_path.exists():
            cfg = read_info_cfg(cfg_path)
            group = cfg.get("Group")
            for phase in frames:
                if phase not in cfg:
                    raise DataError(cfg_path, f"no '{phase}' entry (found: {', '.join(cfg) or 'nothing'})")
                try:
                    f = int(cfg[phase])
                except ValueError:
                    raise DataError(cfg_path, f"'{phase}' is not a frame number: {cfg[phase]!r}") from None
                if all(f != c[1] for c in chosen):
                    chosen.append((phase, f))
        else:
            for img in sorted(d.glob(f"{pid}_frame*.nii*")):
                m = re.match(rf"^{pid}_frame(\d+)\.nii(\.gz)?$", img.name)
                if m:
                    chosen.append((None, int(m.group(1))))
        for phase_or_none, f in chosen:
            stem = f"{pid}_frame{f:02d}"
            image = _nii(d, stem)
            label = _nii(d, f"{stem}_gt")
            has_label = label.exists() or not include_unlabeled
            meta = {"phase": phase_or_none, "frame": f, "group": group, "paper_key": num, "format": "nifti"}
            read = nifti_pair_reader(image, label if has_label else None)
            paths = (image, label) if has_label else (image,)
            out.append(make_source(read, stem, pid, paths, lmap, has_label, meta, affine_tol))
    return out


SPEC = DatasetSpec(
    name="acdc",
    description="ACDC cine MRI, ED and ES frames; RV, myocardium, LV (official NIfTI release)",
    layout="patientXXX/patientXXX_frameYY.nii.gz + patientXXX_frameYY_gt.nii.gz + Info.cfg (ED/ES frames)",
    class_names=ACDC_CLASSES,
    scan=scan,
    target_spacing=1.25,
    normalization="zscore",
    patch_size=352,
    paper_split_key="ACDC",
)
DATASETS.register("acdc", description=SPEC.description, paper="Bernard et al., IEEE TMI 2018")(SPEC)
