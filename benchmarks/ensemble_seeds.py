"""Does averaging two seeds' softmax help? Two fine-tunings that differ only in their seed, each alone
and as a ``medssl predict`` ensemble, scored on the same test patients' raw labels.

    python benchmarks/ensemble_seeds.py                       # MS-CMRSeg crops, 12 patients, 2 seeds
    python benchmarks/ensemble_seeds.py --patients 20 --steps 400 --seeds 1,2

The store holds in-plane crops (``--crop`` px around the image centre, at the scans' own 1.25 mm) of
the first ``--patients`` MS-CMRSeg patients (read from ../shared/data by path); the split is the same
for both seeds (``data.split_seed`` fixed), the training seed differs. Nothing is chosen on the test
set: the runs select their epoch on validation, and the ensemble is the plain mean of the softmax.
Prints the test DSC (mean over foreground classes, per-volume) of each run and of the ensemble.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import torch

from medssl.config import DataCfg, FinetuneConfig, ModelCfg, TrainCfg
from medssl.data.store import prepare
from medssl.evaluation.evaluate import evaluate_folders
from medssl.finetune import finetune
from medssl.inference import Segmenter, predict_inputs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_recipes import _data_root

RAW_LABELS = {0: 0, 200: 1, 500: 2, 600: 3}
CLASSES = ("background", "LV-myo", "LV", "RV")


def crops(data: Path, out: Path, patients: int, crop: int) -> Path:
    out.mkdir(parents=True)
    for n in range(1, patients + 1):
        for kind in ("image", "label"):
            img = nib.load(str(data / "mscmrseg_bssfp" / f"{kind}_{n}.nii.gz"))
            lo = [(s - crop) // 2 for s in img.shape[:2]]
            nib.save(img.slicer[lo[0] : lo[0] + crop, lo[1] : lo[1] + crop, :], str(out / f"{kind}_{n}.nii.gz"))
    return out


def train(store: Path, out: Path, seed: int, a: argparse.Namespace) -> Path:
    cfg = FinetuneConfig(
        data=DataCfg(path=str(store), labels=a.labels, batch_size=8, num_workers=0, image_size=a.size, split_seed=0),
        model=ModelCfg(base_width=a.width),
        train=TrainCfg(device="cpu", progress=False, epochs=1000, max_steps=a.steps, seed=seed),
        out=str(out),
    )
    return finetune(cfg).out


def score(runs: list[Path], raw: Path, test: list[str], out: Path) -> float:
    """Test DSC of ``medssl predict`` with ``runs`` (one run, or an ensemble) against the raw labels."""
    imgs, gts = out / "images", out / "labels"
    imgs.mkdir(parents=True)
    gts.mkdir()
    for cid in test:
        n = cid.removeprefix("patient")
        (imgs / f"{cid}.nii.gz").symlink_to(raw / f"image_{n}.nii.gz")
        (gts / f"{cid}.nii.gz").symlink_to(raw / f"label_{n}.nii.gz")
    predict_inputs(Segmenter.from_run(runs, device="cpu"), imgs, out / "pred", progress=False)
    res = evaluate_folders(out / "pred", gts, class_names=CLASSES, label_map=RAW_LABELS)
    return float(res.summary[-1]["dsc_mean"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="the shared data folder (default: ../shared/data)")
    p.add_argument("--patients", type=int, default=12)
    p.add_argument("--crop", type=int, default=128, help="in-plane crop in pixels (1.25 mm)")
    p.add_argument("--labels", default="100%")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--size", type=int, default=96, help="training patch size")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    seeds = [int(s) for s in a.seeds.split(",")]
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        raw = crops(_data_root(a.data), root / "raw", a.patients, a.crop)
        prepare("mscmrseg", raw, root / "store", progress=False)
        runs = [train(root / "store", root / f"seed{s}", s, a) for s in seeds]
        test = json.loads((runs[0] / "splits.json").read_text())["test"]
        assert all(json.loads((r / "splits.json").read_text())["test"] == test for r in runs)
        single = [score([r], raw, test, root / f"score_{r.name}") for r in runs]
        both = score(runs, raw, test, root / "score_ensemble")
    print(f"# python benchmarks/ensemble_seeds.py {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"# MS-CMRSeg, {a.patients} patients cropped to {a.crop} px, labels {a.labels}, {a.steps} steps, "
        f"width {a.width}, patch {a.size}; test patients: {', '.join(test)}; {time.time() - t0:.0f} s"
    )
    for s, d in zip(seeds, single):
        print(f"seed {s} alone: test DSC {100 * d:.2f}%")
    print(f"mean of the {len(seeds)} alone: {100 * sum(single) / len(single):.2f}%")
    print(
        f"ensemble (softmax averaged): {100 * both:.2f}%  ({'>=' if both >= sum(single) / len(single) else '<'} the mean)"
    )


if __name__ == "__main__":
    main()
