"""Baselines part A: SimCLR, MoCo v2, BYOL, SwAV, SimSiam, SimTriplet (losses and methods)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import medssl.methods.byol
import medssl.methods.moco
import medssl.methods.simclr
import medssl.methods.simsiam
import medssl.methods.simtriplet
import medssl.methods.swav  # noqa: F401
from medssl.losses.byol import byol_loss, byol_regression
from medssl.losses.ntxent import enqueue, infonce_loss, ntxent_loss
from medssl.losses.simsiam import negative_cosine, simsiam_loss
from medssl.losses.supcon import instance_mask, supcon_loss
from medssl.losses.swav import sinkhorn_knopp, swav_loss
from medssl.methods.base import update_momentum
from medssl.models.unet import UNet
from medssl.registry import METHODS

torch.set_num_threads(1)

NAMES = ["simclr", "moco", "byol", "swav", "simsiam", "simtriplet"]
# small heads for a base_width 4 U-Net (bottleneck 64 channels)
SMALL = {
    "simclr": dict(out_dim=16),
    "moco": dict(out_dim=16, queue_size=32),
    "byol": dict(out_dim=16, proj_hidden_dim=32, pred_hidden_dim=32),
    "swav": dict(out_dim=16, num_prototypes=10, freeze_prototypes_steps=0),
    "simsiam": dict(out_dim=32, pred_hidden_dim=8),
    "simtriplet": dict(out_dim=32, pred_hidden_dim=8),
}


# ----------------------------------------------------------------------------------------------- NT-Xent
def _ntxent_oracle(a: np.ndarray, b: np.ndarray, tau: float) -> float:
    """Loop implementation of SimCLR's NT-Xent, written independently from the library."""
    z = np.concatenate([a, b]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = a.shape[0]
    total = 0.0
    for i in range(2 * n):
        pos = i + n if i < n else i - n
        denom = sum(math.exp(z[i] @ z[j] / tau) for j in range(2 * n) if j != i)
        total += -math.log(math.exp(z[i] @ z[pos] / tau) / denom)
    return total / (2 * n)


@pytest.mark.parametrize("n", [2, 3, 8])
@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_ntxent_identical_embeddings_closed_form(n: int, tau: float) -> None:
    # every similarity is 1/tau: the positive is one of 2n - 1 equal candidates
    z = torch.ones(n, 5)
    assert ntxent_loss(z, z.clone(), tau).item() == pytest.approx(-math.log(1 / (2 * n - 1)), rel=1e-5)


@pytest.mark.parametrize("n", [2, 4, 6])
@pytest.mark.parametrize("tau", [0.1, 0.2, 1.0])
def test_ntxent_aligned_orthogonal_closed_form(n: int, tau: float) -> None:
    # views equal, images orthogonal: s_pos = 1/tau, the 2n - 2 negatives have s = 0
    z = torch.eye(n, 8) * 3.0
    expected = math.log(1 + (2 * n - 2) * math.exp(-1 / tau))
    # float32 log-sum-exp of logits near 1/tau: absolute error of a few 1e-8
    assert ntxent_loss(z, z.clone(), tau).item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("n,d", [(2, 3), (5, 16), (7, 4)])
def test_ntxent_oracle_and_symmetry(n: int, d: int) -> None:
    g = torch.Generator().manual_seed(n * 100 + d)
    a, b = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    loss = ntxent_loss(a, b, 0.2)
    assert loss.item() == pytest.approx(_ntxent_oracle(a.numpy(), b.numpy(), 0.2), rel=1e-5)
    assert loss.item() == pytest.approx(ntxent_loss(b, a, 0.2).item(), rel=1e-6)


def test_ntxent_base_temperature_equals_supcon_instance_mask() -> None:
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(6, 10, generator=g), torch.randn(6, 10, generator=g)
    scaled = ntxent_loss(a, b, 0.1, base_temperature=0.07)
    assert scaled.item() == pytest.approx(ntxent_loss(a, b, 0.1).item() * 0.1 / 0.07, rel=1e-6)
    supcon = supcon_loss(torch.cat([a, b]), instance_mask(6), 0.1, 0.07)
    assert scaled.item() == pytest.approx(supcon.item(), rel=1e-5)


def test_ntxent_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        ntxent_loss(torch.ones(3, 2), torch.ones(3, 2), 0.0)
    with pytest.raises(ValueError):
        ntxent_loss(torch.ones(3, 2), torch.ones(4, 2))
    with pytest.raises(ValueError):
        ntxent_loss(torch.ones(1, 2), torch.ones(1, 2))


# ----------------------------------------------------------------------------------------------- InfoNCE + queue
def test_infonce_closed_form_and_oracle() -> None:
    # q = k = e0, K negatives orthogonal to q: -log(e^{1/t} / (e^{1/t} + K))
    tau, k_neg = 0.2, 5
    q = torch.zeros(1, 8)
    q[0, 0] = 2.0
    neg = torch.eye(8)[1 : 1 + k_neg]
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + k_neg))
    assert infonce_loss(q, q.clone(), neg, tau).item() == pytest.approx(expected, rel=1e-5)

    g = torch.Generator().manual_seed(3)
    q, k, neg = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g), torch.randn(9, 6, generator=g)
    qn, kn, nn_ = (F.normalize(t, dim=1).double().numpy() for t in (q, k, neg))
    oracle = 0.0
    for i in range(4):
        pos = math.exp(qn[i] @ kn[i] / 0.2)
        oracle += -math.log(pos / (pos + sum(math.exp(qn[i] @ nn_[j] / 0.2) for j in range(9))))
    assert infonce_loss(q, k, neg, 0.2).item() == pytest.approx(oracle / 4, rel=1e-5)


