"""The command line as a new user meets it: help everywhere, one-line errors naming the file."""

from __future__ import annotations

import gzip
import json

import nibabel as nib
import numpy as np
import pytest

from medssl.cli.main import build_parser, main

COMMANDS = [
    "datasets",
    "methods",
    "prepare",
    "pretrain",
    "finetune",
    "evaluate",
    "report",
    "benchmark",
    "demo",
    "figure",
    "predict",
    "export",
]


def test_help_of_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    top = capsys.readouterr().out
    for cmd in COMMANDS:
        assert cmd in top
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        text = capsys.readouterr().out
        assert "usage: medssl " + cmd in text and len(text.splitlines()) > 3


def test_training_commands_share_the_flags():
    parser = build_parser()
    for cmd in ("pretrain", "finetune"):
        a = parser.parse_args(
            [
                cmd,
                "--epochs",
                "2",
                "--max-steps",
                "3",
                "--batch-size",
                "4",
                "--image-size",
                "64",
                "--device",
                "cpu",
                "--set",
                "optim.lr=0.1",
                "--config",
                "x.yaml",
            ]
        )
        assert (a.epochs, a.max_steps, a.batch_size, a.image_size, a.device, a.overrides, a.config) == (
            2,
            3,
            4,
            64,
            "cpu",
            ["optim.lr=0.1"],
            "x.yaml",
        )


