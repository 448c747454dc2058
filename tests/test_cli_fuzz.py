"""Property-based test of the command line (issue 26): random configuration values and random
corruptions (truncation, binary garbage, wrong types, empty) of every file medssl reads. Every command
either succeeds or exits 2 with one ``medssl: error:`` line, never a traceback or an "internal error".

Commands run in-process (``main([...])``) on tiny files: a run folder made from the synthetic store's
own labels (no training), so the whole module takes seconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medssl.cli.main import main

FUZZ = settings(
    max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in-process: (exit status, stdout, stderr); argparse's exits are returned too."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 2
    return int(code), out.getvalue(), err.getvalue()


def assert_clean(argv: list[str], allowed: tuple[int, ...] = (0, 2)) -> tuple[int, str, str]:
    """Success, or exit 2 with exactly one error line naming the problem; never a traceback."""
    code, out, err = run_cli(argv)
    assert code in allowed, (argv, code, err[-2000:])
    assert "Traceback" not in err and "internal error" not in err, (argv, err[-2000:])
    errors = [line for line in err.splitlines() if line.startswith("medssl: error:") or "error:" in line]
    if code == 2:
        assert len(errors) == 1, (argv, err)
    return code, out, err


# ------------------------------------------------------------------------------------------ corruptions


def _truncate(data: bytes, frac: float) -> bytes:
    return data[: int(len(data) * frac)]


CORRUPT = st.one_of(
    st.floats(0.0, 0.98).map(lambda f: ("truncate", f)),
    st.binary(min_size=1, max_size=64).map(lambda b: ("garbage", b)),
    st.sampled_from(["[]", '"text"', "42", "null", '{"a": [1, 2]}', "- 1\n- 2\n", "{}", "x,y\n1,2\n"]).map(
        lambda t: ("wrong type", t.encode())
    ),
    st.just(("empty", b"")),
    st.tuples(st.integers(0, 10_000), st.integers(0, 255)).map(lambda t: ("flip", t)),
)


def corrupt(path: Path, how: tuple[str, object]) -> None:
    """Corrupt ``path`` in place (the result always differs from the original)."""
    data = path.read_bytes()
    kind, arg = how
    if kind == "truncate":
        new = _truncate(data, float(arg))  # type: ignore[arg-type]
    elif kind == "flip":
        pos, val = arg  # type: ignore[misc]
        pos = pos % max(len(data), 1)
        new = data[:pos] + bytes([val if val != data[pos] else (val + 1) % 256]) + data[pos + 1 :]
    else:
        new = arg  # type: ignore[assignment]
    if new == data:
        new = data[:-1]
    path.write_bytes(new)


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def world(synthetic_store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished fine-tuning run made from the store's own labels, NIfTI folders, a grid, a checkpoint."""
    from medssl.config import ModelCfg
    from medssl.data.store import SliceStore
    from medssl.engine.provenance import run_inputs
    from medssl.models.factory import create_model

    root = tmp_path_factory.mktemp("fuzz")
    store = SliceStore(synthetic_store)
    ids = [c.case_id for c in store.cases]
    run = root / "runs" / "r"
    (run / "predictions").mkdir(parents=True)
    for cid in ids[-2:]:
        np.save(run / "predictions" / f"{cid}.npy", np.asarray(store.label(cid)))
    (run / "splits.json").write_text(json.dumps({"train": ids[:2], "val": ids[2:3], "test": ids[-2:]}))
    cfg = type("C", (), {"data": type("D", (), {"path": str(synthetic_store)})(), "init": None})()
    info = {
        "kind": "finetune",
        "status": "done",
        "method": "scratch",
        "dataset": "synthetic",
        "labels": "1",
        "seed": 0,
        "protocol": "standard",
        "data": str(synthetic_store.resolve()),
        "class_names": store.class_names,
        "inputs": run_inputs(cfg),
    }
    (run / "run.json").write_text(json.dumps(info))
    (run / "config.yaml").write_text("protocol: standard\ndistances: surface\nnsd_tolerance: 2.0\n")  # a current run's
    assert run_cli(["evaluate", str(run)])[0] == 0  # writes metrics.csv and summary.* into the run folder
    for sub in ("pred", "gt"):
        for cid in ids[-2:]:
            lab = np.asarray(store.label(cid)).transpose(2, 1, 0).astype(np.uint8)
            (root / sub).mkdir(exist_ok=True)
            nib.save(nib.Nifti1Image(lab, np.eye(4)), str(root / sub / f"{cid}.nii.gz"))
    model = create_model(ModelCfg(base_width=4), store.num_classes)
    enc = {k: v for k, v in model.state_dict().items() if k.startswith("encoder.")}
    torch.save(
        {"format": "medssl-pretrain", "method": "simclr", "pretrains": ["encoder"], "state_dict": enc},
        root / "pretrain.pt",
    )
    (root / "ref.csv").write_text("source,dataset,labels,method,dsc,jc,hd95,asd\nX,Synthetic,1,Scratch,80,70,5,2\n")
    (root / "grid.yaml").write_text(
        yaml.safe_dump({"methods": ["scratch"], "datasets": [{"name": "s", "prepared": str(synthetic_store)}]})
    )
    (root / "config.yaml").write_text(yaml.safe_dump({"data": {"batch_size": 2}, "optim": {"lr": 0.001}}))
    return {"root": root, "run": run, "store": synthetic_store}


