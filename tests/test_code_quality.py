"""Code-quality gates that are cheap to check from the source alone."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "medssl"

#: the longest function, ``def`` line to last line, that a reader is expected to hold in their head
MAX_FUNCTION_LINES = 60


def long_functions(root: Path, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, str, int]]:
    """``(file, qualified name, lines)`` of every function or method under ``root`` longer than ``limit``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found.extend((str(path.relative_to(root.parent)), name, n) for name, n in _lengths(tree) if n > limit)
    return found


def _lengths(node: ast.AST, prefix: str = "") -> list[tuple[str, int]]:
    out = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                assert child.end_lineno is not None
                out.append((name, child.end_lineno - child.lineno + 1))
            out.extend(_lengths(child, f"{name}."))
        else:
            out.extend(_lengths(child, prefix))
    return out


def test_long_functions_finds_methods_and_nested_functions(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    (pkg / "m.py").write_text(
        f"def short():\n    return 1\n\n\nclass A:\n    def long(self):\n{body.replace('    ', '        ')}\n\n\n"
        f"def outer():\n    def inner():\n{body.replace('    ', '        ')}\n    return inner\n"
    )
    found = {name: n for _, name, n in long_functions(pkg)}
    assert found == {"A.long": 62, "outer": 64, "outer.inner": 62}


def test_no_function_longer_than_60_lines() -> None:
    found = long_functions(SRC)
    assert not found, "functions over 60 lines (split them into named steps):\n" + "\n".join(
        f"  {file}: {name} ({n} lines)" for file, name, n in found
    )
