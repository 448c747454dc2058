"""SimTriplet baseline: SimSiam plus an adjacent slice of the same volume as an extra positive
(METHODS.md section 5).

Views ``x1 = v3`` and ``x2 = v4`` of a slice and ``x3 = neighbor`` (an augmented adjacent slice, the 2D
medical analogue of SimTriplet's neighbouring pathology patch)::

    L = [D(p1, z2)/2 + D(p2, z1)/2]  +  [D(p1, z3)/2 + D(p3, z1)/2]
          intra (SimSiam)                inter (neighbour)

with ``D(p, z) = -cos(p, sg(z))``, the SimSiam heads and no target network.

References:
    - [0] Liu et al., SimTriplet: Simple Triplet Representation Learning with a Single GPU, MICCAI 2021,
      https://arxiv.org/abs/2103.05585
    - [1] Chen & He, Exploring Simple Siamese Representation Learning, CVPR 2021,
      https://arxiv.org/abs/2011.10566
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from ..losses.simsiam import simsiam_loss
from ..registry import METHODS
from .simsiam import SimSiam

__all__ = ["SimTriplet"]


@METHODS.register(
    "simtriplet",
    description="SimTriplet: SimSiam with an adjacent slice of the same volume as an extra positive",
    paper="Liu, Deng, Huo et al., SimTriplet: Simple Triplet Representation Learning with a Single GPU, "
    "MICCAI 2021, https://arxiv.org/abs/2103.05585",
)
class SimTriplet(SimSiam):
    """SimTriplet on the U-Net encoder's bottleneck (same arguments and heads as :class:`SimSiam`).

    Batch: ``v3``, ``v4``, ``neighbor`` (B, 1, H, W), B >= 2. ``forward`` returns
    ``{"loss", "intra", "inter", "z_std"}`` with ``loss = intra + inter``.
    """

    needs: ClassVar[frozenset[str]] = frozenset({"neighbor"})

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        z1, z2, z3 = self.project(batch["v3"]), self.project(batch["v4"]), self.project(batch["neighbor"])
        p1, p2, p3 = self.predictor(z1), self.predictor(z2), self.predictor(z3)
        intra = simsiam_loss(p1, p2, z1, z2)
        inter = simsiam_loss(p1, p3, z1, z3)
        return {"loss": intra + inter, "intra": intra.detach(), "inter": inter.detach(), "z_std": self.collapse_std(z1)}

    def bare_forward(self, batch: dict[str, Tensor]) -> Tensor:
        total = batch["v3"].new_zeros(())
        for key in ("v3", "v4", "neighbor"):
            total = total + self.predictor(self.project(batch[key])).mean()
        return total
