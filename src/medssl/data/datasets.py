"""PyTorch datasets over a prepared store: labelled slices for fine-tuning, multi-view samples for
pre-training. Randomness is drawn per sample from ``(seed, epoch, index)``, so a run gives the same
batches whatever the number of workers, and a resumed run continues the same sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .store import SliceStore, num_partitions

__all__ = ["LabelledSlices", "PretrainSlices", "minmax01", "seed_worker"]


def minmax01(x: np.ndarray) -> np.ndarray:
    """Scale a slice to [0, 1] (a constant slice becomes zeros)."""
    lo, hi = float(x.min()), float(x.max())
    if hi - lo < 1e-8:
        return np.zeros_like(x, dtype=np.float32)
    return ((x - lo) / (hi - lo)).astype(np.float32)


def seed_worker(worker_id: int) -> None:
    """Worker init: torch's own per-worker seed also seeds numpy (we draw from explicit generators anyway)."""
    np.random.seed(torch.initial_seed() % 2**32)


class _EpochDataset(Dataset):
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the random stream; call before creating the epoch's iterator."""
        self.epoch = epoch

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])


class LabelledSlices(_EpochDataset):
    """2D labelled slices for fine-tuning.

    Args:
        store: prepared store.
        case_ids: the labelled training cases.
        patch_size: pad/crop size.
        augment: a ``JointAugment`` (mirror, p=0.67 elastic/rotation/scale, pad/crop) or None (centre pad/crop).
        seed: base seed of the per-sample random streams.
        in_channels: the image is repeated to this many channels (4 for BraTS-pretrained models).
        fill: padding value of the image without augmentation: ``"zero"`` or ``"min"`` (its minimum).

    Returns (per item): ``{"image": (C, P, P) float32, "label": (P, P) int64}``.
    """

    def __init__(
        self,
        store: SliceStore,
        case_ids: Sequence[str],
        patch_size: int,
        augment: Any | None = None,
        seed: int = 0,
        in_channels: int = 1,
        fill: str = "zero",
    ) -> None:
        super().__init__(seed)
        self.store, self.patch_size, self.augment, self.in_channels = store, patch_size, augment, in_channels
        self.fill = fill
        self.items = store.slices(case_ids)
        if not self.items:
            raise ValueError("no labelled slice in the training cases")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from .transforms import fill_value, pad_or_crop

        cid, z = self.items[index]
        image, label = self.store.image_slice(cid, z), self.store.label_slice(cid, z)
        if self.augment is not None:
            image, label = self.augment(image, label, self.rng(index))
        else:
            image, label = pad_or_crop(image, label, size=self.patch_size, values=(fill_value(image, self.fill), 0))
        img = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
        if self.in_channels > 1:
            img = img.repeat(self.in_channels, 1, 1)
        return {"image": img, "label": torch.from_numpy(np.ascontiguousarray(label).astype(np.int64))}


class PretrainSlices(_EpochDataset):
    """Unlabelled slices turned into the views a method asks for (see ``medssl.methods.base``).

    Args:
        store: prepared store.
        case_ids: cases to pre-train on.
        image_size: views are random-cropped (zero-padded) to this size.
        view_transform: a ``MultiViewTransform`` producing the method's views.
        needs: extra fields (``"superpixels"``, ``"neighbor"``).
        superpixels: a ``SuperpixelProvider`` (needed when ``"superpixels"`` in needs).
        seed: base seed.
    """

    def __init__(
        self,
        store: SliceStore,
        case_ids: Sequence[str],
        image_size: int,
        view_transform: Callable[..., dict[str, np.ndarray]],
        needs: frozenset[str] | set[str] = frozenset(),
        superpixels: Callable[..., np.ndarray] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        self.store, self.image_size, self.view_transform = store, image_size, view_transform
        self.needs, self.superpixels = frozenset(needs), superpixels
        if "superpixels" in self.needs and superpixels is None:
            raise ValueError("this method needs superpixels but no superpixel provider was given")
        self.items = store.slices(case_ids)
        self.volume_index = {cid: i for i, cid in enumerate(dict.fromkeys(c for c, _ in self.items))}
        if not self.items:
            raise ValueError("no slice to pre-train on")

    def __len__(self) -> int:
        return len(self.items)

    def _window(self, shape: tuple[int, int], rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
        """A fixed random crop / zero pad to ``image_size`` (the same for the image, its neighbour and superpixels)."""
        size = self.image_size
        offsets = []
        for n in shape:
            offsets.append(int(rng.integers(0, n - size + 1)) if n > size else -((size - n) // 2))

        def apply(a: np.ndarray) -> np.ndarray:
            out = np.zeros((size, size), dtype=a.dtype)
            (oy, ox), (h, w) = offsets, a.shape
            sy, sx = max(oy, 0), max(ox, 0)
            dy, dx = max(-oy, 0), max(-ox, 0)
            hh, ww = min(h - sy, size - dy), min(w - sx, size - dx)
            out[dy : dy + hh, dx : dx + ww] = a[sy : sy + hh, sx : sx + ww]
            return out

        return apply

    def __getitem__(self, index: int) -> dict[str, Any]:
        cid, z = self.items[index]
        rng = self.rng(index)
        vol = self.store.image(cid)
        d = vol.shape[0]
        window = self._window(vol.shape[1:], rng)
        x = minmax01(window(self.store.image_slice(cid, z)))
        neighbor = None
        if "neighbor" in self.needs:
            nz = z + (1 if z + 1 < d and (z == 0 or rng.random() < 0.5) else -1) if d > 1 else z
            neighbor = minmax01(window(self.store.image_slice(cid, nz)))
        views = (
            self.view_transform(x, rng, neighbor_image=neighbor)
            if neighbor is not None
            else self.view_transform(x, rng)
        )
        sample: dict[str, Any] = {
            k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))[None] for k, v in views.items()
        }
        sample["image"] = torch.from_numpy(x)[None]
        # 2D data sets (ISIC: one slice per "volume") have no slice position: a distinct value per
        # sample (|p_i - p_j| >= 1 > delta) turns positional positives into instance positives,
        # which is what the reference code does for ISIC
        position = (z + 1) / d if d > 1 else -float(index + 1)
        sample["position"] = torch.tensor(position, dtype=torch.float32)
        sample["partition"] = torch.tensor(min(z * num_partitions // d, num_partitions - 1), dtype=torch.long)
        sample["volume"] = torch.tensor(self.volume_index[cid], dtype=torch.long)
        if "superpixels" in self.needs:
            assert self.superpixels is not None  # __init__ refuses "superpixels" in needs without a provider
            sp = self.superpixels(cid, z, views.get("v1", x), window)
            sample["superpixels"] = torch.from_numpy(np.ascontiguousarray(sp).astype(np.int64))
            if getattr(self.superpixels, "per_view", False) and "v2" in views:
                # online mode, exact to the reference: S2 = SLIC(v2) for the second view's ASP map
                sp2 = self.superpixels(cid, z, views["v2"], window)
                sample["superpixels2"] = torch.from_numpy(np.ascontiguousarray(sp2).astype(np.int64))
        return sample
