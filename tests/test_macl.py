"""MACL: the three losses against closed forms and an oracle, the method's branches, shapes,
couplings, gradients and checkpoint conversion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medssl.losses.macl import equivariance_loss, image_level_loss, macl_loss, pixel_level_loss
from medssl.methods.macl import MACL
from medssl.models.unet import UNet, convert_reference_state_dict
from medssl.registry import METHODS

torch.set_num_threads(1)

TAU, TAU_B = 0.1, 0.07


# ------------------------------------------------------------------ oracle
def _supcon_oracle(feats: np.ndarray, pos: np.ndarray, tau: float, tau_b: float) -> float:
    """Independent float64 SupCon: loop over anchors, as METHODS.md section 2 states it."""
    n = feats.shape[0]
    u = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    s = u @ u.T / tau
    losses = []
    for a in range(n):
        others = [b for b in range(n) if b != a]
        log_den = math.log(sum(math.exp(s[a, b]) for b in others))
        ps = [p for p in others if pos[a, p]]
        if ps:
            losses.append(-(tau / tau_b) * np.mean([s[a, p] - log_den for p in ps]))
    return float(np.mean(losses))


def _pcl_mask(p: np.ndarray, delta: float) -> np.ndarray:
    m = np.abs(p[:, None] - p[None, :]) < delta
    return np.tile(m, (2, 2))


# ------------------------------------------------------------------ image level
@pytest.mark.parametrize("tau", [0.5, 1.0])  # tau 0.1 leaves ~3e-4: float32 cancellation, not a test
def test_image_level_closed_form_instance_positives(tau: float) -> None:
    # aux = dom = orthonormal basis; positions far apart: the only positive is the other branch
    z = torch.eye(3, 8)
    pos = torch.tensor([0.1, 0.5, 0.9])
    loss = image_level_loss(z, z.clone(), pos, delta=0.1, temperature=tau, base_temperature=TAU_B)
    # anchor: s = 1/tau to its positive, 0 to the 4 others
    expected = -(tau / TAU_B) * (1 / tau - math.log(math.exp(1 / tau) + 4))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_image_level_closed_form_positional_positives() -> None:
    # two images at nearby positions: every other sample is positive
    z = torch.eye(2, 4)
    pos = torch.tensor([0.50, 0.55])
    loss = image_level_loss(z, z.clone(), pos, delta=0.1)
    log_den = math.log(math.exp(1 / TAU) + 2)
    expected = -(TAU / TAU_B) * np.mean([0 - log_den, 1 / TAU - log_den, 0 - log_den])
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("b,d,delta", [(3, 5, 0.1), (6, 16, 0.3), (4, 2, 0.05)])
def test_image_level_matches_oracle(b: int, d: int, delta: float) -> None:
    g = torch.Generator().manual_seed(b * d)
    za, zd = torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)
    pos = torch.rand(b, generator=g)
    got = image_level_loss(za, zd, pos, delta=delta).item()
    ref = _supcon_oracle(torch.cat([za, zd]).double().numpy(), _pcl_mask(pos.double().numpy(), delta), TAU, TAU_B)
    assert got == pytest.approx(ref, rel=1e-4)


def test_image_level_shape_errors() -> None:
    with pytest.raises(ValueError):
        image_level_loss(torch.randn(3, 4), torch.randn(3, 5), torch.rand(3))
    with pytest.raises(ValueError):
        image_level_loss(torch.randn(3, 4), torch.randn(3, 4), torch.rand(4))


# ------------------------------------------------------------------ pixel level
def test_pixel_level_batched_equals_loop() -> None:
    g = torch.Generator().manual_seed(1)
    b, c, h, w = 4, 6, 3, 5
    za, zd = torch.randn(b, c, h, w, generator=g), torch.randn(b, c, h, w, generator=g)
    pos = torch.tensor([0.1, 0.15, 0.6, 0.9])
    batched = pixel_level_loss(za, zd, pos, delta=0.1)
    loop = torch.stack(
        [image_level_loss(za[:, :, i, j], zd[:, :, i, j], pos, delta=0.1) for i in range(h) for j in range(w)]
    ).mean()
    assert batched.item() == pytest.approx(loop.item(), rel=1e-5)
    # and against the float64 oracle, location by location
    ref = np.mean(
        [
            _supcon_oracle(
                torch.cat([za[:, :, i, j], zd[:, :, i, j]]).double().numpy(),
                _pcl_mask(pos.double().numpy(), 0.1),
                TAU,
                TAU_B,
            )
            for i in range(h)
            for j in range(w)
        ]
    )
    assert batched.item() == pytest.approx(ref, rel=1e-4)


def test_pixel_level_constant_map_equals_image_level() -> None:
    # the same vectors at every location: every location has the image-level loss
    z = torch.eye(3, 8)
    za = z[:, :, None, None].expand(3, 8, 4, 4)
    pos = torch.tensor([0.1, 0.5, 0.9])
    got = pixel_level_loss(za, za.clone(), pos, temperature=0.5)
    expected = -(0.5 / TAU_B) * (2.0 - math.log(math.exp(2.0) + 4))
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_pixel_level_locations_are_not_mixed() -> None:
    # location-wise aligned features give the minimum; shuffling one branch's locations raises the loss
    g = torch.Generator().manual_seed(2)
    za = torch.randn(3, 4, 2, 2, generator=g)
    pos = torch.tensor([0.1, 0.5, 0.9])
    aligned = pixel_level_loss(za, za.clone(), pos)
    shuffled = pixel_level_loss(za, za.flip(-1), pos)
    assert aligned.item() < shuffled.item()


def test_pixel_level_shape_errors() -> None:
    with pytest.raises(ValueError, match="same"):
        pixel_level_loss(torch.randn(2, 4, 4, 4), torch.randn(2, 4, 2, 2), torch.rand(2))
    with pytest.raises(ValueError, match="same"):
        pixel_level_loss(torch.randn(2, 4, 4, 4), torch.randn(2, 8, 4, 4), torch.rand(2))


# ------------------------------------------------------------------ equivariance
def test_equivariance_constants() -> None:
    y_full = torch.full((2, 3, 8, 8), 1.5)
    y_dom = torch.full((2, 3, 2, 2), -0.5)
    assert equivariance_loss(y_full, y_dom, 0.25).item() == pytest.approx(2.0)


def test_equivariance_ramp_align_corners() -> None:
    # align_corners=True samples the corners exactly: rows 0 and 7 of an 8-row ramp
    ramp = torch.arange(8.0)[:, None].expand(8, 8)
    y_full = ramp[None, None].clone()
    exact = torch.tensor([[0.0, 0.0], [7.0, 7.0]])[None, None]
    assert equivariance_loss(y_full, exact, 0.25).item() == pytest.approx(0.0, abs=1e-6)
    # align_corners=False would give rows 1.5 and 5.5: |1.5| + |1.5| averaged
    assert equivariance_loss(y_full, exact + torch.tensor([[1.5], [-1.5]]), 0.25).item() == pytest.approx(1.5)


def test_equivariance_gradients_both_sides() -> None:
    y_full = torch.zeros(1, 1, 4, 4, requires_grad=True)
    y_dom = torch.tensor([[[[1.0]]]], requires_grad=True)
    loss = equivariance_loss(y_full, y_dom, 0.25)
    loss.backward()
    assert loss.item() == pytest.approx(1.0)
    assert y_dom.grad.item() == pytest.approx(1.0)  # d|y - 0|/dy = sign(y) / N, N = 1
    # a 4 -> 1 bilinear resize with align_corners=True reads the top-left corner only
    expected = torch.zeros(4, 4)
    expected[0, 0] = -1.0
    assert torch.allclose(y_full.grad[0, 0], expected)


def test_equivariance_shape_error() -> None:
    with pytest.raises(ValueError, match="scaled by 0.25"):
        equivariance_loss(torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 4, 4), 0.25)


def test_macl_loss_weights() -> None:
    g = torch.Generator().manual_seed(3)
    args = (
        torch.randn(3, 5, generator=g),
        torch.randn(3, 5, generator=g),
        torch.randn(3, 4, 2, 2, generator=g),
        torch.randn(3, 4, 2, 2, generator=g),
        torch.randn(3, 6, 8, 8, generator=g),
        torch.randn(3, 6, 2, 2, generator=g),
        torch.tensor([0.1, 0.12, 0.8]),
    )
    out = macl_loss(*args)
    assert set(out) == {"loss", "global", "dense", "equivariance"}
    assert out["global"].item() == pytest.approx(image_level_loss(args[0], args[1], args[6]).item())
    assert out["dense"].item() == pytest.approx(pixel_level_loss(args[2], args[3], args[6]).item())
    assert out["equivariance"].item() == pytest.approx(equivariance_loss(args[4], args[5]).item())
    total = out["global"] + 0.5 * out["dense"] + 1.0 * out["equivariance"]
    assert out["loss"].item() == pytest.approx(total.item(), rel=1e-6)
    other = macl_loss(*args, weights=(0.0, 0.0, 2.0))
    assert other["loss"].item() == pytest.approx(2 * out["equivariance"].item(), rel=1e-6)


# ------------------------------------------------------------------ method
def _net(base_width: int = 4) -> UNet:
    torch.manual_seed(0)
    return UNet(1, 2, base_width=base_width)


def _batch(size: int = 64, b: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 1, size, size, generator=g)
    return {
        "v1": x,
        "v2": (x * 0.9 + 0.05).clone(),
        "v3": x.flip(-1).clone(),
        "v4": x.flip(-2).clone(),
        "position": torch.linspace(0.1, 0.9, b),
    }


def test_registered_with_variants() -> None:
    entry = METHODS.entry("macl")
    assert entry.obj is MACL and "JBHI" in entry.paper
    assert MACL.views == ("v1", "v2", "v3", "v4") and MACL.pretrains == ("encoder", "decoder")
    assert MACL.variants["paper"] == {"method": {"t_fix": "identity"}, "optim": {"lr": 0.1}}
    assert MACL(_net()).view_options() == {"t_fix": "intensity"}
    assert MACL(_net(), t_fix="identity").view_options() == {"t_fix": "identity"}


def test_heads_match_reference_sizes() -> None:
    m = MACL(UNet(1, 2, base_width=32))
    assert m.pixel_dim == 128
    assert [l.in_channels for l in m.g_pix if isinstance(l, torch.nn.Conv2d)] == [512, 128]
    lin_aux = [l for l in m.g_aux.modules() if isinstance(l, torch.nn.Linear)]
    lin_dom = [l for l in m.g_dom.modules() if isinstance(l, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in lin_aux] == [(512, 128), (128, 128)]
    assert [(l.in_features, l.out_features) for l in lin_dom] == [(128, 128), (128, 128)]


def test_branch_shapes() -> None:
    m = MACL(_net(4), min_bottleneck=0)  # the reference at every size
    zg_aux, zg_dom, zl_aux, zl_dom, y_full, y_dom = m._passes(_batch(64))
    assert zg_aux.shape == zg_dom.shape == (2, 128)
    assert zl_aux.shape == zl_dom.shape == (2, 16, 4, 4)  # C_dec = 4 * 64 / 4 channels, P/16
    assert y_full.shape == (2, 64, 4, 4) and y_dom.shape == (2, 64, 1, 1)


def test_min_bottleneck_keeps_a_spatial_dominant_map() -> None:
    m = MACL(_net(4))  # default min_bottleneck=2
    # 64 px: the x0.25 input (16 px) would give a 1 x 1 bottleneck; the dominant input becomes 32 px
    assert m.dominant_side(64) == 32 and m.dominant_side(128) == 32 and m.dominant_side(512) == 128
    _zg_aux, _zg_dom, zl_aux, zl_dom, y_full, y_dom = m._passes(_batch(64))
    assert y_dom.shape == (2, 64, 2, 2) and y_full.shape == (2, 64, 4, 4)
    assert zl_aux.shape == zl_dom.shape == (2, 16, 4, 4)  # the dominant 8 x 8 map pooled to P/16
    out = m(_batch(64))
    assert all(torch.isfinite(v) for v in out.values())
    # at 128 px and above the reference's geometry is unchanged
    ref = MACL(_net(4), min_bottleneck=0)
    ref.load_state_dict(m.state_dict())
    batch = _batch(128)
    a, b = m(batch), ref(batch)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="min_bottleneck"):
        MACL(_net(4), min_bottleneck=-1)


def test_size_errors() -> None:
    m = MACL(_net(), min_bottleneck=0)
    with pytest.raises(ValueError, match=r"image size 48x48 does not fit down_factor 0.25 and depth 4.*of 64"):
        m(_batch(48))
    with pytest.raises(ValueError, match="2\\*\\*4=16"):
        m(_batch(40))


def test_block_factor_mismatch_and_pixel_dim() -> None:
    with pytest.raises(ValueError, match="use down_factor 0.5 for 1 blocks"):
        MACL(_net(), decoder_blocks=1)
    with pytest.raises(ValueError, match="decoder_blocks must be in 0..4"):
        MACL(_net(), decoder_blocks=5, down_factor=1 / 32)
    with pytest.raises(ValueError, match="pixel_dim 128 must equal"):
        MACL(_net(4), pixel_dim=128)
    with pytest.raises(ValueError, match="coupling"):
        MACL(_net(), coupling="momentum")  # type: ignore[arg-type]


@pytest.mark.parametrize("blocks,factor,size", [(0, 1.0, 32), (1, 0.5, 32)])
def test_other_block_counts_run(blocks: int, factor: float, size: int) -> None:
    m = MACL(_net(4), decoder_blocks=blocks, down_factor=factor)
    out = m(_batch(size, b=3))
    assert torch.isfinite(out["loss"])
    if blocks == 0:  # the dominant pixel features are the bottleneck itself
        assert m.pixel_dim == m.backbone.bottleneck_channels


def _grads(module: torch.nn.Module) -> list[bool]:
    return [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in module.parameters()]


@pytest.mark.parametrize("coupling", ["shared", "ema", "independent"])
def test_couplings_step_and_gradients(coupling: str) -> None:
    m = MACL(_net(4), coupling=coupling)  # type: ignore[arg-type]
    m.train()
    out = m(_batch(64))
    assert set(out) == {"loss", "global", "dense", "equivariance"}
    assert all(torch.isfinite(v) for v in out.values())
    out["loss"].backward()
    bb = m.backbone
    assert all(_grads(bb.encoder))
    assert all(_grads(bb.decoder.blocks[0])) and all(_grads(bb.decoder.blocks[1]))
    for blk in (bb.decoder.blocks[2], bb.decoder.blocks[3], bb.head):
        assert all(p.grad is None for p in blk.parameters())
    assert any(_grads(m.g_pix)) and any(_grads(m.g_aux)) and any(_grads(m.g_dom))
    if coupling == "shared":
        assert m.aux_encoder is None and m.momentum_pairs() == []
    elif coupling == "ema":
        ((online, target),) = m.momentum_pairs()
        assert online is bb.encoder and target is m.aux_encoder
        assert all(p.grad is None and not p.requires_grad for p in target.parameters())
        # the target starts as a copy of the online encoder
        for po, pt in zip(online.parameters(), target.parameters()):
            assert torch.equal(po, pt)
    else:
        assert m.momentum_pairs() == []
        assert all(_grads(m.aux_encoder))
        w_main = bb.encoder.stages[0][0][0].weight
        w_aux = m.aux_encoder.stages[0][0][0].weight
        assert not torch.equal(w_main, w_aux)
    # pre-training exports encoder AND decoder keys
    keys = m.pretrained_state_dict().keys()
    assert any(k.startswith("encoder.") for k in keys) and any(k.startswith("decoder.blocks.3.") for k in keys)
    assert not any(k.startswith("head.") for k in keys)


def test_bare_forward_same_passes() -> None:
    m = MACL(_net(4))
    loss = m.bare_forward(_batch(64))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(_grads(m.backbone.decoder.blocks[1]))
    assert all(p.grad is None for p in m.backbone.decoder.blocks[2].parameters())


def test_loss_falls_under_sgd() -> None:
    torch.manual_seed(0)
    m = MACL(_net(4))
    batch = _batch(64, b=4, seed=5)
    batch["position"] = torch.tensor([0.1, 0.12, 0.6, 0.9])
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(20):
        out = m(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-3:]) < 0.9 * np.mean(losses[:3])


# ------------------------------------------------------------------ reference checkpoints
def _to_reference_names(state: dict[str, torch.Tensor], depth: int = 4) -> dict[str, torch.Tensor]:
    """Rename our UNet keys to MACL's released names (share_encoder / online_decoder, positional_cl layout)."""
    out = {}
    for k, v in state.items():
        p = k.split(".")
        if p[0] == "encoder" and p[1] == "stages":  # encoder.stages.i.j.k.x -> contr_{i+1}_{j+1}.k.x
            new = f"share_encoder.contr_{int(p[2]) + 1}_{int(p[3]) + 1}." + ".".join(p[4:])
        elif p[0] == "encoder" and p[1] == "center":
            new = "share_encoder." + ".".join(p[1:])
        elif p[0] == "decoder" and p[3] == "up":  # decoder.blocks.b.up.x -> upscale{depth+1-b}.x
            new = f"online_decoder.upscale{depth + 1 - int(p[2])}." + ".".join(p[4:])
        elif p[0] == "decoder" and p[3] == "convs":  # decoder.blocks.b.convs.j.k.x -> expand_{depth-b}_{j+1}.k.x
            new = f"online_decoder.expand_{depth - int(p[2])}_{int(p[4]) + 1}." + ".".join(p[5:])
        else:
            continue  # the segmentation head is not part of a MACL checkpoint
        out[new] = v
    return out


