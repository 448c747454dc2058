"""SupCon with masks: values computed by hand."""

import math

import pytest
import torch

from medssl.losses.supcon import instance_mask, label_mask, positional_mask, supcon_from_logits, supcon_loss


def test_two_orthogonal_pairs_by_hand():
    # views of image 0 are e1, views of image 1 are e2: s(pos) = 1/tau, s(neg) = 0
    z = torch.tensor([[1.0, 0], [0, 1.0], [1.0, 0], [0, 1.0]])
    tau, base = 0.5, 0.07
    loss = supcon_loss(z, instance_mask(2), temperature=tau, base_temperature=base)
    s = 1 / tau
    expected = -(tau / base) * (s - math.log(math.exp(s) + 2 * math.exp(0)))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_anchor_without_positive_is_ignored_and_mask_diagonal_ignored():
    z = torch.randn(4, 3)
    m = torch.zeros(4, 4, dtype=torch.bool)
    m[0, 1] = m[1, 0] = True
    m[2, 2] = True  # the diagonal never counts
    full = supcon_loss(z, m)
    logits = torch.nn.functional.normalize(z, dim=1) @ torch.nn.functional.normalize(z, dim=1).T / 0.1

    def l(a, p):
        others = [b for b in range(4) if b != a]
        return -(0.1 / 0.07) * (logits[a, p] - torch.logsumexp(logits[a, others], 0))

    assert full.item() == pytest.approx(((l(0, 1) + l(1, 0)) / 2).item(), rel=1e-5)


def test_no_anchor_with_a_positive_gives_zero_and_zero_gradient():
    z = torch.randn(4, 3, requires_grad=True)
    loss = supcon_loss(z, torch.eye(4, dtype=torch.bool))  # only the (ignored) diagonal
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(z.grad, torch.zeros_like(z))
    # gradients of the masked mean equal those of the mean over the valid anchors only
    z2 = z.detach().clone().requires_grad_(True)
    m = torch.zeros(4, 4, dtype=torch.bool)
    m[0, 1] = m[1, 0] = True
    supcon_loss(z2, m).backward()
    z3 = z.detach().clone().requires_grad_(True)
    lg = torch.nn.functional.normalize(z3, dim=1) @ torch.nn.functional.normalize(z3, dim=1).T / 0.1
    eye = torch.eye(4, dtype=torch.bool)
    lp = lg - torch.logsumexp(lg.masked_fill(eye, float("-inf")), 1, keepdim=True)
    (-(0.1 / 0.07) * (lp[0, 1] + lp[1, 0]) / 2).backward()
    torch.testing.assert_close(z2.grad, z3.grad)


def test_masks():
    assert instance_mask(2).tolist() == [[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]]
    pm = positional_mask(torch.tensor([0.1, 0.15, 0.9]), delta=0.1)
    assert pm.shape == (6, 6) and pm[0, 1] and not pm[0, 2] and pm[0, 3]
    lm = label_mask(torch.tensor([0, 1, 0]))
    assert lm[0, 2] and lm[0, 5] and not lm[0, 1]


def test_batched_logits_with_broadcast_mask():
    z = torch.randn(3, 4, 5)
    zn = torch.nn.functional.normalize(z, dim=-1)
    logits = zn @ zn.transpose(-1, -2) / 0.1
    m = instance_mask(2)[None]
    batched = supcon_from_logits(logits, m)
    looped = torch.stack([supcon_from_logits(logits[i], m[0]) for i in range(3)]).mean()
    assert batched.item() == pytest.approx(looped.item(), rel=1e-5)


def test_rejects_bad_shapes_and_temperature():
    with pytest.raises(ValueError):
        supcon_loss(torch.randn(4, 3), torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError):
        supcon_loss(torch.randn(4, 3), instance_mask(2), temperature=0.0)
