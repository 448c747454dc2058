"""Superpixels for SuperCL (METHODS.md section 3): SLIC / Felzenszwalb maps, and a per-slice cache.

The reference code (stevezs315/SuperCL) runs ``skimage.segmentation.slic`` on every training
sample, twice (on the intensity views v1 and v2), on the grey view stacked to 3 channels (so SLIC
works in Lab space) with ``n_segments=100, compactness=10`` and skimage's defaults
(``max_num_iter=10, sigma=0, enforce_connectivity=True``). That is ``mode="online"`` here.

``mode="cache"`` computes one map per stored slice, once, on the un-augmented slice (min-max scaled
to [0, 1] and, by default, blurred like the views' Gaussian blur), stores it under
``<store>/cache/superpixels-<tag>/<case_id>.npy`` and, at training time, applies the same pad/crop
that the data pipeline applied to the image (nearest semantics: labels are never interpolated).

Measured on this project's machines (CHAOS T2-SPIR and MS-CMRSeg slices, one CPU core):

* SLIC Lab costs about 37 ms per 256 px slice and 133 ms per 512 px slice, so the reference's
  two maps per sample cost 73 / 265 ms per sample (about 14 / 4 samples/s per core);
* a cached map costs a memory-mapped read + crop + relabel: ``benchmarks/bench_superpixels.py``
  measured 277x (256 px) and 152x (512 px) the reference's samples/s in the same run; cheaper
  online settings give only 1.4-1.6x (grey SLIC) and 2.1-3.3x (half resolution);
* on a 16-core GPU machine (H100, bf16) a SuperCL step at batch 16 x 512 px takes about 0.21 s
  while the reference's 32 SLIC calls take about 9.4 core-seconds: online mode is CPU-bound there;
* agreement with the reference maps (adjusted Rand index between the map of the un-augmented slice
  and SLIC of an intensity view): 0.80 on average (min 0.68) without blur, 0.91 (min 0.69) with
  the default ``cache_blur_sigma=2`` (the mean of the views' sigma 1..3); for comparison, the two
  online maps S1 and S2 of the reference agree at 0.88 (min 0.71) with each other.

Example::

    cfg = SuperpixelConfig(mode="cache")
    build_superpixel_cache(store, cfg)                 # once (resumable)
    provider = SuperpixelProvider(cfg, store)
    sp = provider("patient001_frame01", 4, v1, geometry=lambda a: a[16:208, 16:208])
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError

__all__ = [
    "SuperpixelConfig",
    "SuperpixelProvider",
    "build_superpixel_cache",
    "compute_superpixels",
    "compute_volume_superpixels",
    "relabel_consecutive",
    "superpixel_cache_dir",
]

_METHODS = ("slic_lab", "slic_grey", "felzenszwalb")
_MODES = ("online", "cache")
_DEFAULT_COMPACTNESS = {"slic_lab": 10.0, "slic_grey": 0.1}


@dataclass(frozen=True)
class SuperpixelConfig:
    """How superpixel maps are made.

    Attributes:
        method: ``"slic_lab"`` (the paper: SLIC on the grey image stacked to 3 channels, i.e. in Lab
            space), ``"slic_grey"`` (SLIC on the single channel, ``channel_axis=None``) or
            ``"felzenszwalb"``.
        mode: ``"online"`` (the reference: computed on v1 (and v2) for every sample) or ``"cache"``
            (computed once per stored slice on the un-augmented slice).
        n_segments: SLIC's approximate number of superpixels per image; None (the default) = derived
            from the image's area so that one superpixel covers ``cells_per_segment`` bottleneck
            cells, whatever the image size (:meth:`segments_for`).
        cells_per_segment: bottleneck cells per superpixel when ``n_segments`` is None: 10.24, the
            reference's 100 superpixels on the 32 x 32 bottleneck of its 512 px views (a 51 px
            superpixel). With a fixed 100, a 128 px view gets superpixels smaller than one
            bottleneck cell, and ILCP's tokens have no positive but their own twin.
        cell_size: pixels per bottleneck cell side (``2 ** depth``, 16 for the papers' U-Net).
        min_segments: at least this many superpixels per view (16): SLIC returns far fewer segments
            than asked on small images (on 128 px cardiac slices 6 asked give 2.2, 16 give 8.1), and
            with 6 asked 22% of the slices had every ILCP token in one superpixel, i.e. no negative
            (``benchmarks/ilcp_geometry.py``).
        view_size: side of the training views (set by pre-training); the superpixel density (per
            pixel) is that of a view of this size, so a cached map of a larger stored slice, cropped
            to a view, has the superpixels an online map of the view would. None = the image's own size.
        compactness: SLIC compactness; None = 10 for ``slic_lab`` (the paper) and 0.1 for
            ``slic_grey`` (Lab's L channel spans 0..100 for a [0, 1] grey image, so 10 in Lab is
            about 0.1 on [0, 1] intensities; it also gives about as many superpixels, 87 vs 84 on a
            CHAOS slice).
        max_num_iter: SLIC k-means iterations (skimage's default 10, as in the reference).
        sigma: SLIC pre-smoothing (0, as in the reference).
        enforce_connectivity: SLIC connectivity post-processing (True, as in the reference).
        fz_scale: Felzenszwalb's ``scale`` (higher: larger segments).
        fz_sigma: Felzenszwalb's pre-smoothing ``sigma``.
        fz_min_size: Felzenszwalb's ``min_size``, in pixels at full resolution.
        scale: SLIC/Felzenszwalb run on the image resized by this factor and the labels are
            upsampled back (nearest). 1.0 = exact; 0.5 is about 3.4x faster at 512 px but agrees with
            the full-resolution map only at ARI ~0.70.
        cache_blur_sigma: cache mode only: Gaussian blur (kernel 3, like the views' blur) applied to
            the min-max scaled slice before the map is computed, so that the cached map resembles
            SLIC of a blurred view; 0 disables it.
    """

    method: str = "slic_lab"
    mode: str = "online"
    n_segments: int | None = None
    cells_per_segment: float = 10.24
    cell_size: int = 16
    min_segments: int = 16
    view_size: int | None = None
    compactness: float | None = None
    max_num_iter: int = 10
    sigma: float = 0.0
    enforce_connectivity: bool = True
    fz_scale: float = 100.0
    fz_sigma: float = 0.5
    fz_min_size: int = 50
    scale: float = 1.0
    cache_blur_sigma: float = 2.0

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ConfigError(f"superpixels.method: must be one of {', '.join(_METHODS)}, got '{self.method}'")
        if self.mode not in _MODES:
            raise ConfigError(f"superpixels.mode: must be one of {', '.join(_MODES)}, got '{self.mode}'")
        if self.n_segments is not None and self.n_segments < 1:
            raise ConfigError(f"superpixels.n_segments: must be >= 1, got {self.n_segments}")
        if not self.cells_per_segment > 0 or self.cell_size < 1:
            raise ConfigError(
                f"superpixels.cells_per_segment and cell_size: must be > 0 and >= 1, got {self.cells_per_segment} and {self.cell_size}"
            )
        if self.min_segments < 1 or (self.view_size is not None and self.view_size < 1):
            raise ConfigError(
                f"superpixels.min_segments and view_size: must be >= 1, got {self.min_segments} and {self.view_size}"
            )
        if not 0.0 < self.scale <= 1.0:
            raise ConfigError(f"superpixels.scale: must be in (0, 1], got {self.scale}")
        if self.cache_blur_sigma < 0:
            raise ConfigError(f"superpixels.cache_blur_sigma: must be >= 0, got {self.cache_blur_sigma}")

    @property
    def effective_compactness(self) -> float:
        """The compactness actually passed to SLIC."""
        if self.compactness is not None:
            return float(self.compactness)
        return _DEFAULT_COMPACTNESS.get(self.method, 10.0)

    def segments_for(self, height: int, width: int) -> int:
        """SLIC's ``n_segments`` for an ``height x width`` image.

        ``n_segments`` when set. Otherwise a view of side ``v`` (``view_size``, or the image's own
        size) gets ``max(min_segments, v**2 / (cells_per_segment * cell_size**2))`` superpixels (100
        at 512 px, the reference; 25 at 256; 16 at 128 and below), and an image of another size the
        same number per pixel.
        """
        if self.n_segments is not None:
            return self.n_segments
        view_area = float(self.view_size**2) if self.view_size else float(height * width)
        per_view = max(float(self.min_segments), view_area / (self.cells_per_segment * self.cell_size**2))
        return max(1, round(per_view * height * width / view_area))

    def tag(self) -> str:
        """A folder name that identifies every setting that changes a cached map."""
        if self.method == "felzenszwalb":
            core = f"fz-s{self.fz_scale:g}-g{self.fz_sigma:g}-m{self.fz_min_size}"
        else:
            count = (
                f"n{self.n_segments}"
                if self.n_segments is not None
                else f"cells{self.cells_per_segment:g}x{self.cell_size}-min{self.min_segments}-v{self.view_size or 0}"
            )
            core = (
                f"{self.method}-{count}-c{self.effective_compactness:g}-it{self.max_num_iter}"
                f"-s{self.sigma:g}-cc{int(self.enforce_connectivity)}"
            )
        return f"superpixels-{core}-x{self.scale:g}-b{self.cache_blur_sigma:g}"


def relabel_consecutive(labels: np.ndarray) -> np.ndarray:
    """Map the values present in a non-negative integer array to ``0..K-1`` (order kept).

    Args:
        labels: integer array of any shape with values >= 0.

    Returns:
        int64 array of the same shape.
    """
    lab = np.asarray(labels).astype(np.int64, copy=False)
    if lab.size == 0:
        return lab.copy()
    present = np.bincount(lab.ravel()) > 0
    if present.all():
        return lab.copy()
    lut = np.cumsum(present) - 1
    return lut[lab]


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 2:
        raise ValueError(f"expected a 2D image (H, W), got shape {img.shape}")
    img = img.astype(np.float64, copy=False)
    if not np.isfinite(img).all():
        raise ValueError("image contains NaN or infinite values")
    return img


def _minmax(image: np.ndarray) -> np.ndarray:
    lo, hi = float(image.min()), float(image.max())
    return (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)


def _blur3(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with a 3x3 kernel (torchvision's ``GaussianBlur(kernel_size=3)``), reflect border."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(image, sigma=sigma, truncate=1.0 / sigma, mode="reflect")


def compute_superpixels(image: np.ndarray, cfg: SuperpixelConfig) -> np.ndarray:
    """Superpixel labels of one grey 2D image.

    Args:
        image: (H, W) float in [0, 1] (v1 in the reference; SLIC Lab converts it as an RGB image,
            which expects that range; it is not rescaled here).
        cfg: the settings; ``cfg.mode`` is ignored here.

    Returns:
        (H, W) int32 labels ``0..K-1`` (consecutive).

    Raises:
        ValueError: the image is not 2D or is not finite.
    """
    from skimage.segmentation import felzenszwalb, slic

    img = _check_image(image)
    h, w = img.shape
    n_segments = cfg.segments_for(h, w)
    work = img
    if cfg.scale < 1.0:
        from skimage.transform import resize

        size = (max(1, round(h * cfg.scale)), max(1, round(w * cfg.scale)))
        work = resize(img, size, order=1, anti_aliasing=True, preserve_range=True)
    if cfg.method == "slic_lab":
        lab = slic(
            np.stack([work, work, work], axis=-1),
            n_segments=n_segments,
            compactness=cfg.effective_compactness,
            max_num_iter=cfg.max_num_iter,
            sigma=cfg.sigma,
            enforce_connectivity=cfg.enforce_connectivity,
            start_label=0,
            channel_axis=-1,
        )
    elif cfg.method == "slic_grey":
        lab = slic(
            work,
            n_segments=n_segments,
            compactness=cfg.effective_compactness,
            max_num_iter=cfg.max_num_iter,
            sigma=cfg.sigma,
            enforce_connectivity=cfg.enforce_connectivity,
            start_label=0,
            channel_axis=None,
        )
    else:
        min_size = max(1, round(cfg.fz_min_size * cfg.scale * cfg.scale))
        lab = felzenszwalb(work, scale=cfg.fz_scale, sigma=cfg.fz_sigma, min_size=min_size, channel_axis=None)
    if lab.shape != (h, w):
        rows = np.minimum((np.arange(h) * lab.shape[0]) // h, lab.shape[0] - 1)
        cols = np.minimum((np.arange(w) * lab.shape[1]) // w, lab.shape[1] - 1)
        lab = lab[rows[:, None], cols[None, :]]
    return relabel_consecutive(lab).astype(np.int32)


def _cache_input(slice_: np.ndarray, cfg: SuperpixelConfig) -> np.ndarray:
    """The image a cached map is computed from: min-max to [0, 1], optional 3x3 blur, min-max again."""
    img = _minmax(_check_image(slice_))
    if cfg.cache_blur_sigma > 0:
        img = _minmax(_blur3(img, cfg.cache_blur_sigma))
    return img


def compute_volume_superpixels(volume: np.ndarray, cfg: SuperpixelConfig) -> np.ndarray:
    """The cached maps of one volume: each slice prepared as in cache mode, then :func:`compute_superpixels`.

    Args:
        volume: (D, H, W) float.
        cfg: the settings.

    Returns:
        (D, H, W) int32, each slice labelled ``0..K_z-1``.
    """
    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise ValueError(f"expected a volume (D, H, W), got shape {vol.shape}")
    out = np.empty(vol.shape, dtype=np.int32)
    for z in range(vol.shape[0]):
        out[z] = compute_superpixels(_cache_input(np.asarray(vol[z]), cfg), cfg)
    return out


def superpixel_cache_dir(store_root: str | Path, cfg: SuperpixelConfig) -> Path:
    """``<store_root>/cache/<cfg.tag()>``: where :func:`build_superpixel_cache` writes."""
    return Path(store_root) / "cache" / cfg.tag()


def _is_done(path: Path, shape: tuple[int, ...]) -> bool:
    if not path.is_file():
        return False
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return tuple(arr.shape) == tuple(shape) and arr.dtype == np.int32


def _build_one(volume: np.ndarray, cfg: SuperpixelConfig, path: str) -> str:
    from ..utils.files import atomic_save_npy

    atomic_save_npy(path, compute_volume_superpixels(volume, cfg))
    return path


def build_superpixel_cache(store: Any, cfg: SuperpixelConfig, workers: int = 0, progress: bool = True) -> Path:
    """Compute and store one superpixel map per slice of every case of a prepared store.

    Writes ``<store.root>/cache/<cfg.tag()>/<case_id>.npy`` ((D, H, W) int32) with atomic writes
    (temporary file + ``os.replace``), plus ``config.json``. Cases whose file is already complete
    are skipped, so an interrupted build resumes where it stopped.

    Args:
        store: a :class:`~medssl.data.store.SliceStore` (or any object with ``root``, ``cases``
            (records with ``case_id`` and ``shape``) and ``image(case_id) -> (D, H, W)``).
        cfg: the settings (``cfg.mode`` is not used).
        workers: 0 = compute in this process; N > 0 = N worker processes (one case per task).
        progress: show a progress bar.

    Returns:
        The cache folder.
    """
    from ..utils.files import atomic_write_json
    from ..utils.progress import progress_bar

    out = superpixel_cache_dir(store.root, cfg)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", {**asdict(cfg), "compactness": cfg.effective_compactness})
    todo = [c for c in store.cases if not _is_done(out / f"{c.case_id}.npy", tuple(c.shape))]
    bar = progress_bar(total=len(todo), desc="superpixels", unit="case", disable=not progress)
    try:
        if workers <= 0:
            for c in todo:
                _build_one(np.asarray(store.image(c.case_id)), cfg, str(out / f"{c.case_id}.npy"))
                bar.update(1)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                pending: list[Future[str]] = []
                for c in todo:
                    # bounded number of volumes in flight: read, submit, collect the oldest
                    pending.append(
                        pool.submit(_build_one, np.array(store.image(c.case_id)), cfg, str(out / f"{c.case_id}.npy"))
                    )
                    if len(pending) >= 2 * workers:
                        pending.pop(0).result()
                        bar.update(1)
                for f in pending:
                    f.result()
                    bar.update(1)
    finally:
        bar.close()
    return out


class SuperpixelProvider:
    """Gives the superpixel map of one training sample, computed online or read from the cache.

    Args:
        cfg: the settings; ``cfg.mode`` chooses the behaviour.
        store: the prepared store (needed in cache mode; its cache must have been built with
            :func:`build_superpixel_cache` and the same ``cfg``).

    Raises:
        ConfigError: cache mode without a store.

    Example::

        provider = SuperpixelProvider(SuperpixelConfig(mode="cache"), store)
        s1 = provider(case_id, z, v1, geometry)           # (H, W) int64
        s2 = provider(case_id, z, v2, geometry) if provider.per_view else s1
    """

    def __init__(self, cfg: SuperpixelConfig, store: Any = None) -> None:
        if cfg.mode == "cache" and store is None:
            raise ConfigError("superpixel cache mode needs the prepared store")
        self.cfg = cfg
        self.store = store
        self.cache_dir = superpixel_cache_dir(store.root, cfg) if store is not None else None
        self._maps: dict[str, np.ndarray] = {}

    @property
    def per_view(self) -> bool:
        """True when each view needs its own map (online: S1 = SLIC(v1), S2 = SLIC(v2))."""
        return self.cfg.mode == "online"

    def cached_map(self, case_id: str) -> np.ndarray:
        """The (D, H, W) int32 memory-mapped cached maps of a case.

        Raises:
            DataError: the cache file is missing or unreadable.
        """
        arr = self._maps.get(case_id)
        if arr is None:
            assert self.cache_dir is not None
            path = self.cache_dir / f"{case_id}.npy"
            if not path.is_file():
                raise DataError(
                    path,
                    "superpixel cache missing; build it first (build_superpixel_cache / `medssl prepare --superpixels`)",
                )
            try:
                arr = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as e:
                raise DataError(path, f"cannot read superpixel cache ({e}); delete it and build it again") from None
            self._maps[case_id] = arr
        return arr

    def __call__(
        self, case_id: str, z: int, v1: np.ndarray, geometry: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> np.ndarray:
        """The superpixel map of one sample.

        Args:
            case_id: the case the slice comes from.
            z: the slice index.
            v1: (H, W) the intensity view in [0, 1] (online mode computes on it; cache mode only
                checks its shape).
            geometry: maps a full stored slice (H0, W0) to the training crop (H, W): the same pad /
                crop the data pipeline applied to the image (cache mode; None = identity). It must
                move values without interpolating them (pad/crop, flips, nearest resampling).

        Returns:
            (H, W) int64 labels ``0..K-1``. In cache mode the labels are shifted by one before
            ``geometry`` so that zero padding becomes a superpixel of its own.

        Raises:
            ValueError: the geometry changed values (interpolated) or gave a shape other than v1's.
        """
        if self.cfg.mode == "online":
            return compute_superpixels(v1, self.cfg).astype(np.int64)
        full = np.asarray(self.cached_map(case_id)[z]).astype(np.int64) + 1
        crop = full if geometry is None else np.asarray(geometry(full))
        if crop.shape != np.shape(v1):
            raise ValueError(f"geometry gave a map of shape {crop.shape}, the view has shape {np.shape(v1)}")
        if not np.issubdtype(crop.dtype, np.integer):
            rounded = np.rint(crop)
            if not np.array_equal(rounded, crop):
                raise ValueError("geometry interpolated the superpixel labels; it must use nearest semantics")
            crop = rounded
        crop = crop.astype(np.int64)
        if crop.min() < 0:
            raise ValueError("geometry produced negative labels")
        return relabel_consecutive(crop)
