"""Inputs found by an adversarial probe of the commands that used to give a raw error ("internal
error", a traceback) or a silently wrong answer; each now gives one line naming the file and the problem.

Tiny synthetic files only (a few 12x10x4 volumes, width-4 networks): the module runs in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medssl.data.readers import scan_dataset
from medssl.data.readers.nifti_folder import find_pairs, resolve_labels
from medssl.errors import DataError

SHAPE = (12, 10, 4)  # (X, Y, Z) on disk


def write_nii(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(arr), np.eye(4)), str(path))
    return path


def labels(values: tuple[int, ...] = (0, 1, 2), dtype: type = np.int16) -> np.ndarray:
    lab = np.zeros(SHAPE, dtype)
    for i, v in enumerate(values):
        lab[i, :, :] = v
    return lab


def pair_folder(root: Path, lab: np.ndarray, n: int = 2) -> Path:
    g = np.random.default_rng(0)
    for i in range(n):
        write_nii(root / "images" / f"c{i}.nii.gz", g.normal(size=SHAPE).astype(np.float32))
        write_nii(root / "labels" / f"c{i}.nii.gz", lab)
    return root


def resolved(root: Path):
    return resolve_labels(root, find_pairs(root), None, None)


# ------------------------------------------------------------------------------ nifti-folder labels


def test_negative_label_in_the_first_case_keeps_raw_0_as_background(tmp_path: Path) -> None:
    lmap, names = resolved(pair_folder(tmp_path, labels((-1, 0, 2))))
    assert lmap.values[0] == 0 and names[0] == "background"  # was: -1 -> 0 and raw 0 -> class 1
    assert dict(lmap.values) == {0: 0, -1: 1, 2: 2} and names == ("background", "class_-1", "class_2")


def test_nan_in_the_first_label_is_a_case_problem_not_an_internal_error(tmp_path: Path) -> None:
    lab = labels((0, 1, 2), np.float32)
    lab[0, 0, 0] = np.nan
    root = pair_folder(tmp_path, lab, n=1)
    _lmap, names = resolved(root)  # raised ValueError (cannot convert float NaN to integer)
    assert names == ("background", "class_1", "class_2")
    with pytest.raises(DataError, match="non-finite label values"):
        scan_dataset("nifti-folder", root)[0].load()


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('{"labels": {"0": "background", ', "dataset.json: not valid JSON"),  # truncated: was silently ignored
        ('{"labels": {"background": "zero", "x": "y"}}', "'labels' must map label values to names"),  # ValueError
        ('{"labels": {"whole tumour": [1, 2]}}', "'labels' must map label values to names"),  # TypeError
        ('{"labels": ["background", "liver"]}', "'labels' must map label values to names"),
    ],
)
def test_unreadable_dataset_json_is_named(tmp_path: Path, text: str, fragment: str) -> None:
    root = pair_folder(tmp_path, labels())
    (root / "dataset.json").write_text(text)
    with pytest.raises(DataError, match=fragment) as ei:
        resolved(root)
    assert str(ei.value).startswith(str(root / "dataset.json")) and "\n" not in str(ei.value)


def test_dataset_json_label_values_are_used_as_written(tmp_path: Path) -> None:
    root = pair_folder(tmp_path, labels((0, 1, 5)))
    (root / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "a", "5": "b"}}))
    lmap, names = resolved(root)
    assert dict(lmap.values) == {0: 0, 1: 1, 5: 2} and names == ("background", "a", "b")  # was: 5 unknown, 2 = b
    (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "a": 1, "b": 5}}))  # nnU-Net v2
    assert resolved(root) == (lmap, names)
    assert scan_dataset("nifti-folder", root)[0].load().label.max() == 2


def test_broken_link_is_a_problem_not_a_missing_case(tmp_path: Path) -> None:
    from medssl.data.readers import resolve_spec
    from medssl.data.verify import verify_dataset

    root = pair_folder(tmp_path, labels(), n=2)
    (root / "images" / "c1.nii.gz").unlink()
    (root / "images" / "c1.nii.gz").symlink_to(tmp_path / "gone.nii.gz")
    assert [c for c, _, _ in find_pairs(root)] == ["c0", "c1"]  # was: c1 silently left out
    problems = verify_dataset(scan_dataset("nifti-folder", root), resolve_spec("nifti-folder"))
    assert [str(p) for p in problems] == [f"{root / 'images' / 'c1.nii.gz'}: broken link to {tmp_path / 'gone.nii.gz'}"]


# ------------------------------------------------------------------------------ stores and checkpoints


class _Store:
    """The little of a SliceStore that ``check_store_labels`` reads."""

    def __init__(self, root: Path, class_names: list[str], labels: dict[str, np.ndarray | None]) -> None:
        from types import SimpleNamespace

        self.root, self.class_names, self._labels = root, class_names, labels
        self.num_classes = len(class_names)
        self.cases = [SimpleNamespace(case_id=c) for c in labels]

    def label(self, case_id: str) -> np.ndarray | None:
        return self._labels[case_id]


@pytest.mark.parametrize("names", [["background"], ["background", "liver"]])
def test_store_of_background_only_labels_is_refused_before_training(tmp_path: Path, names: list[str]) -> None:
    from medssl.run_checks import check_store_labels

    empty = {"a": np.zeros((2, 8, 8), np.uint8), "b": np.zeros((2, 8, 8), np.uint8), "u": None}
    with pytest.raises(DataError, match=r"its labels hold background only \(2 labelled cases") as ei:
        check_store_labels(_Store(tmp_path, names, empty))  # was: NaN loss at step 1 blaming the learning rate
    assert str(ei.value).startswith(f"{tmp_path}: ")
    one = {**empty, "b": np.ones((2, 8, 8), np.uint8)}
    check_store_labels(_Store(tmp_path, ["background", "liver"], one))  # one foreground voxel is enough
    check_store_labels(_Store(tmp_path, ["background"], {"u": None}))  # unlabelled (pre-training) stores pass


def _unet_state(width: int = 4, classes: int = 3) -> dict:
    from medssl.config import ModelCfg
    from medssl.models.factory import create_model

    return create_model(ModelCfg(base_width=width), classes).state_dict()


def test_pretrained_checkpoint_with_nan_weights_is_refused(tmp_path: Path) -> None:
    import torch

    from medssl.config import ModelCfg
    from medssl.models.checkpoint import load_pretrained
    from medssl.models.factory import create_model

    enc = {k: v for k, v in _unet_state().items() if k.startswith("encoder.")}
    enc["encoder.stages.0.0.0.weight"] = enc["encoder.stages.0.0.0.weight"] * float("nan")
    path = tmp_path / "pretrain.pt"
    torch.save({"format": "medssl-pretrain", "method": "simclr", "pretrains": ["encoder"], "state_dict": enc}, path)
    model = create_model(ModelCfg(base_width=4), 3)
    before = model.encoder.stages[0][0][0].weight.detach().clone()
    with pytest.raises(DataError, match=r"1 of \d+ weight tensors hold NaN or infinite values") as ei:
        load_pretrained(model, path)  # was: loaded, then "non-finite loss ... lower optim.lr"
    assert str(ei.value).startswith(f"{path}: ") and "encoder.stages.0.0.0.weight" in str(ei.value)
    assert torch.equal(model.encoder.stages[0][0][0].weight, before)  # the model is left untouched


def test_run_checkpoint_with_nan_weights_is_refused_by_predict_and_export(tmp_path: Path) -> None:
    import torch

    from medssl.inference.runspec import RunSpec
    from medssl.inference.segmenter import load_network

    state = _unet_state()
    path = tmp_path / "checkpoint_best.pt"
    torch.save({"model": state}, path)
    spec = RunSpec(tmp_path, path, tmp_path, ["bg", "a", "b"], None, "zscore", "zero", 16, 1, {"base_width": 4})
    load_network(spec, torch.device("cpu"))
    state["head.weight"] = torch.full_like(state["head.weight"], float("inf"))
    torch.save({"model": state}, path)
    with pytest.raises(DataError, match=r"1 of \d+ weight tensors hold NaN or infinite values \(first: head"):
        load_network(spec, torch.device("cpu"))  # was: every label map silently background


# ------------------------------------------------------------------------------ predict


def _with_pixdim(path: Path, x_spacing: float) -> Path:
    """Rewrite a .nii.gz with its first voxel size set to ``x_spacing`` (and no qform/sform), as a broken
    converter writes it; nibabel refuses to write such a header itself."""
    import gzip
    import struct

    raw = bytearray(gzip.decompress(path.read_bytes()))
    struct.pack_into("<f", raw, 80, x_spacing)  # pixdim[1]
    struct.pack_into("<hh", raw, 252, 0, 0)  # qform_code, sform_code
    path.write_bytes(gzip.compress(bytes(raw)))
    return path


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_predict_input_with_non_finite_voxel_spacing_is_named(tmp_path: Path, bad: float) -> None:
    from medssl.inference.scans import discover_inputs, read_scan

    path = write_nii(tmp_path / "scan.nii.gz", np.ones(SHAPE, np.float32))
    assert read_scan(discover_inputs(path)[0]).spacing == (1.0, 1.0, 1.0)
    _with_pixdim(path, bad)
    with pytest.raises(DataError) as ei:  # was: an internal error (HeaderDataError) when saving the label map
        read_scan(discover_inputs(path)[0])
    assert str(ei.value) == f"{path}: invalid voxel spacing (1.0, 1.0, {bad}) (D, H, W) in the header: fix its pixdim"


@pytest.mark.parametrize("classes", [None, "[]"])
def test_predict_output_with_maps_of_unknown_origin_is_not_resumed(tmp_path: Path, classes: str | None) -> None:
    from medssl.inference.pipeline import check_same_settings

    if classes is not None:
        (tmp_path / "classes.json").write_text(classes)
    with pytest.raises(DataError, match="give --overwrite") as ei:  # was: 3 maps skipped as done, silently
        check_same_settings(None, tmp_path, 3)
    where = tmp_path if classes is None else tmp_path / "classes.json"
    assert str(ei.value).startswith(f"{where}: ") and "\n" not in str(ei.value)
    check_same_settings(None, tmp_path, 0)  # nothing skipped (a new folder, or --overwrite): nothing to check


# ------------------------------------------------------------------------------ report and bundles

METRICS_HEADER = "case_id,class_index,class_name,dsc,jc,hd95,asd,tp,fp,fn\n"


def minimal_run(folder: Path, mean: dict | None = None, row: str = "c1,1,liver,0.5,0.33,4.0,1.0,10,5,5") -> Path:
    """A finished run as another tool might write it: run.json, summary.json, metrics.csv (no splits.json)."""
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"kind": "finetune", "status": "done", "method": "scratch"}))
    summary = {"protocol": "standard", "mean": mean if mean is not None else {"dsc": 0.5, "hd95": 4.0}}
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "metrics.csv").write_text(METRICS_HEADER + row + "\n")
    return folder


@pytest.mark.parametrize(
    "mean, fragment",
    [
        ({"dsc": 7.0}, "summary.json: mean: dsc = 7.0 is out of range"),  # was: a 700 % DSC in the table
        ({"hd95": -5.0}, "summary.json: mean: hd95 = -5.0 is out of range"),
        ({"dsc": "abc"}, "summary.json: mean: dsc is not a number ('abc')"),  # was: shown as "–"
        ({"dsc": True}, "summary.json: mean: dsc is not a number ('True')"),
        ({"nsd": 1.5}, "summary.json: mean: nsd = 1.5 is out of range"),
    ],
)
def test_summary_means_out_of_range_or_not_numbers_are_named(tmp_path: Path, mean: dict, fragment: str) -> None:
    from medssl.reporting.runfiles import run_files_problem

    assert run_files_problem(minimal_run(tmp_path / "ok")) is None
    assert run_files_problem(minimal_run(tmp_path / "nan", {"dsc": None, "hd95": float("nan")})) is None
    problem = run_files_problem(minimal_run(tmp_path / "r", mean))
    assert problem is not None and problem.startswith(str(tmp_path / "r")) and fragment in problem, problem


@pytest.mark.parametrize("row", ["c1,1,liver,0.5,0.33,-4.0,1.0,10,5,5", "c1,1,liver,0.5,0.33,4.0,1.0,10,-5,5"])
def test_negative_distances_and_counts_in_metrics_csv_are_named(tmp_path: Path, row: str) -> None:
    from medssl.reporting.runfiles import run_files_problem

    problem = run_files_problem(minimal_run(tmp_path / "r", row=row))  # was: used as they were
    assert problem is not None and "metrics.csv: line 2: " in problem and "is out of range" in problem, problem


def test_bundle_with_truncated_manifest_or_added_run_is_named(tmp_path: Path, capsys) -> None:
    from medssl.cli.main import _warn_bundle_changed
    from medssl.reporting.bundle import export_bundle, provenance_notes, verify_bundle

    minimal_run(tmp_path / "runs" / "a")
    bundle = export_bundle(tmp_path / "runs", tmp_path / "b", command="test").out
    assert verify_bundle(bundle) == [] and "files verified" in provenance_notes(bundle)[0]
    minimal_run(bundle / "added", {"dsc": 0.99})
    (bundle / "a" / "summary.json").write_text(json.dumps({"protocol": "standard", "mean": {"dsc": 0.9}}))
    assert verify_bundle(bundle) == [
        "a/summary.json: changed since export (sha256 differs)",
        "added/run.json: added since export (not in bundle.json)",  # was: its runs entered the tables silently
    ]
    _warn_bundle_changed(bundle)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(e.startswith(f"medssl: warning: bundle {bundle}: ") for e in err)
    manifest = bundle / "bundle.json"
    manifest.write_text(manifest.read_text()[:40])
    with pytest.raises(DataError, match="bundle.json: not a readable bundle manifest"):
        provenance_notes(bundle)  # was: an internal error (JSONDecodeError)


def test_bundle_of_a_newer_format_or_naming_files_outside_is_refused(tmp_path: Path) -> None:
    from medssl.reporting.bundle import export_bundle, verify_bundle

    minimal_run(tmp_path / "runs" / "a")
    bundle = export_bundle(tmp_path / "runs", tmp_path / "b", command="test").out
    manifest = json.loads((bundle / "bundle.json").read_text())
    (tmp_path / "secret").write_text("x")
    (bundle / "bundle.json").write_text(json.dumps({**manifest, "files": {**manifest["files"], "../secret": "0"}}))
    assert verify_bundle(bundle) == ["../secret: names a file outside the bundle (not read)"]  # was: hashed
    (bundle / "bundle.json").write_text(json.dumps({**manifest, "version": 99}))
    with pytest.raises(DataError, match="bundle format version 99 is newer than this medssl reads"):
        verify_bundle(bundle)  # was: read as if it were version 1
    (bundle / "bundle.json").write_text(json.dumps({**manifest, "format": "other"}))
    with pytest.raises(DataError, match="not a medssl results bundle manifest"):
        verify_bundle(bundle)


# ------------------------------------------------------------------------------ benchmark grids

GRID = (
    "name: t\nmethods: [scratch, simclr]\nlabels: ['2']\nseeds: [0]\n"
    "datasets:\n  - {name: syn, dataset: synthetic, src: builtin}\n"
    "pretrain: {data: {image_size: 32, batch_size: 4}, model: {base_width: 4}, train: {max_steps: 1}}\n"
    "finetune: {data: {image_size: 32, batch_size: 4}, model: {base_width: 4}, train: {max_steps: 1}}\n"
)


@pytest.mark.parametrize(
    "old, new, fragment",
    [
        ("seeds: [0]", "seeds: [0, 1, 0]", "seeds: 0 is listed twice"),  # was: two cells of one run folder
        ("methods: [scratch, simclr]", "methods: [scratch, simclr, simclr]", "methods: simclr is listed twice"),
        (  # was: "all cells valid", then the fine-tuning failed after the pre-training had run
            "pretrain: {data: {image_size: 32, batch_size: 4}, model: {base_width: 4}",
            "pretrain: {data: {image_size: 32, batch_size: 4}, model: {base_width: 8}",
            "cell simclr__syn__2__s0: model.base_width: pre-training uses 8, fine-tuning 4",
        ),
    ],
)
def test_benchmark_dry_run_refuses_grids_that_cannot_run_as_meant(tmp_path: Path, old: str, new: str, fragment: str):
    from medssl.benchmark import run_benchmark
    from medssl.errors import ConfigError

    (tmp_path / "ok.yaml").write_text(GRID)
    assert "2 of 2 cells" in run_benchmark(tmp_path / "ok.yaml", tmp_path / "b", dry_run=True)
    assert GRID.count(old) == 1
    (tmp_path / "bad.yaml").write_text(GRID.replace(old, new))
    with pytest.raises(ConfigError, match=fragment) as ei:
        run_benchmark(tmp_path / "bad.yaml", tmp_path / "b", dry_run=True)
    assert str(ei.value).startswith(str(tmp_path / "bad.yaml")) and "\n" not in str(ei.value)


def test_header_fixed_by_nibabel_is_one_medssl_warning_per_file(tmp_path: Path, capfd, caplog) -> None:
    import logging

    from medssl.data.io import load_nifti

    path = _with_pixdim(write_nii(tmp_path / "zero.nii.gz", np.ones(SHAPE, np.float32)), 0.0)
    with caplog.at_level(logging.WARNING, logger="medssl"):
        for _ in range(3):  # prepare reads a file several times
            assert load_nifti(path)[1][0] == 1.0  # nibabel reads a voxel size of 0 as 1 mm ...
    assert [r.getMessage() for r in caplog.records] == [  # ... which is said once, on one line
        f"medssl: warning: {path}: header fixed on reading: pixdim[1,2,3] should be non-zero; setting 0 dims to 1"
    ]
    assert "pixdim" not in capfd.readouterr().err  # was: nibabel's own line, at every read


def test_zero_voxel_size_reads_the_header_as_stored(tmp_path: Path) -> None:
    from medssl.data.io import load_nifti, zero_voxel_size

    zero = _with_pixdim(write_nii(tmp_path / "zero.nii.gz", np.ones(SHAPE, np.float32)), 0.0)
    assert load_nifti(zero)[1][0] == 1.0 and zero_voxel_size(zero)  # nibabel's 1 mm, told apart
    assert not zero_voxel_size(write_nii(tmp_path / "ok.nii.gz", np.ones(SHAPE, np.float32)))
    flat = nib.Nifti1Image(np.ones(SHAPE[:2], np.float32), np.eye(4))
    flat.header["pixdim"][3] = 0.0  # a 2D file's unused third voxel size
    nib.save(flat, str(tmp_path / "flat.nii"))
    assert not zero_voxel_size(tmp_path / "flat.nii")


def test_prepare_treats_a_zero_voxel_size_as_unknown_spacing(tmp_path: Path) -> None:
    from medssl.data.store import SliceStore, prepare

    root = pair_folder(tmp_path / "src", labels(), n=3)
    _with_pixdim(root / "labels" / "c1.nii.gz", 0.0)
    _with_pixdim(root / "images" / "c1.nii.gz", 0.0)
    with pytest.raises(DataError) as ei:  # was: resampled as if the voxels were 1 mm wide, after a warning
        prepare("nifti-folder", root, tmp_path / "mm", target_spacing=2.0, progress=False)
    msg = str(ei.value)
    assert msg.startswith(str(root / "images" / "c1.nii.gz")) and "\n" not in msg
    assert f"voxel size of 0 in the header of the image and the label {root / 'labels' / 'c1.nii.gz'}" in msg
    assert "cannot be resampled to 2.0 mm; set the voxel size in the header (pixdim)" in msg
    with pytest.warns(UserWarning, match="spacing unknown: distances in voxels"):
        store = SliceStore(prepare("nifti-folder", root, tmp_path / "keep", target_spacing=None, progress=False).root)
    assert not store.spacing_known  # distances in voxels, said in fingerprint.json and every summary
    fp = json.loads((tmp_path / "keep" / "fingerprint.json").read_text())
    assert [c["case_id"] for c in fp["cases"] if not c["spacing_known"]] == ["c1"]


def test_evaluate_reports_voxels_when_the_ground_truth_has_a_zero_voxel_size(tmp_path: Path) -> None:
    from medssl.evaluation.evaluate import evaluate_folders

    lab = labels((0, 1, 2), np.uint8)
    for d in ("gt", "pred"):
        _with_pixdim(write_nii(tmp_path / d / "c0.nii.gz", lab), 0.0)
    res = evaluate_folders(tmp_path / "pred", tmp_path / "gt")
    assert not res.spacing_known and {r["distance_unit"] for r in res.summary} == {"voxels"}
    write_nii(tmp_path / "gt2" / "c0.nii.gz", lab)
    write_nii(tmp_path / "pred2" / "c0.nii.gz", lab)
    known = evaluate_folders(tmp_path / "pred2", tmp_path / "gt2")
    assert known.spacing_known and {r["distance_unit"] for r in known.summary} == {"mm"}


def test_evaluate_warns_when_predictions_are_stored_in_other_axis_directions(tmp_path: Path, caplog) -> None:
    import logging

    from medssl.evaluation.evaluate import evaluate_folders

    lab = labels((0, 1, 2), np.uint8)
    flipped = np.diag([-1.0, 1.0, 1.0, 1.0])
    flipped[0, 3] = SHAPE[0] - 1  # the same voxel centres, x stored the other way round
    (tmp_path / "pred").mkdir()
    for i in range(2):
        write_nii(tmp_path / "gt" / f"c{i}.nii.gz", lab)
        nib.save(nib.Nifti1Image(lab[::-1].copy(), flipped), str(tmp_path / "pred" / f"c{i}.nii.gz"))
    with caplog.at_level(logging.WARNING, logger="medssl"):
        evaluate_folders(tmp_path / "pred", tmp_path / "gt")  # was: scored voxel by voxel without a word
    (msg,) = [r.getMessage() for r in caplog.records]
    assert msg.startswith("medssl: warning: 2 prediction(s) stored with other axis directions") and "LAS" in msg
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medssl"):
        evaluate_folders(tmp_path / "gt", tmp_path / "gt")
    assert not caplog.records


def test_evaluate_warns_when_predictions_are_stored_at_another_position(tmp_path: Path, caplog) -> None:
    import logging

    from medssl.evaluation.evaluate import evaluate_folders

    lab = labels((0, 1, 2), np.uint8)
    nudged, shifted = np.eye(4), np.eye(4)
    nudged[0, 3] = 0.3  # under half a voxel (1 mm): not warned
    shifted[:3, 3] = (0.0, 0.4, 3.0)  # 3 mm along z: a crop, or geometry lost
    (tmp_path / "pred").mkdir()
    for i, affine in enumerate((nudged, shifted)):
        write_nii(tmp_path / "gt" / f"c{i}.nii.gz", lab)
        nib.save(nib.Nifti1Image(lab, affine), str(tmp_path / "pred" / f"c{i}.nii.gz"))
    with caplog.at_level(logging.WARNING, logger="medssl"):
        evaluate_folders(tmp_path / "pred", tmp_path / "gt")  # was: scored voxel by voxel without a word
    (msg,) = [r.getMessage() for r in caplog.records]
    assert msg.startswith("medssl: warning: 1 prediction(s) stored at another position than their ground truth")
    assert "c1.nii.gz: origin (0.0, 0.4, 3.0) mm, ground truth (0.0, 0.0, 0.0) mm" in msg


def test_store_array_of_another_shape_than_cases_json_is_named(tmp_path: Path) -> None:
    from medssl.data.store import SliceStore, prepare

    root = pair_folder(tmp_path / "src", labels(), n=2)
    store = SliceStore(prepare("nifti-folder", root, tmp_path / "store", target_spacing=None, progress=False).root)
    assert store.label("c1").shape == store.image("c1").shape == (4, 10, 12)
    np.save(tmp_path / "store" / "labels" / "c1.npy", np.zeros((4, 9, 12), np.uint8))
    with pytest.raises(DataError) as ei:  # was: an internal error (ValueError: arrays differ in-plane) in training
        store.label("c1")
    assert str(ei.value).startswith(f"{tmp_path / 'store' / 'labels' / 'c1.npy'}: shape (4, 9, 12) differs from")


@pytest.mark.parametrize(
    "text, fragment", [("protocol: [\n", r"unreadable \(ParserError\)"), ("- x\n", "not a mapping")]
)
def test_evaluate_run_names_a_damaged_config_yaml(tmp_path: Path, text: str, fragment: str) -> None:
    from medssl.evaluation.run import _run_config

    assert _run_config(tmp_path) == {}
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(DataError, match=fragment) as ei:  # was: an internal error (ParserError)
        _run_config(tmp_path)
    assert str(ei.value).startswith(f"{tmp_path / 'config.yaml'}: ")


def test_evaluate_run_names_a_truncated_prediction(tmp_path: Path) -> None:
    from medssl.evaluation.run import _items

    path = tmp_path / "predictions" / "c1.npy"
    path.parent.mkdir()
    np.save(path, np.zeros((4, 16, 16), np.uint8))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match="unreadable prediction .*the file is damaged") as ei:
        _items(tmp_path, ["c1"], None, None)  # type: ignore[arg-type]  # was: an internal error (ValueError)
    assert str(ei.value).startswith(f"{path}: ")


def test_predict_and_export_name_a_config_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    from medssl.inference.runspec import load_run_spec

    (tmp_path / "run.json").write_text(json.dumps({"kind": "finetune", "status": "done"}))
    (tmp_path / "checkpoint_best.pt").write_bytes(b"x")
    (tmp_path / "config.yaml").write_text("- model\n")
    with pytest.raises(DataError) as ei:  # was: an internal error ('list' object has no attribute 'get')
        load_run_spec(tmp_path)
    assert str(ei.value) == f"{tmp_path / 'config.yaml'}: not a mapping of settings (a list); the file is damaged"


def test_report_figure_goes_on_without_an_unreadable_prediction(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from medssl.reporting.figures import _load_predictions

    for m in ("scratch", "macl"):
        (tmp_path / m / "predictions").mkdir(parents=True)
        np.save(tmp_path / m / "predictions" / "c1.npy", np.zeros((2, 8, 8), np.uint8))
    bad = tmp_path / "macl" / "predictions" / "c1.npy"
    bad.write_bytes(bad.read_bytes()[:140])
    runs = {m: SimpleNamespace(path=tmp_path / m) for m in ("scratch", "macl")}
    notes: list[str] = []
    preds = _load_predictions(runs, ["scratch", "macl"], "c1", (2, 8, 8), notes)  # type: ignore[arg-type]
    assert preds["scratch"] is not None and preds["macl"] is None  # was: an internal error (mmap length ...)
    assert len(notes) == 1 and notes[0].startswith(f"macl: {bad}: unreadable prediction")


def test_reader_options_that_do_not_parse_are_named(tmp_path: Path) -> None:
    from medssl.cli.main import parse_reader_options
    from medssl.errors import ConfigError

    root = pair_folder(tmp_path, labels(), n=1)
    with pytest.raises(ConfigError, match=r"--option patient_regex: not a regular expression \(missing \)"):
        scan_dataset("nifti-folder", root, patient_regex="(")  # was: an internal error (re.error)
    with pytest.raises(ConfigError, match="YAML needs a space after each ':'"):  # {0:0} is one key, '0:0'
        parse_reader_options(["label_map={0:0,1:1}"])
    assert parse_reader_options(["label_map={0: 0, 1: 1}"]) == {"label_map": {0: 0, 1: 1}}


@pytest.mark.parametrize(
    "option, fragment",
    [
        ({"affine_tol": "abc"}, "--option affine_tol: expected a number, got 'abc'"),  # was: an internal error
        ({"affine_tol": -1}, "--option affine_tol: a tolerance must be >= 0, got -1"),  # was: every label "differs"
        ({"affine_tol": True}, "--option affine_tol: expected a number, got True"),
    ],
)
def test_number_options_of_readers_are_checked(tmp_path: Path, option: dict, fragment: str) -> None:
    from medssl.errors import ConfigError

    root = pair_folder(tmp_path, labels(), n=1)
    with pytest.raises(ConfigError) as ei:
        scan_dataset("nifti-folder", root, **option)
    assert str(ei.value) == fragment
    assert scan_dataset("nifti-folder", root, affine_tol=0)[0].load().label.shape == (4, 10, 12)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_invalid_spacing_is_one_problem_of_the_image_without_numpy_warnings(tmp_path: Path, bad: float) -> None:
    import warnings

    from medssl.data.readers import resolve_spec
    from medssl.data.verify import verify_dataset

    root = pair_folder(tmp_path, labels(), n=1)
    for sub in ("images", "labels"):
        _with_pixdim(root / sub / "c0.nii.gz", bad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # was: two RuntimeWarnings (inf - inf) printed as raw lines
        problems = verify_dataset(scan_dataset("nifti-folder", root), resolve_spec("nifti-folder"))
    # was: also "label voxel spacing (1, 1, nan) differs from image spacing (1, 1, nan)" and "label affine differs"
    assert [str(p) for p in problems] == [f"{root / 'images' / 'c0.nii.gz'}: invalid voxel spacing (1.0, 1.0, {bad})"]


def test_evaluate_names_a_non_finite_spacing_instead_of_a_mismatch(tmp_path: Path) -> None:
    from medssl.evaluation.evaluate import evaluate_folders

    for sub in ("pred", "gt"):
        _with_pixdim(write_nii(tmp_path / sub / "c0.nii.gz", labels((0, 1, 2), np.uint8)), float("nan"))
    with pytest.raises(
        DataError
    ) as ei:  # was: "spacing (1.0, 1.0, nan) does not match the ground truth (1.0, 1.0, nan)"
        evaluate_folders(tmp_path / "pred", tmp_path / "gt")
    assert (
        str(ei.value)
        == f"{tmp_path / 'gt' / 'c0.nii.gz'}: invalid voxel spacing (1.0, 1.0, nan) in the header (pixdim)"
    )


def _msd_task(root: Path, lab: np.ndarray) -> Path:
    task = root / "Task77_Probe"
    g = np.random.default_rng(0)
    write_nii(task / "imagesTr" / "probe_001.nii.gz", g.normal(size=SHAPE).astype(np.float32))
    write_nii(task / "labelsTr" / "probe_001.nii.gz", lab)
    return task


@pytest.mark.parametrize("labels_json", [{"background": "zero", "x": "y"}, {"background": 0, "tumour": [1, 2]}])
def test_msd_dataset_json_labels_that_cannot_be_read_are_named(tmp_path: Path, labels_json: dict) -> None:
    task = _msd_task(tmp_path, labels())
    (task / "dataset.json").write_text(json.dumps({"labels": labels_json}))
    with pytest.raises(DataError, match="'labels' must map label values to names") as ei:
        scan_dataset("msd", task)  # was: an internal error (ValueError / TypeError)
    assert str(ei.value).startswith(f"{task / 'dataset.json'}: ")


def test_msd_nan_in_the_first_label_is_that_case_s_problem(tmp_path: Path) -> None:
    lab = labels((0, 1, 2), np.float32)
    lab[0, 0, 0] = np.nan
    task = _msd_task(tmp_path, lab)
    (source,) = scan_dataset("msd", task)  # was: an internal error (cannot convert float NaN to integer)
    with pytest.raises(DataError, match="non-finite label values"):
        source.load()


def test_store_damaged_after_prepare_is_named_by_file_and_slice(tmp_path: Path) -> None:
    import torch

    from medssl.data.datasets import LabelledSlices, PretrainSlices
    from medssl.data.store import SliceStore, prepare

    root = pair_folder(tmp_path / "src", labels(), n=2)
    store = SliceStore(prepare("nifti-folder", root, tmp_path / "store", target_spacing=None, progress=False).root)
    img = np.array(store.image("c1"))
    img[2, 3, 3] = np.nan
    np.save(tmp_path / "store" / "images" / "c1.npy", img)
    lab = np.array(store.label("c0"))
    lab[1, 0, 0] = 9
    np.save(tmp_path / "store" / "labels" / "c0.npy", lab)

    def first_error(ds: torch.utils.data.Dataset) -> str:
        with pytest.raises(DataError) as ei:  # was: "non-finite loss" or an index error steps later
            for _ in torch.utils.data.DataLoader(ds, batch_size=1):
                pass
        assert "\n" not in str(ei.value) and "Traceback" not in str(ei.value)
        return str(ei.value)

    nan = f"{tmp_path / 'store' / 'images' / 'c1.npy'}: slice 2 holds 1 NaN or infinite voxel(s)"
    assert first_error(LabelledSlices(store, ["c1"], patch_size=16)).startswith(nan)
    assert first_error(PretrainSlices(store, ["c1"], 16, lambda x, rng: {"v1": x})).startswith(nan)
    bad = first_error(LabelledSlices(store, ["c0"], patch_size=16))
    assert bad.startswith(f"{tmp_path / 'store' / 'labels' / 'c0.npy'}: slice 1 holds label values [9] outside")


def test_data_error_raised_in_a_loader_worker_keeps_its_one_line_message() -> None:
    from torch._utils import ExceptionWrapper  # how DataLoader passes a worker's exception to the main process

    from medssl.errors import ConfigError

    for err, line in [
        (DataError("/s/images/c1.npy", "slice 2 holds 1 NaN"), "/s/images/c1.npy: slice 2 holds 1 NaN"),
        (ConfigError("superpixels.n_segments must be >= 1"), "superpixels.n_segments must be >= 1"),
    ]:
        try:
            raise err
        except type(err):
            wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
        with pytest.raises(type(err)) as ei:  # was: RuntimeError with the worker's whole traceback
            wrapped.reraise()
        assert str(ei.value) == line


@pytest.mark.parametrize("protocol", ["standard", "paper"])
def test_summary_mean_that_metrics_csv_does_not_give_is_named(tmp_path: Path, protocol: str) -> None:
    from medssl.evaluation.evaluate import evaluate_arrays, write_results
    from medssl.reporting.runfiles import run_files_problem

    g = np.random.default_rng(0)
    items = []
    for i in range(3):
        gt = np.zeros((3, 12, 12), np.uint8)
        gt[:, 3:9, 3:9] = 1
        gt[1, 4:6, 4:6] = 2
        pred = np.where(g.random(gt.shape) < 0.1, 0, gt).astype(np.uint8)
        items.append((f"c{i}", pred, gt, (2.0, 1.0, 1.0)))
    run = tmp_path / "run"
    write_results(evaluate_arrays(items, ("background", "a", "b"), protocol), run)
    (run / "run.json").write_text(json.dumps({"kind": "finetune", "status": "done", "method": "scratch"}))
    assert run_files_problem(run) is None  # evaluate's own files agree, NaN means included
    doc = json.loads((run / "summary.json").read_text())
    doc["mean"]["dsc"] = round(doc["mean"]["dsc"] + 0.05, 4)  # plausible, but not what the cases give
    (run / "summary.json").write_text(json.dumps(doc))
    problem = run_files_problem(run)  # was: the tables showed it while the statistics used metrics.csv
    assert problem is not None and problem.startswith(f"{run / 'summary.json'}: mean dsc = "), problem
    assert "but metrics.csv gives" in problem


@pytest.mark.parametrize(
    "option, fragment",
    [({"n_segments": 0}, "superpixels.n_segments: must be >= 1"), ({"mode": "x"}, "superpixels.mode: must be one of")],
)
def test_superpixel_settings_are_named_by_their_config_key(option: dict, fragment: str) -> None:
    from medssl.data.superpixels import SuperpixelConfig
    from medssl.errors import ConfigError

    with pytest.raises(ConfigError) as ei:  # was: "n_segments must be >= 1", with no section to find it in
        SuperpixelConfig(**option)
    assert str(ei.value).startswith(fragment)


def test_atomic_writes_are_readable_by_the_group_as_any_new_file(tmp_path: Path) -> None:
    import os
    import stat

    from medssl.utils.files import atomic_write_text

    old = os.umask(0o022)
    try:
        plain = tmp_path / "plain.txt"
        plain.write_text("a")
        out = atomic_write_text(tmp_path / "run.json", "{}")
    finally:
        os.umask(old)
    # was: 0o600 (tempfile.mkstemp), so a collaborator could not read a run's results
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left
