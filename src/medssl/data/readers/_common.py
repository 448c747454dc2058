"""Pieces shared by the dataset readers: label maps, the raw-case record, the validating loader.

A reader finds files and builds, for each case, a ``read()`` function returning a ``RawCase``
(arrays already in ``(D, H, W)`` order, labels still raw). ``CaseLoader`` wraps it: calling it
validates and returns a ``Case`` (raising the first problem as ``DataError``); its
``problems()`` method runs every check and returns all of them, which is what
``medssl.data.verify.verify_dataset`` uses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medssl.data.case import Case, CaseSource, to_dhw
from medssl.data.io import load_nifti, zero_voxel_size
from medssl.errors import DataError

__all__ = [
    "CaseLoader",
    "LabelMap",
    "RawCase",
    "format_values",
    "is_nifti",
    "make_source",
    "nifti_pair_reader",
    "nifti_stem",
    "numbered_nifti_pairs",
    "read_nifti_volume",
    "require_root",
    "trailing_int",
    "validate",
    "zero_spacing_meta",
]

_MAX_LISTED = 10


def format_values(values: Iterable[Any]) -> str:
    """``[1, 7, 9]`` style list of at most 10 numbers (ints printed without ``.0``)."""
    vals = list(values)
    shown = []
    for v in vals[:_MAX_LISTED]:
        fv = float(v)
        shown.append(str(int(fv)) if fv.is_integer() else f"{fv:g}")
    more = f", ... ({len(vals)} values)" if len(vals) > _MAX_LISTED else ""
    return "[" + ", ".join(shown) + more + "]"


@dataclass(frozen=True)
class LabelMap:
    """How raw label values become class indices ``0..K-1``.

    Attributes:
        values: exact raw value -> class index (e.g. MM-WHS ``{0: 0, 205: 1, ..., 850: 7}``).
        ranges: ``(low, high, index)``: integer raw values in ``[low, high]`` map to ``index``
            (the CHAOS PNG convention, e.g. ``(55, 70, 1)`` for the liver).
        num_classes: K; defaults to ``max(index) + 1``.
    """

    values: Mapping[int, int]
    ranges: tuple[tuple[float, float, int], ...] = ()
    num_classes: int | None = None

    @classmethod
    def identity(cls, num_classes: int) -> LabelMap:
        """Raw values ``0..K-1`` kept as they are."""
        return cls({i: i for i in range(num_classes)}, num_classes=num_classes)

    @property
    def k(self) -> int:
        if self.num_classes is not None:
            return self.num_classes
        idx = list(self.values.values()) + [r[2] for r in self.ranges]
        return max(idx) + 1 if idx else 1

    def describe(self) -> str:
        """The accepted raw values, for error messages: ``{0, 1, 2}`` or ``{0, 55-70, ...}``."""
        parts = [str(v) for v in sorted(self.values)]
        parts += [f"{lo:g}-{hi:g}" for lo, hi, _ in self.ranges]
        return "{" + ", ".join(parts) + "}"

    def apply(self, label: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Map raw values to class indices.

        Args:
            label: raw label array of any shape (integer or float holding integers).

        Returns:
            ``(mapped, problems)``: a uint8 (int16 for K > 255) array of the same shape, and
            one-line problems (non-integer values; values not in the map, listed). Unknown values
            map to 0 in ``mapped``.
        """
        problems: list[str] = []
        arr = np.asarray(label)
        if arr.dtype.kind not in "biuf":
            return np.zeros(arr.shape, np.uint8), [f"unsupported label data type {arr.dtype}"]
        if arr.dtype.kind == "b":
            arr = arr.astype(np.uint8)
        if arr.dtype.kind == "f":
            finite = np.isfinite(arr)
            if not finite.all():
                problems.append(f"non-finite label values ({int((~finite).sum())} voxels)")
                arr = np.where(finite, arr, 0)
            rounded = np.rint(arr)
            off = np.abs(arr - rounded) > 1e-3
            if off.any():
                problems.append(f"non-integer label values {format_values(np.unique(arr[off]))}")
            arr = rounded.astype(np.int64)
        out_dtype = np.uint8 if self.k <= 256 else np.int16
        if arr.size == 0:
            return np.zeros(arr.shape, out_dtype), problems
        lo, hi = int(arr.min()), int(arr.max())
        if hi - lo < (1 << 20):  # fast path: a look-up table over the value range
            shifted = (arr.astype(np.int64, copy=False) - lo) if lo != 0 else arr
            counts = np.bincount(shifted.ravel(), minlength=hi - lo + 1)
            uniq = np.flatnonzero(counts) + lo
        else:
            uniq = np.unique(arr)
        targets, unknown = [], []
        for u in uniq.tolist():
            hit = self.values.get(int(u))
            if hit is None:
                hit = next((idx for a, b, idx in self.ranges if a <= u <= b), None)
            if hit is None:
                unknown.append(u)
            targets.append(0 if hit is None else int(hit))
        if unknown:
            problems.append(f"unknown label values {format_values(unknown)} (expected {self.describe()})")
        if hi - lo < (1 << 20):
            lut = np.zeros(hi - lo + 1, out_dtype)
            lut[np.asarray(uniq) - lo] = np.asarray(targets, dtype=out_dtype)
            mapped = lut[shifted]
        else:
            mapped = np.asarray(targets, dtype=out_dtype)[np.searchsorted(uniq, arr)]
        return np.asarray(mapped, dtype=out_dtype), problems


