"""GCL: global then local contrastive learning (Chaitanya et al. 2020), METHODS.md sections 2 and 5.

One run, two stages switched by training progress in :meth:`GCL.on_step`:

1. progress < ``global_fraction``: global loss on the encoder, as re-implemented in the PCL code:
   SupCon on ``[H(E(v3)), H(E(v4))]`` with positives = slices of the same z-partition (4 equal
   partitions of each volume, ``batch["partition"]``).
2. afterwards: local loss on the decoder's first ``num_decoder_blocks`` (3) blocks with the encoder
   frozen (run under ``torch.no_grad``): the decoder map of each intensity-only view (v1, v2,
   pixel-aligned) goes through a small per-pixel projector g_2 (1x1 conv -> BN -> ReLU -> 1x1 conv,
   written as a per-pixel MLP) and :func:`medssl.losses.gcl.gcl_local_loss` contrasts 13 fixed
   3x3 regions, tau 0.1.

The encoder is frozen in stage 2 by computing it without gradient; its BatchNorm layers stay in
training mode (batch statistics, running statistics updated), as in the authors' code.

References:
    - [0] Chaitanya et al., Contrastive learning of global and local features for medical image
      segmentation with limited annotations, NeurIPS 2020, https://arxiv.org/abs/2006.10511
    - [1] Zeng et al., Positional Contrastive Learning, MICCAI 2021, https://arxiv.org/abs/2106.09157
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import Tensor

from ..losses.gcl import gcl_local_loss
from ..losses.supcon import label_mask, supcon_loss
from ..models.heads import MLPHead, PooledMLPHead
from ..models.unet import UNet
from ..registry import METHODS
from .base import Method

__all__ = ["GCL"]


@METHODS.register(
    "gcl",
    description="global (partition positives) then local (13 regions of decoder maps) contrastive learning",
    paper="Chaitanya et al., Contrastive learning of global and local features for medical image segmentation with limited annotations, NeurIPS 2020, https://arxiv.org/abs/2006.10511",
)
class GCL(Method):
    """Two-stage global/local contrastive pre-training of the encoder and the decoder.

    Args:
        backbone: the U-Net.
        global_fraction: fraction of training spent in stage 1 (0.5).
        num_partitions: z-partitions per volume that ``batch["partition"]`` counts (4); checked.
        temperature: tau of both losses (0.1).
        base_temperature: tau_base of the global SupCon loss (0.07, the PCL code's scale).
        num_decoder_blocks: decoder blocks trained by the local loss (3).
        negatives: local negatives, ``"neighbours"`` (authors' 5 windows) or ``"all"`` other regions.
        hidden_dim: hidden width of the global head (``None``: the bottleneck width).
        out_dim: global embedding size (128).
    """

    pretrains: ClassVar[tuple[str, ...]] = ("encoder", "decoder")
    views: ClassVar[tuple[str, ...]] = ("v1", "v2", "v3", "v4")

    def __init__(
        self,
        backbone: UNet,
        global_fraction: float = 0.5,
        num_partitions: int = 4,
        temperature: float = 0.1,
        base_temperature: float = 0.07,
        num_decoder_blocks: int = 3,
        negatives: Literal["neighbours", "all"] = "neighbours",
        hidden_dim: int | None = None,
        out_dim: int = 128,
    ) -> None:
        super().__init__(backbone)
        if not 0.0 <= global_fraction <= 1.0:
            raise ValueError(f"global_fraction must be in [0, 1], got {global_fraction}")
        if not 1 <= num_decoder_blocks <= len(backbone.decoder.blocks):
            raise ValueError(
                f"num_decoder_blocks must be in 1..{len(backbone.decoder.blocks)}, got {num_decoder_blocks}"
            )
        self.global_fraction, self.num_partitions = global_fraction, num_partitions
        self.temperature, self.base_temperature = temperature, base_temperature
        self.num_decoder_blocks, self.negatives = num_decoder_blocks, negatives
        c = backbone.bottleneck_channels
        self.global_head = PooledMLPHead(c, hidden_dim or c, out_dim)
        cd = backbone.decoder.block_channels(num_decoder_blocks)
        self.local_head = MLPHead(cd, cd, cd, batch_norm=True)  # g_2, applied to every pixel
        self.stage = 1

    def on_step(self, step: int, max_steps: int) -> None:
        """Stage 1 while ``step / max_steps < global_fraction``, stage 2 afterwards."""
        progress = step / max_steps if max_steps > 0 else 1.0
        self.stage = 1 if progress < self.global_fraction else 2

    # -- stage 1 -------------------------------------------------------------------------------
    def _global_embed(self, x: Tensor) -> Tensor:
        return self.global_head(self.backbone.encode(x)[-1])

    # -- stage 2 -------------------------------------------------------------------------------
    def _local_map(self, x: Tensor) -> Tensor:
        """(B, 1, H, W) view -> (B, C_d, h, w) projected decoder map, encoder without gradient."""
        with torch.no_grad():
            feats = self.backbone.encode(x)
        d = self.backbone.decode(feats, self.num_decoder_blocks)
        b, c, h, w = d.shape
        p = self.local_head(d.permute(0, 2, 3, 1).reshape(-1, c))
        return p.reshape(b, h, w, -1).permute(0, 3, 1, 2)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Stage 1: keys v3, v4, partition; stage 2: keys v1, v2 -> ``{"loss", "global_loss", "local_loss"}``."""
        if self.stage == 1:
            z = torch.cat([self._global_embed(batch["v3"]), self._global_embed(batch["v4"])])
            part = batch["partition"].to(z.device)
            # checked where it costs nothing (CPU); on a GPU it would make the step wait for the device
            if (
                part.device.type == "cpu"
                and part.numel()
                and (int(part.min()) < 0 or int(part.max()) >= self.num_partitions)
            ):
                raise ValueError(f"partition labels must lie in 0..{self.num_partitions - 1}")
            g = supcon_loss(z, label_mask(part), self.temperature, self.base_temperature)
            return {"loss": g, "global_loss": g, "local_loss": torch.zeros((), device=z.device)}
        p1, p2 = self._local_map(batch["v1"]), self._local_map(batch["v2"])
        loc = gcl_local_loss(p1, p2, self.temperature, self.negatives)
        return {"loss": loc, "global_loss": torch.zeros((), device=loc.device), "local_loss": loc}

    def bare_forward(self, batch: dict[str, Tensor]) -> Tensor:
        if self.stage == 1:
            return self._global_embed(batch["v3"]).mean() + self._global_embed(batch["v4"]).mean()
        return self._local_map(batch["v1"]).mean() + self._local_map(batch["v2"]).mean()
