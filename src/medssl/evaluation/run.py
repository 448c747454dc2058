"""Re-evaluate a finished fine-tuning run from its saved predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..data.store import SliceStore
from ..engine.inference import outside_window_to_zero
from ..errors import DataError

__all__ = ["evaluate_run"]

_RERUN = "its predictions belong to the old store: rerun its finetune command with --no-resume to evaluate on this one"


def evaluate_run(run_dir: str | Path, protocol: str | None = None) -> Any:
    """Evaluate ``run_dir/predictions/*.npy`` against the prepared store's labels and rewrite the results.

    Args:
        run_dir: a fine-tuning run folder.
        protocol: ``paper`` or ``standard``; None = the run's own protocol.

    Returns:
        The ``EvaluationResult`` (rows and summary); files are written into ``run_dir``
        (``metrics.csv``, ``summary.*``; with another protocol than the run's, into ``run_dir/eval-<protocol>``).
    """
    from ..reporting.runfiles import read_json_object, read_splits, stale_problem
    from .evaluate import evaluate_arrays, write_results

    run_dir = Path(run_dir)
    info_path = run_dir / "run.json"
    if not info_path.is_file():
        raise DataError(run_dir, "not a run folder (no run.json)")
    info = read_json_object(info_path)
    if not isinstance(info.get("data"), str):
        raise DataError(info_path, "names no prepared store ('data'); the file is corrupt")
    stale = stale_problem(run_dir, info)  # its predictions were made on another store: not comparable
    if stale:
        raise DataError(None, stale.replace("run it again (finetune --no-resume) to use it", _RERUN))
    store = SliceStore(info["data"])
    split = read_splits(run_dir)
    proto = protocol or info.get("protocol", "standard")
    window = _patch_size(run_dir, store) if proto == "paper" else None  # the papers score the centre window
    items = []
    for cid in split["test"]:
        p = run_dir / "predictions" / f"{cid}.npy"
        if not p.is_file():
            raise DataError(p, "prediction missing; the run did not finish (rerun the same finetune command to resume)")
        pred = np.load(p)
        gt = np.asarray(store.label(cid))
        if pred.shape != gt.shape:
            raise DataError(p, f"prediction shape {pred.shape} differs from the label's {gt.shape}")
        if window is not None:
            pred, gt = outside_window_to_zero(pred, window), outside_window_to_zero(gt, window)
        items.append((cid, pred, gt, store.info(cid).spacing))
    try:
        result = evaluate_arrays(items, store.class_names, proto, spacing_known=store.spacing_known)
    except ValueError as e:  # a prediction or label outside the classes: the message starts with the case id
        raise DataError(run_dir / "predictions", str(e)) from None
    write_results(result, run_dir if proto == info.get("protocol") else run_dir / f"eval-{proto}")
    return result


def _patch_size(run_dir: Path, store: SliceStore) -> int:
    """The run's fine-tuning patch size (``data.image_size`` of its ``config.yaml``, else the store's)."""
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
    size = ((cfg or {}).get("data") or {}).get("image_size")
    return int(size) if size else store.patch_size
