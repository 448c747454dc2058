"""Report figures (PNG): DSC against label fraction, qualitative overlays, training curves.

Figures are drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas, never
through ``pyplot``, so no global backend or figure state is touched.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..errors import DataError
from ..evaluation.representation import DIAGNOSTICS
from .stats import case_dsc
from .tables import (
    NON_LOSS_COLUMNS,
    AggregateRow,
    PretrainRecord,
    RunRecord,
    labels_sort_key,
    method_display_name,
    method_sort_key,
    read_csv_rows,
    to_float,
    write_csv,
)

__all__ = [
    "CLASS_COLOURS",
    "VALIDATION_CURVE_COLUMNS",
    "CurveSeries",
    "FigureResult",
    "plot_dsc_vs_labels",
    "plot_pretrain_curves",
    "plot_pretrain_diagnostics",
    "plot_qualitative",
    "plot_training_curves",
    "plot_validation_curves",
    "read_validation_curves",
    "select_slices",
    "slugify",
    "validation_curve_series",
]

#: RGB colours of classes 1, 2, ... (cycled), distinguishable on a grey image.
CLASS_COLOURS: tuple[tuple[float, float, float], ...] = (
    (0.90, 0.10, 0.10),
    (0.10, 0.75, 0.10),
    (0.15, 0.35, 1.00),
    (1.00, 0.85, 0.00),
    (0.95, 0.00, 0.95),
    (0.00, 0.90, 0.90),
    (1.00, 0.50, 0.00),
    (0.60, 0.30, 0.90),
)


@dataclass
class FigureResult:
    """A written figure, or why it was not drawn.

    Attributes:
        path: the PNG, or None when nothing could be drawn.
        title: what it shows.
        notes: remarks (runs left out and why; what a drawn figure shows); the report lists them when
            nothing was drawn.
        problems: what a drawn figure shows in place of damaged inputs (an unreadable prediction, a
            missing image); the report always lists them.
    """

    path: Path | None
    title: str
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def slugify(*parts: str) -> str:
    """A file-name-safe lowercase name from parts (``("paper", "ACDC", "10%")`` -> ``paper_acdc_10pct``)."""
    text = "_".join(str(p).replace("%", "pct") for p in parts)
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "figure"


def _save(fig: Figure, path: Path, dpi: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
    return path


def plot_dsc_vs_labels(
    rows: Sequence[AggregateRow], path: Path, title: str | None = None, dpi: int = 120
) -> FigureResult:
    """DSC (mean over seeds, error bars = std over seeds) against label fraction, one line per method.

    Args:
        rows: aggregate rows of ONE dataset and protocol (values in %; see
            :func:`~medssl.reporting.tables.aggregate_runs`).
        path: PNG to write.
        title: figure title (default names the dataset and protocol).
        dpi: resolution.

    Returns:
        A :class:`FigureResult`.
    """
    if not rows:
        return FigureResult(None, title or "DSC vs labels", ["no runs"])
    labels = sorted({r.labels for r in rows}, key=labels_sort_key)
    xpos = {lab: i for i, lab in enumerate(labels)}
    methods = sorted({r.method for r in rows}, key=method_sort_key)
    title = title or f"{rows[0].dataset}: DSC vs labelled fraction ({rows[0].protocol} protocol)"
    fig = Figure(figsize=(max(5.0, 1.6 * len(labels) + 3.0), 4.2))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.25
    cmap = _method_colours(methods)
    for i, m in enumerate(methods):
        mrows = sorted((r for r in rows if r.method == m), key=lambda r: labels_sort_key(r.labels))
        offset = (i - (len(methods) - 1) / 2) * (width / max(1, len(methods) - 1)) if len(methods) > 1 else 0.0
        xs = [xpos[r.labels] + offset for r in mrows]
        ys = [r.metrics["dsc"].mean for r in mrows]
        es = [r.metrics["dsc"].std if math.isfinite(r.metrics["dsc"].std) else 0.0 for r in mrows]
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, linewidth=1.5, label=method_display_name(m), color=cmap[m])
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels)
    ax.set_xlim(-0.5, len(labels) - 0.5)
    ax.set_xlabel("Labelled training data")
    ax.set_ylabel("DSC (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, title="Method")
    return FigureResult(_save(fig, path, dpi), title)


def _method_colours(methods: Sequence[str]) -> dict[str, tuple[float, ...]]:
    from matplotlib import colormaps

    cmap = colormaps["tab20"] if len(methods) > 10 else colormaps["tab10"]
    return {m: tuple(cmap(i % cmap.N)) for i, m in enumerate(methods)}


def select_slices(label: np.ndarray, n: int) -> list[int]:
    """Indices of the ``n`` slices with the most foreground voxels, in increasing z order.

    Args:
        label: (D, H, W) label volume (0 = background).
        n: slices wanted.

    Returns:
        Up to ``n`` slice indices (ties broken towards lower z); slices without foreground only when
        the volume has fewer foreground slices than ``n`` and at least one (never when all are empty:
        then the middle slice).
    """
    counts = (np.asarray(label) > 0).reshape(label.shape[0], -1).sum(axis=1)
    if counts.max(initial=0) == 0:
        return [label.shape[0] // 2]
    order = np.lexsort((np.arange(counts.size), -counts))  # largest count first, then lower z
    chosen = [int(i) for i in order[:n] if counts[i] > 0]
    return sorted(chosen)


def _load_volume(path: Path, like: tuple[int, ...] | None = None) -> np.ndarray:
    arr = np.load(path, mmap_mode="r")
    if arr.ndim == 4 and like is not None:
        if tuple(arr.shape[1:]) == tuple(like):
            arr = arr[0]
        elif arr.shape[0] == like[0] and tuple(arr.shape[2:]) == tuple(like[1:]):
            arr = arr[:, 0]
    return arr


def _window(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img, dtype=np.float32)
    lo, hi = np.percentile(img, [1, 99]) if img.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = float(img.min()), float(img.max()) if img.size else 1.0
    return np.clip((img - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)


def _overlay(lab: np.ndarray, alpha: float) -> np.ndarray:
    rgba = np.zeros(lab.shape + (4,), dtype=np.float32)
    for k in np.unique(lab):
        if k <= 0:
            continue
        rgba[lab == k] = (*CLASS_COLOURS[(int(k) - 1) % len(CLASS_COLOURS)], alpha)
    return rgba


def plot_qualitative(
    runs: Sequence[RunRecord],
    path: Path,
    n_slices: int = 3,
    max_cases: int = 20,
    alpha: float = 0.45,
    dpi: int = 110,
    title: str | None = None,
) -> FigureResult:
    """Ground truth and every method's prediction on the same slices of one shared test case.

    One run per method (the lowest seed) is shown. The case is the one, among test cases with a
    prediction in every run (the first ``max_cases`` by id), whose ground truth has the largest
    single-slice foreground; the rows are its ``n_slices`` slices with the most foreground. The
    image is grey (1-99 percentile window); classes are translucent colours; column titles give the
    method and its DSC on that case (from ``metrics.csv``).

    Args:
        runs: runs of ONE dataset / label fraction / protocol, sharing a prepared store
            (``run.data`` with ``images/{case}.npy`` and ``labels/{case}.npy``, (D, H, W)).
        path: PNG to write.
        n_slices: rows.
        max_cases: shared cases examined to choose the case.
        alpha: overlay opacity.
        dpi: resolution.
        title: figure title.

    Returns:
        A :class:`FigureResult` (``path`` None with a note when the store or predictions are missing).
    """
    notes: list[str] = []
    by_method = _lowest_seed_runs(runs)
    methods = sorted(by_method, key=method_sort_key)
    name = title or "qualitative"
    store = next(
        (r.data for r in (by_method[m] for m in methods) if r.data is not None and (r.data / "labels").is_dir()), None
    )
    if store is None:
        return FigureResult(None, name, ["no prepared store with labels/ found in run.json['data']"])
    shared = set.intersection(*(by_method[m].prediction_ids() for m in methods)) if methods else set()
    shared = {c for c in shared if (store / "labels" / f"{c}.npy").is_file()}
    if not shared:
        return FigureResult(None, name, ["no test case with a prediction in every run and a label in the store"])
    case, label = _largest_foreground_case(store, sorted(shared)[:max_cases])
    zs = select_slices(label, n_slices)
    problems: list[str] = []
    image = _case_image(store, case, label.shape, problems)
    preds = _load_predictions(by_method, methods, case, label.shape, problems)
    heads = ["Ground truth"]
    for m in methods:
        dsc = case_dsc(by_method[m]).get(case, math.nan)
        heads.append(method_display_name(m) + (f"\nDSC {dsc * 100:.1f}" if math.isfinite(dsc) else ""))
    fig = _panel_grid(image, [label, *(preds[m] for m in methods)], heads, zs, alpha)
    class_names = next((by_method[m].class_names for m in methods if by_method[m].class_names), [])
    _class_legend(fig, label, [p[zs] for p in preds.values() if p is not None], class_names)
    seeds = ", ".join(f"{method_display_name(m)}: seed {by_method[m].seed}" for m in methods)
    fig.suptitle(f"{name} — case {case}", fontsize=10)
    notes.append(f"case {case}, slices {zs}; {seeds}")
    return FigureResult(_save(fig, path, dpi), name, notes, problems)


def _lowest_seed_runs(runs: Sequence[RunRecord]) -> dict[str, RunRecord]:
    """One run per method: the one with the lowest seed."""
    by_method: dict[str, RunRecord] = {}
    for r in sorted(runs, key=lambda r: r.seed):
        by_method.setdefault(r.method, r)
    return by_method


def _case_image(store: Path, case: str, shape: tuple[int, ...], notes: list[str]) -> np.ndarray:
    """The store's image of ``case``; zeros (with a note) when it is missing or not of ``shape``."""
    img_path = store / "images" / f"{case}.npy"
    image = _load_volume(img_path, shape) if img_path.is_file() else None
    if image is None or tuple(image.shape) != shape:
        notes.append(f"image of {case} missing or of another shape; showing labels on black")
        image = np.zeros(shape, dtype=np.float32)
    return image


