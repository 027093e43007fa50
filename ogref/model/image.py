"""Images: monolithic or differential filesystem snapshots, with their metadata string.

The canonical OpenGnSys metadata is ``TOOL:COMP:FS:SIZEKB`` (``.info`` files append ``:host``).
``data_size`` is what the target partition must hold; ``stored_size`` is the compressed file.
This module describes images; it neither reads nor writes image files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from ogref.errors import FormatError
from ogref.model.storage import Filesystem

# A name is a relative path of safe components: no "..", no absolute path, no empty parts.
_NAME_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")


class ImageKind(StrEnum):
    """Monolithic (full) or differential (delta against a base image)."""

    MONOLITHIC = "monolithic"
    DIFFERENTIAL = "diff"


class ImageFormat(StrEnum):
    """How an image is stored: OpenGnSys's ``partclone | compressor`` file (``NAME.img``), or
    ogLab's chunked, content-addressed format (``NAME.manifest.json`` over a chunk store,
    ``docs/chunked-images.md``)."""

    PARTCLONE = "partclone"
    CHUNKED = "chunked"

    @classmethod
    def parse(cls, text: str) -> ImageFormat:
        """``partclone`` or ``chunked`` (case-insensitive)."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise FormatError(f"unknown image format {text!r} (partclone, chunked)") from None


class CloneTool(StrEnum):
    """The partition-cloning tool whose stream the image holds."""

    PARTCLONE = "PARTCLONE"
    NTFSCLONE = "NTFSCLONE"
    PARTIMAGE = "PARTIMAGE"
    DD = "DD"


class Compressor(StrEnum):
    """Compressor of the image stream; lzop is OpenGnSys's default, zstd ours."""

    NONE = "NONE"
    LZOP = "LZOP"
    GZIP = "GZIP"
    ZSTD = "ZSTD"

    @classmethod
    def parse(cls, text: str) -> Compressor:
        """Parse a compressor name or OpenGnSys number (``lzop``, ``1``, ``zstd``)."""
        key = text.strip().upper()
        key = {"0": "NONE", "1": "LZOP", "2": "GZIP", "LZO": "LZOP", "ZST": "ZSTD"}.get(key, key)
        try:
            return cls(key)
        except ValueError:
            raise FormatError(f"unknown compressor {text!r} (lzop, gzip, zstd, none)") from None


def validate_image_name(name: str) -> str:
    """Return ``name`` if it is a safe repository-relative image name, else raise FormatError.

    Names may hold one OU sub-directory (``ou1/win10``); ``..``, absolute paths, backslashes and
    empty components are refused so that no image can escape its repository.
    """
    raw = name.strip()
    if raw.startswith("/"):
        raw = raw[1:]  # OpenGnSys passes "/name"; a single leading slash means repository-relative
    for suffix in (".img", ".manifest.json"):
        if raw.endswith(suffix):
            raw = raw[: -len(suffix)]
    parts = raw.split("/")
    if not raw or "\\" in raw or len(parts) > 2 or name.strip().startswith("//"):
        raise FormatError(f"invalid image name {name!r}")
    for part in parts:
        if part in ("", ".", "..") or not _NAME_PART.fullmatch(part):
            raise FormatError(f"invalid image name {name!r}: component {part!r} is not allowed")
    return raw


@dataclass(frozen=True)
class ImageInfo:
    """The ``TOOL:COMP:FS:SIZEKB`` metadata string (plus the optional ``:host`` of ``.info``)."""

    tool: CloneTool
    compressor: Compressor
    filesystem: Filesystem
    size_kb: int
    host: str = ""

    @classmethod
    def parse(cls, text: str) -> ImageInfo:
        """Parse ``PARTCLONE:LZOP:NTFS:5642158[:host]``."""
        fields = text.strip().split(":")
        if len(fields) not in (4, 5):
            raise FormatError(f"image info must be TOOL:COMP:FS:SIZEKB[:host], got {text!r}")
        try:
            tool = CloneTool(fields[0].upper())
        except ValueError:
            raise FormatError(f"unknown cloning tool {fields[0]!r} in {text!r}") from None
        if not fields[3].isdigit():
            raise FormatError(f"image size must be a number of KiB in {text!r}")
        return cls(
            tool=tool,
            compressor=Compressor.parse(fields[1]),
            filesystem=Filesystem.parse(fields[2]),
            size_kb=int(fields[3]),
            host=fields[4] if len(fields) == 5 else "",
        )

    def __str__(self) -> str:
        base = f"{self.tool}:{self.compressor}:{self.filesystem}:{self.size_kb}"
        return f"{base}:{self.host}" if self.host else base


