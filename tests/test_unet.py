"""The papers' U-Net: shapes, parts, initialisation and reference-checkpoint key conversion."""

import pytest
import torch

from medssl.models import UNet, convert_reference_state_dict
from medssl.models.heads import DenseHead, PooledMLPHead


def test_shapes_and_feature_info():
    net = UNet(1, 4, base_width=8, depth=4)
    feats = net.encode(torch.zeros(2, 1, 64, 64))
    assert [f.shape[1] for f in feats] == [8, 16, 32, 64, 128]
    assert [f.shape[-1] for f in feats] == [64, 32, 16, 8, 4]
    assert [fi["channels"] for fi in net.encoder.feature_info] == [8, 16, 32, 64, 128]
    assert net(torch.zeros(2, 1, 64, 64)).shape == (2, 4, 64, 64)
    assert net.decode(feats, 2).shape == (2, 32, 16, 16)
    assert net.decoder.block_channels(2) == 32
    with pytest.raises(ValueError):
        net.decode(feats, 5)


def test_paper_widths_and_centre_block_has_no_norm():
    net = UNet(1, 2)
    assert net.bottleneck_channels == 512
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.encoder.center)
    assert net.head.bias is None
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.bias is not None]
    assert all(float(m.bias.detach().abs().sum()) == 0 for m in convs)


def _reference_names(net: UNet) -> dict:
    """Rename our keys to the positional_cl UNet2D names (the structure of the reference code)."""
    out = {}
    for k, v in net.state_dict().items():
        p = k.split(".")
        if p[0] == "encoder" and p[1] == "stages":
            out[f"encoder.contr_{int(p[2]) + 1}_{int(p[3]) + 1}.{p[4]}.{p[5]}"] = v
        elif p[0] == "encoder" and p[1] == "center":
            out[k] = v
        elif p[0] == "decoder" and p[3] == "up":
            out[f"decoder.upscale{5 - int(p[2])}.{p[4]}"] = v
        elif p[0] == "decoder" and p[3] == "convs":
            out[f"decoder.expand_{4 - int(p[2])}_{int(p[4]) + 1}.{p[5]}.{p[6]}"] = v
        elif p[0] == "head":
            out[f"decoder.head.0.{p[1]}"] = v
    return out


def test_reference_state_dict_round_trip():
    src = UNet(1, 3, base_width=4)
    ref = _reference_names(src)
    assert (
        "encoder.contr_1_1.0.weight" in ref
        and "decoder.upscale5.weight" in ref
        and "decoder.expand_1_2.1.running_mean" in ref
    )
    dst = UNet(1, 3, base_width=4)
    dst.load_state_dict(convert_reference_state_dict(ref), strict=True)
    for k, v in src.state_dict().items():
        assert torch.equal(v, dst.state_dict()[k]), k
    macl = {
        (
            "share_encoder." + k[len("encoder.") :]
            if k.startswith("encoder.")
            else "online_decoder." + k[len("decoder.") :]
        ): v
        for k, v in ref.items()
        if not k.startswith("decoder.head")
    }
    conv = convert_reference_state_dict(macl)
    assert set(conv) == {k for k in src.state_dict() if not k.startswith("head")}


def test_heads():
    assert PooledMLPHead(16, 16, 8)(torch.randn(3, 16, 4, 4)).shape == (3, 8)
    assert DenseHead(16, 8)(torch.randn(2, 16, 4, 4)).shape == (2, 8, 4, 4)
