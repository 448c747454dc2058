"""WCL's losses (Zheng et al. 2021): instance NT-Xent plus a graph loss on 1-NN connected components.

Graph branch (per view, on the second head's embeddings ``g``): every embedding is joined to its
nearest neighbour by cosine similarity (itself excluded); the undirected graph's connected
components are pseudo-labels; the SupCon loss of one view's embeddings (within that view, self
excluded from the denominator) uses the OTHER view's labels as positives ("swapped")::

    L_graph = 1/2 [ SupCon(g_1; M(g_2)) + SupCon(g_2; M(g_1)) ]

The connected-component code here is this module's own (transitive closure by a fixed number of
boolean matrix squarings), shared with no other module.

References:
    - [0] Zheng et al., Weakly Supervised Contrastive Learning, ICCV 2021, https://arxiv.org/abs/2110.04770
    - [1] Chen et al., A Simple Framework for Contrastive Learning (SimCLR), ICML 2020, https://arxiv.org/abs/2002.05709
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .supcon import cosine_logits, instance_mask, supcon_from_logits, supcon_loss

__all__ = ["nearest_neighbor_graph", "component_closure", "connected_components", "component_mask", "wcl_instance_loss", "wcl_graph_loss"]


@torch.no_grad()
def nearest_neighbor_graph(z: Tensor) -> Tensor:
    """Undirected 1-nearest-neighbour graph by cosine similarity (self excluded).

    Args:
        z: (N, D) embeddings, N >= 2.

    Returns:
        (N, N) symmetric boolean adjacency without self-loops: ``A_ij`` when j is i's nearest
        neighbour or i is j's.
    """
    n = z.shape[0]
    if n < 2:
        raise ValueError(f"a nearest-neighbour graph needs at least 2 nodes, got {n}")
    sim = cosine_logits(z, 1.0)
    sim = sim.masked_fill(torch.eye(n, dtype=torch.bool, device=z.device), float("-inf"))
    nn_idx = sim.argmax(dim=1)
    adj = torch.zeros(n, n, dtype=torch.bool, device=z.device)
    rows = torch.arange(n, device=z.device)
    adj[rows, nn_idx] = True
    return adj | adj.T


@torch.no_grad()
def component_closure(adjacency: Tensor) -> Tensor:
    """Transitive closure of an undirected graph: ``R_ij`` when i and j are in one connected component.

    ``ceil(log2 N)`` boolean squarings of ``A | A^T | I``, always that many (no early exit), so
    nothing waits for the device inside a training step.

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
    """Connected components of an undirected graph.

    Args:
        adjacency: (N, N) boolean (or 0/1) adjacency; it is symmetrised.

    Returns:
        (N,) long labels 0..K-1, numbered in the order of each component's smallest node.
    """
    first = component_closure(adjacency).float().argmax(dim=1)  # smallest reachable node = representative
    return torch.unique(first, return_inverse=True)[1]


def component_mask(labels: Tensor) -> Tensor:
    """(N, N) boolean mask, true where two nodes share a label."""
    return labels[:, None] == labels[None, :]


def wcl_instance_loss(z1: Tensor, z2: Tensor, temperature: float = 0.1, base_temperature: float | None = None) -> Tensor:
    """NT-Xent over the 2B embeddings of two views (the positive is the other view of the same image).

    Args:
        z1: (B, D) first-view embeddings of head 1.
        z2: (B, D) second-view embeddings of head 1.
        temperature: tau (0.1 in WCL).
        base_temperature: scale ``tau / tau_base`` (``None``: no scale, as WCL).

    Returns:
        Scalar loss.
    """
    z = torch.cat([z1, z2], dim=0)
    bt = temperature if base_temperature is None else base_temperature
    return supcon_loss(z, instance_mask(z1.shape[0], 2, z.device), temperature, bt)


def wcl_graph_loss(g1: Tensor, g2: Tensor, temperature: float = 0.1, base_temperature: float | None = None) -> Tensor:
    """WCL's swapped graph loss (see the module docstring).

    Args:
        g1: (B, D) first-view embeddings of head 2.
        g2: (B, D) second-view embeddings of head 2.
        temperature: tau (0.1 in WCL).
        base_temperature: scale ``tau / tau_base`` (``None``: no scale, as WCL).

    Returns:
        Scalar loss; the graphs are built without gradient.
    """
    bt = temperature if base_temperature is None else base_temperature
    # the closure is the same-component mask (= component_mask(connected_components(.)), without the
    # relabelling, whose variable-size unique would wait for the device)
    m1 = component_closure(nearest_neighbor_graph(g1.detach()))
    m2 = component_closure(nearest_neighbor_graph(g2.detach()))
    l1 = supcon_from_logits(cosine_logits(g1, temperature), m2, temperature, bt)
    l2 = supcon_from_logits(cosine_logits(g2, temperature), m1, temperature, bt)
    return 0.5 * (l1 + l2)
