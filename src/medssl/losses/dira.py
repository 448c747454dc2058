"""DiRA's pieces as pure functions: image distortions, MoCo's InfoNCE and the LSGAN losses.

Distortions (restorative learning rebuilds the undistorted image from them). Each takes a
(B, C, H, W) tensor and an explicit CPU ``torch.Generator``, draws its boxes per image, and
returns ``(distorted, mask)`` where ``mask`` (B, 1, H, W) bool marks exactly the pixels it may
have changed; every other pixel is returned unchanged. Box sizes are fractions of the image side,
scaled from the reference code's pixel sizes at 224 px:

* :func:`cutout`: up to 10 boxes of 10-70 px set to zero (the reference code's default distortion);
* :func:`inpaint`: up to 5 boxes of 1/6-1/3 of the side filled with uniform noise (Models Genesis);
* :func:`outpaint`: everything set to zero except up to 10 large boxes (side minus 50-70 px) kept;
* :func:`patch_shuffle`: 10 pairs of disjoint 10-15 px boxes swapped;
* :func:`random_distortion`: per image, one of them by probability (reference code: cut-out 0.3,
  out-painting 0.05, shuffle 0.3, nothing 0.35; in-painting 0 by default).

Losses:

* :func:`moco_infonce`: ``-log exp(q.k/t) / (exp(q.k/t) + sum_n exp(q.n/t))`` with queue negatives n;
* :func:`lsgan_discriminator_loss`: ``1/2 [mean (D(x) - 1)^2 + mean D(G)^2]``;
* :func:`lsgan_generator_loss`: ``mean (D(G) - 1)^2``.

References:
    - [0] Haghighi et al., DiRA: Discriminative, Restorative, and Adversarial Learning for
      Self-supervised Medical Image Analysis, CVPR 2022, https://arxiv.org/abs/2204.10437
    - [1] Zhou et al., Models Genesis, MICCAI 2019 / MedIA 2021, https://arxiv.org/abs/1908.06912
    - [2] Chen et al., Improved Baselines with Momentum Contrastive Learning (MoCo v2), 2020, https://arxiv.org/abs/2003.04297
    - [3] Mao et al., Least Squares Generative Adversarial Networks, ICCV 2017, https://arxiv.org/abs/1611.04076
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DEFAULT_DISTORTION_PROBS",
    "cutout",
    "inpaint",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "moco_infonce",
    "outpaint",
    "patch_shuffle",
    "random_distortion",
]

#: probability of each distortion per image (the remainder: no distortion), after the reference code
DEFAULT_DISTORTION_PROBS: dict[str, float] = {"cutout": 0.3, "outpaint": 0.05, "shuffle": 0.3, "inpaint": 0.0}

_Box = tuple[int, int, int, int]  # row, col, height, width


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand((), generator=generator))


def _randint(lo: int, hi: int, generator: torch.Generator) -> int:
    """Uniform integer in [lo, hi] (inclusive)."""
    if hi <= lo:
        return lo
    return int(torch.randint(lo, hi + 1, (), generator=generator))


def _side(frac: float, n: int) -> int:
    return max(1, min(n, round(frac * n)))


def _box(h: int, w: int, size: tuple[int, int], size_w: tuple[int, int], generator: torch.Generator) -> _Box:
    """A box with side ranges ``size`` (rows) and ``size_w`` (cols), kept ~3/224 of the side from the border."""
    bh = _randint(size[0], size[1], generator)
    bw = _randint(size_w[0], size_w[1], generator)
    mh, mw = round(3 / 224 * h), round(3 / 224 * w)
    lo_r, hi_r = (mh, h - bh - mh) if h - bh - mh >= mh else (0, max(0, h - bh))
    lo_c, hi_c = (mw, w - bw - mw) if w - bw - mw >= mw else (0, max(0, w - bw))
    return _randint(lo_r, hi_r, generator), _randint(lo_c, hi_c, generator), bh, bw


def _sizes(h: int, w: int, size: tuple[float, float]) -> tuple[tuple[int, int], tuple[int, int]]:
    return (_side(size[0], h), _side(size[1], h)), (_side(size[0], w), _side(size[1], w))


def _boxes(
    h: int, w: int, size: tuple[float, float], max_boxes: int, stop_prob: float, generator: torch.Generator
) -> list[_Box]:
    """Up to ``max_boxes`` boxes; after each one, stop with probability ``stop_prob``."""
    sh, sw = _sizes(h, w, size)
    out = []
    for _ in range(max_boxes):
        out.append(_box(h, w, sh, sw, generator))
        if _uniform(generator) < stop_prob:
            break
    return out


def _check(x: Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}")


def _cutout_one(
    img: Tensor,
    m: Tensor,
    g: torch.Generator,
    size: tuple[float, float],
    max_boxes: int,
    stop_prob: float,
    value: float,
) -> None:
    for r, c, bh, bw in _boxes(img.shape[-2], img.shape[-1], size, max_boxes, stop_prob, g):
        img[:, r : r + bh, c : c + bw] = value
        m[:, r : r + bh, c : c + bw] = True


def _inpaint_one(
    img: Tensor, m: Tensor, g: torch.Generator, size: tuple[float, float], max_boxes: int, stop_prob: float
) -> None:
    for r, c, bh, bw in _boxes(img.shape[-2], img.shape[-1], size, max_boxes, stop_prob, g):
        noise = torch.rand((img.shape[0], bh, bw), generator=g)
        img[:, r : r + bh, c : c + bw] = noise.to(img)
        m[:, r : r + bh, c : c + bw] = True


def _outpaint_one(
    img: Tensor,
    m: Tensor,
    g: torch.Generator,
    keep: tuple[float, float],
    max_boxes: int,
    stop_prob: float,
    value: float,
) -> None:
    h, w = img.shape[-2:]
    orig = img.clone()
    keep_mask = torch.zeros((1, h, w), dtype=torch.bool, device=img.device)
    for r, c, bh, bw in _boxes(h, w, keep, max_boxes, stop_prob, g):
        keep_mask[:, r : r + bh, c : c + bw] = True
    img.copy_(torch.where(keep_mask, orig, torch.full_like(orig, value)))
    m.copy_(~keep_mask)


def _disjoint(a: _Box, b: _Box) -> bool:
    return a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1]


def _shuffle_one(img: Tensor, m: Tensor, g: torch.Generator, size: tuple[float, float], pairs: int) -> None:
    h, w = img.shape[-2:]
    orig = img.clone()
    sh, sw = _sizes(h, w, size)
    for _ in range(pairs):
        bh, bw = _randint(sh[0], sh[1], g), _randint(sw[0], sw[1], g)
        for _try in range(100):
            a = _box(h, w, (bh, bh), (bw, bw), g)
            b = _box(h, w, (bh, bh), (bw, bw), g)
            if _disjoint(a, b):
                break
        else:  # image too small for two disjoint boxes of this size
            continue
        (ra, ca, _, _), (rb, cb, _, _) = a, b
        img[:, ra : ra + bh, ca : ca + bw] = orig[:, rb : rb + bh, cb : cb + bw]
        img[:, rb : rb + bh, cb : cb + bw] = orig[:, ra : ra + bh, ca : ca + bw]
        m[:, ra : ra + bh, ca : ca + bw] = True
        m[:, rb : rb + bh, cb : cb + bw] = True


def _apply(x: Tensor, fn: Callable[..., None], generator: torch.Generator, *args: Any) -> tuple[Tensor, Tensor]:
    _check(x)
    out = x.clone()
    mask = torch.zeros((x.shape[0], 1, *x.shape[-2:]), dtype=torch.bool, device=x.device)
    for i in range(x.shape[0]):
        fn(out[i], mask[i], generator, *args)
    return out, mask


def cutout(
    x: Tensor,
    generator: torch.Generator,
    size: tuple[float, float] = (10 / 224, 70 / 224),
    max_boxes: int = 10,
    stop_prob: float = 0.1,
    value: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Set up to ``max_boxes`` random boxes to ``value``.

    Args:
        x: (B, C, H, W) images.
        generator: CPU generator that draws every box.
        size: box side range as fractions of the image side.
        max_boxes: most boxes per image; after each box the loop stops with ``stop_prob``.
        stop_prob: probability to stop after each box.
        value: fill value.

    Returns:
        ``(distorted (B, C, H, W), mask (B, 1, H, W) bool of the boxes)``.
    """
    return _apply(x, _cutout_one, generator, size, max_boxes, stop_prob, value)


