"""Evaluate predictions: per-case rows -> ``metrics.csv``, ``summary.csv``, ``summary.md``, ``summary.json``.

Rows come from ``metrics.case_metrics`` (one per case and foreground class); every summary is built
from those rows (``metrics.summarize``), never from a separate code path.

``evaluate_folders`` pairs NIfTI files by name (``case.nii.gz`` in the prediction folder with
``case.nii.gz`` or ``case.nii`` in the ground-truth folder), reads the spacing from the ground-truth
header, and reports any problem as a one-line ``DataError`` naming the file.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError
from ..utils.files import atomic_write, atomic_write_text
from .metrics import (
    METRIC_NAMES,
    SPACING_UNKNOWN_NOTE,
    MetricAccumulator,
    _check_protocol,
    distance_unit,
)
from .misses import add_miss_counts, miss_note

__all__ = [
    "ROW_COLUMNS",
    "EvaluationResult",
    "evaluate_arrays",
    "evaluate_folders",
    "format_summary_table",
    "write_results",
]

#: Column order of ``metrics.csv``.
ROW_COLUMNS: tuple[str, ...] = (
    "case_id",
    "class_index",
    "class_name",
    *METRIC_NAMES,
    "tp",
    "fp",
    "fn",
    "gt_empty",
    "pred_empty",
    "n_slices",
    "protocol",
    "distances",
    "nsd_tolerance",
)

_NIFTI_SUFFIXES = (".nii.gz", ".nii")
_MD_METRICS = ("dsc", "jc", "hd95", "asd", "assd", "nsd")
_UNITLESS = ("dsc", "jc", "nsd")
#: One line per boundary definition, said in ``summary.md`` and ``summary.json``.
DEFINITION_NOTES: dict[str, str] = {
    "surface": (
        "distances `surface` (DeepMind surface-distance definition): HD95 = the larger of the two directed "
        "area-weighted 95th percentiles; ASD (pred -> gt), ASSD, MASD and HD from the same area-weighted "
        "boundary elements; NSD = surface Dice at the tolerance"
    ),
    "medpy": (
        "distances `medpy`: HD95 = 95th percentile of both directions' distances pooled, every boundary voxel "
        "counted alike (medpy.metric.binary); NSD = share of boundary voxels within the tolerance"
    ),
}
EMPTY_MASK_NOTE = (
    "Empty masks (Metrics Reloaded): DSC/JC NaN when both are empty, 0 when one is; one mask empty -> "
    "distances undefined (NaN, excluded and counted in `no distance`) and NSD 0; both empty -> NSD 1 and "
    "distances 0 (`medpy` distances: NaN)."
)


@dataclass
class EvaluationResult:
    """Per-case rows and their summary.

    Attributes:
        rows: one dict per case and foreground class (keys of ``ROW_COLUMNS`` but ``protocol``).
        summary: ``summarize(rows, protocol)``: one dict per class, then the ``mean`` row.
        protocol: ``"standard"`` or ``"paper"``.
        class_names: K names, background first.
        spacing_known: False when the cases' voxel spacing is unknown (distances in voxels).
        distances: the boundary definition, ``surface`` or ``medpy`` (``metrics.distance_definition``).
        nsd_tolerance: NSD tolerance in mm per foreground class.
    """

    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    protocol: str = "standard"
    class_names: tuple[str, ...] = field(default_factory=tuple)
    spacing_known: bool = True
    distances: str = "surface"
    nsd_tolerance: dict[str, float] = field(default_factory=dict)

    @property
    def distance_unit(self) -> str:
        """``"mm"``, ``"voxels"`` (spacing unknown) or ``"px"`` (``paper`` protocol)."""
        return distance_unit(self.protocol, self.spacing_known)


def evaluate_arrays(
    items: Iterable[tuple[str, Any, Any, Any]],
    class_names: Sequence[str],
    protocol: str = "standard",
    *,
    spacing_known: bool = True,
    distances: str | None = None,
    nsd_tolerance: float | Mapping[str, float] | None = None,
) -> EvaluationResult:
    """Score ``(case_id, pred, gt, spacing)`` tuples.

    Args:
        items: ``(case_id, pred (D, H, W), gt (D, H, W), spacing (sz, sy, sx) or None)``; a None
            spacing means one voxel per unit (distances in voxels).
        class_names: K names, background first.
        protocol: ``"standard"`` or ``"paper"``.
        spacing_known: False when the given spacings are placeholders (a data set that stores
            none, such as ``acdc-h5``): the distances are then labelled as voxels.
        distances: ``surface``, ``medpy`` or None (the protocol's default).
        nsd_tolerance: NSD tolerance in mm, one value or per class name (default 2).

    Returns:
        ``EvaluationResult`` with the rows in input order and their summary; every summary row
        carries ``distance_unit`` (``mm``, ``voxels`` or ``px``).

    Raises:
        ValueError: a repeated case id, shape mismatch or labels outside the classes (the message
            starts with the case id).
    """
    acc = MetricAccumulator(class_names, protocol, distances, nsd_tolerance)
    for case_id, pred, gt, spacing in items:
        try:
            acc.add(str(case_id), pred, gt, spacing)
        except ValueError as exc:
            raise ValueError(f"{case_id}: {exc}") from exc
        spacing_known = spacing_known and spacing is not None
    return _result(acc, protocol, spacing_known)


def _result(acc: MetricAccumulator, protocol: str, spacing_known: bool) -> EvaluationResult:
    """The :class:`EvaluationResult` of the cases added to ``acc``, every summary row with its distance unit."""
    unit = distance_unit(protocol, spacing_known)
    summary = add_miss_counts([{**r, "distance_unit": unit} for r in acc.summary()], acc.rows(), protocol)
    return EvaluationResult(
        acc.rows(), summary, protocol, acc.class_names, spacing_known, acc.distances, acc.nsd_tolerance
    )


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------
def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return "nan" if math.isnan(v) else repr(float(v))
    return v


def _json_value(v: Any) -> Any:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    return v


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(columns)
            for r in rows:
                w.writerow([_csv_value(r.get(c)) for c in columns])

    atomic_write(path, write)


def _summary_columns(summary: Sequence[Mapping[str, Any]]) -> list[str]:
    cols: list[str] = []
    for r in summary:
        for k in r:
            if k not in cols:
                cols.append(k)
    return cols


def _fmt(mean: Any, std: Any, digits: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _summary_unit(summary: Sequence[Mapping[str, Any]]) -> str | None:
    """The ``distance_unit`` of a summary's rows (None for summaries written before it existed)."""
    return next((str(r["distance_unit"]) for r in summary if r.get("distance_unit")), None)


def _metric_header(metric: str, unit: str | None) -> str:
    """``"DSC"``, ``"HD95 (mm)"``, ``"ASD (voxels)"``: distances carry their unit when it is known."""
    return f"{metric.upper()} ({unit})" if unit and metric not in _UNITLESS else metric.upper()


def _shown_metrics(summary: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The table's metrics: NSD only where some class has one (the ``paper`` protocol has none)."""
    has_nsd = any(r.get("nsd_n_valid") for r in summary)
    return tuple(m for m in _MD_METRICS if m != "nsd" or has_nsd)


def _table_cells(summary: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells shared by the Markdown and the text table (mean row first)."""
    unit = _summary_unit(summary)
    shown = _shown_metrics(summary)
    header = [
        "class",
        "cases",
        *[_metric_header(m, unit) for m in shown],
        "gt empty",
        "pred empty",
        "no distance",
    ]
    ordered = [r for r in summary if r.get("class_index") is None] + [
        r for r in summary if r.get("class_index") is not None
    ]
    cells = []
    for r in ordered:
        line = [str(r["class_name"]), str(r["n_cases"])]
        for m in shown:
            line.append(_fmt(r.get(f"{m}_mean"), r.get(f"{m}_std"), 4 if m in _UNITLESS else 2))
        no_distance = r.get("n_no_distance", r.get("hd95_n_empty", 0))  # the mean row: case/class pairs
        line += [str(r.get("n_gt_empty", 0)), str(r.get("n_pred_empty", 0)), str(no_distance)]
        cells.append(line)
    return header, cells


def format_summary_table(summary: Sequence[Mapping[str, Any]]) -> str:
    """A fixed-width text table of a summary (mean row first), for printing.

    Distance headers carry the rows' ``distance_unit`` (``HD95 (mm)``); with ``voxels`` a last line
    says ``spacing unknown: distances in voxels``.

    Args:
        summary: the output of ``summarize`` (or ``EvaluationResult.summary``).

    Returns:
        The table as one string without a trailing newline (empty string for an empty summary).
    """
    if not summary:
        return ""
    header, cells = _table_cells(summary)
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for c in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(c, widths)))
    if _summary_unit(summary) == "voxels":
        lines.append(SPACING_UNKNOWN_NOTE)
    missed = miss_note(summary)
    if missed:
        lines.append(missed)
    return "\n".join(line.rstrip() for line in lines)


def _markdown(result: EvaluationResult) -> str:
    header, cells = _table_cells(result.summary)
    if result.protocol == "paper":
        note = (
            "Protocol `paper`: DSC/JC pooled over all test slices per class; HD95/ASD/ASSD per 2D slice "
            "in pixels, 0 where a slice mask is empty, averaged over slices; ASD directed (pred -> gt). "
            "± is the std over cases of the per-case values."
        )
    else:
        distances = (
            "HD95/ASD/ASSD in mm with the voxel spacing"
            if result.spacing_known
            else f"HD95/ASD/ASSD in voxels (**{SPACING_UNKNOWN_NOTE}**: the data set stores no voxel spacing)"
        )
        note = (
            f"Protocol `standard`: per-volume 3D DSC/JC; {distances}; {DEFINITION_NOTES[result.distances]} "
            f"({_tolerance_text(result.nsd_tolerance)}); mean ± std over cases (population std), NaN values "
            f"excluded and counted (`gt empty`, `pred empty`; `no distance` = cases without HD95). {EMPTY_MASK_NOTE}"
        )
    lines = [f"# Evaluation summary ({result.protocol})", "", note, ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for c in cells:
        lines.append("| " + " | ".join(c) + " |")
    missed = miss_note(result.summary)
    if missed:
        lines += ["", missed]
    return "\n".join(lines) + "\n"


def _tolerance_text(tolerance: Mapping[str, float]) -> str:
    """``"NSD tolerance 2 mm"`` or ``"NSD tolerance RV 2 mm, Myo 1.5 mm"``."""
    values = set(tolerance.values())
    if len(values) == 1:
        return f"NSD tolerance {next(iter(values)):g} mm"
    return "NSD tolerance " + ", ".join(f"{c} {v:g} mm" for c, v in tolerance.items())


def _definition_fields(result: EvaluationResult) -> dict[str, Any]:
    """What ``summary.json`` says about how the boundary metrics were measured."""
    return {
        "distances": result.distances,
        "distance_definition": DEFINITION_NOTES[result.distances],
        "nsd_tolerance_mm": dict(result.nsd_tolerance) if result.protocol == "standard" else None,
        "empty_masks": EMPTY_MASK_NOTE,
    }


def write_results(result: EvaluationResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``metrics.csv``, ``summary.csv``, ``summary.md`` and ``summary.json`` into ``out_dir``.

    ``metrics.csv`` has one line per case and class (columns ``ROW_COLUMNS``, booleans as 0/1, NaN as
    ``nan``); ``summary.json`` holds ``protocol``, ``class_names``, ``mean`` (metric -> value of the
    mean row), ``per_class`` (class name -> metric -> value), ``summary`` (the full summary rows) and
    ``metric_per_case`` (the rows), NaN as null, ``spacing_known``, ``distance_unit``, ``notes``
    (``["spacing unknown: distances in voxels"]`` when the spacing is unknown), and how the boundary
    metrics were measured: ``distances`` (``surface`` or ``medpy``), ``distance_definition``,
    ``nsd_tolerance_mm`` (class -> mm; null under ``paper``) and ``empty_masks``.

    Args:
        result: an ``EvaluationResult``.
        out_dir: folder (created if missing).

    Returns:
        ``{"metrics_csv", "summary_csv", "summary_md", "summary_json"}`` -> paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "metrics_csv": out / "metrics.csv",
        "summary_csv": out / "summary.csv",
        "summary_md": out / "summary.md",
        "summary_json": out / "summary.json",
    }
    tol = result.nsd_tolerance if result.protocol == "standard" else {}
    rows = [
        {**r, "protocol": result.protocol, "distances": result.distances, "nsd_tolerance": tol.get(r["class_name"])}
        for r in result.rows
    ]
    _write_csv(paths["metrics_csv"], rows, ROW_COLUMNS)
    _write_csv(paths["summary_csv"], result.summary, _summary_columns(result.summary))
    atomic_write_text(paths["summary_md"], _markdown(result))
    mean_row = next((r for r in result.summary if r.get("class_index") is None), {})
    doc = {
        "protocol": result.protocol,
        "class_names": list(result.class_names),
        "spacing_known": result.spacing_known,
        "distance_unit": result.distance_unit,
        "notes": [] if result.spacing_known else [SPACING_UNKNOWN_NOTE],
        **_definition_fields(result),
        "mean": {m: _json_value(mean_row.get(f"{m}_mean", float("nan"))) for m in METRIC_NAMES},
        "per_class": {
            str(r["class_name"]): {m: _json_value(r.get(f"{m}_mean", float("nan"))) for m in METRIC_NAMES}
            for r in result.summary
            if r.get("class_index") is not None
        },
        "summary": [{k: _json_value(v) for k, v in r.items()} for r in result.summary],
        "metric_per_case": [{k: _json_value(v) for k, v in r.items()} for r in rows],
    }
    atomic_write_text(paths["summary_json"], json.dumps(doc, indent=2, allow_nan=False) + "\n")
    return paths


# --------------------------------------------------------------------------------------------
# Folders of NIfTI files
# --------------------------------------------------------------------------------------------
def _case_name(path: Path) -> str | None:
    for suf in _NIFTI_SUFFIXES:
        if path.name.endswith(suf) and len(path.name) > len(suf):
            return path.name[: -len(suf)]
    return None


def _list_nifti(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(folder, "not a folder")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        name = _case_name(p)
        if name is None or not p.is_file():
            continue
        if name in found:
            raise DataError(p, f"two files for case '{name}' ({found[name].name} and {p.name})")
        found[name] = p
    return found


def _read_labels(path: Path, label_map: Mapping[int, int] | None) -> tuple[np.ndarray, tuple[float, ...]]:
    """A NIfTI label volume as integers ``(D, H, W)`` and its spacing ``(sz, sy, sx)``."""
    from ..data.case import to_dhw
    from ..data.io import load_nifti

    raw, zooms, _ = load_nifti(path)  # empty, corrupt, truncated, zero-size, non-numeric: one line
    if raw.ndim not in (2, 3) and not (raw.ndim > 3 and all(s == 1 for s in raw.shape[3:])):
        raise DataError(path, f"expected a 2D or 3D label volume, got shape {raw.shape}")
    raw = raw.reshape(raw.shape[:3]) if raw.ndim > 3 else raw
    if not np.issubdtype(raw.dtype, np.integer):
        if not np.all(np.isfinite(raw)):
            raise DataError(path, "label volume contains NaN or infinite values")
        rounded = np.rint(raw)
        if not np.array_equal(rounded, raw):
            bad = raw[rounded != raw].flat[0]
            raise DataError(path, f"label value {bad:g} is not an integer")
        raw = rounded
    arr, spacing = to_dhw(raw.astype(np.int64), zooms)
    if label_map is not None:
        values = np.unique(arr)
        missing = [int(v) for v in values if int(v) not in label_map]
        if missing:
            raise DataError(path, f"label value {missing[0]} not in the label map {sorted(label_map)}")
        lut_keys = np.array(sorted(label_map), dtype=np.int64)
        lut_vals = np.array([label_map[k] for k in lut_keys], dtype=np.int64)
        arr = lut_vals[np.searchsorted(lut_keys, arr)]
    return arr, spacing


def _paired_files(pdir: Path, gdir: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """The NIfTI files of both folders by case name; a case in only one of them is a ``DataError``."""
    preds, gts = _list_nifti(pdir), _list_nifti(gdir)
    for name, p in preds.items():
        if name not in gts:
            raise DataError(p, f"no ground truth '{name}.nii.gz' in {gdir}")
    for name, g in gts.items():
        if name not in preds:
            raise DataError(g, f"no prediction '{name}.nii.gz' in {pdir}")
    if not gts:
        raise DataError(gdir, "no NIfTI files (*.nii.gz, *.nii)")
    return preds, gts


def _geometry(path: Path) -> tuple[str, np.ndarray, float] | None:
    """A NIfTI file's voxel-axis directions (``RAS``, ``LPS``...), origin (mm) and smallest voxel size,
    from its header; None if unreadable."""
    import nibabel as nib

    from ..data.io import nibabel_header_fixes

    try:
        with nibabel_header_fixes(path):
            affine = np.asarray(nib.load(str(path)).affine, dtype=np.float64)  # type: ignore[attr-defined]
        codes = "".join(str(c) for c in nib.aff2axcodes(affine))
    except Exception:  # an unreadable file is named when its voxels are read
        return None
    return codes, affine[:3, 3], float(np.min(np.linalg.norm(affine[:3, :3], axis=0)))


def _warn_orientation(preds: Mapping[str, Path], gts: Mapping[str, Path]) -> None:
    """One ``medssl: warning:`` line when predictions are stored with other axis directions than their
    ground truth, and one when they are stored at another position (origin more than half a voxel away):
    the labels are compared voxel by voxel, so a prediction reoriented, shifted (a crop) or written
    without its scan's geometry may not lie on the same anatomy."""
    import logging

    axes, moved = [], []
    for n in sorted(gts):
        p, g = _geometry(preds[n]), _geometry(gts[n])
        if p is None or g is None:
            continue
        if p[0] != g[0]:
            axes.append((n, p[0], g[0]))
        elif float(np.max(np.abs(p[1] - g[1]))) > 0.5 * g[2]:
            moved.append((n, p[1], g[1]))
    log = logging.getLogger("medssl")
    if axes:
        name, pc, gc = axes[0]
        log.warning(
            "medssl: warning: %d prediction(s) stored with other axis directions than their ground truth (first: "
            "%s: %s, ground truth %s); labels are compared voxel by voxel as stored: check that they are aligned",
            len(axes), preds[name], pc, gc,
        )  # fmt: skip
    if moved:
        name, po, go = moved[0]
        log.warning(
            "medssl: warning: %d prediction(s) stored at another position than their ground truth (first: %s: "
            "origin %s mm, ground truth %s mm); labels are compared voxel by voxel as stored: check that they are "
            "aligned",
            len(moved), preds[name], _mm(po), _mm(go),
        )  # fmt: skip


def _mm(v: np.ndarray) -> str:
    return "(" + ", ".join(f"{x:.1f}" for x in v) + ")"


def _check_label_range(arr: np.ndarray, path: Path, class_names: Sequence[str], predicted: bool = False) -> None:
    """Every label of ``arr`` is a class index (else a ``DataError`` naming ``path``)."""
    lo, hi = int(arr.min(initial=0)), int(arr.max(initial=0))
    if lo < 0 or hi >= len(class_names):
        raise _label_error(path, lo if lo < 0 else hi, class_names, predicted)


def _read_pairs(
    preds: Mapping[str, Path], gts: Mapping[str, Path], label_map: Mapping[int, int] | None, spacing_tolerance: float
) -> Iterable[tuple[str, Path, np.ndarray, Path, np.ndarray, tuple[float, ...] | None]]:
    """``(name, pred path, pred, gt path, gt, spacing)`` per case (sorted), shapes and spacings checked; the
    spacing is None (distances in voxels) when the ground truth's header stores a voxel size of 0."""
    from ..data.io import zero_voxel_size

    for name in sorted(gts):
        g, gsp = _read_labels(gts[name], label_map)
        p, psp = _read_labels(preds[name], None)
        if p.shape != g.shape:
            raise DataError(
                preds[name], f"shape {p.shape} (D, H, W) does not match the ground truth {g.shape} ({gts[name]})"
            )
        for path, sp in ((gts[name], gsp), (preds[name], psp)):
            if not all(math.isfinite(v) and v > 0 for v in sp):
                raise DataError(path, f"invalid voxel spacing {tuple(float(v) for v in sp)} in the header (pixdim)")
        if not np.allclose(psp, gsp, rtol=0.0, atol=spacing_tolerance):
            raise DataError(
                preds[name],
                f"spacing {tuple(round(s, 4) for s in psp)} does not match the ground truth "
                f"{tuple(round(s, 4) for s in gsp)} ({gts[name]})",
            )
        yield name, preds[name], p, gts[name], g, (None if zero_voxel_size(gts[name]) else gsp)


def _label_error(path: Path, value: int, class_names: Sequence[str], predicted: bool) -> DataError:
    """A label value outside the classes; for a prediction, say that it is no class of the ground truth."""
    hint = "; the prediction has a value that is no class (give every class with --labels)" if predicted else ""
    return DataError(
        path, f"label value {value} not in the classes 0..{len(class_names) - 1} ({', '.join(class_names)}){hint}"
    )


def evaluate_folders(
    pred_dir: str | Path,
    gt_dir: str | Path,
    class_names: Sequence[str] | None = None,
    protocol: str = "standard",
    label_map: Mapping[int, int] | None = None,
    spacing_tolerance: float = 1e-3,
    distances: str | None = None,
    nsd_tolerance: float | Mapping[str, float] | None = None,
) -> EvaluationResult:
    """Score every NIfTI prediction in ``pred_dir`` against its namesake in ``gt_dir``.

    Args:
        pred_dir: predictions ``<case>.nii.gz`` (or ``.nii``) with class indices ``0..K-1``.
        gt_dir: ground truth with the same case names; its headers give the spacing.
        class_names: K names, background first; None = ``background, class_1, ...`` up to the
            largest label found.
        protocol: ``"standard"`` or ``"paper"``.
        label_map: raw ground-truth value -> class index (e.g. ``{0: 0, 63: 1, 126: 2}``); applied to
            the ground truth only (predictions are class indices). None = values are class indices.
        spacing_tolerance: largest allowed difference (mm) between the two headers' spacings.
        distances: ``surface``, ``medpy`` or None (the protocol's default).
        nsd_tolerance: NSD tolerance in mm, one value or per class name (default 2).

    Returns:
        ``EvaluationResult`` with one row per case (sorted by name) and foreground class.

    Raises:
        DataError: one line naming the file: a missing partner, an unreadable file, a shape or
            spacing mismatch, non-integer labels or labels outside the classes / label map.
    """
    _check_protocol(protocol)
    preds, gts = _paired_files(Path(pred_dir), Path(gt_dir))
    _warn_orientation(preds, gts)

    def pairs() -> Iterable[tuple[str, Path, np.ndarray, Path, np.ndarray, tuple[float, ...] | None]]:
        return _read_pairs(preds, gts, label_map, spacing_tolerance)

    if class_names is None:
        top = max(label_map.values()) if label_map else 0
        for _, _, _, _, g, _ in pairs():  # the classes are the ground truth's: a predicted value beyond is flagged
            top = max(top, int(g.max(initial=0)))
        class_names = ("background", *(f"class_{i}" for i in range(1, max(top, 1) + 1)))
    try:
        acc = MetricAccumulator(class_names, protocol, distances, nsd_tolerance)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    known = True
    for name, ppath, p, gpath, g, spacing in pairs():
        _check_label_range(g, gpath, class_names)
        _check_label_range(p, ppath, class_names, predicted=True)
        acc.add(name, p, g, spacing)
        known = known and spacing is not None
    return _result(acc, protocol, known)
