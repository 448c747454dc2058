"""Issue 26: every input checked at the boundary. Stale runs refused, result files validated, method
settings with meaning checks, usage errors as usage errors, quiet closed pipes, evaluate/report saying
what they did. One tiny fine-tuning run on 5 real MSD Hippocampus cases serves every test."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from medssl.cli.main import main
from medssl.errors import ConfigError, DataError

TINY = ["--device", "cpu", "--workers", "0", "--no-progress", "--image-size", "32", "--set", "model.base_width=4"]
STEP = ["--epochs", "1", "--max-steps", "1"]


def _ft(store: Path, out: Path, *extra: str) -> list[str]:
    return ["finetune", "--data", str(store), "--out", str(out), *TINY, *STEP, "--labels", "1", *extra]


def _pre(store: Path, out: Path, *extra: str) -> list[str]:
    return ["pretrain", "--data", str(store), "--out", str(out), *TINY, *STEP, "--batch-size", "4", *extra]


def _usage_error(capsys, argv: list[str]) -> str:
    """``main(argv)`` exits 2 with one ``medssl: error:`` line and no traceback; returns that line."""
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert err and err[-1].startswith("medssl: error: ") and "Traceback" not in "\n".join(err), err
    assert "internal error" not in err[-1], err
    return err[-1]


def _prepare_hippo(root: Path, n: int, out: Path, overwrite: bool = False) -> Path:
    from conftest import _subset_msd, shared_data_dir

    from medssl.data.store import prepare

    data = shared_data_dir()
    if data is None:
        pytest.skip("real data folder ../shared/data not found")
    src = _subset_msd(data / "msd_hippocampus", root / f"src{n}" / "Task04_Hippocampus", n)
    prepare("msd", src, out, progress=False, overwrite=overwrite)
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(store, run): a prepared store of 5 real cases and a finished one-step fine-tuning run on it."""
    root = tmp_path_factory.mktemp("boundary")
    store = _prepare_hippo(root, 5, root / "store")
    run = root / "run"
    assert main(_ft(store, run)) == 0
    return store, run


def _copy_run(finished: tuple[Path, Path], dst: Path, store: Path | None = None) -> Path:
    """A copy of the finished run (pointing at ``store`` when given: data.path and run.json)."""
    shutil.copytree(finished[1], dst)
    if store is not None:
        info = json.loads((dst / "run.json").read_text())
        info["data"] = str(store.resolve())
        (dst / "run.json").write_text(json.dumps(info))
        cfg = yaml.safe_load((dst / "config.yaml").read_text())
        cfg["data"]["path"] = str(store)
        (dst / "config.yaml").write_text(yaml.safe_dump(cfg))
    return dst


# ---------------------------------------------------------------------------------------- 1. stale runs


def test_run_records_input_fingerprints(finished) -> None:
    from medssl.engine.provenance import store_fingerprint

    store, run = finished
    inputs = json.loads((run / "run.json").read_text())["inputs"]
    assert inputs["store"] == store_fingerprint(store) and inputs["store"].startswith("sha256c:")
    assert inputs["init"] is None


def test_array_edited_in_place_changes_the_store_fingerprint(finished, tmp_path) -> None:
    """An array overwritten in place with the same size (same names, same index files) is a changed
    store; preparing the same data again (new files, same bytes) is not; runs recorded with the older
    names-and-sizes fingerprint are compared with that definition."""
    import numpy as np

    from medssl.engine.provenance import changed_inputs, store_fingerprint

    store = tmp_path / "store"
    shutil.copytree(finished[0], store)
    before, old = store_fingerprint(store), store_fingerprint(store, contents=False)
    assert old is not None and old.startswith("sha256:") and (store / "cache" / "array_digests.json").is_file()
    arr = sorted((store / "images").glob("*.npy"))[0]
    data = np.load(arr)
    np.save(arr, data)  # rewritten, same bytes: the same store
    assert store_fingerprint(store) == before
    edited = data.copy()
    edited.flat[0] += 1.0
    np.save(arr, edited)  # same size and name, other content
    assert arr.stat().st_size == (finished[0] / "images" / arr.name).stat().st_size
    assert store_fingerprint(store) != before
    assert (
        changed_inputs({"store": before}, store)
        and "changed since this run" in changed_inputs({"store": before}, store)[0]
    )
    assert changed_inputs({"store": old}, store) == []  # the old definition cannot see it, and is not misjudged


