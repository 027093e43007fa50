"""Lock files: the ``<image>.img.lock`` of an image and the lock of a partition being written.

A lock is a file created with ``O_EXCL`` holding ``host pid``; it exists exactly while the
operation runs (OpenGnSys's convention, visible to other clients over a share).  A lock left by a
dead process of this host is taken over; any other existing lock raises LockedError (4).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import TracebackType

from ogref.errors import LockedError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder(path: Path) -> tuple[str, int] | None:
    """``(host, pid)`` written in a lock file (None if absent or unreadable)."""
    try:
        host, pid = path.read_text(encoding="utf-8").split()[:2]
        return host, int(pid)
    except (OSError, ValueError):
        return None


def is_locked(path: Path) -> bool:
    """Whether ``path`` is a live lock (a stale lock of a dead local process does not count)."""
    if not path.exists():
        return False
    who = holder(path)
    return not (who and who[0] == socket.gethostname() and not _alive(who[1]))


def partition_lock_path(lock_dir: Path, device: str) -> Path:
    """OpenGnSys-style partition lock name: ``/var/lock/lock-dev-sda1``."""
    return lock_dir / ("lock-" + device.strip("/").replace("/", "-"))


class LockFile:
    """Hold ``path`` exclusively for the duration of a ``with`` block."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if is_locked(self.path):
                    who = holder(self.path)
                    by = f" by {who[0]} pid {who[1]}" if who else ""
                    raise LockedError(f"{self.what} is locked{by} ({self.path})") from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(f"{socket.gethostname()} {os.getpid()}\n")
            self._held = True
            return
        raise LockedError(f"{self.what}: cannot take the lock {self.path}")

    def release(self) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False

    def __enter__(self) -> LockFile:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
