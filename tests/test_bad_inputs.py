"""The bad-input corpus: each broken file gives one line naming the file and the problem, and
``verify_dataset`` reports every problem of a data set in one call."""

from __future__ import annotations

import dataclasses
import json
import os
import re
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
    assert_one_line(
        raises(scan_dataset("isic2018", tmp_path)[0].load), mask, "unknown label values [128] (expected {0, 255})"
    )
    jpg = idir / "ISIC_0000001.jpg"
    jpg.write_bytes(jpg.read_bytes()[:200])
    assert_one_line(raises(load_jpeg, jpg), jpg, "JPEG image")


def test_swapped_axes(tmp_path: Path, rng) -> None:
    root = pair_folder(tmp_path, rng, {"c1": (image(rng), labels(rng).transpose(1, 0, 2))})
    lab = root / "labels" / "c1.nii.gz"
    assert_one_line(
        raises(load_first, root, class_names=["a", "b", "c"]),
        lab,
        "label shape (4, 12, 10) differs from image shape (4, 10, 12)",
    )


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
    assert_one_line(
        raises(load_first, root, class_names=["a", "b", "c"]),
        root / "labels" / "c1.nii.gz",
        "non-integer label values [1.5]",
    )


def test_nan_slab(tmp_path: Path, rng) -> None:
    img = image(rng)
    img[:, :, 2] = np.nan  # the slab z = 2 -> D index 2
    img[0, 0, 3] = np.inf
    root = pair_folder(tmp_path, rng, {"c1": (img, labels(rng))})
    err = raises(load_first, root, class_names=["a", "b", "c"])
    assert_one_line(
        err,
        root / "images" / "c1.nii.gz",
        f"non-finite intensities: {SHAPE[0] * SHAPE[1]} NaN and 1 Inf voxels in slices [2, 3]",
    )


def test_mismatched_affine(tmp_path: Path, rng) -> None:
    root = tmp_path
    write_nii(root / "images" / "c1.nii.gz", image(rng))
    shifted = np.eye(4)
    shifted[0, 3] = 5.0
    write_nii(root / "labels" / "c1.nii.gz", labels(rng), shifted)
    err = raises(load_first, root, class_names=["a", "b", "c"])
    assert_one_line(
        err,
        root / "labels" / "c1.nii.gz",
        "label affine differs from image affine (max difference 5 > tolerance 0.001)",
    )
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
    assert (
        verify_dataset(
            sources, resolve_spec("nifti-folder", root, class_names=["x", "y", "z"]), split_case_ids=["a", "b"]
        )
        == []
    )
    # the generic spec is fine: these cases carry their own class list
    assert verify_dataset(sources, resolve_spec("nifti-folder")) == []
    # a spec declaring 4 classes disagrees with a reader mapping to 3: reported once per case
    bare = [dataclasses.replace(s, meta={}) for s in sources]
    problems = verify_dataset(bare, resolve_spec("acdc"))
    assert len(problems) == 2 and all(
        "maps labels to 3 classes but the dataset declares 4" in p.reason for p in problems
    )
    assert verify_dataset([], resolve_spec("nifti-folder"))[0].reason.startswith("no cases")


def test_verify_foreign_loader(tmp_path: Path) -> None:
    """A CaseSource whose loader is not a CaseLoader is loaded and its Case checked."""
    from medssl.data.case import Case, CaseSource

    def good() -> Case:
        return Case(
            "s1",
            "s1",
            np.arange(8, dtype=np.float32).reshape(2, 2, 2),
            np.full((2, 2, 2), 5, np.uint8),
            (1.0, 1.0, 1.0),
            "mem://s1",
        )

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


# ----------------------------------------------------------------------------- settings (issue 16)
# The same limits hold for the Python API, YAML files and the command line (tests/test_cli.py).

from medssl.config import (  # noqa: E402
    DataCfg,
    FinetuneConfig,
    ModelCfg,
    OptimCfg,
    PretrainConfig,
    TrainCfg,
    config_from_dict,
    load_config,
    numeric_fields_without_range,
)
from medssl.errors import ConfigError  # noqa: E402


def test_every_numeric_setting_declares_its_range() -> None:
    assert numeric_fields_without_range(FinetuneConfig) == []
    assert numeric_fields_without_range(PretrainConfig) == []