def test_stale_store_refused_by_finetune_evaluate_and_report(finished, tmp_path, capsys) -> None:
    store = tmp_path / "store"
    shutil.copytree(finished[0], store)
    run = _copy_run(finished, tmp_path / "run", store)
    assert main(_ft(store, run)) == 0  # same store content: the finished results are shown
    assert "finished run with the same configuration" in capsys.readouterr().out
    _prepare_hippo(tmp_path, 4, store, overwrite=True)  # another dataset in the same folder
    line = _usage_error(capsys, _ft(store, run))
    assert "the prepared store" in line and "changed since this run" in line and "--no-resume" in line
    line = _usage_error(capsys, ["evaluate", str(run)])
    assert "stale" in line and "--no-resume" in line
    line = _usage_error(capsys, ["report", str(tmp_path), "--out", str(tmp_path / "rep")])
    assert "stale" in line and "no complete fine-tuning run" in line


def test_changed_init_checkpoint_is_named(tmp_path) -> None:
    from medssl.engine.provenance import changed_inputs, checkpoint_fingerprint, store_fingerprint

    ckpt = tmp_path / "pretrain.pt"
    ckpt.write_bytes(b"first")
    recorded = {"store": None, "init": checkpoint_fingerprint(ckpt)}
    assert changed_inputs(recorded, None, ckpt) == []
    ckpt.write_bytes(b"second version")
    (msg,) = changed_inputs(recorded, None, ckpt)
    assert "--init checkpoint" in msg and str(ckpt) in msg
    assert store_fingerprint(tmp_path) is None  # not a store: nothing to compare


def test_benchmark_reuse_checks_inputs_and_results(finished, tmp_path) -> None:
    from medssl.benchmark import _check_reuse
    from medssl.config import FinetuneConfig, config_from_dict
    from medssl.engine.rundir import bind_run_dir

    store = tmp_path / "store"
    shutil.copytree(finished[0], store)
    run = _copy_run(finished, tmp_path / "run", store)
    cfg = config_from_dict(FinetuneConfig, yaml.safe_load((run / "config.yaml").read_text()))
    _check_reuse(bind_run_dir(run, cfg, "finetune"), cfg, "finetune")  # whole and current: reused
    (run / "metrics.csv").write_text((run / "metrics.csv").read_text()[:-30])
    with pytest.raises(DataError, match=r"cannot be reused: .*metrics.csv.*medssl evaluate"):
        _check_reuse(bind_run_dir(run, cfg, "finetune"), cfg, "finetune")
    shutil.copy(finished[1] / "metrics.csv", run / "metrics.csv")
    (store / "slices.csv").write_text((store / "slices.csv").read_text() + "\n")
    with pytest.raises(ConfigError, match="changed since this run.*delete that run folder"):
        _check_reuse(bind_run_dir(run, cfg, "finetune"), cfg, "finetune")


# ------------------------------------------------------------------------------ 2. validated result files


CORRUPTIONS = {
    "cut mid-row": lambda t: t[: t.rindex(",") - 3],
    "empty": lambda t: "",
    "binary": lambda t: "\x00\x01\x02garbage\xff",
    "a case missing": lambda t: "\n".join(t.splitlines()[:-2]) + "\n",
    "not a number": lambda t: t.replace(t.splitlines()[1].split(",")[3], "abc", 1),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupt_metrics_csv_named_and_left_out(finished, tmp_path, capsys, kind) -> None:
    from medssl.reporting.runfiles import read_run_files

    good = _copy_run(finished, tmp_path / "good")
    bad = _copy_run(finished, tmp_path / "bad")
    info = json.loads((bad / "run.json").read_text())
    (bad / "run.json").write_text(json.dumps({**info, "seed": 99}))  # another cell of the grid
    p = bad / "metrics.csv"
    text = p.read_text()
    p.write_bytes(CORRUPTIONS[kind](text).encode("utf-8", "surrogateescape"))
    with pytest.raises(DataError) as e:
        read_run_files(bad)
    assert str(e.value).startswith(str(p)) and "\n" not in str(e.value)
    read_run_files(good)
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "rep")]) == 0
    err = capsys.readouterr().err
    warn = [line for line in err.splitlines() if line.startswith("medssl: warning: left out of the report")]
    assert len(warn) == 1 and str(p) in warn[0], err


