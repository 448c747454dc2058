"""Re-evaluate a finished fine-tuning run from its saved predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..data.store import SliceStore
from ..engine.inference import outside_window_to_zero
from ..errors import ConfigError, DataError

__all__ = ["evaluate_run"]

_RERUN = "its predictions belong to the old store: rerun its finetune command with --no-resume to evaluate on this one"


def evaluate_run(
    run_dir: str | Path,
    protocol: str | None = None,
    distances: str | None = None,
    nsd_tolerance: float | dict[str, float] | None = None,
) -> Any:
    """Evaluate ``run_dir/predictions/*.npy`` against the prepared store's labels and rewrite the results.

    Args:
        run_dir: a fine-tuning run folder.
        protocol: ``paper`` or ``standard``; None = the run's own protocol.
        distances: ``surface`` or ``medpy``; None = the run's own (``config.yaml``), else the protocol's.
        nsd_tolerance: NSD tolerance in mm (one value or per class); None = the run's own, else 2.

    Returns:
        The ``EvaluationResult`` (rows and summary); files are written into ``run_dir`` (``metrics.csv``,
        ``summary.*``) when protocol and distance definition are the run's, else into
        ``run_dir/eval-<protocol>`` (another protocol) or ``run_dir/eval-<protocol>-<distances>``.

    Raises:
        DataError: not a run folder, a prediction missing or of the wrong shape.
        ConfigError: ``distances`` does not fit the protocol, or the tolerance names an unknown class.
    """
    from ..reporting.runfiles import read_splits
    from .evaluate import evaluate_arrays, write_results
    from .metrics import distance_definition, resolve_nsd_tolerance

    run_dir = Path(run_dir)
    info = _read_run_info(run_dir)
    store = SliceStore(info["data"])
    split = read_splits(run_dir)
    proto = protocol or info.get("protocol", "standard")
    window = _patch_size(run_dir, store) if proto == "paper" else None  # the papers score the centre window
    cfg = _run_config(run_dir)
    if proto == info.get("protocol"):
        distances = distances or cfg.get("distances")
        nsd_tolerance = _run_tolerance(cfg, store.class_names) if nsd_tolerance is None else nsd_tolerance
    try:
        distance_definition(proto, distances)
        resolve_nsd_tolerance(nsd_tolerance, store.class_names)
    except ValueError as exc:
        raise ConfigError(f"{run_dir}: {exc}") from exc
    items = _items(run_dir, split["test"], store, window)
    try:
        result = evaluate_arrays(
            items,
            store.class_names,
            proto,
            spacing_known=store.spacing_known,
            distances=distances,
            nsd_tolerance=nsd_tolerance,
        )
    except ValueError as e:  # a prediction or label outside the classes: the message starts with the case id
        raise DataError(run_dir / "predictions", str(e)) from None
    write_results(result, _out_dir(run_dir, info, cfg, proto, result.distances))
    return result


def _read_run_info(run_dir: Path) -> dict[str, Any]:
    """The run's ``run.json``, checked: it names its store, and neither store nor ``init`` changed since."""
    from ..reporting.runfiles import read_json_object, stale_problem

    info_path = run_dir / "run.json"
    if not info_path.is_file():
        raise DataError(run_dir, "not a run folder (no run.json)")
    info = read_json_object(info_path)
    if not isinstance(info.get("data"), str):
        raise DataError(info_path, "names no prepared store ('data'); the file is corrupt")
    stale = stale_problem(run_dir, info)  # its predictions were made on another store: not comparable
    if stale:
        raise DataError(None, stale.replace("run it again (finetune --no-resume) to use it", _RERUN))
    return info


def _items(run_dir: Path, case_ids: list[str], store: SliceStore, window: int | None) -> list[tuple[Any, ...]]:
    """``(case_id, prediction, label, spacing)`` of every test case (0 outside ``window`` when given)."""
    items = []
    for cid in case_ids:
        p = run_dir / "predictions" / f"{cid}.npy"
        if not p.is_file():
            raise DataError(p, "prediction missing; the run did not finish (rerun the same finetune command to resume)")
        try:
            pred = np.load(p)
        except (OSError, ValueError, EOFError) as e:
            raise DataError(
                p, f"unreadable prediction ({' '.join(str(e).split())[:120]}); the file is damaged"
            ) from None
        gt = np.asarray(store.label(cid))
        if pred.shape != gt.shape:
            raise DataError(p, f"prediction shape {pred.shape} differs from the label's {gt.shape}")
        if window is not None:
            pred, gt = outside_window_to_zero(pred, window), outside_window_to_zero(gt, window)
        items.append((cid, pred, gt, store.info(cid).spacing))
    return items


def _run_tolerance(cfg: dict[str, Any], class_names: list[str]) -> dict[str, float] | None:
    """The run's NSD tolerances (``nsd_tolerance``, ``nsd_tolerance_per_class``); None for runs without them."""
    if "nsd_tolerance" not in cfg:
        return None
    per = {str(c): cfg["nsd_tolerance"] for c in class_names[1:]}
    return {**per, **(cfg.get("nsd_tolerance_per_class") or {})}


def _run_config(run_dir: Path) -> dict[str, Any]:
    """The run's ``config.yaml`` as a dict (empty when missing).

    Raises:
        DataError: a ``config.yaml`` that does not parse or is not a mapping.
    """
    import yaml

    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise DataError(path, f"unreadable ({e.__class__.__name__}); the file is damaged") from None
    if not isinstance(cfg, dict):
        raise DataError(path, f"not a mapping of settings (a {type(cfg).__name__}); the file is damaged")
    return cfg


def _out_dir(run_dir: Path, info: dict[str, Any], cfg: dict[str, Any], proto: str, distances: str) -> Path:
    """Where a re-evaluation goes: the run folder only for the run's own protocol and distance definition
    (runs written before ``distances`` existed measured ``standard`` distances as medpy does)."""
    if proto != info.get("protocol"):
        return run_dir / f"eval-{proto}"
    own = cfg.get("distances") or ("surface" if proto == "standard" and "distances" in cfg else "medpy")
    return run_dir if distances == own else run_dir / f"eval-{proto}-{distances}"


def _patch_size(run_dir: Path, store: SliceStore) -> int:
    """The run's fine-tuning patch size (``data.image_size`` of its ``config.yaml``, else the store's)."""
    size = (_run_config(run_dir).get("data") or {}).get("image_size")
    return int(size) if size else store.patch_size