def test_infonce_no_gradient_into_keys_or_queue() -> None:
    g = torch.Generator().manual_seed(4)
    q = torch.randn(3, 4, generator=g, requires_grad=True)
    k = torch.randn(3, 4, generator=g, requires_grad=True)
    neg = torch.randn(5, 4, generator=g, requires_grad=True)
    infonce_loss(q, k, neg).backward()
    assert q.grad is not None and k.grad is None and neg.grad is None


def test_enqueue_wraps_and_is_pure() -> None:
    queue = torch.zeros(5, 2)
    a = torch.tensor([[1.0, 1], [2, 2], [3, 3]])
    b = torch.tensor([[4.0, 4], [5, 5], [6, 6]])
    q1, p1 = enqueue(queue, a, 0)
    assert p1 == 3 and torch.equal(queue, torch.zeros(5, 2))  # input untouched
    assert torch.equal(q1[:, 0], torch.tensor([1.0, 2, 3, 0, 0]))
    q2, p2 = enqueue(q1, b, p1)  # slots 3, 4, then wraps to 0
    assert p2 == 1
    assert torch.equal(q2[:, 0], torch.tensor([6.0, 2, 3, 4, 5]))
    # more keys than slots: the last K survive, in ring order from the pointer
    big = torch.arange(7, dtype=torch.float32)[:, None].repeat(1, 2)
    q3, p3 = enqueue(torch.zeros(5, 2), big, 1)
    assert p3 == (1 + 7) % 5
    # writes 0..6 at slots 1,2,3,4,0,1,2 -> slots hold [4, 5, 6, 2, 3]
    assert torch.equal(q3[:, 0], torch.tensor([4.0, 5, 6, 2, 3]))
    with pytest.raises(ValueError):
        enqueue(queue, a, 5)
    # a 0-dim tensor pointer (a method's buffer) gives the same queue and a tensor pointer
    for start, keys in ((0, a), (3, b), (1, big)):
        qi, pi = enqueue(torch.zeros(5, 2), keys, start)
        qt, pt = enqueue(torch.zeros(5, 2), keys, torch.tensor(start))
        assert isinstance(pt, torch.Tensor) and pt.ndim == 0 and int(pt) == pi and torch.equal(qt, qi)