@contextlib.contextmanager
def scratch_copy(world: dict[str, Path]):
    """A throw-away copy of the fuzz world's files (the store is shared, read-only)."""
    tmp = Path(tempfile.mkdtemp(prefix="medssl-fuzz-"))
    try:
        for name in ("runs", "pred", "gt"):
            shutil.copytree(world["root"] / name, tmp / name)
        for name in ("pretrain.pt", "ref.csv", "grid.yaml", "config.yaml"):
            shutil.copy(world["root"] / name, tmp / name)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------------------------- tests


RUN_FILES = ["metrics.csv", "summary.json", "run.json", "splits.json"]


@FUZZ
@given(name=st.sampled_from(RUN_FILES), how=CORRUPT)
def test_corrupt_run_files(world, name, how) -> None:
    with scratch_copy(world) as tmp:
        corrupt(tmp / "runs" / "r" / name, how)
        code, _, err = assert_clean(["report", str(tmp / "runs"), "--out", str(tmp / "rep")])
        if code == 0 and name in ("metrics.csv", "summary.json") and how[0] != "flip":
            # a flipped digit can be a valid number; every other corruption is seen and said
            assert "medssl: warning: left out of the report" in err  # never used silently
        assert_clean(["evaluate", str(tmp / "runs" / "r")])


@FUZZ
@given(target=st.sampled_from(["config", "grid", "reference", "checkpoint", "nifti"]), how=CORRUPT)
def test_corrupt_inputs(world, target, how) -> None:
    with scratch_copy(world) as tmp:
        store = str(world["store"])
        nifti = sorted((tmp / "pred").glob("*.nii.gz"))[0]
        path, argv = {
            "config": (
                tmp / "config.yaml",
                ["finetune", "--config", str(tmp / "config.yaml"), "--data", str(tmp / "nope")],
            ),
            "grid": (
                tmp / "grid.yaml",
                ["benchmark", "--config", str(tmp / "grid.yaml"), "--out", str(tmp / "b"), "--dry-run"],
            ),
            "reference": (
                tmp / "ref.csv",
                ["report", str(tmp / "runs"), "--out", str(tmp / "rep"), "--reference", str(tmp / "ref.csv")],
            ),
            "checkpoint": (
                tmp / "pretrain.pt",
                [
                    "finetune",
                    "--data",
                    store,
                    "--out",
                    str(tmp / "ft"),
                    "--init",
                    str(tmp / "pretrain.pt"),
                    "--device",
                    "cpu",
                ],
            ),
            "nifti": (
                nifti,
                ["evaluate", "--pred", str(tmp / "pred"), "--gt", str(tmp / "gt"), "--out", str(tmp / "ev")],
            ),
        }[target]
        corrupt(path, how)
        # refused either way: unreadable, or (still readable) pre-trained at width 4 while the run has 32
        assert_clean(argv, allowed=(2,) if target == "checkpoint" else (0, 2))


VALUES = st.one_of(
    st.integers(-(2**40), 2**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "null", "true", "[]", "[1, 2]", "{a: 1}", "abc", "-0", "1e400", "'10%'", "0.0", "[encoder]"]),
)
KEYS = st.sampled_from(
    [
        "data.batch_size",
        "data.image_size",
        "data.labels",
        "data.val_fraction",
        "data.test_fraction",
        "model.base_width",
        "model.depth",
        "optim.lr",
        "optim.momentum",
        "train.seed",
        "train.device",
        "freeze",
        "init_parts",
        "rotation",
        "scale",
        "protocol",
        "nonsense.key",
    ]
)
METHOD_KEYS = st.sampled_from(
    ["temperature", "base_temperature", "delta", "weights", "out_dim", "base_momentum", "epsilon", "queue_size"]
)


@FUZZ
@given(key=KEYS, value=VALUES)
def test_fuzz_finetune_settings(world, key, value) -> None:
    """Every value of every setting: valid grid (dry run, exit 0) or one usage line (exit 2)."""
    with scratch_copy(world) as tmp:
        assert_clean(
            [
                "benchmark",
                "--config",
                str(tmp / "grid.yaml"),
                "--out",
                str(tmp / "b"),
                "--dry-run",
                "--set",
                f"finetune.{key}={value}",
            ]
        )


@FUZZ
@given(
    method=st.sampled_from(["supercl", "macl", "pcl", "moco", "byol", "swav", "desd"]), key=METHOD_KEYS, value=VALUES
)
def test_fuzz_method_arguments(world, method, key, value) -> None:
    with scratch_copy(world) as tmp:
        assert_clean(
            [
                "benchmark",
                "--config",
                str(tmp / "grid.yaml"),
                "--out",
                str(tmp / "b"),
                "--dry-run",
                "--set",
                f"methods=[{method}]",
                "--set",
                f"pretrain_methods={{{method}: {{method_args: {{{key}: {value or 'null'}}}}}}}",
            ]
        )
