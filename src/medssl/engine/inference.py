"""Slice-by-slice prediction of whole volumes (and of the papers' centre window)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["center_window", "outside_window_to_zero", "predict_volume"]


def center_window(shape: tuple[int, int], size: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Where a centre pad/crop to ``size`` (the reference's ``pad_and_or_crop``) takes a slice from.

    Returns:
        ``(src, dst)``: the in-plane slices of the input that the window covers, and where they sit
        in the ``size x size`` window (a longer axis is cropped at ``n // 2 - size // 2``, a shorter
        one zero-padded symmetrically, as :func:`medssl.data.transforms.pad_or_crop` does).
    """
    src, dst = [], []
    for n in shape:
        if n >= size:
            start = n // 2 - size // 2
            src.append(slice(start, start + size))
            dst.append(slice(0, size))
        else:
            before = (size - n) // 2
            src.append(slice(0, n))
            dst.append(slice(before, before + n))
    return (src[0], src[1]), (dst[0], dst[1])


def outside_window_to_zero(volume: np.ndarray, size: int) -> np.ndarray:
    """A copy of a ``(D, H, W)`` label volume that is 0 outside the centre ``size`` window.

    Scoring a prediction and a label that are both 0 outside the window gives, for every foreground
    class, the metrics of the window alone: what the reference code scores (it evaluates the centre
    pad/crop of each test slice at the patch size).
    """
    (sy, sx), _ = center_window(volume.shape[-2:], size)
    out = np.zeros_like(volume)
    out[..., sy, sx] = volume[..., sy, sx]
    return out


@torch.no_grad()
def predict_volume(
    model: nn.Module,
    image: np.ndarray,
    device: torch.device,
    batch_size: int = 16,
    multiple: int = 16,
    in_channels: int = 1,
    window: int | None = None,
    fill: str = "zero",
) -> np.ndarray:
    """Predict a ``(D, H, W)`` volume slice by slice with a 2D segmentation network.

    Each slice is padded to a multiple of ``multiple`` (the network's total stride) with 0, or with
    the slice's minimum for ``fill="min"`` (as the fine-tuning augmentation pads), predicted, and
    cropped back, so the output has the input's shape. With ``window``, only the centre pad/crop of
    each slice at ``window`` pixels is predicted (the papers' protocol) and the rest is 0.

    Returns:
        uint8 label volume ``(D, H, W)``.
    """
    model.eval()
    d, h, w = image.shape
    if window is not None:
        (sy, sx), (dy, dx) = center_window((h, w), window)
        patch = np.zeros((d, window, window), dtype=np.float32)
        if fill == "min":
            patch += np.asarray(image, dtype=np.float32).reshape(d, -1).min(axis=1)[:, None, None]
        patch[:, dy, dx] = image[:, sy, sx]
        pred = predict_volume(model, patch, device, batch_size, multiple, in_channels)
        out = np.zeros((d, h, w), dtype=np.uint8)
        out[:, sy, sx] = pred[:, dy, dx]
        return out
    ph, pw = (-h) % multiple, (-w) % multiple
    out = np.empty((d, h, w), dtype=np.uint8)
    for s in range(0, d, batch_size):
        x = torch.from_numpy(np.array(image[s : s + batch_size], dtype=np.float32))[:, None].to(device)
        if in_channels > 1:
            x = x.repeat(1, in_channels, 1, 1)
        low = x.amin(dim=(2, 3), keepdim=True) if fill == "min" else 0.0
        x = F.pad(x - low, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)) + low
        logits = model(x)
        pred = logits.argmax(1)[:, ph // 2 : ph // 2 + h, pw // 2 : pw // 2 + w]
        out[s : s + batch_size] = pred.to(torch.uint8).cpu().numpy()
    return out
