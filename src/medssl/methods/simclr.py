"""SimCLR baseline: NT-Xent between the two augmented views of each slice (METHODS.md section 5).

The SuperCL/MACL papers ran SimCLR through the SupCon code of ``dewenzeng/positional_cl``: an
image-level head (pool -> Linear(512, 512) -> ReLU -> Linear(512, 128)), tau 0.1, and a loss scaled by
``tau / tau_base`` (tau_base 0.07). That is the default here; ``base_temperature=None`` (variant
``paper``) gives the plain NT-Xent of the SimCLR paper.

References:
    - [0] Chen et al., A Simple Framework for Contrastive Learning of Visual Representations, ICML 2020,
      https://arxiv.org/abs/2002.05709
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from ..losses.ntxent import ntxent_loss
from ..models.heads import PooledMLPHead
from ..models.unet import UNet
from ..registry import METHODS
from .base import Method

__all__ = ["SimCLR"]


@METHODS.register(
    "simclr",
    description="SimCLR: NT-Xent between two augmented views, image-level head on the bottleneck",
    paper="Chen, Kornblith, Norouzi, Hinton, A Simple Framework for Contrastive Learning of Visual "
    "Representations, ICML 2020, https://arxiv.org/abs/2002.05709",
)
class SimCLR(Method):
    """SimCLR on the U-Net encoder's bottleneck.

    Args:
        backbone: the U-Net; only its encoder is used and pre-trained.
        out_dim: embedding size ``d`` of the head (128).
        hidden_dim: hidden width of the head; ``None``: the bottleneck channels (512), as the papers' head.
        temperature: tau (0.1).
        base_temperature: tau_base of the SupCon code's ``tau / tau_base`` scale (0.07); ``None`` for
            the unscaled NT-Xent of the SimCLR paper.

    Batch: ``v3``, ``v4`` (B, 1, H, W). ``forward`` returns ``{"loss"}``.
    """

    views: ClassVar[tuple[str, ...]] = ("v3", "v4")
    pretrains: ClassVar[tuple[str, ...]] = ("encoder",)
    variants: ClassVar[dict[str, dict[str, dict]]] = {"paper": {"method": {"base_temperature": None}}}

    def __init__(
        self,
        backbone: UNet,
        out_dim: int = 128,
        hidden_dim: int | None = None,
        temperature: float = 0.1,
        base_temperature: float | None = 0.07,
    ) -> None:
        super().__init__(backbone)
        channels = backbone.bottleneck_channels
        self.head = PooledMLPHead(channels, hidden_dim or channels, out_dim)
        self.temperature = temperature
        self.base_temperature = base_temperature

    def embed(self, x: Tensor) -> Tensor:
        """Head output of the bottleneck: (B, 1, H, W) -> (B, out_dim)."""
        return self.head(self.backbone.encode(x)[-1])

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        z3, z4 = self.embed(batch["v3"]), self.embed(batch["v4"])
        return {"loss": ntxent_loss(z3, z4, self.temperature, self.base_temperature)}

    def bare_forward(self, batch: dict[str, Tensor]) -> Tensor:
        return self.embed(batch["v3"]).mean() + self.embed(batch["v4"]).mean()
