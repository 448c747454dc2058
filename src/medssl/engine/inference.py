"""Slice-by-slice prediction of whole volumes."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["predict_volume"]


@torch.no_grad()
def predict_volume(
    model: nn.Module, image: np.ndarray, device: torch.device, batch_size: int = 16, multiple: int = 16, in_channels: int = 1
) -> np.ndarray:
    """Predict a ``(D, H, W)`` volume slice by slice with a 2D segmentation network.

    Each slice is zero-padded to a multiple of ``multiple`` (the network's total stride), predicted,
    and cropped back, so the output has the input's shape.

    Returns:
        uint8 label volume ``(D, H, W)``.
    """
    model.eval()
    d, h, w = image.shape
    ph, pw = (-h) % multiple, (-w) % multiple
    out = np.empty((d, h, w), dtype=np.uint8)
    for s in range(0, d, batch_size):
        x = torch.from_numpy(np.array(image[s : s + batch_size], dtype=np.float32))[:, None].to(device)
        if in_channels > 1:
            x = x.repeat(1, in_channels, 1, 1)
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        logits = model(x)
        pred = logits.argmax(1)[:, ph // 2 : ph // 2 + h, pw // 2 : pw // 2 + w]
        out[s : s + batch_size] = pred.to(torch.uint8).cpu().numpy()
    return out
