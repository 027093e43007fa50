"""A read-only FUSE filesystem holding one file, ``partition``: the partition a chunked image
describes, served by :class:`~.view.PartitionView` (only the chunks a read needs are fetched
and decompressed; unused blocks read as zeros).  ``ogref image mount`` loop-mounts that file
with the kernel's (or ntfs-3g's) filesystem driver.

Run as ``python -m ogref.runtime.chunked.fusefs --dir REPO NAME MOUNTPOINT``: it stays in the
foreground until the mountpoint is unmounted.  The binding is ``mfusepy`` (ctypes over libfuse
3, no compiler; see docs/chunked-images.md for the choice).  It mounts nothing else.
"""

from __future__ import annotations

import argparse
import errno
import os
import stat
import sys
import time
from typing import Any

from ogref.errors import OgError
from ogref.runtime.chunked import image
from ogref.runtime.chunked.view import PartitionView
from ogref.runtime.imagefile import ImageStore

FILE = "partition"


def _load_binding() -> Any:
    """``mfusepy`` on libfuse 3 (what Debian's ``fuse3`` brings), unless told otherwise."""
    if not os.environ.get("FUSE_LIBRARY_PATH"):
        os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
    import mfusepy

    return mfusepy


def operations(view: PartitionView, mtime: float) -> Any:
    """The FUSE operations serving ``view`` as ``/partition``."""
    fuse = _load_binding()
    base: Any = fuse.Operations

    class PartitionFile(base):
        use_ns = False

        def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
            base = {"st_uid": 0, "st_gid": 0, "st_atime": mtime, "st_mtime": mtime,
                    "st_ctime": mtime}  # fmt: skip
            if path == "/":
                return {**base, "st_mode": stat.S_IFDIR | 0o555, "st_nlink": 2}
            if path == f"/{FILE}":
                return {**base, "st_mode": stat.S_IFREG | 0o444, "st_nlink": 1,
                        "st_size": view.size}  # fmt: skip
            raise fuse.FuseOSError(errno.ENOENT)

        def readdir(self, path: str, fh: int) -> list[str]:
            if path != "/":
                raise fuse.FuseOSError(errno.ENOTDIR)
            return [".", "..", FILE]

        def open(self, path: str, flags: int) -> int:
            if path != f"/{FILE}":
                raise fuse.FuseOSError(errno.ENOENT)
            if flags & (os.O_WRONLY | os.O_RDWR):
                raise fuse.FuseOSError(errno.EROFS)
            return 0

        def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
            try:
                return view.read(offset, size)
            except OgError as exc:  # a damaged or missing chunk
                print(f"read at {offset}: {exc}", file=sys.stderr, flush=True)
                raise fuse.FuseOSError(errno.EIO) from None

    return PartitionFile()


def serve(images: ImageStore, name: str, mountpoint: str) -> None:
    """Mount and serve until unmounted (foreground)."""
    made = image.load(images, name)
    view = PartitionView(made, image.chunk_store(images))
    fuse = _load_binding()
    ops = operations(view, time.time())
    fuse.FUSE(ops, mountpoint, foreground=True, ro=True, fsname=f"ogref-chunked:{name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="image directory")
    parser.add_argument("name")
    parser.add_argument("mountpoint")
    args = parser.parse_args(argv)
    try:
        serve(ImageStore(args.dir), args.name, args.mountpoint)
    except OgError as exc:
        print(exc, file=sys.stderr)
        return int(exc.code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
