"""Typed configuration: defaults match the papers, YAML < flags < --set, clear errors."""
import pytest

from medssl.config import FinetuneConfig, PretrainConfig, apply_overrides, load_config
from medssl.errors import ConfigError


def test_paper_defaults():
    f, p = FinetuneConfig(), PretrainConfig()
    assert (f.optim.name, f.optim.lr, f.optim.weight_decay, f.optim.min_lr, f.train.seed, f.loss) == ("adam", 5e-4, 1e-5, 5e-6, 1234, "ce")
    assert (p.optim.name, p.optim.lr, p.optim.momentum, p.optim.weight_decay, p.optim.min_lr, p.optim.warmup_steps) == ("sgd", 0.01, 0.9, 1e-5, 0.0, 0)


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