# ----------------------------------------------------------------------------------------------- BYOL / SimSiam
def test_byol_hand_values() -> None:
    e0, e1 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]])
    assert byol_regression(e0, 5 * e0).item() == pytest.approx(0.0, abs=1e-6)
    assert byol_regression(e0, e1).item() == pytest.approx(2.0)
    assert byol_regression(e0, -e0).item() == pytest.approx(4.0)
    assert byol_regression(e0, torch.tensor([[1.0, 1.0]])).item() == pytest.approx(2 - math.sqrt(2), rel=1e-6)
    # symmetric sum: q1 vs z2 (orthogonal: 2) + q2 vs z1 (identical: 0)
    assert byol_loss(e0, e1, e1, e0).item() == pytest.approx(0.0, abs=1e-6)
    assert byol_loss(e0, e0, e0, e1).item() == pytest.approx(2.0 + 0.0)


def test_byol_and_simsiam_stop_gradient() -> None:
    g = torch.Generator().manual_seed(5)
    for fn in (byol_regression, negative_cosine):
        p = torch.randn(4, 6, generator=g, requires_grad=True)
        z = torch.randn(4, 6, generator=g, requires_grad=True)
        fn(p, z).backward()
        assert p.grad is not None and p.grad.abs().sum() > 0
        assert z.grad is None


def test_simsiam_hand_values() -> None:
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z = torch.tensor([[1.0, 1.0], [0.0, -1.0]])
    # cos = 1/sqrt2 and -1 -> D = -(1/sqrt2 - 1) / 2
    assert negative_cosine(p, z).item() == pytest.approx(-(1 / math.sqrt(2) - 1) / 2, rel=1e-6)
    # D is symmetric in its arguments' directions: D(p, z)/2 + D(z, p)/2 = D(p, z)
    assert simsiam_loss(p, z, p, z).item() == pytest.approx(-(1 / math.sqrt(2) - 1) / 2, rel=1e-6)
    assert simsiam_loss(p, p, p, p).item() == pytest.approx(-1.0, rel=1e-6)


# ----------------------------------------------------------------------------------------------- SwAV
def _sinkhorn_oracle(scores: np.ndarray, eps: float, iters: int) -> np.ndarray:
    q = np.exp(scores.astype(np.float64) / eps).T
    k, b = q.shape
    q /= q.sum()
    for _ in range(iters):
        q /= q.sum(axis=1, keepdims=True) * k
        q /= q.sum(axis=0, keepdims=True) * b
    return (q * b).T


def test_sinkhorn_marginals_and_oracle() -> None:
    g = torch.Generator().manual_seed(6)
    scores = F.normalize(torch.randn(8, 5, generator=g), dim=1)
    codes = sinkhorn_knopp(scores, 0.05, 3)
    # the last scaling is per sample: every sample's code sums to exactly 1
    assert torch.allclose(codes.sum(1), torch.ones(8), atol=1e-6)
    assert np.allclose(codes.numpy(), _sinkhorn_oracle(scores.numpy(), 0.05, 3), atol=1e-5)
    # in the limit each prototype receives B / K of the batch
    long = sinkhorn_knopp(scores, 0.5, 500)
    assert torch.allclose(long.sum(0), torch.full((5,), 8 / 5), atol=1e-4)
    assert not codes.requires_grad


def test_sinkhorn_closed_forms() -> None:
    # uniform scores: every code is 1/K
    assert torch.allclose(sinkhorn_knopp(torch.zeros(4, 3)), torch.full((4, 3), 1 / 3))
    # symmetric 2x2: already balanced, code = softmax(s / eps) = [e^{1/eps}, 1] / (e^{1/eps} + 1)
    eps = 0.5
    a = math.exp(1 / eps)
    codes = sinkhorn_knopp(torch.eye(2), eps, 3)
    assert torch.allclose(codes, torch.tensor([[a, 1.0], [1.0, a]]) / (a + 1), atol=1e-6)
    with pytest.raises(ValueError):
        sinkhorn_knopp(torch.zeros(2, 2), iterations=0)


