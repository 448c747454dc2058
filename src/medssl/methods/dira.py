"""DiRA: discriminative, restorative and adversarial learning (Haghighi et al. 2022), METHODS.md section 5.

Per step, with a distortion ``T`` (:func:`medssl.losses.dira.random_distortion`, drawn from this
method's own seeded CPU generator):

* query ``x_q = T(v1)``: v1 is the intensity-only view, pixel-aligned with ``batch["image"]``;
  key ``x_k = T(v4)`` (the reference code distorts both crops);
* discriminative ``L_D``: MoCo v2 InfoNCE (tau 0.2) of ``H(E(x_q))`` against the key from an EMA
  copy of encoder and head (momentum 0.999) and a queue of past keys (this module's own queue);
* restorative ``L_R``: MSE between ``sigmoid(conv1x1(D(E(x_q))))`` (full U-Net decoder plus a
  1-channel output conv of this method) and the undistorted, un-augmented ``batch["image"]``
  (the reference code's target is the crop before its colour/blur augmentation);
* adversarial ``L_A`` (after the warm-up fraction): LSGAN generator loss of a patch discriminator
  on the restoration; the discriminator's own LSGAN loss ``L_disc`` (real image vs. detached
  restoration) is added to the total so that ONE optimiser step trains both. ``L_A`` is computed
  with detached discriminator parameters (``torch.func.functional_call``), so the generator's
  term gives the discriminator no gradient and ``L_disc`` gives the U-Net none.

``loss = L_D + 10 L_R + 0.001 L_A + L_disc``. The reference code trains DiR first (1200 epochs by
default) and then DiRA (400 epochs) from those weights, hence ``adv_warmup`` = 0.75.

References:
    - [0] Haghighi et al., DiRA: Discriminative, Restorative, and Adversarial Learning for
      Self-supervised Medical Image Analysis, CVPR 2022, https://arxiv.org/abs/2204.10437
    - [1] Chen et al., Improved Baselines with Momentum Contrastive Learning, 2020, https://arxiv.org/abs/2003.04297
    - [2] Mao et al., Least Squares Generative Adversarial Networks, ICCV 2017, https://arxiv.org/abs/1611.04076
"""

from __future__ import annotations

import copy
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from ..losses.dira import lsgan_discriminator_loss, lsgan_generator_loss, moco_infonce, random_distortion
from ..models.heads import PooledMLPHead
from ..models.unet import UNet
from ..registry import METHODS
from ..utils.distributed import gather_nograd
from .base import Method, deactivate_requires_grad

__all__ = ["DiRA", "PatchDiscriminator"]


class PatchDiscriminator(nn.Sequential):
    """Patch discriminator: three stride-2 conv4x4 blocks (width w, 2w, 4w; LeakyReLU 0.2, BN after
    the first) then a conv3x3 to one score per patch. Output (B, 1, H/8, W/8).

    Args:
        in_channels: image channels.
        width: first block's channels w (64).
    """

    def __init__(self, in_channels: int = 1, width: int = 64) -> None:
        layers: list[nn.Module] = []
        cin = in_channels
        for i, cout in enumerate((width, 2 * width, 4 * width)):
            layers.append(nn.Conv2d(cin, cout, 4, stride=2, padding=1))
            if i > 0:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            cin = cout
        layers.append(nn.Conv2d(cin, 1, 3, padding=1))
        super().__init__(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)


