"""SuperCL's losses (METHODS.md section 3): ILCP (L_intra), ASP, CCL, IGCP (L_inter) and the total.

Notation: ``f1, f2`` are the encoder's bottleneck maps of the two intensity views (B, C, h, w),
``z3, z4`` the projections of the two spatial views (B, d), ``S1`` (``S2``) the superpixel maps of
v1 (v2) at input resolution (B, H, W).

* L_ins = PCL loss on ``[z3, z4]`` with slice positions (delta 0.1);
* ILCP: per image, SupCon over every ``stride``-th pixel token (raster order) of ``f1[b]`` and
  ``f2[b]``, positives = same superpixel label of ``S1`` downsampled to h x w (nearest);
* ASP: ``A_b(p) = sum_{q in k(p)} m_b(q) / n`` with ``m_b`` the channel mean of ``f_b`` and
  ``n = h*w`` (the released code) or ``|k|``;
* CCL: 1-NN graph (cosine, self excluded) on the 2B flattened ASP maps, connected components,
  positives = same component, and the two views of an image always positive;
* L_inter = SupCon on ``[z3, z4]`` with the CCL mask;
* L = L_ins + 1.0 L_intra + 0.5 L_inter.

References:
    - [0] Zhang et al., SuperCL: Superpixel Guided Contrastive Learning for Medical Image
      Segmentation Pre-training, IEEE TIP 2026, https://arxiv.org/abs/2504.14737
    - [1] Zeng et al., Positional Contrastive Learning, 2021, https://arxiv.org/abs/2106.09157
    - [2] Zheng et al., Weakly Supervised Contrastive Learning (WCL), ICCV 2021 (the 1-NN graph)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..utils.distributed import gather_nograd, gather_with_grad
from .graph import component_closure, connected_components, nearest_neighbor_graph
from .supcon import cosine_logits, instance_mask, positional_mask, supcon_from_logits

__all__ = [
    "average_superpixel_map",
    "ccl_components",
    "ccl_mask",
    "downsample_superpixels",
    "ilcp_stride",
    "inter_loss",
    "intra_loss",
    "supercl_loss",
]


def ilcp_stride(height: int, width: int, stride: int = 16, min_tokens: int = 64) -> int:
    """The raster stride of ILCP's token sampling on an ``height x width`` bottleneck.

    The reference keeps every ``stride``-th token (16): at its 512 px views (a 32 x 32 bottleneck)
    that is 64 tokens per view in two columns. On smaller grids the same stride keeps too few
    tokens, all in the left columns (128 px: 4 tokens of an 8 x 8 grid, one column), so the stride
    is lowered until at least ``min_tokens`` tokens are kept (all of them on grids of fewer cells):
    ``max(1, min(stride, height * width // min_tokens))``. At 512 px the reference's stride is kept
    exactly; ``min_tokens=0`` gives the reference at every size.

    Args:
        height: bottleneck height h.
        width: bottleneck width w.
        stride: the largest stride (the reference's 16).
        min_tokens: tokens per view to keep at least (64, the reference's count at 512 px).

    Returns:
        The stride to use (>= 1).
    """
    if stride < 1 or min_tokens < 0:
        raise ValueError(f"stride must be >= 1 and min_tokens >= 0, got {stride} and {min_tokens}")
    if min_tokens == 0:
        return stride
    return max(1, min(stride, (height * width) // min_tokens))


def downsample_superpixels(superpixels: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest downsampling of label maps, as ``F.interpolate(mode="nearest")`` in the reference.

    Shape: superpixels (B, H, W) integer -> (B, h, w) long (pixel ``(i, j)`` takes the label at
    ``(floor(i * H / h), floor(j * W / w))``).
    """
    if superpixels.ndim != 3:
        raise ValueError(f"superpixels must be (B, H, W), got {tuple(superpixels.shape)}")
    if tuple(superpixels.shape[-2:]) == tuple(size):
        return superpixels.long()
    # float64 keeps every label exact
    out = F.interpolate(superpixels[:, None].double(), size=tuple(size), mode="nearest")
    return out[:, 0].round().long()


def intra_loss(
    f1: Tensor,
    f2: Tensor,
    superpixels: Tensor,
    stride: int = 16,
    temperature: float = 0.1,
    base_temperature: float = 0.07,
) -> Tensor:
    """ILCP / L_intra: pixel-level SupCon inside each image, positives = same superpixel.

    For each image b: the ``h*w`` pixel tokens of ``f1[b]`` and of ``f2[b]`` are taken in raster
    order, every ``stride``-th one is kept (the same positions in both views), and SupCon runs on
    the ``2n`` kept tokens with positives = tokens whose superpixel label (``superpixels[b]``
    downsampled to h x w) is equal, so the same pixel in the other view is always a positive.

    Args:
        f1: (B, C, h, w) features of view 1.
        f2: (B, C, h, w) features of view 2 (pixel-aligned with view 1).
        superpixels: (B, H, W) integer labels of view 1 at any resolution (downsampled, nearest).
        stride: keep every ``stride``-th token (16 in the reference).
        temperature: tau.
        base_temperature: tau_base.

    Returns:
        Scalar: the mean over the B images of the per-image SupCon loss.
    """
    if f1.shape != f2.shape or f1.ndim != 4:
        raise ValueError(
            f"f1 and f2 must have the same (B, C, h, w) shape, got {tuple(f1.shape)} and {tuple(f2.shape)}"
        )
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    b, c, h, w = f1.shape
    labels = downsample_superpixels(superpixels, (h, w)).reshape(b, h * w)[:, ::stride]
    t1 = f1.reshape(b, c, h * w).transpose(1, 2)[:, ::stride]
    t2 = f2.reshape(b, c, h * w).transpose(1, 2)[:, ::stride]
    tokens = torch.cat([t1, t2], dim=1)  # (B, 2n, C)
    same = labels[:, :, None] == labels[:, None, :]
    mask = same.repeat(1, 2, 2)
    # every image has the same number of anchors, each with a positive: the mean over all anchors
    # equals the mean over images of the per-image means
    return supcon_from_logits(cosine_logits(tokens, temperature), mask, temperature, base_temperature)


def average_superpixel_map(f: Tensor, superpixels: Tensor, divide_by: str = "image") -> Tensor:
    """ASP: the channel-mean map averaged inside each superpixel.

    ``m_b = mean_c f_b``; for superpixel k of image b, every pixel of k gets
    ``sum_{q in k} m_b(q) / n`` with ``n = h * w`` (``divide_by="image"``, the released code) or
    ``n = |k|`` (``divide_by="superpixel"``, a true average).

    Args:
        f: (B, C, h, w) features, or (B, h, w) an already channel-averaged map.
        superpixels: (B, H, W) integer labels (downsampled to h x w, nearest, if H, W differ).
        divide_by: ``"image"`` or ``"superpixel"``.

    Returns:
        (B, h, w) the ASP maps (differentiable with respect to ``f``).
    """
    if divide_by not in ("image", "superpixel"):
        raise ValueError(f"divide_by must be 'image' or 'superpixel', got '{divide_by}'")
    m = f.float().mean(dim=1) if f.ndim == 4 else f.float()
    if m.ndim != 3:
        raise ValueError(f"f must be (B, C, h, w) or (B, h, w), got {tuple(f.shape)}")
    b, h, w = m.shape
    labels = downsample_superpixels(superpixels, (h, w)).reshape(b, h * w)
    # one label range of k = H * W per image (an H x W map's labels, 0..K-1 from the superpixel
    # stage, stay below it): a static size, so no host-side max of the labels inside the step
    k = max(1, int(superpixels.shape[-2]) * int(superpixels.shape[-1]))
    # a host-side check, on CPU tensors outside a compiled graph only (a graph break otherwise)
    checkable = labels.device.type == "cpu" and not torch.compiler.is_compiling()
    if checkable and labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise ValueError(
            f"superpixel labels must be in [0, {k}) for a {tuple(superpixels.shape[-2:])} map, "
            f"got {int(labels.min())}..{int(labels.max())}"
        )
    idx = labels.long() + torch.arange(b, device=labels.device)[:, None] * k
    flat = idx.reshape(-1)
    sums = torch.zeros(b * k, dtype=m.dtype, device=m.device).scatter_add(0, flat, m.reshape(-1))
    if divide_by == "image":
        means = sums / float(h * w)
    else:
        counts = torch.zeros(b * k, dtype=m.dtype, device=m.device).scatter_add(0, flat, torch.ones_like(m.reshape(-1)))
        means = sums / counts.clamp_min(1)
    return means[idx].reshape(b, h, w)


@torch.no_grad()
def ccl_components(vectors: Tensor) -> Tensor:
    """Connected components of the undirected 1-nearest-neighbour graph (cosine, self excluded).

    Args:
        vectors: (N, D) e.g. the 2B flattened ASP maps (views 1 then views 2).

    Returns:
        (N,) long component index of each node (``0..C-1`` in order of first appearance,
        as ``scipy.sparse.csgraph.connected_components``).
    """
    n = vectors.shape[0]
    if n <= 1:
        return torch.zeros(n, dtype=torch.long, device=vectors.device)
    return connected_components(nearest_neighbor_graph(vectors))


@torch.no_grad()
def ccl_mask(asp_vectors: Tensor, views: int = 2) -> Tensor:
    """CCL positive mask: same 1-NN-graph component, plus the views of one image forced positive.

    Only the pairs (view u of image i, view v of image i) are added to the component mask, as in
    the released code (the components of the two views are not merged transitively).

    Args:
        asp_vectors: (V*B, D) flattened ASP maps, all views 1 first, then all views 2, ...
        views: V.

    Returns:
        (V*B, V*B) bool mask (diagonal True; SupCon ignores it).
    """
    n = asp_vectors.shape[0]
    if n % views:
        raise ValueError(f"{n} vectors cannot be split into {views} views")
    if n <= 1:
        return torch.ones(n, n, dtype=torch.bool, device=asp_vectors.device)
    # the same-component mask is the closure of the graph: computed on the device, no host sync
    mask = component_closure(nearest_neighbor_graph(asp_vectors))
    return mask | instance_mask(n // views, views, device=asp_vectors.device)


def inter_loss(
    z3: Tensor,
    z4: Tensor,
    mask: Tensor,
    temperature: float = 0.1,
    base_temperature: float = 0.07,
    logits: Tensor | None = None,
) -> Tensor:
    """IGCP / L_inter: SupCon on ``[z3, z4]`` with the CCL mask.

    Args:
        z3: (B, d) projections of view 3.
        z4: (B, d) projections of view 4.
        mask: (2B, 2B) bool positives (from :func:`ccl_mask`).
        temperature: tau.
        base_temperature: tau_base.
        logits: optional precomputed ``cosine_logits(cat([z3, z4]), temperature)`` (2B, 2B), to share
            the similarity matrix with L_ins.

    Returns:
        Scalar loss.
    """
    if logits is None:
        logits = cosine_logits(torch.cat([z3, z4], dim=0), temperature)
    if mask.shape != logits.shape:
        raise ValueError(f"mask {tuple(mask.shape)} does not match logits {tuple(logits.shape)}")
    return supcon_from_logits(logits, mask, temperature, base_temperature)


def supercl_loss(
    f1: Tensor,
    f2: Tensor,
    z3: Tensor,
    z4: Tensor,
    superpixels: Tensor,
    positions: Tensor | None = None,
    superpixels2: Tensor | None = None,
    *,
    temperature: float = 0.1,
    base_temperature: float = 0.07,
    delta: float = 0.1,
    stride: int = 16,
    min_tokens: int = 0,
    asp_divide: str = "image",
    w_intra: float = 1.0,
    w_inter: float = 0.5,
    gather: bool = False,
) -> dict[str, Tensor]:
    """The SuperCL objective ``L = L_ins + w_intra L_intra + w_inter L_inter``.

    The similarity matrix of ``[z3, z4]`` is computed once and shared by L_ins and L_inter.

    Args:
        f1: (B, C, h, w) bottleneck features of v1.
        f2: (B, C, h, w) bottleneck features of v2.
        z3: (B, d) projected features of v3.
        z4: (B, d) projected features of v4.
        superpixels: (B, H, W) integer superpixel labels of v1 (S1).
        positions: (B,) slice positions ``(z + 1) / D`` for L_ins; None = instance positives
            (SimCLR mask, as the reference does for 2D data sets such as ISIC).
        superpixels2: (B, H, W) labels of v2 (S2) for view 2's ASP; None = ``superpixels``
            (cache mode, where S1 = S2).
        temperature: tau (0.1).
        base_temperature: tau_base (0.07).
        delta: PCL threshold for L_ins (0.1).
        stride: ILCP token stride (16), the largest one used (see :func:`ilcp_stride`).
        min_tokens: ILCP keeps at least this many tokens per view, lowering the stride on small
            bottlenecks (:func:`ilcp_stride`); 0 = ``stride`` at every size (the reference).
        asp_divide: ``"image"`` (code) or ``"superpixel"``.
        w_intra: weight of L_intra (1.0).
        w_inter: weight of L_inter (0.5).
        gather: concatenate z3, z4, positions and the ASP vectors over all processes before
            L_ins and L_inter (negatives from every GPU; a no-op in one process). The reference
            computes each GPU's loss on its own batch (False).

    Returns:
        ``{"loss", "ins", "intra", "inter"}`` scalars.
    """
    if z4.shape != z3.shape or f1.shape[0] != z3.shape[0]:
        raise ValueError(f"batch sizes differ: f1 {tuple(f1.shape)}, z3 {tuple(z3.shape)}, z4 {tuple(z4.shape)}")
    stride = ilcp_stride(f1.shape[-2], f1.shape[-1], stride, min_tokens)
    l_intra = intra_loss(f1, f2, superpixels, stride, temperature, base_temperature)
    a1, a2 = _asp_vectors(f1, f2, superpixels, superpixels2, asp_divide)
    if gather:
        z3, z4, a1, a2, positions = _gather_batch(z3, z4, a1, a2, positions)
    l_ins, l_inter = _ins_and_inter(z3, z4, a1, a2, positions, delta, temperature, base_temperature)
    total = l_ins + w_intra * l_intra + w_inter * l_inter
    return {"loss": total, "ins": l_ins, "intra": l_intra, "inter": l_inter}


@torch.no_grad()
def _asp_vectors(
    f1: Tensor, f2: Tensor, superpixels: Tensor, superpixels2: Tensor | None, asp_divide: str
) -> tuple[Tensor, Tensor]:
    """The flattened ASP maps of both views, ``(B, h*w)`` each (view 2 on S2 when given, else S1)."""
    b = f1.shape[0]
    a1 = average_superpixel_map(f1.detach(), superpixels, asp_divide).reshape(b, -1)
    a2 = average_superpixel_map(f2.detach(), superpixels if superpixels2 is None else superpixels2, asp_divide).reshape(
        b, -1
    )
    return a1, a2


def _gather_batch(
    z3: Tensor, z4: Tensor, a1: Tensor, a2: Tensor, positions: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    """Everything L_ins and L_inter compare, concatenated over processes (gradients flow to z3 and z4 only)."""
    z3, z4 = gather_with_grad(z3), gather_with_grad(z4)
    a1, a2 = gather_nograd(a1), gather_nograd(a2)
    if positions is not None:
        positions = gather_nograd(positions.float())
    return z3, z4, a1, a2, positions


def _ins_and_inter(
    z3: Tensor,
    z4: Tensor,
    a1: Tensor,
    a2: Tensor,
    positions: Tensor | None,
    delta: float,
    temperature: float,
    base_temperature: float,
) -> tuple[Tensor, Tensor]:
    """L_ins and L_inter on one shared similarity matrix of ``[z3, z4]``."""
    logits = cosine_logits(torch.cat([z3, z4], dim=0), temperature)
    ins_mask = _ins_mask(positions, z3.shape[0], delta, logits.device)
    l_ins = supcon_from_logits(logits, ins_mask, temperature, base_temperature)
    mask = ccl_mask(torch.cat([a1, a2], dim=0), views=2).to(logits.device)
    return l_ins, inter_loss(z3, z4, mask, temperature, base_temperature, logits=logits)


def _ins_mask(positions: Tensor | None, n: int, delta: float, device: torch.device) -> Tensor:
    """L_ins positives: slices closer than ``delta`` (PCL), or the other view only when ``positions`` is None."""
    if positions is None:
        return instance_mask(n, 2, device=device)
    return positional_mask(positions.to(device), delta, 2)
