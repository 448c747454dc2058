"""Safe file loaders: every failure becomes a one-line ``DataError("path: problem")``.

The loaders only read files; they do not remap labels or reorder axes (the readers in
``medssl.data.readers`` do that). Each checks, before touching the payload, that the file
exists, is a file and is not empty, and turns the library's own exception (gzip ``EOFError``,
``zlib.error``, ``h5py`` ``OSError``, PIL ``UnidentifiedImageError``, pydicom
``InvalidDicomError``...) into a message that names the file and the problem on one line.

Example::

    image, zooms, affine = load_nifti("imagesTr/hippocampus_001.nii.gz")   # (X, Y, Z) array
    arrays = load_h5("patient001_frame01_slice_3.h5", ("image", "label"))
    volume, spacing, files = load_dicom_series("MR/1/T2SPIR/DICOM_anon")  # (D, H, W), (sz, sy, sx)
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medssl.errors import DataError

__all__ = [
    "NiftiHeader",
    "check_file",
    "load_dicom_series",
    "load_h5",
    "load_jpeg",
    "load_nifti",
    "load_png",
    "nibabel_header_fixes",
    "one_line",
    "read_nifti_header",
    "zero_voxel_size",
]

_MAX_MSG = 200
#: (file, problem) pairs already said: a file read several times is warned about once
_SAID: set[tuple[str, str]] = set()


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(" ".join(record.getMessage().split()))


@contextlib.contextmanager
def nibabel_header_fixes(path: str | Path) -> Iterator[None]:
    """While reading ``path`` with nibabel, turn the header problems nibabel fixes and prints on its
    own (``pixdim[1,2,3] should be non-zero; setting 0 dims to 1``: a voxel size of 0 read as 1 mm)
    into one ``medssl: warning:`` line per file and problem (logger ``medssl``), instead of raw lines.
    """
    from nibabel import imageglobals

    nib_log, collect = imageglobals.logger, _Collect()
    handlers, propagate = nib_log.handlers[:], nib_log.propagate
    nib_log.handlers, nib_log.propagate = [collect], False
    try:
        yield
    finally:
        nib_log.handlers, nib_log.propagate = handlers, propagate
        for msg in dict.fromkeys(collect.messages):
            if (str(path), msg) not in _SAID:
                _SAID.add((str(path), msg))
                logging.getLogger("medssl").warning("medssl: warning: %s: header fixed on reading: %s", path, msg)


def one_line(exc: BaseException) -> str:
    """A short one-line description of ``exc`` (type and first line of its message).

    Args:
        exc: any exception raised by a third-party reader.

    Returns:
        ``"TypeName: first line of the message"``, at most about 200 characters, no newline.
    """
    text = " ".join(str(exc).split())
    if len(text) > _MAX_MSG:
        text = text[: _MAX_MSG - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_file(path: str | Path) -> Path:
    """Check that ``path`` is an existing, non-empty regular file.

    Args:
        path: the file to check.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        DataError: ``file not found`` (``broken link to ...``), ``expected a file, found a folder`` or
            ``empty file (0 bytes)``.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(p, f"broken link to {p.readlink()}" if p.is_symlink() else "file not found")
    if p.is_dir():
        raise DataError(p, "expected a file, found a folder")
    if p.stat().st_size == 0:
        raise DataError(p, "empty file (0 bytes)")
    return p


