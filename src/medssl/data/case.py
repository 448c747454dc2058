"""Typed records for one scan (``Case``), a lazily loaded scan (``CaseSource``) and a dataset's
description (``DatasetSpec``), shared by every reader.

Array convention: volumes are ``(D, H, W)`` = (slices, rows, columns); a NIfTI array indexed
``[i, j, k]`` becomes ``arr.transpose(2, 1, 0)`` and its zooms ``(sx, sy, sz)`` become
``spacing = (sz, sy, sx)``. A 2D image (ISIC) is a volume with ``D = 1``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Case", "CaseSource", "DatasetSpec"]


@dataclass
class Case:
    """One volume with its (optional) label.

    Attributes:
        case_id: unique id within the dataset (``patient001_frame01``, ``hippocampus_003``).
        patient_id: the patient the case belongs to; splits are made per patient.
        image: float32 array ``(D, H, W)``.
        label: integer array ``(D, H, W)`` with values already mapped to ``0..K-1``, or None.
        spacing: voxel size in mm as ``(sz, sy, sx)``.
        source: the file(s) the case was read from (for error messages).
        meta: anything else a reader knows (frame, phase, modality...).
    """

    case_id: str
    patient_id: str
    image: np.ndarray
    label: np.ndarray | None
    spacing: tuple[float, float, float]
    source: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        depth, height, width = self.image.shape
        return int(depth), int(height), int(width)


@dataclass
class CaseSource:
    """A case that is found but not yet read: ``load()`` reads it (and raises ``DataError``)."""

    case_id: str
    patient_id: str
    paths: tuple[str, ...]
    loader: Callable[[], Case]
    has_label: bool = True
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Case:
        return self.loader()


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is and how the papers pre-process it.

    Attributes:
        name: registry name (command-line value).
        description: one line for ``medssl datasets``.
        layout: the expected folder layout, shown by ``medssl datasets``.
        class_names: names of the classes, background first.
        scan: ``scan(root, **options) -> list[CaseSource]``.
        target_spacing: in-plane spacing in mm to resample to (None = keep).
        normalization: ``zscore`` | ``clip_zscore`` | ``minmax`` | ``slice_minmax`` | ``max`` | ``none``.
        patch_size: the papers' fine-tuning pad/crop size.
        pretrain_only: True for sets without labels (CHD, BraTS, KiTS images).
        paper_split_key: section name in ``reference/paper_splits.txt`` (None if not published).
    """

    name: str
    description: str
    layout: str
    class_names: tuple[str, ...]
    scan: Callable[..., list[CaseSource]]
    target_spacing: float | None = None
    normalization: str = "zscore"
    patch_size: int = 256
    pretrain_only: bool = False
    paper_split_key: str | None = None
    default_options: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def to_dhw(array: np.ndarray, zooms: Sequence[float]) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Convert a NIfTI-ordered ``(X, Y, Z)`` array and its zooms to ``(D, H, W)`` and ``(sz, sy, sx)``."""
    if array.ndim == 2:
        array = array[:, :, None]
        zooms = tuple(zooms[:2]) + (1.0,)
    arr = np.ascontiguousarray(np.asarray(array).transpose(2, 1, 0))
    sx, sy, sz = (float(z) for z in tuple(zooms)[:3])
    return arr, (sz, sy, sx)
