"""``ogref image mount NAME DIR`` and ``umount DIR``: browse a chunked image read-only without
restoring it.

Mounting starts the FUSE server (:mod:`.fusefs`, a process of its own that outlives the
command) on a private directory, attaches its ``partition`` file to a read-only loop device
and mounts that with the filesystem's own driver, read-only and ``nosuid,nodev,noexec``: ext*
(``noload``: the journal is neither replayed nor written), xfs (``norecovery``), btrfs; NTFS
with ``ntfs-3g``; FAT with the kernel's ``vfat`` when it has one (the lab's kernel has none:
refused, 20).  Only the chunks the driver reads are fetched.

What it made is recorded, step by step, in a state file (``<state dir>/<key>.json``, the key a
hash of DIR): the FUSE directory, the server's PID, the loop device.  Unmounting, and the
clean-up after a failed mount, undo exactly those: unmount DIR, detach that loop device (if it
still reads our file), unmount the FUSE directory, wait for that PID (signalled only if it is
still our server), delete the state.  Nothing is found or killed by name.  If a copy of the
mount lives on in another mount namespace (one created while it was mounted), the loop device
stays busy: the FUSE directory is then detached lazily and the loop device, marked autoclear,
goes when that namespace does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ogref.errors import FilesystemError, FormatError, ImageFileError, NotFoundError
from ogref.model.storage import Filesystem
from ogref.runtime.chunked import image
from ogref.runtime.chunked.fusefs import FILE
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.mount import SAFE_OPTIONS, is_mountpoint, unmount
from ogref.runtime.proc import run

DEFAULT_STATE_DIR = Path("/run/ogref/image-mounts")
SERVER = "ogref.runtime.chunked.fusefs"


@dataclass
class MountState:
    """What a mount made (empty fields: not made yet)."""

    target: str
    image: str
    repository: str
    filesystem: str
    work: str
    pid: int = 0
    loop: str = ""
    mounted: bool = False

    @property
    def fuse_dir(self) -> Path:
        return Path(self.work) / "fuse"

    @property
    def file(self) -> Path:
        return self.fuse_dir / FILE


def state_path(state_dir: Path, target: Path) -> Path:
    key = hashlib.sha256(str(target.resolve()).encode()).hexdigest()[:16]
    return state_dir / f"{key}.json"


def _save(path: Path, state: MountState) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state)))
    os.replace(tmp, path)


def _mount_argv(fs: Filesystem, device: str, target: Path) -> list[str]:
    safe = ",".join(("ro", *SAFE_OPTIONS))
    if fs is Filesystem.NTFS:
        return ["ntfs-3g", "-o", safe, device, str(target)]
    if fs in (Filesystem.FAT16, Filesystem.FAT32):
        if not _kernel_has("vfat"):
            raise FilesystemError("this kernel has no vfat driver: FAT images cannot be mounted")
        return ["mount", "-t", "vfat", "-o", safe, device, str(target)]
    extra = {"ext2": "", "ext3": ",noload", "ext4": ",noload", "xfs": ",norecovery"}
    opts = safe + extra.get(str(fs).lower(), "")
    return ["mount", "-o", opts, device, str(target)]


def _kernel_has(fs: str) -> bool:
    with open("/proc/filesystems", encoding="utf-8") as f:
        return any(line.split()[-1] == fs for line in f if line.strip())


def mount_image(
    images: ImageStore,
    name: str,
    target: Path,
    *,
    state_dir: Path = DEFAULT_STATE_DIR,
    timeout: float = 30.0,
) -> MountState:
    """Mount chunked image ``name`` read-only on the empty directory ``target``."""
    made = image.load(images, name)
    store = image.chunk_store(images)
    missing = sorted({c.digest for c in made.chunks if not store.has(c.digest)})
    if missing:
        raise ImageFileError(f"chunked image {name}: {len(missing)} chunks missing (first "
                             f"{missing[0]})")  # fmt: skip
    if not target.is_dir() or any(target.iterdir()) or is_mountpoint(target):
        raise FormatError(f"{target} is not an empty directory")
    argv = _mount_argv(made.filesystem, "DEVICE", target)  # refuses FAT early
    path = state_path(state_dir, target)
    if path.exists():
        raise FilesystemError(f"{target} is already an image mount ({path})")
    state_dir.mkdir(parents=True, exist_ok=True)
    work = path.with_suffix("")
    state = MountState(str(target.resolve()), images.files(name).name, str(images.root.resolve()),
                       str(made.filesystem), str(work))  # fmt: skip
    state.fuse_dir.mkdir(parents=True, exist_ok=True)
    _save(path, state)
    try:
        with open(work / "server.log", "wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", SERVER, "--dir", state.repository, name,
                 str(state.fuse_dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        state.pid = server.pid
        _save(path, state)
        _wait_served(state, server, timeout)
        state.loop = run(["losetup", "-r", "-f", "--show", str(state.file)],
                         error=FilesystemError).stdout.strip()  # fmt: skip
        _save(path, state)
        argv[argv.index("DEVICE")] = state.loop
        run(argv, error=FilesystemError, what=f"mount {name} on {target}")
        state.mounted = True
        _save(path, state)
    except BaseException:
        _undo(path, state)
        raise
    return state


def _wait_served(state: MountState, server: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (is_mountpoint(state.fuse_dir) and state.file.exists()):
        if server.poll() is not None:
            log = (Path(state.work) / "server.log").read_text(errors="replace")[-400:]
            raise FilesystemError(f"the FUSE server stopped ({server.returncode}): {log}")
        if time.monotonic() > deadline:
            raise FilesystemError(f"the FUSE server did not mount {state.fuse_dir} in time")
        time.sleep(0.05)


def unmount_image(target: Path, *, state_dir: Path = DEFAULT_STATE_DIR) -> MountState:
    """Undo :func:`mount_image` on ``target`` (NotFoundError 2 if it did not mount it)."""
    path = state_path(state_dir, target)
    try:
        state = MountState(**json.loads(path.read_text()))
    except FileNotFoundError:
        raise NotFoundError(f"no image is mounted on {target} by ogref image mount") from None
    _undo(path, state)
    return state


def _undo(path: Path, state: MountState) -> None:
    """Unmount, detach, stop exactly what ``state`` records; then forget it."""
    if is_mountpoint(state.target):
        unmount(state.target)
    if state.loop and _backing(state.loop) == str(state.file):
        for _ in range(50):
            run(["losetup", "-d", state.loop], error=FilesystemError, check=False)
            if _backing(state.loop) != str(state.file):
                break
            time.sleep(0.1)
    if is_mountpoint(state.fuse_dir):
        try:
            unmount(state.fuse_dir)
        except FilesystemError:
            # the loop device is still held: by a copy of DIR's mount in a mount namespace
            # made while it was mounted (a lab's), which our umount cannot reach.  Detach the
            # FUSE directory lazily; the server is stopped below, the loop device (autoclear)
            # goes with that namespace.
            run(["umount", "-l", str(state.fuse_dir)], error=FilesystemError)
    if state.pid:
        _stop(state.pid, state.fuse_dir)
    shutil.rmtree(state.work, ignore_errors=True)
    path.unlink(missing_ok=True)


def _backing(loop: str) -> str:
    try:
        text = Path(f"/sys/block/{os.path.basename(loop)}/loop/backing_file").read_text()
    except OSError:
        return ""
    return text.strip().removesuffix(" (deleted)")


def _stop(pid: int, fuse_dir: Path, wait: float = 10.0) -> None:
    """Wait for our server to end (it does once its directory is unmounted); signal it only if
    /proc still shows it serving that directory."""
    for signalled in (False, True):
        deadline = time.monotonic() + wait
        while _ours(pid, fuse_dir) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            time.sleep(0.05)
        if not _ours(pid, fuse_dir):
            break
        if not signalled:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _ours(pid: int, fuse_dir: Path) -> bool:
    """Whether ``pid`` is alive (not a zombie) and is our server for ``fuse_dir``."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if status.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    return SERVER.encode() in argv and str(fuse_dir).encode() in argv
