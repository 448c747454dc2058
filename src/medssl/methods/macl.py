"""MACL: multi-level asymmetric contrastive learning (METHODS.md section 4).

Two asymmetric branches, by default sharing ONE encoder ``E`` (no momentum copy, no predictor,
no stop-gradient):

* auxiliary branch, full resolution, encoder only:
  ``Y~ = E(I_a)``, ``Z~l = G_pix(Y~)``, ``Z~g = G_aux(pool(E(V_a)))``;
* dominant branch, input bilinearly downsampled by ``down_factor`` (align_corners=True), encoder
  plus the first ``decoder_blocks`` decoder blocks ``D_k``:
  ``Y = E(down(I_b))``, ``Z^l = D_k(Y, skips)``, ``Z^g = G_dom(pool(D_k(E(down(V_b)))))``.

Losses (:mod:`medssl.losses.macl`): ``L = 1.0 * L_g + 0.5 * L_d + 1.0 * L_ER``.

Views: ``I_a = v1``, ``I_b = v2`` (``T_fix``: the intensity transform in the reference code, the
identity in the paper), ``V_a = v3 = T_sp(v1)``, ``V_b = v4 = T_sp(v2)``.

Reference:
    - [0] Zhang et al., Multi-level Asymmetric Contrastive Learning for Volumetric Medical Image
      Segmentation Pre-training (MACL), IEEE JBHI 2026, https://arxiv.org/abs/2309.11876
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses.macl import MACL_WEIGHTS, macl_loss
from ..models.heads import DenseHead, PooledMLPHead
from ..models.unet import UNet
from ..registry import METHODS
from .base import Method, momentum_copy

__all__ = ["MACL"]

Coupling = Literal["shared", "ema", "independent"]
TFix = Literal["intensity", "identity"]


def _reinit(module: nn.Module, slope: float = 0.01) -> nn.Module:
    """Fresh Kaiming-normal weights (negative slope ``slope``), zero biases, reset BatchNorm."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, a=slope)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            m.reset_parameters()
    return module


def _check_options(
    depth: int,
    down_factor: float,
    decoder_blocks: int,
    coupling: str,
    weights: Sequence[float],
    t_fix: str,
    min_bottleneck: int,
) -> None:
    """Refuse MACL options that cannot work (``ValueError`` naming the option and the accepted values)."""
    if coupling not in ("shared", "ema", "independent"):
        raise ValueError(f"coupling must be 'shared', 'ema' or 'independent', got {coupling!r}")
    if t_fix not in ("intensity", "identity"):
        raise ValueError(f"t_fix must be 'intensity' (code) or 'identity' (paper), got {t_fix!r}")
    if not 0 <= decoder_blocks <= depth:
        raise ValueError(f"decoder_blocks must be in 0..{depth}, got {decoder_blocks}")
    if not 0.0 < down_factor <= 1.0:
        raise ValueError(f"down_factor must be in (0, 1], got {down_factor}")
    if not math.isclose(down_factor * 2**decoder_blocks, 1.0):
        raise ValueError(
            f"MACL: down_factor {down_factor} with decoder_blocks {decoder_blocks}: the dominant pixel map "
            f"(P*{down_factor}/2**{depth - decoder_blocks}) never matches the auxiliary one (P/2**{depth}); "
            f"use down_factor {2.0**-decoder_blocks} for {decoder_blocks} blocks"
        )
    if len(weights) != 3:
        raise ValueError(f"weights must be (w_global, w_dense, w_equivariance), got {tuple(weights)}")
    if min_bottleneck < 0:
        raise ValueError(f"min_bottleneck must be >= 0, got {min_bottleneck}")


