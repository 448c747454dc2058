"""Whole-volume prediction and the papers' centre window (the reference scores a centre pad/crop of
each test slice at the patch size)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medssl.data.transforms import pad_or_crop
from medssl.engine.inference import center_window, outside_window_to_zero, predict_volume
from medssl.evaluation.metrics import confusion_counts


class _Threshold(torch.nn.Module):
    """Class 1 where the input is positive: a "network" whose prediction is known."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(x[:, :1]), x[:, :1]], dim=1)


@pytest.mark.parametrize("size", [3, 4, 6, 8, 16])
def test_center_window_is_the_reference_pad_or_crop(size: int) -> None:
    x = np.arange(2 * 5 * 7).reshape(2, 5, 7)
    (sy, sx), (dy, dx) = center_window((5, 7), size)
    win = np.zeros((2, size, size), x.dtype)
    win[:, dy, dx] = x[:, sy, sx]
    assert np.array_equal(win, pad_or_crop(x, size=size)[0])


def test_windowed_prediction_and_scoring_equal_the_cropped_ones() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(3, 40, 24)).astype(np.float32)
    label = (rng.random((3, 40, 24)) < 0.3).astype(np.uint8)
    pred = predict_volume(_Threshold(), image, torch.device("cpu"), multiple=8, window=16)
    assert pred.shape == image.shape
    (sy, sx), _ = center_window((40, 24), 16)
    inside = np.zeros(image.shape, bool)
    inside[:, sy, sx] = True
    assert (pred[~inside] == 0).all() and np.array_equal(pred[inside], (image[inside] > 0).astype(np.uint8))
    # scoring windowed arrays == scoring the centre crops themselves (foreground classes)
    crop_pred, crop_gt = pad_or_crop(pred, label, size=16)
    full = np.asarray(confusion_counts(pred, outside_window_to_zero(label, 16), 2))
    cropped = np.asarray(confusion_counts(crop_pred, crop_gt, 2))
    assert np.array_equal(full[1], cropped[1])


def test_class_argmax_is_torch_argmax_with_ties_to_the_first_class() -> None:
    import torch

    from medssl.inference.segmenter import class_argmax

    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(4, 3, 17, 11, generator=g), dim=0)
    probs[:, 0, 0, 0] = torch.tensor([0.1, 0.4, 0.4, 0.1])  # a tie: the first of the tied classes
    probs[:, 1, 2, 3] = 0.25  # all tied: class 0
    got = class_argmax(probs)
    assert got.dtype == torch.uint8 and got.shape == (3, 17, 11)
    assert torch.equal(got, probs.argmax(0).to(torch.uint8))
    assert int(got[0, 0, 0]) == 1 and int(got[1, 2, 3]) == 0