def inpaint(
    x: Tensor,
    generator: torch.Generator,
    size: tuple[float, float] = (1 / 6, 1 / 3),
    max_boxes: int = 5,
    stop_prob: float = 0.05,
) -> tuple[Tensor, Tensor]:
    """Fill up to ``max_boxes`` random boxes with uniform noise in [0, 1) (Models Genesis in-painting).

    Args:
        x: (B, C, H, W) images.
        generator: CPU generator for the boxes and the noise.
        size: box side range as fractions of the image side.
        max_boxes: most boxes per image.
        stop_prob: probability to stop after each box.

    Returns:
        ``(distorted, mask of the boxes)``, shapes (B, C, H, W) and (B, 1, H, W).
    """
    return _apply(x, _inpaint_one, generator, size, max_boxes, stop_prob)


def outpaint(
    x: Tensor,
    generator: torch.Generator,
    keep: tuple[float, float] = (154 / 224, 174 / 224),
    max_boxes: int = 10,
    stop_prob: float = 0.1,
    value: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Set everything to ``value`` except up to ``max_boxes`` large kept boxes.

    Args:
        x: (B, C, H, W) images.
        generator: CPU generator for the boxes.
        keep: side range of the kept boxes as fractions of the image side.
        max_boxes: most kept boxes per image.
        stop_prob: probability to stop after each box.
        value: fill value outside the kept boxes.

    Returns:
        ``(distorted, mask)`` where the mask marks the filled pixels (outside every kept box).
    """
    return _apply(x, _outpaint_one, generator, keep, max_boxes, stop_prob, value)


def patch_shuffle(
    x: Tensor, generator: torch.Generator, size: tuple[float, float] = (10 / 224, 15 / 224), pairs: int = 10
) -> tuple[Tensor, Tensor]:
    """Swap the contents of ``pairs`` pairs of disjoint equal-sized boxes (read from the original image).

    Args:
        x: (B, C, H, W) images.
        generator: CPU generator for the boxes.
        size: box side range as fractions of the image side.
        pairs: number of swapped pairs per image.

    Returns:
        ``(distorted, mask of both boxes of every pair)``.
    """
    return _apply(x, _shuffle_one, generator, size, pairs)


def random_distortion(
    x: Tensor, generator: torch.Generator, probs: dict[str, float] | None = None
) -> tuple[Tensor, Tensor]:
    """Per image, one distortion drawn with ``probs`` (keys cutout, outpaint, shuffle, inpaint), else none.

    Args:
        x: (B, C, H, W) images.
        generator: CPU generator for every draw.
        probs: probability of each distortion; they must sum to at most 1 (default
            :data:`DEFAULT_DISTORTION_PROBS`).

    Returns:
        ``(distorted, mask)`` as the single distortions.

    Raises:
        ValueError: on an unknown key or probabilities summing to more than 1.
    """
    probs = dict(DEFAULT_DISTORTION_PROBS if probs is None else probs)
    fns: dict[str, Callable[[Tensor, torch.Generator], tuple[Tensor, Tensor]]] = {
        "cutout": cutout,
        "outpaint": outpaint,
        "shuffle": patch_shuffle,
        "inpaint": inpaint,
    }
    unknown = set(probs) - set(fns)
    if unknown:
        raise ValueError(f"unknown distortions {sorted(unknown)}; known: {sorted(fns)}")
    if sum(probs.values()) > 1.0 + 1e-9 or min(probs.values(), default=0.0) < 0:
        raise ValueError(f"distortion probabilities must be >= 0 and sum to <= 1, got {probs}")
    _check(x)
    outs, masks = [], []
    for i in range(x.shape[0]):
        xi = x[i : i + 1]
        r, acc, chosen = _uniform(generator), 0.0, None
        for name, p in probs.items():
            acc += p
            if r < acc:
                chosen = name
                break
        if chosen is None:
            outs.append(xi.clone())
            masks.append(torch.zeros((1, 1, *x.shape[-2:]), dtype=torch.bool, device=x.device))
        else:
            o, m = fns[chosen](xi, generator)
            outs.append(o)
            masks.append(m)
    return torch.cat(outs), torch.cat(masks)


def moco_infonce(q: Tensor, k: Tensor, queue: Tensor, temperature: float = 0.2) -> Tensor:
    """MoCo v2's InfoNCE: the key of the same image against the queue's negatives.

    Args:
        q: (B, D) queries (normalised inside).
        k: (B, D) keys from the momentum encoder (normalised inside, no gradient).
        queue: (K, D) negative keys (normalised inside, no gradient).
        temperature: tau (0.2 in MoCo v2 and DiRA).

    Returns:
        Scalar cross entropy with the positive at index 0.
    """
    if abs(temperature) < 1e-8:
        raise ValueError(f"temperature must be non-zero, got {temperature}")
    qn = F.normalize(q.float(), dim=1)
    kn = F.normalize(k.detach().float(), dim=1)
    neg = F.normalize(queue.detach().float(), dim=1)
    logits = torch.cat([(qn * kn).sum(1, keepdim=True), qn @ neg.T], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def lsgan_discriminator_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """LSGAN discriminator loss ``1/2 [mean (D(real) - 1)^2 + mean D(fake)^2]`` (any score shapes)."""
    return 0.5 * (((real_scores.float() - 1.0) ** 2).mean() + (fake_scores.float() ** 2).mean())


def lsgan_generator_loss(fake_scores: Tensor) -> Tensor:
    """LSGAN generator loss ``mean (D(fake) - 1)^2``."""
    return ((fake_scores.float() - 1.0) ** 2).mean()
