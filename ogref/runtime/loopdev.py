"""Loop devices over sparse files: the lab's stand-in for a computer's disk.

``LoopDisk`` creates (or reuses) a sparse backing file, attaches it with ``losetup -P`` and
always detaches exactly the device it attached.  It never detaches devices it did not create
(no ``losetup -D``) and knows nothing about partition tables or filesystems.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import TracebackType

from ogref.errors import PartitionError
from ogref.runtime.proc import run


def partition_path(device: str, number: int) -> str:
    """The device node of partition ``number`` of ``device`` (``/dev/loop0`` → ``/dev/loop0p1``)."""
    sep = "p" if device[-1].isdigit() else ""
    return f"{device}{sep}{number}"


def wait_for_node(path: str, timeout: float = 5.0) -> None:
    """Wait until a device node exists (no udev here: devtmpfs creates it, usually at once)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise PartitionError(f"device node {path} did not appear")
        time.sleep(0.02)


class LoopDisk:
    """A sparse file of ``size`` bytes attached as a partitioned loop device.

    Use as a context manager; ``device`` is set while attached.  ``keep_file`` leaves the backing
    file in place after detaching (by default it is deleted if this object created it).
    """

    def __init__(self, backing: str | Path, size: int = 0, *, keep_file: bool = False) -> None:
        self.backing = Path(backing)
        self.size = size
        self.keep_file = keep_file
        self.device = ""
        self._created_file = False

    def attach(self) -> str:
        """Create the sparse file if needed and attach it; return the device path."""
        if not self.backing.exists():
            if self.size <= 0:
                raise PartitionError(f"{self.backing} does not exist and no size was given")
            with open(self.backing, "wb") as f:
                f.truncate(self.size)
            self._created_file = True
        out = run(["losetup", "-P", "-f", "--show", str(self.backing)], error=PartitionError)
        self.device = out.stdout.strip()
        return self.device

    def detach(self) -> None:
        """Detach the device this object attached (retrying briefly while it is busy)."""
        if self.device:
            # the kernel defers a detach while the device is still open (a closing blkid, a
            # partition scan): retry until the backing file is really gone
            for attempt in range(300):  # up to 30 s: slow under load, never leaked
                if not self._attached_to_backing():
                    break
                done = run(["losetup", "-d", self.device], error=PartitionError, check=False)
                if attempt == 299:
                    raise PartitionError(f"cannot detach {self.device}: {done.stderr.strip()}")
                time.sleep(0.1)
            self.device = ""
        if self._created_file and not self.keep_file:
            self.backing.unlink(missing_ok=True)
            self._created_file = False

    def _attached_to_backing(self) -> bool:
        name = os.path.basename(self.device)
        try:
            with open(f"/sys/block/{name}/loop/backing_file", encoding="utf-8") as f:
                current = f.read().strip()
        except OSError:
            return False
        return current.removesuffix(" (deleted)") == str(self.backing.resolve())

    def rescan(self) -> None:
        """Ask the kernel to re-read the partition table (after writing it)."""
        run(["blockdev", "--rereadpt", self.device], error=PartitionError, check=False)

    def partition(self, number: int) -> str:
        """The node of partition ``number``, waiting for it to appear."""
        path = partition_path(self.device, number)
        wait_for_node(path)
        return path

    def __enter__(self) -> LoopDisk:
        self.attach()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.detach()
