"""`medssl benchmark`: one pre-training per seed by default; sharing one is an explicit, labelled option."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medssl.benchmark import load_grid, run_benchmark, validate_grid
from medssl.errors import ConfigError

GRID = (
    "name: t\nmethods: [scratch, simclr]\nlabels: ['2']\nseeds: [0, 1]\n"
    "datasets:\n  - {name: syn, dataset: synthetic, src: builtin, prepare: {reader_options: "
    "{n_patients: 5, frames: 1, slices: 6, size: 32, seed: 0}}}\n"
    "pretrain: {data: {image_size: 32, batch_size: 4, num_workers: 0}, model: {base_width: 4}, "
    "train: {epochs: 1, max_steps: 1, device: cpu, progress: false}}\n"
    "finetune: {data: {image_size: 32, batch_size: 4, num_workers: 0}, model: {base_width: 4}, "
    "train: {epochs: 1, max_steps: 1, device: cpu, progress: false}}\n"
)


@pytest.fixture
def grid_file(tmp_path: Path) -> Path:
    p = tmp_path / "grid.yaml"
    p.write_text(GRID)
    return p


def test_each_seed_gets_its_own_pretraining_by_default(grid_file, tmp_path):
    grid = load_grid(grid_file)
    assert grid["pretrain_per_seed"] is True
    plans = [p for p in validate_grid(grid, tmp_path / "b") if p.pretrain is not None]
    assert [(p.cell.seed, p.pretrain.train.seed, p.pretrain_dir.name) for p in plans] == [
        (0, 0, "simclr__syn__s0"),
        (1, 1, "simclr__syn__s1"),
    ]
    assert [p.finetune.init for p in plans] == [str(p.pretrain_dir / "pretrain.pt") for p in plans]
    text = run_benchmark(grid_file, tmp_path / "b", dry_run=True)
    assert "2 pre-trainings (one per method, dataset and seed: independent replicates)" in text


def test_pretrain_only_processes_claim_the_pretrainings_one_at_a_time(grid_file, tmp_path):
    """--cells i/n with --pretrain-only: every process sees every pre-training, starting at its own
    n-th of the list, and runs those that are neither finished nor locked by another live process
    (the cells interleave methods: dealing cells would give one process every pre-training of one
    method, and pre-trainings differ in cost)."""
    from medssl.utils.locks import owner_alive as _owner_alive
    from medssl.utils.locks import process_stamp as _process_stamp

    sets = ["seeds=[0, 1, 2]"]
    texts = [
        run_benchmark(grid_file, tmp_path / "b", dry_run=True, overrides=sets, cells=f"{i}/2", pretrain_only=True)
        for i in (0, 1)
    ]
    mine = [[line.split()[1] for line in t.splitlines() if line.startswith("pretrain ")] for t in texts]
    everything = [f"simclr__syn__s{s}" for s in range(3)]
    assert mine[0] == everything and mine[1] == everything[1:] + everything[:1]
    assert texts[0].endswith("3 of 3 pre-trainings")
    # s1 is being run by another live process (here: this test's own, with its real stamp); a stale
    # lock (a pid that runs, but another process's start time) on s2 is taken over
    root = tmp_path / "b"
    (root / "pretrain" / "simclr__syn__s1").mkdir(parents=True)
    (root / "pretrain" / "simclr__syn__s1" / ".lock").write_text(_process_stamp(os.getpid()))
    (root / "pretrain" / "simclr__syn__s2").mkdir(parents=True)
    (root / "pretrain" / "simclr__syn__s2" / ".lock").write_text(f"{os.getpid()} 1 not-this-boot")
    assert _owner_alive(str(os.getpid())) == (b"medssl" in Path(f"/proc/{os.getpid()}/cmdline").read_bytes())
    assert not _owner_alive("1")  # an old-style lock naming a pid that runs something else (init)
    said: list[str] = []
    text = run_benchmark(grid_file, root, overrides=sets, pretrain_only=True, cells="0/2", log_fn=said.append)
    assert "[pretrain] simclr__syn__s1: being run by another process; skipped" in said
    assert "[pretrain] simclr__syn__s0" in said and "[pretrain] simclr__syn__s2" in said
    assert "2 of 3 pre-trainings done (fine-tuning not run: --pretrain-only)" in text
    assert not (root / "pretrain" / "simclr__syn__s0" / ".lock").exists()
    assert (root / "pretrain" / "simclr__syn__s0" / "pretrain.pt").is_file()


def test_a_cell_another_process_is_fine_tuning_is_skipped_not_trained_twice(grid_file, tmp_path):
    """Two processes on one grid without --cells (or a runner restarted while its children run): a
    cell whose folder's lock another live process holds is skipped, with a line saying so, and its
    pre-training is not waited for; once the lock is free, the next run trains it."""
    from medssl.utils.locks import try_lock

    root = tmp_path / "b"
    sets = ["methods=[scratch]"]
    held = try_lock(root / "finetune" / "scratch__syn__2__s1")  # another open file: another holder
    assert held
    said: list[str] = []
    try:
        text = run_benchmark(grid_file, root, overrides=sets, log_fn=said.append, report=False)
    finally:
        held.release()
    assert "[finetune 2/2] scratch__syn__2__s1: being run by another process; skipped" in said
    assert "1 cells run, 0 already done, 1 being run by another process, 0 left to other processes" in text
    assert (root / "finetune" / "scratch__syn__2__s0" / "summary.json").is_file()
    assert not (root / "finetune" / "scratch__syn__2__s1" / "run.json").exists()
    assert not (root / "finetune" / "scratch__syn__2__s0" / ".lock").exists()  # released when done
    text = run_benchmark(grid_file, root, overrides=sets, report=False)
    assert "1 cells run, 1 already done, 0 left to other processes" in text
    assert (root / "finetune" / "scratch__syn__2__s1" / "summary.json").is_file()


def test_sharing_one_pretraining_is_explicit_and_labelled(grid_file, tmp_path):
    grid = load_grid(grid_file, ["pretrain_per_seed=false", "pretrain.train.seed=7"])
    plans = [p for p in validate_grid(grid, tmp_path / "b") if p.pretrain is not None]
    assert {p.pretrain_dir.name for p in plans} == {"simclr__syn"} and {p.pretrain.train.seed for p in plans} == {7}
    text = run_benchmark(grid_file, tmp_path / "b", dry_run=True, overrides=["pretrain_per_seed=false"])
    assert "1 pre-trainings (pretrain_per_seed: false, one per method and dataset SHARED by every seed)" in text


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("pretrain_per_seed=maybe", "pretrain_per_seed must be true or false, got 'maybe'"),
        ("pretrain.train.seed=3", "pretrain.train.seed: each grid seed seeds its own pre-training"),
    ],
)
def test_bad_replicate_settings_are_one_line_errors(grid_file, override, fragment):
    with pytest.raises(ConfigError) as e:
        load_grid(grid_file, [override])
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_variants_fine_tune_the_same_cells_and_pretrainings_again(grid_file, tmp_path):
    sets = [
        "variants={steps3: {finetune: {train: {max_steps: 3}}}, paper: {methods: [scratch], finetune: {recipe: paper}}}"
    ]
    grid = load_grid(grid_file, sets)
    plans = validate_grid(grid, tmp_path / "b")
    assert [p.variant for p in plans].count("steps3") == 4 and [p.variant for p in plans].count("paper") == 2
    steps3 = [p for p in plans if p.variant == "steps3"]
    base = [p for p in plans if p.variant is None]
    assert [p.finetune.train.max_steps for p in steps3] == [3] * 4 and {p.finetune.train.max_steps for p in base} == {1}
    assert [p.pretrain_dir for p in steps3] == [p.pretrain_dir for p in base]  # the same pre-trainings
    assert steps3[1].finetune.out == str(tmp_path / "b" / "variants" / "steps3" / "finetune" / steps3[1].cell.name)
    paper = [p for p in plans if p.variant == "paper"]
    assert {p.finetune.loss for p in paper} == {"ce"} and {p.finetune.loss for p in base} == {"dicece"}
    text = run_benchmark(grid_file, tmp_path / "b", dry_run=True, overrides=sets)
    assert "scratch__syn__2__s1 [paper]" in text and "all 10 cells of the grid are valid" in text
    assert "2 pre-trainings" in text


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("variants=[1]", "variants must be a mapping"),
        ("variants={x: {steps: 3}}", "variants.x: unknown key 'steps'; known: finetune, methods"),
        ("variants={x: {methods: [macl]}}", "variants.x: methods must be a non-empty list of the grid's methods"),
        ("variants={x: {finetune: {train: {max_steps: 0}}}}", "variants.x: cell scratch__syn__2__s0: train.max_steps"),
    ],
)
def test_bad_variants_are_one_line_errors(grid_file, tmp_path, override, fragment):
    with pytest.raises(ConfigError) as e:
        validate_grid(load_grid(grid_file, [override]), tmp_path / "b")
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_only_selects_cells_by_method_seed_and_variant(grid_file, tmp_path):
    """--only: a cell runs when it meets every condition of one --only; variant=- is the grid's own
    cells; a condition that matches nothing is an error, not an empty run."""
    sets = ["variants.short={finetune: {train: {max_steps: 1}}}"]

    def listed(*only: str) -> list[str]:
        text = run_benchmark(grid_file, tmp_path / "b", dry_run=True, overrides=sets, only=list(only))
        return [line for line in text.splitlines() if line.startswith(("scratch__", "simclr__"))]

    assert listed("method=simclr,seed=1") == ["simclr__syn__2__s1", "simclr__syn__2__s1 [short]"]
    assert listed("method=simclr,seed=1,variant=-", "method=scratch,variant=short") == [
        "simclr__syn__2__s1",
        "scratch__syn__2__s0 [short]",
        "scratch__syn__2__s1 [short]",
    ]
    assert len(listed()) == 8  # no --only: every cell and variant
    with pytest.raises(ConfigError, match="--only method=simclr,seed=5: no cell of the grid matches it"):
        listed("method=simclr,seed=5")
    with pytest.raises(ConfigError, match="unknown key 'step'"):
        listed("step=1")
    with pytest.raises(ConfigError, match="expects key=value"):
        listed("simclr")


def test_only_runs_the_selected_cells_and_leaves_the_report_to_the_whole_grid(grid_file, tmp_path):
    import json

    from medssl.engine.rundir import is_done

    root = tmp_path / "b"
    said: list[str] = []
    text = run_benchmark(grid_file, root, only=["method=scratch,seed=1"], log_fn=said.append)
    assert is_done(root / "finetune" / "scratch__syn__2__s1")
    assert not (root / "finetune" / "scratch__syn__2__s0").exists() and not (root / "pretrain").exists()
    assert "report:" not in text and not (root / "report").exists()  # 1 of the grid's 4 cells: no report yet
    (record,) = [json.loads(p.read_text()) for p in (root / "commands").glob("*.json")]
    assert record["only"] == ["method=scratch,seed=1"]


def test_a_finished_pretraining_without_its_weights_is_run_again(grid_file, tmp_path):
    """A bundle copied back into a benchmark folder brings a pre-training's record but not its
    pretrain.pt: a cell that still needs it runs the pre-training again from the start (not 'done',
    which would fail on the missing weights), and at one thread on a CPU the same weights come back,
    so the fine-tunings that used the first copy are not stale."""
    from medssl.engine.rundir import is_done
    from medssl.reporting.runfiles import read_json_object, stale_problem

    root = tmp_path / "b"
    only = ["method=simclr,seed=0"]
    run_benchmark(grid_file, root, only=only)
    pre, cell = root / "pretrain" / "simclr__syn__s0", root / "finetune" / "simclr__syn__2__s0"
    first = (pre / "pretrain.pt").read_bytes()
    (pre / "pretrain.pt").unlink()
    (pre / "checkpoint_latest.pt").unlink(missing_ok=True)
    moved = tmp_path / "kept"
    cell.rename(moved)  # the cell to run again; `moved` stands for one the bundle brought back
    said: list[str] = []
    run_benchmark(grid_file, root, only=only, log_fn=said.append)
    assert "[pretrain] simclr__syn__s0: finished, but pretrain.pt is missing; run again" in said
    assert is_done(cell) and (pre / "pretrain.pt").read_bytes() == first
    assert stale_problem(moved, read_json_object(moved / "run.json")) is None