def test_swav_loss_hand_values_and_oracle() -> None:
    # zero scores: every prediction is uniform, the cross-entropy of any code is log K
    k = 6
    codes = [torch.eye(k)[:3], torch.eye(k)[3:]]
    assert swav_loss([torch.zeros(3, k), torch.zeros(3, k)], codes).item() == pytest.approx(math.log(k), rel=1e-6)
    g = torch.Generator().manual_seed(7)
    s1, s2 = torch.randn(4, k, generator=g), torch.randn(4, k, generator=g)
    q1, q2 = torch.softmax(torch.randn(4, k, generator=g), 1), torch.softmax(torch.randn(4, k, generator=g), 1)

    def ce(q: torch.Tensor, s: torch.Tensor) -> float:
        p = np.exp(s.double().numpy() / 0.1)
        p /= p.sum(1, keepdims=True)
        return float(-(q.double().numpy() * np.log(p)).sum(1).mean())

    expected = 0.5 * (ce(q1, s2) + ce(q2, s1))  # swapped: view 1's codes from view 2 and back
    assert swav_loss([s1, s2], [q1, q2], 0.1).item() == pytest.approx(expected, rel=1e-5)
    s1.requires_grad_(True)
    q1.requires_grad_(True)
    swav_loss([s1, s2], [q1, q2], 0.1).backward()
    assert s1.grad is not None and q1.grad is None


# ----------------------------------------------------------------------------------------------- methods
def _batch(b: int = 4, size: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(b, 1, size, size, generator=g) for k in ("v1", "v2", "v3", "v4", "image", "neighbor")} | {
        "position": torch.linspace(0.1, 1.0, b),
        "volume": torch.arange(b),
    }


def _build(name: str, **overrides: object) -> torch.nn.Module:
    torch.manual_seed(0)
    backbone = UNet(1, 2, base_width=4)
    return METHODS.get(name)(backbone, **(SMALL[name] | overrides))


def test_registry_names_and_papers() -> None:
    for name in NAMES:
        entry = METHODS.entry(name)
        assert entry.description and "arxiv.org/abs/" in entry.paper
        cls = entry.obj
        assert cls.views == ("v3", "v4") and cls.pretrains == ("encoder",)
    assert METHODS.get("simtriplet").needs == frozenset({"neighbor"})


