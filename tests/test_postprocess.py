"""Largest-connected-component post-processing, decided on validation cases."""

from __future__ import annotations

import json

import numpy as np

from medssl.evaluation.postprocess import choose_largest_component_classes, keep_largest_component


def test_keep_largest_component_removes_specks_of_the_named_classes_only() -> None:
    pred = np.zeros((3, 10, 10), np.uint8)
    pred[:, 2:6, 2:6] = 1  # the organ, across slices
    pred[1, 8, 8] = 1  # a speck of class 1
    pred[0, 0, 0] = 2  # a speck of class 2 (its only component)
    pred[2, 9, 0] = 2
    out = keep_largest_component(pred, [1])
    assert out[1, 8, 8] == 0 and (out[:, 2:6, 2:6] == 1).all()
    assert out[0, 0, 0] == 2 and out[2, 9, 0] == 2  # class 2 untouched
    both = keep_largest_component(pred, [1, 2])
    assert int((both == 2).sum()) == 1
    assert np.array_equal(keep_largest_component(pred, []), pred)


def test_choice_follows_the_validation_dice() -> None:
    gt = np.zeros((2, 12, 12), np.uint8)
    gt[:, 3:8, 3:8] = 1
    gt[:, 9:11, 0:2] = 2  # class 2 truly has two components in the first case
    gt[0, 0:2, 9:11] = 2
    pred = gt.copy()
    pred[0, 11, 11] = 1  # a false-positive speck of class 1: removing it helps
    assert choose_largest_component_classes([pred], [gt], 3) == [1]  # class 2 would lose a true part


def test_finetune_writes_its_decision(synthetic_store, tmp_path) -> None:
    from medssl.config import DataCfg, FinetuneConfig, ModelCfg, TrainCfg
    from medssl.finetune import finetune

    cfg = FinetuneConfig(
        data=DataCfg(path=str(synthetic_store), labels="50%", batch_size=4, num_workers=0, image_size=32),
        model=ModelCfg(base_width=4),
        train=TrainCfg(max_steps=2, device="cpu", progress=False),
        out=str(tmp_path / "ft"),
    )
    res = finetune(cfg)
    doc = json.loads((res.out / "postprocessing.json").read_text())
    assert doc["decided_on"] == "validation" and set(doc["cases"]).isdisjoint(
        json.loads((res.out / "splits.json").read_text())["test"]
    )
    assert all(1 <= k < 4 for k in doc["largest_component"])