@dataclass
class RawCase:
    """Arrays as read from disk, in ``(D, H, W)`` order, before any validation.

    Attributes:
        image: ``(D, H, W)`` array, any numeric dtype.
        label: raw ``(D, H, W)`` label array or None.
        spacing: image voxel size ``(sz, sy, sx)`` in mm.
        image_path: the image file (or DICOM folder).
        label_path: the label file, if any.
        image_affine / label_affine: NIfTI affines, when the format has them.
        label_spacing: the label file's own voxel size ``(sz, sy, sx)``, when it has one.
        meta: reader-specific facts to add to ``Case.meta``.
    """

    image: np.ndarray
    label: np.ndarray | None
    spacing: tuple[float, float, float]
    image_path: str
    label_path: str | None = None
    image_affine: np.ndarray | None = None
    label_affine: np.ndarray | None = None
    label_spacing: tuple[float, float, float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _nan_slices(bad: np.ndarray) -> str:
    per = np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))
    return format_values(per)


def validate(
    raw: RawCase, label_map: LabelMap | None, affine_tol: float, full: bool
) -> tuple[np.ndarray, np.ndarray | None, list[tuple[str, str]]]:
    """Run every check on ``raw``.

    Args:
        raw: the arrays as read.
        label_map: raw -> class index map (None: labels are not checked or remapped).
        affine_tol: tolerance on affine entries and spacings: label value ``a`` and image value
            ``b`` agree when ``|a - b| <= tol * (1 + |b|)``.
        full: also report data quality warnings (constant image) that are not load errors.

    Returns:
        ``(image float32, label or None, problems)`` with problems as ``(path, reason)``.
    """
    probs: list[tuple[str, str]] = []
    image, readable = _check_image(raw, full, probs)
    if not readable:
        return image, None, probs
    sp = np.asarray(raw.spacing, dtype=np.float64)
    if sp.shape != (3,) or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        probs.append((raw.image_path, f"invalid voxel spacing {tuple(raw.spacing)}"))
    label = None if raw.label is None else _check_label(raw, image.shape, label_map, affine_tol, probs)
    return image, label, probs


def _check_image(raw: RawCase, full: bool, probs: list[tuple[str, str]]) -> tuple[np.ndarray, bool]:
    """The image as float32 and whether the remaining checks can run; its problems go to ``probs``."""
    ip = raw.image_path
    img = np.asarray(raw.image)
    if img.ndim != 3:
        probs.append((ip, f"expected a 3D (D, H, W) volume, got shape {img.shape}"))
        return np.zeros((0, 0, 0), np.float32), False
    if img.size == 0:
        probs.append((ip, f"zero-size volume (shape {img.shape})"))
        return img.astype(np.float32), False
    if img.dtype.kind not in "biuf":
        probs.append((ip, f"unsupported data type {img.dtype}"))
        return np.zeros(img.shape, np.float32), False
    image = img.astype(np.float32, copy=False)
    bad = ~np.isfinite(image)
    if bad.any():
        n_nan = int(np.isnan(image).sum())
        probs.append(
            (
                ip,
                f"non-finite intensities: {n_nan} NaN and {int(bad.sum()) - n_nan} Inf voxels in slices {_nan_slices(bad)}",
            )
        )
    elif full and float(image.max()) == float(image.min()):
        probs.append((ip, f"constant image (every voxel is {float(image.min()):g})"))
    return image, True


def _check_label(
    raw: RawCase,
    image_shape: tuple[int, ...],
    label_map: LabelMap | None,
    affine_tol: float,
    probs: list[tuple[str, str]],
) -> np.ndarray | None:
    """The label mapped to class indices (None when empty); its problems go to ``probs``."""
    lp = raw.label_path or raw.image_path
    lab = np.asarray(raw.label)
    if lab.size == 0:
        probs.append((lp, f"zero-size label volume (shape {lab.shape})"))
        return None
    if lab.shape != image_shape:
        probs.append((lp, f"label shape {lab.shape} differs from image shape {image_shape} (D, H, W)"))
    probs.extend((lp, p) for p in _geometry_problems(raw, affine_tol))
    if label_map is None:
        return lab
    label, lprobs = label_map.apply(lab)
    probs.extend((lp, p) for p in lprobs)
    return label


