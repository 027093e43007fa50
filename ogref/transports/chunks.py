"""Chunked images on the repository share: manifests, chunk sizes and chunks read over SMB.

``SmbChunkSource`` is the :class:`~ogref.runtime.chunked.transfer.ChunkSource` of the network
executor (one SMB connection per object: the fetch makes one per worker thread) and the chunk
store a UNICAST-DIRECT restore reads from (``has``/``read``, each chunk re-hashed).  ``sizes``
lists the store's sub-directories the image's chunks live in (one ``listPath`` each), which is
how the inspection learns the stored sizes without reading a chunk.  ``mirror_manifest`` copies
a manifest (and the image lock) into the local metadata mirror, as ``RepositoryMirror`` does for
a ``.img``.  It decides nothing.
"""

from __future__ import annotations

import zstandard

from ogref.errors import ImageFileError, NotFoundError
from ogref.runtime.chunked import chunk
from ogref.runtime.chunked import image as chunked_image
from ogref.runtime.chunked.manifest import SUFFIX, Manifest
from ogref.runtime.chunked.store import SUFFIX as CHUNK_SUFFIX
from ogref.runtime.imagefile import ImageStore
from ogref.transports.smb import SmbCredentials, SmbShare, image_path


def manifest_path(name: str) -> str:
    """The share-relative path of a chunked image's manifest."""
    return f"/{name}{SUFFIX}"


def chunk_path(digest: str) -> str:
    return f"/{chunked_image.CHUNK_DIR}/{digest[:2]}/{digest}{CHUNK_SUFFIX}"


class SmbChunkSource:
    """Manifests and chunks of the share, through one connection."""

    def __init__(self, creds: SmbCredentials, *, manifest: bytes | None = None) -> None:
        self.creds = creds
        self.share = SmbShare(creds)
        self._listed: dict[str, dict[str, int]] = {}
        self._manifest = manifest  # already read (mirrored): not asked for again

    def close(self) -> None:
        self.share.close()

    def __enter__(self) -> SmbChunkSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def manifest_bytes(self, name: str) -> bytes:
        if self._manifest is not None:
            return self._manifest
        if self.share.size(manifest_path(name)) is None:
            raise NotFoundError(f"chunked image {name} not found on //{self.creds.server}")
        return self.share.read(manifest_path(name))

    def frame(self, digest: str) -> bytes:
        try:
            return self.share.read(chunk_path(digest))
        except NotFoundError:
            raise ImageFileError(f"chunk {digest} is missing from the repository") from None

    def _dir(self, sub: str) -> dict[str, int]:
        """The chunks of one sub-directory of the store and their sizes (listed once)."""
        from smb.smb_structs import OperationFailure

        if sub not in self._listed:
            path = f"/{chunked_image.CHUNK_DIR}/{sub}"
            try:
                entries = self.share.conn.listPath(self.creds.share, path, timeout=60)
            except OperationFailure:
                entries = []
            self._listed[sub] = {
                e.filename[: -len(CHUNK_SUFFIX)]: int(e.file_size)
                for e in entries
                if e.filename.endswith(CHUNK_SUFFIX) and not e.filename.startswith(".")
            }
        return self._listed[sub]

    def sizes(self, digests: set[str]) -> dict[str, int]:
        """The stored sizes of those of ``digests`` the share holds."""
        out: dict[str, int] = {}
        for sub in sorted({d[:2] for d in digests}):
            listed = self._dir(sub)
            out.update({d: listed[d] for d in digests if d[:2] == sub and d in listed})
        return out

    # the chunk-store side a restore reads through
    def has(self, digest: str) -> bool:
        return digest in self._dir(digest[:2])

    def read(self, digest: str, size: int) -> bytes:
        """The chunk's bytes, checked against its name (33 if missing or damaged)."""
        try:
            data = chunk.decompress(self.frame(digest), size)
        except zstandard.ZstdError as exc:
            raise ImageFileError(f"chunk {digest} is damaged: {exc}") from None
        if chunk.digest(data) != digest:
            raise ImageFileError(f"chunk {digest} is damaged: its content has another hash")
        return data


class PooledReader:
    """``has``/``read`` over one :class:`SmbChunkSource` per thread (a restore's workers)."""

    def __init__(self, creds: SmbCredentials, listing: SmbChunkSource) -> None:
        import threading

        self.creds = creds
        self.listing = listing
        self._local = threading.local()
        self._all: list[SmbChunkSource] = []
        self._lock = threading.Lock()

    def has(self, digest: str) -> bool:
        return self.listing.has(digest)

    def read(self, digest: str, size: int) -> bytes:
        src: SmbChunkSource | None = getattr(self._local, "src", None)
        if src is None:
            src = SmbChunkSource(self.creds)
            self._local.src = src
            with self._lock:
                self._all.append(src)
        return src.read(digest, size)

    def close(self) -> None:
        for src in self._all:
            src.close()


def mirror_manifest(creds: SmbCredentials, mirror: ImageStore, name: str) -> Manifest | None:
    """Copy ``name``'s manifest (and lock) from the share into ``mirror``; None if the share
    has no such chunked image (the mirrored copy is then removed)."""
    path = chunked_image.manifest_path(mirror, name)
    lock = mirror.files(name).lock
    with SmbShare(creds) as share:
        if share.size(manifest_path(name)) is None:
            path.unlink(missing_ok=True)
            return None
        raw = share.read(manifest_path(name))
        held = None
        if share.size(image_path(name, ".lock")) is not None:
            held = share.read(image_path(name, ".lock"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    if held is not None:
        lock.write_bytes(held)
    else:
        lock.unlink(missing_ok=True)
    return Manifest.from_json(raw, f"{name} (repository)")
