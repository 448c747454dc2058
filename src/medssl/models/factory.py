"""``create_model``: the one public constructor of segmentation networks (timm's ``create_model``)."""

from __future__ import annotations

from torch import nn

from ..config import ModelCfg
from ..errors import ConfigError
from ..registry import MODELS
from . import unet as _unet  # noqa: F401 - registers "unet"

__all__ = ["create_model"]


def create_model(cfg: ModelCfg, num_classes: int, in_channels: int | None = None) -> nn.Module:
    """Build the network named by ``cfg.name``.

    ``unet`` is the papers' U-Net (the only one pre-training supports). ``monai:UNet`` and
    ``monai:BasicUNet`` build MONAI's 2D networks of matching width, for fine-tuning from scratch.
    """
    cin = in_channels or cfg.in_channels
    if cfg.name.startswith("monai:"):
        from monai.networks import nets

        kind = cfg.name.split(":", 1)[1]
        f = cfg.base_width
        if kind == "UNet":
            chans = tuple(f * 2**i for i in range(cfg.depth + 1))
            return nets.UNet(
                spatial_dims=2,
                in_channels=cin,
                out_channels=num_classes,
                channels=chans,
                strides=(2,) * cfg.depth,
                num_res_units=2,
            )
        if kind == "BasicUNet":
            # f .. 16f as the papers' U-Net (f = 16: MONAI's "16-256" BasicUNet)
            return nets.BasicUNet(
                spatial_dims=2, in_channels=cin, out_channels=num_classes, features=(f, 2 * f, 4 * f, 8 * f, 16 * f, f)
            )
        raise ConfigError(f"model.name: unsupported MONAI network '{kind}' (UNet, BasicUNet)")
    try:
        factory = MODELS.get(cfg.name)
    except KeyError as e:
        raise ConfigError(str(e.args[0])) from None
    return factory(in_channels=cin, num_classes=num_classes, base_width=cfg.base_width, depth=cfg.depth)
