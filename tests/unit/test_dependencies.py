"""Every library pyproject.toml declares (dependencies and the sim/lab/vm/service extras) is
imported by the project's code: a declared but unused dependency is dead weight for every install."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# distribution name → the module it is imported as
IMPORT_NAME = {
    "pydantic": "pydantic",
    "pyyaml": "yaml",
    "typer": "typer",
    "rich": "rich",
    "matplotlib": "matplotlib",
    "markdown-it-py": "markdown_it",
    "jinja2": "jinja2",
    "babel": "babel",
    "pyparted": "parted",
    "pysmb": "smb",
    "tenacity": "tenacity",
    "libtorrent": "libtorrent",
    "pyfastcdc": "pyfastcdc",
    "blake3": "blake3",
    "zstandard": "zstandard",
    "libvirt-python": "libvirt",
    "cryptography": "cryptography",
    "argon2-cffi": "argon2",
    "pyjwt": "jwt",
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "httpx": "httpx",
    "sqlalchemy": "sqlalchemy",
    "alembic": "alembic",
    "mfusepy": "mfusepy",
    "psycopg": "psycopg",  # SQLAlchemy loads it for postgresql+psycopg; db.make_engine checks it
    # once declared, never imported (issue 11): listed so that declaring them again fails here
    "simpy": "simpy",
    "numpy": "numpy",
    "scapy": "scapy",
}
# dev holds tools (pytest, ruff, mypy…), not imports
RUNTIME_EXTRAS = ("sim", "lab", "vm", "service")


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in RUNTIME_EXTRAS:
        specs += project["optional-dependencies"][extra]
    return {re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0].lower() for spec in specs}


def _imported() -> set[str]:
    found: set[str] = set()
    for path in [*(ROOT / "ogref").rglob("*.py"), *(ROOT / "ogsim").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_every_declared_library_is_imported() -> None:
    declared = _declared()
    assert declared <= set(IMPORT_NAME), f"add the import name of {declared - set(IMPORT_NAME)}"
    imported = _imported()
    unused = sorted(d for d in declared if IMPORT_NAME[d] not in imported)
    assert unused == [], f"declared in pyproject.toml but never imported: {unused}"