def _geometry_problems(raw: RawCase, affine_tol: float) -> list[str]:
    """Where the label file's spacing or affine disagrees with the image's (nothing when the image's own
    spacing is not finite: that is the image's problem, said once)."""
    if not np.all(np.isfinite(np.asarray(raw.spacing, dtype=np.float64))):
        return []
    out = []
    if raw.label_spacing is not None and not _close(raw.label_spacing, raw.spacing, affine_tol):
        out.append(f"label voxel spacing {_fmt(raw.label_spacing)} differs from image spacing {_fmt(raw.spacing)}")
    if raw.image_affine is not None and raw.label_affine is not None:
        a, b = np.asarray(raw.image_affine), np.asarray(raw.label_affine)
        with np.errstate(invalid="ignore"):  # an infinite entry on both sides: NaN difference, "differs"
            close = a.shape == b.shape and _close(b, a, affine_tol)
            diff = float(np.max(np.abs(a - b))) if a.shape == b.shape else float("inf")
        if not close:
            out.append(f"label affine differs from image affine (max difference {diff:.4g} > tolerance {affine_tol:g})")
    return out


def _close(a: Any, b: Any, tol: float) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= tol * (1.0 + np.abs(b))))


def _fmt(sp: Sequence[float]) -> str:
    return "(" + ", ".join(f"{float(s):.4g}" for s in sp) + ")"


