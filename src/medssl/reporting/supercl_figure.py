"""A figure that shows what SuperCL sees: slice, superpixels, ASP map and CCL group (METHODS.md section 3).

Example::

    supercl_figure("prepared/chaos", "supercl.png", n=6)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..data.superpixels import SuperpixelConfig, compute_superpixels
from ..errors import ConfigError
from ..losses.supercl import average_superpixel_map, ccl_components

__all__ = ["check_figure_path", "plot_supercl_batch", "supercl_figure"]


def check_figure_path(out_path: str | Path) -> Path:
    """``out_path`` if matplotlib can write its format (from the suffix), before any work is done.

    Raises:
        ConfigError: no suffix, or a format matplotlib does not write (the message lists those it does).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out_path)
    formats = sorted(FigureCanvasAgg(Figure()).get_supported_filetypes())
    suffix = out.suffix.lower().lstrip(".")
    if suffix not in formats:
        raise ConfigError(
            f"{out}: cannot write a figure in format '{suffix or '(no suffix)'}'; use one of {', '.join(formats)}"
        )
    if out.exists() and out.is_dir():
        raise ConfigError(f"{out}: is a folder; give an image file name such as supercl.png")
    return out


def plot_supercl_batch(
    images: np.ndarray,
    superpixels: np.ndarray,
    asp: np.ndarray,
    components: np.ndarray,
    out_path: str | Path,
    panel_size: float = 2.2,
    dpi: int = 100,
) -> Path:
    """Draw one row per slice: image | superpixel boundaries | ASP map | CCL group colour.

    Args:
        images: (B, H, W) grey slices (any range; shown min-max scaled).
        superpixels: (B, H, W) integer superpixel labels.
        asp: (B, h, w) ASP maps (any size; shown stretched over the slice).
        components: (B,) CCL component index of each slice (same index = same colour).
        out_path: the PNG to write (folders are created).
        panel_size: inches per panel.
        dpi: resolution.

    Returns:
        ``out_path`` as a Path.

    Raises:
        ValueError: the batch sizes differ.
        ConfigError: ``out_path`` has a format matplotlib does not write.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    check_figure_path(out_path)
    images, superpixels, asp = np.asarray(images), np.asarray(superpixels), np.asarray(asp)
    components = np.asarray(components).reshape(-1)
    b = images.shape[0]
    if not (superpixels.shape[0] == asp.shape[0] == components.shape[0] == b):
        raise ValueError(
            f"batch sizes differ: images {images.shape}, superpixels {superpixels.shape}, asp {asp.shape}, components {components.shape}"
        )
    fig = Figure(figsize=(4 * panel_size, b * panel_size), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(b, 4, squeeze=False)
    for i in range(b):
        _draw_row(axes[i], images[i], superpixels[i], asp[i], int(components[i]), titled=i == 0)
    fig.tight_layout()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    return out


def _draw_row(axes: Any, image: np.ndarray, superpixels: np.ndarray, asp: np.ndarray, comp: int, titled: bool) -> None:
    """One row of :func:`plot_supercl_batch` on its four ``axes``: slice, boundaries, ASP map, group colour."""
    from matplotlib.colors import to_rgb
    from skimage.segmentation import mark_boundaries

    palette = [f"C{i}" for i in range(10)]
    titles = ("slice", "superpixels", "ASP map", "CCL group")
    img = image.astype(np.float64)
    lo, hi = img.min(), img.max()
    img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    axes[0].imshow(img, cmap="gray", vmin=0, vmax=1)
    axes[1].imshow(mark_boundaries(np.stack([img] * 3, -1), superpixels.astype(np.int64), color=(1, 0.8, 0)))
    axes[2].imshow(asp, cmap="viridis", interpolation="nearest", extent=(0, img.shape[1], img.shape[0], 0))
    axes[3].imshow(np.ones((8, 8, 3)) * np.array(to_rgb(palette[comp % len(palette)])))
    axes[3].text(4, 4, str(comp), ha="center", va="center", fontsize=14, color="white")
    for j in range(4):
        axes[j].set_xticks([])
        axes[j].set_yticks([])
        if titled:
            axes[j].set_title(titles[j], fontsize=9)


def _fit(image: np.ndarray, multiple: int) -> np.ndarray:
    """Centre-crop (H, W) to the largest multiple of ``multiple`` (zero-pad when smaller than it)."""
    h, w = image.shape
    th, tw = max(multiple, h // multiple * multiple), max(multiple, w // multiple * multiple)
    if h < th or w < tw:
        image = np.pad(image, ((0, max(0, th - h)), (0, max(0, tw - w))))
        h, w = image.shape
    y, x = (h - th) // 2, (w - tw) // 2
    return image[y : y + th, x : x + tw]


def supercl_figure(
    store_root: str | Path | Any,
    out_path: str | Path,
    n: int = 6,
    cfg: SuperpixelConfig | None = None,
    seed: int = 0,
    encoder: Callable[[Tensor], Any] | None = None,
) -> Path:
    """Pick ``n`` slices from a prepared store and draw their superpixels, ASP maps and CCL groups.

    Slices are drawn at random (seeded) among those that are not constant, centre-cropped to a
    multiple of 16 and min-max scaled to [0, 1]; superpixels are computed as in online mode; the
    ASP maps come from the encoder's bottleneck (a random-init U-Net if none is given); CCL groups
    are the components of the 1-NN graph of the n ASP vectors.

    Args:
        store_root: a prepared store folder, or a store object (``cases``, ``image(case_id)``).
        out_path: the PNG to write.
        n: number of slices (rows).
        cfg: superpixel settings (default :class:`SuperpixelConfig`).
        seed: seed of the slice choice and of the random-init encoder.
        encoder: a U-Net (its ``encode`` is used), or a callable ``(B, 1, H, W) -> list of maps``
            (the last is the bottleneck) or a single map.

    Returns:
        ``out_path`` as a Path.

    Raises:
        ConfigError: ``n`` < 1, or a figure format matplotlib does not write.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n: the number of slices must be a positive integer, got {n!r}")
    check_figure_path(out_path)
    cfg = cfg or SuperpixelConfig()
    images = _pick_slices(_open_store(store_root), n, np.random.default_rng(seed))
    sps = np.stack([compute_superpixels(im, cfg) for im in images])
    asp, comps = _asp_and_groups(images, sps, encoder, seed)
    return plot_supercl_batch(images, sps, asp.numpy(), comps.numpy(), out_path)


