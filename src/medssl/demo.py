"""``medssl demo``: the whole pipeline on built-in synthetic data in a few minutes on a CPU.

Prepares synthetic phantoms, pre-trains SuperCL briefly, fine-tunes Scratch and SuperCL on two
labelled patients, evaluates both and prints the comparison table and the paths of the figures.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Callable

__all__ = ["run_demo", "demo_config_path"]


def demo_config_path() -> Path:
    return Path(str(resources.files("medssl.configs").joinpath("demo.yaml")))


def run_demo(out: str | Path = "medssl_demo", quick: bool = False, log_fn: Callable[[str], None] | None = None, device: str = "auto") -> Path:
    """Run the demo grid into ``out`` and print its report.

    Args:
        out: output folder (rerunning resumes and skips what is finished).
        quick: a much shorter run (used by the tests).
        log_fn: where messages go.
        device: ``auto``, ``cpu`` or ``cuda``.

    Returns:
        The report folder.
    """
    from .benchmark import run_benchmark
    from .reporting.report import report

    say = log_fn or print
    overrides = [f"pretrain.train.device={device}", f"finetune.train.device={device}"]
    if quick:
        overrides += [
            "pretrain.train.epochs=1",
            "pretrain.train.max_steps=3",
            "finetune.train.epochs=1",
            "finetune.train.max_steps=4",
            "datasets=[{name: synthetic, dataset: synthetic, src: builtin, prepare: {reader_options: {n_patients: 6, frames: 1, slices: 6, size: 32, seed: 0}}}]",
            "pretrain.data.image_size=32",
            "finetune.data.image_size=32",
            "pretrain.data.batch_size=4",
            "pretrain.model.base_width=4",
            "finetune.model.base_width=4",
        ]
    say(run_benchmark(demo_config_path(), out, overrides=overrides, log_fn=say, report=False))
    rep = report(Path(out))
    say(getattr(rep, "markdown", str(rep)))
    out_dir = Path(getattr(rep, "out_dir", Path(out) / "report"))
    figs = sorted((out_dir / "figures").glob("*.png")) if (out_dir / "figures").is_dir() else []
    for f in figs:
        say(f"figure: {f}")
    return out_dir
