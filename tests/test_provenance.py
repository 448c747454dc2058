"""``git_commit``: the commit of the code that ran, marked ``+dirty`` only for changes to that code."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from medssl.utils.files import git_commit

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _repo(tmp_path: Path) -> tuple[Path, str]:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "code.py").write_text("x = 1\n")
    (tmp_path / "results.md").write_text("old table\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    return tmp_path / "pkg", _git(tmp_path, "rev-parse", "HEAD")


def test_a_clean_tree_gives_the_bare_commit(tmp_path: Path) -> None:
    pkg, sha = _repo(tmp_path)
    assert git_commit(pkg) == sha


def test_changes_outside_the_source_tree_do_not_mark_it_dirty(tmp_path: Path) -> None:
    pkg, sha = _repo(tmp_path)
    (tmp_path / "results.md").unlink()  # an export moving a bundle aside
    (tmp_path / "new_bundle.json").write_text("{}")
    assert git_commit(pkg) == sha


def test_a_modified_source_file_is_marked_dirty(tmp_path: Path) -> None:
    pkg, sha = _repo(tmp_path)
    (pkg / "code.py").write_text("x = 2\n")
    assert git_commit(pkg) == sha + "+dirty"


def test_outside_git_gives_none(tmp_path: Path) -> None:
    if subprocess.run(["git", "rev-parse"], cwd=tmp_path, capture_output=True).returncode == 0:
        pytest.skip("tmp_path is inside a git repository")
    assert git_commit(tmp_path) is None


def test_the_default_is_the_installed_package() -> None:
    import medssl

    assert git_commit() == git_commit(Path(medssl.__file__).resolve().parent)
