"""Typed configuration: defaults match the papers, YAML < flags < --set, clear errors."""

import pytest
import torch

from medssl.config import FinetuneConfig, PretrainConfig, apply_overrides, config_from_dict, load_config
from medssl.errors import ConfigError


def test_paper_defaults():
    from medssl.recipes import resolve_recipe

    f, p = resolve_recipe(FinetuneConfig(protocol="paper")), PretrainConfig()
    assert (f.optim.name, f.optim.lr, f.optim.weight_decay, f.optim.min_lr, f.train.seed, f.loss) == (
        "adam",
        5e-4,
        1e-5,
        5e-6,
        1234,
        "ce",
    )
    assert (p.optim.name, p.optim.lr, p.optim.momentum, p.optim.weight_decay, p.optim.min_lr, p.optim.warmup_steps) == (
        "sgd",
        0.01,
        0.9,
        1e-5,
        0.0,
        0,
    )


def test_recipes_fill_only_unset_settings():
    from medssl.recipes import resolve_recipe

    std = resolve_recipe(FinetuneConfig())
    assert (std.recipe, std.loss, std.optim.lr, std.optim.warmup_steps, std.mirror, std.train.val_every_steps) == (
        "standard",
        "dicece",
        1e-3,
        50,
        False,
        50,
    )
    paper = resolve_recipe(FinetuneConfig(protocol="paper"))
    assert (
        paper.recipe,
        paper.mirror,
        paper.p_spatial,
        paper.rotation,
        paper.scale,
        paper.elastic,
        paper.train.val_every,
    ) == ("paper", True, 0.67, 180.0, [0.7, 1.3], True, 10)
    # the paper recipe under the standard protocol, and explicit settings win over the recipe
    mixed = resolve_recipe(apply_overrides(FinetuneConfig(), ["recipe=paper", "optim.lr=0.002", "mirror=false"]))
    assert (mixed.protocol, mixed.loss, mixed.optim.lr, mixed.optim.min_lr, mixed.mirror) == (
        "standard",
        "ce",
        0.002,
        5e-6,
        False,
    )
    assert resolve_recipe(mixed) == mixed  # resolving is idempotent (run folders compare resolved configurations)
    # a partial optim section from a grid or YAML keeps the fine-tuning defaults of the others
    part = config_from_dict(FinetuneConfig, {"optim": {"lr": 0.01}})
    assert resolve_recipe(part).optim.warmup_steps == 50
    assert config_from_dict(PretrainConfig, {"optim": {"lr": 0.1}}).optim.name == "sgd"
    with pytest.raises(ConfigError, match="recipe"):
        apply_overrides(FinetuneConfig(), ["recipe=fast"])
    from medssl.recipes import describe_recipe

    assert describe_recipe(std).startswith("recipe 'standard': loss dicece (batch Dice), adam lr 0.001 (warm-up 50")
    assert "mirror, p 0.67: rotation +-180 deg" in describe_recipe(paper)


def test_yaml_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("optim:\n  lr: 0.002\ntrain:\n  epochs: 3\nmethod_args:\n  temperature: 0.2\n")
    cfg = load_config(PretrainConfig, f, ["train.epochs=5", "method_args.delta=0.35"])
    assert cfg.optim.lr == 0.002 and cfg.train.epochs == 5
    assert cfg.method_args == {"temperature": 0.2, "delta": 0.35}


def test_errors_name_the_key():
    with pytest.raises(ConfigError, match="optim.lrr"):
        apply_overrides(FinetuneConfig(), ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="optim.lr"):
        apply_overrides(FinetuneConfig(), ["optim.lr=fast"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(FinetuneConfig(), ["optim.lr"])
    assert apply_overrides(FinetuneConfig(), ["train.max_steps=null"]).train.max_steps is None


def test_required_setting_left_unset_is_a_config_error() -> None:
    from medssl.config import OptimCfg, required
    from medssl.engine.trainer import build_optimizer

    assert required(0.5, "optim.lr") == 0.5
    with pytest.raises(ConfigError, match=r"^optim.lr: not set"):
        required(None, "optim.lr")
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="optim.lr"):  # pre-training has no recipe to fill it
        build_optimizer(model.parameters(), OptimCfg(lr=None))


def test_switching_the_recipe_of_a_resolved_config_takes_the_new_recipes_settings(tmp_path, caplog):
    """A run's config.yaml holds every setting its recipe filled; `--set recipe=paper` on it must train
    with the paper recipe's settings (not keep standard's under a paper label), while settings the
    user changed from the old recipe, and explicit overrides, are kept."""
    import dataclasses

    import yaml

    from medssl.config import DataCfg, FinetuneConfig, load_config
    from medssl.recipes import RECIPES, resolve_recipe, unresolve_recipe

    resolved = resolve_recipe(FinetuneConfig(data=DataCfg(path="x"), rotation=30.0))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(dataclasses.asdict(resolved)))
    paper = RECIPES["paper"]
    with caplog.at_level("INFO", logger="medssl"):
        got = resolve_recipe(load_config(FinetuneConfig, path, ["recipe=paper"]))
    said = [r.getMessage() for r in caplog.records if r.name == "medssl"]
    assert len(said) == 1 and said[0].startswith("recipe standard -> paper: optim.lr, ") and "rotation" not in said[0]
    assert (got.recipe, got.loss, got.optim.lr, got.mirror, got.train.val_every) == (
        "paper", paper.loss, paper.lr, paper.mirror, paper.val_every
    )  # fmt: skip
    assert got.rotation == 30.0  # changed by the user from standard's: kept
    got = resolve_recipe(load_config(FinetuneConfig, path, ["recipe=paper", "optim.lr=0.002"]))
    assert got.optim.lr == 0.002 and got.loss == paper.loss
    same = load_config(FinetuneConfig, path, ["optim.lr=0.002"])  # no recipe change: nothing unset
    assert same.loss == resolved.loss and same.optim.min_lr == resolved.optim.min_lr
    _, unset = unresolve_recipe(resolved)
    assert "loss" in unset and "optim.lr" in unset and "postprocess" in unset and "rotation" not in unset


def test_an_unknown_key_in_a_config_file_names_the_file(tmp_path):
    from medssl.config import FinetuneConfig, load_config
    from medssl.errors import ConfigError

    path = tmp_path / "ft.yaml"
    path.write_text("optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as e:
        load_config(FinetuneConfig, path)
    assert str(e.value).startswith(f"{path}: unknown setting 'optim.lrr'")  # was: without the file