@pytest.mark.parametrize(
    "build,message",
    [
        (lambda: DataCfg(batch_size=0), "data.batch_size: must be >= 1, got 0"),
        (lambda: DataCfg(num_workers=-1), "data.num_workers: must be >= 0, got -1"),
        (lambda: DataCfg(test_fraction=1.0), "data.test_fraction: must be in (0, 1), got 1.0"),
        (
            lambda: DataCfg(elastic_noise_stride=0.5),
            "data.elastic_noise_stride: must be >= 1, got 0.5 (1 = per-pixel noise)",
        ),
        (lambda: DataCfg(labels="-3"), "data.labels: '-3' is negative"),
        (lambda: ModelCfg(depth=0), "model.depth: must be in [1, 8], got 0"),
        (lambda: OptimCfg(lr=0.0), "optim.lr: must be > 0, got 0.0"),
        (lambda: OptimCfg(grad_clip=-1.0), "optim.grad_clip: must be > 0, got -1.0"),
        (lambda: OptimCfg(lr=float("nan")), "optim.lr: must be a finite number > 0, got nan"),
        (lambda: TrainCfg(epochs=0), "train.epochs: must be >= 1, got 0"),
        (lambda: TrainCfg(seed=2**32), "train.seed: must be in [0, 4294967295], got 4294967296"),
        (lambda: TrainCfg(val_every=0), "train.val_every: must be >= 1, got 0"),
        (lambda: TrainCfg(device="tpu"), "train.device: expected auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
        (lambda: FinetuneConfig(p_spatial=1.5), "p_spatial: must be in [0, 1], got 1.5"),
        (lambda: FinetuneConfig(data=DataCfg(image_size=40)), "data.image_size: 40 must be a multiple of 16"),
        (lambda: config_from_dict(PretrainConfig, {"train": {"max_steps": 0}}), "train.max_steps: must be >= 1, got 0"),
    ],
)
def test_settings_out_of_range_are_refused_when_built(build, message) -> None:
    with pytest.raises(ConfigError) as ei:
        build()
    assert str(ei.value) == message or str(ei.value).startswith(message), str(ei.value)
    assert "\n" not in str(ei.value)


def test_yaml_settings_are_checked_and_the_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  epochs: 0\n")
    with pytest.raises(ConfigError) as ei:
        load_config(FinetuneConfig, f)
    assert str(ei.value) == f"{f}: train.epochs: must be >= 1, got 0"  # the file is named
    f.write_text("- train\n")
    with pytest.raises(ConfigError, match="expected a mapping of settings"):
        load_config(FinetuneConfig, f)
    assert load_config(FinetuneConfig, None, ["train.device=cuda:1"]).train.device == "cuda:1"


def test_labels_grammar() -> None:
    from medssl.data.splits import LabelSpec, canonical_labels, parse_label_spec

    assert parse_label_spec("1") == LabelSpec(count=1)  # one patient, not 100%
    assert parse_label_spec(1) == LabelSpec(count=1)
    assert parse_label_spec("1.0") == LabelSpec(fraction=1.0) == parse_label_spec("100%")
    assert parse_label_spec("0.1") == LabelSpec(fraction=0.1)
    assert [canonical_labels(v) for v in ("0.1", "10%", " 10 %", "0.25", ".5", "8", 8, "1.0")] == [
        "10%",
        "10%",
        "10%",
        "25%",
        "50%",
        "8",
        "8",
        "100%",
    ]
    for bad, frag in (
        ("-3", "negative"),
        ("0", "no labelled patient"),
        ("150%", "must be in (0%, 100%]"),
        ("abc", "neither a count nor a fraction"),
        ("2.0", "for 2 patients write 2"),
        (True, "expected a count"),
    ):
        with pytest.raises(ConfigError, match=re.escape(frag)):
            parse_label_spec(bad)
    assert DataCfg(labels="0.1").labels == "10%"  # stored canonically: reports group "0.1" with "10%"


def test_split_counts_are_patients_and_may_not_exceed_the_pool(synthetic_store: Path) -> None:
    from medssl.data.splits import make_split
    from medssl.data.store import SliceStore

    store = SliceStore(synthetic_store)  # 6 patients x 2 frames: 1 test, 1 validation, 4 for training
    pid = lambda ids: {store.info(i).patient_id for i in ids}  # noqa: E731
    one = make_split(store, "1", seed=0)
    assert len(pid(one.train)) == 1 and one.labels == "1"
    assert len(pid(make_split(store, "4", seed=0).train)) == 4
    assert pid(make_split(store, "100%", seed=0).train) == pid(make_split(store, "1.0", seed=0).pool)
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "data.labels: 5 labelled patients asked, but only 4 are left for training (6 labelled patients: 1 test, 1 validation)"
        ),
    ):
        make_split(store, "5", seed=0)
    assert len(pid(make_split(store, "5", seed=0, protocol="paper").train)) == 5  # no validation set there
    with pytest.raises(ConfigError, match="too few for a test"):
        make_split(store, "1", seed=0, test_fraction=0.5, val_fraction=0.99)


# ----------------------------------------------------------------------------- pre-trained weights


