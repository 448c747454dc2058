"""Scans to segment and label maps written back: discovery, reading, atomic NIfTI writing.

An input is one NIfTI file, a folder of NIfTI files (nnU-Net's ``CASE_0000.nii.gz`` names accepted:
the case is ``CASE``), or a folder holding one DICOM series. Every scan is read as a :class:`Scan`:
its voxels in file order ``(X, Y, Z)``, its affine and header (the geometry the output keeps), and
the ``(D, H, W)`` view the network sees (``arr.transpose(2, 1, 0)``, exactly as ``medssl prepare``
reads its training images: no reorientation).

Example::

    for item in discover_inputs("scans/"):
        scan = read_scan(item)
        scan.image.shape, scan.spacing     # (D, H, W), (sz, sy, sx)
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.case import to_dhw
from ..data.io import (
    check_file,
    load_dicom_series,
    load_nifti,
    nibabel_header_fixes,
    read_nifti_header,
    zero_voxel_size,
)
from ..errors import DataError

__all__ = [
    "InputItem",
    "Scan",
    "check_input",
    "check_scale",
    "dicom_affine",
    "discover_inputs",
    "read_scan",
    "save_label_map",
    "scan_warning",
]

_NIFTI = (".nii.gz", ".nii")
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class InputItem:
    """One scan to segment.

    Attributes:
        case: the output name (``CASE`` for ``CASE_0000.nii.gz``).
        path: the NIfTI file or the DICOM series folder.
        kind: ``nifti`` or ``dicom``.
        extra_channels: further nnU-Net channel files of the case (``CASE_0001.nii.gz``...).
    """

    case: str
    path: Path
    kind: str
    extra_channels: tuple[Path, ...] = ()


@dataclass
class Scan:
    """A scan read for prediction.

    Attributes:
        item: where it came from.
        image: float32 ``(D, H, W)`` (slices, rows, columns) as prepare reads a training image.
        spacing: ``(sz, sy, sx)`` in mm.
        affine: ``(4, 4)`` voxel-to-world matrix of the file order ``(X, Y, Z)``.
        header: the NIfTI header to copy into the output (None for DICOM).
        spacing_known: False when the header stores a voxel size of 0, which nibabel reads as 1 mm
            (:func:`medssl.data.io.zero_voxel_size`): the scan's scale is then unknown.
    """

    item: InputItem
    image: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    header: Any = None
    spacing_known: bool = True


def _nifti_stem(name: str) -> str | None:
    for suf in _NIFTI:
        if name.endswith(suf) and len(name) > len(suf):
            return name[: -len(suf)]
    return None


def _group_nifti(files: Sequence[Path]) -> list[InputItem]:
    """NIfTI files -> cases; ``CASE_0000`` .. ``CASE_000N`` are the channels of one case."""
    cases: dict[str, list[tuple[int, Path]]] = {}
    for f in files:
        stem = _nifti_stem(f.name) or f.name
        m = _CHANNEL.match(stem)
        case, ch = (m.group("case"), int(m.group("channel"))) if m else (stem, 0)
        if any(c == ch for c, _ in cases.get(case, [])):
            raise DataError(f, f"a second file for case '{case}' channel {ch}")
        cases.setdefault(case, []).append((ch, f))
    items = []
    for case, chans in sorted(cases.items()):
        chans.sort()
        if chans[0][0] != 0:
            raise DataError(chans[0][1], f"case '{case}' has no channel 0 file ({case}_0000.nii.gz)")
        items.append(InputItem(case, chans[0][1], "nifti", tuple(p for _, p in chans[1:])))
    return items


def discover_inputs(src: str | Path) -> list[InputItem]:
    """The scans of INPUT: a NIfTI file, a folder of NIfTI files, or a DICOM series folder.

    Args:
        src: the input path.

    Returns:
        One :class:`InputItem` per case, sorted by case name.

    Raises:
        DataError: the path is missing, an empty file, a file that is not NIfTI, or a folder
            without NIfTI files or DICOM files.
    """
    p = Path(src)
    if not p.exists():
        raise DataError(p, "no such file or folder")
    if p.is_file():
        if _nifti_stem(p.name) is None:
            raise DataError(
                p, "not a NIfTI file (.nii or .nii.gz); give a NIfTI file, a folder of them or a DICOM folder"
            )
        return _group_nifti([p])
    visible = sorted(f for f in p.iterdir() if not f.name.startswith("."))
    nifti = [f for f in visible if f.is_file() and _nifti_stem(f.name) is not None]
    if nifti:
        return _group_nifti(nifti)
    if any(f.is_file() for f in visible):
        return [InputItem(p.name, p, "dicom")]
    raise DataError(p, "holds no NIfTI files (*.nii.gz, *.nii) and no DICOM files")


def _check_dims(path: Path, shape: Sequence[int], channels: int) -> None:
    """A 2D/3D image (a trailing axis of 1 allowed); 4D or multi-channel refused for a grey run."""
    extra = [int(s) for s in shape[3:]]
    if len(shape) < 2:
        raise DataError(path, f"expected a 2D or 3D image, got shape {tuple(shape)}")
    if any(s < 1 for s in shape):
        raise DataError(path, f"zero-size volume (header shape {tuple(shape)})")
    if any(s != 1 for s in extra):
        raise DataError(
            path,
            f"{len(shape)}D image of shape {tuple(shape)} ({int(np.prod(extra))} volumes or channels); "
            f"this run segments one {channels}-channel 3D image per case: give one volume per file",
        )


def check_input(item: InputItem, channels: int = 1) -> None:
    """Cheap checks from headers only (before any prediction starts).

    Args:
        item: the case.
        channels: the image channels the run takes (a grey run: 1).

    Raises:
        DataError: an empty or unreadable file, a 4D / multi-channel image, extra nnU-Net channel
            files, or a DICOM folder holding more than one series.
    """
    if item.extra_channels:
        raise DataError(
            item.extra_channels[0],
            f"case '{item.case}' has {1 + len(item.extra_channels)} channel files; this run takes {channels} channel",
        )
    if item.kind == "dicom":
        _dicom_headers(item.path)
        return
    hdr = read_nifti_header(item.path)
    _check_dims(item.path, hdr.shape, channels)


def _dicom_headers(folder: Path) -> list[Any]:
    """Headers (no pixels) of the files of a DICOM folder; refuses two series in one folder."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    heads = []
    for f in sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")):
        check_file(f)
        try:
            heads.append(pydicom.dcmread(f, stop_before_pixels=True))
        except (InvalidDicomError, OSError, ValueError, EOFError, TypeError) as exc:
            raise DataError(
                f,
                f"not a readable DICOM file ({exc.__class__.__name__}); a folder given as INPUT holds NIfTI files "
                "(*.nii.gz, *.nii) or one DICOM series",
            ) from None
    uids = sorted({str(getattr(h, "SeriesInstanceUID", "")) for h in heads})
    if len(uids) > 1:
        raise DataError(
            folder,
            f"holds {len(uids)} DICOM series ({', '.join(u[-12:] for u in uids[:3])}); give one series per folder",
        )
    return heads


