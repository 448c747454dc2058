"""Post-processing of predicted label volumes, decided on validation cases (as nnU-Net does).

Small networks trained on a few patients leave scattered false positives far from the organ: a
stray "right ventricle" in the liver, a speck of "spleen" at the image border. One connected
structure per class is what the anatomies of medssl's data sets have (cardiac cavities and wall,
liver, kidneys, spleen, hippocampus), so keeping each class's largest 3D connected component is a
cheap remedy. It is applied only to the classes for which it raises the mean Dice on the
validation volumes (:func:`choose_largest_component_classes`), never decided on test volumes.

References:
    - [0] Isensee et al., nnU-Net, Nature Methods 2021 (``determine_postprocessing``)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy import ndimage

__all__ = ["choose_largest_component_classes", "keep_largest_component"]


def keep_largest_component(pred: np.ndarray, classes: Iterable[int]) -> np.ndarray:
    """A copy of ``pred`` in which each of ``classes`` keeps only its largest connected component.

    Connectivity is the 3D face neighbourhood (6-connected for a volume); removed voxels become
    background (0).

    Args:
        pred: integer label array (2D or 3D).
        classes: labels to clean.

    Returns:
        The cleaned array (same shape and dtype).
    """
    out = np.array(pred, copy=True)
    for k in classes:
        mask = out == k
        lab, n = ndimage.label(mask)
        if n > 1:
            sizes = np.bincount(lab.ravel())[1:]
            out[mask & (lab != 1 + int(np.argmax(sizes)))] = 0
    return out


def _dice(pred: np.ndarray, gt: np.ndarray, k: int) -> float:
    p, g = pred == k, gt == k
    denom = int(p.sum()) + int(g.sum())
    return float("nan") if denom == 0 else 2.0 * float(np.logical_and(p, g).sum()) / denom


def choose_largest_component_classes(
    preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], num_classes: int
) -> list[int]:
    """The foreground classes whose mean Dice over the given (validation) cases rises with
    :func:`keep_largest_component`.

    Args:
        preds: predicted label volumes.
        gts: their reference labels (same shapes).
        num_classes: K, background included.

    Returns:
        Sorted class indices (possibly empty).
    """
    chosen = []
    for k in range(1, num_classes):
        before = [_dice(p, g, k) for p, g in zip(preds, gts)]
        after = [_dice(keep_largest_component(p, [k]), g, k) for p, g in zip(preds, gts)]
        b, a = np.array(before, float), np.array(after, float)
        valid = ~np.isnan(b) & ~np.isnan(a)
        if valid.any() and a[valid].mean() > b[valid].mean():
            chosen.append(k)
    return chosen