def _panel_grid(
    image: np.ndarray, overlays: Sequence[np.ndarray | None], heads: Sequence[str], zs: Sequence[int], alpha: float
) -> Figure:
    """One row per slice ``z``, one column per overlay volume (None: the slice alone), titled ``heads``."""
    h, w = image.shape[1:]
    cell = 2.4
    fig = Figure(figsize=(cell * len(overlays) * max(0.6, w / max(h, 1)), cell * len(zs) + 1.2))
    axes = fig.subplots(len(zs), len(overlays), squeeze=False)
    for i, z in enumerate(zs):
        base = _window(image[z])
        for j, vol in enumerate(overlays):
            lab = None if vol is None else np.asarray(vol[z])
            _draw_panel(axes[i][j], base, lab, alpha, heads[j] if i == 0 else None)
        axes[i][0].set_ylabel(f"slice {z}", fontsize=9)
    return fig


def _largest_foreground_case(store: Path, case_ids: Sequence[str]) -> tuple[str, np.ndarray]:
    """The case (first by id on ties) whose label has the largest single-slice foreground, and that label."""
    best_case, best_count, best_label = None, -1, None
    for cid in case_ids:
        lab = np.load(store / "labels" / f"{cid}.npy", mmap_mode="r")
        cnt = int((lab > 0).reshape(lab.shape[0], -1).sum(axis=1).max(initial=0))
        if cnt > best_count:
            best_case, best_count, best_label = cid, cnt, lab
    assert best_case is not None and best_label is not None  # case_ids is not empty
    return best_case, np.asarray(best_label)


