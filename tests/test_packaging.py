"""The wheel users install: every file of medssl/resources and medssl/configs ships, and the packaged
data (the papers' splits, the published numbers) loads from an installed copy, not from the checkout.

The wheel is built from a copy of pyproject.toml, README.md and src/ (so no build/ folder appears in
the checkout), without build isolation (nothing is downloaded), and installed with
``pip install --no-deps --target`` (no second torch).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "src" / "medssl"


def _data_files(folder: str) -> set[str]:
    """Files of ``src/medssl/<folder>`` (no caches), as wheel paths."""
    return {
        f"medssl/{folder}/{p.name}"
        for p in (PKG / folder).iterdir()
        if p.is_file() and p.suffix not in (".pyc",) and not p.name.startswith(".")
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("setuptools")
    root = tmp_path_factory.mktemp("wheel")
    proj = root / "proj"
    proj.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, proj / name)
    shutil.copytree(REPO / "src", proj / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(proj),
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(root / "dist"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    (whl,) = (root / "dist").glob("medssl-*.whl")
    return whl


def test_wheel_ships_every_resource_and_config(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = _data_files("resources") | _data_files("configs")
    assert {"medssl/resources/paper_results.csv", "medssl/resources/paper_splits.txt"} <= expected
    assert expected - names == set(), f"missing from the wheel: {sorted(expected - names)}"
    assert "medssl/py.typed" in names


_CHECK = """
import sys
from importlib import resources
from pathlib import Path
import medssl
from medssl.data.splits import load_paper_splits
from medssl.reporting.report import find_reference_csv, load_paper_results
assert Path(medssl.__file__).resolve().is_relative_to(Path(sys.argv[1]).resolve()), medssl.__file__
found = sorted(p.name for p in resources.files("medssl.resources").iterdir() if p.is_file())
splits = load_paper_splits()
cells = load_paper_results(find_reference_csv())
print(" ".join(found))
print(len(splits), len(cells))
"""


def test_installed_wheel_finds_its_resources(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    res = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run(
        [sys.executable, "-c", _CHECK, str(site)], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr[-3000:]
    names, counts = run.stdout.strip().splitlines()[-2:]
    assert set(names.split()) == {p.rsplit("/", 1)[1] for p in _data_files("resources")}
    n_splits, n_cells = map(int, counts.split())
    assert n_splits >= 8 and n_cells >= 100
