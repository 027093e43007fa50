"""Image files in a directory (a repository share or the CACHE): paths, sidecars, checksums.

``<name>.img`` with ``.info`` (``TOOL:COMP:FS:SIZEKB:host``), ``.sum`` (MD5 of the last MiB,
OpenGnSys's quick check), ``.full.sum`` (whole-file MD5, the one ogref trusts), ``.torrent``
(libtorrent, v1, 4 MiB pieces, tracker and full MD5 as comment), ``.lock`` while in use, and the
previous version's ``.ant`` copies.  :class:`StreamDigest` computes the whole-file MD5 and the
torrent's piece hashes in the same pass that writes or reads the image, so neither needs a second
read of the file.  ``Rotation`` moves the current version to ``.ant`` and puts
it back if publishing the new one fails.  Reading the header and inspecting an image into the
model's :class:`~ogref.model.Image` live here too.  Nothing here runs partclone on a partition.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from ogref.errors import FormatError, ImageFileError, NotFoundError, NotWriteError
from ogref.model.image import TORRENT_PIECE as IMAGE_TORRENT_PIECE
from ogref.model.image import CloneTool, Compressor, Image, ImageInfo, validate_image_name
from ogref.runtime import compressor, partclone
from ogref.runtime.lock import is_locked
from ogref.runtime.proc import read_head
from ogref.units import MIB

SIDECARS = (".info", ".sum", ".full.sum", ".torrent")
TORRENT_PIECE = IMAGE_TORRENT_PIECE  # OpenGnSys: 4 MiB
_CHUNK = MIB


@dataclass(frozen=True)
class ImageFiles:
    """The files of one image ``name`` under ``root``."""

    root: Path
    name: str

    @property
    def img(self) -> Path:
        return self.root / f"{self.name}.img"

    def sidecar(self, suffix: str) -> Path:
        return Path(f"{self.img}{suffix}")

    @property
    def info(self) -> Path:
        return self.sidecar(".info")

    @property
    def sum(self) -> Path:
        return self.sidecar(".sum")

    @property
    def full_sum(self) -> Path:
        return self.sidecar(".full.sum")

    @property
    def torrent(self) -> Path:
        return self.sidecar(".torrent")

    @property
    def lock(self) -> Path:
        return self.sidecar(".lock")

    @property
    def partial(self) -> Path:
        """ogref's marker of an interrupted copy: holds the whole-file MD5 being fetched."""
        return self.sidecar(".partial")

    def staged(self) -> ImageFiles:
        """Where a new version is written before it is published (``<name>.img.new``)."""
        return ImageFiles(self.root, f"{self.name}.img.new")

    def all_paths(self) -> list[Path]:
        return [self.img, *(self.sidecar(s) for s in SIDECARS)]


class ImageStore:
    """A directory of images: ``/opt/opengnsys/images`` on a repository or in the CACHE."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def files(self, name: str) -> ImageFiles:
        """The files of ``name``; FormatError if the name would leave this directory."""
        clean = validate_image_name(name)
        files = ImageFiles(self.root, clean)
        base = self.root.resolve()
        target = files.img.resolve()
        if base != target.parent and base not in target.parents:
            raise FormatError(f"image name {name!r} resolves outside the repository {self.root}")
        return files

    def names(self) -> list[str]:
        """Every image name held (``.img`` files, OU sub-directories included)."""
        out = []
        for path in sorted(self.root.rglob("*.img")):
            if path.is_file():
                out.append(str(path.relative_to(self.root))[: -len(".img")])
        return out

    def check_writable(self, attempts: int = 3, pause: float = 0.5) -> None:
        """OpenGnSys's write test: create and remove a file (NotWriteError 14).

        Tried ``attempts`` times ``pause`` seconds apart: a share mounted a moment ago through
        FUSE (smbnetfs) can fail its first write while it connects (seen once in the lab under
        load: a create refused with 14 that passed when run again); a read-only store still
        fails every attempt."""
        probe = self.root / f".ogref-write-test-{os.getpid()}"
        for attempt in range(attempts):
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                probe.write_bytes(b"")
                probe.unlink()
                return
            except OSError as exc:
                if attempt == attempts - 1:
                    raise NotWriteError(f"cannot write in {self.root}: {exc.strerror}") from None
                time.sleep(pause)

    def free_space(self) -> int:
        """Free bytes in the directory's filesystem."""
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize


# --------------------------------------------------------------------------- checksums


def md5_last_mib(path: Path) -> str:
    """OpenGnSys's ``.sum``: MD5 of the last MiB of the file."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - MIB))
        h.update(f.read())
    return h.hexdigest()


def md5_full(path: Path) -> str:
    """Whole-file MD5 (``.full.sum``)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


