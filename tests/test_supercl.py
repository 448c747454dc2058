"""SuperCL losses, method, reference-checkpoint compatibility and figure (METHODS.md section 3)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import medssl.losses.supercl as sl
from medssl.losses.supcon import instance_mask, positional_mask, supcon_loss
from medssl.losses.supercl import (
    average_superpixel_map,
    ccl_components,
    ccl_mask,
    downsample_superpixels,
    inter_loss,
    intra_loss,
    supercl_loss,
)
from medssl.methods.supercl import SuperCL
from medssl.models import UNet, convert_reference_state_dict
from medssl.registry import METHODS

torch.set_num_threads(1)
T, TB = 0.1, 0.07
SCALE = T / TB


# --- an independent oracle: the reference SupConLoss / SampleConLoss written from their description ----------
def _ref_supcon(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """features (n, V, D); mask (n, n) image-level or (V n, V n); mean over ALL anchors."""
    n, v = features.shape[:2]
    contrast = torch.cat(torch.unbind(features, 1), 0).double()
    logits = F.cosine_similarity(contrast[:, None], contrast[None], dim=-1) / T
    full = mask.double() if mask.shape[0] == n * v else mask.double().repeat(v, v)
    not_self = 1 - torch.eye(n * v, dtype=torch.float64)
    full = full * not_self
    log_prob = logits - torch.log((torch.exp(logits) * not_self).sum(1, keepdim=True))
    return (-(T / TB) * (full * log_prob).sum(1) / full.sum(1)).mean()


def _ref_intra(f1, f2, sp, stride):
    b, c, h, w = f1.shape
    lab = F.interpolate(sp[:, None].float(), size=(h, w), mode="nearest")[:, 0]
    total = 0.0
    for i in range(b):
        feats = torch.stack([f1[i].reshape(c, -1).T, f2[i].reshape(c, -1).T], 1)[::stride]
        labels = lab[i].reshape(-1)[::stride]
        total = total + _ref_supcon(feats, labels[:, None] == labels[None, :])
    return total / b


# --- ILCP ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tau", [0.5, 1.0])
def test_intra_two_superpixels_closed_form(tau: float) -> None:
    # two tokens per view, orthogonal, labels 0 and 1: each anchor's only positive is its twin (cos 1)
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).T.reshape(1, 2, 1, 2)
    sp = torch.tensor([[[0, 1]]])
    got = intra_loss(f, f.clone(), sp, stride=1, temperature=tau)
    lse = math.log(2 + math.exp(1 / tau))
    assert got.item() == pytest.approx(-(tau / TB) * (1 / tau - lse), rel=1e-5)
    # one superpixel: the three others are positives (cos 0, 1, 0)
    got_same = intra_loss(f, f.clone(), torch.zeros(1, 1, 2, dtype=torch.long), stride=1, temperature=tau)
    expected = -(tau / TB) * ((0 - lse) + (1 / tau - lse) + (0 - lse)) / 3
    assert got_same.item() == pytest.approx(expected, rel=1e-5)


def test_intra_matches_reference_oracle(rng: np.random.Generator) -> None:
    torch.manual_seed(0)
    f1, f2 = torch.randn(3, 8, 4, 6), torch.randn(3, 8, 4, 6)
    sp = torch.from_numpy(rng.integers(0, 4, size=(3, 16, 24)))
    for stride in (1, 5):
        assert intra_loss(f1, f2, sp, stride=stride).item() == pytest.approx(
            _ref_intra(f1, f2, sp, stride).item(), rel=1e-5
        )


def test_downsample_superpixels_is_reference_nearest() -> None:
    sp = torch.arange(16).reshape(1, 4, 4)
    assert downsample_superpixels(sp, (2, 2)).tolist() == [[[0, 2], [8, 10]]]
    big = torch.randint(0, 300, (2, 48, 40))
    ref = F.interpolate(big[:, None].float(), size=(3, 5), mode="nearest")[:, 0].long()
    assert torch.equal(downsample_superpixels(big, (3, 5)), ref)


# --- ASP -----------------------------------------------------------------------------------------------
def test_asp_both_divisions() -> None:
    m = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    f = torch.stack([m - 1, m + 1])[None]  # channel mean = m
    sp = torch.tensor([[[0, 0], [1, 1]]])
    img = average_superpixel_map(f, sp, "image")
    assert torch.allclose(img, torch.tensor([[[0.75, 0.75], [1.75, 1.75]]]))
    sup = average_superpixel_map(f, sp, "superpixel")
    assert torch.allclose(sup, torch.tensor([[[1.5, 1.5], [3.5, 3.5]]]))


def test_asp_batch_labels_do_not_mix_and_downsample() -> None:
    m = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 40.0]]])
    sp_full = torch.tensor([[[0, 0, 0, 0]] * 2 + [[1, 1, 1, 1]] * 2, [[0, 0, 5, 5]] * 4])  # (2, 4, 4) -> 2x2
    got = average_superpixel_map(m, sp_full, "superpixel")
    assert torch.allclose(got[0], torch.tensor([[1.5, 1.5], [3.5, 3.5]]))
    assert torch.allclose(got[1], torch.tensor([[20.0, 30.0], [20.0, 30.0]]))


def test_asp_rejects_labels_outside_the_map_range() -> None:
    m = torch.ones(1, 2, 2)
    with pytest.raises(ValueError, match="superpixel labels"):
        average_superpixel_map(m, torch.tensor([[[0, 1], [2, 4]]]))  # 4 >= 2 * 2
    with pytest.raises(ValueError, match="superpixel labels"):
        average_superpixel_map(m, torch.tensor([[[0, 1], [2, -1]]]))


def test_asp_traces_as_one_graph_on_cpu() -> None:
    """The host-side label check is skipped inside torch.compile, so the ASP is one graph on CPU too."""
    f = torch.arange(32, dtype=torch.float32).reshape(2, 1, 4, 4)
    sp = torch.tensor([[[0, 0, 1, 1]] * 4, [[2, 2, 2, 3]] * 4])
    compiled = torch.compile(average_superpixel_map, backend="eager", fullgraph=True)  # a break raises
    assert torch.allclose(compiled(f, sp, "superpixel"), average_superpixel_map(f, sp, "superpixel"))
    torch._dynamo.reset()


def test_ccl_mask_equals_the_component_labels_mask(rng: np.random.Generator) -> None:
    """The sync-free closure in ccl_mask gives exactly the mask of the component labels."""
    for n in (4, 10, 32):
        v = torch.from_numpy(rng.normal(size=(n, 6)))
        comp = ccl_components(v)
        expected = (comp[:, None] == comp[None, :]) | instance_mask(n // 2, 2)
        assert torch.equal(ccl_mask(v, views=2), expected)


# --- CCL -----------------------------------------------------------------------------------------------
def _angles(*deg: float) -> torch.Tensor:
    r = torch.tensor(deg, dtype=torch.float64) * math.pi / 180
    return torch.stack([torch.cos(r), torch.sin(r)], 1)


def test_ccl_four_nodes_two_components() -> None:
    comp = ccl_components(_angles(0, 10, 90, 100))  # 0<->1, 2<->3
    assert comp.tolist() == [0, 0, 1, 1]
    comp_chain = ccl_components(_angles(0, 10, 24, 90, 100))  # 2 -> 1 joins {0, 1}; undirected
    assert comp_chain.tolist() == [0, 0, 0, 1, 1]


def test_ccl_mask_forces_views_only_pairwise() -> None:
    # images 0, 1; view-1 vectors at 0 and 10 degrees, view-2 vectors at 90 and 100 degrees
    vec = _angles(0, 10, 90, 100)
    mask = ccl_mask(vec, views=2)
    expected = torch.tensor(
        [[1, 1, 1, 0], [1, 1, 0, 1], [1, 0, 1, 1], [0, 1, 1, 1]], dtype=torch.bool
    )  # components {0,1}, {2,3} plus (0,2), (1,3); (0,3) stays negative
    assert torch.equal(mask, expected)


def test_ccl_matches_brute_force(rng: np.random.Generator) -> None:
    for _ in range(5):
        x = rng.normal(size=(12, 5))
        comp = ccl_components(torch.from_numpy(x)).numpy()
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        s = xn @ xn.T
        np.fill_diagonal(s, -np.inf)
        nn = s.argmax(1)
        adj = np.eye(12, dtype=bool)
        adj[np.arange(12), nn] = adj[nn, np.arange(12)] = True
        reach = adj.copy()
        for _ in range(12):
            reach = (reach.astype(int) @ adj.astype(int)) > 0
        assert np.array_equal(reach, comp[:, None] == comp[None, :])


# --- IGCP / L_ins / total --------------------------------------------------------------------------------
def test_inter_closed_form_and_shared_logits() -> None:
    z = torch.eye(2)
    tau = 0.5
    lse = math.log(2 + math.exp(1 / tau))
    mask = instance_mask(2)
    got = inter_loss(z, z.clone(), mask, temperature=tau)
    assert got.item() == pytest.approx(-(tau / TB) * (1 / tau - lse), rel=1e-5)
    logits = sl.cosine_logits(torch.cat([z, z]), tau)
    assert inter_loss(z, z, mask, temperature=tau, logits=logits).item() == pytest.approx(got.item(), rel=1e-6)


def test_supercl_loss_parts_and_one_similarity(monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> None:
    torch.manual_seed(1)
    f1, f2 = torch.randn(4, 6, 4, 4), torch.randn(4, 6, 4, 4)
    z3, z4 = torch.randn(4, 5), torch.randn(4, 5)
    sp = torch.from_numpy(rng.integers(0, 3, size=(4, 16, 16)))
    pos = torch.tensor([0.1, 0.15, 0.5, 0.9])
    calls = []
    real = sl.cosine_logits
    monkeypatch.setattr(sl, "cosine_logits", lambda z, t: calls.append(tuple(z.shape)) or real(z, t))
    out = supercl_loss(f1, f2, z3, z4, sp, pos, stride=2)
    assert calls == [(4, 16, 6), (8, 5)]  # ILCP tokens once, [z3, z4] once for L_ins and L_inter
    assert out["loss"].item() == pytest.approx((out["ins"] + out["intra"] + 0.5 * out["inter"]).item(), rel=1e-6)
    z = torch.cat([z3, z4])
    assert out["ins"].item() == pytest.approx(supcon_loss(z, positional_mask(pos, 0.1)).item(), rel=1e-5)
    assert out["ins"].item() == pytest.approx(
        _ref_supcon(torch.stack([z3, z4], 1), (pos[:, None] - pos[None]).abs() < 0.1).item(), rel=1e-5
    )
    a = torch.cat([average_superpixel_map(f1, sp).reshape(4, -1), average_superpixel_map(f2, sp).reshape(4, -1)])
    assert out["inter"].item() == pytest.approx(_ref_supcon(torch.stack([z3, z4], 1), ccl_mask(a)).item(), rel=1e-5)
    assert out["intra"].item() == pytest.approx(_ref_intra(f1, f2, sp, 2).item(), rel=1e-5)
    # no positions: instance positives (the reference's 2D data sets)
    out_inst = supercl_loss(f1, f2, z3, z4, sp, None, stride=2)
    assert out_inst["ins"].item() == pytest.approx(supcon_loss(z, instance_mask(4)).item(), rel=1e-5)


def test_supercl_loss_uses_second_map_for_view_two(rng: np.random.Generator) -> None:
    torch.manual_seed(2)
    f1, f2 = torch.randn(4, 6, 4, 4), torch.randn(4, 6, 4, 4)
    z3, z4 = torch.randn(4, 5), torch.randn(4, 5)
    s1 = torch.from_numpy(rng.integers(0, 3, size=(4, 4, 4)))
    s2 = torch.from_numpy(rng.integers(0, 3, size=(4, 4, 4)))
    out = supercl_loss(f1, f2, z3, z4, s1, None, s2, stride=1)
    a = torch.cat([average_superpixel_map(f1, s1).reshape(4, -1), average_superpixel_map(f2, s2).reshape(4, -1)])
    assert out["inter"].item() == pytest.approx(inter_loss(z3, z4, ccl_mask(a)).item(), rel=1e-6)
    assert out["intra"].item() == pytest.approx(intra_loss(f1, f2, s1, 1).item(), rel=1e-6)


# --- the method ------------------------------------------------------------------------------------------
def _batch(b: int = 2, size: int = 64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    batch = {f"v{i}": torch.rand(b, 1, size, size, generator=g) for i in range(1, 5)}
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    batch["superpixels"] = ((yy // 16) * 4 + xx // 16).expand(b, size, size).clone()
    batch["position"] = torch.linspace(0.1, 0.9, b)
    return batch


def test_method_registered_with_contract() -> None:
    entry = METHODS.entry("supercl")
    assert entry.obj is SuperCL and "TIP 2026" in entry.paper
    assert SuperCL.views == ("v1", "v2", "v3", "v4") and SuperCL.needs == frozenset({"superpixels"})
    assert SuperCL.pretrains == ("encoder",) and SuperCL.variants == {"readme": {"optim": {"lr": 0.1}}}


def test_method_step_gradients_and_bare_forward() -> None:
    torch.manual_seed(0)
    method = SuperCL(UNet(1, 2, base_width=4), stride=2)
    batch = _batch()
    out = method(batch)
    assert set(out) == {"loss", "ins", "intra", "inter"}
    assert torch.isfinite(out["loss"])
    assert out["loss"].item() == pytest.approx((out["ins"] + out["intra"] + 0.5 * out["inter"]).item(), rel=1e-6)
    out["loss"].backward()
    enc = [p.grad for p in method.backbone.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in enc)
    assert all(p.grad is None for p in method.backbone.decoder.parameters())
    assert all(p.grad is not None for p in method.head.parameters())
    assert (
        method.head.mlp[0].in_features == 64 and method.head.mlp[-1].out_features == 512
    )  # the reference's --classes 512
    assert torch.isfinite(method.bare_forward(batch))
    assert set(method.pretrained_state_dict()) == {"encoder." + k for k in method.backbone.encoder.state_dict()}


def test_encoder_init_follows_the_reference() -> None:
    torch.manual_seed(0)
    he = UNet(1, 2, base_width=8)
    w_he = he.encoder.stages[0][0][0].weight.detach().clone()
    SuperCL(he)  # default: the reference's encoder keeps PyTorch's default initialisation
    w = he.encoder.stages[0][0][0].weight.detach()
    # kaiming_uniform(a=sqrt(5)) bounds |w| by 1/sqrt(fan_in) = 1/3 for a 3x3 conv of one channel;
    # the U-Net's He-normal init (std sqrt(2 / 9 / (1 + 0.01**2)) ~ 0.47) exceeds it
    assert float(w.abs().max()) <= 1 / 3 + 1e-6 and float(w_he.abs().max()) > 1 / 3
    kept = UNet(1, 2, base_width=8)
    before = kept.encoder.stages[0][0][0].weight.detach().clone()
    SuperCL(kept, encoder_init="he")
    assert torch.equal(kept.encoder.stages[0][0][0].weight, before)
    with pytest.raises(ValueError, match="encoder_init"):
        SuperCL(UNet(1, 2, base_width=4), encoder_init="xavier")


def test_ilcp_stride_keeps_the_reference_at_512_and_enough_tokens_below() -> None:
    from medssl.losses.supercl import ilcp_stride

    assert ilcp_stride(32, 32) == 16  # 512 px: the reference's 64 tokens, two columns
    assert ilcp_stride(16, 16) == 4 and ilcp_stride(12, 12) == 2  # 256 px, 192 px
    assert ilcp_stride(8, 8) == 1 and ilcp_stride(4, 4) == 1  # 128 px and 64 px: every token
    assert ilcp_stride(8, 8, min_tokens=0) == 16  # the reference at every size
    assert ilcp_stride(64, 64) == 16  # 1024 px: never more than the reference's stride


def test_method_rejects_bad_options() -> None:
    with pytest.raises(ValueError):
        SuperCL(UNet(1, 2, base_width=4), asp_divide="pixel")
    with pytest.raises(ValueError):
        SuperCL(UNet(1, 2, base_width=4), stride=0)


# --- reference checkpoints (positional_cl / SuperCL naming, saved under "net") --------------------------
def _reference_state_dict(f: int = 4, in_ch: int = 1, prefix: str = "") -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    sd: dict[str, torch.Tensor] = {}
    cin = in_ch
    for i in range(1, 5):
        cout = f * 2 ** (i - 1)
        for j in (1, 2):
            name = f"{prefix}encoder.contr_{i}_{j}"
            sd[f"{name}.0.weight"] = torch.randn(cout, cin, 3, 3, generator=g)
            sd[f"{name}.0.bias"] = torch.randn(cout, generator=g)
            sd[f"{name}.1.weight"] = torch.randn(cout, generator=g)
            sd[f"{name}.1.bias"] = torch.randn(cout, generator=g)
            sd[f"{name}.1.running_mean"] = torch.randn(cout, generator=g)
            sd[f"{name}.1.running_var"] = torch.rand(cout, generator=g) + 0.5
            sd[f"{name}.1.num_batches_tracked"] = torch.tensor(7)
            cin = cout
    sd[f"{prefix}encoder.center.0.weight"] = torch.randn(16 * f, 8 * f, 3, 3, generator=g)
    sd[f"{prefix}encoder.center.0.bias"] = torch.randn(16 * f, generator=g)
    sd[f"{prefix}encoder.center.2.weight"] = torch.randn(16 * f, 16 * f, 3, 3, generator=g)
    sd[f"{prefix}encoder.center.2.bias"] = torch.randn(16 * f, generator=g)
    sd[f"{prefix}head.2.weight"] = torch.randn(16 * f, 16 * f, generator=g)  # UNet2D_classification_SCL's head
    sd[f"{prefix}head.2.bias"] = torch.randn(16 * f, generator=g)
    sd[f"{prefix}head.4.weight"] = torch.randn(3, 16 * f, generator=g)
    sd[f"{prefix}head.4.bias"] = torch.randn(3, generator=g)
    return sd


@pytest.mark.parametrize("prefix", ["", "module."])
def test_reference_checkpoint_loads_into_encoder(prefix: str) -> None:
    ckpt = {"net": _reference_state_dict(prefix=prefix)}
    converted = convert_reference_state_dict(ckpt["net"])
    enc = {k: v for k, v in converted.items() if k.startswith("encoder.")}
    net = UNet(1, 4, base_width=4)
    missing, unexpected = net.load_state_dict(enc, strict=False)
    assert unexpected == []
    assert set(enc) == set("encoder." + k for k in net.encoder.state_dict())
    assert all(not k.startswith("encoder.") for k in missing)
    sd = ckpt["net"]
    assert torch.equal(net.encoder.stages[1][0][0].weight, sd[f"{prefix}encoder.contr_2_1.0.weight"])
    assert torch.equal(net.encoder.stages[0][1][1].running_mean, sd[f"{prefix}encoder.contr_1_2.1.running_mean"])
    assert torch.equal(net.encoder.stages[3][1][1].weight, sd[f"{prefix}encoder.contr_4_2.1.weight"])
    assert torch.equal(net.encoder.center[2].bias, sd[f"{prefix}encoder.center.2.bias"])
    assert {k for k in converted if not k.startswith("encoder.")} == {
        "head.2.weight",
        "head.2.bias",
        "head.4.weight",
        "head.4.bias",
    }
    # the loaded encoder computes what the reference encoder computes: conv -> BN -> LeakyReLU twice, ...
    net.eval()
    x = torch.randn(1, 1, 16, 16)
    y = F.leaky_relu(
        F.batch_norm(
            F.conv2d(x, sd[f"{prefix}encoder.contr_1_1.0.weight"], sd[f"{prefix}encoder.contr_1_1.0.bias"], padding=1),
            sd[f"{prefix}encoder.contr_1_1.1.running_mean"],
            sd[f"{prefix}encoder.contr_1_1.1.running_var"],
            sd[f"{prefix}encoder.contr_1_1.1.weight"],
            sd[f"{prefix}encoder.contr_1_1.1.bias"],
        ),
        0.01,
    )
    assert torch.allclose(net.encoder.stages[0][0](x), y, atol=1e-5)


# --- figure ----------------------------------------------------------------------------------------------
class _FakeStore:
    def __init__(self, root, volumes: dict[str, np.ndarray]) -> None:
        self.root = root
        self._v = volumes
        self.cases = [
            SimpleNamespace(
                case_id=k, patient_id=k, num_slices=v.shape[0], shape=v.shape, spacing=(1.0, 1.0, 1.0), has_label=False
            )
            for k, v in volumes.items()
        ]

    def image(self, case_id: str) -> np.ndarray:
        return self._v[case_id]


def test_plot_supercl_batch_layout(tmp_path) -> None:
    import matplotlib.image as mpimg

    from medssl.reporting.supercl_figure import plot_supercl_batch

    rng = np.random.default_rng(0)
    images = rng.random((3, 32, 32))
    sps = np.repeat(np.arange(4).reshape(1, 2, 2), 3, 0).repeat(16, 1).repeat(16, 2)
    out = tmp_path / "fig" / "b.png"
    path = plot_supercl_batch(images, sps, rng.random((3, 2, 2)), np.array([0, 1, 0]), out, panel_size=1.0, dpi=50)
    assert path == out and out.is_file()
    png = mpimg.imread(out)
    assert png.shape[:2] == (150, 200)  # 3 rows x 4 panels of 1 inch at 50 dpi
    assert png[..., :3].std() > 0.05  # something was drawn
    with pytest.raises(ValueError):
        plot_supercl_batch(images, sps[:2], images, np.zeros(3), out)


def test_supercl_figure_from_store(tmp_path) -> None:
    import matplotlib.image as mpimg

    from medssl.reporting.supercl_figure import supercl_figure

    rng = np.random.default_rng(1)
    vols = {"a": rng.normal(size=(3, 40, 36)).astype(np.float32), "b": np.zeros((2, 40, 36), np.float32)}
    store = _FakeStore(tmp_path, vols)
    out = supercl_figure(store, tmp_path / "s.png", n=2, encoder=UNet(1, 2, base_width=4))
    png = mpimg.imread(out)
    assert png.shape[0] * 4 == pytest.approx(png.shape[1] * 2, abs=8)  # 2 rows of 4 square-ish panels


# --- geometry on real slices at 128 px ----------------------------------------------------------------
def _real_views(store_path, n: int = 8, size: int = 128, mode: str = "online"):
    """A batch of SuperCL's views of real cardiac slices, made by the training pipeline itself."""
    from medssl.data.datasets import PretrainSlices
    from medssl.data.store import SliceStore
    from medssl.data.superpixels import SuperpixelConfig, SuperpixelProvider, build_superpixel_cache
    from medssl.data.views import MultiViewTransform

    store = SliceStore(store_path)
    cfg = SuperpixelConfig(mode=mode, view_size=size)
    if mode == "cache":
        build_superpixel_cache(store, cfg, progress=False)
    ds = PretrainSlices(
        store,
        [c.case_id for c in store.cases],
        size,
        MultiViewTransform(views=SuperCL.views),
        SuperCL.needs,
        SuperpixelProvider(cfg, store),
        seed=0,
    )
    idx = np.linspace(0, len(ds) - 1, n).round().astype(int)
    items = [ds[int(i)] for i in idx]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


