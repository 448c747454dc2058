"""Segment NIfTI scans with a model exported by ``medssl export --format onnx``, without medssl.

Needs only numpy, nibabel and onnxruntime. It reproduces ``medssl predict`` step by step from the
export's ``model.json``: slices in file order, in-plane resampling to the target spacing, the
normalisation, padding to the network's size multiple, softmax, bilinear resampling of the softmax
back to the scan's grid, argmax, the largest connected component of the chosen classes, and a label
map with the scan's own header.

The label maps equal ``medssl predict``'s where the model needs no resampling (``target_spacing``
null, or a scan already at it). Where it resamples, medssl uses a cubic, anti-aliased resampling
(scikit-image): the script uses it too when scikit-image is installed, else a linear one
(``--numpy-only`` forces it), whose label maps differ from medssl's at a few boundary voxels.

Usage::

    python onnx_predict.py EXPORT_DIR INPUT.nii.gz [INPUT ...] --out OUT_DIR
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import onnxruntime as ort


def normalize(vol: np.ndarray, method: str) -> np.ndarray:
    """The store's normalisation of a (D, H, W) volume (model.json ``normalization``)."""
    x = vol.astype(np.float64)

    def zscore(a: np.ndarray) -> np.ndarray:
        std = float(a.std())
        return (a - float(a.mean())) / std if np.isfinite(std) and std > 0 else np.zeros_like(a)

    def minmax(a: np.ndarray) -> np.ndarray:
        lo, hi = float(a.min()), float(a.max())
        return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)

    if method == "zscore":
        x = zscore(x)
    elif method == "clip_zscore":
        lo, hi = np.percentile(x, [1.0, 99.0])
        x = zscore(np.clip(x, lo, hi))
    elif method == "minmax":
        x = minmax(x)
    elif method == "slice_minmax":
        x = np.stack([minmax(s) for s in x])
    elif method == "max":
        m = float(x.max())
        x = x / m if m > 0 else np.zeros_like(x)
    return x.astype(np.float32)


