"""Starting the lab's long-running programs inside namespaces, each recorded in the manifest.

A program starts in its own session, so its process group holds whatever it spawns
(``udp-receiver`` under an agent, ``udp-sender`` under the control API); the group is recorded as
``process_group`` (leader PID and start time) and destroyed as a whole — a group ID cannot be
reused while any member lives, so no stranger is ever signalled.  Output goes to a file in the
run directory.  What to start is decided by the backend.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

from ogsim.lab.cgroup import joined
from ogsim.lab.manifest import Manifest, Resource, destroyer, process_start_time
from ogsim.lab.netns.topology import Host


def _members(pgid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2 :].split()
        if int(rest[2]) == pgid:
            out.append(int(entry))
    return out


@destroyer("process_group")
def _kill_group(res: Resource) -> None:
    leader_alive = process_start_time(res.pid) == res.start_time
    if not leader_alive and not _members(res.pid):
        return
    if leader_alive or _members(res.pid):
        with suppress(ProcessLookupError):
            os.killpg(res.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _members(res.pid):
        with suppress(ChildProcessError):
            os.waitpid(res.pid, os.WNOHANG)
        time.sleep(0.05)
    if _members(res.pid):
        with suppress(ProcessLookupError):
            os.killpg(res.pid, signal.SIGKILL)
    with suppress(ChildProcessError):
        os.waitpid(res.pid, os.WNOHANG)


def start(
    manifest: Manifest,
    host: Host,
    name: str,
    argv: Sequence[str],
    log: Path,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in ``host``'s namespace as a recorded process group.

    Its temporary files go to ``tmp/`` beside its log (``TMPDIR``), inside the run directory the
    lab owns, so what a failing program keeps (partclone's log of a failed restore) stays with the
    run's other logs instead of piling up in the host's ``/tmp``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    tmp = log.parent / "tmp"
    tmp.mkdir(exist_ok=True)
    env = {**(os.environ if env is None else env), "TMPDIR": str(tmp)}
    out = open(log, "wb")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        joined(host.exec_argv(argv), manifest.cgroup),
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    out.close()
    manifest.record(
        "process_group",
        name,
        pid=proc.pid,
        start_time=process_start_time(proc.pid),
        netns=host.netns,
    )
    return proc


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Signal a started program's whole group (a crash fault: power off)."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(10)


def wait_port(
    host: Host,
    port: int,
    proto: str = "t",
    timeout: float = 15.0,
    proc: subprocess.Popen[bytes] | None = None,
) -> bool:
    """Wait until something listens on ``port`` in ``host``'s namespace."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            host.exec_argv(["ss", f"-l{proto}nH"]), capture_output=True, text=True, check=False
        ).stdout
        if f":{port} " in out:
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False
