"""Shared test fixtures: tiny tensors, and the real data in ../shared/data read by path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """``$MEDSSL_SHARED_DATA`` or ``../shared/data`` beside the repository (where CI puts it)."""
    env = os.environ.get("MEDSSL_SHARED_DATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data", Path("/work/shared/data")]:
        if cand.is_dir():
            return cand
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if d is None:
        pytest.skip("real data folder ../shared/data not found (set MEDSSL_SHARED_DATA)")
    return d


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _subset_msd(src: Path, dst: Path, n: int) -> Path:
    """Link the first ``n`` hippocampus cases into an MSD-layout folder (no data is copied)."""
    for sub in ("imagesTr", "labelsTr"):
        (dst / sub).mkdir(parents=True, exist_ok=True)
    for f in sorted((src / "imagesTr").glob("*.nii.gz"))[:n]:
        for sub in ("imagesTr", "labelsTr"):
            link = dst / sub / f.name
            if not link.exists():
                link.symlink_to(src / sub / f.name)
    return dst


@pytest.fixture(scope="session")
def hippo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared store of 12 real MSD Hippocampus cases (read from ../shared/data by path)."""
    from medssl.data.store import prepare

    data = shared_data_dir()
    if data is None:
        pytest.skip("real data folder ../shared/data not found")
    root = tmp_path_factory.mktemp("hippo")
    src = _subset_msd(data / "msd_hippocampus", root / "Task04_Hippocampus", 12)
    prepare("msd", src, root / "prepared", progress=False)
    return root / "prepared"


@pytest.fixture(scope="session")
def synthetic_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared store of small synthetic phantoms (6 patients x 2 frames x 8 slices of 32 px)."""
    from medssl.data.store import prepare

    root = tmp_path_factory.mktemp("synth")
    prepare(
        "synthetic",
        "builtin",
        root / "prepared",
        progress=False,
        reader_options=dict(n_patients=6, frames=2, slices=8, size=32, seed=0),
    )
    return root / "prepared"


@pytest.fixture(scope="session")
def cardiac_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared store of 4 real MS-CMRSeg cardiac cases at 2.5 mm (128 px slices; read by path)."""
    from medssl.data.store import prepare

    data = shared_data_dir()
    if data is None:
        pytest.skip("real data folder ../shared/data not found")
    root = tmp_path_factory.mktemp("cardiac")
    src = root / "mscmrseg"
    src.mkdir()
    for n in (1, 2, 3, 4):
        for kind in ("image", "label"):
            (src / f"{kind}_{n}.nii.gz").symlink_to(data / "mscmrseg_bssfp" / f"{kind}_{n}.nii.gz")
    prepare("mscmrseg", src, root / "prepared", target_spacing=2.5, progress=False)
    return root / "prepared"
