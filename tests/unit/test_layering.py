"""Layering: ogref imports neither ogsim nor plotting libraries (checked on the source's AST)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_OGREF = ("ogsim", "matplotlib", "simpy", "numpy")


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_ogref_does_not_import_ogsim_or_plotting() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(imports(p) & set(FORBIDDEN_IN_OGREF))
        for p in (ROOT / "ogref").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_core_and_model_do_no_io() -> None:
    io_modules = {"subprocess", "socket", "os", "shutil", "time", "asyncio", "threading"}
    for sub in ("core", "model"):
        for p in (ROOT / "ogref" / sub).rglob("*.py"):
            assert not imports(p) & io_modules, p


def test_matplotlib_only_in_report_modules() -> None:
    for p in (ROOT / "ogsim").rglob("*.py"):
        if "matplotlib" in imports(p):
            assert "report" in p.as_posix() or "plot" in p.as_posix(), p
