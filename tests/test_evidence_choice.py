"""benchmarks/evidence_choice.py: issue 22's budget choice reads validation only, and its --set lines
make valid grid variants."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from medssl.benchmark import load_grid, validate_grid

sys.path.insert(0, str(REPO / "benchmarks"))
import evidence_choice


def _cell(folder: Path, method: str, seed: int, vals: list[float], test: float) -> None:
    run = folder / f"{method}__mscmrseg__10pct__s{seed}"
    run.mkdir(parents=True)
    rows = ["epoch,step,val_dice"] + [f"{i},{10 * (i + 1)},{v}" for i, v in enumerate(vals)]
    (run / "log.csv").write_text("\n".join(rows) + "\n")
    (run / "summary.json").write_text(json.dumps({"mean": {"dsc": test}}))


def _grid(root: Path, gain500: float, gain150: float) -> Path:
    for folder, gain in ((root / "finetune", gain500), (root / "variants" / "steps150" / "finetune", gain150)):
        for seed in (0, 1):
            _cell(folder, "scratch", seed, [0.3, 0.5 + 0.01 * seed, 0.4], test=0.9)  # test Dice never read
            _cell(folder, "macl", seed, [0.2, 0.5 + 0.01 * seed + gain], test=0.1)
    return root


def test_budget_is_the_larger_mean_validation_gain(tmp_path: Path) -> None:
    got = evidence_choice.budget_choice(_grid(tmp_path / "a", gain500=0.01, gain150=0.05))
    assert got["max_steps"] == 150
    assert got["mean_gain"][150] == pytest.approx(0.05) and got["mean_gain"][500] == pytest.approx(0.01)
    assert set(got["gain_per_cell"][150]) == {"macl/s0", "macl/s1"}
    assert evidence_choice.budget_choice(_grid(tmp_path / "b", 0.02, 0.02))["max_steps"] == 500  # tie: longer


def test_budget_stops_on_a_missing_budget(tmp_path: Path) -> None:
    root = tmp_path / "g"
    _cell(root / "finetune", "scratch", 0, [0.5], 0.5)
    _cell(root / "finetune", "macl", 0, [0.6], 0.5)
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "evidence_choice.py"), "budget", str(root)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "finished cells missing for a budget" in proc.stderr


def test_sets_make_valid_variants_and_nothing_for_standard(tmp_path: Path, shared_data: Path) -> None:
    choice = {"overall": "lpft_lr0.1", "overrides": ["transfer.schedule=lpft", "transfer.lpft_fraction=0.1",
                                                      "transfer.pretrained_lr_scale=0.1"]}  # fmt: skip
    sets = evidence_choice.variant_sets(choice, [500, 150])
    text = (REPO / "configs" / "evidence_mscmrseg.yaml").read_text()  # its src is relative to the repository
    config = tmp_path / "evidence_mscmrseg.yaml"
    config.write_text(text.replace("../shared/data", str(shared_data)))
    grid = load_grid(config, sets)
    assert set(grid["variants"]) == {"steps150", "paper750", "transfer500", "transfer150"}
    plans = [p for p in validate_grid(grid, Path("/nonexistent")) if p.variant == "transfer150"]
    macl = next(p for p in plans if p.cell.method == "macl")
    assert macl.finetune.train.max_steps == 150 and macl.finetune.transfer.schedule == "lpft"
    assert macl.finetune.transfer.pretrained_lr_scale == 0.1 and macl.finetune.transfer.lpft_fraction == 0.1
    assert {p.cell.method for p in plans} == set(evidence_choice.PRETRAINED)  # Scratch: the grid's steps150 cells
    assert evidence_choice.variant_sets({"overall": "standard", "overrides": []}, [500]) == []
    warm = evidence_choice.variant_sets({"overall": "warmup", "overrides": ["transfer.warmup_fraction=0.05"]}, [500])
    assert warm == ["variants.transfer500={finetune: {train: {max_steps: 500}, transfer: {warmup_fraction: 0.05}}}"]


def test_pretrained_methods_are_the_evidence_grids() -> None:
    import yaml

    for name in ("evidence_mscmrseg", "evidence_chaos"):
        grid = yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text())
        assert tuple(m for m in grid["methods"] if m != "scratch") == evidence_choice.PRETRAINED
