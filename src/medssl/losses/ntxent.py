"""Instance-discrimination losses: NT-Xent (SimCLR) and InfoNCE against a queue (MoCo), plus the queue update.

NT-Xent on two views ``a`` and ``b`` of ``n`` images: the ``2n`` embeddings are L2-normalised,
``s_ij = cos(u_i, u_j) / tau``, and every anchor ``i`` is classified against the other ``2n - 1``::

    l_i = -log( exp(s_{i,pos(i)}) / sum_{j != i} exp(s_ij) )
    L   = scale * mean_i l_i,      scale = tau / tau_base if tau_base is given else 1

``tau_base`` reproduces the SupCon code (``dewenzeng/positional_cl``) through which the SuperCL and
MACL papers ran their SimCLR baseline (a factor ``0.1 / 0.07`` on the loss).

InfoNCE (MoCo): the query ``q_i`` is classified against its key ``k_i`` (positive) and the ``K`` queued
keys (negatives)::

    l_i = -log( exp(q_i . k_i / tau) / (exp(q_i . k_i / tau) + sum_k exp(q_i . n_k / tau)) )

References:
    - [0] Chen et al., A Simple Framework for Contrastive Learning of Visual Representations, 2020,
      https://arxiv.org/abs/2002.05709
    - [1] He et al., Momentum Contrast for Unsupervised Visual Representation Learning, 2020,
      https://arxiv.org/abs/1911.05722
    - [2] Chen et al., Improved Baselines with Momentum Contrastive Learning, 2020,
      https://arxiv.org/abs/2003.04297
"""

from __future__ import annotations

from typing import overload

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["enqueue", "infonce_loss", "ntxent_loss"]


def _check_temperature(temperature: float) -> None:
    if abs(temperature) < 1e-8:
        raise ValueError(f"temperature must be non-zero, got {temperature}")


def ntxent_loss(z_a: Tensor, z_b: Tensor, temperature: float = 0.1, base_temperature: float | None = None) -> Tensor:
    """NT-Xent (normalised temperature-scaled cross-entropy) of SimCLR, symmetric in the two views.

    Args:
        z_a: embeddings of the first views. Shape: (n, D).
        z_b: embeddings of the second views, row ``i`` the same image as ``z_a[i]``. Shape: (n, D).
        temperature: tau (0.1 in the SuperCL/MACL baselines).
        base_temperature: if given, the loss is multiplied by ``temperature / base_temperature``
            (the SupCon code's scale; 0.07 there). ``None``: the plain NT-Xent of the SimCLR paper.

    Returns:
        Scalar, mean over the ``2n`` anchors, computed in float32.

    Raises:
        ValueError: on a zero temperature, mismatched shapes or fewer than 2 images.
    """
    _check_temperature(temperature)
    if z_a.ndim != 2 or z_a.shape != z_b.shape:
        raise ValueError(f"expected two (n, D) tensors of equal shape, got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    n = z_a.shape[0]
    if n < 2:
        raise ValueError(f"NT-Xent needs at least 2 images (negatives), got {n}")
    z = F.normalize(torch.cat([z_a, z_b], 0).float(), dim=1)
    logits = z @ z.t() / temperature
    eye = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    loss = F.cross_entropy(logits, target)
    if base_temperature is not None:
        loss = loss * (temperature / base_temperature)
    return loss


def infonce_loss(query: Tensor, key: Tensor, negatives: Tensor, temperature: float = 0.2) -> Tensor:
    """MoCo's InfoNCE: each query against its key (positive) and a bank of negatives.

    Inputs are L2-normalised here (MoCo normalises both ``q`` and ``k``; the queue holds normalised keys).
    No gradient flows into ``key`` or ``negatives`` (they come from the momentum encoder).

    Args:
        query: (B, D) queries (with gradient).
        key: (B, D) keys of the same images, other view.
        negatives: (K, D) queued keys.
        temperature: tau (0.2 in MoCo v2).

    Returns:
        Scalar, mean over the B queries, computed in float32.

    Raises:
        ValueError: on a zero temperature or mismatched shapes.
    """
    _check_temperature(temperature)
    if query.ndim != 2 or query.shape != key.shape or negatives.ndim != 2 or negatives.shape[1] != query.shape[1]:
        raise ValueError(
            f"expected query/key (B, D) and negatives (K, D), got {tuple(query.shape)}, {tuple(key.shape)}, "
            f"{tuple(negatives.shape)}"
        )
    q = F.normalize(query.float(), dim=1)
    k = F.normalize(key.detach().float(), dim=1)
    neg = F.normalize(negatives.detach().float(), dim=1)
    l_pos = (q * k).sum(1, keepdim=True)
    l_neg = q @ neg.t()
    logits = torch.cat([l_pos, l_neg], 1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


@overload
def enqueue(queue: Tensor, keys: Tensor, ptr: int) -> tuple[Tensor, int]: ...
@overload
def enqueue(queue: Tensor, keys: Tensor, ptr: Tensor) -> tuple[Tensor, Tensor]: ...
@torch.no_grad()
def enqueue(queue: Tensor, keys: Tensor, ptr: int | Tensor) -> tuple[Tensor, int | Tensor]:
    """First-in-first-out ring buffer update: write ``keys`` at ``ptr`` (wrapping), advance the pointer.

    Pure: returns a new queue; the caller copies it into its buffer. When more keys than slots are
    given, only the last ``K`` are kept (as if written one after another).

    Args:
        queue: (K, D) current queue.
        keys: (n, D) new entries, oldest first.
        ptr: index of the oldest entry, the next slot to overwrite, in ``0..K-1``: an int, or a 0-dim
            integer tensor on the queue's device (a method's buffer: then everything stays on the
            device, nothing is read back to the host, and the range is not checked).

    Returns:
        ``(new_queue, (ptr + n) % K)``, the pointer of the same kind as ``ptr``.

    Raises:
        ValueError: on a bad pointer or feature size.
    """
    k_slots = queue.shape[0]
    if not isinstance(ptr, Tensor) and not 0 <= ptr < k_slots:
        raise ValueError(f"queue pointer must be in 0..{k_slots - 1}, got {ptr}")
    if keys.ndim != 2 or keys.shape[1:] != queue.shape[1:]:
        raise ValueError(f"keys must be (n, {queue.shape[1]}), got {tuple(keys.shape)}")
    n = keys.shape[0]
    new_ptr = (ptr + n) % k_slots
    if n > k_slots:
        ptr = (ptr + n - k_slots) % k_slots
        keys = keys[n - k_slots :]
    idx = (ptr + torch.arange(keys.shape[0], device=queue.device)) % k_slots
    out = queue.clone()
    out[idx] = keys.detach().to(queue.dtype)
    return out, new_ptr