def test_rerun_of_a_finished_run_with_damaged_results(finished, tmp_path, capsys) -> None:
    run = _copy_run(finished, tmp_path / "r")
    (run / "summary.json").write_text("[1, 2]")
    line = _usage_error(capsys, _ft(finished[0], run))
    assert str(run / "summary.json") in line and f"medssl evaluate {run}" in line
    assert main(["evaluate", str(run)]) == 0  # rewrites the results from the saved predictions
    assert main(_ft(finished[0], run)) == 0
    assert "finished run with the same configuration" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["summary.json", "run.json", "splits.json"])
def test_corrupt_json_files_named(finished, tmp_path, name) -> None:
    from medssl.reporting.runfiles import run_files_problem

    run = _copy_run(finished, tmp_path / "r")
    (run / name).write_text((run / name).read_text()[:20])
    problem = run_files_problem(run)
    assert problem is not None and problem.startswith(str(run / name)) and "not valid JSON" in problem


def test_binary_reference_csv_is_a_usage_error(finished, tmp_path, capsys) -> None:
    ref = tmp_path / "ref.csv"
    ref.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    line = _usage_error(capsys, ["report", str(finished[1]), "--out", str(tmp_path / "o"), "--reference", str(ref)])
    assert str(ref) in line and not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------- 3. method settings


@pytest.mark.parametrize(
    "method, setting, fragment",
    [
        ("supercl", "method_args.temperature=-0.5", "method_args.temperature of supercl: must be > 0"),
        ("supercl", "method_args.temperature=0", "must be > 0"),
        ("macl", "method_args.delta=-0.1", "method_args.delta of macl: must be in (0, 1]"),
        ("pcl", "method_args.delta=2", "must be in (0, 1]"),
        ("byol", "method_args.base_momentum=1.5", "must be in [0, 1]"),
        ("macl", "method_args.weights=[0,0,0]", "three loss weights"),
        ("moco", "method_args.out_dim=2.5", "expected an integer"),
    ],
)
def test_method_arguments_have_meaning_checks(finished, tmp_path, capsys, method, setting, fragment) -> None:
    out = tmp_path / "pre"
    line = _usage_error(capsys, _pre(finished[0], out, "--method", method, "--set", setting))
    assert fragment in line
    assert not out.exists()  # refused before the run folder is created


def test_every_numeric_method_argument_declares_a_range() -> None:
    from medssl.methods.arg_checks import numeric_args_without_range
    from medssl.methods.catalog import load_all_methods
    from medssl.registry import METHODS

    load_all_methods()
    missing = {n: numeric_args_without_range(n, METHODS.get(n)) for n in METHODS.names("*")}
    assert not any(missing.values()), missing


@pytest.mark.parametrize(
    "freeze, fragment",
    [("[encoder,decoder,head]", "nothing would train"), ("[stem]", "no part 'stem'"), ("[encoder,encoder]", "twice")],
)
def test_freeze_checked_against_the_model(finished, tmp_path, capsys, freeze, fragment) -> None:
    line = _usage_error(capsys, _ft(finished[0], tmp_path / "r", "--set", f"freeze={freeze}"))
    assert fragment in line and not (tmp_path / "r").exists()


def test_init_parts_checked_against_the_checkpoint() -> None:
    from medssl.run_checks import check_init_parts

    check_init_parts(["encoder"], ("encoder", "decoder"), "macl.pt", "macl")
    check_init_parts(["decoder"], None, "ref.pt", None)  # a checkpoint that declares nothing: loading decides
    with pytest.raises(ConfigError, match=r"pre-trained only encoder \(simclr\): it has no decoder"):
        check_init_parts(["encoder", "decoder"], ("encoder",), "pt/pretrain.pt", "simclr")


def test_frozen_random_encoder_warns() -> None:
    from types import SimpleNamespace

    from medssl.run_checks import warn_frozen_random

    said: list[str] = []
    warn_frozen_random(SimpleNamespace(freeze=["encoder"], init=None), (), said.append)
    assert len(said) == 1 and "encoder frozen but not pre-trained" in said[0]
    said.clear()
    warn_frozen_random(SimpleNamespace(freeze=["encoder"], init="x.pt"), ("encoder",), said.append)
    assert said == []