def _pretrain_file(path: Path, width: int, depth: int = 4, parts: tuple[str, ...] = ("encoder",)) -> Path:
    import torch

    from medssl.models import UNet

    net = UNet(1, 2, base_width=width, depth=depth)
    state = {k: v for k, v in net.state_dict().items() if k.startswith(tuple(p + "." for p in parts))}
    torch.save(
        {
            "format": "medssl-pretrain",
            "method": "simclr",
            "pretrains": list(parts),
            "state_dict": state,
            "model": {"name": "unet", "base_width": width, "depth": depth, "in_channels": 1},
        },
        path,
    )
    return path


def test_weights_of_another_width_or_depth_are_refused(tmp_path: Path) -> None:
    import torch

    from medssl.models import UNet
    from medssl.models.checkpoint import load_pretrained

    model = UNet(1, 3, base_width=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ck = _pretrain_file(tmp_path / "pretrain.pt", width=4)
    err = raises(load_pretrained, model, ck)
    assert_one_line(
        err, ck, "pre-trained weights do not fit this model (encoder: 0 of 52 tensors loaded, 52 differ in shape"
    )
    assert "pre-trained with model base_width=4, depth=4, in_channels=1, this model has base_width=8" in str(err)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # untouched
    deep = _pretrain_file(tmp_path / "deep.pt", width=8, depth=3)
    assert "this model has base_width=8, depth=4" in str(raises(load_pretrained, model, deep))
    # encoder + decoder declared, decoder absent from the file: missing tensors are named
    half = _pretrain_file(tmp_path / "half.pt", width=8)
    obj = torch.load(half, weights_only=False)
    obj["pretrains"] = ["encoder", "decoder"]
    torch.save(obj, half)
    assert "decoder: 0 of" in str(raises(load_pretrained, model, half)) and "are not in the checkpoint" in str(
        raises(load_pretrained, model, half)
    )
    loose = load_pretrained(model, half, strict=False)
    assert not loose.complete and loose.per_part["encoder"]["loaded"] == loose.per_part["encoder"]["expected"] == 52


def test_matching_weights_load_completely_from_a_run_folder(tmp_path: Path) -> None:
    import torch

    from medssl.models import UNet, convert_reference_state_dict
    from medssl.models.checkpoint import load_pretrained, resolve_checkpoint

    run = tmp_path / "pre"
    run.mkdir()
    _pretrain_file(run / "pretrain.pt", width=4, parts=("encoder", "decoder"))
    assert resolve_checkpoint(run) == run / "pretrain.pt"
    report = load_pretrained(UNet(1, 3, base_width=4), run)
    assert report.complete and report.source == str(run / "pretrain.pt")
    assert set(report.per_part) == {"encoder", "decoder"} and report.to_dict()["complete"] is True
    # a reference-code state dict without BatchNorm counters still loads completely
    sd = {
        k: v
        for k, v in UNet(1, 2, base_width=4).state_dict().items()
        if k.startswith("encoder.") and not k.endswith("num_batches_tracked")
    }
    torch.save({"net": sd}, tmp_path / "ref.pt")
    assert load_pretrained(UNet(1, 3, base_width=4), tmp_path / "ref.pt").complete
    assert convert_reference_state_dict(sd).keys() == sd.keys()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line(raises(resolve_checkpoint, empty), empty, "no pretrain.pt in this folder")


def test_init_load_problem_reads_old_and_new_reports(tmp_path: Path) -> None:
    from medssl.engine.rundir import init_load_problem

    assert init_load_problem(tmp_path) is None  # no --init
    (tmp_path / "load_report.json").write_text(
        json.dumps({"complete": True, "per_part": {"encoder": {"loaded": 52, "expected": 52}}})
    )
    assert init_load_problem(tmp_path) is None
    (tmp_path / "load_report.json").write_text(
        json.dumps({"complete": False, "per_part": {"encoder": {"loaded": 3, "expected": 52}}})
    )
    assert "encoder 3/52" in init_load_problem(tmp_path)
    legacy = {
        "loaded": [f"encoder.b{i}.num_batches_tracked" for i in range(8)],
        "missing": ["encoder.w"],
        "shape_mismatch": ["encoder.w: ..."],
    }
    (tmp_path / "load_report.json").write_text(json.dumps(legacy))
    assert "0 tensors loaded, 1 shape mismatches" in init_load_problem(tmp_path)
    (tmp_path / "load_report.json").write_text(
        json.dumps({"loaded": ["encoder.w"], "missing": ["encoder.b.num_batches_tracked"], "shape_mismatch": []})
    )
    assert init_load_problem(tmp_path) is None


# ----------------------------------------------------------------------------- run folders


def test_run_folder_binding(tmp_path: Path) -> None:
    import yaml

    from medssl.engine.rundir import bind_run_dir, config_differences, init_run_dir, mark_done

    cfg = FinetuneConfig(data=DataCfg(path=str(tmp_path / "store"), labels="0.1"), out=str(tmp_path / "run"))
    run = tmp_path / "run"
    assert bind_run_dir(run, cfg, "finetune").status == "new"
    init_run_dir(run, cfg, "finetune", "cpu")
    assert bind_run_dir(run, cfg, "finetune").status == "resume"
    # neutral fields, a relative path to the same store and "10%" for "0.1" are the same configuration
    same = FinetuneConfig(
        data=DataCfg(path=os.path.relpath(tmp_path / "store"), labels="10%", num_workers=7),
        train=TrainCfg(device="cpu", progress=False, logger="tensorboard", log_every=3),
        out="elsewhere",
    )
    assert config_differences(yaml.safe_load((run / "config.yaml").read_text()), same) == []
    other = FinetuneConfig(data=DataCfg(path=str(tmp_path / "store"), labels="25%"), train=TrainCfg(amp="none"))
    with pytest.raises(ConfigError) as ei:
        bind_run_dir(run, other, "finetune")
    assert "(data.labels: '10%' -> '25%'; train.amp: 'auto' -> 'none')" in str(ei.value) and "--no-resume" in str(
        ei.value
    )
    assert bind_run_dir(run, other, "finetune", resume=False).status == "start_over"
    (run / "summary.json").write_text(json.dumps({"summary": [{"class": "mean"}]}))
    mark_done(run)
    bound = bind_run_dir(run, cfg, "finetune")
    assert bound.done
    with pytest.raises(DataError, match="medssl evaluate"):  # incomplete result files are never shown (issue 26)
        bound.summary()
    with pytest.raises(DataError, match="holds a fine-tuning run; give another folder"):
        bind_run_dir(run, PretrainConfig(), "pretrain")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    with pytest.raises(DataError, match=re.escape("is not empty and holds no medssl run (thesis.tex)")):
        bind_run_dir(tmp_path / "mine", cfg, "finetune", resume=False)
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="exists and is not a folder"):
        bind_run_dir(tmp_path / "f", cfg, "finetune")
    # starting over replaces the run's files and keeps the user's
    (run / "notes.txt").write_text("mine")
    init_run_dir(run, other, "finetune", "cpu", start_over=True)
    assert not (run / "summary.json").exists() and (run / "notes.txt").is_file()
    assert json.loads((run / "run.json").read_text())["status"] == "running"


