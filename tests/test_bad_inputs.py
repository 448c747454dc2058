"""The bad-input corpus: each broken file gives one line naming the file and the problem, and
``verify_dataset`` reports every problem of a data set in one call."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medssl.data.io import load_dicom_series, load_h5, load_jpeg, load_nifti, load_png, read_nifti_header
from medssl.data.readers import resolve_spec, scan_dataset
from medssl.data.verify import Problem, verify_dataset
from medssl.errors import DataError

SHAPE = (12, 10, 4)  # (X, Y, Z) on disk -> (D, H, W) = (4, 10, 12)


def write_nii(path: Path, arr: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(arr), np.eye(4) if affine is None else affine), str(path))
    return path


def image(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(50, 10, size=SHAPE).astype(np.float32)


def labels(rng: np.random.Generator, k: int = 3) -> np.ndarray:
    lab = rng.integers(0, k, size=SHAPE).astype(np.uint8)
    lab.flat[:k] = np.arange(k)
    return lab


def assert_one_line(err: DataError | Problem, path: Path, *fragments: str) -> None:
    msg = str(err)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: "), msg
    for frag in fragments:
        assert frag in msg, msg


def raises(fn, *args, **kwargs) -> DataError:
    with pytest.raises(DataError) as ei:
        fn(*args, **kwargs)
    return ei.value


def pair_folder(root: Path, rng, cases: dict[str, tuple[np.ndarray | None, np.ndarray | None]]) -> Path:
    for cid, (img, lab) in cases.items():
        if img is not None:
            write_nii(root / "images" / f"{cid}.nii.gz", img)
        if lab is not None:
            write_nii(root / "labels" / f"{cid}.nii.gz", lab)
    return root


def load_first(root: Path, **options):
    return scan_dataset("nifti-folder", root, **options)[0].load()


# ----------------------------------------------------------------------------- single files


def test_truncated_nifti_gz(tmp_path: Path, rng) -> None:
    good = write_nii(tmp_path / "good.nii.gz", image(rng))
    bad = tmp_path / "bad.nii.gz"
    data = good.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    assert_one_line(raises(load_nifti, bad), bad, "corrupt or truncated gzip data")
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(b"\x1f\x8b" + bytes(range(100)))
    assert_one_line(raises(load_nifti, garbage), garbage, "corrupt or truncated gzip data")


def test_truncated_plain_nifti(tmp_path: Path, rng) -> None:
    good = write_nii(tmp_path / "good.nii", image(rng))
    bad = tmp_path / "bad.nii"
    bad.write_bytes(good.read_bytes()[:-100])
    assert_one_line(raises(load_nifti, bad), bad, "truncated or unreadable voxel data")


def test_empty_and_missing_files(tmp_path: Path) -> None:
    for name, fn in (("e.nii.gz", load_nifti), ("e.h5", load_h5), ("e.png", load_png), ("e.jpg", load_jpeg)):
        p = tmp_path / name
        p.write_bytes(b"")
        assert_one_line(raises(fn, p), p, "empty file (0 bytes)")
    assert_one_line(raises(load_nifti, tmp_path / "gone.nii.gz"), tmp_path / "gone.nii.gz", "file not found")


def test_wrong_dtype(tmp_path: Path, rng) -> None:
    p = write_nii(tmp_path / "complex.nii.gz", image(rng).astype(np.complex64))
    assert_one_line(raises(load_nifti, p), p, "unsupported data type complex64")
    assert_one_line(raises(read_nifti_header, p), p, "unsupported data type complex64")
    h = tmp_path / "strings.h5"
    with h5py.File(h, "w") as fh:
        fh["image"] = np.array([b"ab", b"cd"])
        fh["label"] = np.zeros(2, np.uint8)
    assert_one_line(raises(load_h5, h, ("image", "label")), h, "dataset 'image' has unsupported data type")


def test_zero_size_volume(tmp_path: Path) -> None:
    p = write_nii(tmp_path / "zero.nii.gz", np.zeros((12, 10, 0), np.float32))
    assert_one_line(raises(load_nifti, p), p, "zero-size volume")


def test_wrong_dimensionality(tmp_path: Path, rng) -> None:
    root = pair_folder(tmp_path, rng, {"c1": (rng.normal(size=SHAPE + (2,)).astype(np.float32), labels(rng))})
    img = root / "images" / "c1.nii.gz"
    assert_one_line(raises(load_first, root), img, "expected a 3D volume, got a 4D array of shape (12, 10, 4, 2)")


def test_hdf5_without_label(tmp_path: Path) -> None:
    p = tmp_path / "patient001_frame01_slice_0.h5"
    with h5py.File(p, "w") as fh:
        fh["image"] = np.zeros((8, 8), np.float32)
    assert_one_line(raises(load_h5, p, ("image", "label")), p, "missing dataset 'label' (found: image)")
    err = raises(scan_dataset("acdc-h5", tmp_path)[0].load)
    assert_one_line(err, p, "missing dataset 'label'")
    notes = tmp_path / "notes.h5"
    notes.write_bytes(b"not an hdf5 file at all")
    assert_one_line(raises(load_h5, notes), notes, "not a readable HDF5 file")


def test_png_mask_of_wrong_size(tmp_path: Path, rng) -> None:
    idir = tmp_path / "ISIC2018_Task1-2_Training_Input"
    mdir = tmp_path / "ISIC2018_Task1_Training_GroundTruth"
    idir.mkdir()
    mdir.mkdir()
    Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).save(idir / "ISIC_0000001.jpg")
    mask = mdir / "ISIC_0000001_segmentation.png"
    Image.fromarray(np.zeros((12, 15), np.uint8)).save(mask)
    err = raises(scan_dataset("isic2018", tmp_path)[0].load)
    assert_one_line(err, mask, "mask size 12x15 (H x W) differs from image size 12x16")


def test_isic_mask_values_and_truncated_jpeg(tmp_path: Path, rng) -> None:
    idir = tmp_path / "ISIC2018_Task1-2_Training_Input"
    mdir = tmp_path / "ISIC2018_Task1_Training_GroundTruth"
    idir.mkdir()
    mdir.mkdir()
    Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).save(idir / "ISIC_0000001.jpg")
    m = np.zeros((12, 16), np.uint8)
    m[0, 0], m[0, 1] = 128, 255
    mask = mdir / "ISIC_0000001_segmentation.png"
    Image.fromarray(m).save(mask)
    assert_one_line(raises(scan_dataset("isic2018", tmp_path)[0].load), mask, "unknown label values [128] (expected {0, 255})")
    jpg = idir / "ISIC_0000001.jpg"
    jpg.write_bytes(jpg.read_bytes()[:200])
    assert_one_line(raises(load_jpeg, jpg), jpg, "JPEG image")


def test_swapped_axes(tmp_path: Path, rng) -> None:
    root = pair_folder(tmp_path, rng, {"c1": (image(rng), labels(rng).transpose(1, 0, 2))})
    lab = root / "labels" / "c1.nii.gz"
    assert_one_line(raises(load_first, root, class_names=["a", "b", "c"]), lab, "label shape (4, 12, 10) differs from image shape (4, 10, 12)")


def test_label_7_in_three_class_set(tmp_path: Path, rng) -> None:
    lab = labels(rng)
    lab[3, 3, 1] = 7
    root = pair_folder(tmp_path, rng, {"c1": (image(rng), lab)})
    err = raises(load_first, root, class_names=["background", "anterior", "posterior"])
    assert_one_line(err, root / "labels" / "c1.nii.gz", "unknown label values [7] (expected {0, 1, 2})")


def test_non_integer_labels(tmp_path: Path, rng) -> None:
    lab = labels(rng).astype(np.float32)
    lab[0, 0, 0] = 1.5
    root = pair_folder(tmp_path, rng, {"c1": (image(rng), lab)})
    assert_one_line(raises(load_first, root, class_names=["a", "b", "c"]), root / "labels" / "c1.nii.gz", "non-integer label values [1.5]")


def test_nan_slab(tmp_path: Path, rng) -> None:
    img = image(rng)
    img[:, :, 2] = np.nan  # the slab z = 2 -> D index 2
    img[0, 0, 3] = np.inf
    root = pair_folder(tmp_path, rng, {"c1": (img, labels(rng))})
    err = raises(load_first, root, class_names=["a", "b", "c"])
    assert_one_line(err, root / "images" / "c1.nii.gz", f"non-finite intensities: {SHAPE[0] * SHAPE[1]} NaN and 1 Inf voxels in slices [2, 3]")


def test_mismatched_affine(tmp_path: Path, rng) -> None:
    root = tmp_path
    write_nii(root / "images" / "c1.nii.gz", image(rng))
    shifted = np.eye(4)
    shifted[0, 3] = 5.0
    write_nii(root / "labels" / "c1.nii.gz", labels(rng), shifted)
    err = raises(load_first, root, class_names=["a", "b", "c"])
    assert_one_line(err, root / "labels" / "c1.nii.gz", "label affine differs from image affine (max difference 5 > tolerance 0.001)")
    # within tolerance passes
    near = np.eye(4)
    near[0, 3] = 1e-5
    write_nii(root / "labels" / "c1.nii.gz", labels(rng), near)
    assert load_first(root, class_names=["a", "b", "c"]).label.shape == (4, 10, 12)


def test_dicom_folder_problems(tmp_path: Path) -> None:
    d = tmp_path / "DICOM_anon"
    d.mkdir()
    assert_one_line(raises(load_dicom_series, d), d, "no DICOM files in folder")
    junk = d / "IMG-0001.dcm"
    junk.write_bytes(b"this is not dicom" * 20)
    assert_one_line(raises(load_dicom_series, d), junk, "not a DICOM file")


def test_error_message_format() -> None:
    err = DataError("/x/label_3.nii.gz", "label value 7 not in {0, 1, 2}")
    assert str(err) == "/x/label_3.nii.gz: label value 7 not in {0, 1, 2}"


# ----------------------------------------------------------------------------- verify_dataset


def test_verify_reports_every_problem(tmp_path: Path, rng) -> None:
    names = ["background", "anterior", "posterior"]
    bad_lab = labels(rng)
    bad_lab[0, 0, 0] = 7
    nan_img = image(rng)
    nan_img[:, :, 1] = np.nan
    root = pair_folder(
        tmp_path,
        rng,
        {
            "a_clean": (image(rng), labels(rng)),
            "b_label7": (image(rng), bad_lab),
            "d_nolabel": (image(rng), None),
            "e_const": (np.full(SHAPE, 3.0, np.float32), labels(rng)),
            "f_swapped": (image(rng), labels(rng).transpose(1, 0, 2)),
        },
    )
    # c: NaN slab AND mismatched affine AND a label 9: three problems in one case
    write_nii(root / "images" / "c_multi.nii.gz", nan_img)
    shifted = np.diag([1.0, 1.0, 2.0, 1.0])
    c_lab = labels(rng)
    c_lab[1, 1, 1] = 9
    write_nii(root / "labels" / "c_multi.nii.gz", c_lab, shifted)
    (root / "images" / "g_empty.nii.gz").write_bytes(b"")
    write_nii(root / "labels" / "g_empty.nii.gz", labels(rng))
    trunc = root / "images" / "h_trunc.nii.gz"
    write_nii(trunc, image(rng))
    trunc.write_bytes(trunc.read_bytes()[:150])
    write_nii(root / "labels" / "h_trunc.nii.gz", labels(rng))

    sources = scan_dataset("nifti-folder", root, class_names=names)
    sources.append(dataclasses.replace(sources[0]))  # a duplicate case id
    spec = resolve_spec("nifti-folder", root, class_names=names)
    problems = verify_dataset(sources, spec, split_case_ids=["a_clean", "z_missing"])

    img, lab = root / "images", root / "labels"
    expected = [
        (str(img / "a_clean.nii.gz"), "a_clean", "duplicate case id 'a_clean'"),
        ("split list", "z_missing", "names case 'z_missing' that is not in the data set"),
        (str(lab / "b_label7.nii.gz"), "b_label7", "unknown label values [7] (expected {0, 1, 2})"),
        (str(img / "c_multi.nii.gz"), "c_multi", "non-finite intensities"),
        (str(lab / "c_multi.nii.gz"), "c_multi", "label voxel spacing (2, 1, 1) differs from image spacing (1, 1, 1)"),
        (str(lab / "c_multi.nii.gz"), "c_multi", "label affine differs from image affine"),
        (str(lab / "c_multi.nii.gz"), "c_multi", "unknown label values [9]"),
        (str(img / "d_nolabel.nii.gz"), "d_nolabel", f"no label file (expected {lab / 'd_nolabel.nii.gz'})"),
        (str(img / "e_const.nii.gz"), "e_const", "constant image (every voxel is 3)"),
        (str(lab / "f_swapped.nii.gz"), "f_swapped", "label shape (4, 12, 10) differs from image shape (4, 10, 12)"),
        (str(img / "g_empty.nii.gz"), "g_empty", "empty file (0 bytes)"),
        (str(img / "h_trunc.nii.gz"), "h_trunc", "corrupt or truncated gzip data"),
    ]
    for path, cid, frag in expected:
        hits = [p for p in problems if p.path == path and p.case_id == cid and frag in p.reason]
        assert len(hits) == 1, (path, frag, [str(p) for p in problems])
    # the clean case has no problem of its own; nothing unexpected is reported
    assert not [p for p in problems if p.case_id == "a_clean" and "duplicate" not in p.reason]
    assert len(problems) == len(expected)
    for p in problems:
        assert str(p) == f"{p.path}: {p.reason}" and "\n" not in str(p)


def test_verify_clean_dataset_and_class_count(tmp_path: Path, rng) -> None:
    root = pair_folder(tmp_path, rng, {"a": (image(rng), labels(rng)), "b": (image(rng), labels(rng))})
    sources = scan_dataset("nifti-folder", root, class_names=["x", "y", "z"])
    assert verify_dataset(sources, resolve_spec("nifti-folder", root, class_names=["x", "y", "z"]), split_case_ids=["a", "b"]) == []
    # the generic spec is fine: these cases carry their own class list
    assert verify_dataset(sources, resolve_spec("nifti-folder")) == []
    # a spec declaring 4 classes disagrees with a reader mapping to 3: reported once per case
    bare = [dataclasses.replace(s, meta={}) for s in sources]
    problems = verify_dataset(bare, resolve_spec("acdc"))
    assert len(problems) == 2 and all("maps labels to 3 classes but the dataset declares 4" in p.reason for p in problems)
    assert verify_dataset([], resolve_spec("nifti-folder"))[0].reason.startswith("no cases")


def test_verify_foreign_loader(tmp_path: Path) -> None:
    """A CaseSource whose loader is not a CaseLoader is loaded and its Case checked."""
    from medssl.data.case import Case, CaseSource

    def good() -> Case:
        return Case("s1", "s1", np.arange(8, dtype=np.float32).reshape(2, 2, 2), np.full((2, 2, 2), 5, np.uint8), (1.0, 1.0, 1.0), "mem://s1")

    def boom() -> Case:
        raise RuntimeError("disk\non fire")

    blob = tmp_path / "s1.bin"
    blob.write_bytes(b"x")
    srcs = [CaseSource("s1", "s1", (str(blob),), good), CaseSource("s2", "s2", (str(tmp_path),), boom)]
    spec = resolve_spec("nifti-folder")
    out = verify_dataset(srcs, spec)
    assert [(p.case_id, p.reason) for p in out] == [
        ("s1", "label values [5] outside 0..1"),
        ("s2", "unreadable (RuntimeError: disk on fire)"),
    ]
