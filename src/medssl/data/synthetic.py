"""A cardiac-like phantom so that the demo and most tests run with no data at all.

Each case is a short-axis stack ``(D, H, W)``: a left-ventricle blood pool (label 3) inside a
myocardium ring (2), a right-ventricle crescent (1) beside it, in a body with other organs
(random blobs), texture, a smooth bias field and Rician noise. Centre, radii and wall thickness
vary smoothly from the base (first slice, largest) to the apex (last slice, smallest); the first
and/or last slice sometimes lies outside the heart. Intensities differ per structure but overlap
(myocardium looks like the surrounding tissue, the RV like the LV, some blobs like blood), so the
segmentation task is not trivial. Two "frames" of a patient share the anatomy (end-diastole,
end-systole: smaller cavities, thicker wall) and differ in noise.

The dataset is registered as ``synthetic`` in :data:`medssl.registry.DATASETS`; its SRC is
``builtin`` (keyword defaults) or a JSON/YAML file of generator parameters.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ..errors import DataError
from ..registry import DATASETS
from .case import Case, CaseSource, DatasetSpec

__all__ = [
    "SYNTHETIC",
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_SPACING",
    "generate_cases",
    "make_phantom",
    "scan_synthetic",
    "write_nifti_folder",
]

#: voxel spacing (sz, sy, sx) of every synthetic case, in mm
SYNTHETIC_SPACING: tuple[float, float, float] = (8.0, 1.5, 1.5)
#: class names of the 4-class phantom
SYNTHETIC_CLASSES: tuple[str, ...] = ("background", "rv", "myo", "lv")
_DEFAULTS: dict[str, int] = {"n_patients": 8, "frames": 2, "slices": 12, "size": 64, "seed": 0}


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma: float | tuple[float, ...]) -> np.ndarray:
    """Zero-mean, unit-std smooth random field (Gaussian-filtered white noise)."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    std = f.std()
    return f / std if std > 0 else f