def test_memory_estimate_refuses_a_run_that_cannot_fit(finished, tmp_path, capsys) -> None:
    from medssl.run_checks import estimate_training_bytes

    line = _usage_error(capsys, _ft(finished[0], tmp_path / "r", "--image-size", "8192"))
    assert "GB (estimate)" in line and "--image-size" in line and not (tmp_path / "r").exists()
    small = estimate_training_bytes(128, 16, 32)
    assert 1e9 < small < 3e9  # bench_memory_estimate.txt: 0.39 GB measured at 128 px, batch 4, width 32
    assert estimate_training_bytes(256, 16, 32) > 3 * small


# ------------------------------------------------------------------------ 4. usage errors, closed pipes


def test_input_problems_are_usage_errors(finished, tmp_path, capsys, monkeypatch) -> None:
    store = finished[0]
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    assert "not a text file" in _usage_error(capsys, ["finetune", "--config", str(binary)])
    assert "is a folder" in _usage_error(capsys, ["finetune", "--config", str(tmp_path)])
    assert "--seed" in _usage_error(capsys, ["figure", str(store), "--seed", "-1", "--out", str(tmp_path / "f.png")])
    assert "is a folder" in _usage_error(capsys, ["figure", str(store), "--out", str(tmp_path)])
    monkeypatch.setenv("MEDSSL_PROGRESS", "sometimes")
    assert "MEDSSL_PROGRESS" in _usage_error(capsys, _ft(store, tmp_path / "p"))
    monkeypatch.delenv("MEDSSL_PROGRESS")
    assert not (tmp_path / "p").exists()
    line = _usage_error(capsys, _ft(store, tmp_path / "v", "--set", "data.val_fraction=0"))
    assert "data.val_fraction" in line and "validation" in line
    pre = ["pretrain", "--method", "supercl", "--data", str(store), "--out", str(tmp_path / "sp"), "--max-steps", "1"]
    line = _usage_error(capsys, [*pre, "--image-size", "32", "--set", "superpixels.foo=1"])
    assert line.startswith("medssl: error: superpixels.foo: unknown setting") and "n_segments" in line
    (tmp_path / "a_file").write_text("x")
    assert "give a folder for the demo" in _usage_error(capsys, ["demo", "--out", str(tmp_path / "a_file")])


def test_label_beyond_the_classes_names_the_case(finished, tmp_path, capsys) -> None:
    store = tmp_path / "store"
    shutil.copytree(finished[0], store)
    lab_path = sorted((store / "labels").glob("*.npy"))[0]
    lab = np.load(lab_path)
    lab.flat[0] = 7
    np.save(lab_path, lab)
    line = _usage_error(capsys, _ft(store, tmp_path / "r"))
    assert str(lab_path) in line and "label value 7" in line


def test_truncated_resume_checkpoint_is_named(finished, tmp_path, capsys) -> None:
    run = _copy_run(finished, tmp_path / "r")
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "status": "running"}))  # an interrupted run
    ckpt = run / "checkpoint_latest.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    line = _usage_error(capsys, _ft(finished[0], run))
    assert str(ckpt) in line and "--no-resume" in line


class _ClosedPipe(io.StringIO):
    def write(self, s: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("argv", [["datasets", "-v"], ["-v", "datasets", "-v"], ["methods"]])
def test_closed_pipe_exits_quietly(monkeypatch, capsys, argv) -> None:
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(argv) == 0
    assert capsys.readouterr().err == ""


def test_datasets_v_shows_layouts_not_tracebacks(capsys) -> None:
    assert main(["datasets", "-v"]) == 0
    assert "classes:" in capsys.readouterr().out


# -------------------------------------------------------------------------------- 5. evaluate and report


def _nii(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr.astype(np.uint8), np.eye(4)), str(path))


def _label_folders(tmp_path: Path, pred_fn) -> tuple[Path, Path]:
    for i in range(3):
        lab = np.zeros((24, 24, 5), np.uint8)
        lab[3:9, 3:9, 1:4] = 1
        lab[12:20, 12:20, 1:4] = 2
        _nii(tmp_path / "gt" / f"c{i}.nii.gz", lab)
        _nii(tmp_path / "pred" / f"c{i}.nii.gz", pred_fn(lab.copy()))
    return tmp_path / "pred", tmp_path / "gt"


