"""The lab's ownership manifest: every namespace, link, loop device, mount, process, nft table and
libvirt object a lab creates is recorded here *before* it is used, and destroyed from here — in
reverse order, exactly those, never by pattern.

The manifest is a JSON-lines file in the run directory, appended and flushed at each record, so an
interrupted run (Ctrl-C, crash, failed expectation) can still be cleaned by ``ogsim destroy DIR``.
Processes are identified by PID *and* their start time (``/proc/PID/stat`` field 22), so a recycled
PID is never killed.  Destroyers are registered per resource kind; this module knows how to stop
processes, delete namespaces, links, loop devices, mounts, nft tables and files, and lets other
modules register more kinds (libvirt objects).  It builds nothing itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.jsonl"


@dataclass(frozen=True)
class Resource:
    """One owned resource: its kind and how to find it again."""

    kind: str
    name: str
    netns: str = ""
    pid: int = 0
    start_time: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


Destroyer = Callable[[Resource], None]
_DESTROYERS: dict[str, Destroyer] = {}


def destroyer(kind: str) -> Callable[[Destroyer], Destroyer]:
    """Register how resources of ``kind`` are destroyed."""

    def deco(fn: Destroyer) -> Destroyer:
        _DESTROYERS[kind] = fn
        return fn

    return deco


def process_start_time(pid: int) -> int:
    """Field 22 of ``/proc/PID/stat`` (clock ticks since boot), 0 if the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    rest = stat[stat.rindex(")") + 2 :].split()
    return int(rest[19])


