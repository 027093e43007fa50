"""``ogsim course EXERCISE --backend netns`` ended before its classroom is up: SIGTERM while the
lab is being built destroys what was made so far (its manifest), exit status 2.  (The course
itself, in a browser: tests/browser/test_course_netns.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(180)]


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split(" ")[0] for line in out.splitlines() if line.strip()}


def _lab_namespaces(manifest: Path) -> set[str]:
    """The namespaces a lab's manifest recorded (none while there is no manifest)."""
    if not manifest.exists():
        return set()
    return {
        entry["name"]
        for entry in map(json.loads, manifest.read_text().splitlines())
        if entry.get("kind") == "netns"
    }


def test_sigterm_while_the_lab_is_built_leaves_nothing(tmp_path: Path) -> None:
    """A course ended before the classroom is up (SIGTERM during the build) destroys what was
    made so far."""
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ogsim.cli", "course", "deploy-wizard-small", "--backend", "netns",
         "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    manifest = out / "lab" / "manifest.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _lab_namespaces(manifest):
        time.sleep(0.1)
    ours = _lab_namespaces(manifest)
    assert ours, "the lab made no namespace within 60 s"
    proc.send_signal(signal.SIGTERM)
    text, _ = proc.communicate(timeout=90)
    assert proc.returncode == 2, text  # interrupted
    assert "console:" not in text  # it never got as far as serving
    assert not manifest.exists() and (out / "lab" / "manifest.destroyed").exists(), text
    assert not ours & _namespaces()
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in loops


def test_a_port_in_use_is_said_before_anything_is_built(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        got = subprocess.run(
            [sys.executable, "-m", "ogsim.cli", "course", "deploy-wizard-small", "--backend",
             "netns", "--out", str(tmp_path / "out"), "--listen", f"127.0.0.1:{port}"],
            capture_output=True, text=True, cwd=tmp_path, timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    assert got.returncode == 3, got.stdout + got.stderr
    assert "Address already in use" in got.stderr and "building" not in got.stdout
    assert not (tmp_path / "out" / "lab" / "manifest.jsonl").exists()
