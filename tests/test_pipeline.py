"""End to end on real data: every method pre-trains a few steps on MSD Hippocampus (read from
../shared/data by path) and its checkpoint fine-tunes and evaluates; plus the Scratch row."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medssl.config import DataCfg, FinetuneConfig, ModelCfg, PretrainConfig, TrainCfg, config_from_dict
from medssl.errors import ConfigError
from medssl.finetune import finetune
from medssl.methods.catalog import list_methods
from medssl.models.checkpoint import read_checkpoint
from medssl.pretrain import pretrain

METHODS = [m.name for m in list_methods()]
TINY = ModelCfg(base_width=4)


def _train(**kw) -> TrainCfg:
    return TrainCfg(device="cpu", progress=False, log_every=1, **kw)


def test_all_thirteen_methods_are_registered():
    assert set(METHODS) == {
        "simclr",
        "moco",
        "byol",
        "swav",
        "simsiam",
        "simtriplet",
        "gcl",
        "pcl",
        "wcl",
        "desd",
        "dira",
        "supercl",
        "macl",
    }


def test_scratch_finetune_on_real_hippocampus(hippo_store, tmp_path):
    cfg = FinetuneConfig(
        data=DataCfg(path=str(hippo_store), labels="50%", batch_size=8, num_workers=0, image_size=48),
        model=ModelCfg(base_width=8),
        train=_train(epochs=2, max_steps=6),
        out=str(tmp_path / "scratch"),
    )
    res = finetune(cfg)
    run = json.loads((res.out / "run.json").read_text())
    assert run["status"] == "done" and run["method"] == "scratch" and run["dataset_label"] == "Hippocampus"
    assert run["environment"]["torch"] and "git_commit" in run["environment"]
    split = json.loads((res.out / "splits.json").read_text())
    rows = (res.out / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2 * len(split["test"])  # one row per test case and foreground class
    summary = json.loads((res.out / "summary.json").read_text())
    assert 0.0 <= summary["mean"]["dsc"] <= 1.0
    pred = np.load(res.out / "predictions" / f"{split['test'][0]}.npy")
    assert set(np.unique(pred)) <= {0, 1, 2}
    assert (res.out / "config.yaml").is_file() and (res.out / "checkpoint_best.pt").is_file()


def test_unknown_spatial_backend_is_rejected(hippo_store, tmp_path):
    # from YAML / --set: a typed choice, one-line ConfigError before anything runs
    with pytest.raises(ConfigError, match="spatial_backend: expected one of scipy, torch"):
        config_from_dict(FinetuneConfig, {"data": {"path": str(hippo_store), "spatial_backend": "cv2"}})
    # a dataclass built by hand: the transforms refuse it when the task is built
    data = DataCfg(
        path=str(hippo_store), labels="50%", batch_size=8, num_workers=0, image_size=48, spatial_backend="cv2"
    )
    with pytest.raises(ValueError, match="spatial backend 'cv2'"):
        finetune(
            FinetuneConfig(
                data=data, model=ModelCfg(base_width=8), train=_train(epochs=1, max_steps=1), out=str(tmp_path / "bad")
            )
        )
    with pytest.raises(ValueError, match="spatial backend 'cv2'"):
        pretrain(
            PretrainConfig(
                method="pcl", data=data, model=TINY, train=_train(epochs=1, max_steps=1), out=str(tmp_path / "badpre")
            )
        )


def test_elastic_noise_stride_reaches_both_augmentations(hippo_store, tmp_path, monkeypatch):
    from medssl.data import transforms

    seen: list[float] = []
    real = transforms.elastic_displacement

    def spy(*args, **kwargs):
        seen.append(kwargs.get("noise_stride", 1.0))
        return real(*args, **kwargs)

    monkeypatch.setattr(transforms, "elastic_displacement", spy)
    data = DataCfg(
        path=str(hippo_store), labels="50%", batch_size=4, num_workers=0, image_size=32, elastic_noise_stride=4.0
    )
    pretrain(
        PretrainConfig(
            method="simclr", data=data, model=TINY, train=_train(epochs=1, max_steps=1), out=str(tmp_path / "pre")
        )
    )
    n_pre = len(seen)
    finetune(
        FinetuneConfig(
            data=data, model=TINY, train=_train(epochs=1, max_steps=1), out=str(tmp_path / "ft"), recipe="paper"
        )
    )  # the recipe whose augmentation has an elastic field
    assert n_pre > 0 and len(seen) > n_pre and set(seen) == {4.0}
    with pytest.raises(ConfigError, match="elastic_noise_stride"):
        config_from_dict(PretrainConfig, {"data": {"elastic_noise_stride": 0.5}})


@pytest.mark.parametrize("method", METHODS)
def test_method_pretrains_and_finetunes_on_real_hippocampus(method, hippo_store, tmp_path):
    pcfg = PretrainConfig(
        method=method,
        # SuperCL and MACL (the GPU-scale methods) also exercise the fast augmentation (grid_sample, lattice noise)
        data=DataCfg(
            path=str(hippo_store),
            image_size=64,
            batch_size=4,
            num_workers=0,
            spatial_backend="torch" if method in ("supercl", "macl") else "scipy",
            elastic_noise_stride=4.0 if method in ("supercl", "macl") else 1.0,
        ),
        model=TINY,
        train=_train(epochs=1, max_steps=2),
        out=str(tmp_path / "pre"),
        superpixels={"mode": "online"},
        method_args={"supercl": {"stride": 4}, "desd": {"out_dim": 512, "hidden_dim": 64}}.get(method, {}),
    )
    pre = pretrain(pcfg)
    steps = (pre.out / "steps.csv").read_text().strip().splitlines()
    assert len(steps) == 3 and all(np.isfinite(float(x)) for x in steps[-1].split(",")[2:] if x)
    state, fmt, name, parts = read_checkpoint(pre.checkpoint)
    assert fmt == "medssl" and name == method and parts == pre.pretrains
    assert all(k.startswith(tuple(p + "." for p in parts)) for k in state)
    ft = finetune(
        FinetuneConfig(
            data=DataCfg(
                path=str(hippo_store),
                labels="25%",
                batch_size=4,
                num_workers=0,
                image_size=32,
                spatial_backend="torch" if method in ("supercl", "macl") else "scipy",
            ),
            model=TINY,
            train=_train(epochs=1, max_steps=2),
            out=str(tmp_path / "ft"),
            init=str(pre.checkpoint),
        )
    )
    report = json.loads((ft.out / "load_report.json").read_text())
    assert report["method"] == method and report["loaded"] and not report["shape_mismatch"]
    assert {k.split(".")[0] for k in report["loaded"]} == set(pre.pretrains)
    assert json.loads((ft.out / "run.json").read_text())["method"] == method


def test_macl_paper_variant_changes_tfix_and_lr(hippo_store, tmp_path):
    from medssl.pretrain import apply_variant

    cfg = apply_variant(PretrainConfig(method="macl", variant="paper"))
    assert cfg.method_args["t_fix"] == "identity" and cfg.optim.lr == 0.1
    explicit = apply_variant(PretrainConfig(method="macl", variant="paper", method_args={"t_fix": "intensity"}))
    assert explicit.method_args["t_fix"] == "intensity"


def test_2d_datasets_get_instance_positions(tmp_path):
    """ISIC-like data (one slice per case): positions never make two different images positives."""
    from medssl.data.datasets import PretrainSlices
    from medssl.data.store import SliceStore
    from medssl.data.views import MultiViewTransform
    from medssl.losses.supcon import positional_mask

    (tmp_path / "images").mkdir()
    cases = []
    for i in range(4):
        np.save(tmp_path / "images" / f"c{i}.npy", np.random.default_rng(i).random((1, 32, 32), dtype=np.float32))
        cases.append(
            dict(
                case_id=f"c{i}", patient_id=f"c{i}", num_slices=1, shape=[1, 32, 32], spacing=[1, 1, 1], has_label=False
            )
        )
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    (tmp_path / "plan.json").write_text(json.dumps({"class_names": ["background", "lesion"], "dataset": "isic2018"}))
    store = SliceStore(tmp_path)
    ds = PretrainSlices(store, [c.case_id for c in store.cases], 32, MultiViewTransform(views=("v3", "v4")))
    pos = torch.stack([ds[i]["position"] for i in range(len(ds))])
    mask = positional_mask(pos, delta=0.1)
    assert int(mask.sum()) == 4 * len(ds)  # per image: itself and its other view, in both views
    assert not mask[0, 1] and mask[0, len(ds)]


def test_monai_network_fine_tunes_from_scratch(synthetic_store, tmp_path):
    cfg = FinetuneConfig(
        data=DataCfg(path=str(synthetic_store), labels="50%", batch_size=4, num_workers=0, image_size=32),
        model=ModelCfg(name="monai:BasicUNet", base_width=4),
        train=_train(epochs=1, max_steps=2),
        out=str(tmp_path / "monai"),
        mirror=False,
        p_spatial=0.0,
    )
    res = finetune(cfg)
    assert json.loads((res.out / "run.json").read_text())["status"] == "done"
    from medssl.errors import ConfigError
    from medssl.models.unet import UNet

    torch.save(UNet(1, 4, base_width=4).state_dict(), tmp_path / "unet.pt")
    with pytest.raises(ConfigError, match="model.name=unet"):
        finetune(
            FinetuneConfig(
                data=cfg.data,
                model=cfg.model,
                train=cfg.train,
                out=str(tmp_path / "m2"),
                init=str(tmp_path / "unet.pt"),
            )
        )
