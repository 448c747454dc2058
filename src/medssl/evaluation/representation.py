"""Diagnostics of a representation: has pre-training learned something, before fine-tuning?

Pure functions of tensors, computed on frozen features of a fixed probe set (see
:class:`medssl.pretrain.PretrainTask`), cheap enough to run at every pre-training epoch:

* :func:`embedding_spread`: per-dimension standard deviation of the L2-normalised embeddings,
  times ``sqrt(d)``. About 1 when the embeddings spread over the sphere, near 0 when they
  collapse to one point (the collapse check of SimSiam, Chen & He 2021, section 4.1, which
  compares the std with ``1/sqrt(d)``).
* :func:`effective_rank`: ``exp`` of the entropy of the normalised singular values of the
  centred embedding matrix (Roy & Vetterli 2007; RankMe, Garrido et al., ICML 2023): how many
  directions the embeddings use (1 = dimensional collapse).
* :func:`knn_position_error`: k-nearest-neighbour regression of the slice position ``(z+1)/D``
  from the embeddings, neighbours taken from *other* volumes only: the mean absolute error is
  about 1/3 for features that know nothing of anatomy, and falls as they learn where a slice lies.
* :func:`linear_probe_dice`: a per-pixel linear classifier (multinomial logistic regression) on
  frozen multi-scale encoder features ("hypercolumns"), fitted on the pixels of a few labelled
  slices and scored by mean foreground Dice on slices of other volumes: a cheap proxy of how much
  segmentation-relevant information the frozen encoder carries.

References:
    - [0] Chen & He, Exploring Simple Siamese Representation Learning, CVPR 2021
    - [1] Roy & Vetterli, The effective rank, EUSIPCO 2007
    - [2] Garrido et al., RankMe, ICML 2023, https://arxiv.org/abs/2210.02885
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from ..data.store import SliceStore

__all__ = [
    "DIAGNOSTICS",
    "ProbeSet",
    "build_probe_set",
    "collapsed",
    "effective_rank",
    "embedding_spread",
    "format_diagnostics",
    "hypercolumns",
    "knn_position_error",
    "linear_probe_dice",
    "probe_diagnostics",
]


def embedding_spread(z: Tensor) -> float:
    """Mean per-dimension std of the L2-normalised embeddings, times ``sqrt(d)``.

    Args:
        z: embeddings. Shape: (N, d), N >= 2.

    Returns:
        ``sqrt(d) * mean_j std_i(z_ij / |z_i|)``: 1 for embeddings spread uniformly over the
        sphere, 0 for a collapsed representation.
    """
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"z must be (N >= 2, d), got {tuple(z.shape)}")
    u = F.normalize(z.double(), dim=1)
    return float(u.std(dim=0).mean() * z.shape[1] ** 0.5)


def effective_rank(z: Tensor, eps: float = 1e-12) -> float:
    """Effective rank ``exp(H(p))``, ``p_k = s_k / sum s``, of the centred embedding matrix.

    Args:
        z: embeddings. Shape: (N, d).
        eps: floor of the probabilities inside the log.

    Returns:
        A value in ``[1, min(N, d)]`` (1 when every embedding lies on one line).
    """
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"z must be (N >= 2, d), got {tuple(z.shape)}")
    x = z.double() - z.double().mean(dim=0, keepdim=True)
    s = torch.linalg.svdvals(x)
    if float(s.sum()) <= eps:
        return 1.0
    p = s / s.sum()
    return float(torch.exp(-(p * torch.log(p.clamp_min(eps))).sum()))


def knn_position_error(z: Tensor, positions: Tensor, groups: Tensor, k: int = 5) -> float:
    """Mean absolute error of a k-NN (cosine) regression of slice position, across volumes.

    Each slice's position is predicted as the mean position of its ``k`` nearest neighbours among
    the slices of the *other* volumes (its own volume's neighbours would give the answer away).

    Args:
        z: embeddings. Shape: (N, d).
        positions: ``(z + 1) / D`` of each slice. Shape: (N,).
        groups: volume index of each slice. Shape: (N,).
        k: neighbours.

    Returns:
        The mean absolute error (positions are in (0, 1]); NaN when there is one volume only.
    """
    n = z.shape[0]
    if positions.shape != (n,) or groups.shape != (n,):
        raise ValueError(f"positions and groups must be ({n},), got {tuple(positions.shape)} and {tuple(groups.shape)}")
    u = F.normalize(z.double(), dim=1)
    sim = u @ u.T
    same = groups[:, None] == groups[None, :]
    sim = sim.masked_fill(same, float("-inf"))
    others = (~same).sum(dim=1)
    if int(others.min()) == 0:
        return float("nan")
    kk = min(k, int(others.min()))
    idx = sim.topk(kk, dim=1).indices
    pred = positions.double()[idx].mean(dim=1)
    return float((pred - positions.double()).abs().mean())


def hypercolumns(feats: Sequence[Tensor], size: tuple[int, int]) -> Tensor:
    """Per-pixel multi-scale features: every map resized (bilinear) to ``size`` and concatenated.

    Args:
        feats: encoder maps, e.g. ``UNet.encode(x)`` (B, C_i, h_i, w_i).
        size: output ``(H, W)``.

    Returns:
        (B, sum C_i, H, W); each map is standardised per channel over the batch first, so that no
        stage dominates the probe by its scale.
    """
    out = []
    for f in feats:
        f = f.float()
        mu = f.mean(dim=(0, 2, 3), keepdim=True)
        sd = f.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
        f = (f - mu) / sd
        out.append(
            f
            if tuple(f.shape[-2:]) == tuple(size)
            else F.interpolate(f, size=size, mode="bilinear", align_corners=False)
        )
    return torch.cat(out, dim=1)


def linear_probe_dice(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    num_classes: int,
    *,
    pixels_per_class: int = 2000,
    steps: int = 150,
    lr: float = 0.05,
    seed: int = 0,
) -> float:
    """Fit a per-pixel linear classifier on frozen features; mean foreground Dice on test slices.

    Training pixels are sampled class-balanced (up to ``pixels_per_class`` of each class present),
    the classifier is fitted with Adam on the cross-entropy (full batch), and the test slices are
    predicted densely. Dice is pooled over the test slices per class, then averaged over the
    foreground classes present in the test labels.

    Args:
        train_x: features of the labelled probe slices. Shape: (B, C, H, W).
        train_y: their labels. Shape: (B, H, W) integer.
        test_x: features of the probe slices of other volumes. Shape: (B', C, H, W).
        test_y: their labels. Shape: (B', H, W).
        num_classes: K (background included).
        pixels_per_class: training pixels drawn per class.
        steps: optimiser steps.
        lr: Adam learning rate.
        seed: seed of the pixel sampling and initialisation.

    Returns:
        Mean foreground Dice in [0, 1]; NaN when no foreground class is in the test labels.
    """
    g = torch.Generator().manual_seed(seed)
    c = train_x.shape[1]
    xs = train_x.permute(0, 2, 3, 1).reshape(-1, c).float().cpu()
    ys = train_y.reshape(-1).long().cpu()
    picks = _balanced_pixels(ys, num_classes, pixels_per_class, g)
    if not picks:
        return float("nan")
    sel = torch.cat(picks)
    weight, bias = _fit_linear(xs[sel], ys[sel], num_classes, steps, lr, g)
    with torch.no_grad():
        tx = test_x.permute(0, 2, 3, 1).reshape(-1, c).float().cpu()
        pred = (tx @ weight.T + bias).argmax(1)
    return _mean_foreground_dice(pred, test_y.reshape(-1).long().cpu(), num_classes)


def _balanced_pixels(ys: Tensor, num_classes: int, pixels_per_class: int, g: torch.Generator) -> list[Tensor]:
    """Indices of up to ``pixels_per_class`` random pixels of each class present in ``ys`` (N,)."""
    picks = []
    for k in range(num_classes):
        idx = (ys == k).nonzero().flatten()
        if idx.numel():
            picks.append(idx[torch.randperm(idx.numel(), generator=g)[:pixels_per_class]])
    return picks


def _fit_linear(
    x: Tensor, y: Tensor, num_classes: int, steps: int, lr: float, g: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Multinomial logistic regression of ``y`` (N,) on ``x`` (N, C), full-batch Adam; ``(weight, bias)``."""
    weight = torch.zeros(num_classes, x.shape[1])
    bias = torch.zeros(num_classes)
    weight.normal_(0.0, 0.01, generator=g)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    opt = torch.optim.Adam([weight, bias], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            loss = F.cross_entropy(x @ weight.T + bias, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return weight.detach(), bias.detach()


def _mean_foreground_dice(pred: Tensor, truth: Tensor, num_classes: int) -> float:
    """Dice pooled over all pixels per foreground class, averaged over the classes in ``truth``; NaN if none."""
    scores = []
    for k in range(1, num_classes):
        gt, pk = truth == k, pred == k
        if int(gt.sum()) == 0:
            continue
        scores.append(2.0 * float((gt & pk).sum()) / float(gt.sum() + pk.sum()))
    return float(sum(scores) / len(scores)) if scores else float("nan")


# --------------------------------------------------------------------------------------------------
# the probe set and the per-epoch diagnostics of a backbone
# --------------------------------------------------------------------------------------------------
@dataclass
class ProbeSet:
    """A fixed set of un-augmented slices on which :func:`probe_diagnostics` runs every epoch.

    Attributes:
        images: (N, 1, P, P) float32 slices, centre pad/crop to ``P``, min-max to [0, 1] (as the
            pre-training views are).
        positions: (N,) slice positions ``(z + 1) / D``.
        groups: (N,) volume index.
        labels: (N, P, P) long labels, or None (no labelled probe volumes).
        probe_train: (N,) bool, slices the linear probe is fitted on (the others score it).
        num_classes: K of ``labels``.
        volumes: case ids used, and which of them carry the linear probe's labels.
    """

    images: Tensor
    positions: Tensor
    groups: Tensor
    labels: Tensor | None = None
    probe_train: Tensor | None = None
    num_classes: int = 0
    volumes: dict[str, list[str]] = field(default_factory=dict)


def build_probe_set(
    store: SliceStore,
    size: int,
    *,
    max_volumes: int = 16,
    slices_per_volume: int = 8,
    labelled_cases: Sequence[str] = (),
    max_labelled_slices: int = 24,
) -> ProbeSet:
    """Slices evenly spaced in z from volumes evenly spaced in the store, plus a labelled part.

    Args:
        store (SliceStore): a :class:`~medssl.data.store.SliceStore`.
        size: side of the probe images (the pre-training view size).
        max_volumes: volumes for the label-free diagnostics.
        slices_per_volume: slices per volume.
        labelled_cases: cases whose labels the linear probe may use (pre-training passes the
            validation patients of its seeded split, never test patients); half of them (at least
            one) fit the probe, the others score it. Fewer than two: no linear probe.
        max_labelled_slices: cap on the labelled slices (memory of the hypercolumns).

    Returns:
        A :class:`ProbeSet`.
    """
    cases = [c.case_id for c in store.cases]
    picked = [cases[i] for i in _evenly_spaced(len(cases), max_volumes)]
    imgs, pos, grp = [], [], []
    for g, cid in enumerate(picked):
        d = store.info(cid).num_slices
        for z in _evenly_spaced(d, slices_per_volume):
            imgs.append(_probe_image(store, cid, z, size))
            pos.append((z + 1) / d)
            grp.append(g)
    probe = ProbeSet(
        torch.from_numpy(np.stack(imgs))[:, None],
        torch.tensor(pos, dtype=torch.float32),
        torch.tensor(grp),
        volumes={"label_free": picked},
    )
    labelled = [c for c in labelled_cases if store.label(c) is not None]
    if len(labelled) >= 2:
        _add_labelled_slices(probe, store, size, labelled, max_labelled_slices)
    return probe


def _evenly_spaced(n: int, k: int) -> list[int]:
    """Up to ``k`` distinct indices evenly spaced over ``0..n-1`` (rounded), in order."""
    return sorted(set(np.linspace(0, n - 1, min(k, n)).round().astype(int).tolist()))


def _probe_image(store: SliceStore, cid: str, z: int, size: int) -> np.ndarray:
    """Slice ``z`` of ``cid``, centre pad/crop to ``size`` and min-max to [0, 1] as the views are."""
    from ..data.datasets import minmax01
    from ..data.transforms import pad_or_crop

    (x,) = pad_or_crop(np.asarray(store.image(cid)[z], dtype=np.float32), size=size)
    return minmax01(x)


def _add_labelled_slices(
    probe: ProbeSet, store: SliceStore, size: int, labelled: list[str], max_labelled_slices: int
) -> None:
    """Append the linear probe's slices to ``probe``: evenly spaced foreground slices of ``labelled``.

    The first half of ``labelled`` (at least one case) fits the probe, the rest scores it; nothing
    is added unless both halves have slices.
    """
    from ..data.transforms import pad_or_crop

    per_volume = max(1, max_labelled_slices // len(labelled))
    limgs, labs, train = [], [], []
    n_fit = max(1, len(labelled) // 2)
    for i, cid in enumerate(labelled):
        lab_vol = store.label(cid)
        assert lab_vol is not None  # the caller keeps labelled cases only
        fg = [z for z in range(store.info(cid).num_slices) if np.any(lab_vol[z])]
        for z in [fg[j] for j in _evenly_spaced(len(fg), per_volume)]:
            limgs.append(_probe_image(store, cid, z, size))
            (lab,) = pad_or_crop(np.asarray(lab_vol[z]), size=size)
            labs.append(lab.astype(np.int64))
            train.append(i < n_fit)
    if any(train) and not all(train):
        probe.labels = torch.from_numpy(np.stack(labs))
        probe.probe_train = torch.tensor(train)
        probe.num_classes = store.num_classes
        probe.volumes["linear_probe_fit"] = labelled[:n_fit]
        probe.volumes["linear_probe_score"] = labelled[n_fit:]
        probe.images = torch.cat([probe.images, torch.from_numpy(np.stack(limgs))[:, None]])


@torch.no_grad()
def probe_diagnostics(
    encoder, probe: ProbeSet, device: torch.device | str = "cpu", batch_size: int = 32
) -> dict[str, float]:
    """The representation diagnostics of ``encoder`` (a callable ``x -> [maps..., bottleneck]``).

    The encoder runs in eval mode (running BatchNorm statistics), as fine-tuning's evaluation does;
    its mode is restored afterwards.

    Returns:
        ``{"embed_spread", "effective_rank", "knn_position_mae"}`` on the label-free slices (pooled
        bottleneck), plus ``"linear_probe_dice"`` when the probe set has labels.
    """
    was_training = encoder.training
    encoder.eval()
    try:
        n_free = probe.positions.shape[0]
        pooled, hyper = [], []
        for s in range(0, probe.images.shape[0], batch_size):
            x = probe.images[s : s + batch_size].to(device)
            feats = encoder(x)
            pooled.append(feats[-1].float().mean(dim=(-2, -1)).cpu())
            if probe.labels is not None and s + batch_size > n_free:
                half = (x.shape[-2] // 2, x.shape[-1] // 2)
                keep = max(0, n_free - s)
                hyper.append([f[keep:].float().cpu() for f in feats])
        z = torch.cat(pooled)[:n_free]
        out = {
            "embed_spread": embedding_spread(z),
            "effective_rank": effective_rank(z),
            "knn_position_mae": knn_position_error(z, probe.positions, probe.groups),
        }
        if probe.labels is not None and hyper:
            maps = [torch.cat([h[i] for h in hyper]) for i in range(len(hyper[0]))]
            cols = hypercolumns(maps, half)
            labs = F.interpolate(probe.labels[:, None].float(), size=half, mode="nearest")[:, 0].long()
            fit = probe.probe_train
            assert fit is not None, "a ProbeSet with labels needs probe_train"
            out["linear_probe_dice"] = linear_probe_dice(
                cols[fit], labs[fit], cols[~fit], labs[~fit], probe.num_classes
            )
        return out
    finally:
        encoder.train(was_training)


#: what each diagnostic means, for the console summary and the report
DIAGNOSTICS: dict[str, str] = {
    "embed_spread": "embedding spread (1 = spread, 0 = collapsed)",
    "effective_rank": "effective rank of the embeddings",
    "knn_position_mae": "k-NN slice-position error across volumes (lower is better)",
    "linear_probe_dice": "linear-probe Dice on frozen features (validation patients)",
}


def collapsed(spread: float, peak: float, floor: float = 0.05) -> bool:
    """Whether an embedding spread reads as a collapse: below ``floor`` and below half the highest
    spread seen so far (the random encoder's included).

    The spread of a randomly initialised encoder's pooled bottleneck is itself small (about 0.06
    for the He-initialised U-Net, 0.00 with PyTorch's default init), so a fixed floor alone would
    call an untouched encoder collapsed; what collapses is a spread that fell.
    """
    return spread < floor and spread < 0.5 * peak


def format_diagnostics(initial: dict[str, float], final: dict[str, float]) -> str:
    """One line per diagnostic: the final value against the randomly initialised encoder's."""
    lines = ["representation diagnostics (final vs random init):"]
    for key, what in DIAGNOSTICS.items():
        if key in final and key in initial:
            lines.append(f"  {what}: {final[key]:.3f} (init {initial[key]:.3f})")
    return "\n".join(lines)