def test_lists(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in ("supercl", "macl", "simclr", "dira", "gcl"):
        assert name in out
    assert "encoder+decoder" in out
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in (
        "acdc",
        "acdc-h5",
        "mmwhs",
        "hvsmr",
        "chaos",
        "chaos-nifti",
        "msd",
        "mscmrseg",
        "isic2018",
        "nifti-folder",
        "synthetic",
    ):
        assert f"\n{name} " in "\n" + out


def _one_line_error(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert err[-1].startswith("medssl: error: ") and "Traceback" not in "\n".join(err)
    return err[-1]


def _nii(path, arr, spacing=(1.0, 1.0, 1.0)):
    nib.save(nib.Nifti1Image(arr, np.diag([*spacing, 1.0])), str(path))


def _folder(tmp_path, label_fn=None, image_fn=None):
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(3):
        img = np.random.default_rng(i).normal(size=(16, 16, 4)).astype(np.float32)
        lab = np.zeros((16, 16, 4), np.uint8)
        lab[4:10, 4:10, 1:3] = 1
        if image_fn:
            img = image_fn(i, img)
        if label_fn:
            lab = label_fn(i, lab)
        _nii(root / "images" / f"case{i}.nii.gz", img)
        _nii(root / "labels" / f"case{i}.nii.gz", lab)
    return root


def test_wrong_path(capsys, tmp_path):
    line = _one_line_error(capsys, ["prepare", "msd", str(tmp_path / "nope"), str(tmp_path / "out")])
    assert str(tmp_path / "nope") in line
    line = _one_line_error(capsys, ["finetune", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r")])
    assert "nope" in line and "prepare" in line


def test_shape_mismatch_unknown_label_and_corrupt_file(capsys, tmp_path):
    root = _folder(tmp_path / "a", label_fn=lambda i, lab: lab[:, :12] if i == 1 else lab)
    line = _one_line_error(
        capsys, ["prepare", "nifti-folder", str(root), str(tmp_path / "o1"), "--option", "class_names=[bg,fg]"]
    )
    assert "problem" in line
    capsys.readouterr()
    root = _folder(tmp_path / "b", label_fn=lambda i, lab: np.where(lab > 0, 7, 0).astype(np.uint8) if i == 2 else lab)
    code = main(["prepare", "nifti-folder", str(root), str(tmp_path / "o2"), "--option", "class_names=[bg,fg]"])
    err = capsys.readouterr().err
    assert code == 2 and "case2" in err and "7" in err
    root = _folder(tmp_path / "c")
    bad = root / "images" / "case0.nii.gz"
    bad.write_bytes(gzip.compress(b"not a nifti file at all")[:20])
    code = main(["prepare", "nifti-folder", str(root), str(tmp_path / "o3"), "--option", "class_names=[bg,fg]"])
    err = capsys.readouterr().err
    assert code == 2 and str(bad) in err
    # --skip-bad prepares the rest and records what was skipped
    assert (
        main(
            [
                "prepare",
                "nifti-folder",
                str(root),
                str(tmp_path / "o4"),
                "--option",
                "class_names=[bg,fg]",
                "--skip-bad",
                "--no-progress",
            ]
        )
        == 0
    )
    skipped = json.loads((tmp_path / "o4" / "skipped.json").read_text())
    assert [s["case_id"] for s in skipped] == ["case0"]


def test_bad_setting_is_one_line(capsys, synthetic_store, tmp_path):
    line = _one_line_error(
        capsys, ["finetune", "--data", str(synthetic_store), "--out", str(tmp_path / "r"), "--set", "optim.lrr=1"]
    )
    assert "optim.lrr" in line
    line = _one_line_error(
        capsys, ["pretrain", "--method", "nosuch", "--data", str(synthetic_store), "--out", str(tmp_path / "p")]
    )
    assert "nosuch" in line and "supercl" in line


# --------------------------------------------------------------------------------------------------
# Issue 16: every bad value refused up front (one line, exit 2, nothing written); run folders bound to
# their configuration; pre-trained weights that do not fit refused; one exit-code convention.

TINY = ["--device", "cpu", "--workers", "0", "--no-progress", "--image-size", "32", "--set", "model.base_width=4"]


def _ft(store, out, *extra):
    return ["finetune", "--data", str(store), "--out", str(out), *TINY, "--epochs", "1", "--max-steps", "1", *extra]


def _pre(store, out, *extra):
    return ["pretrain", "--data", str(store), "--out", str(out), *TINY, "--epochs", "1", "--max-steps", "1", *extra]


BAD_TRAINING = [
    (["--batch-size", "0"], "data.batch_size: must be >= 1, got 0"),
    (["--lr", "-1"], "optim.lr: must be > 0"),
    (["--set", "model.base_width=0"], "model.base_width: must be >= 1"),
    (["--set", "train.seed=-1"], "train.seed: must be in [0, 4294967295]"),
    (["--workers", "-1"], "data.num_workers: must be >= 0"),
    (["--device", "tpu"], "train.device: expected auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
    (["--epochs", "0"], "train.epochs: must be >= 1, got 0"),
    (["--epochs", "-1"], "train.epochs: must be >= 1, got -1"),
    (["--max-steps", "0"], "train.max_steps: must be >= 1, got 0"),
    (["--labels", "-3"], "data.labels: '-3' is negative"),
    (["--labels", "150%"], "must be in (0%, 100%]"),
    (["--labels", "2.0"], "(for 2 patients write 2)"),
    (
        ["--labels", "50"],
        "data.labels: 50 labelled patients asked, but only 4 are left for training (6 labelled patients: 1 test, 1 validation)",
    ),
    (["--labels", "8"], "data.labels: 8 labelled patients asked, but only 4 are left"),
    (["--set", "data.val_fraction=1.5"], "data.val_fraction: must be in [0, 1), got 1.5"),
    (["--set", "optim.warmup_steps=-1"], "optim.warmup_steps: must be >= 0"),
    (["--set", "optim.momentum=1"], "optim.momentum: must be in [0, 1)"),
    (["--image-size", "40"], "data.image_size: 40 must be a multiple of 16"),
    (["--set", "loss=focal"], "loss: expected one of ce, dice, dicece, got 'focal'"),
    (["--init", "nowhere_at_all"], "nowhere_at_all: checkpoint not found"),
]


@pytest.mark.parametrize("extra,fragment", BAD_TRAINING, ids=[" ".join(e) for e, _ in BAD_TRAINING])
def test_bad_finetune_values_are_one_line_and_write_nothing(capsys, synthetic_store, tmp_path, extra, fragment):
    out = tmp_path / "run"
    line = _one_line_error(capsys, _ft(synthetic_store, out, *extra))
    assert fragment in line, line
    assert not out.exists()  # nothing written before the run is known to be valid


BAD_PRETRAINING = [
    (["--method", "supercl", "--batch-size", "1"], "data.batch_size: supercl needs at least 2 images per batch"),
    (["--method", "simclr", "--batch-size", "1"], "data.batch_size: simclr needs at least 2"),
    (["--method", "byol", "--batch-size", "1"], "data.batch_size: byol needs at least 2"),
    (
        ["--method", "simclr", "--set", "method_args.temp=0.2"],
        "method_args.temp: not an argument of simclr; its arguments: out_dim, hidden_dim, temperature",
    ),
    (["--method", "nosuch", "--variant", "paper"], "unknown method 'nosuch'"),
    (["--method", "macl", "--variant", "nosuch"], "variant: method 'macl' has no variant 'nosuch' (known: paper)"),
    (["--method", "simclr", "--batch-size", "500"], "data.batch_size: 500 is larger than the 96 slices"),
]


@pytest.mark.parametrize("extra,fragment", BAD_PRETRAINING, ids=[" ".join(e) for e, _ in BAD_PRETRAINING])
def test_bad_pretrain_values_are_one_line_and_write_nothing(capsys, synthetic_store, tmp_path, extra, fragment):
    out = tmp_path / "pre"
    line = _one_line_error(capsys, _pre(synthetic_store, out, *extra))
    assert fragment in line, line
    assert not out.exists()


def test_missing_store_and_bad_config_files(capsys, tmp_path):
    line = _one_line_error(capsys, ["finetune", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")])
    assert "nowhere: no such folder" in line
    as_list = tmp_path / "list.yaml"
    as_list.write_text("- a\n- b\n")
    line = _one_line_error(capsys, ["finetune", "--config", str(as_list), "--data", str(tmp_path)])
    assert "list.yaml: expected a mapping of settings (key: value) at the top level, got a list" in line
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [\n")
    assert "broken.yaml: not valid YAML" in _one_line_error(capsys, ["finetune", "--config", str(broken)])
    assert "broken.yaml: not valid YAML" in _one_line_error(
        capsys, ["benchmark", "--config", str(broken), "--out", str(tmp_path / "b"), "--dry-run"]
    )
    line = _one_line_error(capsys, ["benchmark", "--config", str(as_list), "--out", str(tmp_path / "b"), "--dry-run"])
    assert "expected a mapping of grid settings at the top level, got a list" in line
    assert not (tmp_path / "b").exists()


def test_device_that_is_not_there(capsys, synthetic_store, tmp_path):
    import torch

    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    line = _one_line_error(capsys, _ft(synthetic_store, tmp_path / "r", "--device", "mps"))
    assert "train.device: 'mps' asked for but this PyTorch has no usable MPS device" in line


@pytest.mark.parametrize("spacing", ["abc", "0", "-1", "nan"])
def test_prepare_bad_spacing(capsys, tmp_path, spacing):
    line = _one_line_error(capsys, ["prepare", "synthetic", "builtin", str(tmp_path / "s"), f"--spacing={spacing}"])
    assert f"--spacing: expected a positive in-plane spacing in mm, or 'keep', got '{spacing}'" in line
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("value", ["abc", "{1: x}", "{0: -1}", "[1, 2]"])
def test_prepare_bad_label_map_documents_the_syntax(capsys, tmp_path, value):
    root = _folder(tmp_path)
    line = _one_line_error(
        capsys, ["prepare", "nifti-folder", str(root), str(tmp_path / "o"), "--option", f"label_map={value}"]
    )
    assert line.startswith("medssl: error: --option label_map: expected a mapping of raw label values to class indices")
    assert "label_map={0: 0, 205: 1, 420: 2}" in line


def test_prepare_label_map_as_documented(capsys, tmp_path):
    root = _folder(tmp_path, label_fn=lambda i, lab: (lab * 205).astype(np.uint8))
    argv = [
        "prepare",
        "nifti-folder",
        str(root),
        str(tmp_path / "o"),
        "--no-progress",
        "--option",
        "label_map={0: 0, 205: 1}",
    ]
    assert main(argv) == 0
    assert json.loads((tmp_path / "o" / "plan.json").read_text())["class_names"] == ["background", "class_1"]


def test_prepare_refuses_files_folders_and_other_stores(capsys, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    syn = ["prepare", "synthetic", "builtin"]
    small = [
        "--no-progress",
        "--option",
        "n_patients=3",
        "--option",
        "slices=4",
        "--option",
        "size=32",
        "--option",
        "frames=1",
    ]
    assert "a_file: exists and is not a folder" in _one_line_error(capsys, [*syn, str(a_file), *small])
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    line = _one_line_error(capsys, [*syn, str(busy), *small])
    assert "busy: folder is not empty and is not a prepared store (notes.txt)" in line and "--overwrite" in line
    store = tmp_path / "store"
    assert main([*syn, str(store), *small]) == 0
    assert main([*syn, str(store), *small]) == 0  # the same plan: continued / reused
    line = _one_line_error(capsys, [*syn, str(store), *small[:-2], "--option", "frames=2"])
    assert "holds a prepared store of another dataset or settings (reader_options:" in line and "--overwrite" in line
    assert len(list((store / "images").glob("*.npy"))) == 3  # untouched
    # --overwrite replaces the store: no orphaned arrays of the previous one
    (store / "images" / "orphan_from_before.npy").write_bytes(b"x")
    assert main([*syn, str(store), *small[:-2], "--option", "frames=2", "--overwrite"]) == 0
    names = sorted(p.name for p in (store / "images").glob("*.npy"))
    assert len(names) == 6 and "orphan_from_before.npy" not in names
    capsys.readouterr()
    assert main([*syn, str(tmp_path / "sp"), *small, "--spacing", "0.75"]) == 0
    out = capsys.readouterr().out
    assert "source:   median shape" in out and "prepared: median shape [4, 64, 64], median spacing [" in out
    assert "(spacing: in-plane 0.75 mm)" in out


def test_evaluate_bad_labels_and_pretraining_runs(capsys, tmp_path):
    line = _one_line_error(capsys, ["evaluate", "--pred", str(tmp_path), "--gt", str(tmp_path), "--labels", "bg"])
    assert "--labels: give the class names, background first and at least one foreground class" in line
    pre = tmp_path / "pre"
    pre.mkdir()
    (pre / "run.json").write_text(json.dumps({"kind": "pretrain", "status": "done"}))
    assert "pre: is a pre-training run: it has no predictions to evaluate" in _one_line_error(
        capsys, ["evaluate", str(pre)]
    )
    assert "no such run folder" in _one_line_error(capsys, ["evaluate", str(tmp_path / "nothing")])
    assert "give a fine-tuning RUN folder, or both --pred DIR and --gt DIR" in _one_line_error(capsys, ["evaluate"])


@pytest.mark.parametrize(
    "argv,fragment",
    [
        (["-n", "0"], "-n: the number of slices must be in 1..32, got 0"),
        (["-n", "-2"], "-n: the number of slices must be in 1..32, got -2"),
        (["--out", "f.xyz"], "f.xyz: cannot write a figure in format 'xyz'; use one of"),
    ],
)
def test_figure_bad_values(capsys, synthetic_store, tmp_path, monkeypatch, argv, fragment):
    monkeypatch.chdir(tmp_path)
    assert fragment in _one_line_error(capsys, ["figure", str(synthetic_store), *argv])
    assert not list(tmp_path.iterdir())


def test_exit_codes_usage_2_failure_1_interrupted_130(capsys, monkeypatch, tmp_path):
    from medssl.cli import main as cli
    from medssl.errors import TrainingError

    def fails(a):
        raise TrainingError("non-finite loss at step 3")

    def bug(a):
        raise ValueError("something\nunexpected")

    def stops(a):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_methods", fails)
    assert main(["methods"]) == 1
    assert capsys.readouterr().err.strip() == "medssl: error: non-finite loss at step 3"
    monkeypatch.setattr(cli, "cmd_methods", bug)
    assert main(["methods"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("medssl: error: internal error (ValueError: something unexpected)") and "\n" not in err
    monkeypatch.setattr(cli, "cmd_prepare", stops)
    assert main(["prepare", "synthetic", "builtin", str(tmp_path / "s")]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "epoch" not in err and "cases already written are kept" in err
    monkeypatch.undo()
    with pytest.raises(SystemExit) as e:  # argparse's own usage errors
        main(["finetune", "--epochs", "many"])
    assert e.value.code == 2
    capsys.readouterr()
    assert "--option expects key=value" in _one_line_error(
        capsys, ["prepare", "synthetic", "builtin", str(tmp_path / "s"), "--option", "oops"]
    )


def _files(run):
    return {n: (run / n).read_bytes() for n in ("config.yaml", "run.json", "splits.json")}


def test_run_folder_is_bound_to_its_configuration(capsys, synthetic_store, tmp_path):
    run = tmp_path / "ft"
    assert main(_ft(synthetic_store, run, "--labels", "1")) == 0
    split = json.loads((run / "splits.json").read_text())
    assert split["labels"] == "1" and len(split["train"]) == 2  # one patient (two frames), not 100%
    before = _files(run)
    capsys.readouterr()
    # the same configuration (where it runs may differ): the results, nothing rewritten
    assert main(_ft(synthetic_store, run, "--labels", "1", "--workers", "1", "--device", "auto")) == 0
    out = capsys.readouterr().out
    assert "finished run with the same configuration" in out and "mean" in out
    assert _files(run) == before
    # another configuration: refused, naming the fields, nothing rewritten
    line = _one_line_error(capsys, _ft(synthetic_store, run, "--labels", "2", "--set", "optim.lr=0.01"))
    assert (
        "holds a fine-tuning run with another configuration (data.labels: '1' -> '2'; optim.lr: 0.001 -> 0.01)" in line
    )  # the standard recipe's lr
    assert "--no-resume" in line
    assert _files(run) == before
    line = _one_line_error(capsys, _ft(synthetic_store, run, "--labels", "1", "--set", "model.base_width=8"))
    assert "model.base_width: 4 -> 8" in line and _files(run) == before
    # another kind of run, or a folder of other files: refused
    line = _one_line_error(capsys, _pre(synthetic_store, run, "--method", "simclr", "--batch-size", "4"))
    assert "holds a fine-tuning run; give another folder (--out) for this pre-training run" in line
    # --no-resume starts over, replacing the previous run's files
    (run / "predictions" / "stale_case.npy").write_bytes(b"x")
    assert main(_ft(synthetic_store, run, "--labels", "2", "--no-resume")) == 0
    assert json.loads((run / "splits.json").read_text())["labels"] == "2"
    assert not (run / "predictions" / "stale_case.npy").exists()
    assert len((run / "log.csv").read_text().strip().splitlines()) == 2  # header + one epoch, not appended


def test_a_run_folder_another_process_writes_is_refused_not_written_into(capsys, synthetic_store, tmp_path):
    import os

    from medssl.utils.locks import try_lock

    run = tmp_path / "ft"
    held = try_lock(run)  # as another `medssl finetune --out ft` would (a second flock on it fails)
    assert held
    for argv in (_ft(synthetic_store, run, "--labels", "1"), _pre(synthetic_store, run, "--method", "simclr")):
        line = _one_line_error(capsys, argv)
        assert line == (
            f"medssl: error: {run}: another process is writing this run folder (pid {os.getpid()}); "
            "wait for it to end or give another --out"
        )
    assert [p.name for p in run.iterdir()] == [".lock"]  # nothing written beside the holder's lock
    held.release()
    run.rmdir()
    _one_line_error(capsys, _ft(tmp_path / "no_store", run, "--labels", "1"))  # bad input: nothing left behind
    assert not run.exists()
    assert main(_ft(synthetic_store, run, "--labels", "1")) == 0
    assert (run / "summary.json").is_file() and not (run / ".lock").exists()  # released at the end


def test_init_parts_loads_only_the_named_parts_of_a_macl_checkpoint(capsys, synthetic_store, tmp_path):
    pre = tmp_path / "pre"
    assert main(_pre(synthetic_store, pre, "--method", "macl", "--batch-size", "4")) == 0
    capsys.readouterr()
    both = tmp_path / "both"
    assert main(_ft(synthetic_store, both, "--labels", "2", "--init", str(pre))) == 0
    assert "encoder 52/52, decoder 56/56" in capsys.readouterr().out
    enc = tmp_path / "enc"
    assert main(_ft(synthetic_store, enc, "--labels", "2", "--init", str(pre), "--set", "init_parts=[encoder]")) == 0
    out = capsys.readouterr().out
    assert "(encoder 52/52)" in out and "decoder" not in out.split("loaded", 1)[1].split("\n", 1)[0]
    assert set(json.loads((enc / "load_report.json").read_text())["per_part"]) == {"encoder"}
    line = _one_line_error(
        capsys, [*_ft(synthetic_store, tmp_path / "x", "--labels", "2"), "--set", "init_parts=[encoder]"]
    )
    assert "init_parts: set init" in line
    line = _one_line_error(
        capsys,
        [*_ft(synthetic_store, tmp_path / "y", "--labels", "2", "--init", str(pre)), "--set", "init_parts=[head]"],
    )
    assert "init_parts" in line and "encoder / decoder" in line


def test_init_from_a_pretraining_folder_and_a_checkpoint_of_another_width(capsys, synthetic_store, tmp_path):
    pre = tmp_path / "pre"
    assert main(_pre(synthetic_store, pre, "--method", "simclr", "--batch-size", "4")) == 0
    capsys.readouterr()
    # a pre-training run folder is accepted wherever a checkpoint is asked for, and the file is named
    ft = tmp_path / "ft"
    assert main(_ft(synthetic_store, ft, "--labels", "2", "--init", str(pre))) == 0
    out = capsys.readouterr().out
    assert f"from {pre / 'pretrain.pt'} [medssl, method simclr]" in out and "encoder 52/52" in out
    report = json.loads((ft / "load_report.json").read_text())
    assert report["complete"] and report["per_part"]["encoder"] == {
        "loaded": 52,
        "expected": 52,
        "missing": 0,
        "shape_mismatch": 0,
    }
    assert json.loads((ft / "run.json").read_text())["method"] == "simclr"
    # a width-4 pre-training into a width-8 model: refused, naming the mismatch and the settings
    wide = tmp_path / "wide"
    line = _one_line_error(
        capsys, [*_ft(synthetic_store, wide, "--labels", "2", "--init", str(pre)), "--set", "model.base_width=8"]
    )
    assert "pre-trained weights do not fit this model (encoder: 0 of 52 tensors loaded, 52 differ in shape" in line
    assert "encoder.stages.0.0.0.weight: checkpoint (4, 1, 3, 3) vs model (8, 1, 3, 3)" in line
    assert "the checkpoint was pre-trained with model base_width=4" in line
    assert not wide.exists()
    # a folder without a finished pre-training, and a fine-tuning run, are named as such
    (pre / "pretrain.pt").unlink()
    assert "has not finished (no pretrain.pt yet)" in _one_line_error(
        capsys, _ft(synthetic_store, tmp_path / "x", "--init", str(pre))
    )
    assert "is a fine-tuning run" in _one_line_error(capsys, _ft(synthetic_store, tmp_path / "x", "--init", str(ft)))


def test_report_marks_a_run_whose_init_did_not_load(capsys, synthetic_store, tmp_path):
    grid = tmp_path / "grid"
    ok, broken = grid / "finetune" / "scratch__s0", grid / "finetune" / "simclr__s0"
    assert main(_ft(synthetic_store, ok, "--labels", "2")) == 0
    assert main(_ft(synthetic_store, broken, "--labels", "2", "--method-name", "simclr")) == 0
    # what an old medssl wrote for a width-4 checkpoint in a width-8 model: BatchNorm counters only
    (broken / "load_report.json").write_text(
        json.dumps(
            {
                "source": "pre/pretrain.pt",
                "format": "medssl",
                "method": "simclr",
                "parts": ["encoder"],
                "loaded": ["encoder.stages.0.0.1.num_batches_tracked"],
                "missing": ["encoder.stages.0.0.0.weight"],
                "unexpected": [],
                "shape_mismatch": ["encoder.stages.0.0.0.weight: checkpoint (4, 1, 3, 3) vs model (8, 1, 3, 3)"],
            }
        )
    )
    capsys.readouterr()
    assert main(["report", str(grid)]) == 0
    results = (grid / "report" / "results.md").read_text()
    assert "ERROR: the pre-trained weights did not load" in results and "1 skipped" in results
    assert "| SimCLR |" not in results and "| Scratch |" in results


def _grid(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "name: t\nmethods: [scratch, simclr]\nlabels: ['2']\nseeds: [0]\n"
        "datasets:\n  - {name: syn, dataset: synthetic, src: builtin, prepare: {reader_options: {n_patients: 5, frames: 1, slices: 6, size: 32, seed: 0}}}\n"
        "pretrain: {data: {image_size: 32, batch_size: 4, num_workers: 0}, model: {base_width: 4}, train: {epochs: 1, max_steps: 1, device: cpu, progress: false}}\n"
        "finetune: {data: {image_size: 32, batch_size: 4, num_workers: 0}, model: {base_width: 4}, train: {epochs: 1, max_steps: 1, device: cpu, progress: false}}\n"
    )
    return grid


@pytest.mark.parametrize(
    "override,fragment",
    [
        ("methods=[scratch, nosuch]", "methods: unknown method 'nosuch'; known: scratch, byol"),
        ("colour=red", "unknown grid key 'colour'"),
        ("labels=['150%']", "labels: the fraction '150%' must be in (0%, 100%]"),
        (
            "datasets=[{name: syn, dataset: msd, src: /no/such/folder}]",
            "datasets: syn: /no/such/folder: dataset folder not found",
        ),
        ("datasets=[{name: syn, dataset: msd}]", "datasets[0] (syn): give 'dataset' and 'src'"),
        ("datasets=[{name: syn, dataset: nosuch, src: builtin}]", "nosuch"),
        ("finetune.train.epochs=0", "cell scratch__syn__2__s0: train.epochs: must be >= 1, got 0"),
        ("finetune.optim.lrr=1", "unknown setting 'optim.lrr'"),
        ("pretrain.data.batch_size=1", "pre-training of simclr on syn: data.batch_size: simclr needs at least 2"),
        ("pretrain_methods={simclr: {method_args: {temp: 1}}}", "method_args.temp: not an argument of simclr"),
        ("seeds=[-1]", "seeds must be a non-empty list of integers"),
        ("pretrain_methods={nosuch: {}}", "pretrain_methods: unknown method 'nosuch'"),
    ],
)
def test_benchmark_dry_run_validates_every_cell(capsys, tmp_path, override, fragment):
    line = _one_line_error(
        capsys,
        ["benchmark", "--config", str(_grid(tmp_path)), "--out", str(tmp_path / "b"), "--dry-run", "--set", override],
    )
    assert fragment in line, line
    assert not (tmp_path / "b").exists()


def test_benchmark_methods_narrowed_with_set_keep_other_methods_settings(capsys, tmp_path):
    # `--set methods=[scratch]` runs part of a grid whose pretrain_methods names other methods
    grid = _grid(tmp_path)
    code = main(
        [
            "benchmark",
            "--config",
            str(grid),
            "--out",
            str(tmp_path / "b"),
            "--dry-run",
            "--set",
            "methods=[scratch]",
            "--set",
            "pretrain_methods={simclr: {method_args: {temperature: 0.2}}}",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "all 1 cells of the grid are valid" in out, out


def test_benchmark_checks_splits_before_training_and_existing_runs(capsys, tmp_path):
    grid, root = _grid(tmp_path), tmp_path / "b"
    assert main(["benchmark", "--config", str(grid), "--out", str(root), "--dry-run"]) == 0
    assert "all 2 cells of the grid are valid" in capsys.readouterr().out
    # a count larger than the pool is found once the store is prepared, before any training
    line = _one_line_error(capsys, ["benchmark", "--config", str(grid), "--out", str(root), "--set", "labels=[4]"])
    assert "cell scratch__syn__4__s0: data.labels: 4 labelled patients asked, but only 3 are left" in line
    assert not (root / "finetune").exists() and not (root / "pretrain").exists()
    assert main(["benchmark", "--config", str(grid), "--out", str(root), "--no-report"]) == 0
    # a finished cell of another configuration is reported, not silently kept
    line = _one_line_error(
        capsys, ["benchmark", "--config", str(grid), "--out", str(root), "--dry-run", "--set", "finetune.optim.lr=0.01"]
    )
    assert (
        "finetune/scratch__syn__2__s0: holds a fine-tuning run with another configuration (optim.lr: 0.001 -> 0.01)"
        in line
    )  # the standard recipe's lr
    assert "change the grid back, or delete that run folder" in line
