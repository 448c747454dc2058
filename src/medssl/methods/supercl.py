"""SuperCL: superpixel guided contrastive pre-training of the U-Net encoder (METHODS.md section 3).

Four encoder passes per step, as in the reference (stevezs315/SuperCL ``train_contrast.py``):
``f1 = E(v1)``, ``f2 = E(v2)`` (bottleneck maps, for ILCP and ASP/CCL) and ``z3 = H(E(v3))``,
``z4 = H(E(v4))`` (image embeddings, for L_ins and IGCP). Each pass is separate, so BatchNorm sees
one view per pass as in the reference. Only the encoder is pre-trained.

References:
    - [0] Zhang et al., SuperCL: Superpixel Guided Contrastive Learning for Medical Image
      Segmentation Pre-training, IEEE TIP 2026, https://arxiv.org/abs/2504.14737
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from ..losses.supercl import supercl_loss
from ..models.heads import PooledMLPHead
from ..models.unet import UNet
from ..registry import METHODS
from .base import Method

__all__ = ["SuperCL"]


@METHODS.register(
    "supercl",
    description="superpixel-guided contrast: positional + intra-image (ILCP) + inter-image (IGCP) losses",
    paper="Zhang et al., SuperCL, IEEE TIP 2026",
)
class SuperCL(Method):
    """SuperCL pre-training.

    The image-level head follows the reference ``UNet2D_classification_SCL``: global average pool
    -> Linear(16f, 16f) -> ReLU -> Linear(16f, d) (16f = 512 for the papers' width f = 32).

    Args:
        backbone: the U-Net whose encoder is trained.
        proj_dim: d, the embedding size (512, the reference's ``--classes 512``).
        temperature: tau of every SupCon term (0.1).
        base_temperature: tau_base (0.07).
        delta: PCL threshold of L_ins (0.1).
        stride: ILCP token stride (16), the largest one used.
        min_tokens: ILCP keeps at least this many tokens per view (64, the reference's count at its
            512 px views): on smaller bottlenecks the stride is lowered, so the tokens stay spread
            over the image (:func:`~medssl.losses.supercl.ilcp_stride`); 0 = the reference's fixed
            stride at every size (4 tokens in one column at 128 px).
        asp_divide: ``"image"`` (the released code: divide superpixel sums by h*w) or
            ``"superpixel"`` (by the superpixel's size).
        w_intra: weight of L_intra (1.0).
        w_inter: weight of L_inter (0.5).
        gather_negatives: L_ins and L_inter over the batch of every GPU (False = per GPU, as the
            reference).
        encoder_init: ``"pytorch"`` (the reference: its ``UNet2D_classification_SCL`` applies no
            He init, so the encoder keeps PyTorch's default initialisation) or ``"he"`` (the
            U-Net's Kaiming-normal init, as MACL's code and fine-tuning use).

    Batch keys: ``v1``..``v4`` (B, 1, H, W); ``superpixels`` (B, H, W) labels of v1; optional
    ``superpixels2`` (labels of v2, online mode); optional ``position`` (B,) (absent = instance
    positives for L_ins, as the reference does for 2D data sets).
    """

    views: ClassVar[tuple[str, ...]] = ("v1", "v2", "v3", "v4")
    needs: ClassVar[frozenset[str]] = frozenset({"superpixels"})
    pretrains: ClassVar[tuple[str, ...]] = ("encoder",)
    #: the README of the reference gives lr 0.1, its scripts use 0.01 (our default)
    variants: ClassVar[dict[str, dict[str, dict]]] = {"readme": {"optim": {"lr": 0.1}}}

    def __init__(
        self,
        backbone: UNet,
        proj_dim: int = 512,
        temperature: float = 0.1,
        base_temperature: float = 0.07,
        delta: float = 0.1,
        stride: int = 16,
        min_tokens: int = 64,
        asp_divide: str = "image",
        w_intra: float = 1.0,
        w_inter: float = 0.5,
        gather_negatives: bool = False,
        encoder_init: str = "pytorch",
    ) -> None:
        super().__init__(backbone)
        if encoder_init not in ("pytorch", "he"):
            raise ValueError(f"encoder_init must be 'pytorch' (the reference) or 'he', got '{encoder_init}'")
        if encoder_init == "pytorch":
            for m in backbone.encoder.modules():
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                    m.reset_parameters()
        if abs(temperature) < 1e-8 or abs(base_temperature) < 1e-8:
            raise ValueError("temperatures must be non-zero")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if min_tokens < 0:
            raise ValueError(f"min_tokens must be >= 0, got {min_tokens}")
        if asp_divide not in ("image", "superpixel"):
            raise ValueError(f"asp_divide must be 'image' or 'superpixel', got '{asp_divide}'")
        c = backbone.bottleneck_channels
        self.head = PooledMLPHead(c, c, proj_dim)
        self.temperature = temperature
        self.base_temperature = base_temperature
        self.delta = delta
        self.stride = stride
        self.min_tokens = min_tokens
        self.asp_divide = asp_divide
        self.w_intra = w_intra
        self.w_inter = w_inter
        self.gather_negatives = gather_negatives

    def _passes(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        f1 = self.backbone.encode(batch["v1"])[-1]
        f2 = self.backbone.encode(batch["v2"])[-1]
        z3 = self.head(self.backbone.encode(batch["v3"])[-1])
        z4 = self.head(self.backbone.encode(batch["v4"])[-1])
        return f1, f2, z3, z4

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Losses of one step.

        Args:
            batch: see the class docstring.

        Returns:
            ``{"loss", "ins", "intra", "inter"}`` scalars.
        """
        f1, f2, z3, z4 = self._passes(batch)
        return supercl_loss(
            f1,
            f2,
            z3,
            z4,
            batch["superpixels"],
            batch.get("position"),
            batch.get("superpixels2"),
            temperature=self.temperature,
            base_temperature=self.base_temperature,
            delta=self.delta,
            stride=self.stride,
            min_tokens=self.min_tokens,
            asp_divide=self.asp_divide,
            w_intra=self.w_intra,
            w_inter=self.w_inter,
            gather=self.gather_negatives,
        )

    def bare_forward(self, batch: dict[str, Tensor]) -> Tensor:
        """The same four encoder passes and two head passes, with a trivial loss."""
        f1, f2, z3, z4 = self._passes(batch)
        return f1.mean() + f2.mean() + z3.mean() + z4.mean()
