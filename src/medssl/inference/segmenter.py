"""``Segmenter``: a fine-tuned run (or an ensemble of runs) that segments new scans.

The steps, each the run's own (read from its folder and its store's ``plan.json``):

1. the image, read as prepare reads a training image (file order, float32), is resampled in-plane
   to the store's target spacing (:func:`medssl.data.transforms.resample_inplane`: cubic) and
   normalised (:func:`medssl.data.transforms.normalize`);
2. every slice is padded to the network's stride (with 0 or the slice's minimum, the run's
   ``fill``), predicted, and its softmax kept (averaged over the runs of an ensemble, and over the
   four mirrorings of the slice with TTA);
3. **label back-mapping**: the softmax maps are resampled bilinearly to the input's own grid, then
   the argmax is taken there (nnU-Net's way: smoother, more faithful boundaries than resampling the
   label map with nearest neighbour, at the cost of K resampled maps);
4. the run's post-processing (``postprocessing.json``: largest connected component of the classes
   decided on validation patients; for an ensemble, the classes every run chose).

Example::

    seg = Segmenter.from_run("runs/ft")                     # or ["runs/seed1", "runs/seed2"]
    labels = seg.predict(volume, spacing=(8.0, 1.25, 1.25))  # (D, H, W) -> uint8 (D, H, W)
    seg.predict_file("scan.nii.gz", "out/scan.nii.gz")
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError
from .runspec import RunSpec, check_ensemble, load_run_spec, side_defined_classes

__all__ = ["MIRRORINGS", "Segmenter", "class_argmax", "load_network", "probabilities_to_grid", "softmax_volume"]

#: the flips TTA averages over: none, rows, columns, both (dims of an ``(N, C, H, W)`` batch)
MIRRORINGS: tuple[tuple[int, ...], ...] = ((), (2,), (3,), (2, 3))


def load_network(spec: RunSpec, device: torch.device) -> nn.Module:
    """The run's network with its checkpoint's weights, in eval mode on ``device``.

    Raises:
        DataError: the checkpoint cannot be read, does not fit the run's network or holds NaN/Inf weights.
    """
    from ..config import ModelCfg, config_from_dict
    from ..models.checkpoint import check_finite_weights, checkpoint_in_channels
    from ..models.factory import create_model

    try:
        state = torch.load(spec.checkpoint, map_location="cpu", weights_only=False)
        weights = state["model"] if isinstance(state, dict) and "model" in state else state
    except Exception as e:  # torch raises many types for a corrupt file
        raise DataError(spec.checkpoint, f"unreadable checkpoint ({e.__class__.__name__})") from None
    spec.in_channels = checkpoint_in_channels(weights) or spec.in_channels
    model = create_model(config_from_dict(ModelCfg, spec.model), spec.num_classes, spec.in_channels)
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise DataError(spec.checkpoint, f"does not fit the run's network ({str(e).splitlines()[0][:120]})") from None
    check_finite_weights(spec.checkpoint, weights)
    return model.eval().to(device)


def _pad_slices(x: torch.Tensor, multiple: int, fill: str) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``(N, C, H, W)`` to a multiple of ``multiple`` as :func:`~medssl.engine.inference.predict_volume`."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    low = x.amin(dim=(2, 3), keepdim=True) if fill == "min" else 0.0
    return F.pad(x - low, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)) + low, (ph // 2, pw // 2)


@torch.no_grad()
def softmax_volume(
    models: Sequence[tuple[nn.Module, RunSpec]],
    volume: np.ndarray,
    device: torch.device,
    batch_size: int = 16,
    tta: bool = False,
) -> torch.Tensor:
    """Softmax of a normalised ``(D, h, w)`` volume, slice by slice, averaged over models (and mirrorings).

    Args:
        models: ``(network, spec)`` pairs (the spec gives the stride, fill and input channels).
        volume: the preprocessed volume.
        device: where the networks run.
        batch_size: slices per forward pass.
        tta: also average the softmax of the slices mirrored along rows, columns and both.

    Returns:
        float32 ``(K, D, h, w)`` on the CPU.
    """
    d, h, w = volume.shape
    flips = MIRRORINGS if tta else ((),)
    out = torch.zeros((models[0][1].num_classes, d, h, w), dtype=torch.float32)
    for s in range(0, d, batch_size):
        x = torch.from_numpy(np.ascontiguousarray(volume[s : s + batch_size], dtype=np.float32))[:, None].to(device)
        for model, spec in models:
            xin = x.repeat(1, spec.in_channels, 1, 1) if spec.in_channels > 1 else x
            xin, (top, left) = _pad_slices(xin, spec.multiple, spec.fill)
            for dims in flips:
                logits = model(xin.flip(dims) if dims else xin)
                logits = logits.flip(dims) if dims else logits
                prob = torch.softmax(logits[:, :, top : top + h, left : left + w].float(), dim=1)
                out[:, s : s + batch_size] += prob.permute(1, 0, 2, 3).cpu()
    return out / float(len(models) * len(flips))


def probabilities_to_grid(probs: torch.Tensor, shape: tuple[int, int], chunk: int = 32) -> torch.Tensor:
    """Resample ``(K, D, h, w)`` softmax maps bilinearly to the in-plane ``shape = (H, W)``.

    Pixel centres are aligned (``align_corners=False``: the grid of
    :func:`~medssl.data.transforms.resample_inplane` covers the same field of view), and values
    beyond the border repeat the edge. The result still sums to 1 over classes.

    Returns:
        ``(K, D, H, W)`` float32 (the input itself when the shapes already agree).
    """
    if tuple(probs.shape[-2:]) == tuple(shape):
        return probs
    k, d = probs.shape[:2]
    out = torch.empty((k, d, *shape), dtype=torch.float32)
    for s in range(0, d, chunk):
        part = probs[:, s : s + chunk].permute(1, 0, 2, 3)
        out[:, s : s + chunk] = F.interpolate(part, size=shape, mode="bilinear", align_corners=False).permute(
            1, 0, 2, 3
        )
    return out


def class_argmax(probs: torch.Tensor) -> torch.Tensor:
    """``probs.argmax(0)`` as uint8 for ``(K, ...)`` maps, the first class on ties, like ``argmax``.

    One pass per class over contiguous planes: ``argmax`` over the outermost dimension of a large
    volume reads it with a stride and takes about 3x as long on a CPU.
    """
    best = probs[0].clone()
    labels = torch.zeros(probs.shape[1:], dtype=torch.uint8)
    for k in range(1, probs.shape[0]):
        higher = probs[k] > best
        labels[higher] = k
        best = torch.where(higher, probs[k], best)
    return labels


def _check_tta(specs: Sequence[RunSpec], warn: Callable[[str], None]) -> None:
    """Refuse mirroring TTA where classes are defined by side; warn where a run never saw mirrors."""
    sided = side_defined_classes(specs[0].class_names)
    if sided:
        raise ConfigError(
            f"--tta: the classes {', '.join(sided)} are defined by side, and a mirrored slice swaps them "
            "(why the run's recipe does not mirror); predict without --tta"
        )
    unmirrored = [str(s.run) for s in specs if not s.mirror_trained]
    if unmirrored:
        warn(
            f"--tta: {', '.join(unmirrored)} trained without mirroring (config.yaml mirror: false); mirrored slices are new to it"
        )


class Segmenter:
    """One fine-tuned run, or an ensemble of runs, that segments scans in their own geometry.

    Build it with :meth:`from_run`. Arrays follow medssl's convention: a volume is ``(D, H, W)``
    (slices, rows, columns; a NIfTI array ``[x, y, z]`` is ``arr.transpose(2, 1, 0)``) and its
    spacing ``(sz, sy, sx)`` in mm.

    Attributes:
        specs: what each run says about preprocessing (:class:`~medssl.inference.runspec.RunSpec`).
        device: where the networks run.
        batch_size: slices per forward pass.
        tta: average over the four mirrorings of each slice.
    """

    def __init__(
        self, specs: Sequence[RunSpec], models: Sequence[nn.Module], device: torch.device, batch_size: int, tta: bool
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"--batch-size: expected a positive number of slices, got {batch_size}")
        self.specs, self.models = list(specs), list(models)
        self.device, self.batch_size, self.tta = device, batch_size, tta

    @classmethod
    def from_run(
        cls,
        runs: str | Path | Sequence[str | Path],
        device: str = "auto",
        batch_size: int = 16,
        tta: bool = False,
        warn: Callable[[str], None] | None = None,
    ) -> Segmenter:
        """Load one run folder, or several (an ensemble: their softmax maps are averaged).

        Args:
            runs: fine-tuning run folder(s).
            device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
            batch_size: slices per forward pass.
            tta: mirroring test-time augmentation (refused where classes are defined by side).
            warn: where warnings go (default: :func:`warnings.warn`).

        Raises:
            DataError: a folder that is not a fine-tuning run, a pre-training run, no checkpoint.
            ConfigError: runs that differ in classes or preprocessing, ``tta`` with side-defined classes.
        """
        from ..engine.trainer import resolve_device

        paths = [runs] if isinstance(runs, (str, Path)) else list(runs)
        if not paths:
            raise ConfigError("give at least one fine-tuning run folder")
        specs = [load_run_spec(p) for p in paths]
        check_ensemble(specs)
        say = warn or (lambda m: warnings.warn(m, stacklevel=3))
        for s in specs:
            if s.status != "done":
                say(f"{s.run}: the run has not finished (run.json status '{s.status}'); using {s.checkpoint.name}")
        if tta:
            _check_tta(specs, say)
        dev = resolve_device(device)
        models = [load_network(s, dev) for s in specs]
        return cls(specs, models, dev, batch_size, tta)

    @property
    def class_names(self) -> list[str]:
        return list(self.specs[0].class_names)

    @property
    def largest_component(self) -> list[int]:
        """Classes cleaned to their largest component: those every run's validation chose."""
        chosen = set(self.specs[0].largest_component)
        for s in self.specs[1:]:
            chosen &= set(s.largest_component)
        return sorted(chosen)

    def preprocess(self, image: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
        """The run's preprocessing of a ``(D, H, W)`` volume: in-plane resampling, then normalisation.

        Returns:
            float32 ``(D, h, w)`` on the store's grid.
        """
        from ..data.transforms import normalize, resample_inplane

        spec = self.specs[0]
        image = np.asarray(image, dtype=np.float32)
        if image.ndim != 3:
            raise DataError(None, f"expected a (D, H, W) volume, got shape {image.shape}")
        if len(spacing) != 3:
            raise DataError(None, f"expected a spacing (sz, sy, sx), got {tuple(spacing)}")
        sp = (float(spacing[0]), float(spacing[1]), float(spacing[2]))
        resampled, _, _ = resample_inplane(image, None, sp, spec.target_spacing)
        return normalize(resampled, spec.normalization)

    def network_probabilities(self, volume: np.ndarray) -> torch.Tensor:
        """Softmax ``(K, D, h, w)`` of a preprocessed volume (ensemble and TTA averaged)."""
        return softmax_volume(list(zip(self.models, self.specs)), volume, self.device, self.batch_size, self.tta)

    def finish(self, probs: torch.Tensor, shape: Sequence[int]) -> tuple[np.ndarray, torch.Tensor]:
        """Softmax on the network's grid -> labels on the input's ``(D, H, W)`` grid, post-processed.

        Returns:
            ``(labels uint8 (D, H, W), probabilities (K, D, H, W))``.
        """
        from ..evaluation.postprocess import keep_largest_component

        grid = probabilities_to_grid(probs, (int(shape[1]), int(shape[2])))
        labels = class_argmax(grid).numpy()
        if self.largest_component:
            labels = keep_largest_component(labels, self.largest_component)
        return labels, grid

    def predict_probabilities(self, image: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
        """Softmax ``(K, D, H, W)`` of a ``(D, H, W)`` volume on its own grid (before post-processing)."""
        return self.finish(self.network_probabilities(self.preprocess(image, spacing)), image.shape)[1].numpy()

    def predict(self, image: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
        """Segment a ``(D, H, W)`` volume of voxel size ``spacing = (sz, sy, sx)`` mm.

        Returns:
            uint8 labels ``(D, H, W)``, class indices into :attr:`class_names`.
        """
        return self.finish(self.network_probabilities(self.preprocess(image, spacing)), image.shape)[0]

    def predict_file(self, path: str | Path, out: str | Path, save_probabilities: bool = False) -> Path:
        """Segment one NIfTI file (or DICOM series folder) into a NIfTI label map in its own geometry.

        Args:
            path: the scan.
            out: the label map to write (``.nii.gz``); ``classes.json`` is written beside it.
            save_probabilities: also write the softmax maps as ``<name>.npz`` beside it.

        Returns:
            ``out`` as a Path.
        """
        from .pipeline import predict_one

        return predict_one(self, path, out, save_probabilities)