def test_prepare_target_rules(tmp_path: Path) -> None:
    from medssl.data.store import prepare
    from medssl.data.store_folder import begin_store_folder, check_prepare_target

    plan = {"dataset": "synthetic", "target_spacing": None, "reader_options": {"size": (32, 32)}}
    assert check_prepare_target(tmp_path / "new", plan) == "new"
    begin_store_folder(tmp_path / "new", plan, "new")  # an interrupted prepare: only the partial plan
    (tmp_path / "new" / "images").mkdir()
    assert check_prepare_target(tmp_path / "new", plan) == "reuse"  # tuples compare as stored lists
    with pytest.raises(DataError, match="holds an unfinished prepared store of another dataset or settings"):
        check_prepare_target(tmp_path / "new", {**plan, "dataset": "msd"})
    assert check_prepare_target(tmp_path / "new", {**plan, "dataset": "msd"}, overwrite=True) == "replace"
    with pytest.raises(ConfigError, match="target_spacing: expected a positive spacing"):
        check_prepare_target(tmp_path / "x", {**plan, "target_spacing": 0})
    with pytest.raises(ConfigError, match="target_spacing"):
        prepare("synthetic", "builtin", tmp_path / "s", target_spacing=-1.0, progress=False)
    assert not (tmp_path / "s").exists()


def test_supercl_figure_refuses_bad_counts_and_formats(synthetic_store: Path, tmp_path: Path) -> None:
    from medssl.reporting.supercl_figure import supercl_figure

    for n in (0, -2):
        with pytest.raises(ConfigError, match=f"n: the number of slices must be a positive integer, got {n}"):
            supercl_figure(synthetic_store, tmp_path / "f.png", n=n)
    with pytest.raises(ConfigError, match="cannot write a figure in format 'xyz'"):
        supercl_figure(synthetic_store, tmp_path / "f.xyz", n=2)
    assert not list(tmp_path.iterdir())


def test_benchmark_grid_labels_are_canonical(tmp_path: Path) -> None:
    from medssl.benchmark import load_grid, plan_cells

    g = tmp_path / "g.yaml"
    g.write_text(
        "methods: [scratch]\nlabels: ['10%', 0.1, '2']\ndatasets: [{name: d, dataset: synthetic, src: builtin}]\n"
    )
    grid = load_grid(g)
    assert grid["labels"] == ["10%", "2"]
    assert [c.name for c in plan_cells(grid)] == ["scratch__d__10pct__s1234", "scratch__d__2__s1234"]
