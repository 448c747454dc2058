"""The one training engine: schedule, resume equivalence, non-finite loss guard, EMA, 2-process DDP."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from medssl.config import OptimCfg, TrainCfg
from medssl.engine.trainer import Engine, lr_at
from medssl.errors import TrainingError

sys.path.insert(0, str(Path(__file__).parent))
from ddp_helpers import ToyTask
from ddp_helpers import train_cfg as _cfg


def test_cosine_schedule_and_warmup():
    cfg = OptimCfg(lr=1.0, min_lr=0.1)
    assert lr_at(0, 10, cfg) == pytest.approx(1.0)
    assert lr_at(5, 10, cfg) == pytest.approx(0.55)
    assert lr_at(10, 10, cfg) == pytest.approx(0.1)
    warm = OptimCfg(lr=1.0, min_lr=0.0, warmup_steps=4)
    assert [lr_at(s, 10, warm) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    t, o = _cfg(4)
    straight = ToyTask()
    Engine(t, o, tmp_path / "a").fit(straight)
    # an interrupted run: 2 epochs of the same 4-epoch schedule, then the same command again
    first = ToyTask()
    t2 = TrainCfg(**{**t.__dict__, "max_steps": 6})
    Engine(t2, o, tmp_path / "b").fit(first)
    # max_steps changes the schedule's length, so restart with the full schedule from a 4-epoch run's checkpoint
    Engine(t, o, tmp_path / "c").fit(ToyTask())
    resumed = ToyTask()
    res = Engine(t, o, tmp_path / "c").fit(resumed)  # finds checkpoint_latest.pt at epoch 3: nothing left to do
    assert res.steps == 12 and resumed.calls == 0
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_mid_run(tmp_path):
    t, o = _cfg(4)
    straight = ToyTask()
    Engine(t, o, tmp_path / "a").fit(straight)
    # simulate a kill after epoch 1: keep the checkpoint written at the end of epoch 1
    part = ToyTask()
    eng = Engine(t, o, tmp_path / "b")
    orig = eng._save

    def save_until_epoch1(path, payload):
        if payload.get("epoch", 0) <= 1:
            orig(path, payload)
        elif path == eng.latest_path:
            raise KeyboardInterrupt

    eng._save = save_until_epoch1  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        eng.fit(part)
    resumed = ToyTask()
    Engine(t, o, tmp_path / "b").fit(resumed)
    assert resumed.calls == 6  # epochs 2 and 3 only
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-7)
    log = (tmp_path / "b" / "log.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in log[1:]] == ["0", "1", "2", "3"]


def test_non_finite_loss_names_step_and_component(tmp_path):
    t, o = _cfg(3)
    with pytest.raises(TrainingError, match=r"step 5 \(component: reg\)"):
        Engine(t, o, tmp_path).fit(ToyTask(nan_at=5))


def test_best_checkpoint_follows_monitor(tmp_path):
    t, o = _cfg(3)
    res = Engine(t, o, tmp_path).fit(ToyTask())
    best = torch.load(tmp_path / "checkpoint_best.pt", weights_only=False)
    assert best["epoch"] == res.best_epoch and best["score"] == pytest.approx(res.best_score)


def test_two_process_gloo_ddp_keeps_replicas_identical(tmp_path, monkeypatch):
    import torch.multiprocessing as mp
    from ddp_helpers import ddp_worker

    # spawned children import the worker by module name: make this folder importable for them
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=ddp_worker, args=(r, 2, str(tmp_path / "init"), str(tmp_path / "run"))) for r in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    results = {r: torch.load(tmp_path / "run" / f"params_rank{r}.pt") for r in range(2)}
    for a, b in zip(results[0], results[1]):
        assert torch.equal(a, b)
    assert (tmp_path / "run" / "checkpoint_latest.pt").is_file()


def test_max_steps_alone_sets_the_run_length(tmp_path):
    """`--max-steps 750` on a small label set was silently capped by the default 100 epochs (3 MS-CMRSeg
    patients: 2 steps per epoch, so 200 steps were run): max_steps alone now sets the length."""

    def plan(**kw):
        return Engine(TrainCfg(device="cpu", **kw), OptimCfg(), tmp_path).plan(2)

    p = plan(max_steps=750)
    assert (p.total, p.epochs) == (750, 375)
    assert plan().total == 200  # neither: the papers' 100 epochs
    assert plan(epochs=100, max_steps=750).total == 200  # both: the smaller, as documented
    assert plan(epochs=3).total == 6


def test_validation_rhythm_in_steps(tmp_path):
    eng = Engine(TrainCfg(device="cpu", val_every_steps=50), OptimCfg(), tmp_path)
    # 8 steps per epoch: validate at the end of the epochs that cross 50, 100, ... and the last one
    hits = [e for e in range(20) if eng.should_validate(e, 8 * (e + 1), 8 * e if e else 0, last=e == 19)]
    assert hits == [6, 12, 18, 19]
    assert Engine(TrainCfg(device="cpu"), OptimCfg(), tmp_path).should_validate(0, 8, 0, last=False)
    every3 = Engine(TrainCfg(device="cpu", val_every=3), OptimCfg(), tmp_path)
    assert [e for e in range(7) if every3.should_validate(e, e + 1, 0, last=False)] == [2, 5]