def _is_gzip(p: Path) -> bool:
    with open(p, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _gzip_header_ok(p: Path) -> bool:
    """True when the first 348 bytes (a NIfTI-1 header) decompress."""
    try:
        with gzip.open(p, "rb") as fh:
            fh.read(348)
        return True
    except (OSError, EOFError, zlib.error):
        return False


def _check_numeric_dtype(p: Path, dtype: np.dtype) -> None:
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        raise DataError(p, f"unsupported data type {dtype} (expected integer or real numbers)")


@dataclass(frozen=True)
class NiftiHeader:
    """Geometry of a NIfTI file read from its header only (no voxel data).

    Attributes:
        shape: array shape in file order ``(X, Y, Z[, C])``.
        zooms: voxel sizes in file order (mm), one per array axis.
        affine: ``(4, 4)`` voxel-to-world matrix.
        dtype: on-disk data type.
    """

    shape: tuple[int, ...]
    zooms: tuple[float, ...]
    affine: np.ndarray
    dtype: np.dtype


def _open_nifti(p: Path):
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    check_file(p)
    try:
        with nibabel_header_fixes(p):
            return nib.load(str(p))
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(p, f"corrupt or truncated gzip data ({one_line(exc)})") from None
    except ImageFileError as exc:
        if _is_gzip(p) and not _gzip_header_ok(p):
            raise DataError(p, f"corrupt or truncated gzip data ({one_line(exc)})") from None
        raise DataError(p, f"not a readable NIfTI file ({one_line(exc)})") from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        problem = "corrupt or truncated gzip data" if _is_gzip(p) else "not a readable NIfTI file"
        raise DataError(p, f"{problem} ({one_line(exc)})") from None


def read_nifti_header(path: str | Path) -> NiftiHeader:
    """Read the geometry of a NIfTI file without loading its voxels.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.

    Returns:
        The file's ``NiftiHeader``.

    Raises:
        DataError: missing, empty, corrupt file or unsupported data type.
    """
    p = Path(path)
    img = _open_nifti(p)
    dtype = np.dtype(img.get_data_dtype())
    _check_numeric_dtype(p, dtype)
    zooms = tuple(float(z) for z in img.header.get_zooms())
    return NiftiHeader(tuple(int(s) for s in img.shape), zooms, np.asarray(img.affine, dtype=np.float64), dtype)


def load_nifti(path: str | Path) -> tuple[np.ndarray, tuple[float, ...], np.ndarray]:
    """Load a NIfTI volume with its voxel sizes and affine.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.

    Returns:
        ``(array, zooms, affine)``: the voxel array in file order ``(X, Y, Z[, C])`` with the
        header's scaling applied (integer files stay integer), the voxel sizes in mm in the same
        order, and the ``(4, 4)`` affine. Use ``medssl.data.case.to_dhw`` for ``(D, H, W)``.

    Raises:
        DataError: file missing or empty, corrupt or truncated gzip data, not a NIfTI file,
            unsupported data type (complex, RGB, ...), fewer voxels on disk than the header says,
            or a zero-size volume.
    """
    p = Path(path)
    img = _open_nifti(p)
    _check_numeric_dtype(p, img.get_data_dtype())
    try:
        arr = np.asanyarray(img.dataobj)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(p, f"corrupt or truncated gzip data ({one_line(exc)})") from None
    except (OSError, ValueError) as exc:
        problem = "corrupt or truncated gzip data" if _is_gzip(p) else "truncated or unreadable voxel data"
        raise DataError(p, f"{problem} ({one_line(exc)})") from None
    _check_numeric_dtype(p, arr.dtype)
    if arr.size == 0:
        raise DataError(p, f"zero-size volume (header shape {tuple(int(s) for s in img.shape)})")
    zooms = tuple(float(z) for z in img.header.get_zooms())
    return np.asarray(arr), zooms, np.asarray(img.affine, dtype=np.float64)


def zero_voxel_size(path: str | Path) -> bool:
    """Whether a NIfTI file's header stores a voxel size of 0 along one of its spatial axes.

    nibabel reads such a size as 1 mm (``pixdim[1,2,3] should be non-zero; setting 0 dims to 1``), so
    :func:`load_nifti` returns 1.0 there; this reads the header as stored to tell that the scan's scale
    is in fact unknown. Only the axes the image has count (``pixdim[1..dim[0]]``, at most 3): a 2D
    file's unused third size is not a problem.

    Args:
        path: a NIfTI-1 or NIfTI-2 file that :func:`load_nifti` reads.

    Returns:
        True when a spatial voxel size is 0; False otherwise, and for a header this cannot parse (the
        file's own problems are :func:`load_nifti`'s to report).
    """
    import io

    import nibabel as nib
    from nibabel.openers import ImageOpener

    try:
        with ImageOpener(str(path)) as fh:  # the header as stored: nib.load fixes it on reading
            block = fh.read(540)
    except (OSError, EOFError, zlib.error):
        return False
    for cls in (nib.Nifti1Header, nib.Nifti2Header):
        if cls.may_contain_header(block):
            try:
                hdr = cls.from_fileobj(io.BytesIO(block), check=False)
            except Exception:  # any parse failure: not this header class
                continue
            n = int(min(max(int(hdr["dim"][0]), 1), 3))
            return bool(np.any(np.asarray(hdr["pixdim"][1 : 1 + n]) == 0))
    return False


def load_h5(path: str | Path, keys: Sequence[str] = ("image", "label")) -> dict[str, np.ndarray]:
    """Read the named datasets of an HDF5 file.

    Args:
        path: ``.h5`` file.
        keys: dataset names that must be present.

    Returns:
        ``{key: array}`` for every key in ``keys``.

    Raises:
        DataError: file missing or empty, not a readable HDF5 file, a key missing
            (``missing dataset 'label' (found: image)``), or non-numeric data.
    """
    import h5py

    p = check_file(path)
    try:
        fh = h5py.File(p, "r")
    except (OSError, ValueError) as exc:
        raise DataError(p, f"not a readable HDF5 file ({one_line(exc)})") from None
    out: dict[str, np.ndarray] = {}
    with fh:
        for key in keys:
            if key not in fh or not isinstance(fh[key], h5py.Dataset):
                found = ", ".join(sorted(fh.keys())) or "nothing"
                raise DataError(p, f"missing dataset '{key}' (found: {found})")
            try:
                arr = np.asarray(fh[key][()])
            except (OSError, ValueError, TypeError) as exc:
                raise DataError(p, f"unreadable dataset '{key}' ({one_line(exc)})") from None
            if arr.dtype.kind not in "biuf":
                raise DataError(p, f"dataset '{key}' has unsupported data type {arr.dtype}")
            out[key] = arr
    return out


def _load_pil(path: str | Path, kind: str, grey: bool) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    p = check_file(path)
    try:
        with Image.open(p) as im:
            im.load()
            # palette ("P") images keep their indices
            grey_rgb = grey and im.mode in ("RGB", "RGBA", "RGBX", "LA", "CMYK", "YCbCr", "1")
            arr = np.array(im.convert("L") if grey_rgb else im)
    except UnidentifiedImageError as exc:
        raise DataError(p, f"not a readable {kind} image ({one_line(exc)})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(p, f"corrupt or truncated {kind} image ({one_line(exc)})") from None
    if arr.size == 0:
        raise DataError(p, f"zero-size {kind} image")
    return arr


def load_png(path: str | Path, grey: bool = False) -> np.ndarray:
    """Read a PNG image (a mask or a picture).

    Args:
        path: ``.png`` file.
        grey: convert colour (and 1-bit, to 0/255) images to one channel with PIL's luminance
            ``L = 0.299 R + 0.587 G + 0.114 B``; palette images keep their indices.

    Returns:
        ``(H, W)`` array (``(H, W, 3|4)`` for colour images when ``grey`` is False); palette
        images give their palette indices.

    Raises:
        DataError: missing, empty, truncated or unreadable file.
    """
    return _load_pil(path, "PNG", grey)


def load_jpeg(path: str | Path, grey: bool = False) -> np.ndarray:
    """Read a JPEG image.

    Args:
        path: ``.jpg``/``.jpeg`` file.
        grey: convert to one channel with PIL's luminance ``L = 0.299 R + 0.587 G + 0.114 B``
            (what the ISIC code of SuperCL/MACL does with ``Image.convert('L')``).

    Returns:
        ``(H, W, 3)`` uint8 array, or ``(H, W)`` when ``grey``.

    Raises:
        DataError: missing, empty, truncated or unreadable file.
    """
    return _load_pil(path, "JPEG", grey)


def _slice_normal(ds) -> np.ndarray | None:
    iop = getattr(ds, "ImageOrientationPatient", None)
    if iop is None or len(iop) != 6:
        return None
    row = np.asarray([float(v) for v in iop[:3]])
    col = np.asarray([float(v) for v in iop[3:]])
    normal = np.cross(row, col)
    norm = np.linalg.norm(normal)
    return normal / norm if norm > 0 else None


def load_dicom_series(folder: str | Path) -> tuple[np.ndarray, tuple[float, float, float], list[Path]]:
    """Read a folder of single-frame DICOM files as one volume.

    Slices are ordered by their position along the slice normal (``ImagePositionPatient``
    projected on ``row x column`` of ``ImageOrientationPatient``), else by ``InstanceNumber``,
    else by file name. ``RescaleSlope``/``RescaleIntercept`` are applied.

    Args:
        folder: a folder holding the series (hidden files are skipped; every other file must
            be DICOM).

    Returns:
        ``(volume, spacing, files)``: float32 ``(D, H, W)`` volume, voxel size ``(sz, sy, sx)`` in
        mm (``sy, sx`` from ``PixelSpacing``; ``sz`` from the median distance between slice
        positions, else ``SpacingBetweenSlices``, else ``SliceThickness``, else 1), and the files
        in slice order.

    Raises:
        DataError: folder missing or without files, a file that is empty or not DICOM or has no
            pixel data, slices of different sizes, two slices at the same position.
    """
    d = Path(folder)
    if not d.is_dir():
        raise DataError(d, "DICOM folder not found")
    files = sorted(f for f in d.iterdir() if f.is_file() and not f.name.startswith("."))
    if not files:
        raise DataError(d, "no DICOM files in folder")
    entries = [_read_dicom_slice(f) for f in files]
    shape0 = entries[0][2].shape
    for f, _, pix in entries:
        if pix.shape != shape0:
            raise DataError(
                f,
                f"slice size {pix.shape[0]}x{pix.shape[1]} differs from {shape0[0]}x{shape0[1]} of {entries[0][0].name}",
            )
    order, positions = _dicom_slice_order(entries)
    ps = getattr(entries[0][1], "PixelSpacing", None)
    sy, sx = (float(ps[0]), float(ps[1])) if ps is not None and len(ps) == 2 else (1.0, 1.0)
    sz = _dicom_slice_spacing(d, entries, order, positions)
    volume = np.stack([entries[i][2] for i in order], axis=0).astype(np.float32, copy=False)
    return volume, (sz, sy, sx), [entries[i][0] for i in order]


#: one read DICOM file: its path, its dataset and its rescaled float32 (H, W) pixels
_DicomEntry = tuple[Path, Any, np.ndarray]


def _read_dicom_slice(f: Path) -> _DicomEntry:
    """Read one single-frame DICOM file, with ``RescaleSlope``/``RescaleIntercept`` applied.

    Raises:
        DataError: the file is empty, not DICOM, without pixel data, corrupt, or not a 2D image.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    check_file(f)
    try:
        ds = pydicom.dcmread(f)
        pix = np.asarray(ds.pixel_array)
    except InvalidDicomError as exc:
        raise DataError(f, f"not a DICOM file ({one_line(exc)})") from None
    except (AttributeError, KeyError) as exc:
        raise DataError(f, f"DICOM file without pixel data ({one_line(exc)})") from None
    except (OSError, ValueError, EOFError, TypeError, RuntimeError) as exc:
        raise DataError(f, f"corrupt or truncated DICOM file ({one_line(exc)})") from None
    if pix.ndim != 2:
        raise DataError(f, f"expected a single-frame 2D DICOM image, got pixel array of shape {pix.shape}")
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    return f, ds, pix.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def _dicom_slice_order(entries: list[_DicomEntry]) -> tuple[list[int], list[float] | None]:
    """Slice order (by position along the normal, else ``InstanceNumber``, else file order) and the positions."""
    normal = _slice_normal(entries[0][1])
    if normal is not None and all(getattr(ds, "ImagePositionPatient", None) is not None for _, ds, _ in entries):
        positions = [float(np.dot([float(v) for v in ds.ImagePositionPatient], normal)) for _, ds, _ in entries]
        return sorted(range(len(entries)), key=lambda i: (positions[i], entries[i][0].name)), positions
    if all(getattr(ds, "InstanceNumber", None) is not None for _, ds, _ in entries):
        return sorted(range(len(entries)), key=lambda i: (int(entries[i][1].InstanceNumber), entries[i][0].name)), None
    return list(range(len(entries))), None


def _dicom_slice_spacing(
    folder: Path, entries: list[_DicomEntry], order: list[int], positions: list[float] | None
) -> float:
    """``sz``: the median distance between slice positions, else ``SpacingBetweenSlices``, else
    ``SliceThickness`` (of the first file), else 1.

    Raises:
        DataError: two slices at the same position.
    """
    sz = 0.0
    if positions is not None and len(entries) > 1:
        diffs = np.diff(np.asarray([positions[i] for i in order]))
        if np.any(np.abs(diffs) < 1e-6):
            k = int(np.argmin(np.abs(diffs)))
            a, b = entries[order[k]][0].name, entries[order[k + 1]][0].name
            raise DataError(folder, f"slices {a} and {b} share the same position")
        sz = float(np.median(diffs))
    if sz <= 0:
        for tag in ("SpacingBetweenSlices", "SliceThickness"):
            val = getattr(entries[0][1], tag, None)
            if val is not None and float(val) > 0:
                return float(val)
    return sz if sz > 0 else 1.0
