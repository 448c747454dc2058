"""Fine-tuning losses (medssl.losses.segmentation): closed forms and MONAI as an oracle."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from medssl.errors import ConfigError
from medssl.losses.segmentation import segmentation_loss, soft_dice_loss


def _perfect(target: torch.Tensor, k: int, scale: float = 50.0) -> torch.Tensor:
    return F.one_hot(target, k).permute(0, 3, 1, 2).float() * scale


def test_dice_closed_forms() -> None:
    t = torch.zeros(2, 4, 4, dtype=torch.long)
    t[0, :2] = 1  # class 1 only in sample 0
    assert soft_dice_loss(_perfect(t, 2), t, "batch") == pytest.approx(0.0, abs=1e-6)
    assert soft_dice_loss(_perfect(t, 2), t, "sample") == pytest.approx(0.0, abs=1e-6)
    # predict class 1 everywhere in sample 1 too: 24 pixels predicted, 8 true, 8 shared: batch Dice
    # of class 1 = 2*8/(24+8) = 1/2
    wrong = t.clone()
    wrong[1] = 1
    assert soft_dice_loss(_perfect(wrong, 2), t, "batch") == pytest.approx(0.5, abs=1e-5)
    # per sample, background included: sample 0 perfect (1, 1); sample 1: background 0 (none
    # predicted, 16 true), class 1 0 (16 predicted, none true): mean of 1, 1, 0, 0
    assert soft_dice_loss(_perfect(wrong, 2), t, "sample") == pytest.approx(0.5, abs=1e-5)


@pytest.mark.parametrize("k", [2, 4])
def test_sample_mode_equals_monai_dicece(k: int) -> None:
    from monai.losses import DiceCELoss

    g = torch.Generator().manual_seed(k)
    logits = torch.randn(3, k, 8, 8, generator=g)
    target = torch.randint(0, k, (3, 8, 8), generator=g)
    ours = segmentation_loss(logits, target, "dicece", "sample")
    ref = DiceCELoss(to_onehot_y=True, softmax=True)(logits, target[:, None])
    assert float(ours) == pytest.approx(float(ref), rel=1e-5)
    assert float(segmentation_loss(logits, target, "ce")) == pytest.approx(
        float(F.cross_entropy(logits, target)), rel=1e-6
    )


def test_unknown_names() -> None:
    x, t = torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long)
    with pytest.raises(ConfigError, match="loss"):
        segmentation_loss(x, t, "focal")
    with pytest.raises(ConfigError, match="dice_mode"):
        segmentation_loss(x, t, "dice", "pixel")
    assert math.isfinite(float(segmentation_loss(x, t, "dicece", "batch")))