def test_reference_checkpoint_converts() -> None:
    src = UNet(1, 2, base_width=4)
    ref = _to_reference_names(src.state_dict())
    # the released names that the structure implies
    assert "share_encoder.contr_4_2.1.running_mean" in ref and "share_encoder.center.2.weight" in ref
    assert "online_decoder.upscale5.weight" in ref and "online_decoder.upscale2.bias" in ref
    assert "online_decoder.expand_4_1.0.weight" in ref and "online_decoder.expand_1_2.1.bias" in ref
    ref["target_instance_projector.2.weight"] = torch.zeros(1)  # a head key stays as it is
    conv = convert_reference_state_dict(ref)
    assert conv.pop("target_instance_projector.2.weight").shape == (1,)
    dst = UNet(1, 2, base_width=4)
    enc = {k[len("encoder.") :]: v for k, v in conv.items() if k.startswith("encoder.")}
    dec = {k[len("decoder.") :]: v for k, v in conv.items() if k.startswith("decoder.")}
    assert len(enc) + len(dec) == len(conv)
    dst.encoder.load_state_dict(enc, strict=True)
    dst.decoder.load_state_dict(dec, strict=True)
    for k, v in src.state_dict().items():
        if not k.startswith("head."):
            assert torch.equal(v, dst.state_dict()[k]), k
    # and a MACL method exports exactly those keys for fine-tuning
    assert set(MACL(dst).pretrained_state_dict()) == set(conv)
