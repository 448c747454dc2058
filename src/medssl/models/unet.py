"""The 2D U-Net of SuperCL and MACL (METHODS.md section 1), with encoder and decoder addressable
separately so that pre-trained parts can be loaded and frozen.

Feature split (after timm's ``forward_features`` / ``forward_head``):
``encode(x) -> [skip_1, ..., skip_depth, bottleneck]``, ``decode(feats, num_blocks) -> map``,
``forward_head(map) -> logits``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..registry import MODELS

__all__ = ["UNet", "UNetDecoder", "UNetEncoder", "convert_reference_state_dict", "unet"]


def _conv_bn_act(cin: int, cout: int, slope: float) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.LeakyReLU(slope, inplace=True))


class DoubleConv(nn.Sequential):
    """[conv3x3 -> BatchNorm -> LeakyReLU] x 2."""

    def __init__(self, cin: int, cout: int, slope: float = 0.01) -> None:
        super().__init__(_conv_bn_act(cin, cout, slope), _conv_bn_act(cout, cout, slope))


class UNetEncoder(nn.Module):
    """Contracting path: ``depth`` stages of DoubleConv + 2x2 max-pool, then the un-normalised centre block.

    Args:
        in_channels: input channels (1; 4 for the papers' BraTS models).
        base_width: channels of the first stage ``f`` (32 in the papers).
        depth: number of pooling stages (4: bottleneck ``16f`` channels at 1/16 of the input).
    """

    def __init__(self, in_channels: int = 1, base_width: int = 32, depth: int = 4, slope: float = 0.01) -> None:
        super().__init__()
        widths = [base_width * 2**i for i in range(depth)]
        self.stages = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.stages.append(DoubleConv(cin, w, slope))
            cin = w
        self.pool = nn.MaxPool2d(2, 2)
        cout = base_width * 2**depth
        self.center = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.out_channels = cout
        self.feature_info = [dict(channels=w, reduction=2**i) for i, w in enumerate(widths)] + [
            dict(channels=cout, reduction=2**depth)
        ]

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
            x = self.pool(x)
        feats.append(self.center(x))
        return feats


class UpBlock(nn.Module):
    """ConvTranspose 2x2 stride 2 (halves channels) -> concatenate the skip -> DoubleConv."""

    def __init__(self, cin: int, slope: float = 0.01) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
        self.convs = DoubleConv(cin, cin // 2, slope)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.up(x)
        if x.shape[-2:] != skip.shape[-2:]:  # centre-crop the skip as the reference code does
            dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
            skip = skip[..., dh // 2 : dh // 2 + x.shape[-2], dw // 2 : dw // 2 + x.shape[-1]]
        return self.convs(torch.cat([x, skip], dim=1))


class UNetDecoder(nn.Module):
    """Expanding path of ``depth`` UpBlocks; ``forward(feats, num_blocks)`` may stop early (MACL's D2)."""

    def __init__(self, base_width: int = 32, depth: int = 4, slope: float = 0.01) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(UpBlock(base_width * 2 ** (depth - i), slope) for i in range(depth))
        self.bottleneck_channels = base_width * 2**depth
        self.out_channels = base_width

    def block_channels(self, num_blocks: int) -> int:
        """Channels of the map after ``num_blocks`` blocks (the bottleneck's for 0)."""
        return self.bottleneck_channels // 2**num_blocks

    def forward(self, feats: list[Tensor], num_blocks: int | None = None) -> Tensor:
        n = len(self.blocks) if num_blocks is None else num_blocks
        if not 0 <= n <= len(self.blocks):
            raise ValueError(f"num_blocks must be in 0..{len(self.blocks)}, got {n}")
        x = feats[-1]
        skips = feats[:-1][::-1]
        for block, skip in zip(self.blocks[:n], skips):
            x = block(x, skip)
        return x


class UNet(nn.Module):
    """The papers' 2D U-Net.

    Args:
        in_channels: input channels.
        num_classes: output classes (background included).
        base_width: first-stage width ``f``.
        depth: pooling stages; input sides must be divisible by ``2**depth``.

    Example::

        net = UNet(1, 4)
        feats = net.encode(torch.zeros(2, 1, 64, 64))   # 5 maps, bottleneck (2, 512, 4, 4)
        logits = net(torch.zeros(2, 1, 64, 64))          # (2, 4, 64, 64)
    """

    def __init__(
        self, in_channels: int = 1, num_classes: int = 2, base_width: int = 32, depth: int = 4, slope: float = 0.01
    ) -> None:
        super().__init__()
        self.in_channels, self.num_classes, self.base_width, self.depth = in_channels, num_classes, base_width, depth
        self.encoder = UNetEncoder(in_channels, base_width, depth, slope)
        self.decoder = UNetDecoder(base_width, depth, slope)
        self.head = nn.Conv2d(base_width, num_classes, 1, bias=False)
        self.reset_parameters(slope)

    def reset_parameters(self, slope: float = 0.01) -> None:
        """Kaiming-normal (negative slope 0.01) weights, zero biases."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, a=slope)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def bottleneck_channels(self) -> int:
        return self.encoder.out_channels

    def encode(self, x: Tensor) -> list[Tensor]:
        return self.encoder(x)

    def decode(self, feats: list[Tensor], num_blocks: int | None = None) -> Tensor:
        return self.decoder(feats, num_blocks)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.decoder(self.encoder(x)))


@MODELS.register("unet", description="the papers' 2D U-Net (f=32, depth 4)", paper="Zeng et al. 2021 / SuperCL / MACL")
def unet(in_channels: int = 1, num_classes: int = 2, base_width: int = 32, depth: int = 4) -> UNet:
    return UNet(in_channels, num_classes, base_width, depth)


# --- reference checkpoints (dewenzeng/positional_cl naming, used by SuperCL and MACL) -------------
_REF_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^encoder\.contr_(\d)_(\d)\.(\d)\.(.*)$"), "enc"),
    (re.compile(r"^encoder\.center\.(\d)\.(.*)$"), "center"),
    (re.compile(r"^decoder\.upscale(\d)\.(.*)$"), "up"),
    (re.compile(r"^decoder\.expand_(\d)_(\d)\.(\d)\.(.*)$"), "expand"),
    (re.compile(r"^decoder\.head\.0\.(.*)$"), "head"),
]
_PREFIXES = {"share_encoder.": "encoder.", "online_decoder.": "decoder.", "module.": ""}


def convert_reference_state_dict(state: Mapping[str, Tensor], depth: int = 4) -> dict[str, Tensor]:
    """Rename a state dict released by the reference code to this U-Net's keys.

    Accepts the positional_cl / SuperCL names (``encoder.contr_1_1.0.weight``,
    ``decoder.upscale5.weight``, ``decoder.expand_4_1.0.weight``, ``decoder.head.0.weight``) and
    MACL's prefixes (``share_encoder.*`` -> ``encoder.*``, ``online_decoder.*`` -> ``decoder.*``).
    Keys that match no rule (projection heads...) are returned unchanged so the caller can report
    them as unexpected.
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        for old, new in _PREFIXES.items():
            if key.startswith(old):
                key = new + key[len(old) :]
        new_key = key
        for pattern, kind in _REF_RULES:
            m = pattern.match(key)
            if not m:
                continue
            g = m.groups()
            if kind == "enc":
                new_key = f"encoder.stages.{int(g[0]) - 1}.{int(g[1]) - 1}.{g[2]}.{g[3]}"
            elif kind == "center":
                new_key = f"encoder.center.{g[0]}.{g[1]}"
            elif kind == "up":  # upscale5 is the first block for depth 4
                new_key = f"decoder.blocks.{depth + 1 - int(g[0])}.up.{g[1]}"
            elif kind == "expand":
                new_key = f"decoder.blocks.{depth - int(g[0])}.convs.{int(g[1]) - 1}.{g[2]}.{g[3]}"
            elif kind == "head":
                new_key = f"head.{g[0]}"
            break
        out[new_key] = value
    return out
