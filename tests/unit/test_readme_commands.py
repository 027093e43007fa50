"""Every ``ogref``/``ogsim`` command line of README's "What you can do" section that needs no root
runs as written (from a directory that has the repository's labs/, scenarios/ and tests/) and
ends with the status its comment states (``exit N``), else 0.

Skipped: blocks introduced as needing root, lines whose comment says ``root``, and lines with a
``<placeholder>``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = {
    ".venv/bin/ogref": [sys.executable, "-m", "ogref"],
    ".venv/bin/ogsim": [sys.executable, "-c", "from ogsim.cli import main; main()"],
}


def readme_commands() -> list[tuple[str, int]]:
    """(command line, expected exit status) of the section, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## What you can do", 1)[1].split("\n## ", 1)[0]
    found: list[tuple[str, int]] = []
    for intro, block in re.findall(r"([^\n]*)\n+```sh\n(.*?)```", section, flags=re.S):
        if "(root)" in intro:
            continue
        for line in block.replace("\\\n", " ").splitlines():
            command, _, comment = line.partition(" #")
            if "root" in comment or "<" in command:
                continue
            status = re.search(r"\bexit (\d+)", comment)
            for part in command.split(";"):
                if part.strip().startswith(tuple(PROGRAMS)):
                    found.append((part.strip(), int(status.group(1)) if status else 0))
    return found


COMMANDS = readme_commands()


def test_the_readme_section_has_commands_to_run() -> None:
    assert len(COMMANDS) >= 9, COMMANDS
    assert any("--engine-cfg" in c for c, _ in COMMANDS)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch directory seeing the repository's inputs; out/ and reports/ are written here."""
    where = tmp_path_factory.mktemp("readme")
    for name in ("labs", "scenarios", "tests"):
        (where / name).symlink_to(ROOT / name)
    return where


@pytest.mark.parametrize(("command", "status"), COMMANDS, ids=[c for c, _ in COMMANDS])
def test_readme_command_runs(command: str, status: int, workdir: Path) -> None:
    program, *args = shlex.split(command)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    done = subprocess.run(
        [*PROGRAMS[program], *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == status, (done.stdout[-2000:], done.stderr[-2000:])