@pytest.mark.parametrize("name", NAMES)
def test_method_one_step(name: str) -> None:
    method = _build(name)
    method.train()
    batch = _batch()
    out = method(batch)
    loss = out["loss"]
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(torch.isfinite(v).all() for v in out.values())
    loss.backward()
    pairs = method.momentum_pairs()
    targets = [p for _, t in pairs for p in t.parameters()]
    assert all(not p.requires_grad and p.grad is None for p in targets)
    enc_grads = [p.grad for p in method.backbone.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in enc_grads)
    assert any(g.abs().sum() > 0 for g in enc_grads if g is not None)
    # the pre-trained state is the backbone's encoder only
    assert all(k.startswith("encoder.") for k in method.pretrained_state_dict())

    # optimiser step, then the engine's EMA update: t <- m t + (1 - m) o, buffers copied
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.1)
    opt.step()
    m = method.momentum(0.3)
    for online, target in pairs:
        t_old = [p.detach().clone() for p in target.parameters()]
        update_momentum(online, target, m)
        for po, pt, old in zip(online.parameters(), target.parameters(), t_old):
            assert torch.allclose(pt, m * old + (1 - m) * po.detach(), atol=1e-7, rtol=1e-6)
        for bo, bt in zip(online.buffers(), target.buffers()):
            assert torch.equal(bo, bt)
    if pairs:  # the target moved towards the stepped online encoder
        online, target = pairs[0]
        assert any(not torch.equal(a, b) for a, b in zip(online.parameters(), target.parameters()))
    else:
        assert not any(not p.requires_grad for p in method.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_method_bare_forward(name: str) -> None:
    method = _build(name)
    bare = method.bare_forward(_batch(seed=1))
    assert bare.ndim == 0 and torch.isfinite(bare)
    bare.backward()
    assert any(p.grad is not None for p in method.backbone.encoder.parameters())


def test_momentum_schedules() -> None:
    moco, byol = _build("moco"), _build("byol")
    assert [moco.momentum(p) for p in (0.0, 0.5, 1.0)] == [0.999, 0.999, 0.999]
    assert byol.momentum(0.0) == pytest.approx(0.99)
    assert byol.momentum(0.5) == pytest.approx(0.995)
    assert byol.momentum(1.0) == pytest.approx(1.0)
    assert byol.momentum(0.25) == pytest.approx(1 - 0.01 * (math.cos(math.pi / 4) + 1) / 2)


def test_moco_loss_uses_old_queue_then_enqueues() -> None:
    method = _build("moco", queue_size=6)
    method.train()
    batch = _batch(b=4)
    old = method.queue.clone()
    loss = method(batch)["loss"]
    with torch.no_grad():  # train-mode BN: the same batch gives the same outputs
        expected = infonce_loss(method.query(batch["v3"]), method.key(batch["v4"]), old, method.temperature)
        keys = method.key(batch["v4"])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert int(method.queue_ptr) == 4
    assert torch.allclose(method.queue[:4], keys, atol=1e-6) and torch.equal(method.queue[4:], old[4:])
    method(batch)  # 4 more keys: slots 4, 5, 0, 1
    assert int(method.queue_ptr) == 2
    assert torch.allclose(method.queue[[4, 5, 0, 1]], keys, atol=1e-6)
    method.eval()
    before = method.queue.clone()
    method(batch)
    assert torch.equal(method.queue, before) and int(method.queue_ptr) == 2


def test_swav_prototypes_normalised_and_frozen() -> None:
    method = _build("swav", freeze_prototypes_steps=5)
    method.train()
    method.on_step(0, 100)
    method(_batch())["loss"].backward()
    assert torch.allclose(method.prototypes.weight.norm(dim=1), torch.ones(10), atol=1e-6)
    assert method.prototypes.weight.grad is None  # frozen during the first steps
    assert method.projector.mlp[0].weight.grad is not None
    method.zero_grad()
    method.on_step(5, 100)
    method(_batch())["loss"].backward()
    assert method.prototypes.weight.grad is not None and method.prototypes.weight.grad.abs().sum() > 0


def test_swav_queue_fills_then_joins_sinkhorn() -> None:
    method = _build("swav", queue_length=8)
    method.train()
    method(_batch(b=4, seed=2))
    assert int(method.queue_count) == 4 and not method._queue_ready()
    method(_batch(b=4, seed=3))
    batch = _batch(b=4, seed=4)
    assert int(method.queue_count) == 8 and method._queue_ready() and int(method.queue_ptr) == 0
    with torch.no_grad():
        method.normalize_prototypes()
        w = method.prototypes.weight
        scores = [method.embed(batch[v]) @ w.t() for v in ("v3", "v4")]
        codes = method.codes(scores)
        manual = sinkhorn_knopp(torch.cat([method.queue[0] @ w.t(), scores[0]]), 0.05, 3)[-4:]
        alone = sinkhorn_knopp(scores[0], 0.05, 3)
    assert torch.allclose(codes[0], manual, atol=1e-6)
    assert not torch.allclose(codes[0], alone, atol=1e-4)


def test_simtriplet_loss_is_intra_plus_inter() -> None:
    method = _build("simtriplet")
    method.train()
    batch = _batch()
    out = method(batch)
    assert out["loss"].item() == pytest.approx(out["intra"].item() + out["inter"].item(), rel=1e-6)
    # with the neighbour equal to v4, inter and intra use the same projections of v4
    same = method(batch | {"neighbor": batch["v4"]})
    assert same["intra"].item() == pytest.approx(same["inter"].item(), rel=1e-5)
    assert -2.0 <= out["loss"].item() <= 2.0
