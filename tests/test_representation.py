"""Representation diagnostics (medssl.evaluation.representation): closed forms on hand-made inputs,
and the per-epoch diagnostics of a pre-training run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from medssl.evaluation.representation import (
    build_probe_set,
    effective_rank,
    embedding_spread,
    hypercolumns,
    knn_position_error,
    linear_probe_dice,
    probe_diagnostics,
)


def _axes(d: int, k: int | None = None) -> torch.Tensor:
    """Rows +e_i and -e_i for i < k: zero mean, all singular values equal."""
    k = d if k is None else k
    e = torch.eye(d)[:k]
    return torch.cat([e, -e])


@pytest.mark.parametrize("d", [4, 16, 128])
def test_spread_closed_form(d: int) -> None:
    # each dimension holds +1, -1 and 2d - 2 zeros: unbiased std sqrt(2 / (2d - 1)), times sqrt(d)
    assert embedding_spread(_axes(d)) == pytest.approx(math.sqrt(2 * d / (2 * d - 1)))
    collapsed = torch.ones(50, d) + 1e-6 * torch.randn(50, d, generator=torch.Generator().manual_seed(0))
    assert embedding_spread(collapsed) < 1e-4
    # invariant to the scale of each embedding (it normalises them)
    scaled = _axes(d) * torch.linspace(1, 5, 2 * d)[:, None]
    assert embedding_spread(scaled) == pytest.approx(embedding_spread(_axes(d)))


@pytest.mark.parametrize("k", [1, 3, 8])
def test_effective_rank_closed_form(k: int) -> None:
    assert effective_rank(_axes(8, k)) == pytest.approx(k, rel=1e-9)
    line = torch.randn(40, 1, generator=torch.Generator().manual_seed(1)) * torch.randn(
        1, 16, generator=torch.Generator().manual_seed(2)
    )
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-4)  # float32 rounding
    assert effective_rank(torch.zeros(5, 3)) == 1.0


def test_knn_position_error_exact_and_excludes_own_volume() -> None:
    pos = torch.tensor([0.25, 0.5, 0.75, 1.0] * 3)
    groups = torch.arange(3).repeat_interleave(4)
    angle = pos * math.pi / 2
    z = torch.stack([torch.cos(angle), torch.sin(angle)], 1)  # the position, on a quarter circle
    assert knn_position_error(z, pos, groups, k=1) == pytest.approx(0.0, abs=1e-12)
    # k = 2: the same position in the two other volumes, still exact
    assert knn_position_error(z, pos, groups, k=2) == pytest.approx(0.0, abs=1e-12)
    # features that only identify the volume, k = every slice of the other volumes: the prediction
    # is the mean position 0.625 for every slice, an error of (0.375 + 0.125 + 0.125 + 0.375) / 4
    zv = torch.nn.functional.one_hot(groups, 3).float()
    assert knn_position_error(zv, pos, groups, k=8) == pytest.approx(0.25)
    assert math.isnan(knn_position_error(z[:4], pos[:4], torch.zeros(4, dtype=torch.long)))


def test_linear_probe_perfect_and_chance() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (6, 8, 8), generator=g)
    x = torch.nn.functional.one_hot(y, 3).permute(0, 3, 1, 2).float()
    assert linear_probe_dice(x[:3], y[:3], x[3:], y[3:], 3) == pytest.approx(1.0)
    noise = torch.randn(6, 3, 8, 8, generator=g)
    assert linear_probe_dice(noise[:3], y[:3], noise[3:], y[3:], 3) < 0.6
    assert math.isnan(linear_probe_dice(x[:3], y[:3], x[3:], torch.zeros_like(y[3:]), 3))


def test_hypercolumns_shapes_and_standardisation() -> None:
    feats = [torch.randn(2, 4, 8, 8) * 100 + 7, torch.randn(2, 8, 4, 4)]
    cols = hypercolumns(feats, (8, 8))
    assert cols.shape == (2, 12, 8, 8)
    first = cols[:, :4].transpose(0, 1).reshape(4, -1)  # a map at the output size: standardised per channel
    assert torch.allclose(first.mean(1), torch.zeros(4), atol=1e-5) and torch.allclose(
        first.std(1), torch.ones(4), atol=1e-5
    )
    # the coarse map is upsampled: every 2 x 2 block of the output is interpolated from it
    assert torch.equal(cols[:, 4:, :, :], hypercolumns([feats[1]], (8, 8)))


def test_probe_set_and_diagnostics_on_a_store(synthetic_store: Path) -> None:
    from medssl.data.splits import make_split
    from medssl.data.store import SliceStore
    from medssl.models.unet import UNet

    store = SliceStore(synthetic_store)
    val = make_split(store, "100%", seed=0).val
    probe = build_probe_set(
        store, 32, max_volumes=6, slices_per_volume=4, labelled_cases=val + [c.case_id for c in store.cases[:1]]
    )
    n = probe.positions.shape[0]
    assert n == 24 and probe.images.shape[1:] == (1, 32, 32)
    assert float(probe.images[:n].min()) >= 0 and float(probe.images[:n].max()) <= 1
    assert probe.labels is not None and probe.probe_train.any() and not probe.probe_train.all()
    assert probe.images.shape[0] == n + probe.labels.shape[0]
    # only the cases given carry the probe's labels
    assert set(probe.volumes["linear_probe_fit"] + probe.volumes["linear_probe_score"]) <= set(
        val + [store.cases[0].case_id]
    )
    net = UNet(1, 2, base_width=4)
    net.train()
    out = probe_diagnostics(net.encoder, probe)
    assert set(out) == {"embed_spread", "effective_rank", "knn_position_mae", "linear_probe_dice"}
    assert all(math.isfinite(v) for v in out.values())
    assert net.encoder.training  # the mode is restored
    unlabelled = build_probe_set(store, 32, max_volumes=3)
    assert unlabelled.labels is None and "linear_probe_dice" not in probe_diagnostics(net.encoder, unlabelled)


def test_pretraining_logs_diagnostics(synthetic_store: Path, tmp_path: Path) -> None:
    from medssl.config import PretrainConfig, apply_overrides
    from medssl.pretrain import pretrain

    cfg = apply_overrides(
        PretrainConfig(),
        {
            "method": "simclr",
            "data.path": str(synthetic_store),
            "data.image_size": 32,
            "data.batch_size": 8,
            "data.num_workers": 0,
            "model.base_width": 4,
            "train.epochs": 2,
            "train.progress": False,
            "train.device": "cpu",
            "out": str(tmp_path / "pre"),
        },
    )
    pretrain(cfg, log_fn=lambda s: None)
    header = (tmp_path / "pre" / "log.csv").read_text().splitlines()[0].split(",")
    for col in ("embed_spread", "effective_rank", "knn_position_mae", "linear_probe_dice"):
        assert col in header
    diag = json.loads((tmp_path / "pre" / "diagnostics.json").read_text())
    assert set(diag["initial"]) == set(diag["final"]) and "knn_position_mae" in diag["final"]
    # medssl report plots them (one figure per dataset), and keeps them out of the loss curves
    from medssl.reporting.figures import plot_pretrain_curves, plot_pretrain_diagnostics
    from medssl.reporting.tables import collect_runs

    coll = collect_runs(tmp_path)
    assert len(coll.pretrain) == 1
    fig = plot_pretrain_diagnostics(coll.pretrain, tmp_path / "diag.png")
    assert fig.path is not None and fig.path.stat().st_size > 1000
    assert plot_pretrain_curves(coll.pretrain[0], tmp_path / "loss.png").path is not None


def test_collapse_is_a_fall_not_a_small_spread() -> None:
    from medssl.evaluation.representation import collapsed

    assert collapsed(0.01, peak=0.30)  # spread fell from 0.30 to 0.01
    assert not collapsed(0.04, peak=0.064)  # a He-initialised encoder's own small spread
    assert not collapsed(0.0, peak=0.0)  # never spread (PyTorch default init): nothing fell
    assert not collapsed(0.2, peak=0.9)  # above the floor