def test_evaluate_options_are_not_ignored(finished, tmp_path, capsys) -> None:
    pred, gt = _label_folders(tmp_path, lambda lab: lab)
    for extra in (["--out", str(tmp_path / "o")], ["--pred", str(pred), "--gt", str(gt)]):
        line = _usage_error(capsys, ["evaluate", str(finished[1]), *extra])
        assert "cannot be combined with a RUN folder" in line
    (tmp_path / "file").write_text("x")
    assert "exists and is not a folder" in _usage_error(
        capsys, ["evaluate", "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "file")]
    )


def test_unknown_predicted_label_is_flagged(tmp_path, capsys) -> None:
    def extra_class(lab):
        lab[0, 0, 0] = 3
        return lab

    pred, gt = _label_folders(tmp_path, extra_class)
    line = _usage_error(capsys, ["evaluate", "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "o")])
    assert "label value 3 not in the classes 0..2" in line and "prediction" in line


def test_class_missed_everywhere_is_counted_in_the_mean_row(tmp_path, capsys) -> None:
    def miss_class_2(lab):
        lab[lab == 2] = 0
        return lab

    pred, gt = _label_folders(tmp_path, miss_class_2)
    assert main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    mean = next(line for line in out.splitlines() if line.startswith("mean"))
    assert mean.split()[-1] == "3"  # no distance: 3 case/class pairs, not 0
    assert "missed: 3 of 6 case/class pairs" in out and "missed in every case: class_2" in out
    doc = json.loads((tmp_path / "o" / "summary.json").read_text())
    mean_row = next(r for r in doc["summary"] if r["class_name"] == "mean")
    assert mean_row["n_missed"] == 3 and mean_row["missed_everywhere"] == ["class_2"]


# ----------------------------------------------------------------------------------- 6. misleading words


def test_benchmark_set_key_and_dry_run_wording(finished, tmp_path, capsys) -> None:
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        yaml.safe_dump(
            {
                "methods": ["scratch"],
                "datasets": [{"name": "h", "dataset": "msd", "src": str(tmp_path / "nowhere")}],
                "labels": ["1"],
            }
        )
    )
    line = _usage_error(capsys, ["benchmark", "--config", str(grid), "--out", str(tmp_path / "b"), "--set", "foo=1"])
    assert line.startswith("medssl: error: --set foo") and str(grid) not in line
    grid.write_text(yaml.safe_dump({"methods": ["scratch"], "datasets": [{"name": "h", "prepared": str(finished[0])}]}))
    assert main(["benchmark", "--config", str(grid), "--out", str(tmp_path / "b"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "cells of the grid are valid" in out and "checked once prepared" not in out  # splits were checked
    synthetic = {"name": "s", "dataset": "synthetic", "src": "builtin"}
    grid.write_text(yaml.safe_dump({"methods": ["scratch"], "datasets": [synthetic]}))
    assert main(["benchmark", "--config", str(grid), "--out", str(tmp_path / "b2"), "--dry-run"]) == 0
    assert "the splits (label counts vs patients) of s are checked once prepared" in capsys.readouterr().out


def test_partial_checkpoint_hint_does_not_blame_matching_settings(finished, tmp_path) -> None:
    import torch

    from medssl.config import ModelCfg
    from medssl.models.checkpoint import load_pretrained
    from medssl.models.factory import create_model

    model = create_model(ModelCfg(base_width=4), 3)
    state = {k: v for k, v in model.state_dict().items() if k.startswith("encoder.")}
    state.pop(next(iter(state)))
    ckpt = tmp_path / "pretrain.pt"
    torch.save(
        {
            "format": "medssl-pretrain",
            "method": "simclr",
            "pretrains": ["encoder"],
            "state_dict": state,
            "model": {"base_width": 4, "depth": 4, "in_channels": 1},
        },
        ckpt,
    )
    with pytest.raises(DataError) as e:
        load_pretrained(create_model(ModelCfg(base_width=4), 3), ckpt)
    assert "match this model" in str(e.value) and "--set model.base_width" not in str(e.value)


def test_superpixel_cache_is_announced_and_read_only_store_refused(tmp_path, monkeypatch) -> None:
    import os

    from medssl.run_checks import superpixel_cache_notice

    cache = tmp_path / "cache" / "tag"
    assert "writing" in superpixel_cache_notice(tmp_path, cache) and str(cache) in superpixel_cache_notice(
        tmp_path, cache
    )
    monkeypatch.setattr(os, "access", lambda p, mode: False)
    with pytest.raises(ConfigError, match=r"not writable.*superpixels.mode=online"):
        superpixel_cache_notice(tmp_path, cache)