TORRENT_PIECE = 4 * 1024**2
"""OpenGnSys's ``.torrent`` piece size (``ctorrent -l 4194304``)."""


@dataclass(frozen=True)
class Image:
    """An image in a repository.

    Attributes:
        name: repository-relative name without ``.img`` (may hold one OU directory).
        filesystem: filesystem of the imaged partition.
        data_size: bytes the target partition must hold (used data after reduce).
        stored_size: bytes of the compressed ``.img`` file (what a whole transfer moves); of a
            chunked image, the compressed bytes of its distinct chunks.
        format: the OpenGnSys ``.img`` file or a chunked image (manifest + chunk store).
        repository: name of the repository the image belongs to.
        checksum: whole-file MD5 of the ``.img`` (``.full.sum``), empty if unknown; of a
            chunked image, its manifest's digest (its identity).
        kind: monolithic or differential; a differential image names its ``base``.
        added_size: of a chunked differential image, the compressed bytes of its chunks that
            its base lacks (what it adds to a chunk store that holds the base).
        used_size: of a chunked image, the bytes of its filesystem's used blocks — what a
            restore reads and writes (its ``data_size`` is the filesystem's size, which the
            partition must hold); 0: unknown, taken as ``data_size``.
        source_disk, source_partition: where it was created on the model computer.
        revision: incremented at each re-creation.
        torrent_piece: the piece size of its ``.torrent`` (OpenGnSys: 4 MiB, ``ctorrent -l``).
    """

    name: str
    filesystem: Filesystem
    data_size: int
    stored_size: int
    repository: str = "repo"
    tool: CloneTool = CloneTool.PARTCLONE
    compressor: Compressor = Compressor.ZSTD
    checksum: str = ""
    kind: ImageKind = ImageKind.MONOLITHIC
    base: str = ""
    source_disk: int = 1
    source_partition: int = 1
    revision: int = 1
    os_name: str = ""
    torrent_piece: int = TORRENT_PIECE
    format: ImageFormat = ImageFormat.PARTCLONE
    added_size: int = 0
    used_size: int = 0

    def __post_init__(self) -> None:
        validate_image_name(self.name)
        if self.data_size < 0 or self.stored_size <= 0:
            raise FormatError(f"image {self.name}: sizes must be positive")
        if self.torrent_piece < 16 * 1024 or self.torrent_piece & (self.torrent_piece - 1):
            raise FormatError(
                f"image {self.name}: torrent piece size {self.torrent_piece} is not a power of "
                "two ≥ 16 KiB"
            )
        if self.kind is ImageKind.DIFFERENTIAL and not self.base:
            raise FormatError(f"differential image {self.name} needs a base image")
        if self.used_size < 0:
            raise FormatError(f"image {self.name}: used size {self.used_size} is negative")
        if not 0 <= self.added_size <= self.stored_size:
            raise FormatError(
                f"image {self.name}: added size {self.added_size} is not between 0 and its "
                f"stored size {self.stored_size}"
            )

    @property
    def restored_size(self) -> int:
        """Bytes a restore of this image processes: a chunked image's used blocks, else its
        data size."""
        return self.used_size or self.data_size

    @property
    def chunked(self) -> bool:
        """Whether this is a chunked image (manifest over a chunk store)."""
        return self.format is ImageFormat.CHUNKED

    @property
    def info(self) -> ImageInfo:
        """The OpenGnSys metadata string of this image."""
        return ImageInfo(self.tool, self.compressor, self.filesystem, -(-self.data_size // 1024))

    @property
    def file_name(self) -> str:
        """The image file name in the repository (``<name>.img``, ``.img.diff`` for diffs,
        ``<name>.manifest.json`` for a chunked image, differential or not)."""
        if self.chunked:
            return f"{self.name}.manifest.json"
        return (
            f"{self.name}.img.diff" if self.kind is ImageKind.DIFFERENTIAL else f"{self.name}.img"
        )
