"""The lab manifest destroys exactly what it recorded, in reverse order, and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ogsim.lab.manifest import Manifest, process_start_time


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_recorded_process_is_stopped(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    p = sleeper()
    m.record_process("sleeper", p)
    assert m.destroy() == []
    assert p.wait(timeout=10) is not None


def test_a_recycled_pid_is_not_killed(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    p = sleeper()
    m.record("process", "impostor", pid=p.pid, start_time=process_start_time(p.pid) + 1)
    m.destroy()
    assert p.poll() is None  # still running: the start time did not match
    p.kill()
    p.wait()


def test_destroy_is_reverse_order_and_survives_errors(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("x")
    b.write_text("y")
    m.record("file", str(a))
    m.record("weird-kind", "nobody-knows")
    m.record("file", str(b))
    errors = m.destroy()
    assert not a.exists() and not b.exists()
    assert errors == ["no destroyer for weird-kind nobody-knows"]
    # what failed stays in the manifest for a retry (`ogsim destroy`); the rest is done
    assert [r.name for _, r in m.pending()] == ["nobody-knows"]


def test_unrecorded_files_are_left_alone(tmp_path: Path) -> None:
    m = Manifest(tmp_path / "run")
    keep = tmp_path / "keep"
    keep.write_text("mine")
    m.record("file", str(tmp_path / "gone"))
    m.destroy()
    assert keep.exists()


@pytest.mark.root
@pytest.mark.netns
def test_namespace_and_link_are_deleted(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    ns = f"ogt-{os.getpid() % 100000}"
    with m.owned():
        m.record("netns", ns)
        subprocess.run(["ip", "netns", "add", ns], check=True)
        m.record("link", "ogtv0", netns=ns)
        subprocess.run(
            ["ip", "-n", ns, "link", "add", "ogtv0", "type", "veth", "peer", "name", "ogtv1"],
            check=True,
        )
        assert Path(f"/run/netns/{ns}").exists()
    assert not Path(f"/run/netns/{ns}").exists()


@pytest.mark.parametrize("in_use", [True, False])
def test_a_libvirtd_we_started_is_left_running_while_others_use_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_use: bool
) -> None:
    from ogsim.lab.libvirt import connection

    monkeypatch.setattr(connection, "others_use_libvirtd", lambda uri="": in_use)
    m = Manifest(tmp_path)
    p = sleeper()
    m.record_process("libvirtd", p, kind="libvirt_daemon")
    assert m.destroy() == []
    if in_use:
        assert p.poll() is None  # another run's domains/networks still live there
        p.kill()
    p.wait(timeout=10)
    assert p.returncode is not None