class Manifest:
    """Append-only record of what a lab owns, with reverse-order destruction.

    Besides resources, the file holds state lines: ``{"released": i}`` (entry *i* turned out not
    to be ours — its creation failed because it already existed) and ``{"destroyed": i}``
    (entry *i* is gone).  Destruction skips both, so a destroy that failed part-way can be run
    again (``ogsim destroy``) and retries only what is left; the file is renamed
    ``manifest.destroyed`` only when nothing is."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path = run_dir / MANIFEST_NAME
        self.cgroup: Path | None = None  # the run's cgroup, once made (ogsim.lab.cgroup)
        self._lock = threading.Lock()  # a lab's threads record too (its parallel checks)
        run_dir.mkdir(parents=True, exist_ok=True)

    def _append(self, obj: dict[str, Any]) -> None:
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(obj, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def record(self, kind: str, name: str, **kw: Any) -> Resource:
        """Record a resource (call it just before creating it: destroyers tolerate absence)."""
        extra = kw.pop("extra", {})
        res = Resource(kind, name, extra=extra, **kw)
        self._append(asdict(res))
        return res

    def release(self, res: Resource) -> None:
        """``res`` is not ours after all (its creation found it already there): never destroy
        it.  The latest matching entry is released."""
        for index, entry in reversed(self._entries()):
            if entry == res:
                self._append({"released": index})
                return

    def record_process(
        self, name: str, proc: subprocess.Popen[Any] | int, netns: str = "", kind: str = "process"
    ) -> Resource:
        """Record a started process by PID and start time (``kind`` picks another destroyer)."""
        pid = proc if isinstance(proc, int) else proc.pid
        return self.record(kind, name, pid=pid, start_time=process_start_time(pid), netns=netns)

    def _lines(self) -> list[dict[str, Any]]:
        path = self.path if self.path.exists() else self.path.with_suffix(".destroyed")
        if not path.exists():
            return []
        text = path.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def _entries(self) -> list[tuple[int, Resource]]:
        """Every resource line with its index (state lines excluded)."""
        out = []
        for i, obj in enumerate(self._lines()):
            if "kind" in obj:
                out.append((i, Resource(**obj)))
        return out

    def resources(self) -> list[Resource]:
        """Everything recorded, in creation order (released and destroyed ones included)."""
        return [r for _, r in self._entries()]

    def pending(self) -> list[tuple[int, Resource]]:
        """The resources still to destroy (neither released nor destroyed), in creation order."""
        if not self.path.exists():
            return []  # destroyed (or never made)
        lines = self._lines()
        settled = {int(o.get("released", o.get("destroyed", -1))) for o in lines}
        return [(i, r) for i, r in self._entries() if i not in settled]

    def destroy(self, log: Callable[[str], None] | None = None) -> list[str]:
        """Destroy every pending resource in reverse order; return the errors (never raises).

        SIGINT, SIGTERM and SIGHUP are held while it runs (a second Ctrl-C must not stop the
        cleanup half-way); they are delivered when it is done."""
        errors: list[str] = []
        with _signals_held():
            for index, res in reversed(self.pending()):
                fn = _DESTROYERS.get(res.kind)
                if fn is None:
                    errors.append(f"no destroyer for {res.kind} {res.name}")
                    continue
                try:
                    fn(res)
                except Exception as exc:  # keep going: one failure must not leak the rest
                    errors.append(f"{res.kind} {res.name}: {exc}")
                    continue
                self._append({"destroyed": index})
                if log:
                    log(f"destroyed {res.kind} {res.name}")
            if not errors:
                with suppress(OSError):
                    self.path.rename(self.path.with_suffix(".destroyed"))
        return errors

    @contextmanager
    def owned(self) -> Iterator[Manifest]:
        """``with manifest.owned():`` destroys everything on every exit path, Ctrl-C included."""
        try:
            yield self
        finally:
            self.destroy()


HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP for a step that must not be cut in two — a cleanup — and
    deliver them after.  (Their handlers are swapped for a recorder rather than the signals
    blocked: a process-directed signal goes to any thread that does not block it, and the
    Python handler then runs in the main thread all the same.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    old = {sig: signal.signal(sig, lambda n, _f: received.append(n)) for sig in HELD_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for signum in dict.fromkeys(received):
            signal.raise_signal(signum)


_signals_held = signals_held


@contextmanager
def signals_ignored() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM for a last step after an interrupted run — writing its results and
    stopping what it started — so a second Ctrl-C does not cut it in two (and, unlike
    :func:`signals_held`, is not delivered after: the user already asked to stop)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


@destroyer("process")
def stop_process(res: Resource) -> None:
    """SIGTERM (then SIGKILL after 5 s) the recorded process, if that PID is still it."""
    if not res.pid or process_start_time(res.pid) != res.start_time:
        return  # gone, or the PID now belongs to someone else
    with suppress(ProcessLookupError):
        os.kill(res.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and process_start_time(res.pid) == res.start_time:
        with suppress(ChildProcessError):
            os.waitpid(res.pid, os.WNOHANG)
        time.sleep(0.05)
    if process_start_time(res.pid) == res.start_time:
        with suppress(ProcessLookupError):
            os.kill(res.pid, signal.SIGKILL)
        with suppress(ChildProcessError):
            os.waitpid(res.pid, 0)


@destroyer("netns")
def _del_netns(res: Resource) -> None:
    if Path(f"/run/netns/{res.name}").exists():
        r = _run(["ip", "netns", "del", res.name])
        if r.returncode:
            raise RuntimeError(r.stderr.strip())


@destroyer("link")
def _del_link(res: Resource) -> None:
    argv = ["ip", *(["-n", res.netns] if res.netns else []), "link", "del", res.name]
    if res.netns and not Path(f"/run/netns/{res.netns}").exists():
        return  # went away with its namespace
    r = _run(argv)
    if r.returncode and "Cannot find device" not in r.stderr:
        raise RuntimeError(r.stderr.strip())


@destroyer("nft_table")
def _del_nft(res: Resource) -> None:
    family = res.extra.get("family", "bridge")
    prefix = ["ip", "netns", "exec", res.netns] if res.netns else []
    if res.netns and not Path(f"/run/netns/{res.netns}").exists():
        return
    _run([*prefix, "nft", "delete", "table", family, res.name])


@destroyer("mount")
def _umount(res: Resource) -> None:
    mounts = Path("/proc/mounts").read_text().split("\n")
    if any(line.split(" ")[1:2] == [res.name] for line in mounts if line):
        r = _run(["umount", res.name])
        if r.returncode:
            r = _run(["umount", "-l", res.name])
            if r.returncode:
                raise RuntimeError(r.stderr.strip())


@destroyer("loopdev")
def _detach_loop(res: Resource) -> None:
    backing = res.extra.get("backing", "")
    r = _run(["losetup", "-n", "-O", "BACK-FILE", res.name])
    if r.returncode or (backing and r.stdout.strip() != backing):
        return  # detached already, or reused for another file: not ours any more
    r = _run(["losetup", "-d", res.name])
    if r.returncode:
        raise RuntimeError(r.stderr.strip())


@destroyer("file")
def _rm_file(res: Resource) -> None:
    p = Path(res.name)
    if p.is_dir() and not p.is_symlink():
        import shutil

        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)
