"""SwAV: Sinkhorn-Knopp codes and the swapped-prediction loss.

Codes (no gradient): for prototype scores ``S`` (B x K, cosines between normalised embeddings and
normalised prototypes), ``Q = exp(S / eps)^T`` (K x B) is scaled alternately so that every prototype
(row) receives mass ``1/K`` and every sample (column) mass ``1/B``; after ``n`` rounds the codes are
``B * Q^T``. Exactly: every returned row (one sample's code) sums to 1 (the last scaling is by sample);
every column sums to ``B/K`` only in the limit of many iterations (equipartition of the batch).

Swapped prediction: with ``p_v = softmax(S_v / tau)`` the prediction from view ``v``, and ``q_i`` the
codes of an assignment view ``i``::

    L = mean_i  mean_{v != i}  -mean_b sum_k q_i[b, k] log p_v[b, k]

References:
    - [0] Caron et al., Unsupervised Learning of Visual Features by Contrasting Cluster Assignments,
      2020, https://arxiv.org/abs/2006.09882
    - [1] Cuturi, Sinkhorn Distances: Lightspeed Computation of Optimal Transport, 2013,
      https://arxiv.org/abs/1306.0895
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["sinkhorn_knopp", "swav_loss"]


@torch.no_grad()
def sinkhorn_knopp(
    scores: Tensor,
    epsilon: float = 0.05,
    iterations: int = 3,
    world_size: int = 1,
    all_reduce: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Equipartitioned soft assignments of samples to prototypes (SwAV's online codes).

    Args:
        scores: (B, K) prototype scores of this process's samples (a queue may be stacked above them).
        epsilon: entropy regularisation (0.05 in SwAV); ``exp(scores / epsilon)`` is taken in float32.
        iterations: Sinkhorn rounds (3 in SwAV); each scales prototypes then samples.
        world_size: processes whose samples share the transport problem (the global B is
            ``world_size * scores.shape[0]``).
        all_reduce: in-place sum over processes (``torch.distributed.all_reduce``); ``None`` in one process.

    Returns:
        (B, K) codes, each row summing to 1, no gradient.

    Raises:
        ValueError: on a non-positive epsilon or fewer than one iteration.
    """
    if epsilon <= 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    reduce = all_reduce if all_reduce is not None else (lambda t: t)
    q = torch.exp(scores.detach().float() / epsilon).t()  # (K, B)
    n_protos, n_samples = q.shape[0], q.shape[1] * world_size
    q = q / reduce(q.sum())
    for _ in range(iterations):
        q = q / reduce(q.sum(dim=1, keepdim=True)) / n_protos
        q = q / q.sum(dim=0, keepdim=True) / n_samples
    return (q * n_samples).t()


def swav_loss(scores: Sequence[Tensor], codes: Sequence[Tensor], temperature: float = 0.1) -> Tensor:
    """Swapped prediction: the codes of each assignment view are predicted from every other view.

    Args:
        scores: one (B, K) tensor of prototype scores per view (V >= 2 views; with gradient).
        codes: one (B, K) tensor of codes per assignment view; ``codes[i]`` belongs to ``scores[i]``
            (the assignment views come first, as SwAV's ``crops_for_assign``).
        temperature: tau of the prediction softmax (0.1 in SwAV).

    Returns:
        Scalar (float32): mean over assignment views of the mean over the other views of the
        cross-entropy ``-mean_b sum_k q log softmax(s / tau)``.

    Raises:
        ValueError: on a zero temperature, fewer than 2 views, or more codes than views.
    """
    if abs(temperature) < 1e-8:
        raise ValueError(f"temperature must be non-zero, got {temperature}")
    if len(scores) < 2 or not 1 <= len(codes) <= len(scores):
        raise ValueError(
            f"need >= 2 score tensors and 1..{len(scores)} code tensors, got {len(scores)} and {len(codes)}"
        )
    total = scores[0].new_zeros((), dtype=torch.float32)
    for i, q in enumerate(codes):
        sub = scores[0].new_zeros((), dtype=torch.float32)
        for v, s in enumerate(scores):
            if v == i:
                continue
            sub = sub - (q.detach().float() * F.log_softmax(s.float() / temperature, dim=1)).sum(dim=1).mean()
        total = total + sub / (len(scores) - 1)
    return total / len(codes)