def _load_predictions(
    by_method: dict[str, RunRecord], methods: Sequence[str], case: str, shape: tuple[int, ...], notes: list[str]
) -> dict[str, np.ndarray | None]:
    """Each method's prediction of ``case`` (memory-mapped), None (with a note) where it is unreadable or its
    shape is not ``shape``."""
    preds: dict[str, np.ndarray | None] = {}
    for m in methods:
        path = by_method[m].path / "predictions" / f"{case}.npy"
        try:
            p = np.load(path, mmap_mode="r")
        except (OSError, ValueError, EOFError) as e:  # truncated or damaged: the figure goes on without it
            notes.append(f"{m}: {path}: unreadable prediction ({' '.join(str(e).split())[:80]})")
            preds[m] = None
            continue
        if tuple(p.shape) != shape:
            notes.append(f"{m}: prediction shape {tuple(p.shape)} != label shape {shape}")
            preds[m] = None
        else:
            preds[m] = p
    return preds


def _draw_panel(ax: Any, base: np.ndarray, lab: np.ndarray | None, alpha: float, head: str | None) -> None:
    """One panel: the windowed slice, the label overlay when given, the column title on the first row."""
    ax.imshow(base, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    if lab is not None:
        ax.imshow(_overlay(lab, alpha), interpolation="nearest")
    if head is not None:
        ax.set_title(head, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _class_legend(fig: Figure, label: np.ndarray, preds: Sequence[np.ndarray], class_names: Sequence[str]) -> None:
    """A legend of the class colours, up to the largest class in the label or the shown predictions."""
    k_max = int(max([label.max()] + [int(np.max(p)) for p in preds]))
    handles = [
        Patch(
            color=CLASS_COLOURS[(k - 1) % len(CLASS_COLOURS)],
            label=class_names[k - 1] if k - 1 < len(class_names) else f"class {k}",
        )
        for k in range(1, k_max + 1)
    ]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)


def _series(rows: Sequence[dict[str, str]], x_key: str, y_key: str) -> dict[float, float]:
    out: dict[float, float] = {}
    for r in rows:
        x, y = to_float(r.get(x_key)), to_float(r.get(y_key))
        if math.isfinite(x) and math.isfinite(y):
            out[x] = y
    return out


def _mean_band(series: Sequence[dict[float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean and sample std over series measured at different x: each series is linearly
    interpolated onto the union of all x values, inside its own range only (never extrapolated).

    Seeds whose epochs differ in length are scored at different steps (e.g. 50 and 52); a plain
    per-x mean would alternate between the seeds scored there and draw a saw-tooth.

    Returns:
        ``(xs, mean, std, n)``: n = series whose range covers x; std NaN where n < 2.
    """
    xs = np.array(sorted(set().union(*[s.keys() for s in series])), dtype=float)
    mat = np.full((len(series), len(xs)), np.nan)
    for i, s in enumerate(series):
        sx = np.array(sorted(s), dtype=float)
        inside = (xs >= sx[0]) & (xs <= sx[-1])
        mat[i, inside] = np.interp(xs[inside], sx, [s[x] for x in sx])
    cnt = np.isfinite(mat).sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(mat, axis=0)
        std = np.where(cnt > 1, np.nanstd(mat, axis=0, ddof=1), np.nan)
    return xs, mean, std, cnt


def _full_band(series: Sequence[dict[float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_mean_band` kept only at the x values every series covers.

    Where only some seeds have a score (before the first validation of seeds with longer epochs, or
    after the end of shorter runs) the mean would be over fewer seeds than the legend's ``n``.
    """
    xs, mean, std, n = _mean_band(series)
    keep = n == len(series)
    return xs[keep], mean[keep], std[keep]


def _draw_band(ax: Any, xs: np.ndarray, mean: np.ndarray, std: np.ndarray, colour: Any, label: str) -> None:
    """A mean line with markers at its points and a ± std band where the std is known."""
    ax.plot(xs, mean, label=label, color=colour, linewidth=1.5, marker="o" if len(xs) <= 25 else None, markersize=3)
    if np.isfinite(std).any():
        ax.fill_between(xs, mean - np.nan_to_num(std), mean + np.nan_to_num(std), color=colour, alpha=0.2)


def _staggered_note(by_method: dict[str, list[RunRecord]], x_key: str) -> str | None:
    """A footnote when the seeds of a method validated at different steps (epochs of other lengths)."""
    firsts: set[float] = set()
    for rs in by_method.values():
        starts = {min(s) for s in (_series(r.log_rows(), x_key, "val_dice") for r in rs) if s}
        if len(starts) > 1:
            firsts |= starts
    if not firsts:
        return None
    steps = ", ".join(f"{x:g}" for x in sorted(firsts))
    return (
        f"Seeds validated at different {x_key}s (first at {steps}: epochs of other lengths); each line is the mean "
        f"over all seeds, each seed interpolated between its own {x_key}s, where every seed has a score."
    )


def plot_training_curves(
    runs: Sequence[RunRecord], path: Path, title: str | None = None, dpi: int = 110
) -> FigureResult:
    """Training loss and validation Dice against step, one line per method (mean over seeds, band ± std).

    Against the optimiser step (the epoch where a log has no step): seeds with different numbers of
    labelled slices have epochs of different lengths. Seeds scored at different steps are aligned
    by linear interpolation (:func:`_mean_band`), and a method's line is drawn only where every one
    of its seeds has a value, so the legend's ``n`` holds at every point.

    Args:
        runs: runs of ONE dataset / label fraction / protocol with ``log.csv``
            (columns epoch, train_loss, val_dice, ...).
        path: PNG to write.
        title: figure title.
        dpi: resolution.

    Returns:
        A :class:`FigureResult` (``path`` None when no run has a log).
    """
    name = title or "training curves"
    by_method: dict[str, list[RunRecord]] = {}
    for r in runs:
        if r.log_rows():
            by_method.setdefault(r.method, []).append(r)
    if not by_method:
        return FigureResult(None, name, ["no log.csv"])
    methods = sorted(by_method, key=method_sort_key)
    colours = _method_colours(methods)
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    x_key = (
        "step" if all(_series(r.log_rows(), "step", "train_loss") for rs in by_method.values() for r in rs) else "epoch"
    )
    drawn = {"train_loss": False, "val_dice": False}
    for ax, key, ylabel in ((axes[0], "train_loss", "training loss"), (axes[1], "val_dice", "validation Dice")):
        for m in methods:
            series = [s for s in (_series(r.log_rows(), x_key, key) for r in by_method[m]) if s]
            xs, mean, std = _full_band(series) if series else (np.array([]),) * 3
            if len(xs):
                _draw_band(ax, xs, mean, std, colours[m], f"{method_display_name(m)} (n={len(series)})")
                drawn[key] = True
        ax.set_xlabel(x_key)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    if not any(drawn.values()):
        return FigureResult(None, name, ["no step logged a training loss or validation Dice"])
    if not drawn["val_dice"]:
        axes[1].text(0.5, 0.5, "no validation Dice logged", ha="center", va="center", transform=axes[1].transAxes)
    _finish_curves(fig, axes, name, _staggered_note(by_method, x_key))
    _write_validation_means(by_method, methods, path.with_suffix(".csv"))
    return FigureResult(_save(fig, path, dpi), name)


def _finish_curves(fig: Figure, axes: Any, name: str, footnote: str | None) -> None:
    """Titles, the shared method legend on the right and an optional footnote."""
    axes[0].set_title("Training loss")
    axes[1].set_title("Validation Dice")
    handles, labels = axes[0].get_legend_handles_labels()
    if not handles:
        handles, labels = axes[1].get_legend_handles_labels()
    fig.subplots_adjust(right=0.8, wspace=0.25)
    if handles:
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(0.81, 0.5), fontsize=8, title="Method")
    if footnote:
        fig.text(0.01, -0.04, footnote, fontsize=7, ha="left", va="top", wrap=True)
    fig.suptitle(name)


def _write_validation_means(by_method: dict[str, list[RunRecord]], methods: Sequence[str], path: Path) -> None:
    """The validation curve's numbers beside its figure: per method and step, mean and std over seeds
    (seeds scored at other steps interpolated, :func:`_mean_band`; n = seeds whose run covers the step)."""
    rows = []
    for m in methods:
        series = [s for s in (_series(r.log_rows(), "step", "val_dice") for r in by_method[m]) if s]
        if series:
            xs, mean, std, n = _mean_band(series)
            rows += [
                {
                    "method": method_display_name(m),
                    "step": int(x),
                    "val_dice_mean": f"{mu:.4f}",
                    "val_dice_std": "" if not np.isfinite(sd) else f"{sd:.4f}",
                    "n": k,
                }
                for x, mu, sd, k in zip(xs, mean, std, n)
            ]
    if rows:
        write_csv(path, ["method", "step", "val_dice_mean", "val_dice_std", "n"], rows)


#: the columns of a ``validation_curves.csv`` (``report/figures/curves_*.csv``, written beside each curve figure)
VALIDATION_CURVE_COLUMNS = ("method", "step", "val_dice_mean", "val_dice_std", "n")


@dataclass(frozen=True)
class CurveSeries:
    """One method's validation curve from a ``validation_curves.csv``, at the steps every seed covers.

    Attributes:
        method: the method's name as written in the file.
        steps: optimiser steps, increasing.
        mean, std: validation Dice over the seeds at each step (std NaN where unknown).
        n: seeds behind every point (the largest ``n`` the method has in the file).
        left_out: steps where fewer seeds had a score (left out of the line).
    """

    method: str
    steps: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    n: int
    left_out: tuple[int, ...]


def read_validation_curves(path: Path) -> list[dict[str, str]]:
    """The rows of a ``validation_curves.csv``.

    Raises:
        DataError: the file is missing or lacks one of :data:`VALIDATION_CURVE_COLUMNS`.
    """
    if not path.is_file():
        raise DataError(path, "no such file (a validation_curves.csv written by medssl report)")
    rows = read_csv_rows(path)
    missing = [c for c in VALIDATION_CURVE_COLUMNS if not rows or c not in rows[0]]
    if missing:
        raise DataError(
            path, f"no rows or missing column(s) {', '.join(missing)}; expected {', '.join(VALIDATION_CURVE_COLUMNS)}"
        )
    return rows


def validation_curve_series(rows: Sequence[dict[str, str]]) -> list[CurveSeries]:
    """Each method's curve, kept at the steps where all its seeds had a score.

    A ``validation_curves.csv`` row at a step where only some seeds had validated (seeds whose epochs
    end elsewhere validate first at a later step, e.g. 50 against 52) has a smaller ``n``; drawn
    on one line with the others it would mix a one-seed value into a curve labelled with all seeds.

    Args:
        rows: rows with the columns of :data:`VALIDATION_CURVE_COLUMNS`.

    Returns:
        One :class:`CurveSeries` per method, in the order the methods first appear.
    """
    by_method: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_method.setdefault(r["method"], []).append(r)
    out = []
    for m, rs in by_method.items():
        n_all = max(int(to_float(r["n"])) for r in rs)
        rs = sorted(rs, key=lambda r: to_float(r["step"]))
        kept = [r for r in rs if int(to_float(r["n"])) == n_all]
        out.append(
            CurveSeries(
                m,
                np.array([to_float(r["step"]) for r in kept]),
                np.array([to_float(r["val_dice_mean"]) for r in kept]),
                np.array([to_float(r["val_dice_std"]) for r in kept]),
                n_all,
                tuple(int(to_float(r["step"])) for r in rs if int(to_float(r["n"])) != n_all),
            )
        )
    return out


def plot_validation_curves(
    rows: Sequence[dict[str, str]], path: Path, title: str | None = None, dpi: int = 110
) -> FigureResult:
    """Validation Dice against optimiser step from a ``validation_curves.csv`` (mean ± std over seeds).

    Redraws a grid's validation curves from the numbers that ``medssl report`` writes beside its
    curve figure, when the runs' ``log.csv`` files are not at hand. Only the steps every seed of a
    method covers are drawn (:func:`validation_curve_series`); a footnote names the others.

    Args:
        rows: rows of :func:`read_validation_curves`.
        path: PNG to write.
        title: figure title.
        dpi: resolution.

    Returns:
        A :class:`FigureResult`; ``path`` None when no method has two steps to draw a line through.
    """
    name = title or "validation curves"
    curves = [c for c in validation_curve_series(rows) if len(c.steps) >= 2]
    if not curves:
        return FigureResult(None, name, ["no method has two steps that all its seeds scored: nothing to draw"])
    colours = _method_colours([c.method for c in curves])
    fig = Figure(figsize=(7.4, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    for c in curves:
        _draw_band(ax, c.steps, c.mean, c.std, colours[c.method], f"{method_display_name(c.method)} (n={c.n})")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("validation Dice")
    ax.set_title(name)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, title="Method (seeds)", loc="center left", bbox_to_anchor=(1.01, 0.5))
    left = sorted({s for c in curves for s in c.left_out})
    if left:
        fig.text(
            0.01,
            -0.02,
            f"Left out: step(s) {', '.join(map(str, left))}, where not every seed had validated yet "
            "(seeds whose epochs end elsewhere validate at other steps; the others are interpolated).",
            fontsize=7,
            ha="left",
            va="top",
            wrap=True,
        )
    return FigureResult(_save(fig, path, dpi), name)


def plot_pretrain_curves(record: PretrainRecord, path: Path, dpi: int = 110) -> FigureResult:
    """Pre-training loss and its components against step (or epoch) for one pre-training run.

    Every numeric ``log.csv`` column other than step/epoch/lr/seconds is drawn; the total ``loss``
    thicker.

    Args:
        record: a pre-training run.
        path: PNG to write.
        dpi: resolution.

    Returns:
        A :class:`FigureResult` (``path`` None when the log is empty or holds one step only: a line
        needs two points, and a figure of empty axes says nothing).
    """
    name = f"Pre-training {method_display_name(record.method)} on {record.dataset}"
    rows = record.log_rows()
    if not rows:
        return FigureResult(None, name, [f"{record.path}: no log.csv"])
    cols = list(rows[0].keys())
    has_step = "step" in cols and any(math.isfinite(to_float(r.get("step"))) for r in rows)
    x_key = "step" if has_step else "epoch"
    if x_key not in cols:
        return FigureResult(None, name, [f"{record.path}: log.csv has neither step nor epoch"])
    ys = [c for c in cols if c.lower() not in NON_LOSS_COLUMNS and c not in DIAGNOSTICS and _series(rows, x_key, c)]
    if not ys:
        return FigureResult(None, name, [f"{record.path}: no loss columns"])
    points = max(len(_series(rows, x_key, c)) for c in ys)
    if points < 2:
        return FigureResult(
            None,
            name,
            [f"{record.path}: log.csv has one {x_key} ({len(rows)} row): no curve to draw through one point"],
        )
    ys.sort(key=lambda c: (c != "loss", c))
    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    for c in ys:
        s = _series(rows, x_key, c)
        xs = sorted(s)
        ax.plot(xs, [s[x] for x in xs], label=c, linewidth=2.2 if c == "loss" else 1.2)
    ax.set_xlabel(x_key)
    ax.set_ylabel("loss")
    ax.set_title(name)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, title="term")
    return FigureResult(_save(fig, path, dpi), name)


def plot_pretrain_diagnostics(records: Sequence[PretrainRecord], path: Path, dpi: int = 110) -> FigureResult:
    """The representation diagnostics of every pre-training of one dataset against step, per method.

    One panel per diagnostic (:data:`medssl.evaluation.representation.DIAGNOSTICS`: embedding
    spread, effective rank, k-NN slice-position error, linear-probe Dice); each method's curve, and
    its randomly initialised encoder's value (``diagnostics.json``) as a dotted line of the same
    colour: a curve that does not leave its dotted line has learned nothing the probe can see.

    Args:
        records: pre-training runs (of one dataset).
        path: PNG to write.
        dpi: resolution.

    Returns:
        A :class:`FigureResult` (``path`` None when no run logged diagnostics).
    """
    import json

    dataset = records[0].dataset if records else "?"
    name = f"Pre-training diagnostics on {dataset}"
    series: list[tuple[PretrainRecord, list[dict[str, str]], dict[str, float]]] = []
    for r in sorted(records, key=lambda x: (method_sort_key(x.method), str(x.path))):
        rows = r.log_rows()
        if rows and any(k in rows[0] for k in DIAGNOSTICS):
            diag = r.path / "diagnostics.json"
            initial = json.loads(diag.read_text()).get("initial", {}) if diag.is_file() else {}
            series.append((r, rows, initial))
    keys = [k for k in DIAGNOSTICS if any(k in rows[0] for _, rows, _ in series)]
    if not keys:
        return FigureResult(None, name, ["no pre-training run logged representation diagnostics"])
    colours = _method_colours([r.method for r, _, _ in series])
    fig = Figure(figsize=(3.6 * len(keys) + 1.6, 3.4))
    for i, key in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), i + 1)
        for r, rows, initial in series:
            s = _series(rows, "step", key)
            if not s:
                continue
            xs = sorted(s)
            c = colours[r.method]
            marker = "o" if len(xs) == 1 else None  # one logged epoch: a visible point, not an empty axis
            ax.plot(xs, [s[x] for x in xs], color=c, linewidth=1.5, marker=marker, label=method_display_name(r.method))
            if key in initial and math.isfinite(to_float(initial[key])):
                ax.axhline(to_float(initial[key]), color=c, linestyle=":", linewidth=1.0)
        ax.set_title(DIAGNOSTICS[key].split(" (")[0], fontsize=9)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.subplots_adjust(right=1 - 1.5 / fig.get_size_inches()[0], wspace=0.3)
    if handles:
        fig.legend(
            handles,
            labels,
            loc="center left",
            bbox_to_anchor=(1 - 1.45 / fig.get_size_inches()[0], 0.5),
            fontsize=8,
            title="dotted: init",
        )
    fig.suptitle(name)
    return FigureResult(_save(fig, path, dpi), name)
