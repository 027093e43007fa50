"""UNICAST over SMB with pysmb: the repository share ``ogimages`` read in user mode.

Chosen by measured speed on this machine (2 vCPU, warm cache, one 256 MiB file, repo and client in
two namespaces on a bridge, no shaping): pysmb 1.2.15 ≈ 360–420 MB/s for one reader and ~500 MB/s
aggregate for 16; smbprotocol 1.17 ≈ 200–240 MB/s (145 MB/s with signing) and ~310 MB/s for 16;
a kernel CIFS mount is impossible here (this kernel has no ``cifs`` filesystem and cannot load
modules).  Our own measurement through this module is in ``tests/lab`` and the lab report.  At
the lab's 100 Mbit/s–1 Gbit/s links any of them saturates the link; pysmb uses the least CPU.

``SmbShare`` reads files whole or from an offset (resumable copies), ranges (image headers) and
writes (image creation in admin mode).  ``RepositoryMirror`` keeps a local *metadata* mirror of
the share: each image's sidecars plus a sparse ``.img`` of the remote size holding only its
first bytes, so the runtime's own inspection code reads headers and sizes unchanged.  Nothing
here decides whether to copy.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from ogref.errors import NotFoundError, RepositoryError
from ogref.runtime import imagefile
from ogref.runtime.imagefile import SIDECARS, ImageStore

SHARE = "ogimages"
HEAD_BYTES = 1 << 20
_TIMEOUT = 60


@dataclass(frozen=True)
class SmbCredentials:
    """Where the share is and who logs in (the password is generated per lab)."""

    server: str
    user: str
    password: str
    share: str = SHARE
    client_name: str = "oglive"
    patience: float = 60.0  # seconds an unreachable server is retried (a pulled cable)

    @classmethod
    def from_file(cls, server: str, path: Path, share: str = SHARE) -> SmbCredentials:
        """``user\\npassword`` in a root-only file."""
        user, password = path.read_text().splitlines()[:2]
        return cls(server, user, password, share)


class _Sink(io.RawIOBase):
    """A writable that hashes, counts and forwards what pysmb hands it."""

    def __init__(
        self, out: Callable[[bytes], Any], md5: Any, progress: Callable[[int], None] | None
    ):
        self.out = out
        self.md5 = md5
        self.count = 0
        self.progress = progress

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        if self.md5 is not None:
            self.md5.update(data)
        self.out(data)
        self.count += len(data)
        if self.progress is not None:
            self.progress(self.count)
        return len(data)


class SmbShare:
    """One authenticated connection to the repository share."""

    def __init__(self, creds: SmbCredentials) -> None:
        from smb.SMBConnection import SMBConnection

        self.creds = creds
        self.conn = SMBConnection(
            creds.user,
            creds.password,
            creds.client_name,
            "repo",
            use_ntlm_v2=True,
            is_direct_tcp=True,
            sign_options=SMBConnection.SIGN_WHEN_REQUIRED,  # the lab's smbd requires it
        )
        try:
            # an unreachable server is tried again for a while, as a CIFS mount would: a
            # network outage is not a missing image
            for attempt in Retrying(
                retry=retry_if_exception_type((TimeoutError, OSError)),
                stop=stop_after_delay(creds.patience),
                wait=wait_exponential(multiplier=0.5, max=5.0),
                reraise=True,
            ):
                with attempt:
                    ok = self.conn.connect(creds.server, 445, timeout=_TIMEOUT)
        except (TimeoutError, OSError) as exc:
            raise RepositoryError(f"cannot reach //{creds.server}/{creds.share}: {exc}") from None
        if not ok:
            raise RepositoryError(f"//{creds.server}/{creds.share}: login refused for {creds.user}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> SmbShare:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def size(self, path: str) -> int | None:
        """Size of ``path`` on the share (None if it does not exist)."""
        from smb.smb_structs import OperationFailure

        try:
            return int(self.conn.getAttributes(self.creds.share, path, timeout=_TIMEOUT).file_size)
        except OperationFailure:
            return None

    def read(self, path: str, offset: int = 0, length: int = -1) -> bytes:
        """``length`` bytes of ``path`` from ``offset`` (-1: to the end)."""
        buf = io.BytesIO()
        self.retrieve(path, buf.write, offset=offset, length=length)
        return buf.getvalue()

    def retrieve(
        self,
        path: str,
        out: Callable[[bytes], Any],
        *,
        offset: int = 0,
        length: int = -1,
        md5: Any = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Stream ``path`` into ``out`` (hashing into ``md5`` if given); bytes moved."""
        from smb.smb_structs import OperationFailure

        sink = _Sink(out, md5, progress)
        try:
            self.conn.retrieveFileFromOffset(
                self.creds.share, path, sink, offset=offset, max_length=length, timeout=_TIMEOUT
            )
        except OperationFailure as exc:
            raise NotFoundError(f"//{self.creds.server}/{self.creds.share}/{path}: {exc}") from None
        return sink.count

    def store(self, path: str, src: IO[bytes]) -> int:
        """Write ``src`` to ``path`` on the share (admin mode only); bytes written."""
        return int(self.conn.storeFile(self.creds.share, path, src, timeout=_TIMEOUT))


def image_path(name: str, suffix: str = "") -> str:
    """The share-relative path of image ``name`` (``ou/name.img``)."""
    return f"/{name}.img{suffix}"


class RepositoryMirror:
    """A local metadata mirror of the share for the runtime's inspection code."""

    def __init__(self, creds: SmbCredentials, root: Path) -> None:
        self.creds = creds
        self.root = root
        self.store = ImageStore(root)

    def refresh(self, name: str) -> bool:
        """Bring ``name``'s sidecars and header into the mirror; False if the image is absent."""
        files = self.store.files(name)
        files.img.parent.mkdir(parents=True, exist_ok=True)
        with SmbShare(self.creds) as share:
            size = share.size(image_path(name))
            if size is None:
                imagefile.discard(files)
                return False
            for suffix in (*SIDECARS, ".lock"):
                target = files.sidecar(suffix)
                data = (
                    share.read(image_path(name, suffix))
                    if share.size(image_path(name, suffix)) is not None
                    else None
                )
                if data is None:
                    target.unlink(missing_ok=True)
                else:
                    target.write_bytes(data)
            head = share.read(image_path(name), 0, min(size, HEAD_BYTES))
            with open(files.img, "wb") as f:
                f.write(head)
                f.truncate(size)
            if not imagefile.read_sum(files.full_sum):
                md5 = hashlib.md5()
                share.retrieve(image_path(name), lambda _b: None, md5=md5)
                imagefile.write_text(files.full_sum, md5.hexdigest() + "\n")
        return True

    def sidecar(self, name: str, suffix: str) -> Path:
        """A mirrored sidecar file of ``name``."""
        return self.store.files(name).sidecar(suffix)


def fetch_to_file(
    creds: SmbCredentials,
    name: str,
    dest: Path,
    *,
    offset: int = 0,
    md5: Any = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Copy ``name``'s ``.img`` into ``dest`` from ``offset`` (resuming); bytes moved."""
    with SmbShare(creds) as share, open(dest, "r+b" if offset else "wb") as f:
        f.seek(offset)
        f.truncate(offset)
        moved = share.retrieve(image_path(name), f.write, offset=offset, md5=md5, progress=progress)
        f.flush()
        os.fsync(f.fileno())
    return moved
