"""Results bundles: `medssl report DIR --export BUNDLE`, then `medssl report BUNDLE` recomputes every table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from medssl.benchmark import run_benchmark
from medssl.cli.main import main
from medssl.errors import DataError
from medssl.reporting.bundle import export_bundle, verify_bundle
from medssl.reporting.report import report

GRID = (
    "name: t\nmethods: [scratch, simclr]\nlabels: ['2']\nseeds: [0, 1]\n"
    "datasets:\n  - {name: syn, dataset: synthetic, src: builtin, prepare: {reader_options: "
    "{n_patients: 5, frames: 1, slices: 6, size: 32, seed: 0}}}\n"
    "pretrain: {data: {image_size: 32, batch_size: 4, num_workers: 0}, model: {base_width: 4}, "
    "train: {epochs: 1, max_steps: 2, device: cpu, progress: false, log_every: 1}}\n"
    "finetune: {data: {image_size: 32, batch_size: 4, num_workers: 0}, model: {base_width: 4}, "
    "train: {epochs: 1, max_steps: 2, device: cpu, progress: false, log_every: 1}}\n"
    "variants: {steps1: {methods: [scratch], finetune: {train: {max_steps: 1}}}}\n"
)
TABLES = ("results.csv", "stats.csv", "seed_stats.csv", "pairwise.csv", "paper_comparison.csv", "pretrain_losses.csv")


@pytest.fixture(scope="module")
def finished_grid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("grid")
    (root / "grid.yaml").write_text(GRID)
    run_benchmark(root / "grid.yaml", root / "bench", report=False, log_fn=lambda _: None)
    return root / "bench"


def test_export_then_report_the_bundle_gives_the_same_tables(finished_grid, tmp_path, capsys):
    work = tmp_path / "bench"
    shutil.copytree(finished_grid, work)
    before = report(work, out_dir=tmp_path / "rep_before", figures=False)
    assert main(["report", str(work), "--export", str(tmp_path / "bundle")]) == 0
    assert "8 runs" in capsys.readouterr().out  # 4 + 2 (variant) fine-tunings, 2 pre-trainings (one per seed)
    shutil.rmtree(work)  # the original is gone: the bundle alone must suffice
    bundle = tmp_path / "bundle"
    after = report(bundle, out_dir=tmp_path / "rep_after", figures=False)
    assert after.n_runs == before.n_runs == 4 and after.n_pretrain == 2  # the variant's runs are not mixed in
    variant = report(bundle / "variants" / "steps1", out_dir=tmp_path / "rep_variant", figures=False)
    assert variant.n_runs == 2 and {r["method"] for r in _csv(tmp_path / "rep_variant" / "results.csv")} == {"Scratch"}
    for name in TABLES:
        assert (tmp_path / "rep_after" / name).read_text() == (tmp_path / "rep_before" / name).read_text(), name
    assert any("recomputed from the results bundle" in n and "files verified" in n for n in after.notes)
    assert any("one pre-training per seed" in n for n in after.notes)


def _csv(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_variant_runs_reuse_the_grids_pretrainings(finished_grid):
    run = json.loads(
        (finished_grid / "variants" / "steps1" / "finetune" / "scratch__syn__2__s1" / "run.json").read_text()
    )
    assert run["status"] == "done" and run["total_steps"] == 1
    assert sorted(p.name for p in (finished_grid / "pretrain").iterdir()) == ["simclr__syn__s0", "simclr__syn__s1"]


def test_bundle_is_slim_and_records_its_provenance(finished_grid, tmp_path):
    res = export_bundle(finished_grid, tmp_path / "b", command="medssl report bench --export b")
    files = [p.relative_to(res.out).as_posix() for p in res.out.rglob("*") if p.is_file()]
    assert not [f for f in files if f.endswith(".pt") or "predictions" in f or f.startswith("prepared/")]
    cell = "finetune/simclr__syn__2__s1/"
    for name in ("config.yaml", "run.json", "metrics.csv", "summary.json", "steps.csv", "log.csv", "load_report.json"):
        assert cell + name in files, name
    assert "pretrain/simclr__syn__s1/diagnostics.json" in files or "pretrain/simclr__syn__s1/run.json" in files
    manifest = json.loads((res.out / "bundle.json").read_text())
    assert manifest["command"] == "medssl report bench --export b" and manifest["runs"] == 8
    assert "grid.json" in manifest["files"] and any(f.startswith("commands/") for f in manifest["files"])
    cmd = json.loads((res.out / next(f for f in manifest["files"] if f.startswith("commands/"))).read_text())
    assert "methods: [scratch, simclr]" in cmd["config_text"] and "git_commit" in cmd
    assert verify_bundle(res.out) == []
    (res.out / cell / "metrics.csv").write_text("case_id,dsc\nx,1\n")
    assert verify_bundle(res.out) == [f"{cell}metrics.csv: changed since export (sha256 differs)"]


def test_export_refuses_a_non_empty_destination(finished_grid, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(DataError, match="exists and is not an empty folder"):
        export_bundle(finished_grid, tmp_path / "full")
    with pytest.raises(DataError, match="no run folder"):
        export_bundle(tmp_path / "full", tmp_path / "new")


def test_export_of_a_grid_still_running_names_its_unfinished_runs(finished_grid, tmp_path, capsys):
    work = tmp_path / "bench"
    shutil.copytree(finished_grid, work)
    cell = work / "finetune" / "simclr__syn__2__s1"
    info = json.loads((cell / "run.json").read_text())
    (cell / "run.json").write_text(json.dumps({**info, "status": "running"}))
    (cell / "summary.json").unlink()  # mid-run: no results yet
    assert main(["report", str(work), "--export", str(tmp_path / "bundle")]) == 0
    err = capsys.readouterr().err
    assert "1 run not finished (finetune/simclr__syn__2__s1: running)" in err and "export again" in err
    manifest = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    assert manifest["unfinished"] == ["finetune/simclr__syn__2__s1: running"]
    rep = report(tmp_path / "bundle", out_dir=tmp_path / "rep", figures=False)
    assert rep.n_runs == 3  # skipped, as in DIR
    assert "1 run(s) were not finished when the bundle was exported" in " ".join(rep.notes)
    done = export_bundle(finished_grid, tmp_path / "done")
    assert done.unfinished == [] and json.loads((done.out / "bundle.json").read_text())["unfinished"] == []
