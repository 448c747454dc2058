"""The generated CLI and configuration references (docs/hooks/gen_reference.py) cannot hide a gap.

Every sub-command and flag of ``medssl`` must have help text, and every field of the typed
configuration a description in its class's ``Attributes:`` docstring section; the pages are then
generated from them at every documentation build.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from medssl.cli.main import build_parser
from medssl.config import FinetuneConfig, PretrainConfig
from medssl.data.superpixels import SuperpixelConfig
from medssl.methods.catalog import load_all_methods
from medssl.registry import METHODS

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", REPO / "docs" / "hooks" / "gen_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_cli_flag_has_help(gen: ModuleType) -> None:
    missing = gen.undocumented_flags(build_parser())
    assert not missing, f"CLI arguments without help text (add help=...): {missing}"


def test_every_config_field_has_a_description(gen: ModuleType) -> None:
    missing = gen.undocumented_fields(PretrainConfig, FinetuneConfig, SuperpixelConfig)
    assert not missing, f"configuration fields without a description in their class's Attributes: {missing}"


def test_every_method_argument_has_a_description(gen: ModuleType) -> None:
    missing = gen.undocumented_method_args()
    assert not missing, f"method_args without a description in the method's Args: docstring: {missing}"
    load_all_methods()
    names = [arg for arg, *_ in gen.method_arguments(METHODS.get("supercl"))]
    assert "min_tokens" in names and "backbone" not in names


def test_the_checks_find_a_gap(gen: ModuleType) -> None:
    """The two checks fail on an undocumented flag and an undocumented field (they can fail)."""
    parser = argparse.ArgumentParser(prog="x")
    sub = parser.add_subparsers()
    s = sub.add_parser("run", help="run it")
    s.add_argument("--fast", action="store_true")
    sub.add_parser("quiet")
    assert gen.undocumented_flags(parser, "x") == ["x run --fast", "x quiet"]

    @dataclasses.dataclass
    class Cfg:
        """A configuration.

        Attributes:
            documented: a setting,
                over two lines.
        """

        documented: int = 1
        forgotten: str = "a"

    assert gen.field_descriptions(Cfg) == {"documented": "a setting, over two lines."}
    assert gen.undocumented_fields(Cfg) == ["Cfg.forgotten"]


def test_pages_list_every_flag_and_field(gen: ModuleType) -> None:
    cli = gen.cli_markdown(build_parser())
    for command in ("prepare", "pretrain", "finetune", "evaluate", "report", "benchmark", "demo", "figure"):
        assert f"## `medssl {command}`" in cli
    assert "`--max-steps`" in cli and "`--set`" in cli
    assert "%%" not in cli  # argparse's %% is expanded, as -h prints it
    config = gen.config_markdown({"medssl pretrain": PretrainConfig, "medssl finetune": FinetuneConfig})
    ft = config.split("## `medssl finetune`")[1]
    row = next(line for line in ft.splitlines() if line.startswith("| `data.batch_size`"))
    assert "`5`" in row and ">= 1" in row and "per-process batch size" in row
    pre = config.split("## `medssl finetune`")[0]
    assert '| `optim.name` | str | `"sgd"` |' in pre
    assert "| `train.seed` | int | `1234` | in [0, 4294967295] |" in config
