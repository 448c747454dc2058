"""Segmentation metrics for both evaluation protocols (METHODS.md section 6).

Overlap metrics (DSC, JC) come from one confusion matrix per case (``confusion_counts``), so every
class is scored from the same TP/FP/FN counts. Boundary metrics have two definitions (``DISTANCE_DEFINITIONS``): ``surface``,
the ``standard`` protocol's default, is DeepMind's surface-distance definition (directed HD95,
area-weighted boundary elements, MASD and NSD as well; ``medssl.evaluation.surface``); ``medpy``
(the ``paper`` protocol, and ``standard`` with ``distances: medpy``) reproduces
``medpy.metric.binary`` (0.5.x) to floating-point precision:

- the surface of a mask is ``mask XOR binary_erosion(mask)`` with the connectivity-1 cross and a
  zero border;
- the distance of a surface voxel of A to B is the Euclidean distance transform of the complement
  of B's surface, with the voxel spacing;
- ``hd95 = percentile(concat(d_AB, d_BA), 95)`` (linear interpolation), ``asd = mean(d_AB)``
  (directed, prediction -> ground truth), ``assd = mean(concat(d_AB, d_BA))`` (medpy >= 0.5;
  medpy 0.4 averaged the two directed means instead), ``hd = max(concat(d_AB, d_BA))``.

They are faster than medpy because (1) both surfaces and both directed distance sets are computed
once for all four metrics, and (2) the erosions and distance transforms run on the bounding box
of ``A | B`` padded by one voxel. The box is exact: every surface voxel of either mask lies inside
it, so the nearest surface voxel of the other mask (the zero of the distance transform) is inside
it too, and the exact EDT restricted to the box gives the same distances; outside the masks'
bounding box every voxel is background, so the erosion with a zero border is unchanged.

Empty-mask policy, written once (``_score_class`` and ``_paper_slice_distances``):

- ``standard`` protocol (per volume, in mm): DSC/JC are 2TP/(2TP+FP+FN) and TP/(TP+FP+FN); both
  masks empty gives 0/0 = NaN; only one empty gives 0. Boundary metrics follow Metrics Reloaded:
  one mask empty -> distances NaN (undefined) and NSD 0; both empty -> NSD 1 and, by the
  ``surface`` definition, distances 0 (``medpy``: NaN, as before). Every row carries ``gt_empty``
  and ``pred_empty`` so that the empty cases are counted, never hidden.
- ``paper`` protocol (the papers' code): DSC/JC pooled over all test slices per class (TP/FP/FN
  summed over the test set), then the mean over foreground classes; HD95/ASD per 2D slice and
  class in pixels (no spacing), 0 when either slice mask is empty, averaged over all slices.

References:
    - [0] Maier, MedPy, ``medpy.metric.binary`` (hd95, asd, assd), https://github.com/loli/medpy
    - [1] Zhao et al., MACL, IEEE JBHI 2026, https://arxiv.org/abs/2309.11876
    - [2] Zeng et al., SuperCL, IEEE TIP 2026, https://arxiv.org/abs/2504.14737
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.ndimage import binary_erosion, distance_transform_edt, find_objects, generate_binary_structure

from .surface import directed_surface_distances, surface_metrics

__all__ = [
    "BOUNDARY_METRICS",
    "DEFAULT_NSD_TOLERANCE",
    "DISTANCE_DEFINITIONS",
    "DISTANCE_METRICS",
    "METRIC_NAMES",
    "PROTOCOLS",
    "SPACING_UNKNOWN_NOTE",
    "MetricAccumulator",
    "asd",
    "assd",
    "case_metrics",
    "confusion_counts",
    "dice_jaccard_from_counts",
    "distance_definition",
    "distance_metrics",
    "distance_unit",
    "hd",
    "hd95",
    "parse_nsd_tolerance",
    "resolve_nsd_tolerance",
    "summarize",
    "surface_distances",
]

#: The two evaluation protocols (METHODS.md section 6).
PROTOCOLS: tuple[str, ...] = ("standard", "paper")
#: Every metric a row carries, in report order.
METRIC_NAMES: tuple[str, ...] = ("dsc", "jc", "hd95", "asd", "assd", "masd", "hd", "nsd")
#: The surface-distance metrics of medpy (the ``paper`` protocol scores these per 2D slice).
DISTANCE_METRICS: tuple[str, ...] = ("hd95", "asd", "assd", "hd")
#: Every boundary metric of a row (MASD and NSD are NaN under the ``paper`` protocol).
BOUNDARY_METRICS: tuple[str, ...] = ("hd95", "asd", "assd", "masd", "hd", "nsd")
#: How the ``standard`` protocol measures boundaries: ``surface`` (the default: directed HD95,
#: area-weighted boundary elements, as DeepMind's surface-distance) or ``medpy`` (the earlier
#: medpy-exact values: pooled HD95, every boundary voxel alike). ``paper`` always uses ``medpy``.
DISTANCE_DEFINITIONS: tuple[str, ...] = ("surface", "medpy")
#: NSD tolerance in mm when none is given.
DEFAULT_NSD_TOLERANCE = 2.0

Spacing = float | Sequence[float] | None

#: Said (console, fingerprint.json, every summary) when a data set stores no voxel spacing.
SPACING_UNKNOWN_NOTE = "spacing unknown: distances in voxels"


def distance_unit(protocol: str, spacing_known: bool = True) -> str:
    """The unit of HD95/ASD/ASSD/HD under a protocol.

    Args:
        protocol: ``"paper"`` (per 2D slice, no spacing: pixels) or ``"standard"``.
        spacing_known: whether the cases' voxel spacing is known (False for ``acdc-h5``, ISIC).

    Returns:
        ``"px"`` for ``paper``, else ``"mm"`` with a known spacing and ``"voxels"`` without.
    """
    if protocol == "paper":
        return "px"
    return "mm" if spacing_known else "voxels"


def distance_definition(protocol: str, distances: str | None = None) -> str:
    """The boundary definition a protocol uses: ``surface`` or ``medpy``.

    Args:
        protocol: ``"standard"`` or ``"paper"``.
        distances: ``"surface"``, ``"medpy"`` or None (the protocol's default: ``surface`` for
            ``standard``, ``medpy`` for ``paper``).

    Returns:
        ``"surface"`` or ``"medpy"``.

    Raises:
        ValueError: an unknown definition, or ``surface`` with the ``paper`` protocol (the papers'
            numbers are medpy's).
    """
    _check_protocol(protocol)
    if distances is None:
        return "medpy" if protocol == "paper" else "surface"
    if distances not in DISTANCE_DEFINITIONS:
        raise ValueError(f"unknown distances '{distances}', expected one of {DISTANCE_DEFINITIONS}")
    if protocol == "paper" and distances != "medpy":
        raise ValueError("the paper protocol measures distances as medpy does (distances: medpy)")
    return distances


def resolve_nsd_tolerance(
    tolerance: float | Mapping[str, float] | None, class_names: Sequence[str]
) -> dict[str, float]:
    """The NSD tolerance (mm) of every foreground class.

    Args:
        tolerance: one value for all classes, ``{class name: mm}`` (classes left out get
            ``DEFAULT_NSD_TOLERANCE``), or None (the default for all).
        class_names: K names, background first.

    Returns:
        ``{foreground class name: tolerance in mm}``.

    Raises:
        ValueError: a class name that is not a foreground class, or a tolerance that is not a
            finite number >= 0.
    """
    fg = [str(c) for c in class_names[1:]]
    if tolerance is None or isinstance(tolerance, (int, float)):
        per = dict.fromkeys(fg, DEFAULT_NSD_TOLERANCE if tolerance is None else tolerance)
    else:
        unknown = [k for k in tolerance if k not in fg]
        if unknown:
            raise ValueError(f"NSD tolerance for unknown class '{unknown[0]}' (classes: {', '.join(fg)})")
        per = {c: tolerance.get(c, DEFAULT_NSD_TOLERANCE) for c in fg}
    for c, v in per.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"NSD tolerance of class '{c}' must be a finite number of mm >= 0, got {v!r}")
    return {c: float(v) for c, v in per.items()}


def parse_nsd_tolerance(text: str) -> float | dict[str, float]:
    """Parse ``"2"`` (all classes) or ``"RV=2,Myo=1.5"`` (per class name) into mm.

    Args:
        text: the option's value.

    Returns:
        One float, or ``{class name: mm}``.

    Raises:
        ValueError: not a number, a ``name=mm`` list, or a value below 0 (one line naming it).
    """
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if len(parts) == 1 and "=" not in parts[0]:
        return _tolerance_value(parts[0], "all classes")
    out: dict[str, float] = {}
    for part in parts:
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"expected MM or CLASS=MM,CLASS=MM (e.g. RV=2,Myo=1.5), got {text!r}")
        out[name.strip()] = _tolerance_value(value, name.strip())
    if not out:
        raise ValueError(f"expected MM or CLASS=MM,CLASS=MM, got {text!r}")
    return out


def _tolerance_value(value: str, what: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise ValueError(f"tolerance of {what} is not a number of mm: {value.strip()!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"tolerance of {what} must be a finite number of mm >= 0, got {value.strip()}")
    return v


# --------------------------------------------------------------------------------------------
# Overlap: one confusion matrix for all classes
# --------------------------------------------------------------------------------------------
def _as_labels(array: Any, num_classes: int, name: str) -> np.ndarray:
    """An integer label array with values in ``0..num_classes-1`` (smallest fitting dtype).

    Raises:
        ValueError: non-integral values or values outside ``0..num_classes-1``.
    """
    a = np.asarray(array)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)
    if a.size == 0:
        return a.astype(np.uint8)
    if not np.issubdtype(a.dtype, np.integer):
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"{name}: label array of dtype {a.dtype} is not numeric")
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise ValueError(f"{name}: label values are not integers")
    lo, hi = a.min(), a.max()
    if lo < 0 or hi > num_classes - 1:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{name}: label value {bad:g} not in 0..{num_classes - 1}")
    dtype = np.uint8 if num_classes <= 256 else np.int32
    return a.astype(dtype, copy=False)


def confusion_counts(pred: Any, gt: Any, num_classes: int) -> np.ndarray:
    """TP, FP and FN of every class from one confusion matrix.

    The matrix is ``bincount(gt * K + pred)`` reshaped to ``(K, K)`` (rows = ground truth), so all
    classes are counted at once; only voxels that are foreground in either array are binned (the
    background/background cell is the remainder).

    Args:
        pred: predicted labels, any shape, integer values in ``0..K-1``.
        gt: ground-truth labels, the same shape.
        num_classes: K, background included.

    Returns:
        int64 array ``(K, 3)``: ``[tp, fp, fn]`` per class (class 0 = background included).

    Raises:
        ValueError: different shapes, non-integer labels or labels outside ``0..K-1``.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    p = _as_labels(pred, num_classes, "prediction")
    g = _as_labels(gt, num_classes, "ground truth")
    if p.shape != g.shape:
        raise ValueError(f"prediction shape {p.shape} != ground truth shape {g.shape}")
    k = int(num_classes)
    # medical volumes are mostly background in both: count only voxels where either is foreground
    # and add the background/background cell from the total (same matrix, a fraction of the work)
    fg = (p | g) != 0
    gi, pi = g[fg], p[fg]
    cm = np.bincount(gi.astype(np.intp) * k + pi, minlength=k * k)
    cm[0] += p.size - gi.size
    cm = cm.reshape(k, k)
    tp = np.diagonal(cm).astype(np.int64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    return np.stack([tp, fp, fn], axis=-1).astype(np.int64)


def dice_jaccard_from_counts(counts: Any) -> tuple[np.ndarray, np.ndarray]:
    """Dice and Jaccard from TP/FP/FN counts, NaN where a class is absent from both masks.

    ``dsc = 2 tp / (2 tp + fp + fn)``, ``jc = tp / (tp + fp + fn)``.

    Args:
        counts: array ``(..., 3)`` of ``[tp, fp, fn]`` (e.g. ``(K, 3)`` from ``confusion_counts``
            or counts summed over a test set for the pooled ``paper`` Dice).

    Returns:
        ``(dsc, jc)``, float64 arrays of shape ``counts.shape[:-1]``.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.shape[-1:] != (3,):
        raise ValueError(f"counts must have shape (..., 3), got {c.shape}")
    tp, fp, fn = c[..., 0], c[..., 1], c[..., 2]
    union = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        dsc = np.where(union > 0, 2.0 * tp / (2.0 * tp + fp + fn), np.nan)
        jc = np.where(union > 0, tp / union, np.nan)
    return dsc, jc


# --------------------------------------------------------------------------------------------
# Surface distances (medpy-exact, bounding-box restricted)
# --------------------------------------------------------------------------------------------
def _normalize_spacing(spacing: Spacing, ndim: int) -> np.ndarray | None:
    if spacing is None:
        return None
    sp = np.atleast_1d(np.asarray(spacing, dtype=np.float64))
    if sp.size == 1:
        sp = np.repeat(sp, ndim)
    if sp.shape != (ndim,):
        raise ValueError(f"spacing {tuple(sp.tolist())} does not match a {ndim}-D mask")
    if not np.all(sp > 0):
        raise ValueError(f"spacing must be positive, got {tuple(sp.tolist())}")
    return np.ascontiguousarray(sp)


def _union_box(a: np.ndarray, b: np.ndarray, pad: int = 1) -> tuple[slice, ...]:
    """The bounding box of ``a | b`` grown by ``pad`` voxels (clipped to the array)."""
    u = a | b
    box = []
    for ax in range(u.ndim):
        other = tuple(i for i in range(u.ndim) if i != ax)
        idx = np.flatnonzero(u.any(axis=other)) if other else np.flatnonzero(u)
        box.append(slice(max(int(idx[0]) - pad, 0), min(int(idx[-1]) + 1 + pad, u.shape[ax])))
    return tuple(box)


def _surface(mask: np.ndarray, connectivity: int) -> np.ndarray:
    """``mask XOR binary_erosion(mask)`` (zero border), as medpy extracts the 1-voxel border."""
    if connectivity == 1:
        # erosion by the cross = AND of the 2*ndim face neighbours, outside = background
        m = np.pad(mask, 1, mode="constant", constant_values=False)
        core = tuple(slice(1, -1) for _ in range(mask.ndim))
        eroded = mask.copy()
        for ax in range(mask.ndim):
            lo = core[:ax] + (slice(0, -2),) + core[ax + 1 :]
            hi = core[:ax] + (slice(2, None),) + core[ax + 1 :]
            eroded &= m[lo]
            eroded &= m[hi]
        return mask & ~eroded
    footprint = generate_binary_structure(mask.ndim, connectivity)
    return mask ^ binary_erosion(mask, structure=footprint, iterations=1)


def surface_distances(
    pred_mask: Any, gt_mask: Any, spacing: Spacing = None, connectivity: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Both directed surface-distance sets between two binary masks, as medpy computes them.

    Equal to medpy's private ``__surface_distances(pred, gt)`` and ``__surface_distances(gt, pred)``
    (same values, same raster order), computed on the padded bounding box of both masks.

    Args:
        pred_mask: binary array (any ndim >= 1), non-zero = foreground.
        gt_mask: binary array of the same shape.
        spacing: voxel size per axis (in the array's axis order: ``(sz, sy, sx)`` for ``(D, H, W)``),
            a scalar for all axes, or None for voxel units.
        connectivity: of the erosion structure (medpy's default 1 = face neighbours).

    Returns:
        ``(d_pred_to_gt, d_gt_to_pred)``: float64 arrays, one distance per surface voxel of the
        prediction (to the ground-truth surface) and of the ground truth (to the prediction surface).

    Raises:
        ValueError: shapes differ, bad spacing, or either mask is empty (medpy raises RuntimeError).
    """
    a = np.atleast_1d(np.asarray(pred_mask).astype(bool, copy=False))
    b = np.atleast_1d(np.asarray(gt_mask).astype(bool, copy=False))
    if a.shape != b.shape:
        raise ValueError(f"prediction shape {a.shape} != ground truth shape {b.shape}")
    sp = _normalize_spacing(spacing, a.ndim)
    if not a.any():
        raise ValueError("the prediction mask is empty: surface distances are undefined")
    if not b.any():
        raise ValueError("the ground-truth mask is empty: surface distances are undefined")
    box = _union_box(a, b, pad=1)
    a, b = a[box], b[box]
    sa, sb = _surface(a, connectivity), _surface(b, connectivity)
    d_ab = distance_transform_edt(~sb, sampling=sp)[sa]
    d_ba = distance_transform_edt(~sa, sampling=sp)[sb]
    return d_ab, d_ba


def _from_distances(d_ab: np.ndarray, d_ba: np.ndarray) -> dict[str, float]:
    both = np.concatenate([d_ab, d_ba])
    return {
        "hd95": float(np.percentile(both, 95)),
        "asd": float(d_ab.mean()),
        "assd": float(both.mean()),
        "hd": float(both.max()),
    }


def _nan_distances() -> dict[str, float]:
    return {m: float("nan") for m in DISTANCE_METRICS}


def _medpy_boundary(d_ab: np.ndarray, d_ba: np.ndarray, tolerance: float) -> dict[str, float]:
    """medpy's four distances plus MASD (mean of the directed means) and NSD (the share of boundary
    voxels of both masks within ``tolerance`` of the other boundary, every voxel counted alike)."""
    near = int((d_ab <= tolerance).sum() + (d_ba <= tolerance).sum())
    return {
        **_from_distances(d_ab, d_ba),
        "masd": float(0.5 * (d_ab.mean() + d_ba.mean())),
        "nsd": near / (d_ab.size + d_ba.size),
    }


def distance_metrics(pred_mask: Any, gt_mask: Any, spacing: Spacing = None, connectivity: int = 1) -> dict[str, float]:
    """HD95, ASD (directed pred -> gt), ASSD and HD from one pair of surface-distance sets.

    Args:
        pred_mask: binary array (any ndim).
        gt_mask: binary array of the same shape.
        spacing: voxel size per axis, a scalar, or None (voxel units).
        connectivity: of the erosion structure (medpy's default 1).

    Returns:
        ``{"hd95", "asd", "assd", "hd"}`` as floats; all NaN when either mask is empty.
    """
    a = np.asarray(pred_mask).astype(bool, copy=False)
    b = np.asarray(gt_mask).astype(bool, copy=False)
    if a.shape != b.shape:
        raise ValueError(f"prediction shape {a.shape} != ground truth shape {b.shape}")
    if not a.any() or not b.any():
        _normalize_spacing(spacing, max(a.ndim, 1))
        return _nan_distances()
    return _from_distances(*surface_distances(a, b, spacing, connectivity))


def hd95(pred_mask: Any, gt_mask: Any, spacing: Spacing = None, connectivity: int = 1) -> float:
    """95th percentile of the symmetric surface distance (``medpy.metric.binary.hd95``); NaN if a mask is empty."""
    return distance_metrics(pred_mask, gt_mask, spacing, connectivity)["hd95"]


def asd(pred_mask: Any, gt_mask: Any, spacing: Spacing = None, connectivity: int = 1) -> float:
    """Directed mean surface distance prediction -> ground truth (``medpy.metric.binary.asd``); NaN if empty."""
    return distance_metrics(pred_mask, gt_mask, spacing, connectivity)["asd"]


def assd(pred_mask: Any, gt_mask: Any, spacing: Spacing = None, connectivity: int = 1) -> float:
    """Mean of both directed surface-distance sets pooled (``medpy.metric.binary.assd`` 0.5); NaN if empty."""
    return distance_metrics(pred_mask, gt_mask, spacing, connectivity)["assd"]


def hd(pred_mask: Any, gt_mask: Any, spacing: Spacing = None, connectivity: int = 1) -> float:
    """Hausdorff distance, the maximum surface distance (``medpy.metric.binary.hd``); NaN if empty."""
    return distance_metrics(pred_mask, gt_mask, spacing, connectivity)["hd"]


# --------------------------------------------------------------------------------------------
# Per-case rows
# --------------------------------------------------------------------------------------------
def _check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol '{protocol}', expected one of {PROTOCOLS}")
    return protocol


def _paper_slice_distances(pm: np.ndarray, gm: np.ndarray) -> dict[str, float]:
    """Mean over the slices (axis 0) of the 2D distances in pixels, 0 where a slice mask is empty.

    MASD and NSD are not part of the papers' protocol: NaN.
    """
    n = pm.shape[0]
    sums = dict.fromkeys(DISTANCE_METRICS, 0.0)
    both = pm.reshape(n, -1).any(axis=1) & gm.reshape(n, -1).any(axis=1)
    for s in np.flatnonzero(both):
        for m, v in _from_distances(*surface_distances(pm[s], gm[s])).items():
            sums[m] += v
    out = {m: (v / n if n else float("nan")) for m, v in sums.items()}
    return {m: out.get(m, float("nan")) for m in BOUNDARY_METRICS}


def _volume_boundary(
    pm: np.ndarray, gm: np.ndarray, spacing: Spacing, distances: str, tolerance: float
) -> dict[str, float]:
    """The boundary metrics of one class of one volume (``standard`` protocol).

    Empty masks follow Metrics Reloaded: both empty -> NSD 1 (and, ``surface``, distances 0, a
    perfect match); one empty -> NSD 0 and the distances NaN (undefined; counted, never hidden).
    ``medpy`` keeps its earlier NaN distances when both are empty.
    """
    a_empty, b_empty = not pm.any(), not gm.any()
    if a_empty or b_empty:
        both = a_empty and b_empty
        dist = dict.fromkeys(
            ("hd95", "asd", "assd", "masd", "hd"), 0.0 if both and distances == "surface" else float("nan")
        )
        return {**dist, "nsd": 1.0 if both else 0.0}
    if distances == "medpy":
        return _medpy_boundary(*surface_distances(pm, gm, spacing), tolerance)
    sp = _normalize_spacing(spacing, pm.ndim)
    sp_t = tuple(sp.tolist()) if sp is not None else (1.0,) * pm.ndim
    return surface_metrics(directed_surface_distances(pm, gm, sp_t), tolerance)


def _class_boxes(p: np.ndarray, g: np.ndarray, k: int) -> list[tuple[slice, ...] | None]:
    """Per foreground class, the bounding box of its voxels in either array (None: in neither).

    One ``find_objects`` pass per array; the ``surface`` boundary metrics of a class need nothing
    outside its box (every boundary element of both masks lies inside it).
    """
    boxes: list[tuple[slice, ...] | None] = []
    for bp, bg in zip(find_objects(p, max_label=k - 1), find_objects(g, max_label=k - 1)):
        if bp is None or bg is None:
            boxes.append(bp or bg)
        else:
            boxes.append(tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(bp, bg)))
    return boxes


def _class_row(
    c: int, name: str, counts: np.ndarray, dsc: float, jc: float, dist: Mapping[str, float], n_slices: int
) -> dict[str, Any]:
    """One row of ``case_metrics``."""
    tp, fp, fn = (int(v) for v in counts)
    return {
        "class_index": c,
        "class_name": name,
        "dsc": float(dsc),
        "jc": float(jc),
        **{m: dist[m] for m in BOUNDARY_METRICS},
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "gt_empty": tp + fn == 0,
        "pred_empty": tp + fp == 0,
        "n_slices": n_slices,
    }


def _check_case(pred: Any, gt: Any, class_names: Sequence[str], protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """The two label arrays, checked (classes, shapes, 2D/3D); paper 2D slices get a slice axis."""
    k = len(class_names)
    if k < 2:
        raise ValueError("class_names must list the background and at least one foreground class")
    p = _as_labels(pred, k, "prediction")
    g = _as_labels(gt, k, "ground truth")
    if p.shape != g.shape:
        raise ValueError(f"prediction shape {p.shape} != ground truth shape {g.shape}")
    if p.ndim < 2:
        raise ValueError(f"expected a 2D or 3D label array, got shape {p.shape}")
    if protocol == "paper" and p.ndim == 2:
        p, g = p[None], g[None]
    return p, g


def case_metrics(
    pred: Any,
    gt: Any,
    class_names: Sequence[str],
    spacing: Spacing = None,
    protocol: str = "standard",
    distances: str | None = None,
    nsd_tolerance: float | Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """One row of metrics per foreground class for one case.

    ``standard``: 3D DSC/JC from the case's counts; boundary metrics in mm with ``spacing``, by the
    ``surface`` definition (``medssl.evaluation.surface``: directed HD95, area-weighted boundary
    elements) or the ``medpy`` one (pooled HD95, every boundary voxel alike), empty masks as
    ``_volume_boundary`` says. ``paper``: the row's DSC/JC are the case's pooled values (the sums
    over its slices = its 3D counts; the test-set pooling is done by ``summarize`` from ``tp``,
    ``fp``, ``fn``); HD95/ASD/ASSD/HD are medpy's mean over the case's 2D slices (axis 0) in pixels,
    0 on slices where either mask is empty, so that ``summarize`` recovers the all-slice mean by
    weighting with ``n_slices``; MASD and NSD are NaN.

    Args:
        pred: predicted labels ``(D, H, W)`` (or ``(H, W)``: one slice), integers ``0..K-1``.
        gt: ground-truth labels, same shape.
        class_names: K names, background first (class 0 gets no row).
        spacing: voxel size ``(sz, sy, sx)`` in mm (standard only; paper works in pixels).
        protocol: ``"standard"`` or ``"paper"``.
        distances: ``"surface"``, ``"medpy"`` or None (the protocol's default, ``distance_definition``).
        nsd_tolerance: NSD tolerance in mm, one value or per class name (``resolve_nsd_tolerance``).

    Returns:
        K-1 dicts with keys ``class_index, class_name, dsc, jc, hd95, asd, assd, masd, hd, nsd, tp,
        fp, fn, gt_empty, pred_empty, n_slices`` (the caller adds ``case_id``). ``gt_empty``/
        ``pred_empty`` refer to the whole case; ``n_slices`` is the number of slices scored (paper)
        or along axis 0 (standard).

    Raises:
        ValueError: unknown protocol or definition, shape mismatch, labels outside the classes, bad
            spacing or NSD tolerance.
    """
    definition, tolerances = distance_definition(protocol, distances), resolve_nsd_tolerance(nsd_tolerance, class_names)
    p, g = _check_case(pred, gt, class_names, protocol)
    if protocol == "standard":
        _normalize_spacing(spacing, p.ndim)
    k = len(class_names)
    counts = confusion_counts(p, g, k)
    dsc, jc = dice_jaccard_from_counts(counts)
    n_slices = int(p.shape[0]) if p.ndim == 3 else 1
    boxes = _class_boxes(p, g, k) if definition == "surface" else []
    rows: list[dict[str, Any]] = []
    for c in range(1, k):
        name = str(class_names[c])
        # surface: the class's bounding box is enough (and much faster); medpy: whole masks, as before
        box = (boxes[c - 1] or (slice(0, 0),) * p.ndim) if boxes else (slice(None),) * p.ndim
        pm, gm = p[box] == c, g[box] == c
        if protocol == "paper":
            dist = _paper_slice_distances(pm, gm)
        else:
            dist = _volume_boundary(pm, gm, spacing, definition, tolerances[name])
        rows.append(_class_row(c, name, counts[c], dsc[c], jc[c], dist, n_slices))
    return rows


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------
def _stats(values: np.ndarray) -> tuple[float, float, int, int]:
    """(nan-mean, nan-std (ddof 0), number of finite values, number of NaN values)."""
    v = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(v)
    n_valid = int(ok.sum())
    if n_valid == 0:
        return float("nan"), float("nan"), 0, int(v.size)
    return float(v[ok].mean()), float(v[ok].std()), n_valid, int(v.size - n_valid)


def _nanmean_rows(matrix: np.ndarray) -> np.ndarray:
    """Row-wise mean ignoring NaN; NaN where a row has no finite value (no warning)."""
    ok = ~np.isnan(matrix)
    n = ok.sum(axis=1)
    s = np.where(ok, matrix, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def summarize(rows: Iterable[Mapping[str, Any]], protocol: str = "standard") -> list[dict[str, Any]]:
    """Per-class summaries and a ``mean`` row over the foreground classes, from per-case rows.

    Every summary row has ``class_index`` (None for the mean row), ``class_name``, ``n_cases``,
    summed ``tp, fp, fn, n_slices``, ``n_gt_empty``, ``n_pred_empty`` and, for each metric ``m`` in
    ``METRIC_NAMES``: ``m_mean``, ``m_std`` (population std over cases), ``m_n_valid`` (cases with
    a value) and ``m_n_empty`` (cases with NaN, i.e. an empty mask).

    ``standard``: ``m_mean``/``m_std`` over cases, NaN skipped. Mean row: for each case the mean
    over its foreground classes (NaN skipped), then mean/std over cases.
    ``paper``: ``dsc_mean``/``jc_mean`` are POOLED (``2 sum tp / (2 sum tp + sum fp + sum fn)``);
    distance means are the slice-weighted means ``sum(m_i n_i) / sum(n_i)`` (= the mean over all
    test slices); the mean row averages these per-class values over the foreground classes (the
    papers' numbers). ``m_std`` is still the std over cases of the per-case values.

    Args:
        rows: rows of ``case_metrics`` with a ``case_id`` added (``MetricAccumulator.rows()``).
        protocol: ``"standard"`` or ``"paper"``.

    Returns:
        One dict per foreground class (ascending index), then the mean row.

    Raises:
        ValueError: unknown protocol, rows without ``case_id`` or a class twice in one case.
    """
    _check_protocol(protocol)
    rows = list(rows)
    if not rows:
        return []
    case_ids, names = _index_rows(rows)
    classes = sorted(names)
    vals, ints, present = _case_class_matrices(rows, case_ids, classes)
    out = [_class_summary(c, names[c], j, vals, ints, present, protocol) for j, c in enumerate(classes)]
    out.append(_mean_summary(len(case_ids), out, vals, ints, protocol))
    return out


# --- the steps of summarize() ---------------------------------------------------------------
_COUNT_KEYS: tuple[str, ...] = ("tp", "fp", "fn", "n_slices", "gt_empty", "pred_empty")


def _index_rows(rows: Sequence[Mapping[str, Any]]) -> tuple[list[Any], dict[int, str]]:
    """Case ids in first-seen order and class index -> name; every row needs a ``case_id`` and no
    case may hold a class twice (``ValueError``)."""
    case_ids: list[Any] = []
    known: set[Any] = set()
    seen: set[tuple[Any, int]] = set()
    names: dict[int, str] = {}
    for r in rows:
        if "case_id" not in r:
            raise ValueError("summarize needs a 'case_id' in every row")
        key = (r["case_id"], int(r["class_index"]))
        if key in seen:
            raise ValueError(f"case '{r['case_id']}' has class {key[1]} twice")
        seen.add(key)
        if r["case_id"] not in known:
            known.add(r["case_id"])
            case_ids.append(r["case_id"])
        names.setdefault(int(r["class_index"]), str(r["class_name"]))
    return case_ids, names


def _case_class_matrices(
    rows: Sequence[Mapping[str, Any]], case_ids: Sequence[Any], classes: Sequence[int]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """``(metric values, counts, present)`` as ``(cases, classes)`` matrices (NaN / 0 / False where
    a case has no row for a class)."""
    ci = {c: i for i, c in enumerate(case_ids)}
    kj = {c: j for j, c in enumerate(classes)}
    shape = (len(case_ids), len(classes))
    vals = {m: np.full(shape, np.nan) for m in METRIC_NAMES}
    ints = {m: np.zeros(shape, dtype=np.int64) for m in _COUNT_KEYS}
    present = np.zeros(shape, dtype=bool)
    for r in rows:
        i, j = ci[r["case_id"]], kj[int(r["class_index"])]
        present[i, j] = True
        for m in METRIC_NAMES:
            vals[m][i, j] = float(r[m]) if r.get(m) is not None else np.nan
        for m in ints:
            ints[m][i, j] = int(r[m])
    return vals, ints, present


def _counts_row(ints: Mapping[str, np.ndarray], sel_cases: np.ndarray, cols: slice | int) -> dict[str, Any]:
    """Summed TP/FP/FN, slices and empty-mask counts of the selected cases and classes."""
    return {
        "tp": int(ints["tp"][sel_cases, cols].sum()),
        "fp": int(ints["fp"][sel_cases, cols].sum()),
        "fn": int(ints["fn"][sel_cases, cols].sum()),
        "n_slices": int(ints["n_slices"][sel_cases, cols].sum()),
        "n_gt_empty": int(ints["gt_empty"][sel_cases, cols].sum()),
        "n_pred_empty": int(ints["pred_empty"][sel_cases, cols].sum()),
    }


def _paper_pooled(
    counts: Mapping[str, Any], vals: Mapping[str, np.ndarray], ints: Mapping[str, np.ndarray], sel: np.ndarray, j: int
) -> dict[str, float]:
    """The papers' per-class values: DSC/JC pooled from the summed counts, distances weighted by
    each case's number of slices (the mean over all test slices)."""
    d, jcv = dice_jaccard_from_counts([counts["tp"], counts["fp"], counts["fn"]])
    pooled = {"dsc": float(d), "jc": float(jcv)}
    w = ints["n_slices"][sel, j].astype(np.float64)
    for m in BOUNDARY_METRICS:
        v = vals[m][sel, j]
        ok = ~np.isnan(v)
        pooled[m] = float((v[ok] * w[ok]).sum() / w[ok].sum()) if w[ok].sum() > 0 else float("nan")
    return pooled


def _class_summary(
    c: int,
    name: str,
    j: int,
    vals: Mapping[str, np.ndarray],
    ints: Mapping[str, np.ndarray],
    present: np.ndarray,
    protocol: str,
) -> dict[str, Any]:
    """The summary row of foreground class ``c`` (column ``j``)."""
    sel = present[:, j]
    row: dict[str, Any] = {"class_index": c, "class_name": name, "n_cases": int(sel.sum())}
    row.update(_counts_row(ints, sel, j))
    pooled = _paper_pooled(row, vals, ints, sel, j) if protocol == "paper" else {}
    for m in METRIC_NAMES:
        mean, std, n_valid, n_empty = _stats(vals[m][sel, j])
        if protocol == "paper":
            mean = pooled[m]
        row.update({f"{m}_mean": mean, f"{m}_std": std, f"{m}_n_valid": n_valid, f"{m}_n_empty": n_empty})
    return row


def _mean_summary(
    n_cases: int,
    class_rows: Sequence[Mapping[str, Any]],
    vals: Mapping[str, np.ndarray],
    ints: Mapping[str, np.ndarray],
    protocol: str,
) -> dict[str, Any]:
    """The ``mean`` row: per-case means over the foreground classes (``standard``), or the mean of
    the classes' pooled values (``paper``); the std is over cases in both."""
    all_cases = np.ones(n_cases, dtype=bool)
    row: dict[str, Any] = {"class_index": None, "class_name": "mean", "n_cases": n_cases}
    row.update(_counts_row(ints, all_cases, slice(None)))
    for m in METRIC_NAMES:
        per_case = _nanmean_rows(vals[m])
        mean, std, n_valid, n_empty = _stats(per_case)
        if protocol == "paper":
            pm = np.asarray([r[f"{m}_mean"] for r in class_rows], dtype=np.float64)
            mean = float(pm[~np.isnan(pm)].mean()) if np.any(~np.isnan(pm)) else float("nan")
        row.update({f"{m}_mean": mean, f"{m}_std": std, f"{m}_n_valid": n_valid, f"{m}_n_empty": n_empty})
    return row


class MetricAccumulator:
    """Collects per-case rows and summarises them (MONAI style: buffer, aggregate, reset).

    Example::

        acc = MetricAccumulator(("background", "liver"), protocol="standard")
        for case_id, pred, gt, spacing in cases:
            acc.add(case_id, pred, gt, spacing)
        table = acc.summary()
        acc.reset()

    Args:
        class_names: K names, background first.
        protocol: ``"standard"`` or ``"paper"``.
        distances: ``"surface"``, ``"medpy"`` or None (the protocol's default).
        nsd_tolerance: NSD tolerance in mm, one value or per class name (default 2 mm).
    """

    def __init__(
        self,
        class_names: Sequence[str],
        protocol: str = "standard",
        distances: str | None = None,
        nsd_tolerance: float | Mapping[str, float] | None = None,
    ) -> None:
        self.class_names = tuple(str(c) for c in class_names)
        self.protocol = _check_protocol(protocol)
        if len(self.class_names) < 2:
            raise ValueError("class_names must list the background and at least one foreground class")
        self.distances = distance_definition(protocol, distances)
        self.nsd_tolerance = resolve_nsd_tolerance(nsd_tolerance, self.class_names)
        self._rows: list[dict[str, Any]] = []
        self._case_ids: set[str] = set()

    def add(self, case_id: str, pred: Any, gt: Any, spacing: Spacing = None) -> list[dict[str, Any]]:
        """Score one case and buffer its rows.

        Args:
            case_id: unique id of the case (a repeated id raises ValueError).
            pred: predicted labels ``(D, H, W)`` or ``(H, W)``.
            gt: ground-truth labels of the same shape.
            spacing: voxel size ``(sz, sy, sx)`` in mm (ignored by the paper protocol).

        Returns:
            The case's rows (with ``case_id``).
        """
        if case_id in self._case_ids:
            raise ValueError(f"case '{case_id}' was already added")
        scored = case_metrics(pred, gt, self.class_names, spacing, self.protocol, self.distances, self.nsd_tolerance)
        rows = [{"case_id": case_id, **r} for r in scored]
        self._case_ids.add(case_id)
        self._rows.extend(rows)
        return [dict(r) for r in rows]

    def rows(self) -> list[dict[str, Any]]:
        """A copy of every buffered row, in the order the cases were added."""
        return [dict(r) for r in self._rows]

    def summary(self) -> list[dict[str, Any]]:
        """``summarize(self.rows(), self.protocol)``."""
        return summarize(self._rows, self.protocol)

    aggregate = summary

    def reset(self) -> None:
        """Forget every buffered case."""
        self._rows.clear()
        self._case_ids.clear()

    def __len__(self) -> int:
        return len(self._case_ids)