class StreamDigest:
    """MD5 of a whole stream and, optionally, the SHA-1 of each :data:`TORRENT_PIECE` piece.

    Fed chunk by chunk (``update`` takes views that it does not keep); the torrent pieces are
    exactly what libtorrent's ``set_piece_hashes`` would compute from the finished file.
    """

    def __init__(self, pieces: bool = False, piece_size: int = TORRENT_PIECE) -> None:
        self._md5 = hashlib.md5()
        self._pieces: list[bytes] | None = [] if pieces else None
        self._piece = hashlib.sha1()
        self._piece_fill = 0
        self._piece_size = piece_size
        self.size = 0

    def update(self, data: memoryview) -> None:
        self._md5.update(data)
        self.size += len(data)
        if self._pieces is None:
            return
        off, n = 0, len(data)
        while off < n:
            take = min(n - off, self._piece_size - self._piece_fill)
            self._piece.update(data[off : off + take])
            self._piece_fill += take
            off += take
            if self._piece_fill == self._piece_size:
                self._pieces.append(self._piece.digest())
                self._piece = hashlib.sha1()
                self._piece_fill = 0

    @property
    def md5(self) -> str:
        return self._md5.hexdigest()

    @property
    def pieces(self) -> list[bytes] | None:
        """The piece hashes (the last, partial piece included); None if not computed."""
        if self._pieces is None:
            return None
        tail = [self._piece.digest()] if self._piece_fill else []
        return [*self._pieces, *tail]


def read_sum(path: Path) -> str:
    """The hash stored in a sidecar (first word; '' if missing)."""
    try:
        words = path.read_text(encoding="ascii", errors="replace").split()
    except OSError:
        return ""
    return words[0].lower() if words else ""


