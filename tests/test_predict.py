"""``medssl predict`` on real scans: the round trip (predict on the raw test images == the run's own
evaluation), geometry kept exactly (rotated, LPS, flipped, anisotropic inputs), ensembles and TTA.

Runs are tiny (a few steps at small widths): the point is geometry exactness, not accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import shared_data_dir

from medssl.cli.main import main
from medssl.config import DataCfg, FinetuneConfig, ModelCfg, TrainCfg
from medssl.finetune import finetune

MSCMRSEG_RAW = {0: 0, 200: 1, 500: 2, 600: 3}


def tiny_run(
    store: Path, out: Path, steps: int = 12, size: int = 32, width: int = 4, seed: int = 1234, augment: bool = True
) -> Path:
    """A finished fine-tuning run of a few steps (standard protocol: it has validation and test cases)."""
    cfg = FinetuneConfig(
        data=DataCfg(path=str(store), labels="100%", batch_size=8, num_workers=0, image_size=size),
        model=ModelCfg(base_width=width),
        train=TrainCfg(device="cpu", progress=False, epochs=100, max_steps=steps, seed=seed, val_every_steps=steps),
        out=str(out),
        augment=augment,
    )
    return finetune(cfg).out


def raw_test_folders(run: Path, tmp: Path, data: Path, image: str, label: str) -> tuple[Path, Path]:
    """Links to the raw test images and labels of a run, named by case id (``image``/``label``: file
    patterns in ``data`` with ``{n}``, the case's number, or ``{cid}``, its id)."""
    imgs, gts = tmp / "images", tmp / "labels"
    imgs.mkdir(parents=True)
    gts.mkdir(parents=True)
    for cid in json.loads((run / "splits.json").read_text())["test"]:
        n = cid.removeprefix("patient")
        (imgs / f"{cid}.nii.gz").symlink_to(data / image.format(n=n, cid=cid))
        (gts / f"{cid}.nii.gz").symlink_to(data / label.format(n=n, cid=cid))
    return imgs, gts


def run_dsc(run: Path) -> float:
    return float(json.loads((run / "summary.json").read_text())["mean"]["dsc"])


def dhw(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(str(path)).dataobj).transpose(2, 1, 0)


@pytest.fixture(scope="module")
def hippo_run(hippo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_run(hippo_store, tmp_path_factory.mktemp("hippo_run") / "ft", steps=20, width=8)


def crop_pairs(folder: str, numbers: tuple[int, ...], box: tuple[slice, slice], out: Path) -> Path:
    """Write in-plane crops of real ``image_N``/``label_N`` pairs (affines adjusted by nibabel's slicer)."""
    data = shared_data_dir()
    if data is None:
        pytest.skip("real data folder ../shared/data not found")
    out.mkdir(parents=True)
    for n in numbers:
        for kind in ("image", "label"):
            img = nib.load(str(data / folder / f"{kind}_{n}.nii.gz"))
            nib.save(img.slicer[box[0], box[1], :], str(out / f"{kind}_{n}.nii.gz"))
    return out


@pytest.fixture(scope="module")
def cardiac_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MS-CMRSeg crops around the heart (128 x 128 at 1.25 mm), prepared at 2.5 mm: the store resamples."""
    from medssl.data.store import prepare

    root = tmp_path_factory.mktemp("cardiac_run")
    src = crop_pairs("mscmrseg_bssfp", tuple(range(1, 8)), (slice(64, 192), slice(64, 192)), root / "raw")
    prepare("mscmrseg", src, root / "store", target_spacing=2.5, progress=False)
    return tiny_run(root / "store", root / "ft", steps=16, size=64, width=4)


def _predict_and_score(run: Path, imgs: Path, gts: Path, out: Path, names: list[str]) -> float:
    assert main(["predict", str(run), str(imgs), str(out), "--no-progress", "--device", "cpu"]) == 0
    assert main(["evaluate", "--pred", str(out), "--gt", str(gts), "--labels", ",".join(names)]) == 0
    return float(json.loads((out / "summary.json").read_text())["mean"]["dsc"])


def test_roundtrip_hippocampus_is_identical(hippo_run: Path, tmp_path: Path) -> None:
    """Store kept the spacing: predict's label maps are the run's own test predictions, voxel for voxel."""
    imgs, gts = raw_test_folders(
        hippo_run,
        tmp_path,
        shared_data_dir(),
        "msd_hippocampus/imagesTr/{cid}.nii.gz",
        "msd_hippocampus/labelsTr/{cid}.nii.gz",
    )
    names = json.loads((hippo_run / "run.json").read_text())["class_names"]
    dsc = _predict_and_score(hippo_run, imgs, gts, tmp_path / "out", names)
    for f in sorted(imgs.iterdir()):
        cid = f.name[: -len(".nii.gz")]
        assert np.array_equal(dhw(tmp_path / "out" / f.name), np.load(hippo_run / "predictions" / f"{cid}.npy"))
    assert dsc == pytest.approx(run_dsc(hippo_run), abs=1e-9)
    classes = json.loads((tmp_path / "out" / "classes.json").read_text())
    assert classes["labels"] == {str(i): n for i, n in enumerate(names)}


def test_roundtrip_chaos_is_identical(tmp_path: Path) -> None:
    """CHAOS crops (96 x 96), store at the scans' own spacing: label maps identical to the run's."""
    from medssl.data.store import prepare

    src = crop_pairs("chaos_mr_t2spir", (1, 2, 3), (slice(80, 176), slice(80, 176)), tmp_path / "raw")
    prepare("chaos-nifti", src, tmp_path / "store", progress=False)
    run = tiny_run(tmp_path / "store", tmp_path / "ft", steps=2, size=64)
    imgs, gts = raw_test_folders(run, tmp_path, src, "image_{n}.nii.gz", "label_{n}.nii.gz")
    names = json.loads((run / "run.json").read_text())["class_names"]
    dsc = _predict_and_score(run, imgs, gts, tmp_path / "out", names)
    for f in sorted(imgs.iterdir()):
        assert np.array_equal(
            dhw(tmp_path / "out" / f.name), np.load(run / "predictions" / f.name.replace(".nii.gz", ".npy"))
        )
    assert dsc == pytest.approx(run_dsc(run), abs=1e-9)


def test_resampled_store_mscmrseg_preprocessing_and_prediction_are_the_runs(cardiac_run: Path, tmp_path: Path) -> None:
    """The store resampled to 2.5 mm: predict's network input is the store's image bit for bit, its
    store-grid labels are the run's test predictions, and the label map has the raw scan's geometry."""
    from medssl.data.store import SliceStore
    from medssl.evaluation.postprocess import keep_largest_component
    from medssl.inference import Segmenter, discover_inputs, read_scan

    raw = cardiac_run.parent / "raw"
    imgs, _ = raw_test_folders(cardiac_run, tmp_path, raw, "image_{n}.nii.gz", "label_{n}.nii.gz")
    store, seg = SliceStore(cardiac_run.parent / "store"), Segmenter.from_run(cardiac_run, device="cpu")
    for item in discover_inputs(imgs):
        scan = read_scan(item)
        volume = seg.preprocess(scan.image, scan.spacing)
        assert np.array_equal(volume, np.asarray(store.image(item.case)))
        labels = seg.network_probabilities(volume).argmax(0).numpy().astype(np.uint8)
        labels = keep_largest_component(labels, seg.largest_component)
        assert np.array_equal(labels, np.load(cardiac_run / "predictions" / f"{item.case}.npy"))
    out = tmp_path / "out"
    assert main(["predict", str(cardiac_run), str(imgs), str(out), "--no-progress", "--device", "cpu"]) == 0
    for f in sorted(imgs.iterdir()):
        got, ref = nib.load(str(out / f.name)), nib.load(str(f))
        assert got.shape == ref.shape and np.array_equal(got.affine, ref.affine)


@pytest.mark.slow
def test_roundtrip_mscmrseg_resampled_within_half_a_point(tmp_path: Path) -> None:
    """The store resampled to 2.5 mm: predict maps the softmax back to the raw 1.25 mm grid; scored
    against the raw labels it gives the run's own DSC within 0.5 points. Needs a model that segments
    (about 45 s of training): a barely trained one scatters its boundaries, and scoring them on two
    grids differs by more (the default run checks the same path exactly, above)."""
    from medssl.data.store import prepare
    from medssl.evaluation.evaluate import evaluate_folders

    raw = crop_pairs("mscmrseg_bssfp", tuple(range(1, 8)), (slice(64, 192), slice(64, 192)), tmp_path / "raw")
    prepare("mscmrseg", raw, tmp_path / "store", target_spacing=2.5, progress=False)
    run = tiny_run(tmp_path / "store", tmp_path / "ft", steps=150, size=64, width=8)
    imgs, gts = raw_test_folders(run, tmp_path, raw, "image_{n}.nii.gz", "label_{n}.nii.gz")
    assert main(["predict", str(run), str(imgs), str(tmp_path / "out"), "--no-progress", "--device", "cpu"]) == 0
    res = evaluate_folders(
        tmp_path / "out", gts, class_names=("background", "LV-myo", "LV", "RV"), label_map=MSCMRSEG_RAW
    )
    assert res.summary[-1]["class_name"] == "mean" and run_dsc(run) > 0.5
    assert abs(float(res.summary[-1]["dsc_mean"]) - run_dsc(run)) <= 0.005
