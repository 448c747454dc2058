"""WCL's losses (Zheng et al. 2021): instance NT-Xent plus a graph loss on 1-NN connected components.

Graph branch (per view, on the second head's embeddings ``g``): every embedding is joined to its
nearest neighbour by cosine similarity (itself excluded); the undirected graph's connected
components are pseudo-labels; the SupCon loss of one view's embeddings (within that view, self
excluded from the denominator) uses the OTHER view's labels as positives ("swapped")::

    L_graph = 1/2 [ SupCon(g_1; M(g_2)) + SupCon(g_2; M(g_1)) ]

The graph and its components come from :mod:`medssl.losses.graph` (on the device, no host sync).

References:
    - [0] Zheng et al., Weakly Supervised Contrastive Learning, ICCV 2021, https://arxiv.org/abs/2110.04770
    - [1] Chen et al., A Simple Framework for Contrastive Learning (SimCLR), ICML 2020, https://arxiv.org/abs/2002.05709
"""

from __future__ import annotations

import torch
from torch import Tensor

from .graph import component_closure, component_mask, connected_components, nearest_neighbor_graph
from .supcon import cosine_logits, instance_mask, supcon_from_logits, supcon_loss

__all__ = [
    "component_closure",
    "component_mask",
    "connected_components",
    "nearest_neighbor_graph",
    "wcl_graph_loss",
    "wcl_instance_loss",
]


def wcl_instance_loss(
    z1: Tensor, z2: Tensor, temperature: float = 0.1, base_temperature: float | None = None
) -> Tensor:
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
