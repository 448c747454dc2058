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


def _paired(root: Path, gains: dict[tuple[str, int], float]) -> tuple[Path, Path]:
    """A standard and a chosen finetune folder whose best validation Dice differ by ``gains``."""
    std, chosen = root / "finetune", root / "variants" / "transfer500" / "finetune"
    for (method, seed), g in gains.items():
        _cell(std, method, seed, [0.2, 0.6], test=0.9)
        _cell(chosen, method, seed, [0.6 + g, 0.1], test=0.0)  # best, not last; test Dice never read
    _cell(std, "scratch", 0, [0.5], 0.5)
    _cell(chosen, "scratch", 0, [0.9], 0.5)  # Scratch is not a pre-trained cell: ignored
    return std, chosen


def test_default_changes_only_when_the_seed_interval_excludes_zero(tmp_path: Path) -> None:
    choice = {"overall": "lpft"}
    gains = {("macl", 0): 0.02, ("pcl", 0): 0.04, ("macl", 1): 0.01, ("pcl", 1): 0.03, ("macl", 2): 0.02}
    std, chosen = _paired(tmp_path / "a", gains)
    got = evidence_choice.default_choice(choice, [("ms", std, chosen)])
    # units (set, seed): s0 0.03, s1 0.02, s2 0.02 -> mean 0.02333, sd 0.005774, t(0.975, 2) = 4.303
    assert got["gain_per_unit"] == pytest.approx({"ms/s0": 0.03, "ms/s1": 0.02, "ms/s2": 0.02})
    assert got["mean_gain"] == pytest.approx(0.07 / 3)
    assert got["ci95"][0] == pytest.approx(0.07 / 3 - 4.302653 * 0.0057735 / 3**0.5, abs=1e-5)
    assert got["default"] == "lpft" and len(got["gain_per_cell"]) == 5
    # a mean gain above 0 whose interval holds 0 keeps the standard fine-tuning
    mixed = {("macl", 0): 0.05, ("macl", 1): -0.03, ("macl", 2): 0.01}
    std, chosen = _paired(tmp_path / "b", mixed)
    got = evidence_choice.default_choice(choice, [("ms", std, chosen)])
    assert got["mean_gain"] == pytest.approx(0.01) and got["ci95"][0] < 0 < got["ci95"][1]
    assert got["default"] == "standard"
    # stage 3 chose standard: nothing to compare, and the variant folders need not exist
    gone = [("ms", tmp_path / "none", tmp_path / "none")]
    assert evidence_choice.default_choice({"overall": "standard"}, gone)["default"] == "standard"


def test_default_cli_reads_pairs_of_folders(tmp_path: Path) -> None:
    std, chosen = _paired(tmp_path / "g", {("macl", 0): 0.02, ("macl", 1): 0.03, ("macl", 2): 0.025})
    (tmp_path / "choice.json").write_text(json.dumps({"overall": "lpft"}))
    cmd = [sys.executable, str(REPO / "benchmarks" / "evidence_choice.py"), "default", "--choice",
           str(tmp_path / "choice.json"), "--pair", f"ms:{std}:{chosen}"]  # fmt: skip
    got = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    assert set(got["gain_per_unit"]) == {"ms/s0", "ms/s1", "ms/s2"} and got["default"] == "lpft"
    bad = subprocess.run(cmd[:-1] + ["ms-only"], capture_output=True, text=True)
    assert bad.returncode != 0 and "expected SET:STANDARD_DIR:CHOSEN_DIR" in bad.stderr
    typo = subprocess.run(cmd[:-1] + [f"ms:{std}:{chosen}x"], capture_output=True, text=True)
    assert typo.returncode != 0 and f"{chosen}x: no such finetune folder (pair ms)" in typo.stderr
    (tmp_path / "empty").mkdir()
    empty = subprocess.run(cmd[:-1] + [f"ms:{std}:{tmp_path / 'empty'}"], capture_output=True, text=True)
    assert empty.returncode != 0 and "no finished pre-trained cell in both folders" in empty.stderr
