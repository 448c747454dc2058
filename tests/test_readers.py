"""Dataset readers on tiny files laid out like each official release, plus the real data in ../shared/data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medssl.data.case import CaseSource
from medssl.data.readers import UnknownDatasetError, get_dataset, list_datasets, resolve_spec, scan_dataset
from medssl.errors import ConfigError, DataError
from medssl.registry import DATASETS

# ----------------------------------------------------------------------------- file writers


def write_nii(path: Path, arr: np.ndarray, zooms=(1.0, 1.0, 1.0), affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    aff = np.diag(list(zooms[:3]) + [1.0]) if affine is None else affine
    img = nib.Nifti1Image(np.asarray(arr), aff)
    img.header.set_zooms(tuple(zooms)[: arr.ndim] + (1.0,) * max(0, arr.ndim - len(zooms)))
    nib.save(img, str(path))
    return path


def xyz_volume(rng: np.random.Generator, shape=(16, 12, 3)) -> np.ndarray:
    return rng.normal(100, 20, size=shape).astype(np.float32)


def xyz_labels(rng: np.random.Generator, values, shape=(16, 12, 3)) -> np.ndarray:
    lab = rng.choice(np.asarray(values), size=shape)
    lab.flat[: len(values)] = values  # every value present
    return lab


def write_dicom(path: Path, pixels: np.ndarray, z: float, instance: int, spacing=(1.5, 1.2)) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelSpacing = list(spacing)
    ds.SliceThickness = 6.0
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0.0, 0.0, float(z)]
    ds.InstanceNumber = instance
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        ds.save_as(str(path), enforce_file_format=True)  # pydicom >= 3
    except TypeError:
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(str(path), write_like_original=False)  # pydicom 2.x


# ----------------------------------------------------------------------------- registry

EXPECTED = {  # name: (target_spacing, normalization, patch_size, paper_split_key, num_classes, pretrain_only)
    "acdc": (1.25, "zscore", 352, "ACDC", 4, False),
    "acdc-h5": (None, "zscore", 352, "ACDC", 4, False),
    "mmwhs": (1.0, "clip_zscore", 256, "MMWHS", 8, False),
    "hvsmr": (0.7, "clip_zscore", 352, "HVSMR", 3, False),
    "chaos": (None, "max", 256, "CHAOS", 5, False),
    "chaos-nifti": (None, "max", 256, "CHAOS", 5, False),
    "msd": (None, "slice_minmax", 256, None, 2, False),
    "mscmrseg": (None, "zscore", 256, None, 4, False),
    "isic2018": (None, "minmax", 256, "ISIC", 2, False),
    "nifti-folder": (None, "zscore", 256, None, 2, False),
    "chd": (None, "clip_zscore", 512, None, 1, True),
    "brats": (None, "zscore", 192, None, 1, True),
    "kits": (None, "minmax", 512, None, 1, True),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spec_defaults(name: str) -> None:
    spec = get_dataset(name)
    assert spec is DATASETS.get(name) and spec.name == name
    got = (
        spec.target_spacing,
        spec.normalization,
        spec.patch_size,
        spec.paper_split_key,
        spec.num_classes,
        spec.pretrain_only,
    )
    assert got == EXPECTED[name]
    assert "\n" not in spec.layout and spec.description


def test_list_and_unknown() -> None:
    names = {s.name for s in list_datasets()}
    assert set(EXPECTED) <= names
    with pytest.raises(UnknownDatasetError) as ei:
        get_dataset("acdcx")
    assert isinstance(ei.value, ConfigError) and isinstance(ei.value, KeyError)
    assert "acdc" in str(ei.value) and not str(ei.value).startswith("'")


def test_scan_dataset_missing_or_empty_root(tmp_path: Path) -> None:
    with pytest.raises(DataError) as ei:
        scan_dataset("acdc", tmp_path / "nope")
    assert str(tmp_path / "nope") in str(ei.value) and "not found" in str(ei.value)
    with pytest.raises(DataError) as ei:
        scan_dataset("mmwhs", tmp_path)
    msg = str(ei.value)
    assert msg.startswith(f"{tmp_path}: no mmwhs cases found") and "_image.nii.gz" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="no option 'colour'"):
        scan_dataset("acdc", tmp_path, colour="red")


# ----------------------------------------------------------------------------- ACDC


def _acdc_patient(root: Path, num: int, ed: int, es: int, rng) -> dict:
    d = root / "training" / f"patient{num:03d}"
    d.mkdir(parents=True)
    (d / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\nGroup: DCM\nHeight: 180.0\nNbFrame: 30\nWeight: 70.0\n")
    arrays = {}
    for f in sorted({ed, es, 2}):
        img = xyz_volume(rng)
        lab = xyz_labels(rng, [0, 1, 2, 3]).astype(np.uint8)
        write_nii(d / f"patient{num:03d}_frame{f:02d}.nii.gz", img, (1.5, 1.4, 10.0))
        write_nii(d / f"patient{num:03d}_frame{f:02d}_gt.nii.gz", lab, (1.5, 1.4, 10.0))
        arrays[f] = (img, lab)
    return arrays


def test_acdc(tmp_path: Path, rng) -> None:
    a1 = _acdc_patient(tmp_path, 1, 1, 3, rng)
    _acdc_patient(tmp_path, 17, 1, 12, rng)
    src = scan_dataset("acdc", tmp_path)
    assert [s.case_id for s in src] == [
        "patient001_frame01",
        "patient001_frame03",
        "patient017_frame01",
        "patient017_frame12",
    ]
    assert [s.meta["phase"] for s in src] == ["ED", "ES", "ED", "ES"]
    assert [s.meta["paper_key"] for s in src] == [1, 1, 17, 17]
    assert src[2].patient_id == "patient017" and src[0].meta["group"] == "DCM"
    case = src[1].load()
    img, lab = a1[3]
    assert case.image.shape == (3, 12, 16) and case.image.dtype == np.float32
    assert case.spacing == pytest.approx((10.0, 1.4, 1.5))
    np.testing.assert_array_equal(case.image, img.transpose(2, 1, 0))
    np.testing.assert_array_equal(case.label, lab.transpose(2, 1, 0))
    assert case.image[2, 5, 7] == img[7, 5, 2]


# ----------------------------------------------------------------------------- ACDC HDF5


def _h5(path: Path, image: np.ndarray, label: np.ndarray | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        fh["image"] = image
        if label is not None:
            fh["label"] = label


def test_acdc_h5_slices_and_volumes(tmp_path: Path, rng) -> None:
    for k in (0, 2, 10):  # numeric, not lexicographic, slice order
        _h5(
            tmp_path / "data" / "slices" / f"patient001_frame01_slice_{k}.h5",
            np.full((8, 9), k, np.float32),
            np.full((8, 9), k % 4, np.uint8),
        )
    vol = rng.random((5, 8, 9)).astype(np.float32)
    _h5(tmp_path / "data" / "patient002_frame12.h5", vol, np.ones((5, 8, 9), np.uint8))
    (tmp_path / "train_slices.list").write_text("patient001_frame01_slice_0\npatient001_frame01_slice_2\n")
    (tmp_path / "test.list").write_text("patient002_frame12\n")
    src = scan_dataset("acdc-h5", tmp_path)
    assert [s.case_id for s in src] == ["patient001_frame01", "patient002_frame12"]
    assert [s.patient_id for s in src] == ["patient001", "patient002"]
    assert [s.meta["split"] for s in src] == ["train", "test"]
    assert [s.meta["paper_key"] for s in src] == [1, 2]
    c1 = src[0].load()
    assert c1.image.shape == (3, 8, 9) and c1.image[:, 0, 0].tolist() == [0, 2, 10]
    assert c1.label[:, 0, 0].tolist() == [0, 2, 2]
    assert (
        c1.spacing == (1.0, 1.0, 1.0) and c1.meta["spacing_known"] is False and c1.meta["slice_indices"] == [0, 2, 10]
    )
    c2 = src[1].load()
    np.testing.assert_array_equal(c2.image, vol)
    assert c2.meta["source_kind"] == "volume"


# ----------------------------------------------------------------------------- MM-WHS


def test_mmwhs_remap_and_modality(tmp_path: Path, rng) -> None:
    raw = xyz_labels(rng, [0, 205, 420, 500, 550, 600, 820, 850]).astype(np.int16)
    write_nii(tmp_path / "ct_train" / "ct_train_1001_image.nii.gz", xyz_volume(rng), (0.4, 0.4, 0.6))
    write_nii(tmp_path / "ct_train" / "ct_train_1001_label.nii.gz", raw, (0.4, 0.4, 0.6))
    write_nii(tmp_path / "ct_test" / "ct_test_2001_image.nii.gz", xyz_volume(rng))
    write_nii(tmp_path / "mr_train" / "mr_train_1003_image.nii.gz", xyz_volume(rng))
    write_nii(tmp_path / "mr_train" / "mr_train_1003_label.nii.gz", np.zeros((16, 12, 3), np.int16))
    src = scan_dataset("mmwhs", tmp_path)
    assert (
        [s.case_id for s in src] == ["ct_train_1001"]
        and src[0].patient_id == "ct_1001"
        and src[0].meta["paper_key"] == 1001
    )
    case = src[0].load()
    expected = np.searchsorted([0, 205, 420, 500, 550, 600, 820, 850], raw).transpose(2, 1, 0)
    np.testing.assert_array_equal(case.label, expected)
    assert sorted(np.unique(case.label).tolist()) == list(range(8))
    assert [s.case_id for s in scan_dataset("mmwhs", tmp_path, modality="all")] == ["ct_train_1001", "mr_train_1003"]
    assert len(scan_dataset("mmwhs", tmp_path, modality="all", include_unlabeled=True)) == 3


# ----------------------------------------------------------------------------- HVSMR


def test_hvsmr_full_and_crop(tmp_path: Path, rng) -> None:
    lab = xyz_labels(rng, [0, 1, 2]).astype(np.uint8)
    write_nii(tmp_path / "Training dataset" / "training_axial_full_pat0.nii.gz", xyz_volume(rng), (0.9, 0.9, 0.85))
    write_nii(tmp_path / "Ground truth" / "training_axial_full_pat0-label.nii.gz", lab, (0.9, 0.9, 0.85))
    write_nii(tmp_path / "Training dataset" / "training_axial_crop_pat3.nii.gz", xyz_volume(rng, (8, 6, 3)))
    write_nii(tmp_path / "Ground truth" / "training_axial_crop_pat3-label.nii.gz", np.zeros((8, 6, 3), np.uint8))
    src = scan_dataset("hvsmr", tmp_path)
    assert [(s.case_id, s.meta["paper_key"], s.meta["variant"]) for s in src] == [
        ("pat0", 0, "full"),
        ("pat3", 3, "crop"),
    ]
    case = src[0].load()
    np.testing.assert_array_equal(case.label, lab.transpose(2, 1, 0))
    assert case.spacing == pytest.approx((0.85, 0.9, 0.9))
    assert [s.case_id for s in scan_dataset("hvsmr", tmp_path, variant="crop")] == ["pat3"]


# ----------------------------------------------------------------------------- CHAOS (DICOM + PNG)


def test_chaos_dicom_png(tmp_path: Path) -> None:
    base = tmp_path / "CHAOS_Train_Sets" / "Train_Sets" / "MR" / "5" / "T2SPIR"
    masks = {1: 63, 2: 126, 3: 252}
    for k in (1, 2, 3):  # file order 1, 2, 3 lies at z = 20, 10, 0 (reverse)
        pix = np.full((6, 7), 100 * k, np.uint16)
        pix[0, :] = k
        write_dicom(base / "DICOM_anon" / f"IMG-0002-0000{k}.dcm", pix, z=30 - 10 * k, instance=k)
        m = np.zeros((6, 7), np.uint8)
        m[2:4, 2:5] = masks[k]
        m[5, 6] = 189 if k == 2 else 60  # 60 is inside the liver range 55-70
        (base / "Ground").mkdir(parents=True, exist_ok=True)
        Image.fromarray(m).save(base / "Ground" / f"IMG-0002-0000{k}.png")
    src = scan_dataset("chaos", tmp_path)
    assert [(s.case_id, s.patient_id, s.meta["paper_key"]) for s in src] == [("patient5", "patient5", 5)]
    case = src[0].load()
    assert case.image.shape == (3, 6, 7)
    assert case.image[:, 3, 3].tolist() == [300, 200, 100]  # sorted by position along the slice normal
    assert case.spacing == pytest.approx((10.0, 1.5, 1.2))
    assert case.label[:, 2, 2].tolist() == [4, 2, 1]  # 252 spleen, 126 right kidney, 63 liver
    assert case.label[:, 5, 6].tolist() == [1, 3, 1]  # 60 liver (range), 189 left kidney
    assert case.meta["slice_files"] == ["IMG-0002-00003.dcm", "IMG-0002-00002.dcm", "IMG-0002-00001.dcm"]


# ----------------------------------------------------------------------------- CHAOS NIfTI, MS-CMRSeg


def test_chaos_nifti_and_mscmrseg_synthetic(tmp_path: Path, rng) -> None:
    write_nii(tmp_path / "c" / "image_39.nii.gz", xyz_volume(rng))
    write_nii(tmp_path / "c" / "label_39.nii.gz", xyz_labels(rng, [0, 1, 2, 3, 4]).astype(np.float64))
    write_nii(tmp_path / "c" / "image_5.nii.gz", xyz_volume(rng))
    write_nii(tmp_path / "c" / "label_5.nii.gz", np.zeros((16, 12, 3)))
    src = scan_dataset("chaos-nifti", tmp_path / "c")
    assert [s.meta["paper_key"] for s in src] == [5, 39] and src[1].case_id == "patient39"
    assert sorted(np.unique(src[1].load().label).tolist()) == [0, 1, 2, 3, 4]

    raw = xyz_labels(rng, [0, 200, 500, 600]).astype(np.float64)
    write_nii(tmp_path / "m" / "image_2.nii.gz", xyz_volume(rng))
    write_nii(tmp_path / "m" / "label_2.nii.gz", raw)
    case = scan_dataset("mscmrseg", tmp_path / "m")[0].load()
    np.testing.assert_array_equal(case.label, np.searchsorted([0, 200, 500, 600], raw).transpose(2, 1, 0))
    assert case.label.dtype == np.uint8


# ----------------------------------------------------------------------------- MSD


def test_msd_task_json_4d_and_positions(tmp_path: Path, rng) -> None:
    task = tmp_path / "Task09_Spleen"
    for name in ("spleen_2", "spleen_10", "spleen_31"):  # positions follow sorted file names: 10, 2, 31
        write_nii(task / "imagesTr" / f"{name}.nii.gz", xyz_volume(rng))
        write_nii(task / "labelsTr" / f"{name}.nii.gz", xyz_labels(rng, [0, 1]).astype(np.uint8))
    (task / "imagesTr" / "._spleen_2.nii.gz").write_bytes(b"\x00\x05\x16\x07")  # macOS resource file in the release
    src = scan_dataset("msd", tmp_path)
    assert [(s.case_id, s.meta["paper_key"]) for s in src] == [("spleen_10", 0), ("spleen_2", 1), ("spleen_31", 2)]
    spec = resolve_spec("msd", tmp_path)
    assert (spec.class_names, spec.patch_size, spec.paper_split_key) == (("background", "spleen"), 512, "Spleen")

    heart = tmp_path / "other" / "Task02_Heart"
    img4 = rng.normal(size=(16, 12, 3, 2)).astype(np.float32)
    write_nii(heart / "imagesTr" / "la_003.nii.gz", img4)
    write_nii(heart / "labelsTr" / "la_003.nii.gz", xyz_labels(rng, [0, 1]).astype(np.uint8))
    (heart / "dataset.json").write_text(
        json.dumps({"name": "LeftAtrium", "labels": {"0": "background", "1": "left atrium"}, "modality": {"0": "MRI"}})
    )
    spec = resolve_spec("msd", heart)
    assert (spec.class_names, spec.patch_size, spec.paper_split_key) == (("background", "left atrium"), 320, "Heart")
    case = scan_dataset("msd", heart, modality_index=1)[0].load()
    np.testing.assert_allclose(case.image, img4[..., 1].transpose(2, 1, 0))

    odd = tmp_path / "mydata"
    write_nii(odd / "imagesTr" / "x_1.nii.gz", xyz_volume(rng))
    write_nii(odd / "labelsTr" / "x_1.nii.gz", xyz_labels(rng, [0, 1, 2, 3]).astype(np.uint8))
    assert resolve_spec("msd", odd).class_names == ("background", "class_1", "class_2", "class_3")


# ----------------------------------------------------------------------------- ISIC 2018


def test_isic2018(tmp_path: Path, rng) -> None:
    idir = tmp_path / "ISIC2018_Task1-2_Training_Input"
    mdir = tmp_path / "ISIC2018_Task1_Training_GroundTruth"
    idir.mkdir()
    mdir.mkdir()
    rgb = rng.integers(0, 256, size=(10, 14, 3), dtype=np.uint8)
    for num in (43, 7):
        Image.fromarray(rgb).save(idir / f"ISIC_{num:07d}.jpg", quality=100)
        m = np.zeros((10, 14), np.uint8)
        m[3:6, 4:9] = 255
        Image.fromarray(m).save(mdir / f"ISIC_{num:07d}_segmentation.png")
    src = scan_dataset("isic2018", tmp_path)
    assert [(s.case_id, s.meta["paper_key"], s.meta["position"]) for s in src] == [
        ("ISIC_0000007", 7, 0),
        ("ISIC_0000043", 43, 1),
    ]
    case = src[1].load()
    assert case.image.shape == (1, 10, 14) and case.spacing == (1.0, 1.0, 1.0)
    dec = np.asarray(Image.open(idir / "ISIC_0000043.jpg").convert("RGB")).astype(np.float64)
    lum = 0.299 * dec[..., 0] + 0.587 * dec[..., 1] + 0.114 * dec[..., 2]
    assert np.max(np.abs(case.image[0] - lum)) <= 1.0
    assert case.label.sum() == 15 and set(np.unique(case.label).tolist()) == {0, 1}


# ----------------------------------------------------------------------------- generic NIfTI folder


def test_nifti_folder_layouts_and_label_map(tmp_path: Path, rng) -> None:
    a = tmp_path / "a"
    raw = xyz_labels(rng, [0, 10, 20]).astype(np.uint8)
    for cid in ("synth000_f0", "synth000_f1", "synth001_f0"):
        write_nii(a / "images" / f"{cid}.nii.gz", xyz_volume(rng))
        write_nii(a / "labels" / f"{cid}.nii.gz", raw)
    src = scan_dataset("nifti-folder", a, label_map={"10": 1, "20": 2}, class_names=["bg", "x", "y"])
    assert [s.patient_id for s in src] == ["synth000", "synth000", "synth001"]
    np.testing.assert_array_equal(src[0].load().label, np.searchsorted([0, 10, 20], raw).transpose(2, 1, 0))
    assert resolve_spec("nifti-folder", a, class_names=["bg", "x", "y"]).class_names == ("bg", "x", "y")
    # without options: the first label's values 0, 10, 20 are mapped in order
    assert resolve_spec("nifti-folder", a).class_names == ("background", "class_10", "class_20")

    b = tmp_path / "b"
    write_nii(b / "p1_image.nii.gz", xyz_volume(rng))
    write_nii(b / "p1_label.nii.gz", xyz_labels(rng, [0, 1, 2]).astype(np.uint8))
    write_nii(b / "sub" / "p2_image.nii.gz", xyz_volume(rng))
    src = scan_dataset("nifti-folder", b)
    assert [(s.case_id, s.has_label) for s in src] == [("p1", True), ("p2", False)]
    assert src[1].load().label is None and src[0].meta["paper_key"] == 1


# ----------------------------------------------------------------------------- pre-training sets


def test_pretrain_readers(tmp_path: Path, rng) -> None:
    img = xyz_volume(rng)
    write_nii(tmp_path / "chd" / "ct_1002_image.nii.gz", img, (0.3, 0.3, 0.5))
    write_nii(tmp_path / "chd" / "ct_1002_label.nii.gz", np.zeros((16, 12, 3), np.uint8))
    src = scan_dataset("chd", tmp_path / "chd")
    assert [(s.case_id, s.meta["paper_key"], s.has_label) for s in src] == [("ct_1002", 1002, False)]
    case = src[0].load()
    assert case.label is None and case.spacing == pytest.approx((0.5, 0.3, 0.3))

    subj = tmp_path / "brats" / "HGG" / "Brats18_2013_2_1"
    for mod in ("flair", "t1", "t1ce", "t2", "seg"):
        write_nii(subj / f"Brats18_2013_2_1_{mod}.nii.gz", img + len(mod))
    src = scan_dataset("brats", tmp_path / "brats", modality="t1ce")
    assert [(s.case_id, s.meta["grade"]) for s in src] == [("Brats18_2013_2_1", "HGG")]
    np.testing.assert_allclose(src[0].load().image, (img + 4).transpose(2, 1, 0))
    assert len(scan_dataset("brats", tmp_path / "brats")) == 1

    zyx = rng.normal(size=(3, 12, 16)).astype(np.float32)  # KiTS19 stores (Z, Y, X)
    aff = np.array([[0, 0, -0.8, 0], [0, -0.8, 0, 0], [-5.0, 0, 0, 0], [0, 0, 0, 1]])
    write_nii(tmp_path / "kits" / "case_00012" / "imaging.nii.gz", zyx, (5.0, 0.8, 0.8), affine=aff)
    src = scan_dataset("kits", tmp_path / "kits")
    case = src[0].load()
    assert src[0].meta["paper_key"] == 12 and case.image.shape[0] == 3 and case.spacing[0] == pytest.approx(5.0)
    np.testing.assert_allclose(case.image[1], zyx[1].T)


# ----------------------------------------------------------------------------- real data (../shared/data)


def _paper_section(key: str) -> str:
    root = Path(__file__).resolve().parents[1]
    for cand in (
        root.parent / "shared" / "reference" / "paper_splits.txt",
        Path("/work/shared/reference/paper_splits.txt"),
    ):
        if cand.exists():
            text = cand.read_text()
            return text.split(f"# {key}\n", 1)[1].split("\n# ", 1)[0]
    pytest.skip("paper_splits.txt not found")


def test_real_msd_hippocampus(shared_data: Path) -> None:
    src = scan_dataset("msd", shared_data / "msd_hippocampus")
    spec = resolve_spec("msd", shared_data / "msd_hippocampus")
    assert len(src) == 260 and spec.num_classes == 3 and spec.patch_size == 32 and spec.paper_split_key == "Hippocampus"
    assert [s.meta["paper_key"] for s in src] == list(range(260))
    test_keys = [int(v) for v in re.findall(r"\d+", _paper_section("Hippocampus").split("test:")[1])]
    assert max(test_keys) <= 259
    for s in src[:2]:
        case = s.load()
        assert case.spacing == (1.0, 1.0, 1.0) and case.image.dtype == np.float32
        assert case.label.shape == case.image.shape and set(np.unique(case.label).tolist()) <= {0, 1, 2}


def test_real_chaos_nifti(shared_data: Path) -> None:
    src = scan_dataset("chaos-nifti", shared_data / "chaos_mr_t2spir")
    assert len(src) == 20
    keys = {s.meta["paper_key"] for s in src}
    section = _paper_section("CHAOS")
    assert {int(v) for v in re.findall(r"\d+", section.split("test:")[1])} <= keys  # the published test keys exist
    case = src[0].load()
    assert case.image.shape[1:] == (256, 256) and case.spacing[1:] == pytest.approx((1.25, 1.25))
    assert set(np.unique(case.label).tolist()) <= {0, 1, 2, 3, 4}


def test_real_mscmrseg(shared_data: Path) -> None:
    src = scan_dataset("mscmrseg", shared_data / "mscmrseg_bssfp")
    assert len(src) == 35
    case = src[0].load()
    raw = np.asarray(nib.load(src[0].paths[1]).dataobj).transpose(2, 1, 0)
    np.testing.assert_array_equal(case.label, np.searchsorted([0, 200, 500, 600], raw))
    assert set(np.unique(case.label).tolist()) == {0, 1, 2, 3}


def test_real_acdc_h5_sample(shared_data: Path) -> None:
    src = scan_dataset("acdc-h5", shared_data / "acdc_h5_sample")
    assert [(s.case_id, s.patient_id) for s in src] == [("patient094_frame01", "patient094")]
    case = src[0].load()
    assert case.image.shape == (2, 174, 208) and case.meta["slice_indices"] == [2, 9]
    with h5py.File(shared_data / "acdc_h5_sample" / "patient094_frame01_slice_9.h5") as fh:
        np.testing.assert_array_equal(case.image[1], fh["image"][()])
        np.testing.assert_array_equal(case.label[1], fh["label"][()])
    assert isinstance(src[0], CaseSource) and src[0].meta["paper_key"] == 94