def make_phantom(
    rng: np.random.Generator,
    slices: int = 12,
    size: int = 64,
    num_classes: int = 4,
    *,
    phase: float = 0.0,
    noise_rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One cardiac-like short-axis stack and its label.

    Args:
        rng: generator of the anatomy (positions, radii, organs, intensities, bias field).
        slices: number of slices ``D`` (>= 3).
        size: in-plane side ``H = W`` (>= 16).
        num_classes: 4 (background, RV, myocardium, LV), 3 (background, myocardium, LV: the RV is
            still drawn but labelled background) or 2 (background, LV).
        phase: cardiac phase in [0, 1]: 0 = end-diastole; 1 = end-systole (LV cavity about 30 %
            smaller in radius, wall thicker, RV smaller).
        noise_rng: generator of the texture and the noise (defaults to ``rng``). Passing the same
            ``rng`` state with different ``noise_rng`` gives the same anatomy with other noise.

    Returns:
        ``(image, label)``: float32 ``(D, H, W)`` with positive MR-like values (arbitrary scale,
        a few hundred) and uint8 ``(D, H, W)`` in ``0 .. num_classes - 1``.

    Raises:
        ValueError: ``num_classes`` not in 2..4, too few slices or too small a size.
    """
    if num_classes not in (2, 3, 4):
        raise ValueError(f"num_classes must be 2, 3 or 4, got {num_classes}")
    if slices < 3 or size < 16:
        raise ValueError(f"need slices >= 3 and size >= 16, got slices={slices}, size={size}")
    nrng = rng if noise_rng is None else noise_rng
    d, n = int(slices), int(size)
    phase = float(np.clip(phase, 0.0, 1.0))
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    # the draws from rng happen in this order: heart, then scene; then texture and noise from nrng
    heart = _draw_heart(rng, d, n, phase)
    scene = _draw_scene(rng, n, yy, xx)
    image = np.zeros((d, n, n), dtype=np.float64)
    label = np.zeros((d, n, n), dtype=np.uint8)
    for k in range(d):
        image[k], label[k] = _render_slice(k, heart, scene, yy, xx)
    image = _texture_bias_noise(image, nrng, scene, yy, xx)
    return image.astype(np.float32), _merge_classes(label, num_classes)


# --- the steps of make_phantom() ---------------------------------------------------------------------------
@dataclass
class _Heart:
    """Per-slice geometry of the heart (arrays of length D), smooth from base to apex."""

    t: np.ndarray  # 0 = base, 1 = apex
    k0: int  # first and last slice inside the heart
    k1: int
    cy: np.ndarray  # LV centre
    cx: np.ndarray
    r_lv: np.ndarray  # LV cavity radius, myocardium thickness
    th: np.ndarray
    rv_dir: float  # RV direction, radius, offset from the LV centre, presence
    r_rv: np.ndarray
    rv_off: np.ndarray
    rv_present: np.ndarray
    ecc: float  # LV ellipticity
    pap_ang: np.ndarray  # angles of the papillary-muscle-like specks


@dataclass
class _Scene:
    """Body, organs, intensities, bias field and noise level of one phantom."""

    body: np.ndarray
    i_tissue: float
    i_myo: float
    i_lv: float
    i_rv: float
    blobs: list[dict[str, float]]
    bias_coef: np.ndarray
    gain: float
    sigma_noise: float


def _draw_heart(rng: np.random.Generator, d: int, n: int, phase: float) -> _Heart:
    """Centre, radii and wall thickness per slice, shrinking from base to apex (end-systole: smaller
    cavities, thicker wall); the first and/or last slice sometimes lies outside the heart."""
    t = np.linspace(0.0, 1.0, d)
    k0 = int(rng.uniform() < 0.35)  # base slice above the heart sometimes
    k1 = d - 1 - int(rng.uniform() < 0.5)  # apex slice below the heart sometimes
    cy0, cx0 = n * (0.5 + rng.uniform(-0.06, 0.06)), n * (0.52 + rng.uniform(-0.06, 0.06))
    drift = rng.uniform(-0.05, 0.05, size=2) * n  # centre moves linearly base -> apex
    wob = rng.uniform(-0.015, 0.015, size=2) * n  # and a little sinusoidally
    wob_f = rng.uniform(0.5, 1.5)
    cy = cy0 + drift[0] * t + wob[0] * np.sin(2 * np.pi * wob_f * t)
    cx = cx0 + drift[1] * t + wob[1] * np.sin(2 * np.pi * wob_f * t + 1.0)
    r_base = n * rng.uniform(0.10, 0.14) * (1.0 - 0.3 * phase)
    r_lv = r_base * (1.0 - 0.55 * t**1.3)
    th = n * rng.uniform(0.035, 0.05) * (1.0 + 0.35 * phase) * (1.0 - 0.25 * t)
    rv_dir = rng.uniform(0.8, 1.2) * np.pi  # RV on the image's left of the LV
    rv_scale = rng.uniform(1.0, 1.3) * (1.0 - 0.25 * phase)
    r_rv = (r_lv + th) * rv_scale * (1.0 - 0.35 * t)
    rv_off = (r_lv + th) * rng.uniform(0.55, 0.8)
    rv_present = t <= rng.uniform(0.75, 0.95)  # RV ends before the apex
    ecc = rng.uniform(0.85, 1.0)  # slightly elliptic LV
    pap_ang = rng.uniform(0, 2 * np.pi, size=int(rng.integers(1, 3)))
    return _Heart(t, k0, k1, cy, cx, r_lv, th, rv_dir, r_rv, rv_off, rv_present, ecc, pap_ang)


def _draw_scene(rng: np.random.Generator, n: int, yy: np.ndarray, xx: np.ndarray) -> _Scene:
    """Elliptic body, 2-5 other organs (blobs over a range of slices) and overlapping intensities:
    the myocardium looks like the tissue, the RV like the LV, some blobs like blood."""
    body_ry, body_rx = n * rng.uniform(0.40, 0.46), n * rng.uniform(0.44, 0.49)
    body = ((yy - n / 2) / body_ry) ** 2 + ((xx - n / 2) / body_rx) ** 2 <= 1.0
    i_tissue = rng.uniform(0.30, 0.40)
    i_myo = i_tissue + rng.uniform(-0.06, 0.02)  # overlaps the tissue
    i_lv = rng.uniform(0.80, 0.95)
    i_rv = i_lv - rng.uniform(0.0, 0.12)  # overlaps the LV
    blobs = []
    for _ in range(int(rng.integers(2, 6))):
        ang = rng.uniform(0, 2 * np.pi)
        dist = rng.uniform(0.22, 0.36) * n
        blobs.append(
            {
                "cy": n / 2 + dist * np.sin(ang),
                "cx": n / 2 + dist * np.cos(ang),
                "ry": rng.uniform(0.04, 0.10) * n,
                "rx": rng.uniform(0.04, 0.12) * n,
                "rot": rng.uniform(0, np.pi),
                "z0": rng.uniform(-0.3, 0.6),
                "z1": rng.uniform(0.5, 1.3),
                "val": rng.choice([rng.uniform(0.05, 0.2), rng.uniform(0.45, 0.7), rng.uniform(0.75, 0.95)]),
            }
        )
    # smooth multiplicative bias field, low order in-plane, slowly varying in z
    b = rng.uniform(-0.25, 0.25, size=5)
    gain = rng.uniform(200.0, 800.0)
    sigma_noise = rng.uniform(0.02, 0.05)
    return _Scene(body, i_tissue, i_myo, i_lv, i_rv, blobs, b, gain, sigma_noise)


def _render_slice(
    k: int, heart: _Heart, scene: _Scene, yy: np.ndarray, xx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Slice ``k``: noiseless intensities (float64 ``(H, W)``) and its 4-class label (uint8)."""
    n = yy.shape[0]
    img = np.where(scene.body, scene.i_tissue, 0.02)
    for bl in scene.blobs:
        if not bl["z0"] <= heart.t[k] <= bl["z1"]:
            continue
        c, s = math.cos(bl["rot"]), math.sin(bl["rot"])
        dy, dx = yy - bl["cy"], xx - bl["cx"]
        u, v = c * dy + s * dx, -s * dy + c * dx
        img = np.where(((u / bl["ry"]) ** 2 + (v / bl["rx"]) ** 2 <= 1.0) & scene.body, bl["val"], img)
    lab = np.zeros((n, n), dtype=np.uint8)
    if heart.k0 <= k <= heart.k1:
        cy, cx, r_lv, th = heart.cy[k], heart.cx[k], heart.r_lv[k], heart.th[k]
        dy, dx = yy - cy, xx - cx
        r = np.sqrt((dy / heart.ecc) ** 2 + dx**2)
        lv = r <= r_lv
        myo = (r <= r_lv + th) & ~lv
        rv = np.zeros_like(lv)
        if heart.rv_present[k]:
            ry_c = cy + heart.rv_off[k] * np.sin(heart.rv_dir)
            rx_c = cx + heart.rv_off[k] * np.cos(heart.rv_dir)
            rv = (np.hypot(yy - ry_c, xx - rx_c) <= heart.r_rv[k]) & (r > r_lv + th + 1.0)
        lab[rv] = 1
        lab[myo] = 2
        lab[lv] = 3
        img = np.where(rv, scene.i_rv, img)
        img = np.where(myo, scene.i_myo, img)
        img = np.where(lv, scene.i_lv, img)
        # papillary-muscle-like dark specks inside the cavity (labelled LV, as in ACDC)
        for pa in heart.pap_ang:
            py = cy + 0.55 * r_lv * np.sin(pa)
            px = cx + 0.55 * r_lv * np.cos(pa)
            speck = (np.hypot(yy - py, xx - px) <= max(0.18 * r_lv, 0.6)) & lv
            img = np.where(speck, scene.i_myo, img)
    return img, lab


def _texture_bias_noise(
    image: np.ndarray, nrng: np.random.Generator, scene: _Scene, yy: np.ndarray, xx: np.ndarray
) -> np.ndarray:
    """Texture, partial volume, the bias field and Rician noise (texture and noise drawn from ``nrng``)."""
    d, n = image.shape[0], yy.shape[0]
    b = scene.bias_coef
    texture = _smooth_field(nrng, (d, n, n), (0.0, 1.5, 1.5))
    image = image * (1.0 + 0.08 * texture)
    image = ndimage.gaussian_filter(image, (0.0, 0.7, 0.7))
    zz = np.linspace(-1, 1, d)[:, None, None]
    yn, xn = (yy / n - 0.5)[None], (xx / n - 0.5)[None]
    bias = np.exp(b[0] * yn + b[1] * xn + b[2] * yn * xn + b[3] * (yn**2 - xn**2) + b[4] * 0.3 * zz)
    image = image * bias
    n1 = nrng.normal(0.0, scene.sigma_noise, image.shape)
    n2 = nrng.normal(0.0, scene.sigma_noise, image.shape)
    return np.sqrt((image + n1) ** 2 + n2**2) * scene.gain  # Rician magnitude


def _merge_classes(label: np.ndarray, num_classes: int) -> np.ndarray:
    """4-class label -> 3 classes (background, myocardium, LV) or 2 (background, LV)."""
    if num_classes == 3:
        return np.where(label >= 2, label - 1, 0).astype(np.uint8)
    if num_classes == 2:
        return (label == 3).astype(np.uint8)
    return label


def _case_seeds(seed: int, patient: int, frame: int) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """(anatomy seed of the patient, noise seed of the frame)."""
    anatomy = np.random.SeedSequence([int(seed), int(patient)])
    noise = np.random.SeedSequence([int(seed), int(patient), int(frame), 1])
    return anatomy, noise


def _make_case(patient: int, frame: int, frames: int, slices: int, size: int, seed: int, source: str) -> Case:
    anat, noise = _case_seeds(seed, patient, frame)
    phase = frame / (frames - 1) if frames > 1 else 0.0
    image, label = make_phantom(
        np.random.default_rng(anat), slices, size, 4, phase=phase, noise_rng=np.random.default_rng(noise)
    )
    pid = f"synth{patient:03d}"
    cid = f"{pid}_f{frame}"
    return Case(
        cid,
        pid,
        image,
        label,
        SYNTHETIC_SPACING,
        f"{source}:{cid}",
        {"frame": frame, "phase": phase, "generator": "medssl.data.synthetic", "seed": int(seed)},
    )


def _check_options(opts: dict[str, Any], where: str) -> dict[str, int]:
    unknown = sorted(set(opts) - set(_DEFAULTS))
    if unknown:
        raise DataError(where, f"unknown synthetic generator option(s) {unknown}; known: {sorted(_DEFAULTS)}")
    out: dict[str, int] = {}
    for k, v in opts.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise DataError(where, f"option '{k}' must be an integer, got {v!r}")
        out[k] = int(v)
    if out.get("n_patients", 1) < 1 or out.get("frames", 1) < 1:
        raise DataError(where, "n_patients and frames must be >= 1")
    if out.get("slices", 3) < 3 or out.get("size", 16) < 16:
        raise DataError(where, "slices must be >= 3 and size >= 16")
    return out


def _read_options(path: Path) -> dict[str, Any]:
    text = path.read_text()
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:
        raise DataError(path, f"cannot parse synthetic generator parameters: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DataError(path, "synthetic generator parameters must be a mapping")
    return data


def scan_synthetic(
    root: str | Path = "builtin",
    n_patients: int = 8,
    frames: int = 2,
    slices: int = 12,
    size: int = 64,
    seed: int = 0,
) -> list[CaseSource]:
    """Lazy sources of the synthetic cases (``DatasetSpec.scan`` of ``synthetic``).

    Args:
        root: ``builtin`` (or any path that does not exist) uses the keyword arguments; an existing
            JSON/YAML file of generator parameters (keys ``n_patients``, ``frames``, ``slices``,
            ``size``, ``seed``) overrides them.
        n_patients: number of patients.
        frames: frames (volumes) per patient.
        slices: slices per volume.
        size: in-plane side in pixels.
        seed: generator seed.

    Returns:
        ``n_patients * frames`` :class:`CaseSource` objects, patient-major, whose ``load()``
        generates the case deterministically from ``(seed, patient, frame)``.

    Raises:
        DataError: the parameter file cannot be read or holds invalid values.
    """
    opts: dict[str, Any] = {"n_patients": n_patients, "frames": frames, "slices": slices, "size": size, "seed": seed}
    src = str(root)
    p = Path(src)
    if src != "builtin" and p.is_file():
        opts.update(_read_options(p))
        where = str(p)
    else:
        src = "builtin"
        where = "synthetic"
    o = _check_options(opts, where)
    sources = []
    for pat in range(o["n_patients"]):
        for fr in range(o["frames"]):

            def loader(pat: int = pat, fr: int = fr) -> Case:
                return _make_case(pat, fr, o["frames"], o["slices"], o["size"], o["seed"], src)

            pid = f"synth{pat:03d}"
            files = () if src == "builtin" else (src,)  # generated in memory: no file to check
            sources.append(CaseSource(f"{pid}_f{fr}", pid, files, loader, True, {"frame": fr}))
    return sources


def generate_cases(
    n_patients: int = 8,
    frames: int = 2,
    slices: int = 12,
    size: int = 64,
    seed: int = 0,
) -> list[Case]:
    """All synthetic cases in memory (the same as loading every source of :func:`scan_synthetic`).

    Args:
        n_patients: number of patients (ids ``synth000``, ``synth001``...).
        frames: frames per patient (case ids ``synth000_f0``, ``synth000_f1``...); frame 0 is
            end-diastole, the last is end-systole.
        slices: slices per volume.
        size: in-plane side.
        seed: everything is a deterministic function of it.

    Returns:
        ``n_patients * frames`` :class:`Case` objects with spacing ``(8.0, 1.5, 1.5)`` and labels
        ``0..3`` (background, RV, myocardium, LV).
    """
    return [s.load() for s in scan_synthetic("builtin", n_patients, frames, slices, size, seed)]


def write_nifti_folder(out_dir: str | Path, cases: Iterable[Case]) -> Path:
    """Write cases as ``images/{case_id}.nii.gz`` and ``labels/{case_id}.nii.gz``.

    The NIfTI array is ``volume.transpose(2, 1, 0)`` (X, Y, Z) with affine
    ``diag(sx, sy, sz, 1)``, the inverse of :func:`medssl.data.case.to_dhw`, so a reader of the
    folder gets the cases back exactly. Cases without a label get no label file.

    Args:
        out_dir: folder to create (parents included).
        cases: the cases to write.

    Returns:
        ``out_dir`` as a Path.
    """
    import nibabel as nib

    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    for c in cases:
        sz, sy, sx = c.spacing
        affine = np.diag([sx, sy, sz, 1.0])
        img = nib.Nifti1Image(np.ascontiguousarray(c.image.transpose(2, 1, 0)).astype(np.float32), affine)
        img.header.set_zooms((sx, sy, sz))
        nib.save(img, str(out / "images" / f"{c.case_id}.nii.gz"))
        if c.label is not None:
            lab = nib.Nifti1Image(np.ascontiguousarray(c.label.transpose(2, 1, 0)).astype(np.uint8), affine)
            lab.header.set_zooms((sx, sy, sz))
            nib.save(lab, str(out / "labels" / f"{c.case_id}.nii.gz"))
    return out


SYNTHETIC = DatasetSpec(
    name="synthetic",
    description="cardiac-like phantom short-axis stacks (RV, myocardium, LV), generated on the fly",
    layout=(
        "SRC is 'builtin' (no files: cases are generated from the keyword defaults "
        "n_patients=8, frames=2, slices=12, size=64, seed=0) or a JSON/YAML file holding any of "
        'those keys to override them, e.g. {"n_patients": 20, "size": 128}. Case ids '
        "synthPPP_fF, patient ids synthPPP, spacing (8.0, 1.5, 1.5) mm."
    ),
    class_names=SYNTHETIC_CLASSES,
    scan=scan_synthetic,
    target_spacing=None,
    normalization="zscore",
    patch_size=64,
    pretrain_only=False,
    paper_split_key=None,
    default_options=dict(_DEFAULTS),
)

DATASETS.register("synthetic", description=SYNTHETIC.description, paper="")(SYNTHETIC)
