"""The client's CACHE partition on a real disk: find, init, resize, delete, format, mount, list.

Made as OpenGnSys's initCache makes it (partition 4 at the end of disk 1 by default, MBR id
``ca`` / GPT name ``CACHE``, ext4 labelled ``CACHE``), mounted under a configurable root that
mirrors ``/opt/opengnsys/cache``, images under ``opt/opengnsys/images``.  ``model()`` reports it
as the domain's :class:`~ogref.model.Cache` (free space from ``statvfs``; an interrupted copy,
marked by ``<img>.partial``, is listed as incomplete; chunked images are listed from their
manifests, the chunk store's bytes split between them as :class:`~ogref.model.Cache` says).  Deciding what to delete is the core's.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from ogref.errors import CacheError, CacheMissingError
from ogref.model.storage import CACHE_LABEL, Cache, CachedImage
from ogref.runtime import disk, filesystem, imagefile
from ogref.runtime.chunked import inventory, transfer
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.loopdev import partition_path
from ogref.runtime.mount import is_mountpoint, mount_points, unmount, unmount_device
from ogref.runtime.proc import run

DEFAULT_ROOT = Path("/opt/opengnsys/cache")
IMAGES_SUBDIR = Path("opt/opengnsys/images")
MKFS_FEATURES = "extent,large_file"


def find_cache(disk_device: str) -> int | None:
    """The number of the CACHE partition on ``disk_device`` (None: there is none)."""
    try:
        entries = disk.partition_entries(disk_device)
    except Exception:
        return None
    for number, _size, name, type_id in entries:
        label = filesystem.probe(partition_path(disk_device, number)).get("LABEL", "")
        if disk.is_cache_entry(name, type_id, label):
            return number
    return None


def format_partition(node: str) -> None:
    """``mkfs.ext4 -L CACHE -O extent,large_file`` (unmounting it first)."""
    unmount_device(node)
    run(
        ["mkfs.ext4", "-q", "-F", "-L", CACHE_LABEL, "-O", MKFS_FEATURES, node],
        error=CacheError,
        what=f"format CACHE {node}",
    )


def init_cache(disk_device: str, size: int, number: int = 4) -> str:
    """initCache: make (or re-make at a new size) the CACHE partition and format it.

    As in OpenGnSys, changing the size recreates and reformats the cache.  Returns its node.
    """
    current = find_cache(disk_device)
    if current is not None:
        node = partition_path(disk_device, current)
        if abs(filesystem.device_size(node) - size) < 1 << 20 and current == number:
            return node
        unmount_device(node)
        disk.delete_partition(disk_device, current)
    node = disk.add_cache_partition(disk_device, size, number)
    format_partition(node)
    return node


def delete_cache(disk_device: str) -> None:
    """initCache -1: remove the CACHE partition."""
    current = find_cache(disk_device)
    if current is None:
        raise CacheMissingError(f"{disk_device} has no CACHE partition")
    unmount_device(partition_path(disk_device, current))
    disk.delete_partition(disk_device, current)


class CachePartition:
    """A mounted CACHE: ``root`` is the mount point, ``store`` the images directory in it."""

    def __init__(self, node: str, root: Path = DEFAULT_ROOT, disk_number: int = 1) -> None:
        self.node = node
        self.root = Path(root)
        self.disk_number = disk_number
        self._mounted_here = False

    @property
    def number(self) -> int:
        digits = ""
        for ch in reversed(self.node):
            if not ch.isdigit():
                break
            digits = ch + digits
        return int(digits)

    @property
    def images_dir(self) -> Path:
        return self.root / IMAGES_SUBDIR

    @property
    def store(self) -> ImageStore:
        return ImageStore(self.images_dir)

    def mount(self) -> None:
        """Mount on ``root`` unless it is already mounted there."""
        if os.path.realpath(self.root) in [os.path.realpath(p) for p in mount_points(self.node)]:
            return
        if is_mountpoint(self.root):
            raise CacheError(f"something else is mounted on {self.root}")
        self.root.mkdir(parents=True, exist_ok=True)
        run(["mount", self.node, str(self.root)], error=CacheError, what="mount the CACHE")
        self._mounted_here = True
        self.images_dir.mkdir(parents=True, exist_ok=True)

    def unmount(self) -> None:
        """Unmount if this object mounted it."""
        if self._mounted_here:
            unmount(self.root)
            self._mounted_here = False

    def format(self) -> None:
        """Reformat the whole cache (ACTIONCACHEFULL=FORMAT) and mount it again."""
        was = self._mounted_here
        self.unmount()
        format_partition(self.node)
        self.mount()
        self._mounted_here = self._mounted_here or was

    def empty(self) -> None:
        """Delete every image (ACTIONCACHEFULL=DELETE): the images directory only, safely
        against an update running meanwhile (:func:`ogref.runtime.chunked.transfer.empty`)."""
        transfer.empty(self.store)

    def evict(self, names: tuple[str, ...]) -> None:
        """Delete these images with their sidecars."""
        for name in names:
            imagefile.discard(self.store.files(name))
        for name in names:  # a chunked one: its manifest, and the chunks no other one names
            transfer.discard(self.store, name)

    def size(self) -> int:
        return filesystem.device_size(self.node)

    def free(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def model(self) -> Cache:
        """The cache as the decision core sees it."""
        images = []
        for name in self.store.names():
            files = self.store.files(name)
            st = files.img.stat()
            partial = files.partial.exists()
            checksum = imagefile.read_sum(files.partial if partial else files.full_sum)
            images.append(CachedImage(name, st.st_size, checksum, not partial, st.st_mtime))
        chunked = inventory.cached_images(self.store)
        images += [i for i in chunked.images if i.name not in {c.name for c in images}]
        size = self.size()
        taken = chunked.shared + sum(i.size for i in images)
        overhead = max(0, size - self.free() - taken)
        return Cache(
            size, tuple(images), overhead, self.disk_number, self.number, shared=chunked.shared
        )

    def __enter__(self) -> CachePartition:
        self.mount()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unmount()