@METHODS.register(
    "macl",
    description="multi-level asymmetric contrast: full-res encoder vs x0.25 encoder + 2 decoder blocks",
    paper="Zhang et al., MACL, IEEE JBHI 2026",
)
class MACL(Method):
    """Multi-level asymmetric contrastive learning (MACL), pre-training the encoder and decoder.

    Args:
        backbone: the U-Net whose encoder (and first decoder blocks) are pre-trained.
        down_factor: bilinear downsampling of the dominant branch's input (0.25).
        decoder_blocks: decoder blocks in the dominant branch (2; 0..depth as the paper's ablation,
            with 0 the dominant pixel features are the bottleneck itself). The auxiliary and dominant
            pixel maps have the same size only when ``down_factor == 2 ** -decoder_blocks``.
        coupling: how the auxiliary branch's encoder relates to the dominant one: ``"shared"`` (the
            paper and code: one encoder), ``"ema"`` (an EMA copy of the encoder, updated by the
            engine through :meth:`momentum_pairs`), ``"independent"`` (a second encoder, trained
            separately). The last two are the paper's ablations.
        proj_dim: ``d``, output size of ``G_aux`` and ``G_dom`` (128: the code's ``classes * scale_factor``).
        pixel_dim: output channels of ``G_pix``; must equal the channels of the dominant pixel map
            ``C_dec`` (``None`` = ``C_dec``, i.e. 128 for the papers' U-Net with 2 decoder blocks).
        hidden_dim: hidden width of ``G_aux`` and ``G_dom`` (``None`` = ``4 * base_width`` = 128, as the code).
        temperature: tau (0.1).
        base_temperature: tau_base (0.07).
        delta: positional threshold of the PCL positives (0.1; 0.05 for BraTS).
        weights: ``(w_g, w_d, w_er)`` = (1, 0.5, 1).
        t_fix: the ``T_fix`` view transform: ``"intensity"`` (the code) or ``"identity"`` (the paper).
        ema_momentum: EMA coefficient of the ``"ema"`` coupling.
        min_bottleneck: smallest side of the dominant branch's bottleneck map. At the papers' 512 px
            the x0.25 input gives an 8 x 8 bottleneck; a 64 px view would give 1 x 1 (a single
            vector: ``L_ER`` and the decoder's first block see no spatial layout). When
            ``P * down_factor / 2**depth`` is smaller, the dominant input is made
            ``min_bottleneck * 2**depth`` pixels instead (a milder downsampling), ``L_ER`` compares
            ``Y~`` resized to that bottleneck, and the dominant pixel map is average-pooled to the
            auxiliary one's size for ``L_d``. 2 (the default) changes nothing at 128 px or more;
            0 = the reference at every size.

    Raises:
        ValueError: on a coupling/t_fix not listed, ``decoder_blocks`` outside 0..depth, or a
            combination of ``down_factor`` and ``decoder_blocks`` whose pixel maps cannot match.

    Example::

        method = MACL(UNet(1, 2, base_width=4), pixel_dim=None)
        losses = method({"v1": x, "v2": x, "v3": x, "v4": x, "position": p})   # x: (B, 1, 64, 64)
        losses["loss"].backward()
    """

    pretrains: ClassVar[tuple[str, ...]] = ("encoder", "decoder")
    views: ClassVar[tuple[str, ...]] = ("v1", "v2", "v3", "v4")
    variants: ClassVar[dict[str, dict[str, dict]]] = {"paper": {"method": {"t_fix": "identity"}, "optim": {"lr": 0.1}}}

    def __init__(
        self,
        backbone: UNet,
        down_factor: float = 0.25,
        decoder_blocks: int = 2,
        coupling: Coupling = "shared",
        proj_dim: int = 128,
        pixel_dim: int | None = None,
        hidden_dim: int | None = None,
        temperature: float = 0.1,
        base_temperature: float = 0.07,
        delta: float = 0.1,
        weights: Sequence[float] = MACL_WEIGHTS,
        t_fix: TFix = "intensity",
        ema_momentum: float = 0.99,
        min_bottleneck: int = 2,
    ) -> None:
        super().__init__(backbone)
        _check_options(backbone.depth, down_factor, decoder_blocks, coupling, weights, t_fix, min_bottleneck)
        self.min_bottleneck = int(min_bottleneck)
        self.down_factor = float(down_factor)
        self.decoder_blocks = int(decoder_blocks)
        self.coupling: Coupling = coupling
        self.temperature = float(temperature)
        self.base_temperature = float(base_temperature)
        self.delta = float(delta)
        self.weights = tuple(float(w) for w in weights)
        self.t_fix: TFix = t_fix
        self.ema_momentum = float(ema_momentum)
        self._build_heads(backbone, pixel_dim, hidden_dim, proj_dim)
        # the auxiliary branch's encoder: None = the backbone's (shared)
        self.aux_encoder: nn.Module | None = None
        if coupling == "ema":
            self.aux_encoder = momentum_copy(backbone.encoder)
        elif coupling == "independent":
            self.aux_encoder = _reinit(copy.deepcopy(backbone.encoder))

    def _build_heads(self, backbone: UNet, pixel_dim: int | None, hidden_dim: int | None, proj_dim: int) -> None:
        """The projectors: g_pix (bottleneck -> dominant pixel map), g_aux and g_dom (pooled MLPs to ``proj_dim``)."""
        c_bottleneck = backbone.bottleneck_channels
        c_dec = backbone.decoder.block_channels(self.decoder_blocks)
        if pixel_dim is not None and pixel_dim != c_dec:
            raise ValueError(
                f"pixel_dim {pixel_dim} must equal the channels of the dominant pixel map after "
                f"{self.decoder_blocks} decoder blocks ({c_dec}); leave it None"
            )
        hidden = 4 * backbone.base_width if hidden_dim is None else hidden_dim
        self.pixel_dim = c_dec
        self.g_pix = DenseHead(c_bottleneck, c_dec)  # conv3x3-BN-LReLU x2, 512 -> 128 -> 128
        self.g_aux = PooledMLPHead(c_bottleneck, hidden, proj_dim)  # pool -> 512 -> 128 -> d
        self.g_dom = PooledMLPHead(c_dec, hidden, proj_dim)  # pool -> C_dec -> 128 -> d
        _reinit(self.g_pix)  # the reference applies its Kaiming init to the projectors too

    # ------------------------------------------------------------------ contract
    def view_options(self) -> dict:
        """``{"t_fix": "intensity" | "identity"}`` for the multi-view transform."""
        return {"t_fix": self.t_fix}

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """``[(backbone.encoder, aux_encoder)]`` for the ``"ema"`` coupling, else nothing."""
        if self.coupling == "ema" and self.aux_encoder is not None:
            return [(self.backbone.encoder, self.aux_encoder)]
        return []

    def momentum(self, progress: float) -> float:
        """Constant ``ema_momentum`` (only used by the ``"ema"`` coupling)."""
        return self.ema_momentum

    # ------------------------------------------------------------------ branches
    def dominant_side(self, side: int) -> int:
        """Side of the dominant branch's input for an input side ``side``.

        ``side * down_factor``, or ``min_bottleneck * 2**depth`` when that is larger (see
        ``min_bottleneck``).
        """
        unit = 2**self.backbone.depth
        return max(int(side * self.down_factor), min(side, self.min_bottleneck * unit))

    def check_input_size(self, height: int, width: int) -> None:
        """Raise ``ValueError`` (one line) when an ``height x width`` input does not fit.

        ``P`` must be divisible by ``2**depth``, and so must the dominant input: ``P * down_factor``
        a whole number, unless ``min_bottleneck`` replaces it.
        """
        depth = self.backbone.depth
        unit = 2**depth
        for side in (height, width):
            scaled = side * self.down_factor
            replaced = self.dominant_side(side) != int(scaled)
            if side % unit or (not replaced and (not float(scaled).is_integer() or int(scaled) % unit)):
                step = self._size_step()
                lo, hi = (side // step) * step, (side // step + 1) * step
                fits = f"{lo} or {hi}" if lo > 0 else f"{hi}"
                raise ValueError(
                    f"MACL: image size {height}x{width} does not fit down_factor {self.down_factor} and depth {depth}: "
                    f"P and P*{self.down_factor} must be multiples of 2**{depth}={unit}; "
                    f"sides that fit are multiples of {step}, e.g. {fits}"
                )

    def _size_step(self) -> int:
        """Smallest side ``P`` with ``P`` and ``P * down_factor`` both multiples of ``2**depth``."""
        unit = 2**self.backbone.depth
        k = 1
        while True:
            p = unit * k
            scaled = p * self.down_factor
            if float(scaled).is_integer() and int(scaled) % unit == 0:
                return p
            k += 1

    def _encoder_aux(self) -> nn.Module:
        return self.backbone.encoder if self.aux_encoder is None else self.aux_encoder

    def _down(self, x: Tensor) -> Tensor:
        size = (self.dominant_side(int(x.shape[-2])), self.dominant_side(int(x.shape[-1])))
        if size == tuple(x.shape[-2:]):
            return x
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)

    def _auxiliary(self, i_a: Tensor, v_a: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(Y~, Z~l, Z~g)`` of the full-resolution branch."""
        enc = self._encoder_aux()
        if self.coupling == "ema":
            with torch.no_grad():
                y_full = enc(i_a)[-1]
                f_va = enc(v_a)[-1]
        else:
            y_full = enc(i_a)[-1]
            f_va = enc(v_a)[-1]
        return y_full, self.g_pix(y_full), self.g_aux(f_va)

    def _dominant(self, i_b: Tensor, v_b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(Y, Z^l, Z^g)`` of the downsampled encoder + ``decoder_blocks`` branch."""
        feats_b = self.backbone.encode(self._down(i_b))
        feats_vb = self.backbone.encode(self._down(v_b))
        zl_dom = self.backbone.decode(feats_b, self.decoder_blocks)
        zg_dom = self.g_dom(self.backbone.decode(feats_vb, self.decoder_blocks))
        return feats_b[-1], zl_dom, zg_dom

    def _passes(self, batch: dict[str, Tensor]) -> tuple[Tensor, ...]:
        i_a, i_b, v_a, v_b = batch["v1"], batch["v2"], batch["v3"], batch["v4"]
        for name, x in (("v1", i_a), ("v2", i_b), ("v3", v_a), ("v4", v_b)):
            if x.ndim != 4:
                raise ValueError(f"MACL: batch['{name}'] must be (B, C, H, W), got {tuple(x.shape)}")
        self.check_input_size(int(i_a.shape[-2]), int(i_a.shape[-1]))
        y_full, zl_aux, zg_aux = self._auxiliary(i_a, v_a)
        y_dom, zl_dom, zg_dom = self._dominant(i_b, v_b)
        if zl_dom.shape[-2:] != zl_aux.shape[-2:] and self.dominant_side(int(i_a.shape[-2])) != int(
            i_a.shape[-2] * self.down_factor
        ):
            # min_bottleneck: a larger dominant map
            zl_dom = F.adaptive_avg_pool2d(zl_dom, (int(zl_aux.shape[-2]), int(zl_aux.shape[-1])))
        if zl_aux.shape != zl_dom.shape:  # guarded by __init__ and check_input_size; kept as a clear message
            raise ValueError(
                f"MACL: pixel maps differ: auxiliary {tuple(zl_aux.shape)} vs dominant {tuple(zl_dom.shape)}"
            )
        return zg_aux, zg_dom, zl_aux, zl_dom, y_full, y_dom

    # ------------------------------------------------------------------ forward
    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """MACL losses of one batch.

        Args:
            batch: ``v1`` (I_a), ``v2`` (I_b), ``v3`` (V_a), ``v4`` (V_b), each (B, C, P, P), and
                ``position`` (B,).

        Returns:
            ``{"loss", "global", "dense", "equivariance"}`` scalars.

        Raises:
            ValueError: if the image size does not fit ``down_factor`` and the U-Net depth.
        """
        zg_aux, zg_dom, zl_aux, zl_dom, y_full, y_dom = self._passes(batch)
        return macl_loss(
            zg_aux,
            zg_dom,
            zl_aux,
            zl_dom,
            y_full,
            y_dom,
            batch["position"],
            delta=self.delta,
            temperature=self.temperature,
            base_temperature=self.base_temperature,
            factor=self.dominant_side(int(batch["v1"].shape[-2])) / int(batch["v1"].shape[-2]),
            weights=self.weights,
        )

    def bare_forward(self, batch: dict[str, Tensor]) -> Tensor:
        """The same network passes as :meth:`forward` with a trivial loss (sum of output means)."""
        return sum(t.float().mean() for t in self._passes(batch))  # type: ignore[return-value]  # sum() of tensors is a Tensor (its int start is absorbed)
