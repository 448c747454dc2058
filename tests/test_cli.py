"""The command line as a new user meets it: help everywhere, one-line errors naming the file."""
from __future__ import annotations

import gzip
import json

import nibabel as nib
import numpy as np
import pytest

from medssl.cli.main import build_parser, main

COMMANDS = ["datasets", "methods", "prepare", "pretrain", "finetune", "evaluate", "report", "benchmark", "demo", "figure"]


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
        a = parser.parse_args([cmd, "--epochs", "2", "--max-steps", "3", "--batch-size", "4", "--image-size", "64", "--device", "cpu", "--set", "optim.lr=0.1", "--config", "x.yaml"])
        assert (a.epochs, a.max_steps, a.batch_size, a.image_size, a.device, a.overrides, a.config) == (2, 3, 4, 64, "cpu", ["optim.lr=0.1"], "x.yaml")


def test_lists(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in ("supercl", "macl", "simclr", "dira", "gcl"):
        assert name in out
    assert "encoder+decoder" in out
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("acdc", "acdc-h5", "mmwhs", "hvsmr", "chaos", "chaos-nifti", "msd", "mscmrseg", "isic2018", "nifti-folder", "synthetic"):
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
    line = _one_line_error(capsys, ["prepare", "nifti-folder", str(root), str(tmp_path / "o1"), "--option", "class_names=[bg,fg]"])
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
    assert main(["prepare", "nifti-folder", str(root), str(tmp_path / "o4"), "--option", "class_names=[bg,fg]", "--skip-bad", "--no-progress"]) == 0
    skipped = json.loads((tmp_path / "o4" / "skipped.json").read_text())
    assert [s["case_id"] for s in skipped] == ["case0"]


def test_bad_setting_is_one_line(capsys, synthetic_store, tmp_path):
    line = _one_line_error(capsys, ["finetune", "--data", str(synthetic_store), "--out", str(tmp_path / "r"), "--set", "optim.lrr=1"])
    assert "optim.lrr" in line
    line = _one_line_error(capsys, ["pretrain", "--method", "nosuch", "--data", str(synthetic_store), "--out", str(tmp_path / "p")])
    assert "nosuch" in line and "supercl" in line
