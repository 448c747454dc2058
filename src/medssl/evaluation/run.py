"""Re-evaluate a finished fine-tuning run from its saved predictions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..data.store import SliceStore
from ..engine.inference import outside_window_to_zero
from ..errors import DataError

__all__ = ["evaluate_run"]


def evaluate_run(run_dir: str | Path, protocol: str | None = None) -> Any:
    """Evaluate ``run_dir/predictions/*.npy`` against the prepared store's labels and rewrite the results.

    Args:
        run_dir: a fine-tuning run folder.
        protocol: ``paper`` or ``standard``; None = the run's own protocol.

    Returns:
        The ``EvaluationResult`` (rows and summary); files are written into ``run_dir``
        (``metrics.csv``, ``summary.*``; with another protocol than the run's, into ``run_dir/eval-<protocol>``).
    """
    from .evaluate import evaluate_arrays, write_results

    run_dir = Path(run_dir)
    info_path = run_dir / "run.json"
    if not info_path.is_file():
        raise DataError(run_dir, "not a run folder (no run.json)")
    info = json.loads(info_path.read_text())
    store = SliceStore(info["data"])
    split = json.loads((run_dir / "splits.json").read_text())
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
    result = evaluate_arrays(items, store.class_names, proto, spacing_known=store.spacing_known)
    write_results(result, run_dir if proto == info.get("protocol") else run_dir / f"eval-{proto}")
    return result


def _patch_size(run_dir: Path, store: SliceStore) -> int:
    """The run's fine-tuning patch size (``data.image_size`` of its ``config.yaml``, else the store's)."""
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
    size = ((cfg or {}).get("data") or {}).get("image_size")
    return int(size) if size else store.patch_size
