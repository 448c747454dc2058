"""Baselines part B: PCL, GCL, WCL, DeSD, DiRA (losses on hand-made inputs, one CPU step per method)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import medssl.methods.desd
import medssl.methods.dira
import medssl.methods.gcl
import medssl.methods.pcl
import medssl.methods.wcl  # noqa: F401
from medssl.losses.dino import dino_loss, teacher_temperature, update_center
from medssl.losses.dira import (
    cutout,
    inpaint,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    moco_infonce,
    outpaint,
    patch_shuffle,
    random_distortion,
)
from medssl.losses.gcl import gcl_local_loss, local_region_corners
from medssl.losses.graph import component_closure
from medssl.losses.wcl import (
    component_mask,
    connected_components,
    nearest_neighbor_graph,
    wcl_graph_loss,
    wcl_instance_loss,
)
from medssl.models.unet import UNet
from medssl.registry import METHODS

torch.set_num_threads(1)

NAMES = ["pcl", "gcl", "wcl", "desd", "dira"]
SMALL = {
    "desd": dict(out_dim=32, hidden_dim=32, bottleneck_dim=16),
    "dira": dict(queue_size=16, disc_width=4),
}


# --------------------------------------------------------------------------------------------
# GCL local loss
# --------------------------------------------------------------------------------------------
def test_gcl_region_corners_20x20() -> None:
    pos, neg = local_region_corners(20, 20)  # ix = iy = 16: quarters 0, 4, 8, 12, 16
    expected = [
        (0, 0),
        (0, 8),
        (0, 16),
        (8, 0),
        (8, 8),
        (8, 16),
        (16, 0),
        (16, 8),
        (16, 16),
        (4, 4),
        (4, 12),
        (12, 4),
        (12, 12),
    ]
    assert pos.tolist() == [list(p) for p in expected]
    assert neg.shape == (13, 5, 2)
    assert neg[0].tolist() == [[0, 8], [4, 4], [4, 8], [8, 0], [8, 4]]
    assert neg[4].tolist() == [[4, 4], [4, 12], [12, 4], [12, 12], [8, 0]]
    assert neg[12].tolist() == [[8, 8], [8, 16], [16, 8], [16, 16], [12, 4]]
    # every 3x3 window fits in the map
    assert int(torch.cat([pos, neg.reshape(-1, 2)]).max()) + 3 <= 20


def test_gcl_region_corners_rectangular_and_all() -> None:
    pos, _neg = local_region_corners(20, 12)  # ix = 16, iy = 8
    assert pos[2].tolist() == [0, 8] and pos[6].tolist() == [16, 0] and pos[12].tolist() == [12, 6]
    pos_all, neg_all = local_region_corners(20, 12, "all")
    assert neg_all.shape == (13, 12, 2)
    for r in range(13):
        others = {tuple(p) for i, p in enumerate(pos_all.tolist()) if i != r}
        assert {tuple(p) for p in neg_all[r].tolist()} == others
    with pytest.raises(ValueError):
        local_region_corners(6, 20)


def _gcl_oracle(f1: torch.Tensor, f2: torch.Tensor, tau: float, negatives: str) -> float:
    pos, neg = local_region_corners(f1.shape[-2], f1.shape[-1], negatives)  # type: ignore[arg-type]

    def vec(f: torch.Tensor, b: int, rc: list[int]) -> np.ndarray:
        v = f[b, :, rc[0] : rc[0] + 3, rc[1] : rc[1] + 3].reshape(-1).double().numpy()
        return v / np.linalg.norm(v)

    total, count = 0.0, 0
    for b in range(f1.shape[0]):
        for r in range(13):
            for fa, fb in ((f1, f2), (f2, f1)):
                a, p = vec(fa, b, pos[r].tolist()), vec(fb, b, pos[r].tolist())
                num = math.exp(a @ p / tau)
                den = num + sum(
                    math.exp(a @ vec(fa, b, n) / tau) + math.exp(a @ vec(fb, b, n) / tau) for n in neg[r].tolist()
                )
                total += -math.log(num / den)
                count += 1
    return total / count


@pytest.mark.parametrize("negatives", ["neighbours", "all"])
def test_gcl_local_loss_matches_loop_oracle(negatives: str) -> None:
    g = torch.Generator().manual_seed(1)
    f1, f2 = torch.randn(2, 3, 12, 10, generator=g), torch.randn(2, 3, 12, 10, generator=g)
    got = float(gcl_local_loss(f1, f2, 0.5, negatives))  # type: ignore[arg-type]
    assert got == pytest.approx(_gcl_oracle(f1, f2, 0.5, negatives), rel=1e-5)


@pytest.mark.parametrize("negatives,n_neg", [("neighbours", 10), ("all", 24)])
def test_gcl_local_loss_constant_maps_closed_form(negatives: str, n_neg: int) -> None:
    f = torch.ones(2, 4, 16, 16)  # every similarity is 1: -log(1 / (1 + n_neg))
    assert float(gcl_local_loss(f, f.clone(), 0.1, negatives)) == pytest.approx(math.log(1 + n_neg), rel=1e-5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# WCL
# --------------------------------------------------------------------------------------------
def test_connected_components_hand_graph() -> None:
    adj = torch.zeros(7, 7, dtype=torch.bool)
    for i, j in [(0, 4), (4, 2), (1, 5), (6, 6)]:  # chain 0-4-2, pair 1-5, isolated 3 and 6
        adj[i, j] = True
    labels = connected_components(adj)
    assert labels.tolist() == [0, 1, 0, 2, 0, 1, 3]
    m = component_mask(labels)
    assert bool(m[0, 2]) and bool(m[2, 4]) and not bool(m[0, 1]) and bool(m[3, 3]) and not bool(m[3, 6])


def test_connected_components_long_chain() -> None:
    n = 33
    adj = torch.zeros(n, n, dtype=torch.bool)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    for a, b in itertools.pairwise(perm):
        adj[a, b] = True
    assert connected_components(adj).tolist() == [0] * n


def test_component_closure_equals_component_mask_on_random_graphs() -> None:
    """The sync-free closure used by the loss is exactly the same-component mask; a chain needs
    every one of the ceil(log2 N) squarings (no early exit is taken or needed)."""
    g = torch.Generator().manual_seed(1)
    for n in (2, 5, 16, 33, 64):
        for density in (0.02, 0.1):
            adj = torch.rand(n, n, generator=g) < density
            assert torch.equal(component_closure(adj), component_mask(connected_components(adj)))
        chain = torch.zeros(n, n, dtype=torch.bool)
        idx = torch.arange(n - 1)
        chain[idx, idx + 1] = True
        assert bool(component_closure(chain).all())


def _angles(deg: list[float]) -> torch.Tensor:
    r = torch.tensor(deg, dtype=torch.float64) * math.pi / 180
    return torch.stack([torch.cos(r), torch.sin(r)], 1)


def test_nearest_neighbor_graph_hand_points() -> None:
    # 0 and 1 close; 2, 3, 4 a chain far from them
    z = _angles([0, 5, 90, 100, 115])
    adj = nearest_neighbor_graph(z)
    assert (
        adj.tolist()
        == (
            torch.tensor([[0, 1, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 1, 0], [0, 0, 1, 0, 1], [0, 0, 0, 1, 0]]) > 0
        ).tolist()
    )
    assert connected_components(adj).tolist() == [0, 0, 1, 1, 1]


def _supcon_np(z: torch.Tensor, mask: np.ndarray, tau: float) -> float:
    zn = F.normalize(z.double(), dim=1).numpy()
    s = zn @ zn.T / tau
    n = len(s)
    losses = []
    for a in range(n):
        pos = [p for p in range(n) if p != a and mask[a, p]]
        if not pos:
            continue
        den = np.log(sum(np.exp(s[a, b]) for b in range(n) if b != a))
        losses.append(-np.mean([s[a, p] - den for p in pos]))
    return float(np.mean(losses))


def test_wcl_graph_loss_swaps_labels() -> None:
    g1 = _angles([0, 5, 90, 100]).float()  # components {0,1}, {2,3}
    g2 = _angles([0, 100, 3, 97]).float()  # components {0,2}, {1,3}
    m1 = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], bool)
    m2 = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]], bool)
    expected = 0.5 * (_supcon_np(g1, m2, 0.1) + _supcon_np(g2, m1, 0.1))
    assert float(wcl_graph_loss(g1, g2, 0.1)) == pytest.approx(expected, rel=1e-5)


def test_wcl_instance_loss_aligned_views_closed_form() -> None:
    # z1 = z2 and all images orthogonal: -log(e^{1/t} / (e^{1/t} + 2(B-1)))
    b, t = 3, 0.5
    z = torch.eye(b)
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2 * (b - 1)))
    assert float(wcl_instance_loss(z, z.clone(), t)) == pytest.approx(expected, rel=1e-5)


# --------------------------------------------------------------------------------------------
# DINO
# --------------------------------------------------------------------------------------------
def test_dino_loss_by_hand() -> None:
    tau_s, tau_t = 0.1, 0.04
    teacher = torch.tensor([[tau_t * math.log(3.0), 0.0]])  # softmax -> (3/4, 1/4)
    student = torch.tensor([[tau_s * math.log(4.0), 0.0]])  # softmax -> (4/5, 1/5)
    expected = -(0.75 * math.log(0.8) + 0.25 * math.log(0.2))
    assert float(dino_loss(student, teacher, torch.zeros(1, 2), tau_s, tau_t)) == pytest.approx(expected, rel=1e-6)
    # the centre is subtracted from the teacher only: centring away the teacher's preference gives log 2... for a uniform student
    assert float(dino_loss(torch.zeros(1, 2), teacher, teacher, tau_s, tau_t)) == pytest.approx(math.log(2.0), rel=1e-6)
    # centre (c, c) changes nothing
    shifted = dino_loss(student, teacher, torch.full((1, 2), 5.0), tau_s, tau_t)
    assert float(shifted) == pytest.approx(expected, rel=1e-5)


def test_dino_loss_gradient_only_to_student() -> None:
    s = torch.randn(4, 8, requires_grad=True)
    t = torch.randn(4, 8, requires_grad=True)
    dino_loss(s, t, torch.zeros(1, 8)).backward()
    assert s.grad is not None and t.grad is None


def test_update_center_formula() -> None:
    center = torch.tensor([[1.0, 2.0]])
    teacher = torch.tensor([[0.0, 0.0], [2.0, 4.0], [1.0, 2.0]])  # mean (1, 2): unchanged
    assert update_center(center, teacher, 0.9).tolist()[0] == pytest.approx([1.0, 2.0])
    new = update_center(torch.zeros(1, 2), torch.tensor([[1.0, 2.0], [1.0, 2.0]]), 0.9)
    assert new.tolist()[0] == pytest.approx([0.1, 0.2])


def test_teacher_temperature_schedule() -> None:
    assert teacher_temperature(0.0) == pytest.approx(0.04)
    assert teacher_temperature(0.15) == pytest.approx(0.055)
    assert teacher_temperature(0.3) == pytest.approx(0.07)
    assert teacher_temperature(0.9) == pytest.approx(0.07)


# --------------------------------------------------------------------------------------------
# DiRA: distortions, InfoNCE, LSGAN
# --------------------------------------------------------------------------------------------
def _img(seed: int = 0, shape: tuple[int, ...] = (3, 1, 64, 64)) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 0.9 + 0.05  # no exact 0 or 1


def test_cutout_changes_exactly_its_boxes() -> None:
    x = _img()
    out, mask = cutout(x, torch.Generator().manual_seed(3))
    assert out.shape == x.shape and mask.shape == (3, 1, 64, 64) and bool(mask.any())
    m = mask.expand_as(x)
    assert torch.equal(out[~m], x[~m])
    assert bool((out[m] == 0).all())


def test_inpaint_changes_exactly_its_boxes() -> None:
    x = _img(1)
    out, mask = inpaint(x, torch.Generator().manual_seed(4))
    m = mask.expand_as(x)
    assert out.shape == x.shape and bool(mask.any())
    assert torch.equal(out[~m], x[~m])
    assert bool((out[m] != x[m]).all()) and bool(((out[m] >= 0) & (out[m] < 1)).all())


def test_outpaint_keeps_exactly_its_boxes() -> None:
    x = _img(2)
    out, mask = outpaint(x, torch.Generator().manual_seed(5))
    m = mask.expand_as(x)
    assert out.shape == x.shape and bool(mask.any()) and bool((~mask).any())
    assert torch.equal(out[~m], x[~m])
    assert bool((out[m] == 0).all())
    assert float(mask.float().mean()) < 0.7  # kept boxes are large (154-174 of 224 px)


def test_patch_shuffle_swaps_one_pair() -> None:
    x = _img(3, (1, 2, 64, 64))
    out, mask = patch_shuffle(x, torch.Generator().manual_seed(6), pairs=1)
    m = mask.expand_as(x)
    assert torch.equal(out[~m], x[~m])
    assert bool((out[m] != x[m]).all())
    # the changed pixels are the same multiset of values (a swap)
    assert torch.equal(out[m].sort().values, x[m].sort().values)
    # two disjoint boxes of equal size: the mask area is even and at most 2 * (15/224 * 64)^2
    area = int(mask[0, 0].sum())
    assert area % 2 == 0 and 2 <= area <= 2 * round(15 / 224 * 64) ** 2


def test_random_distortion_reproducible_and_masked() -> None:
    x = _img(4, (8, 1, 32, 32))
    a, ma = random_distortion(x, torch.Generator().manual_seed(7))
    b, mb = random_distortion(x, torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and torch.equal(ma, mb)
    m = ma.expand_as(x)
    assert a.shape == x.shape and torch.equal(a[~m], x[~m])
    none, mn = random_distortion(x, torch.Generator().manual_seed(7), {"cutout": 0.0})
    assert torch.equal(none, x) and not bool(mn.any())
    with pytest.raises(ValueError):
        random_distortion(x, torch.Generator(), {"cutout": 0.8, "shuffle": 0.5})


def test_lsgan_values() -> None:
    ones, zeros = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    assert float(lsgan_discriminator_loss(ones, zeros)) == 0.0
    assert float(lsgan_discriminator_loss(zeros, ones)) == pytest.approx(1.0)
    assert float(lsgan_discriminator_loss(torch.full((3,), 0.5), torch.full((3,), 0.5))) == pytest.approx(0.25)
    assert float(lsgan_generator_loss(ones)) == 0.0
    assert float(lsgan_generator_loss(torch.full((5,), 0.5))) == pytest.approx(0.25)
    assert float(lsgan_generator_loss(torch.tensor([0.0, 1.0]))) == pytest.approx(0.5)


def test_moco_infonce_closed_form() -> None:
    t = 0.2
    q = torch.tensor([[1.0, 0.0, 0.0]])
    queue = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 3.0]])  # orthogonal negatives (normalised inside)
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2.0))
    assert float(moco_infonce(q, q * 5, queue, t)) == pytest.approx(expected, rel=1e-6)


# --------------------------------------------------------------------------------------------
# Methods: one CPU step each
# --------------------------------------------------------------------------------------------
def _batch(b: int = 4, size: int = 64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    img = torch.rand(b, 1, size, size, generator=g)
    v1 = (img * 1.1).clamp(0, 1)
    v2 = (img * 0.9 + 0.05).clamp(0, 1)
    return {
        "image": img,
        "v1": v1,
        "v2": v2,
        "v3": v1.flip(-1),
        "v4": v2.flip(-2),
        "position": torch.tensor([0.1, 0.15, 0.5, 0.9]),
        "partition": torch.tensor([0, 0, 2, 3]),
        "volume": torch.tensor([0, 0, 1, 1]),
    }


def _make(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return METHODS.get(name)(UNet(1, 2, base_width=4), **SMALL.get(name, {}))


def _targets(method: torch.nn.Module) -> list[torch.nn.Module]:
    return [t for _, t in method.momentum_pairs()]  # type: ignore[operator]


@pytest.mark.parametrize("name", NAMES)
def test_method_one_step(name: str) -> None:
    method = _make(name)
    method.train()
    stages = [(0, 10), (9, 10)] if name in ("gcl", "dira") else [(0, 10)]  # both GCL stages; DiRA with L_A
    for step, max_steps in stages:
        method.on_step(step, max_steps)  # type: ignore[operator]
        method.zero_grad(set_to_none=True)
        out = method(_batch())
        assert "loss" in out and out["loss"].ndim == 0 and bool(torch.isfinite(out["loss"]))
        assert all(bool(torch.isfinite(v)) for v in out.values())
        out["loss"].backward()
        grads = [p.grad for p in method.backbone.encoder.parameters() if p.grad is not None]  # type: ignore[union-attr]
        dec = [p.grad for p in method.backbone.decoder.parameters() if p.grad is not None]  # type: ignore[union-attr]
        if name == "gcl" and step > 0:
            assert not grads and dec  # stage 2: only the decoder learns
        else:
            assert grads and any(float(g.abs().sum()) > 0 for g in grads)
        for target in _targets(method):
            assert all(p.grad is None for p in target.parameters())
            assert all(not p.requires_grad for p in target.parameters())
        bare = method.bare_forward(_batch())  # type: ignore[operator]
        assert bare.ndim == 0 and bool(torch.isfinite(bare))
        method.zero_grad(set_to_none=True)
        bare.backward()
    expected_parts = {"pcl": set(), "gcl": {"global_loss", "local_loss"}, "wcl": {"instance", "graph"},
                      "desd": {f"stage{i}" for i in range(1, 6)},
                      "dira": {"discriminative", "restorative", "adversarial", "discriminator"}}[name]  # fmt: skip
    assert expected_parts <= set(out)
    assert set(method.pretrained_state_dict()) and all(  # type: ignore[operator]
        k.startswith(tuple(p + "." for p in method.pretrains))
        for k in method.pretrained_state_dict()  # type: ignore[operator]
    )


def test_gcl_stage_losses_reported() -> None:
    method = _make("gcl")
    method.on_step(0, 10)
    with torch.no_grad():
        out = method(_batch())
    assert float(out["local_loss"]) == 0.0 and float(out["global_loss"]) == float(out["loss"]) > 0
    method.on_step(5, 10)  # progress 0.5 = global_fraction: stage 2
    with torch.no_grad():
        out = method(_batch())
    assert float(out["global_loss"]) == 0.0 and float(out["local_loss"]) == float(out["loss"]) > 0


def test_gcl_stage2_leaves_encoder_unchanged() -> None:
    method = _make("gcl")
    method.train()
    method.on_step(8, 10)
    opt = torch.optim.SGD(method.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    enc_before = {k: v.clone() for k, v in method.backbone.encoder.named_parameters()}
    dec_before = method.backbone.decoder.blocks[0].convs[0][0].weight.clone()
    opt.zero_grad(set_to_none=True)
    method(_batch())["loss"].backward()
    opt.step()
    for k, v in method.backbone.encoder.named_parameters():
        assert torch.equal(v, enc_before[k]), k
    assert not torch.equal(method.backbone.decoder.blocks[0].convs[0][0].weight, dec_before)


def test_dira_gradient_separation() -> None:
    method = _make("dira")
    method.train()
    method.on_step(9, 10)
    assert method.adversarial_active
    out = method(_batch())
    disc = [p for p in method.discriminator.parameters()]
    gen = [p for n, p in method.named_parameters() if p.requires_grad and not n.startswith("discriminator.")]
    g_disc = torch.autograd.grad(out["discriminator"], disc + gen, allow_unused=True, retain_graph=True)
    assert all(g is not None for g in g_disc[: len(disc)])
    assert all(g is None for g in g_disc[len(disc) :])
    g_adv = torch.autograd.grad(out["adversarial"], disc + gen, allow_unused=True, retain_graph=True)
    assert all(g is None for g in g_adv[: len(disc)])
    assert any(g is not None and float(g.abs().sum()) > 0 for g in g_adv[len(disc) :])
    # the total gives the discriminator exactly its own loss's gradient
    g_tot = torch.autograd.grad(out["loss"], disc, retain_graph=True)
    for a, b in zip(g_tot, g_disc[: len(disc)]):
        torch.testing.assert_close(a, method.disc_weight * b)


def test_dira_warmup_has_no_adversarial_part_and_queue_advances() -> None:
    method = _make("dira")
    method.train()
    method.on_step(0, 10)
    before = method.queue.clone()
    out = method(_batch())
    assert float(out["adversarial"]) == 0.0 and float(out["discriminator"]) == 0.0
    expected = out["discriminative"] + 10 * out["restorative"]
    torch.testing.assert_close(out["loss"], expected)
    assert int(method.queue_ptr) == 4
    assert not torch.equal(method.queue[:4], before[:4]) and torch.equal(method.queue[4:], before[4:])
    torch.testing.assert_close(method.queue[:4].norm(dim=1), torch.ones(4))


def test_desd_schedules_and_center() -> None:
    method = _make("desd")
    method.train()
    assert method.momentum(0.0) == pytest.approx(0.996) and method.momentum(1.0) == pytest.approx(1.0)
    assert method.momentum(0.5) == pytest.approx(0.998)
    method.on_step(15, 100)
    assert method.teacher_temp == pytest.approx(0.055)
    assert float(method.center.abs().sum()) == 0.0
    method(_batch())
    assert float(method.center.abs().sum()) > 0.0
    # during the first 1% the last layers get no gradient
    method.on_step(0, 1000)
    method.zero_grad(set_to_none=True)
    method(_batch())["loss"].backward()
    assert all(h.last_direction.grad is None for h in method.student_heads)
    method.on_step(500, 1000)
    method.zero_grad(set_to_none=True)
    method(_batch())["loss"].backward()
    assert all(h.last_direction.grad is not None for h in method.student_heads)


def test_pcl_delta_changes_positives() -> None:
    # with positions 0.1/0.15 within delta 0.1 the loss differs from the instance-only case (delta tiny)
    torch.manual_seed(0)
    a = METHODS.get("pcl")(UNet(1, 2, base_width=4), delta=0.1)
    torch.manual_seed(0)
    b = METHODS.get("pcl")(UNet(1, 2, base_width=4), delta=1e-6)
    with torch.no_grad():
        la, lb = float(a(_batch())["loss"]), float(b(_batch())["loss"])
    assert math.isfinite(la) and math.isfinite(lb) and la != pytest.approx(lb)
    with pytest.raises(ValueError):
        METHODS.get("pcl")(UNet(1, 2, base_width=4), delta=0.0)