def bilinear(vol: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize the last two axes bilinearly, pixel centres aligned, edges repeated (torch align_corners=False)."""
    out = vol
    for axis, n_out in ((-2, shape[0]), (-1, shape[1])):
        n_in = out.shape[axis]
        if n_in == n_out:
            continue
        src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0.0)
        i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        w = (src - i0).astype(np.float32)
        a, b = np.take(out, i0, axis=axis), np.take(out, i1, axis=axis)
        w = w.reshape([-1 if ax == out.ndim + axis else 1 for ax in range(out.ndim)])
        out = a * (1.0 - w) + b * w
    return out.astype(np.float32)


def resample(vol: np.ndarray, spacing: tuple[float, float, float], target: float | None, numpy_only: bool):
    """In-plane resampling to ``target`` mm (model.json ``resampling``)."""
    _, sy, sx = spacing
    if target is None or (math.isclose(sy, target, rel_tol=1e-6) and math.isclose(sx, target, rel_tol=1e-6)):
        return vol
    shape = (max(1, int(round(vol.shape[1] * sy / target))), max(1, int(round(vol.shape[2] * sx / target))))
    if not numpy_only:
        try:
            from skimage.transform import resize

            out = np.stack(
                [
                    resize(v.astype(np.float64), shape, order=3, mode="edge", preserve_range=True, clip=False)
                    for v in vol
                ]
            )
            return np.clip(out, vol.min(), vol.max()).astype(np.float32)  # clipped to the volume's range
        except ImportError:
            pass
    return bilinear(vol, shape)


def softmax_volume(session: ort.InferenceSession, vol: np.ndarray, meta: dict, batch: int = 16) -> np.ndarray:
    """(D, h, w) -> softmax (K, D, h, w): pad each slice to the size multiple, run, crop."""
    d, h, w = vol.shape
    m, channels, fill = meta["input"]["size_multiple"], meta["input"]["channels"], meta["input"]["fill"]
    ph, pw = (-h) % m, (-w) % m
    out = np.empty((len(meta["class_names"]), d, h, w), dtype=np.float32)
    for s in range(0, d, batch):
        x = vol[s : s + batch, None].astype(np.float32)
        low = x.min(axis=(2, 3), keepdims=True) if fill == "min" else np.zeros((len(x), 1, 1, 1), np.float32)
        x = np.pad(x - low, ((0, 0), (0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))) + low
        x = np.repeat(x, channels, axis=1) if channels > 1 else x
        logits = session.run(None, {"image": x.astype(np.float32)})[0]
        logits = logits[:, :, ph // 2 : ph // 2 + h, pw // 2 : pw // 2 + w]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        out[:, s : s + batch] = (e / e.sum(axis=1, keepdims=True)).transpose(1, 0, 2, 3)
    return out


def largest_component(labels: np.ndarray, k: int) -> np.ndarray:
    """Keep the largest 6-connected component of class ``k`` (label propagation + pointer jumping)."""
    mask = labels == k
    if not mask.any():
        return labels
    idx = np.arange(mask.size, dtype=np.int64).reshape(mask.shape)
    lab = np.where(mask, idx, mask.size)
    while True:
        before = lab.copy()
        for axis in range(lab.ndim):
            for shift in (1, -1):
                nb = np.roll(lab, shift, axis=axis)
                edge = [slice(None)] * lab.ndim
                edge[axis] = slice(0, 1) if shift == 1 else slice(-1, None)
                nb[tuple(edge)] = mask.size  # no wrap-around
                lab = np.where(mask, np.minimum(lab, nb), lab)
        flat = lab.ravel()
        inside = flat < mask.size
        flat[inside] = flat[flat[inside]]  # pointer jumping: a label is a voxel of the same component
        lab = flat.reshape(mask.shape)
        if np.array_equal(lab, before):
            break
    roots, counts = np.unique(lab[mask], return_counts=True)
    out = labels.copy()
    out[mask & (lab != roots[np.argmax(counts)])] = 0
    return out


def predict_file(session: ort.InferenceSession, meta: dict, path: Path, out: Path, numpy_only: bool = False) -> Path:
    """One NIfTI scan -> its label map (same shape, affine and header, uint8)."""
    img = nib.load(str(path))
    arr = np.asarray(np.asanyarray(img.dataobj)).astype(np.float32)
    arr = arr.reshape(arr.shape[:3]) if arr.ndim > 3 else (arr[:, :, None] if arr.ndim == 2 else arr)
    zooms = [float(z) for z in img.header.get_zooms()[:3]] + [1.0] * (3 - min(3, len(img.header.get_zooms())))
    vol = np.ascontiguousarray(arr.transpose(2, 1, 0))  # (X, Y, Z) -> (D, H, W)
    spacing = (zooms[2], zooms[1], zooms[0])
    net = normalize(resample(vol, spacing, meta["target_spacing"], numpy_only), meta["normalization"]["method"])
    probs = bilinear(softmax_volume(session, net, meta), vol.shape[1:])
    labels = probs.argmax(0).astype(np.uint8)
    for k in meta["postprocessing"]["largest_component"]:
        labels = largest_component(labels, int(k))
    hdr = img.header.copy()
    hdr.set_data_dtype(np.uint8)
    xyz = labels.transpose(2, 1, 0).reshape(img.shape)
    seg = nib.Nifti1Image(xyz, img.affine, header=hdr)
    seg.header.set_slope_inter(1.0, 0.0)
    seg.set_sform(img.header.get_sform(), code=int(img.header["sform_code"]))
    seg.set_qform(img.header.get_qform(), code=int(img.header["qform_code"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    nib.save(seg, str(out))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("export", help="folder written by `medssl export --format onnx`")
    p.add_argument("inputs", nargs="+", help="NIfTI scans")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--numpy-only", action="store_true", help="linear resampling even if scikit-image is installed")
    a = p.parse_args(argv)
    meta = json.loads((Path(a.export) / "model.json").read_text())
    session = ort.InferenceSession(str(Path(a.export) / meta["file"]), providers=["CPUExecutionProvider"])
    for f in a.inputs:
        name = Path(f).name.replace(".nii.gz", "").replace(".nii", "")
        name = name[:-5] if len(name) > 5 and name[-5] == "_" and name[-4:].isdigit() else name
        print(predict_file(session, meta, Path(f), Path(a.out) / f"{name}.nii.gz", a.numpy_only))


if __name__ == "__main__":
    main()
