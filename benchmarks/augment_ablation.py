"""Fine-tuning augmentation on a short schedule: validation DSC after the same number of steps with
each part of the papers' augmentation switched on or off, on a prepared store (Scratch, seeded split).

    python benchmarks/augment_ablation.py --data runs/cpu_hippocampus/prepared/hippocampus

Prints one row per setting: steps, last training loss and mean foreground DSC over validation volumes.
On MSD Hippocampus (classes anterior / posterior) mirroring and 0..2pi rotations swap the classes' positions.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from medssl.data.datasets import LabelledSlices
from medssl.data.splits import make_split
from medssl.data.store import SliceStore
from medssl.data.transforms import JointAugment
from medssl.engine.inference import predict_volume
from medssl.evaluation.metrics import confusion_counts, dice_jaccard_from_counts
from medssl.models.unet import UNet

SETTINGS = {
    "centre crop (no augmentation)": None,
    "random crop": dict(p_spatial=0.0, mirror=False),
    "random crop + mirror": dict(p_spatial=0.0, mirror=True),
    "random crop + spatial p0.2": dict(p_spatial=0.2, mirror=False),
    "random crop + spatial p0.67": dict(p_spatial=0.67, mirror=False),
    "papers' (mirror + spatial p0.67)": dict(p_spatial=0.67, mirror=True),
}


def run(
    store: SliceStore, split, patch: int, kwargs: dict | None, epochs: int, batch: int, n_val: int
) -> tuple[int, float, float]:
    torch.manual_seed(0)
    aug = None if kwargs is None else JointAugment(patch, **kwargs)
    ds = LabelledSlices(store, split.train, patch, aug, seed=0)
    net = UNet(1, store.num_classes)
    opt = torch.optim.Adam(net.parameters(), 5e-4, weight_decay=1e-5)
    steps, loss = 0, torch.tensor(float("nan"))
    for ep in range(epochs):
        ds.set_epoch(ep)
        for b in DataLoader(
            ds, batch_size=batch, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(ep)
        ):
            loss = F.cross_entropy(net(b["image"]), b["label"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
    dsc = []
    for cid in split.val[:n_val]:
        pred = predict_volume(net, np.asarray(store.image(cid)), torch.device("cpu"))
        d, _ = dice_jaccard_from_counts(confusion_counts(pred, np.asarray(store.label(cid)), store.num_classes))
        dsc.append(np.nanmean(d[1:]))
    return steps, float(loss.detach()), float(np.mean(dsc))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--labels", default="10%")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--val", type=int, default=8, help="validation volumes scored")
    a = ap.parse_args()
    torch.set_num_threads(1)
    store = SliceStore(a.data)
    split = make_split(store, a.labels, seed=0, protocol="standard")
    print(
        f"{store.plan['dataset_label']}: {len(split.train)} training cases, patch {store.patch_size}, {a.epochs} epochs, batch {a.batch}"
    )
    print(f"{'setting':<34} {'steps':>5} {'loss':>6} {'val DSC':>8}")
    for name, kw in SETTINGS.items():
        steps, loss, dsc = run(store, split, store.patch_size, kw, a.epochs, a.batch, a.val)
        print(f"{name:<34} {steps:5d} {loss:6.3f} {dsc:8.3f}", flush=True)


if __name__ == "__main__":
    main()
