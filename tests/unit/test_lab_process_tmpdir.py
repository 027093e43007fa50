"""A program the lab starts keeps its temporary files in the run directory, not in /tmp."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ogsim.lab.netns import processes
from ogsim.lab.netns.topology import Host


class _Manifest:
    cgroup = None

    def __init__(self) -> None:
        self.records: list[tuple[str, str]] = []

    def record(self, kind: str, name: str, **_: Any) -> None:
        self.records.append((kind, name))


def test_a_started_program_gets_a_tmpdir_beside_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    class _Popen:
        pid = os.getpid()

        def __init__(self, argv: list[str], **kw: Any) -> None:
            seen.update(kw, argv=argv)

    monkeypatch.setattr(subprocess, "Popen", _Popen)
    monkeypatch.setenv("TMPDIR", "/tmp")
    host = Host("pc01", "ns-pc01", "10.0.1.11/24", "p1", "br1")
    log = tmp_path / "run" / "pc01" / "agent.out"
    manifest = _Manifest()
    processes.start(manifest, host, "agent-pc01", ["true"], log)  # type: ignore[arg-type]
    assert seen["env"]["TMPDIR"] == str(log.parent / "tmp")
    assert (log.parent / "tmp").is_dir()
    assert seen["env"]["PATH"] == os.environ["PATH"]  # the rest of the environment is kept
    processes.start(manifest, host, "x", ["true"], tmp_path / "x.out", env={"A": "1"})  # type: ignore[arg-type]
    assert seen["env"] == {"A": "1", "TMPDIR": str(tmp_path / "tmp")}
    assert [k for k, _ in manifest.records] == ["process_group", "process_group"]