def _open_store(store_root: str | Path | Any) -> Any:
    """``store_root`` itself when it is a store object (``cases`` and ``image``), else the store in that folder."""
    if hasattr(store_root, "cases") and hasattr(store_root, "image"):
        return store_root
    from ..data.store import SliceStore

    return SliceStore(store_root)


def _pick_slices(store: Any, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` random non-constant slices, cropped to a common multiple of 16, each min-max to [0, 1].

    Raises:
        ValueError: every slice of the store is constant.
    """
    items = [(c.case_id, z) for c in store.cases for z in range(c.shape[0])]
    order = rng.permutation(len(items))
    picked: list[np.ndarray] = []
    for idx in order:
        cid, z = items[idx]
        sl = np.asarray(store.image(cid)[z], dtype=np.float64)
        if sl.max() > sl.min():
            picked.append(_fit(sl, 16))
        if len(picked) == n:
            break
    if not picked:
        raise ValueError("no non-constant slice found in the store")
    h = min(p.shape[0] for p in picked)
    w = min(p.shape[1] for p in picked)
    images = np.stack(
        [
            p[(p.shape[0] - h) // 2 : (p.shape[0] - h) // 2 + h, (p.shape[1] - w) // 2 : (p.shape[1] - w) // 2 + w]
            for p in picked
        ]
    )
    return (images - images.min(axis=(1, 2), keepdims=True)) / np.ptp(images, axis=(1, 2), keepdims=True)


def _asp_and_groups(
    images: np.ndarray, sps: np.ndarray, encoder: Callable[[Tensor], Any] | None, seed: int
) -> tuple[Tensor, Tensor]:
    """ASP maps of the encoder's bottleneck (a seeded random-init U-Net if None) and their CCL groups.

    The encoder runs in eval mode; a module that was training is put back in training mode.
    """
    from ..models.unet import UNet

    if encoder is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            encoder = UNet(1, 2)
    fn = encoder.encode if isinstance(encoder, UNet) else encoder
    was_training = getattr(encoder, "training", False)
    if hasattr(encoder, "eval"):
        encoder.eval()
    with torch.no_grad():
        x = torch.from_numpy(images[:, None].astype(np.float32))
        out = fn(x)
        feat = out[-1] if isinstance(out, (list, tuple)) else out
        asp = average_superpixel_map(feat, torch.from_numpy(sps.astype(np.int64)))
        comps = ccl_components(asp.reshape(asp.shape[0], -1))
    if was_training and hasattr(encoder, "train"):
        encoder.train()
    return asp, comps
