"""ACDC in the HDF5 layout of the semi-supervised segmentation community (SSL4MIS and followers).

Layout (``data/slices`` may also be flat in ``data/`` or in the root)::

    data/slices/patient001_frame01_slice_3.h5   # 2D slice: image (H, W), label (H, W)
    data/patient001_frame01.h5                  # 3D volume: image (Z, H, W), label (Z, H, W)
    train_slices.list, train.list, val.list, test.list   # one id per line

A case is one frame (``patient001_frame01``). It is read from its volume file when there is
one, otherwise its slice files are stacked by slice index (so a folder of slices only, such as
``acdc_h5_sample``, works). No voxel spacing is stored: spacing is ``(1, 1, 1)`` and
``meta["spacing_known"]`` is False. Images are already min-max scaled per volume.
Labels: 0 background, 1 RV, 2 myocardium, 3 LV.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from medssl.data.case import CaseSource, DatasetSpec
from medssl.data.io import load_h5
from medssl.data.readers._common import LabelMap, RawCase, make_source, require_root
from medssl.data.readers.acdc import ACDC_CLASSES
from medssl.errors import ConfigError, DataError
from medssl.registry import DATASETS

__all__ = ["SPEC", "read_split_lists", "scan"]

_SLICE = re.compile(r"^(patient(\d+)_frame(\d+))_slice_(\d+)\.h5$")
_VOLUME = re.compile(r"^(patient(\d+)_frame(\d+))\.h5$")


def read_split_lists(root: str | Path) -> dict[str, list[str]]:
    """The ``*.list`` files of the layout: ``{"train": [...], "val": [...], "test": [...]}``.

    ``train_slices.list`` (slice ids) becomes ``train_slices``; ids are kept as written.

    Args:
        root: the dataset folder.

    Returns:
        list name (file stem) -> ids in file order; empty if there are no list files.
    """
    out: dict[str, list[str]] = {}
    for f in sorted(Path(root).glob("*.list")):
        out[f.stem] = [ln.strip() for ln in f.read_text().splitlines() if ln.strip()]
    return out


def _read_volume(path: Path, require_label: bool) -> Callable[[], RawCase]:
    def read() -> RawCase:
        keys = ("image", "label") if require_label else ("image",)
        arrs = load_h5(path, keys)
        img, lab = arrs["image"], arrs.get("label")
        if img.ndim != 3:
            raise DataError(path, f"expected a 3D (Z, H, W) 'image', got shape {img.shape}")
        return RawCase(
            img, lab, (1.0, 1.0, 1.0), str(path), str(path) if lab is not None else None, meta={"spacing_known": False}
        )

    return read


def _read_slices(files: list[tuple[int, Path]], require_label: bool) -> Callable[[], RawCase]:
    def read() -> RawCase:
        keys = ("image", "label") if require_label else ("image",)
        imgs: list[np.ndarray] = []
        labs: list[np.ndarray] = []
        first: Path | None = None
        for _, f in files:
            arrs = load_h5(f, keys)
            img = arrs["image"]
            if img.ndim != 2:
                raise DataError(f, f"expected a 2D (H, W) slice 'image', got shape {img.shape}")
            if "label" in arrs and arrs["label"].shape != img.shape:
                raise DataError(f, f"label shape {arrs['label'].shape} differs from image shape {img.shape}")
            if imgs and img.shape != imgs[0].shape:
                raise DataError(
                    f, f"slice size {img.shape} differs from {imgs[0].shape} of {first.name if first else ''}"
                )
            first = first or f
            imgs.append(img)
            if "label" in arrs:
                labs.append(arrs["label"])
        image = np.stack(imgs, 0)
        label = np.stack(labs, 0) if labs else None
        meta = {"spacing_known": False, "slice_indices": [k for k, _ in files]}
        return RawCase(
            image, label, (1.0, 1.0, 1.0), str(files[0][1]), str(files[0][1]) if label is not None else None, meta=meta
        )

    return read


def scan(
    root: str | Path, prefer: str = "volume", require_label: bool = True, affine_tol: float = 1e-3
) -> list[CaseSource]:
    """Find every frame (volume file or group of slice files) under ``root``.

    Args:
        root: the dataset folder (searched recursively for ``.h5`` files).
        prefer: ``volume`` (use ``patientXXX_frameYY.h5`` when present) or ``slices``
            (stack the slice files when present).
        require_label: every file must hold a ``label`` dataset.
        affine_tol: unused (no geometry in these files); kept for a uniform interface.

    Returns:
        Lazy cases sorted by id; ``meta`` has ``paper_key`` (patient number), ``frame``,
        ``spacing_known`` (False), ``source_kind`` (``volume``/``slices``), ``slice_indices``
        and, when ``*.list`` files are present, ``split`` (``train``/``val``/``test``).

    Raises:
        DataError: ``root`` missing.
        ConfigError: unknown ``prefer``.
    """
    if prefer not in ("volume", "slices"):
        raise ConfigError(f"acdc-h5: prefer must be 'volume' or 'slices', not {prefer!r}")
    base = require_root(root)
    volumes: dict[str, Path] = {}
    slices: dict[str, list[tuple[int, Path]]] = {}
    for f in sorted(base.rglob("*.h5")):
        if m := _SLICE.match(f.name):
            slices.setdefault(m.group(1), []).append((int(m.group(4)), f))
        elif m := _VOLUME.match(f.name):
            volumes.setdefault(m.group(1), f)
    split_of: dict[str, str] = {}
    for name, ids in read_split_lists(base).items():
        split = name.replace("_slices", "")
        for i in ids:
            split_of.setdefault(i.split("_slice_")[0], split)
    lmap = LabelMap.identity(len(ACDC_CLASSES))
    out: list[CaseSource] = []
    for cid in sorted(set(volumes) | set(slices)):
        m = re.match(r"^patient(\d+)_frame(\d+)$", cid)
        assert m is not None, cid  # _SLICE and _VOLUME admit only patientXXX_frameYY ids
        num, frame = int(m.group(1)), int(m.group(2))
        sl = sorted(slices.get(cid, []))
        use_volume = cid in volumes and (prefer == "volume" or not sl)
        meta = {"paper_key": num, "frame": frame, "spacing_known": False, "format": "h5"}
        if cid in split_of:
            meta["split"] = split_of[cid]
        if use_volume:
            meta["source_kind"] = "volume"
            read = _read_volume(volumes[cid], require_label)
            paths: tuple[Path, ...] = (volumes[cid],)
        else:
            meta.update(source_kind="slices", slice_indices=[k for k, _ in sl])
            read = _read_slices(sl, require_label)
            paths = tuple(f for _, f in sl)
        out.append(make_source(read, cid, f"patient{m.group(1)}", paths, lmap, require_label, meta, affine_tol))
    return out


SPEC = DatasetSpec(
    name="acdc-h5",
    description="ACDC in the semi-supervised HDF5 layout (slices and/or volumes, no spacing); RV, myocardium, LV",
    layout="data/slices/patientXXX_frameYY_slice_K.h5 and/or data/patientXXX_frameYY.h5 (image, label) + *.list",
    class_names=ACDC_CLASSES,
    scan=scan,
    target_spacing=None,
    normalization="zscore",
    patch_size=352,
    paper_split_key="ACDC",
)
DATASETS.register("acdc-h5", description=SPEC.description, paper="Bernard et al., IEEE TMI 2018")(SPEC)
