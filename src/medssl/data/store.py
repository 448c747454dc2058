"""``prepare()``: read a dataset once, check it, resample and normalise it, and write the prepared
slice store that every training run reads (nnU-Net's fingerprint -> plan -> preprocess, in one step).

Layout of a prepared store::

    OUT/plan.json          dataset, classes, target spacing, normalisation, patch size (what was done)
    OUT/fingerprint.json   cases, shapes, spacings, label counts, intensity statistics (before normalising)
    OUT/cases.json         one record per case (id, patient, shape, spacing, paper key, source)
    OUT/slices.csv         one row per slice: case_id, z, position=(z+1)/D, partition, foreground pixels
    OUT/images/<id>.npy    float32 (D, H, W), normalised
    OUT/labels/<id>.npy    uint8 (D, H, W), values 0..K-1 (absent for unlabelled pre-training sets)
    OUT/skipped.json       cases left out by ``--skip-bad`` with the reasons
    OUT/cache/             derived data (superpixels)

Each slice is a contiguous block of a memory-mapped ``.npy``: loading costs a copy, no decoding.

Data sets that store no voxel spacing (``acdc-h5``, ISIC) keep a placeholder spacing of 1: this is
said on the console and in ``fingerprint.json`` (``spacing_known: false``, ``distance_unit:
voxels``), evaluations label HD95/ASD as voxels, and resampling them to a spacing in mm is refused.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..utils.files import atomic_save_npy, atomic_write_json, atomic_write_text
from .store_folder import begin_store_folder, check_prepare_target

__all__ = ["STORE_VERSION", "CaseInfo", "PrepareResult", "SliceStore", "num_partitions", "prepare"]

STORE_VERSION = 1
num_partitions = 4


@dataclass
class CaseInfo:
    """One prepared case (a row of ``cases.json``)."""

    case_id: str
    patient_id: str
    num_slices: int
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    has_label: bool
    paper_key: int | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class SliceStore:
    """Read access to a prepared store.

    Example::

        store = SliceStore("prepared/hippocampus")
        img = store.image("hippocampus_003")        # (D, H, W) float32 memmap
        store.plan["class_names"]
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        plan_path = self.root / "plan.json"
        if not plan_path.is_file():
            raise DataError(self.root, "not a prepared store (no plan.json); run `medssl prepare` first")
        try:
            self.plan: dict[str, Any] = json.loads(plan_path.read_text())
            raw = json.loads((self.root / "cases.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise DataError(
                self.root, f"prepared store is incomplete or corrupt ({e.__class__.__name__}); prepare it again"
            ) from None
        self.cases: list[CaseInfo] = [
            CaseInfo(**{**c, "shape": tuple(c["shape"]), "spacing": tuple(c["spacing"])}) for c in raw
        ]
        self._by_id = {c.case_id: c for c in self.cases}

    @property
    def class_names(self) -> list[str]:
        return list(self.plan["class_names"])

    @property
    def num_classes(self) -> int:
        return len(self.plan["class_names"])

    @property
    def patch_size(self) -> int:
        return int(self.plan.get("patch_size", 256))

    def info(self, case_id: str) -> CaseInfo:
        try:
            return self._by_id[case_id]
        except KeyError:
            raise DataError(self.root, f"case '{case_id}' is not in this prepared store") from None

    def image(self, case_id: str) -> np.ndarray:
        """(D, H, W) float32, memory-mapped."""
        return self._load(self.root / "images" / f"{case_id}.npy", self.info(case_id).shape)

    def label(self, case_id: str) -> np.ndarray | None:
        """(D, H, W) uint8, memory-mapped; None for unlabelled cases."""
        info = self.info(case_id)
        if not info.has_label:
            return None
        return self._load(self.root / "labels" / f"{case_id}.npy", info.shape)

    def image_slice(self, case_id: str, z: int) -> np.ndarray:
        """Slice ``z`` of a case's image as a float32 array, checked: a store edited or damaged after
        ``prepare`` (NaN or infinite voxels) stops with the file and slice named, not with a
        ``non-finite loss`` steps later.

        Raises:
            DataError: the slice holds NaN or infinite values.
        """
        sl = np.array(self.image(case_id)[z], dtype=np.float32)
        if not np.isfinite(sl).all():
            bad = int((~np.isfinite(sl)).sum())
            raise DataError(
                self.root / "images" / f"{case_id}.npy",
                f"slice {z} holds {bad} NaN or infinite voxel(s), written after prepare; prepare the dataset again",
            )
        return sl

    def label_slice(self, case_id: str, z: int) -> np.ndarray:
        """Slice ``z`` of a case's label as int64, checked against the plan's classes.

        Raises:
            DataError: the case has no label, or the slice holds a value outside ``0..num_classes-1``.
        """
        vol = self.label(case_id)
        if vol is None:
            raise DataError(self.root, f"case '{case_id}' has no label: it cannot be a fine-tuning case")
        sl = np.array(vol[z], dtype=np.int64)
        if sl.size and (int(sl.max()) >= self.num_classes or int(sl.min()) < 0):
            raise DataError(
                self.root / "labels" / f"{case_id}.npy",
                f"slice {z} holds label values {sorted(set(np.unique(sl).tolist()) - set(range(self.num_classes)))} "
                f"outside the plan's {self.num_classes} classes 0..{self.num_classes - 1}; prepare the dataset again",
            )
        return sl

    @staticmethod
    def _load(path: Path, shape: Sequence[int] | None = None) -> np.ndarray:
        """The array at ``path``, memory-mapped; a DataError when unreadable or not of ``shape`` (cases.json's)."""
        try:
            arr = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise DataError(path, f"cannot read prepared array ({e}); prepare the dataset again") from None
        if shape is not None and tuple(arr.shape) != tuple(int(v) for v in shape):
            raise DataError(
                path,
                f"shape {tuple(arr.shape)} differs from the {tuple(shape)} recorded in cases.json: the store is "
                "corrupt; prepare the dataset again",
            )
        return arr

    def slices(self, case_ids: Iterable[str] | None = None) -> list[tuple[str, int]]:
        """(case_id, z) for every slice of the given cases (all cases by default)."""
        ids = [c.case_id for c in self.cases] if case_ids is None else list(case_ids)
        return [(cid, z) for cid in ids for z in range(self.info(cid).num_slices)]

    @property
    def spacing_known(self) -> bool:
        """False when any case came from files without a voxel spacing (distances are in voxels)."""
        return all(_spacing_known(c.meta) for c in self.cases)

    def __len__(self) -> int:
        return len(self.cases)


@dataclass
class PrepareResult:
    root: Path
    cases: list[CaseInfo]
    skipped: list[dict[str, str]]
    fingerprint: dict[str, Any]


def _intensity_stats(image: np.ndarray) -> dict[str, float]:
    flat = image.ravel()
    if flat.size > 200_000:
        flat = flat[:: flat.size // 200_000]
    p = np.percentile(flat, [0.5, 1, 50, 99, 99.5])
    return {
        "mean": float(flat.mean()),
        "std": float(flat.std()),
        "min": float(flat.min()),
        "max": float(flat.max()),
        "p00_5": float(p[0]),
        "p01": float(p[1]),
        "median": float(p[2]),
        "p99": float(p[3]),
        "p99_5": float(p[4]),
    }


def prepare(
    dataset: str,
    src: str | Path,
    out: str | Path,
    *,
    target_spacing: float | str | None = "default",
    normalization: str | None = None,
    skip_bad: bool = False,
    verify: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    reader_options: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> PrepareResult:
    """Prepare a dataset once: integrity check, in-plane resampling, normalisation, the slice store.

    Args:
        dataset: registry name (``medssl datasets``).
        src: the dataset in its official layout.
        out: folder of the prepared store (created).
        target_spacing: in-plane spacing in mm; ``"default"`` = the dataset's paper setting, None = keep.
        normalization: override of the dataset's normalisation (``zscore``, ``minmax``, ``none``, ...).
        skip_bad: prepare the good cases and record the bad ones in ``skipped.json`` instead of failing.
        verify: run the integrity check first (every problem is reported).
        overwrite: re-prepare cases already present.
        progress: show a progress bar.
        reader_options: options passed to the reader's ``scan``.

    Returns:
        A :class:`PrepareResult`.

    Raises:
        DataError: the source is missing/empty, or problems were found and ``skip_bad`` is False.
    """
    from ..utils.progress import progress_bar
    from .readers import resolve_spec, scan_dataset

    spec, out = resolve_spec(dataset, src, **(reader_options or {})), Path(out)
    options = {**spec.default_options, **(reader_options or {})}
    sources = scan_dataset(dataset, src, **options)
    spacing_target = _resolve_target_spacing(target_spacing, spec.target_spacing)
    _refuse_unknown_spacing(src, dataset, [s.meta for s in sources], spacing_target)
    norm = normalization or spec.normalization
    plan = _make_plan(dataset, src, spec, spacing_target, norm, options)
    target = check_prepare_target(
        out, plan, overwrite
    )  # writes nothing: a non-empty folder or another store is refused
    bad = _verify(sources, spec, src, skip_bad) if verify else {}

    begin_store_folder(out, plan, target)  # "replace" (--overwrite) deletes the previous store's files first
    (out / "images").mkdir(parents=True, exist_ok=True)
    got = _Collected(skipped=[{"case_id": cid, "reasons": "; ".join(r)} for cid, r in bad.items()])
    todo = [s for s in sources if s.case_id not in bad]
    bar = progress_bar(todo, desc=f"prepare {dataset}", unit="case", disable=not progress)
    _prepare_cases(bar, out, spacing_target, norm, overwrite, skip_bad, got)
    fingerprint = _finish_store(src, dataset, out, plan, got)
    _say_prepared(out, got, fingerprint, log)
    return PrepareResult(out, got.infos, got.skipped, fingerprint)


def _finish_store(src: str | Path, dataset: str, out: Path, plan: dict[str, Any], got: _Collected) -> dict[str, Any]:
    """The fingerprint of the prepared cases, written with the plan and the case index (DataError if none)."""
    if not got.infos:
        raise DataError(src, "no case could be prepared")
    fingerprint = _fingerprint(dataset, got)
    _write_store(out, plan, fingerprint, got)
    return fingerprint


def _resolve_target_spacing(requested: float | str | None, dataset_default: float | None) -> float | None:
    """The in-plane spacing to resample to: ``"default"`` = the dataset's paper setting, None = keep."""
    if requested == "default":
        return dataset_default
    if isinstance(requested, str):
        raise ConfigError(f"target_spacing: {requested!r} is neither a spacing in mm, 'default' nor None")
    return requested


def _prepare_cases(
    sources: Iterable[Any],
    out: Path,
    spacing_target: float | None,
    norm: str,
    overwrite: bool,
    skip_bad: bool,
    got: _Collected,
) -> None:
    """Load, resample, normalise and slice every source case into the store (problems collected in ``got``)."""
    for src_case in sources:
        case = _load_case(src_case, got, skip_bad)
        if case is not None:
            _prepare_case(case, src_case, out, spacing_target, norm, overwrite, got)


def _say_prepared(out: Path, got: _Collected, fingerprint: dict[str, Any], log: Callable[[str], None] | None) -> None:
    """The closing line and the fingerprint's notes, said aloud (the CLI prints them, the Python API warns)."""
    if log:
        log(
            f"prepared {len(got.infos)} cases ({fingerprint['num_slices']} slices) into {out}; skipped {len(got.skipped)}"
        )
    for note in fingerprint["notes"]:
        if log:
            log(note)
        else:
            warnings.warn(note, stacklevel=2)


# --- the steps of prepare() ------------------------------------------------------------------------------
@dataclass
class _Collected:
    """What the per-case loop of :func:`prepare` gathers, in case order."""

    infos: list[CaseInfo] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    fp_cases: list[dict[str, Any]] = field(default_factory=list)
    label_counts: dict[int, int] = field(default_factory=dict)
    seen_ids: set[str] = field(default_factory=set)
    slice_rows: list[str] = field(default_factory=list)


def _spacing_known(meta: dict[str, Any]) -> bool:
    """A reader marks files without a voxel spacing with ``meta["spacing_known"] = False``."""
    return meta.get("spacing_known", True) is not False


def _refuse_unknown_spacing(
    where: str | Path, what: str, metas: Sequence[dict[str, Any]], spacing_target: float | None
) -> None:
    """Resampling to a spacing in mm needs the spacing: refuse it (one line) for files without one (a
    format that stores none, or a header whose voxel size is 0: the reader's ``spacing_note``)."""
    unknown = [m for m in metas if not _spacing_known(m)]
    if spacing_target is not None and unknown:
        note = unknown[0].get("spacing_note")
        raise DataError(
            where,
            f"{what} {note or 'stores no voxel spacing'}, so it cannot be resampled to {spacing_target} mm; "
            + ("set the voxel size in the header (pixdim), or " if note else "")
            + "prepare it with --spacing keep (the default): distances are then in voxels",
        )


def _verify(sources: Sequence[Any], spec: Any, src: str | Path, skip_bad: bool) -> dict[str, list[str]]:
    """The integrity check: every problem, by case id. Raises (listing them all) unless ``skip_bad``."""
    from .verify import verify_dataset

    bad: dict[str, list[str]] = {}
    problems = list(verify_dataset(sources, spec))
    for p in problems:
        bad.setdefault(p.case_id, []).append(str(p))
    if problems and not skip_bad:
        err = DataError(src, f"{len(problems)} problem(s) in {len(bad)} case(s); fix them or use --skip-bad")
        err.problems = problems
        raise err
    return bad


def _make_plan(
    dataset: str, src: str | Path, spec: Any, spacing_target: float | None, norm: str, options: dict[str, Any]
) -> dict[str, Any]:
    """What is done to the data (``plan.json``); a store prepared with another plan is rewritten."""
    return {
        "store_version": STORE_VERSION,
        "dataset": dataset,
        "source": str(Path(src).resolve()) if Path(src).exists() else str(src),
        "class_names": list(spec.class_names),
        "target_spacing": spacing_target,
        "normalization": norm,
        "patch_size": spec.patch_size,
        "paper_split_key": spec.paper_split_key,
        "dataset_label": dataset_label(dataset, spec),
        "pretrain_only": spec.pretrain_only,
        "reader_options": options,
        "num_partitions": num_partitions,
    }


def _load_case(src_case: Any, got: _Collected, skip_bad: bool) -> Any:
    """Read one case; None (recorded in ``got.skipped``) for a repeated id or, with ``skip_bad``,
    an unreadable case."""
    if src_case.case_id in got.seen_ids:
        got.skipped.append({"case_id": src_case.case_id, "reasons": "duplicate case id"})
        return None
    got.seen_ids.add(src_case.case_id)
    try:
        return src_case.load()
    except DataError as e:
        if not skip_bad:
            raise
        got.skipped.append({"case_id": src_case.case_id, "reasons": str(e)})
        return None


def _prepare_case(
    case: Any, src_case: Any, out: Path, spacing_target: float | None, norm: str, overwrite: bool, got: _Collected
) -> None:
    """Resample, normalise and write one case; record its info, slice rows and fingerprint entry."""
    from .transforms import normalize, resample_inplane

    _refuse_unknown_spacing(case.source, "this case", [case.meta], spacing_target)
    raw_stats = _intensity_stats(case.image)
    image, label, spacing = resample_inplane(case.image, case.label, case.spacing, spacing_target)
    image = normalize(image, norm).astype(np.float32, copy=False)
    img_path = out / "images" / f"{case.case_id}.npy"
    if overwrite or not img_path.is_file():
        atomic_save_npy(img_path, np.ascontiguousarray(image))
        if label is not None:
            atomic_save_npy(out / "labels" / f"{case.case_id}.npy", np.ascontiguousarray(label.astype(np.uint8)))
    counts = {}
    if label is not None:
        vals, cnt = np.unique(label, return_counts=True)
        counts = {int(v): int(c) for v, c in zip(vals, cnt)}
        for v, c in counts.items():
            got.label_counts[v] = got.label_counts.get(v, 0) + c
    info = CaseInfo(
        case_id=case.case_id,
        patient_id=case.patient_id,
        num_slices=int(image.shape[0]),
        shape=(int(image.shape[0]), int(image.shape[1]), int(image.shape[2])),
        spacing=(float(spacing[0]), float(spacing[1]), float(spacing[2])),
        has_label=label is not None,
        paper_key=src_case.meta.get("paper_key", case.meta.get("paper_key")),
        source=case.source,
        meta={k: v for k, v in case.meta.items() if isinstance(v, (str, int, float, bool)) or v is None},
    )
    got.infos.append(info)
    fg = np.count_nonzero(label.reshape(label.shape[0], -1), axis=1) if label is not None else None
    for z in range(info.num_slices):
        part = min(z * num_partitions // info.num_slices, num_partitions - 1)
        got.slice_rows.append(
            f"{info.case_id},{z},{(z + 1) / info.num_slices:.6f},{part},{int(fg[z]) if fg is not None else -1}"
        )
    got.fp_cases.append(
        {
            "case_id": case.case_id,
            "original_shape": list(case.image.shape),
            "original_spacing": list(case.spacing),
            "shape": list(info.shape),
            "spacing": list(info.spacing),
            "label_counts": counts,
            "intensity": raw_stats,
            "spacing_known": _spacing_known(case.meta),
        }
    )


def _fingerprint(dataset: str, got: _Collected) -> dict[str, Any]:
    """Cases, shapes, spacings, label counts and intensity statistics before normalising (``fingerprint.json``)."""
    from ..evaluation.metrics import SPACING_UNKNOWN_NOTE

    fp_cases, infos = got.fp_cases, got.infos
    unknown = [c["case_id"] for c in fp_cases if not c["spacing_known"]]
    shapes = np.array([c["original_shape"] for c in fp_cases])
    spacings = np.array([c["original_spacing"] for c in fp_cases])
    return {
        "dataset": dataset,
        "num_cases": len(infos),
        "num_patients": len({i.patient_id for i in infos}),
        "num_slices": int(sum(i.num_slices for i in infos)),
        "median_shape": np.median(shapes, 0).tolist(),
        "median_spacing": np.median(spacings, 0).tolist(),
        "min_shape": shapes.min(0).tolist(),
        "max_shape": shapes.max(0).tolist(),
        "label_counts": {str(k): v for k, v in sorted(got.label_counts.items())},
        "intensity": {
            "mean_of_means": float(np.mean([c["intensity"]["mean"] for c in fp_cases])),
            "median_p00_5": float(np.median([c["intensity"]["p00_5"] for c in fp_cases])),
            "median_p99_5": float(np.median([c["intensity"]["p99_5"] for c in fp_cases])),
        },
        "spacing_known": not unknown,
        "distance_unit": "voxels" if unknown else "mm",
        "notes": [
            f"{SPACING_UNKNOWN_NOTE} ({len(unknown)} of {len(fp_cases)} cases store no voxel spacing; "
            "HD95/ASD/ASSD are reported in voxels)"
        ]
        if unknown
        else [],
        "cases": fp_cases,
    }


def _write_store(out: Path, plan: dict[str, Any], fingerprint: dict[str, Any], got: _Collected) -> None:
    """The index files of the store; ``plan.json`` last: its presence marks a complete store."""
    atomic_write_text(
        out / "slices.csv", "\n".join(["case_id,z,position,partition,foreground", *got.slice_rows]) + "\n"
    )
    atomic_write_json(out / "fingerprint.json", fingerprint)
    atomic_write_json(out / "cases.json", [asdict(i) for i in got.infos])
    atomic_write_json(out / "skipped.json", got.skipped)
    atomic_write_json(out / "plan.json", plan)


_LABELS = {
    "acdc": "ACDC",
    "acdc-h5": "ACDC",
    "mmwhs": "MMWHS",
    "hvsmr": "HVSMR",
    "chaos": "CHAOS",
    "chaos-nifti": "CHAOS",
    "isic2018": "ISIC",
    "mscmrseg": "MS-CMRSeg",
    "synthetic": "Synthetic",
}


def dataset_label(name: str, spec: Any) -> str:
    """Display name matching the papers' tables (ACDC, CHAOS, Hippocampus, ...)."""
    if name == "msd":
        return str(spec.paper_split_key or "MSD")
    return _LABELS.get(name, name)


def slice_positions(store: SliceStore, items: Sequence[tuple[str, int]]) -> np.ndarray:
    """Slice positions ``(z + 1) / D`` of ``(case_id, z)`` items."""
    return np.array([(z + 1) / store.info(c).num_slices for c, z in items], dtype=np.float32)
