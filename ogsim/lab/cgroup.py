"""A lab run's cgroup (v2): every program the lab starts joins it before it runs, so whatever
the program spawns — double-forked helpers included (smbd's ``samba-dcerpcd`` and ``rpcd_*``
re-parent to PID 1) — stays inside and is killed when the run is destroyed.  It also closes the
window between starting a program and recording it: a run interrupted there leaves a process
the manifest does not name, but the cgroup, recorded before any program starts, does.

A program joins by being started as ``sh -c 'echo $$ > CGROUP/cgroup.procs && exec "$@"'``:
the shell moves itself in, then becomes the program (same PID), before ``ip netns exec`` (which
remounts ``/sys`` inside the namespace, hiding the cgroup file system).  The destroyer writes
``cgroup.kill`` (Linux ≥ 5.14) or SIGKILLs the listed PIDs until the group is empty, then removes
it.  Hosts without a writable cgroup2 mount get no cgroup: the per-program process groups the
manifest records still apply.  This module creates and destroys cgroups; it decides nothing
about what runs in them.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

from ogsim.lab.manifest import Manifest, Resource, destroyer

JOIN = 'echo $$ > "$0/cgroup.procs" && exec "$@"'


def cgroup2_root() -> Path | None:
    """The host's writable cgroup2 mount (``/sys/fs/cgroup``, or ``…/unified`` on a hybrid
    host), or None."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            root = Path(fields[1])
            if os.access(root, os.W_OK):
                return root
    return None


def create(manifest: Manifest, name: str) -> Path | None:
    """The run's cgroup ``name`` (recorded, then made), also kept as ``manifest.cgroup``;
    None when the host has no writable cgroup2."""
    root = cgroup2_root()
    if root is None:
        return None
    path = root / name
    if path.exists():
        raise FileExistsError(f"cgroup {path} exists already: not this run's")
    manifest.record("cgroup", str(path))
    path.mkdir()
    manifest.cgroup = path
    return path


def joined(argv: Sequence[str], cgroup: Path | None) -> list[str]:
    """``argv`` started so that it joins ``cgroup`` first (unchanged when None)."""
    if cgroup is None:
        return list(argv)
    return ["sh", "-c", JOIN, str(cgroup), *argv]


def members(path: Path) -> list[int]:
    """The PIDs in the cgroup (empty when it is gone)."""
    try:
        text = (path / "cgroup.procs").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


@destroyer("cgroup")
def _destroy(res: Resource) -> None:
    path = Path(res.name)
    if not path.is_dir():
        return
    deadline = time.monotonic() + 10
    while members(path) and time.monotonic() < deadline:
        kill = path / "cgroup.kill"
        if kill.exists():
            with suppress(OSError):
                kill.write_text("1")
        else:
            for pid in members(path):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for pid in members(path):  # our own children: reap them
            with suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    left = members(path)
    if left:
        raise RuntimeError(f"cgroup {path}: processes {left} survive SIGKILL")
    path.rmdir()