class CaseLoader:
    """Callable that reads one case and validates it (``CaseSource.loader``).

    Args:
        read: returns the ``RawCase`` (raises ``DataError`` when a file cannot be read).
        case_id: the case id.
        patient_id: the patient id.
        label_map: raw label values -> class indices; None for image-only data sets.
        affine_tol: tolerance used when comparing image and label geometry.
        meta: facts copied into ``Case.meta``.
    """

    def __init__(
        self,
        read: Callable[[], RawCase],
        case_id: str,
        patient_id: str,
        label_map: LabelMap | None,
        affine_tol: float = 1e-3,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.read = read
        self.case_id = case_id
        self.patient_id = patient_id
        self.label_map = label_map
        self.affine_tol = affine_tol
        self.meta = dict(meta or {})

    def __call__(self) -> Case:
        """Read and validate the case.

        Returns:
            ``Case`` with a float32 ``(D, H, W)`` image and a ``0..K-1`` integer label (or None).

        Raises:
            DataError: the first problem found (file and problem on one line).
        """
        raw = self.read()
        image, label, probs = validate(raw, self.label_map, self.affine_tol, full=False)
        if probs:
            raise DataError(*probs[0])
        meta = {**self.meta, **raw.meta}
        if raw.label_path:
            meta.setdefault("label_path", raw.label_path)
        sz, sy, sx = raw.spacing  # validate() checked that there are three
        return Case(
            self.case_id, self.patient_id, image, label, (float(sz), float(sy), float(sx)), raw.image_path, meta
        )

    def problems(self, affine_tol: float | None = None) -> list[tuple[str, str]]:
        """Every problem of this case, as ``(path, reason)`` pairs (never raises ``DataError``).

        Args:
            affine_tol: tolerance for the geometry checks (default: the loader's).

        Returns:
            All problems found, including warnings such as a constant image; empty if the case is clean.
        """
        try:
            raw = self.read()
        except DataError as exc:
            return [(exc.path or "", exc.problem)]
        _, _, probs = validate(raw, self.label_map, self.affine_tol if affine_tol is None else affine_tol, full=True)
        return probs


def require_root(root: str | Path) -> Path:
    """The dataset folder as a ``Path``.

    Raises:
        DataError: ``dataset folder not found`` / ``expected a folder, found a file``.
    """
    p = Path(root).expanduser()
    if not p.exists():
        raise DataError(p, "dataset folder not found")
    if not p.is_dir():
        raise DataError(p, "expected a dataset folder, found a file")
    return p


_NII = re.compile(r"\.nii(\.gz)?$")


def is_nifti(path: Path) -> bool:
    """True for ``*.nii`` / ``*.nii.gz`` files that are not hidden (macOS ``._`` copies)."""
    return bool(_NII.search(path.name)) and not path.name.startswith(".")


def nifti_stem(path: str | Path) -> str:
    """``hippocampus_001`` from ``hippocampus_001.nii.gz``."""
    return _NII.sub("", Path(path).name)


def trailing_int(text: str) -> int | None:
    """The last run of digits in ``text`` as an int (``patient007`` -> 7), or None."""
    m = re.findall(r"\d+", text)
    return int(m[-1]) if m else None


def read_nifti_volume(
    path: str | Path, channel: int | None = None
) -> tuple[np.ndarray, tuple[float, float, float], np.ndarray]:
    """Read a NIfTI file as a ``(D, H, W)`` volume.

    Args:
        path: the file.
        channel: for 4D ``(X, Y, Z, C)`` files, the channel to keep (None: 4D is an error unless C = 1).

    Returns:
        ``(volume (D, H, W), spacing (sz, sy, sx), affine (4, 4))``.

    Raises:
        DataError: any ``load_nifti`` problem, or wrong dimensionality (``expected a 3D volume ...``).
    """
    arr, zooms, affine = load_nifti(path)
    if arr.ndim == 4 and channel is not None:
        if not 0 <= channel < arr.shape[3]:
            raise DataError(path, f"modality index {channel} out of range for {arr.shape[3]} channels")
        arr = arr[..., channel]
    elif arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    if arr.ndim == 5 and arr.shape[3] == 1 and arr.shape[4] == 1:
        arr = arr[..., 0, 0]
    if arr.ndim not in (2, 3):
        raise DataError(path, f"expected a 3D volume, got a {arr.ndim}D array of shape {arr.shape}")
    zz = tuple(zooms[:3]) if len(zooms) >= 3 else tuple(zooms[:2]) + (1.0,)
    vol, spacing = to_dhw(arr, zz)
    return vol, spacing, affine


def zero_spacing_meta(image_path: Path, label_path: Path | None = None) -> dict[str, Any]:
    """``Case.meta`` entries for a NIfTI case whose header stores a voxel size of 0
    (:func:`medssl.data.io.zero_voxel_size`, read by nibabel as 1 mm): ``spacing_known: False`` and
    a ``spacing_note`` naming the file at fault; ``{}`` when both headers have their sizes.

    The store then refuses to resample the case to a spacing in mm and labels its distances as
    voxels, as for formats that store no spacing.
    """
    zero = [f for f in (image_path, label_path) if f is not None and zero_voxel_size(f)]
    if not zero:
        return {}
    where = " and ".join("the image" if f == image_path else f"the label {f}" for f in zero)
    return {
        "spacing_known": False,
        "spacing_note": f"has a voxel size of 0 in the header of {where} (pixdim; read as 1 mm)",
    }


def nifti_pair_reader(image_path: Path, label_path: Path | None, channel: int | None = None) -> Callable[[], RawCase]:
    """A ``read()`` for an image/label pair of NIfTI files (geometry from both headers).

    A header with a voxel size of 0 marks the case's spacing unknown (:func:`zero_spacing_meta`).
    """

    def read() -> RawCase:
        image, spacing, aff = read_nifti_volume(image_path, channel)
        meta = zero_spacing_meta(image_path, label_path)
        if label_path is None:
            return RawCase(image, None, spacing, str(image_path), None, aff, meta=meta)
        label, lspacing, laff = read_nifti_volume(label_path)
        return RawCase(image, label, spacing, str(image_path), str(label_path), aff, laff, lspacing, meta)

    return read


def make_source(
    read: Callable[[], RawCase],
    case_id: str,
    patient_id: str,
    paths: Sequence[Path | str],
    label_map: LabelMap | None,
    has_label: bool,
    meta: dict[str, Any],
    affine_tol: float = 1e-3,
) -> CaseSource:
    """A lazy ``CaseSource`` whose loader is a validating ``CaseLoader``."""
    loader = CaseLoader(read, case_id, patient_id, label_map if has_label else None, affine_tol, meta)
    return CaseSource(case_id, patient_id, tuple(str(p) for p in paths), loader, has_label, dict(meta))


def numbered_nifti_pairs(
    root: Path, image_prefix: str = "image_", label_prefix: str = "label_"
) -> list[tuple[int, Path, Path | None]]:
    """``(N, image_N, label_N or None)`` for every ``{image_prefix}N.nii[.gz]`` directly in ``root``, by N.

    Args:
        root: the folder.
        image_prefix: image file prefix before the number.
        label_prefix: label file prefix before the number.

    Returns:
        One tuple per image file, sorted by the number N.
    """
    pat = re.compile(rf"^{re.escape(image_prefix)}(\d+)\.nii(\.gz)?$")
    out = []
    for f in root.iterdir():
        m = pat.match(f.name)
        if not m or not f.is_file():
            continue
        n = int(m.group(1))
        cands = [root / f"{label_prefix}{m.group(1)}{ext}" for ext in (".nii.gz", ".nii")]
        out.append((n, f, next((c for c in cands if c.exists()), None)))
    return sorted(out, key=lambda t: t[0])