@METHODS.register(
    "dira",
    description="MoCo v2 + restoration of distorted images by the U-Net + LSGAN patch discriminator",
    paper="Haghighi et al., DiRA: Discriminative, Restorative, and Adversarial Learning for Self-supervised Medical Image Analysis, CVPR 2022, https://arxiv.org/abs/2204.10437",
)
class DiRA(Method):
    """DiRA on the papers' U-Net.

    Args:
        backbone: the U-Net (encoder and decoder are pre-trained).
        queue_size: MoCo queue length (65536 in MoCo; 4096 here, scale it to the data).
        temperature: MoCo tau (0.2).
        key_momentum: EMA of the key encoder (0.999).
        hidden_dim: MoCo MLP head hidden width (``None``: the bottleneck width).
        out_dim: MoCo embedding size (128).
        restore_weight: weight of L_R (10).
        adv_weight: weight of L_A (0.001).
        disc_weight: weight of the discriminator's own loss in the total (1).
        adv_warmup: fraction of training without the adversarial part (0.75).
        disc_width: discriminator width (64).
        distortion_probs: per-image probabilities of the distortions (``None``: the reference code's).
        seed: seed of the distortion generator.
    """

    queue: Tensor  # buffers
    queue_ptr: Tensor

    pretrains: ClassVar[tuple[str, ...]] = ("encoder", "decoder")
    views: ClassVar[tuple[str, ...]] = ("v1", "v4")

    def __init__(
        self,
        backbone: UNet,
        queue_size: int = 4096,
        temperature: float = 0.2,
        key_momentum: float = 0.999,
        hidden_dim: int | None = None,
        out_dim: int = 128,
        restore_weight: float = 10.0,
        adv_weight: float = 0.001,
        disc_weight: float = 1.0,
        adv_warmup: float = 0.75,
        disc_width: int = 64,
        distortion_probs: dict[str, float] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(backbone)
        if queue_size < 1:
            raise ValueError(f"queue_size must be positive, got {queue_size}")
        self.temperature, self.key_momentum = temperature, key_momentum
        self.restore_weight, self.adv_weight, self.disc_weight = restore_weight, adv_weight, disc_weight
        self.adv_warmup = adv_warmup
        self.distortion_probs = None if distortion_probs is None else dict(distortion_probs)
        c = backbone.bottleneck_channels
        self.head = PooledMLPHead(c, hidden_dim or c, out_dim)
        self.key_encoder = deactivate_requires_grad(copy.deepcopy(backbone.encoder))
        self.key_head = deactivate_requires_grad(copy.deepcopy(self.head))
        self.restore_conv = nn.Conv2d(backbone.decoder.out_channels, backbone.in_channels, 1)
        self.discriminator = PatchDiscriminator(backbone.in_channels, disc_width)
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, out_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self.generator = torch.Generator().manual_seed(seed)
        self.progress = 0.0

    def on_step(self, step: int, max_steps: int) -> None:
        """Sets the training progress (the adversarial part starts at ``adv_warmup``)."""
        self.progress = step / max_steps if max_steps > 0 else 1.0

    @property
    def adversarial_active(self) -> bool:
        return self.progress >= self.adv_warmup

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone.encoder, self.key_encoder), (self.head, self.key_head)]

    def momentum(self, progress: float) -> float:
        return self.key_momentum

    @torch.no_grad()
    def _enqueue(self, keys: Tensor) -> None:
        keys = F.normalize(gather_nograd(keys.float()), dim=1)
        n, size = keys.shape[0], self.queue.shape[0]
        if n >= size:
            self.queue.copy_(keys[-size:])
            self.queue_ptr.zero_()
            return
        # pointer arithmetic on the device buffer: nothing is read back to the host
        idx = (self.queue_ptr + torch.arange(n, device=keys.device)) % size
        self.queue[idx] = keys.to(self.queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + n) % size)

    def _passes(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Distort, then (query embedding, key embedding, restoration)."""
        xq, _ = random_distortion(batch["v1"], self.generator, self.distortion_probs)
        xk, _ = random_distortion(batch["v4"], self.generator, self.distortion_probs)
        feats = self.backbone.encode(xq)
        q = self.head(feats[-1])
        with torch.no_grad():
            k = self.key_head(self.key_encoder(xk)[-1])
        restored = torch.sigmoid(self.restore_conv(self.backbone.decode(feats)))
        return q, k, restored

    def _generator_scores(self, restored: Tensor) -> Tensor:
        """Discriminator scores of the restoration with detached discriminator parameters."""
        params = {n: p.detach() for n, p in self.discriminator.named_parameters()}
        return functional_call(self.discriminator, params, (restored,))

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Batch keys v1, v4, image -> ``{"loss", "discriminative", "restorative", "adversarial", "discriminator"}``."""
        q, k, restored = self._passes(batch)
        target = batch["image"].to(restored)
        l_d = moco_infonce(q, k, self.queue.clone(), self.temperature)
        l_r = F.mse_loss(restored.float(), target.float())
        zero = torch.zeros((), device=restored.device)
        l_a, l_disc = zero, zero
        if self.adversarial_active:
            l_disc = lsgan_discriminator_loss(self.discriminator(target), self.discriminator(restored.detach()))
            l_a = lsgan_generator_loss(self._generator_scores(restored))
        loss = l_d + self.restore_weight * l_r + self.adv_weight * l_a + self.disc_weight * l_disc
        if self.training:
            self._enqueue(k)
        return {"loss": loss, "discriminative": l_d, "restorative": l_r, "adversarial": l_a, "discriminator": l_disc}

    def bare_forward(self, batch: dict[str, Tensor]) -> Tensor:
        q, k, restored = self._passes(batch)
        out = q.mean() + k.mean() + restored.mean()
        if self.adversarial_active:
            target = batch["image"].to(restored)
            out = out + self.discriminator(target).mean() + self.discriminator(restored.detach()).mean()
            out = out + self._generator_scores(restored).mean()
        return out