@pytest.mark.parametrize("mode", ["online", "cache"])
def test_every_ilcp_anchor_has_positives_and_negatives_at_128px(cardiac_store, mode: str) -> None:
    from medssl.losses.supercl import downsample_superpixels, ilcp_stride

    batch = _real_views(cardiac_store, n=12, mode=mode)
    stride = ilcp_stride(8, 8)
    assert stride == 1
    labels = downsample_superpixels(batch["superpixels"], (8, 8)).reshape(12, -1)[:, ::stride]
    same = labels[:, :, None] == labels[:, None, :]
    assert labels.shape[1] == 64  # tokens spread over the whole 8 x 8 grid, not one column
    assert bool(((~same).sum(-1) > 0).all())  # every anchor has negatives in its image
    in_view = ((same.sum(-1) - 1) > 0).float().mean()
    assert float(in_view) >= 0.9  # and (almost) every anchor a positive besides its own twin


def test_short_supercl_pretraining_lowers_its_three_losses_at_128px(cardiac_store) -> None:
    torch.manual_seed(0)
    batch = _real_views(cardiac_store, n=8)
    method = SuperCL(UNet(1, 2, base_width=8))
    opt = torch.optim.SGD(method.parameters(), lr=0.05, momentum=0.9)
    first = last = None
    for _step in range(12):
        out = method(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        vals = {k: float(out[k].detach()) for k in ("ins", "intra", "inter")}
        first = first or vals
        last = vals
    assert first["intra"] > 1.0  # non-trivial at 128 px (the reference's geometry gave 0.005-0.2)
    for k in ("ins", "intra", "inter"):
        assert last[k] < first[k], (k, first[k], last[k])
