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


# --- geometry ------------------------------------------------------------------------------------


def _rotation(deg: float, axis: tuple[float, float, float]) -> np.ndarray:
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    t = np.radians(deg)
    r = np.eye(4)
    r[:3, :3] = np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k
    r[:3, 3] = (12.0, -7.5, 30.0)
    return r


def _variant(src: Path, out: Path, arr_fn, affine_fn, zooms: tuple[float, float, float] | None = None) -> Path:
    """A copy of ``src`` with its voxels and affine transformed (qform and sform both set, codes 1)."""
    img = nib.load(str(src))
    arr = arr_fn(np.asanyarray(img.dataobj))
    aff = affine_fn(img.affine, arr.shape)
    new = nib.Nifti1Image(arr, aff)
    new.set_qform(aff, code=1)
    new.set_sform(aff, code=1)
    nib.save(new, str(out))
    return out


def _zflip(aff: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    f = np.eye(4)
    f[2, 2], f[2, 3] = -1.0, shape[2] - 1
    return aff @ f


GEOMETRIES = {
    # name: (voxels, affine, what the label map must be in terms of the original one)
    "rotated_oblique": (lambda a: a, lambda aff, s: _rotation(30, (1, 1, 0.3)) @ aff, lambda o: o),
    "lps": (lambda a: a, lambda aff, s: np.diag([-1.0, -1.0, 1.0, 1.0]) @ aff, lambda o: o),
    "flipped_z": (lambda a: a[:, :, ::-1], _zflip, lambda o: o[:, :, ::-1]),
    "anisotropic": (lambda a: a, lambda aff, s: aff @ np.diag([0.7, 1.3, 3.5, 1.0]), lambda o: o),
}


def test_geometry_header_kept_and_labels_on_the_anatomy(hippo_run: Path, tmp_path: Path) -> None:
    """Rotated, LPS, flipped and anisotropic copies of a test case: each label map has the input's header
    (shape, affine, qform/sform and codes, zooms) and the labels of the original scan at the same
    anatomy (the voxels' world positions), so it scores the known label exactly as the original does."""
    from medssl.evaluation.metrics import confusion_counts

    data = shared_data_dir()
    cid = json.loads((hippo_run / "splits.json").read_text())["test"][0]
    src_img = data / "msd_hippocampus" / "imagesTr" / f"{cid}.nii.gz"
    src_lab = data / "msd_hippocampus" / "labelsTr" / f"{cid}.nii.gz"
    inputs, gts = tmp_path / "in", tmp_path / "gt"
    inputs.mkdir()
    gts.mkdir()
    for name, (arr_fn, aff_fn, _) in GEOMETRIES.items():
        _variant(src_img, inputs / f"{name}.nii.gz", arr_fn, aff_fn)
        _variant(src_lab, gts / f"{name}.nii.gz", arr_fn, aff_fn)
    (inputs / "original.nii.gz").symlink_to(src_img)
    assert (
        main(["predict", str(hippo_run), str(inputs), str(tmp_path / "out"), "--no-progress", "--device", "cpu"]) == 0
    )
    original = np.asanyarray(nib.load(str(tmp_path / "out" / "original.nii.gz")).dataobj)
    ref_counts = np.asarray(confusion_counts(original, np.asanyarray(nib.load(str(src_lab)).dataobj).astype(int), 3))
    for name, (_, _, expect) in GEOMETRIES.items():
        got, inp = nib.load(str(tmp_path / "out" / f"{name}.nii.gz")), nib.load(str(inputs / f"{name}.nii.gz"))
        assert got.shape == inp.shape and got.get_data_dtype() == np.uint8, name
        assert np.allclose(got.affine, inp.affine, atol=1e-6), name
        for key in ("qform_code", "sform_code", "pixdim", "xyzt_units"):
            assert np.allclose(got.header[key], inp.header[key], atol=1e-6), (name, key)
        assert np.allclose(got.header.get_qform(), inp.header.get_qform(), atol=1e-5), name
        labels = np.asanyarray(got.dataobj)
        assert np.array_equal(labels, expect(original)), name
        gt = np.asanyarray(nib.load(str(gts / f"{name}.nii.gz")).dataobj).astype(int)
        assert np.array_equal(np.asarray(confusion_counts(labels, gt, 3)), ref_counts), name


def write_dicom_series(
    folder: Path, volume: np.ndarray, spacing=(2.0, 1.0, 1.0), series_uid: str | None = None
) -> None:
    """A ``(D, H, W)`` volume as single-frame DICOM files (axial, slices 0..D-1 along +z)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    series_uid = series_uid or generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    for k, pixels in enumerate(volume):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = MRImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID, ds.SeriesInstanceUID = (
            MRImageStorage,
            meta.MediaStorageSOPInstanceUID,
            series_uid,
        )
        ds.Modality, ds.Rows, ds.Columns = "MR", *pixels.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.PixelSpacing = [spacing[1], spacing[2]]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, float(k * spacing[0])]
        ds.InstanceNumber = k + 1
        ds.PixelData = np.asarray(pixels, dtype=np.uint16).tobytes()
        ds.save_as(str(folder / f"{series_uid[-6:]}_{k:03d}.dcm"), enforce_file_format=True)


def test_dicom_series_gets_a_nifti_in_its_patient_geometry(hippo_run: Path, tmp_path: Path) -> None:
    """A DICOM series of a test case: the labels equal the NIfTI's, the affine maps voxels to the DICOM
    patient positions (LPS -> RAS)."""
    cid = json.loads((hippo_run / "splits.json").read_text())["test"][0]
    src = shared_data_dir() / "msd_hippocampus" / "imagesTr" / f"{cid}.nii.gz"
    volume = np.rint(np.asanyarray(nib.load(str(src)).dataobj)).transpose(2, 1, 0)
    write_dicom_series(tmp_path / cid, volume)
    assert main(["predict", str(hippo_run), str(tmp_path / cid), str(tmp_path / "out"), "--no-progress"]) == 0
    assert main(["predict", str(hippo_run), str(src), str(tmp_path / "ref"), "--no-progress"]) == 0
    got = nib.load(str(tmp_path / "out" / f"{cid}.nii.gz"))
    ref = np.asanyarray(nib.load(str(tmp_path / "ref" / f"{cid}.nii.gz")).dataobj)
    assert np.array_equal(np.asanyarray(got.dataobj), ref)
    assert np.allclose(got.affine, np.diag([-1.0, -1.0, 2.0, 1.0]))


# --- options, resume, ensembles -----------------------------------------------------------------


def _copy_run(run: Path, out: Path, noise: float = 0.0, seed: int = 0) -> Path:
    """A copy of a run folder, its weights perturbed by ``noise`` (a stand-in for a second seed)."""
    import shutil

    import torch

    shutil.copytree(run, out)
    if noise:
        gen = torch.Generator().manual_seed(seed)
        for name in ("checkpoint_best.pt", "checkpoint_latest.pt"):
            if (out / name).is_file():
                state = torch.load(out / name, weights_only=False)
                for v in state["model"].values():
                    if v.is_floating_point():
                        v += noise * v.std().nan_to_num() * torch.randn(v.shape, generator=gen)
                torch.save(state, out / name)
    return out


def test_resume_skips_finished_cases_and_overwrite_redoes_them(hippo_run: Path, tmp_path: Path, capsys) -> None:
    cid = json.loads((hippo_run / "splits.json").read_text())["test"][0]
    src = shared_data_dir() / "msd_hippocampus" / "imagesTr" / f"{cid}.nii.gz"
    args = ["predict", str(hippo_run), str(src), str(tmp_path / "out"), "--no-progress"]
    assert main(args) == 0
    out = tmp_path / "out" / f"{cid}.nii.gz"
    first = out.stat().st_mtime_ns
    assert main(args) == 0 and out.stat().st_mtime_ns == first
    assert "predicted 0 case(s)" in capsys.readouterr().out.splitlines()[-1]
    # a label map cut short after the run (a copy that ran out of space) is not taken as done
    out.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    assert main(args) == 0 and nib.load(str(out)).get_fdata().size > 0
    cap = capsys.readouterr()
    assert "predicted 1 case(s)" in cap.out.splitlines()[-1]
    assert f"medssl: warning: {out}: an unreadable output left in OUTPUT (" in cap.err and cap.err.count("\n") == 1
    first = out.stat().st_mtime_ns
    assert main([*args, "--overwrite", "--save-probabilities"]) == 0 and out.stat().st_mtime_ns != first
    probs = np.load(tmp_path / "out" / f"{cid}.npz")["probabilities"]
    assert probs.shape == (3, *nib.load(str(out)).shape) and np.allclose(probs.sum(0), 1.0, atol=1e-5)
    # the folder's label maps were made by one run: an ensemble (or other TTA, post-processing or
    # checkpoints) does not skip them as done, and does not mix its maps with them
    other = _copy_run(hippo_run, tmp_path / "seed2", noise=0.3)
    ens = ["predict", str(hippo_run), str(other), str(src), str(tmp_path / "out"), "--no-progress"]
    assert main(ens) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.count("\n") == 0 and "holds 1 label map(s) made with other settings (runs" in err and "--overwrite" in err
    )
    assert out.stat().st_mtime_ns != first and main([*ens, "--overwrite"]) == 0
    assert json.loads((tmp_path / "out" / "classes.json").read_text())["runs"][1] == str(other.resolve())


def test_constant_image_is_segmented_with_a_one_line_warning(hippo_run: Path, tmp_path: Path, capsys) -> None:
    from medssl.inference.segmenter import Segmenter

    cid = json.loads((hippo_run / "splits.json").read_text())["test"][0]
    real = nib.load(str(shared_data_dir() / "msd_hippocampus" / "imagesTr" / f"{cid}.nii.gz"))
    src = tmp_path / "scans"
    src.mkdir()
    nib.save(real, str(src / "a_real.nii.gz"))
    blank = src / "b_blank.nii.gz"
    nib.save(nib.Nifti1Image(np.full(real.shape, 7, np.float32), real.affine), str(blank))
    assert main(["predict", str(hippo_run), str(src), str(tmp_path / "out"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.count("constant image") == 1 and f"medssl: warning: {blank}: constant image (every voxel is 7)" in err
    assert (tmp_path / "out" / "a_real.nii.gz").is_file() and (tmp_path / "out" / "b_blank.nii.gz").is_file()
    seg = Segmenter.from_run(hippo_run, device="cpu")
    with pytest.warns(UserWarning, match="constant image"):
        seg.predict_file(blank, tmp_path / "one" / "blank.nii.gz")


def _zero_voxel_size(src: Path, dst: Path) -> Path:
    """A copy of a real scan whose header stores a voxel size of 0 (a broken converter's output)."""
    img = nib.load(str(src))
    out = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine, img.header.copy())
    out.header["pixdim"][1:4] = 0.0
    dst.parent.mkdir(parents=True, exist_ok=True)
    nib.save(out, str(dst))
    return dst


def test_zero_voxel_size_is_refused_where_the_run_resamples(hippo_run: Path, cardiac_run: Path, tmp_path: Path, capsys):
    heart = _zero_voxel_size(cardiac_run.parent / "raw" / "image_1.nii.gz", tmp_path / "heart" / "h.nii.gz")
    assert main(["predict", str(cardiac_run), str(heart.parent), str(tmp_path / "o1"), "--no-progress"]) == 2
    err = capsys.readouterr().err  # was: resampled as if its voxels were 1 mm wide, after a warning
    assert f"medssl: error: {heart}: voxel size 0 in the header (pixdim): the scan's scale is unknown" in err
    assert "resamples every scan to 2.5 mm in-plane" in err and not (tmp_path / "o1" / "h.nii.gz").exists()
    cid = json.loads((hippo_run / "splits.json").read_text())["test"][0]
    src = shared_data_dir() / "msd_hippocampus" / "imagesTr" / f"{cid}.nii.gz"
    hip = _zero_voxel_size(src, tmp_path / "hip" / "x.nii.gz")
    assert main(["predict", str(hippo_run), str(hip.parent), str(tmp_path / "o2"), "--no-progress"]) == 0
    assert (tmp_path / "o2" / "x.nii.gz").is_file()  # a run on each scan's own grid needs no voxel size


def test_ensemble_averages_the_softmax_of_its_runs(hippo_run: Path, tmp_path: Path) -> None:
    from medssl.evaluation.postprocess import keep_largest_component
    from medssl.inference import Segmenter

    other = _copy_run(hippo_run, tmp_path / "seed2", noise=0.3)
    cid = json.loads((hippo_run / "splits.json").read_text())["test"][0]
    src = shared_data_dir() / "msd_hippocampus" / "imagesTr" / f"{cid}.nii.gz"
    assert main(["predict", str(hippo_run), str(other), str(src), str(tmp_path / "out"), "--no-progress"]) == 0
    img = nib.load(str(src))
    volume = np.asanyarray(img.dataobj).astype(np.float32).transpose(2, 1, 0)
    singles = [Segmenter.from_run(r, device="cpu") for r in (hippo_run, other)]
    mean = sum(s.predict_probabilities(volume, (1.0, 1.0, 1.0)) for s in singles) / 2
    chosen = sorted(set(singles[0].largest_component) & set(singles[1].largest_component))
    expected = keep_largest_component(mean.argmax(0).astype(np.uint8), chosen)
    got = np.asanyarray(nib.load(str(tmp_path / "out" / f"{cid}.nii.gz")).dataobj).transpose(2, 1, 0)
    assert np.array_equal(got, expected)
    assert not np.array_equal(singles[0].predict(volume, (1.0, 1.0, 1.0)), singles[1].predict(volume, (1.0, 1.0, 1.0)))


def test_tta_refused_for_classes_defined_by_side_and_averages_mirrorings_otherwise(
    hippo_run: Path, cardiac_run: Path, tmp_path: Path, capsys
) -> None:
    from medssl.inference import Segmenter

    src = shared_data_dir() / "msd_hippocampus" / "imagesTr" / "hippocampus_001.nii.gz"
    assert main(["predict", str(hippo_run), str(src), str(tmp_path / "o"), "--tta"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "anterior, posterior are defined by side" in err
    warned: list[str] = []
    seg = Segmenter.from_run(cardiac_run, device="cpu", tta=True, warn=warned.append)
    plain = Segmenter.from_run(cardiac_run, device="cpu")
    assert warned and "trained without mirroring" in warned[0]
    x = np.random.default_rng(0).normal(size=(3, 64, 48)).astype(np.float32)
    manual = 0
    for dims in ((), (1,), (2,), (1, 2)):
        flipped = np.ascontiguousarray(np.flip(x, dims)) if dims else x
        probs = plain.network_probabilities(flipped)
        manual = manual + (probs.flip([d + 1 for d in dims]) if dims else probs) / 4
    assert np.allclose(seg.network_probabilities(x).numpy(), np.asarray(manual), atol=1e-5)


# --- bad inputs: one line naming the file and the problem, exit 2, no partial output -------------


def _bad_inputs(run: Path, tmp: Path) -> dict[str, tuple[list[str], str, str]]:
    """name -> (predict arguments, the path the error must name, the problem it must state)."""
    import gzip
    import shutil

    good = shared_data_dir() / "msd_hippocampus" / "imagesTr" / "hippocampus_001.nii.gz"
    img = nib.load(str(good))
    four_d = tmp / "four_d" / "scan.nii.gz"
    four_d.parent.mkdir()
    nib.save(nib.Nifti1Image(np.stack([np.asanyarray(img.dataobj)] * 3, -1), img.affine), str(four_d))
    zero_axis = tmp / "zero_axis" / "scan.nii.gz"  # a valid header with no voxels
    zero_axis.parent.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((0, 5, 5), np.float32), img.affine), str(zero_axis))
    two_ch = tmp / "two_channels"
    two_ch.mkdir()
    for c in ("0000", "0001"):
        (two_ch / f"case_{c}.nii.gz").symlink_to(good)
    empty = tmp / "empty.nii.gz"
    empty.write_bytes(b"")
    corrupt = tmp / "corrupt.nii.gz"
    corrupt.write_bytes(gzip.compress(b"not a nifti header" * 40))
    truncated = tmp / "truncated"  # a good case first: it is kept, the truncated one gets no file
    truncated.mkdir()
    (truncated / "a_good.nii.gz").symlink_to(good)
    raw = (shared_data_dir() / "msd_hippocampus" / "imagesTr" / "hippocampus_003.nii.gz").read_bytes()
    (truncated / "b_truncated.nii.gz").write_bytes(raw[: len(raw) // 2])
    series = tmp / "two_series"
    vol = np.ones((2, 8, 8))
    write_dicom_series(series, vol)
    write_dicom_series(series, vol)
    as_file = tmp / "out_is_a_file"
    as_file.write_text("x")
    no_ckpt = _copy_run(run, tmp / "no_ckpt")
    for f in no_ckpt.glob("checkpoint_*.pt"):
        f.unlink()
    other_classes = _copy_run(run, tmp / "other_classes")
    info = json.loads((other_classes / "run.json").read_text())
    info["class_names"] = ["background", "liver", "spleen"]
    (other_classes / "run.json").write_text(json.dumps(info))
    pre = tmp / "pretrain_run"
    pre.mkdir()
    (pre / "run.json").write_text(json.dumps({"kind": "pretrain", "status": "done"}))
    shutil.copy(run / "config.yaml", pre / "config.yaml")
    r, out = str(run), str(tmp / "out")
    return {
        "4D image": ([r, str(four_d), out], str(four_d), "4D image"),
        "axis of size 0": ([r, str(zero_axis), out], str(zero_axis), "zero-size volume (header shape (0, 5, 5))"),
        "2 channels": ([r, str(two_ch), out], "case_0001.nii.gz", "2 channel files"),
        "empty file": ([r, str(empty), out], str(empty), "empty file"),
        "corrupt file": ([r, str(corrupt), out], str(corrupt), "not a readable NIfTI"),
        "truncated file": ([r, str(truncated), out], "b_truncated.nii.gz", "corrupt or truncated gzip data"),
        "two DICOM series": ([r, str(series), out], str(series), "holds 2 DICOM series"),
        "output is a file": ([r, str(good), str(as_file)], str(as_file), "exists and is not a folder"),
        "no checkpoint": ([str(no_ckpt), str(good), out], str(no_ckpt), "no checkpoint"),
        "ensemble classes": ([r, str(other_classes), str(good), out], str(other_classes), "differ in class_names"),
        "pre-training run": ([str(pre), str(good), out], str(pre), "pre-training run: it has no segmentation head"),
    }


def test_bad_inputs_fail_on_one_line_with_exit_2_and_no_partial_output(hippo_run: Path, tmp_path: Path, capsys):
    for name, (args, path, problem) in _bad_inputs(hippo_run, tmp_path).items():
        out = tmp_path / "out"
        assert main(["predict", *args, "--no-progress"]) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.startswith("medssl: error:") and "\n" not in err, (name, err)
        assert path in err and problem in err, (name, err)
        written = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        expected = ["a_good.nii.gz", "classes.json"] if name == "truncated file" else []
        assert [w for w in written if w != "classes.json" or expected] == expected, (name, written)
        if out.is_dir():
            import shutil

            shutil.rmtree(out)


# --- export ----------------------------------------------------------------------------------------


def _real_slices(run: Path) -> tuple[np.ndarray, int]:
    """The store slices of a test case, padded to the network's size multiple, as ``(N, 1, H, W)``."""
    import torch

    from medssl.inference.runspec import load_run_spec
    from medssl.inference.segmenter import _pad_slices

    spec = load_run_spec(run)
    cid = json.loads((run / "splits.json").read_text())["test"][0]
    vol = np.load(Path(json.loads((run / "run.json").read_text())["data"]) / "images" / f"{cid}.npy")
    x, _ = _pad_slices(torch.from_numpy(np.ascontiguousarray(vol[:8]))[:, None], spec.multiple, spec.fill)
    return x.numpy(), spec.num_classes


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_gives_the_runs_logits(hippo_run: Path, tmp_path: Path, fmt: str) -> None:
    import torch

    from medssl.inference import Segmenter

    assert main(["export", str(hippo_run), "--format", fmt, "--out", str(tmp_path / fmt)]) == 0
    meta = json.loads((tmp_path / fmt / "model.json").read_text())
    assert meta["class_names"] == ["background", "anterior", "posterior"] and meta["input"]["size_multiple"] == 16
    assert meta["normalization"]["method"] == "slice_minmax" and meta["normalization"]["statistics"]
    assert meta["run"]["commit"] and meta["medssl_version"] and "largest_component" in meta["postprocessing"]
    x, k = _real_slices(hippo_run)
    with torch.no_grad():
        ref = Segmenter.from_run(hippo_run, device="cpu").models[0](torch.from_numpy(x)).numpy()
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime")

        sess = ort.InferenceSession(str(tmp_path / fmt / "model.onnx"), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"image": x})[0]
    else:
        got = torch.jit.load(str(tmp_path / fmt / "model.pt"))(torch.from_numpy(x)).detach().numpy()
    assert got.shape == ref.shape == (x.shape[0], k, *x.shape[2:])
    assert np.abs(got - ref).max() <= 1e-4


def _example_script(export: Path, inputs: list[Path], out: Path, numpy_only: bool = False) -> None:
    import runpy
    import sys

    argv = sys.argv
    sys.argv = ["onnx_predict.py", str(export), *map(str, inputs), "--out", str(out)] + (
        ["--numpy-only"] if numpy_only else []
    )
    try:
        runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples" / "onnx_predict.py"), run_name="__main__")
    finally:
        sys.argv = argv


@pytest.mark.parametrize("which", ["hippo", "cardiac"])
def test_onnx_example_script_reproduces_predict(which: str, hippo_run: Path, cardiac_run: Path, tmp_path: Path) -> None:
    """examples/onnx_predict.py (numpy + nibabel + onnxruntime) gives predict's label maps: exactly where
    no resampling is needed, and, for a resampled store, exactly with scikit-image and at >= 95% of the
    voxels with the numpy-only linear resampling (a barely trained run: boundaries are uncertain)."""
    pytest.importorskip("onnxruntime")
    run = hippo_run if which == "hippo" else cardiac_run
    cases = json.loads((run / "splits.json").read_text())["test"]
    if which == "hippo":
        inputs = [shared_data_dir() / "msd_hippocampus" / "imagesTr" / f"{c}.nii.gz" for c in cases]
    else:
        inputs = [run.parent / "raw" / f"image_{c.removeprefix('patient')}.nii.gz" for c in cases]
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "export")]) == 0
    for f in inputs:
        assert main(["predict", str(run), str(f), str(tmp_path / "predict"), "--no-progress"]) == 0
    _example_script(tmp_path / "export", inputs, tmp_path / "script")
    for f in inputs:
        a, b = nib.load(str(tmp_path / "predict" / f.name)), nib.load(str(tmp_path / "script" / f.name))
        assert np.array_equal(a.affine, b.affine) and np.array_equal(np.asanyarray(a.dataobj), np.asanyarray(b.dataobj))
    if which == "cardiac":
        _example_script(tmp_path / "export", inputs, tmp_path / "numpy", numpy_only=True)
        for f in inputs:
            a = np.asanyarray(nib.load(str(tmp_path / "predict" / f.name)).dataobj)
            b = np.asanyarray(nib.load(str(tmp_path / "numpy" / f.name)).dataobj)
            assert (a == b).mean() >= 0.95  # 97.6% measured on this barely trained run
