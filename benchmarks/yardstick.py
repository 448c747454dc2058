"""An independent fine-tuning yardstick: a MONAI network and loss in a plain PyTorch loop.

Nothing of medssl's training path is used here (no engine, dataset, augmentation, network, loss,
inference or metric code): only the prepared arrays (``images/<id>.npy``, ``labels/<id>.npy``) and
the case lists of a split. It is the recipe a practitioner would write first, and the bar that
medssl's default fine-tuning recipe must reach at the same budget:

* MONAI ``BasicUNet`` (features 16-32-64-128-256), ``DiceCELoss`` (softmax, one-hot targets);
* Adam, lr 1e-3, cosine annealing over the run, no warm-up;
* each training slice resized to ``size`` x ``size`` together with random flips of both axes and a
  rotation of +-15 degrees (one bilinear / nearest resampling, ``affine_grid``), batches drawn from
  shuffled epochs;
* validation and test: every slice resized to ``size``, the logits resized back to the slice
  (bilinear), argmax; per-volume Dice averaged over the foreground classes.

Usage::

    python benchmarks/yardstick.py --store prepared/cmr --split split.json --out yardstick.json --steps 750

where ``split.json`` holds ``{"train": [...], "val": [...], "test": [...]}`` case ids (a medssl run's
``splits.json`` will do), or from Python::

    from yardstick import run_yardstick
    curve, test = run_yardstick(store_dir, train_ids, val_ids, test_ids, num_classes=4, steps=750, batch=16)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["run_yardstick", "volume_dice"]


def _load(store: Path, ids: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.load(store / "images" / f"{c}.npy"), np.load(store / "labels" / f"{c}.npy")) for c in ids]


def volume_dice(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> float:
    """Mean Dice over the foreground classes present in ``gt`` or ``pred`` of one volume."""
    scores = []
    for k in range(1, num_classes):
        p, g = pred == k, gt == k
        denom = p.sum() + g.sum()
        if denom:
            scores.append(2.0 * np.logical_and(p, g).sum() / denom)
    return float(np.mean(scores)) if scores else float("nan")


def _grid(n: int, size: int, angle: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip[:, 1], -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos * flip[:, 0]
    return F.affine_grid(theta, (n, 1, size, size), align_corners=False)


def _batch(
    slices: list[tuple[np.ndarray, np.ndarray]], idx: Sequence[int], size: int, gen: torch.Generator, augment: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    imgs, labs = [], []
    for i in idx:
        img, lab = slices[i]
        n = 1
        if augment:
            angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(15)
            flip = torch.where(torch.rand(n, 2, generator=gen) < 0.5, -1.0, 1.0)
        else:
            angle, flip = torch.zeros(n), torch.ones(n, 2)
        grid = _grid(n, size, angle, flip)
        x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None, None]
        y = torch.from_numpy(np.ascontiguousarray(lab, dtype=np.float32))[None, None]
        imgs.append(F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False))
        labs.append(F.grid_sample(y, grid, mode="nearest", padding_mode="zeros", align_corners=False))
    return torch.cat(imgs), torch.cat(labs).round().long()


@torch.no_grad()
def _predict(net: torch.nn.Module, volume: np.ndarray, size: int) -> np.ndarray:
    net.eval()
    d, h, w = volume.shape
    x = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[:, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    logits = torch.cat([net(x[s : s + 16]) for s in range(0, d, 16)])
    logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    return logits.argmax(1).numpy().astype(np.uint8)


def _score(net: torch.nn.Module, volumes: list[tuple[np.ndarray, np.ndarray]], size: int, k: int) -> list[float]:
    return [volume_dice(_predict(net, img, size), lab, k) for img, lab in volumes]


def run_yardstick(
    store: str | Path,
    train_ids: Sequence[str],
    val_ids: Sequence[str],
    test_ids: Sequence[str],
    *,
    num_classes: int,
    steps: int = 750,
    batch: int = 16,
    size: int = 128,
    lr: float = 1e-3,
    val_every: int = 50,
    seed: int = 0,
    log=print,
) -> tuple[list[tuple[int, float]], dict[str, float]]:
    """Train the yardstick and return ``(validation curve, test result)``.

    Returns:
        ``[(step, mean validation Dice)]`` every ``val_every`` steps, and ``{"test_dice": mean
        per-volume Dice of the checkpoint with the best validation Dice, "best_step", "seconds"}``.
    """
    from monai.losses import DiceCELoss
    from monai.networks.nets import BasicUNet

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    store = Path(store)
    train = _load(store, train_ids)
    slices = [(img[z], lab[z]) for img, lab in train for z in range(img.shape[0])]
    val, test = _load(store, val_ids), _load(store, test_ids)
    net = BasicUNet(spatial_dims=2, in_channels=1, out_channels=num_classes, features=(16, 32, 64, 128, 256, 16))
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    curve: list[tuple[int, float]] = []
    best, best_state, best_step = -1.0, None, 0
    order: list[int] = []
    t0 = time.time()
    for step in range(1, steps + 1):
        if len(order) < batch:
            order += torch.randperm(len(slices), generator=gen).tolist()
        idx, order = order[:batch], order[batch:]
        x, y = _batch(slices, idx, size, gen, augment=True)
        net.train()
        loss = loss_fn(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % val_every == 0 or step == steps:
            score = float(np.nanmean(_score(net, val, size, num_classes)))
            curve.append((step, score))
            log(
                f"yardstick step {step}: loss {float(loss.detach()):.4f} val_dice {score:.4f} ({time.time() - t0:.0f} s)"
            )
            if score > best:
                best, best_step = score, step
                best_state = {k: v.clone() for k, v in net.state_dict().items()}
    if best_state is not None:
        net.load_state_dict(best_state)
    test_scores = _score(net, test, size, num_classes)
    return curve, {
        "test_dice": float(np.nanmean(test_scores)),
        "best_step": best_step,
        "best_val": best,
        "seconds": time.time() - t0,
        "per_case": test_scores,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", required=True, help="a prepared store (images/, labels/, plan.json)")
    ap.add_argument("--split", required=True, help="JSON with train / val / test case ids")
    ap.add_argument("--out", required=True, help="result JSON (written atomically at the end)")
    ap.add_argument("--steps", type=int, default=750)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--val-every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    split = json.loads(Path(a.split).read_text())
    k = len(json.loads((Path(a.store) / "plan.json").read_text())["class_names"])
    curve, res = run_yardstick(
        a.store,
        split["train"],
        split["val"],
        split["test"],
        num_classes=k,
        steps=a.steps,
        batch=a.batch,
        size=a.size,
        lr=a.lr,
        val_every=a.val_every,
        seed=a.seed,
        log=lambda m: print(m, flush=True),
    )
    out = Path(a.out)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(
            {"curve": curve, **res, "steps": a.steps, "batch": a.batch, "size": a.size, "lr": a.lr, "seed": a.seed},
            indent=1,
        )
    )
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