def dicom_affine(first: Any, spacing: tuple[float, float, float], last: Any | None = None) -> np.ndarray:
    """The NIfTI (RAS) affine of a DICOM series read as ``(D, H, W)`` -> file order ``(X=W, Y=H, Z=D)``.

    Voxel ``(i, j, k)`` (column, row, slice) sits at ``IPP_0 + i sx r + j sy c + k sz n`` in the
    patient's LPS frame, with ``r``/``c`` the row/column direction cosines of
    ``ImageOrientationPatient`` and ``n`` the direction from the first slice to the last (their
    normal when the series has one slice); LPS becomes RAS by negating x and y.

    Args:
        first: header of the first slice (in slice order).
        spacing: ``(sz, sy, sx)`` of :func:`medssl.data.io.load_dicom_series`.
        last: header of the last slice (None: one slice).

    Returns:
        ``(4, 4)`` float64 affine (identity scaled by the spacing when the orientation is missing).
    """
    sz, sy, sx = spacing
    iop, ipp = getattr(first, "ImageOrientationPatient", None), getattr(first, "ImagePositionPatient", None)
    if iop is None or ipp is None:
        return np.diag([sx, sy, sz, 1.0])
    r, c = np.asarray([float(v) for v in iop[:3]]), np.asarray([float(v) for v in iop[3:6]])
    origin = np.asarray([float(v) for v in ipp])
    n = np.cross(r, c)
    lipp = getattr(last, "ImagePositionPatient", None) if last is not None else None
    if lipp is not None:
        step = np.asarray([float(v) for v in lipp]) - origin
        if np.linalg.norm(step) > 0:
            n = step / np.linalg.norm(step)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = r * sx, c * sy, n * sz, origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _read_dicom(item: InputItem) -> Scan:
    import pydicom

    _dicom_headers(item.path)
    volume, spacing, files = load_dicom_series(item.path)
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    last = pydicom.dcmread(files[-1], stop_before_pixels=True) if len(files) > 1 else None
    return Scan(item, np.ascontiguousarray(volume, dtype=np.float32), spacing, dicom_affine(first, spacing, last))