def write_text(path: Path, text: str) -> None:
    """Write a small sidecar atomically."""
    tmp = Path(f"{path}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def full_checksum(files: ImageFiles, *, store: bool = True) -> str:
    """The whole-file MD5 from ``.full.sum``, computed (and stored if possible) when missing."""
    known = read_sum(files.full_sum)
    if known:
        return known
    value = md5_full(files.img)
    if store:
        # a read-only share: computed on the fly, as OpenGnSys does
        with contextlib.suppress(OSError):
            write_text(files.full_sum, value + "\n")
    return value


def write_sums(files: ImageFiles, full_md5: str) -> None:
    """Write ``.full.sum`` (given) and ``.sum`` (last MiB) next to the image."""
    write_text(files.full_sum, full_md5 + "\n")
    write_text(files.sum, md5_last_mib(files.img) + "\n")


# --------------------------------------------------------------------------- torrent


def torrent_supported() -> bool:
    """Whether the libtorrent binding is importable."""
    try:
        import libtorrent  # noqa: F401
    except ImportError:
        return False
    return True


def check_piece_size(size: int) -> None:
    """A BitTorrent piece is a power of two of at least one 16 KiB block (FormatError)."""
    if size < 16 * 1024 or size & (size - 1):
        raise FormatError(f"torrent piece size {size} is not a power of two ≥ 16 KiB")


def make_torrent(
    files: ImageFiles,
    tracker: str,
    comment: str,
    pieces: list[bytes] | None = None,
    piece_size: int = TORRENT_PIECE,
) -> bool:
    """Write ``.torrent`` for the image (v1, ``piece_size`` pieces — OpenGnSys: 4 MiB); False
    when libtorrent is missing.

    ``pieces`` are the SHA-1 piece hashes already computed while the image was written
    (:class:`StreamDigest`); without them the file is read again to hash it.
    """
    try:
        import libtorrent as lt
    except ImportError:
        return False
    fs = lt.file_storage()
    fs.add_file(files.img.name, files.img.stat().st_size)
    flags = getattr(lt.create_torrent, "v1_only", 0)
    with warnings.catch_warnings():  # the file_storage constructor is deprecated, still exact
        warnings.simplefilter("ignore", DeprecationWarning)
        t = lt.create_torrent(fs, piece_size, flags=flags)
    if tracker:
        t.add_tracker(tracker)
    t.set_comment(comment)
    t.set_creator("ogref")
    if pieces is not None and len(pieces) == t.num_pieces():
        for index, digest in enumerate(pieces):
            t.set_hash(index, digest)
    else:
        lt.set_piece_hashes(t, str(files.img.parent))
    write_bytes = lt.bencode(t.generate())
    tmp = Path(f"{files.torrent}.tmp{os.getpid()}")
    tmp.write_bytes(write_bytes)
    os.replace(tmp, files.torrent)
    return True


# --------------------------------------------------------------------------- rotation


class Rotation:
    """Move the current version (``.img`` and sidecars) to ``.ant``; undo it on failure."""

    def __init__(self, files: ImageFiles) -> None:
        self.files = files
        self._moved: list[tuple[Path, Path]] = []

    def rotate(self) -> None:
        if not self.files.img.exists():
            return
        for path in self.files.all_paths():
            Path(f"{path}.ant").unlink(missing_ok=True)
        for path in self.files.all_paths():
            if path.exists():
                dst = Path(f"{path}.ant")
                os.replace(path, dst)
                self._moved.append((path, dst))

    def rollback(self) -> None:
        for src, dst in reversed(self._moved):
            if dst.exists():
                os.replace(dst, src)
        self._moved.clear()

    @property
    def backup_size(self) -> int:
        """Bytes of the previous ``.img.ant`` (space OpenGnSys counts as reclaimable)."""
        ant = Path(f"{self.files.img}.ant")
        return ant.stat().st_size if ant.exists() else 0


def publish(staged: ImageFiles, final: ImageFiles) -> None:
    """Rotate ``final`` to ``.ant`` and rename ``staged`` into place; roll back if that fails."""
    rotation = Rotation(final)
    moved: list[tuple[Path, Path]] = []
    try:
        rotation.rotate()
        for src, dst in zip(staged.all_paths(), final.all_paths(), strict=True):
            if src.exists():
                os.replace(src, dst)
                moved.append((src, dst))
    except BaseException:
        for src, dst in reversed(moved):
            os.replace(dst, src)
        rotation.rollback()
        raise


def discard(files: ImageFiles) -> None:
    """Delete an image file and its sidecars (a stale cached copy, a failed staged version)."""
    for path in [*files.all_paths(), files.partial, Path(f"{files.img}.torrent.bf")]:
        path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- inspection


def read_header(path: Path) -> tuple[Compressor, partclone.Header]:
    """The compressor and partclone header of an image file (ImageFileError 33 if unreadable)."""
    comp = compressor.detect(path)
    if comp is None:
        raise ImageFileError(f"{path}: unknown image format (not lzop, gzip, zstd or partclone)")
    argv = compressor.decompress_argv(comp) or ["cat"]
    head = read_head(argv, str(path), partclone.HEADER_SIZE, error=ImageFileError)
    return comp, partclone.Header.parse(head)


def read_info(files: ImageFiles) -> ImageInfo | None:
    """The ``.info`` sidecar, if present and valid."""
    try:
        return ImageInfo.parse(files.info.read_text(encoding="utf-8"))
    except (OSError, FormatError):
        return None


@dataclass(frozen=True)
class Inspection:
    """What is found about an image in a directory."""

    found: bool
    readable: bool = False
    locked: bool = False
    image: Image | None = None
    detail: str = ""


def inspect(
    store: ImageStore, name: str, *, checksum: bool = True, repository: str = "repo"
) -> Inspection:
    """Find ``name`` in ``store`` and read its header into an :class:`Image`.

    Without a ``.img``, a chunked image of that name (``NAME.manifest.json``) is inspected
    instead, with the same answers.  As deployImage's ``ogGetImageInfo``: missing (not found: 2); a header that is not an image,
    or that cannot be read (found, not readable: 33 — 1.1.1d's ``file``/``lzop`` see no image
    then either); anything else failing — not a regular file, the whole-file MD5 unreadable —
    (found and readable, no image: 40).
    """
    files = store.files(name)
    if not files.img.exists():
        from ogref.runtime.chunked import inventory  # a chunked image: NAME.manifest.json

        chunked = inventory.inspect(store, name, repository=repository)
        if chunked.found:
            return chunked
        return Inspection(found=False, detail=f"{files.img} not found")
    if not files.img.is_file():
        return Inspection(found=True, readable=True, detail=f"{files.img} is not a regular file")
    locked = is_locked(files.lock)
    try:
        comp, header = read_header(files.img)
    except ImageFileError as exc:
        return Inspection(found=True, readable=False, locked=locked, detail=exc.message)
    except OSError as exc:
        return Inspection(True, False, locked, detail=f"{files.img}: {exc.strerror or exc}")
    info = read_info(files)
    fs = info.filesystem if info else header.filesystem
    try:
        digest = full_checksum(files) if checksum else read_sum(files.full_sum)
    except OSError as exc:
        return Inspection(True, True, locked, detail=f"{files.img}: {exc.strerror or exc}")
    image = Image(
        name=files.name,
        filesystem=fs,
        data_size=header.device_size,
        stored_size=files.img.stat().st_size,
        repository=repository,
        tool=CloneTool.PARTCLONE,
        compressor=comp,
        checksum=digest,
    )
    return Inspection(found=True, readable=True, locked=locked, image=image)


def require_image(store: ImageStore, name: str) -> ImageFiles:
    """The files of ``name``; NotFoundError (2) if the ``.img`` is missing."""
    files = store.files(name)
    if not files.img.is_file():
        raise NotFoundError(f"image {name} not found in {store.root}")
    return files
