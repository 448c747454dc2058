"""Data without a voxel spacing (the semi-supervised ACDC HDF5 layout): said on the console, in
fingerprint.json and in every summary; HD95/ASD labelled as voxels; resampling to mm refused."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from medssl.cli.main import main
from medssl.data.store import SliceStore, prepare
from medssl.errors import DataError

NOTE = "spacing unknown: distances in voxels"


def _acdc_h5(root: Path, n_patients: int = 8, slices: int = 4, size: int = 32) -> Path:
    """Volume files ``data/patientNNN_frame01.h5`` (image, label), as the HDF5 layout stores them."""
    g = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for p in range(1, n_patients + 1):
        r = 5 + p % 3
        disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= r * r).astype(np.uint8)
        label = np.stack([disc * (1 + z % 3) for z in range(slices)])
        image = (label * 0.3 + g.normal(0, 0.05, label.shape)).astype(np.float32)
        (root / "data").mkdir(parents=True, exist_ok=True)
        with h5py.File(root / "data" / f"patient{p:03d}_frame01.h5", "w") as fh:
            fh["image"], fh["label"] = image, label
    return root


@pytest.fixture(scope="module")
def h5_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _acdc_h5(tmp_path_factory.mktemp("acdc_h5"))


def test_prepare_records_and_warns(h5_src: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match=NOTE):
        res = prepare("acdc-h5", h5_src, tmp_path / "p", progress=False)
    fp = json.loads((tmp_path / "p" / "fingerprint.json").read_text())
    assert fp["spacing_known"] is False and fp["distance_unit"] == "voxels"
    assert fp["notes"] == [f"{NOTE} (8 of 8 cases store no voxel spacing; HD95/ASD/ASSD are reported in voxels)"]
    assert all(c["spacing_known"] is False for c in fp["cases"]) and res.fingerprint["notes"] == fp["notes"]
    assert SliceStore(tmp_path / "p").spacing_known is False


def test_known_spacing_is_quiet(synthetic_store: Path, tmp_path: Path) -> None:
    fp = json.loads((synthetic_store / "fingerprint.json").read_text())
    assert fp["spacing_known"] is True and fp["distance_unit"] == "mm" and fp["notes"] == []
    assert SliceStore(synthetic_store).spacing_known is True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prepare(
            "synthetic",
            "builtin",
            tmp_path / "s",
            progress=False,
            reader_options=dict(n_patients=2, frames=1, slices=3, size=16),
        )


def test_resampling_without_a_spacing_is_refused(h5_src: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="acdc-h5 stores no voxel spacing, so it cannot be resampled to 2.0 mm"):
        prepare("acdc-h5", h5_src, tmp_path / "p", target_spacing=2.0, progress=False)
    assert not (tmp_path / "p" / "plan.json").exists()


def test_cli_prepare_says_it_and_refuses_spacing(
    h5_src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prepare", "acdc-h5", str(h5_src), str(tmp_path / "p"), "--no-progress"]) == 0
    assert f"{NOTE} (8 of 8 cases" in capsys.readouterr().out
    assert main(["prepare", "acdc-h5", str(h5_src), str(tmp_path / "q"), "--spacing", "2.0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"medssl: error: {h5_src}: acdc-h5 stores no voxel spacing, so it cannot be resampled to 2.0 mm; "
        "prepare it with --spacing keep (the default): distances are then in voxels"
    )


def test_cli_finetune_and_evaluate_label_distances_in_voxels(
    h5_src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "p"
    assert main(["prepare", "acdc-h5", str(h5_src), str(store), "--no-progress"]) == 0
    run = tmp_path / "ft"
    assert (
        main(
            [
                "finetune",
                "--data",
                str(store),
                "--labels",
                "2",
                "--out",
                str(run),
                "--epochs",
                "1",
                "--max-steps",
                "2",
                "--batch-size",
                "4",
                "--image-size",
                "32",
                "--device",
                "cpu",
                "--set",
                "model.base_width=4",
                "--set",
                "data.num_workers=0",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "HD95 (voxels)" in out and "ASD (voxels)" in out and NOTE in out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["spacing_known"] is False and summary["distance_unit"] == "voxels" and summary["notes"] == [NOTE]
    assert NOTE in (run / "summary.md").read_text()
    assert main(["evaluate", str(run)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert "HD95 (voxels)" in printed[0] and printed[-1] == NOTE
