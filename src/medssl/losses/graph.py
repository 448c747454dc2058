"""1-nearest-neighbour graphs and their connected components, on the device, without host syncs.

Two methods build positives from the connected components of the undirected 1-NN graph of a batch
of embeddings: WCL (Zheng et al., ICCV 2021, on its second head's projections) and SuperCL's CCL
(on the flattened average-superpixel maps). Both only need the same-component mask, which is the
transitive closure of the adjacency; it is computed with a fixed number (``ceil(log2 N)``) of boolean
matrix squarings, so nothing inside a training step waits for the device (no early exit on a
host-side test, no variable-size ``unique``, no CPU graph library).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["component_closure", "component_mask", "connected_components", "nearest_neighbor_graph"]


@torch.no_grad()
def nearest_neighbor_graph(z: Tensor) -> Tensor:
    """Undirected 1-nearest-neighbour graph by cosine similarity (self excluded).

    Args:
        z: (N, D) embeddings (any trailing shape is flattened), N >= 2.

    Returns:
        (N, N) symmetric boolean adjacency without self-loops: ``A_ij`` when j is i's nearest
        neighbour or i is j's (ties: the lowest index, as ``argmax``).
    """
    n = z.shape[0]
    if n < 2:
        raise ValueError(f"a nearest-neighbour graph needs at least 2 nodes, got {n}")
    v = F.normalize(z.detach().float().reshape(n, -1), dim=-1)
    sim = (v @ v.T).masked_fill(torch.eye(n, dtype=torch.bool, device=z.device), float("-inf"))
    adj = torch.zeros(n, n, dtype=torch.bool, device=z.device)
    adj[torch.arange(n, device=z.device), sim.argmax(dim=1)] = True
    return adj | adj.T


@torch.no_grad()
def component_closure(adjacency: Tensor) -> Tensor:
    """Transitive closure of an undirected graph: ``R_ij`` when i and j are in one connected component.

    Always ``ceil(log2 N)`` squarings of ``A | A^T | I`` (paths of length up to ``2^k`` after k), no
    early exit.

    Args:
        adjacency: (N, N) boolean (or 0/1) adjacency; it is symmetrised.

    Returns:
        (N, N) boolean, symmetric, true on the diagonal: the same-component mask.
    """
    n = adjacency.shape[0]
    a = adjacency.bool()
    reach = (a | a.T | torch.eye(n, dtype=torch.bool, device=adjacency.device)).float()
    for _ in range(max(1, math.ceil(math.log2(max(n, 2))))):
        reach = ((reach @ reach) > 0).float()
    return reach.bool()


@torch.no_grad()
def connected_components(adjacency: Tensor) -> Tensor:
    """Component labels of an undirected graph (for figures and tests; it syncs, the losses do not).

    Args:
        adjacency: (N, N) boolean (or 0/1) adjacency; it is symmetrised.

    Returns:
        (N,) long labels 0..K-1 in the order of each component's first node (as
        ``scipy.sparse.csgraph.connected_components``).
    """
    first = component_closure(adjacency).float().argmax(dim=1)  # smallest node of the component
    return torch.unique(first, return_inverse=True)[1]


def component_mask(labels: Tensor) -> Tensor:
    """(N, N) boolean mask, true where two nodes share a label."""
    return labels[:, None] == labels[None, :]
