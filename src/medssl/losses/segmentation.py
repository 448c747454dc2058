"""Supervised segmentation losses of fine-tuning, as pure functions of logits and labels.

* ``ce``: cross-entropy (the papers' fine-tuning loss);
* ``dice``: soft Dice, in one of two forms (``dice_mode``):

  - ``"batch"``: one Dice per foreground class with the sums taken over the whole batch (the "batch
    Dice" of nnU-Net): slices without a class do not count on their own;
  - ``"sample"``: one Dice per sample and class, background included, averaged (MONAI's
    ``DiceLoss`` defaults): a class predicted on a slice that has none costs that sample's whole
    Dice term, which discourages scattered false positives;

* ``dicece``: the sum of both.

References:
    - [0] Isensee et al., nnU-Net, Nature Methods 2021 (batch Dice + CE)
    - [1] MONAI ``monai.losses.DiceCELoss`` (per-sample Dice + CE)
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError

__all__ = ["DICE_MODES", "LOSSES", "segmentation_loss", "soft_dice_loss"]

#: names accepted by :func:`segmentation_loss`
LOSSES: tuple[str, ...] = ("ce", "dice", "dicece")
#: forms of the Dice term
DICE_MODES: tuple[str, ...] = ("batch", "sample")


def soft_dice_loss(logits: Tensor, target: Tensor, mode: str = "batch", smooth: float = 1e-5) -> Tensor:
    """``1 - mean Dice`` of the softmax probabilities against the one-hot labels.

    Args:
        logits: network outputs. Shape: (B, K, H, W).
        target: integer labels in ``0..K-1``. Shape: (B, H, W).
        mode: ``"batch"`` (foreground classes, sums over the batch) or ``"sample"`` (every class
            and sample, background included, then the mean).
        smooth: added to numerator and denominator (an absent class predicted absent scores 1).

    Returns:
        Scalar loss in [0, 1].
    """
    if mode not in DICE_MODES:
        raise ConfigError(f"dice_mode: expected one of {', '.join(DICE_MODES)}, got {mode!r}")
    probs = logits.float().softmax(1)
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).float()
    dims = (0, 2, 3) if mode == "batch" else (2, 3)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + smooth) / (denom + smooth)
    return 1 - (dice[1:] if mode == "batch" else dice).mean()


def segmentation_loss(logits: Tensor, target: Tensor, kind: str = "ce", dice_mode: str = "batch") -> Tensor:
    """The fine-tuning loss ``kind`` (``ce``, ``dice`` or ``dicece``); see the module docstring.

    Shapes: logits (B, K, H, W), target (B, H, W) integer.
    """
    if kind == "ce":
        return F.cross_entropy(logits.float(), target)
    if kind == "dice":
        return soft_dice_loss(logits, target, dice_mode)
    if kind == "dicece":
        return soft_dice_loss(logits, target, dice_mode) + F.cross_entropy(logits.float(), target)
    raise ConfigError(f"loss: expected one of {', '.join(LOSSES)}, got {kind!r}")