def read_scan(item: InputItem, channels: int = 1) -> Scan:
    """Read one case for prediction.

    Args:
        item: the case (:func:`discover_inputs`).
        channels: the image channels the run takes.

    Returns:
        The :class:`Scan`; the image is cast to float32 first, as prepare does.

    Raises:
        DataError: every problem of :func:`check_input` and :func:`medssl.data.io.load_nifti`,
            non-finite voxel values, a voxel spacing that is not finite and positive, a non-finite affine.
    """
    import nibabel as nib

    check_input(item, channels)
    if item.kind == "dicom":
        scan = _read_dicom(item)
    else:
        arr, zooms, affine = load_nifti(item.path)
        _check_dims(item.path, arr.shape, channels)
        arr = arr.reshape(arr.shape[:3]) if arr.ndim > 3 else arr
        zz = tuple(zooms[:3]) if len(zooms) >= 3 else tuple(zooms[:2]) + (1.0,)
        image, spacing = to_dhw(arr, zz)
        with nibabel_header_fixes(item.path):
            header = nib.load(str(item.path)).header
        scan = Scan(item, image.astype(np.float32, copy=False), spacing, affine, header, not zero_voxel_size(item.path))
    if not np.all(np.isfinite(scan.image)):
        raise DataError(item.path, "image holds NaN or infinite values")
    voxel = tuple(float(v) for v in scan.spacing)
    if not all(math.isfinite(v) and v > 0 for v in voxel):
        raise DataError(item.path, f"invalid voxel spacing {voxel} (D, H, W) in the header: fix its pixdim")
    if not np.all(np.isfinite(scan.affine)):
        raise DataError(item.path, "the header's affine holds NaN or infinite values: fix its qform / sform")
    return scan


def check_scale(scan: Scan, target_spacing: float | None) -> None:
    """A scan whose voxel size is unknown (``spacing_known`` False) cannot be resampled to the run's
    in-plane spacing: nibabel's 1 mm would shrink or stretch the anatomy the network sees.

    Args:
        scan: a scan from :func:`read_scan`.
        target_spacing: the run's in-plane spacing in mm (:class:`~.runspec.RunSpec`); None: the run
            keeps each scan's own grid, which needs no voxel size.

    Raises:
        DataError: the scan's file, its voxel size of 0 and the remedy.
    """
    if not scan.spacing_known and target_spacing is not None:
        raise DataError(
            scan.item.path,
            f"voxel size 0 in the header (pixdim): the scan's scale is unknown, and this run resamples every scan "
            f"to {target_spacing:g} mm in-plane; set the voxel size in the header",
        )


def scan_warning(scan: Scan) -> str | None:
    """A one-line warning about a scan that reads fine but cannot be segmented, or ``None``.

    A constant image (every voxel the same value: a blank export, a failed conversion) normalises to
    zeros, so the network sees no anatomy and its label map is whatever it predicts on an empty
    image; ``prepare`` warns about such images for the same reason.

    Args:
        scan: a scan from :func:`read_scan`.

    Returns:
        ``"medssl: warning: <file>: constant image (every voxel is v): ..."`` or ``None``.
    """
    img = scan.image
    if img.size and float(img.min()) == float(img.max()):
        return (
            f"medssl: warning: {scan.item.path}: constant image (every voxel is {float(img.min()):g}): "
            "there is nothing to segment, its label map holds no anatomy; check the file"
        )
    return None


def _atomic_nifti(img: Any, out: Path) -> Path:
    """``nib.save`` to a hidden temporary file beside ``out``, then rename: no partial file is ever seen."""
    import nibabel as nib

    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if out.name.endswith(".gz") else ".nii"
    tmp = out.parent / f".{out.name}.{os.getpid()}.tmp{suffix}"
    try:
        nib.save(img, str(tmp))
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def save_label_map(labels_dhw: np.ndarray, scan: Scan, out: str | Path) -> Path:
    """Write a ``(D, H, W)`` label map in the scan's own geometry, atomically.

    The voxels go back to the file order ``(X, Y, Z)`` and the input's header is copied (shape,
    affine, qform/sform and their codes, units) with the data type set to uint8, no intensity
    scaling and no display window.

    Args:
        labels_dhw: integer labels of the scan's ``(D, H, W)`` grid.
        scan: the scan they belong to.
        out: the ``.nii.gz`` (or ``.nii``) file.

    Returns:
        ``out`` as a Path.
    """
    import nibabel as nib

    xyz = np.ascontiguousarray(np.asarray(labels_dhw, dtype=np.uint8).transpose(2, 1, 0))
    if scan.header is not None:
        hdr = scan.header.copy()
        shape = tuple(int(s) for s in hdr.get_data_shape())
        xyz = xyz.reshape(shape) if int(np.prod(shape)) == xyz.size else xyz
        hdr.set_data_dtype(np.uint8)
        hdr["cal_min"], hdr["cal_max"] = 0, 0  # the input's display window means nothing for labels
        cls = nib.Nifti2Image if isinstance(hdr, nib.Nifti2Header) else nib.Nifti1Image
        img = cls(xyz, scan.affine, header=hdr)
        img.header.set_slope_inter(1.0, 0.0)
        img.set_sform(scan.header.get_sform(), code=int(scan.header["sform_code"]))
        img.set_qform(scan.header.get_qform(), code=int(scan.header["qform_code"]))
    else:
        img = nib.Nifti1Image(xyz, scan.affine)
        img.set_sform(scan.affine, code=1)
        img.set_qform(scan.affine, code=1)
    return _atomic_nifti(img, Path(out))
