"""Fine-tuning that keeps what pre-training learned (medssl.engine.transfer, config section ``transfer``)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from medssl.config import FinetuneConfig, OptimCfg, TrainCfg, TransferCfg, load_config
from medssl.engine.trainer import Engine, lr_at
from medssl.engine.transfer import (
    SingleRate,
    TransferSchedule,
    build_schedule,
    check_frozen_phase,
    frozen_phase_steps,
    layer_index,
    pretrained_names,
    transfer_lr,
    warmup_ramp,
)
from medssl.errors import ConfigError
from medssl.models.unet import UNet

OPTIM = OptimCfg(name="adam", lr=1e-3, min_lr=1e-5, warmup_steps=0, weight_decay=1e-5)


def _model() -> UNet:
    torch.manual_seed(0)
    return UNet(1, 2, base_width=2, depth=2)


def _encoder_keys(model: UNet) -> list[str]:
    return [k for k in model.state_dict() if k.startswith("encoder.")]


class _ToyTask:
    """Four random 16-px batches per epoch; records every parameter and buffer after each step."""

    monitor = None
    find_unused_parameters = False

    def __init__(self, model: UNet) -> None:
        self.model = model
        self.after: list[dict[str, torch.Tensor]] = []
        self.grad_flags: list[bool] = []

    def steps_per_epoch(self) -> int:
        return 4

    def train_loader(self, epoch: int) -> list[dict[str, torch.Tensor]]:
        g = torch.Generator().manual_seed(epoch)
        return [
            {"image": torch.randn(2, 1, 16, 16, generator=g), "label": torch.randint(0, 2, (2, 16, 16), generator=g)}
            for _ in range(4)
        ]

    def training_step(self, model, batch):
        return {"loss": F.cross_entropy(model(batch["image"]), batch["label"])}

    def on_step(self, step: int, max_steps: int) -> None:
        self.grad_flags.append(self.model.encoder.stages[0][0][0].weight.requires_grad)

    def after_step(self, progress: float) -> None:
        self.after.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})

    def validate(self, model, epoch):
        return {}


def _train(tmp_path, model, transfer: TransferCfg, steps: int, loaded: list[str]) -> _ToyTask:
    task = _ToyTask(model)
    schedule, _ = build_schedule(OPTIM, transfer, model, loaded, depth=2)
    train = TrainCfg(max_steps=steps, device="cpu", progress=False, deterministic=True, log_every=1)
    Engine(train, OPTIM, tmp_path, resume=False, schedule=schedule).fit(task)
    return task


# --- configuration ------------------------------------------------------------------------------------------


def test_defaults_leave_fine_tuning_as_it_was():
    cfg = FinetuneConfig()
    assert cfg.transfer.is_default()
    schedule, note = build_schedule(OPTIM, cfg.transfer, _model(), ["encoder.stages.0.0.0.weight"])
    assert isinstance(schedule, SingleRate) and note == ""
    assert [schedule.lr({}, s, 100) for s in (0, 50, 99)] == [lr_at(s, 100, OPTIM) for s in (0, 50, 99)]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("transfer.pretrained_lr_scale=0", "transfer.pretrained_lr_scale: must be in (0, 1], got 0"),
        ("transfer.pretrained_lr_scale=2", "transfer.pretrained_lr_scale: must be in (0, 1], got 2"),
        ("transfer.layer_decay=-0.5", "transfer.layer_decay: must be in (0, 1]"),
        ("transfer.warmup_fraction=1", "transfer.warmup_fraction: must be in [0, 1)"),
        ("transfer.lpft_fraction=1.5", "transfer.lpft_fraction: must be in (0, 1)"),
        ("transfer.lpft_steps=0", "transfer.lpft_steps: must be >= 1"),
        ("transfer.schedule=sawtooth", "transfer.schedule: expected one of standard, lpft, got 'sawtooth'"),
        ("transfer.schedule=lpft", "transfer.schedule: lpft needs transfer.lpft_fraction or transfer.lpft_steps"),
    ],
)
def test_out_of_range_settings_give_one_line_errors(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(FinetuneConfig, overrides=[override])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_lpft_steps_and_fraction_are_exclusive_and_must_leave_steps():
    with pytest.raises(ConfigError, match="not both"):
        TransferCfg(schedule="lpft", lpft_steps=5, lpft_fraction=0.1)
    with pytest.raises(ConfigError, match=r"transfer.lpft_steps: the frozen phase \(50 steps\) must be shorter"):
        check_frozen_phase(TransferCfg(schedule="lpft", lpft_steps=50), 50)
    check_frozen_phase(TransferCfg(schedule="lpft", lpft_steps=49), 50)


# --- pure schedule maths ------------------------------------------------------------------------------------


def test_frozen_phase_and_warmup_values():
    assert frozen_phase_steps(TransferCfg(), 100) == 0
    assert frozen_phase_steps(TransferCfg(schedule="lpft", lpft_fraction=0.1), 150) == 15
    assert frozen_phase_steps(TransferCfg(schedule="lpft", lpft_fraction=0.001), 150) == 1
    assert frozen_phase_steps(TransferCfg(schedule="lpft", lpft_steps=7), 150) == 7
    # 5% of 200 steps = 10 steps: 0.1, 0.2, ... 1.0, then 1
    assert [warmup_ramp(s, 0, 200, 0.05) for s in (0, 4, 9, 10, 150)] == pytest.approx([0.1, 0.5, 1.0, 1.0, 1.0])
    # from the unfreezing step 20 of 120: 5% of 100 = 5 steps
    assert [warmup_ramp(s, 20, 120, 0.05) for s in (0, 19, 20, 22, 24, 60)] == pytest.approx(
        [1.0, 1.0, 0.2, 0.6, 1.0, 1.0]
    )
    assert warmup_ramp(3, 0, 100, 0.0) == 1.0


def test_transfer_lr_is_base_times_scale_gate_and_ramp():
    cfg = TransferCfg(schedule="lpft", lpft_steps=10, warmup_fraction=0.1, pretrained_lr_scale=0.1)
    base = OptimCfg(lr=1e-3, min_lr=0.0, warmup_steps=30)  # warmup_steps is replaced by the fraction
    no_warm = OptimCfg(lr=1e-3, min_lr=0.0, warmup_steps=0)
    total = 110  # ramp over 10 steps from step 10
    for step in (0, 5, 9):
        assert transfer_lr(base, cfg, step, total, 0.1, pretrained=True) == 0.0
        assert transfer_lr(base, cfg, step, total, 1.0, pretrained=False) == pytest.approx(lr_at(step, total, no_warm))
    assert transfer_lr(base, cfg, 10, total, 0.1, True) == pytest.approx(lr_at(10, total, no_warm) * 0.1 * 0.1)
    assert transfer_lr(base, cfg, 14, total, 1.0, False) == pytest.approx(lr_at(14, total, no_warm) * 0.5)
    assert transfer_lr(base, cfg, 60, total, 0.1, True) == pytest.approx(lr_at(60, total, no_warm) * 0.1)
    # no fraction: the optimiser's own warm-up stays
    plain = TransferCfg(pretrained_lr_scale=0.5)
    assert transfer_lr(base, plain, 3, 100, 0.5, True) == pytest.approx(lr_at(3, 100, base) * 0.5)


def test_layer_index_follows_the_forward_path():
    depth = 2
    names = [
        "encoder.stages.0.0.0.weight",
        "encoder.stages.1.1.1.bias",
        "encoder.center.0.weight",
        "decoder.blocks.0.up.weight",
        "decoder.blocks.1.convs.0.0.weight",
        "head.weight",
    ]
    assert [layer_index(n, depth) for n in names] == [0, 1, 2, 3, 4, 5]


# --- parameter groups ---------------------------------------------------------------------------------------


def test_param_groups_get_the_right_learning_rates():
    model = _model()
    loaded = _encoder_keys(model)
    pre = pretrained_names(model, loaded)
    assert pre == {n for n, _ in model.named_parameters() if n.startswith("encoder.")}
    sched = TransferSchedule(OPTIM, TransferCfg(pretrained_lr_scale=0.1), model, pre, depth=2)
    groups = sched.param_groups(model)
    assert [g["name"] for g in groups] == ["new", "pretrained"]
    ids = {g["name"]: {id(p) for p in g["params"]} for g in groups}
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[i] for i in ids["pretrained"]} == pre
    assert {names[i] for i in ids["new"]} == {n for n in names.values() if n not in pre}
    assert sched.lr(groups[0], 40, 100) == pytest.approx(lr_at(40, 100, OPTIM))
    assert sched.lr(groups[1], 40, 100) == pytest.approx(0.1 * lr_at(40, 100, OPTIM))


def test_layer_decay_spreads_rates_over_the_encoder():
    model = _model()
    pre = pretrained_names(model, _encoder_keys(model))
    sched = TransferSchedule(OPTIM, TransferCfg(pretrained_lr_scale=0.5, layer_decay=0.5), model, pre, depth=2)
    scales = {g["name"]: g["lr_scale"] for g in sched.param_groups(model)}
    # centre (layer 2) is the last pre-trained layer: 0.5; stage 1: 0.25; stage 0: 0.125
    assert scales == pytest.approx({"new": 1.0, "pretrained.L0": 0.125, "pretrained.L1": 0.25, "pretrained.L2": 0.5})


def test_user_frozen_parameters_are_not_pretrained_groups():
    model = _model()
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    assert pretrained_names(model, _encoder_keys(model)) == set()
    schedule, note = build_schedule(OPTIM, TransferCfg(schedule="lpft", lpft_steps=2), model, _encoder_keys(model))
    assert "no pre-trained parameters" in note and frozen_phase_steps(schedule.cfg, 10) == 0


def test_lpft_without_pretrained_parts_is_refused_in_the_api():
    with pytest.raises(ConfigError, match="lpft needs pre-trained parts"):
        TransferSchedule(OPTIM, TransferCfg(schedule="lpft", lpft_steps=2), _model(), set())


# --- through the engine -------------------------------------------------------------------------------------


def test_lpft_freezes_exactly_the_loaded_parts_then_unfreezes(tmp_path):
    model = _model()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    loaded = _encoder_keys(model)  # as if load_pretrained had loaded the encoder
    task = _train(tmp_path, model, TransferCfg(schedule="lpft", lpft_steps=3), steps=6, loaded=loaded)
    assert task.grad_flags == [False, False, False, True, True, True]
    enc = [k for k in start if k.startswith("encoder.")]  # weights AND BatchNorm statistics
    new = [k for k in start if not k.startswith("encoder.") and "num_batches" not in k]
    for after in task.after[:3]:  # steps 0, 1, 2: the encoder untouched, the rest trains
        assert all(torch.equal(after[k], start[k]) for k in enc)
    assert all(not torch.equal(task.after[0][k], start[k]) for k in new if k.endswith("weight"))
    changed = [k for k in enc if k.endswith("weight") and not torch.equal(task.after[3][k], start[k])]
    assert set(changed) == {k for k in enc if k.endswith("weight")}  # step 3: every encoder weight moves
    assert all(p.requires_grad for p in model.parameters())
    rows = (tmp_path / "steps.csv").read_text().splitlines()
    head = rows[0].split(",")
    lr_pre = [float(r.split(",")[head.index("lr_pretrained")]) for r in rows[1:]]
    assert lr_pre[:3] == [0.0, 0.0, 0.0] and all(v > 0 for v in lr_pre[3:])


def test_standard_schedule_with_scale_trains_everything_from_step_zero(tmp_path):
    model = _model()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    task = _train(tmp_path, model, TransferCfg(pretrained_lr_scale=0.1), steps=2, loaded=_encoder_keys(model))
    assert task.grad_flags == [True, True]
    assert not torch.equal(task.after[0]["encoder.stages.0.0.0.weight"], start["encoder.stages.0.0.0.weight"])
    head = (tmp_path / "steps.csv").read_text().splitlines()
    cols = head[0].split(",")
    lr, lr_pre = (float(head[1].split(",")[cols.index(c)]) for c in ("lr", "lr_pretrained"))
    assert math.isclose(lr_pre, 0.1 * lr, rel_tol=1e-4)


def test_finetune_records_pretrained_parts_and_uses_the_schedule(synthetic_store, tmp_path):
    from medssl.finetune import finetune

    model = UNet(1, 4, base_width=4, depth=2)
    torch.save({k: v for k, v in model.state_dict().items() if k.startswith("encoder.")}, tmp_path / "enc.pt")
    cfg = load_config(
        FinetuneConfig,
        overrides={
            "data.path": str(synthetic_store),
            "data.labels": "50%",
            "data.batch_size": 4,
            "data.num_workers": 0,
            "data.image_size": 32,
            "model.base_width": 4,
            "model.depth": 2,
            "train.max_steps": 4,
            "train.device": "cpu",
            "train.progress": False,
            "train.log_every": 1,
            "out": str(tmp_path / "ft"),
            "init": str(tmp_path / "enc.pt"),
            "transfer.schedule": "lpft",
            "transfer.lpft_steps": 2,
            "transfer.pretrained_lr_scale": 0.1,
        },
    )
    lines: list[str] = []
    finetune(cfg, log_fn=lines.append)
    run = json.loads((tmp_path / "ft" / "run.json").read_text())
    assert run["pretrained_parts"] == ["encoder"] and run["total_steps"] == 4
    assert any("LP-FT: frozen for the first 2 of 4 steps" in line for line in lines)
    rows = (tmp_path / "ft" / "steps.csv").read_text().splitlines()
    cols = rows[0].split(",")
    assert [float(r.split(",")[cols.index("lr_pretrained")]) == 0.0 for r in rows[1:]] == [True, True, False, False]


class _Interrupt(Exception):
    pass


def test_lpft_run_resumed_mid_run_matches_an_uninterrupted_one(tmp_path):
    transfer = TransferCfg(schedule="lpft", lpft_steps=3, pretrained_lr_scale=0.5)
    whole = _model()
    _train(tmp_path / "whole", whole, transfer, steps=8, loaded=_encoder_keys(whole))

    model = _model()
    task = _ToyTask(model)

    def stop_at_step_6(progress: float) -> None:
        if progress >= 6 / 8:
            raise _Interrupt

    task.after_step = stop_at_step_6  # type: ignore[method-assign]
    train = TrainCfg(max_steps=8, device="cpu", progress=False, deterministic=True, log_every=1)
    schedule, _ = build_schedule(OPTIM, transfer, model, _encoder_keys(model), depth=2)
    with pytest.raises(_Interrupt):
        Engine(train, OPTIM, tmp_path / "cut", resume=False, schedule=schedule).fit(task)
    resumed = _model()  # a new process: fresh model, groups rebuilt, checkpoint of step 4 restored
    schedule, _ = build_schedule(OPTIM, transfer, resumed, _encoder_keys(resumed), depth=2)
    Engine(train, OPTIM, tmp_path / "cut", resume=True, schedule=schedule).fit(_ToyTask(resumed))
    for k, v in whole.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
