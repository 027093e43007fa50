"""The ogref exception tree, numbered like OpenGnSys's ``OG_ERR_*`` codes.

Every error carries ``code`` equal to the OpenGnSys number (``loadenviron.sh``), so the ``ogref``
CLI exits with the number an OpenGnSys script would.  This module defines errors only; it does not
decide when to raise them (the decision core does).

Tree::

    OgError
    ├── FormatError (1)            bad arguments, malformed session string, unknown method
    │   └── ConfigError (1)        unknown engine.cfg value, bad YAML (names file and path)
    ├── NotFoundError (2)          image, file or device missing
    ├── PartitionError (3)
    ├── LockedError (4)
    ├── ImageError (5)
    ├── NotOsError (6) · NotExecError (7) · NotWriteError (14)
    │   └── UnsafePathError (14)   a path in a restored filesystem leads out of it (a link)
    ├── CacheMissingError (15)     OG_ERR_NOTCACHE
    ├── CacheSizeError (16)        OG_ERR_CACHESIZE
    ├── ReduceFsError (17) · ExtendFsError (18) · OutOfLimitError (19) · FilesystemError (20)
    ├── CacheError (21) · NoGptError (22) · RepositoryError (23) · NoMsdosError (24)
    ├── ImageSizePartitionError (30)
    ├── UpdateCacheError (31)      checksum mismatch after a transfer
    ├── DontFormatError (32) · ImageFileError (33) · GenericError (40)
    ├── Unicast*Error (50–54) · Multicast*Error (55–59) · ProtocolJoinMasterError (60)
    └── sync-image errors (70–74), NotUefiError (80), NotBiosError (81)
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar


class OgErr(IntEnum):
    """OpenGnSys error numbers (``client/shared/etc/preinit/loadenviron.sh``)."""

    OK = 0
    FORMAT = 1
    NOTFOUND = 2
    PARTITION = 3
    LOCKED = 4
    IMAGE = 5
    NOTOS = 6
    NOTEXEC = 7
    NOTWRITE = 14
    NOTCACHE = 15
    CACHESIZE = 16
    REDUCEFS = 17
    EXTENDFS = 18
    OUTOFLIMIT = 19
    FILESYS = 20
    CACHE = 21
    NOGPT = 22
    REPO = 23
    NOMSDOS = 24
    IMGSIZEPARTITION = 30
    UPDATECACHE = 31
    DONTFORMAT = 32
    IMAGEFILE = 33
    GENERIC = 40
    UCASTSYNTAXT = 50
    UCASTSENDPARTITION = 51
    UCASTSENDFILE = 52
    UCASTRECEIVERPARTITION = 53
    UCASTRECEIVERFILE = 54
    MCASTSYNTAXT = 55
    MCASTSENDFILE = 56
    MCASTRECEIVERFILE = 57
    MCASTSENDPARTITION = 58
    MCASTRECEIVERPARTITION = 59
    PROTOCOLJOINMASTER = 60
    DONTMOUNT_IMAGE = 70
    DONTSYNC_IMAGE = 71
    DONTUNMOUNT_IMAGE = 72
    NOTDIFFERENT = 73
    SYNCHRONIZING = 74
    NOTUEFI = 80
    NOTBIOS = 81


class OgError(Exception):
    """Root of every ogref error; ``code`` is the OpenGnSys number and the CLI exit status."""

    code: ClassVar[OgErr] = OgErr.GENERIC

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"[{int(self.code)} OG_ERR_{self.code.name}] {self.message}"


class FormatError(OgError, ValueError):
    """Bad arguments: unknown method, malformed session string, bad value (OG_ERR_FORMAT).

    Also a ValueError, so pydantic validators that raise it report the field's YAML path.
    """

    code = OgErr.FORMAT


class ConfigError(FormatError):
    """Bad configuration or description file; the message names the file, the path and the reason."""

    def __init__(self, message: str, *, source: str = "", path: str = "") -> None:
        where = ":".join(p for p in (source, path) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.source = source
        self.path = path
        self.reason = message


class NotFoundError(OgError):
    """Image, file, repository or device not found (OG_ERR_NOTFOUND)."""

    code = OgErr.NOTFOUND


class PartitionError(OgError):
    """Disk partition error (OG_ERR_PARTITION)."""

    code = OgErr.PARTITION


class LockedError(OgError):
    """Partition or image locked (OG_ERR_LOCKED)."""

    code = OgErr.LOCKED


class ImageError(OgError):
    """Creating or restoring an image failed (OG_ERR_IMAGE)."""

    code = OgErr.IMAGE


class NotOsError(OgError):
    """No operating system on the partition (OG_ERR_NOTOS)."""

    code = OgErr.NOTOS


class NotExecError(OgError):
    """A program or function cannot be executed (OG_ERR_NOTEXEC)."""

    code = OgErr.NOTEXEC


class NotWriteError(OgError):
    """No write access (OG_ERR_NOTWRITE)."""

    code = OgErr.NOTWRITE


class UnsafePathError(NotWriteError):
    """A path inside a restored filesystem was refused: a link leading outside it, a link loop,
    or not a regular file (post-configuration reports it as a note and writes nothing)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class CacheMissingError(OgError):
    """The client has no CACHE partition (OG_ERR_NOTCACHE)."""

    code = OgErr.NOTCACHE


class CacheSizeError(OgError):
    """Not enough room in the cache (or repository) for the image (OG_ERR_CACHESIZE)."""

    code = OgErr.CACHESIZE


class ReduceFsError(OgError):
    """Shrinking the filesystem failed (OG_ERR_REDUCEFS)."""

    code = OgErr.REDUCEFS


class ExtendFsError(OgError):
    """Growing the filesystem failed (OG_ERR_EXTENDFS)."""

    code = OgErr.EXTENDFS


class OutOfLimitError(OgError):
    """Value out of range or invalid (OG_ERR_OUTOFLIMIT)."""

    code = OgErr.OUTOFLIMIT


class FilesystemError(OgError):
    """Unknown filesystem or cannot mount it (OG_ERR_FILESYS)."""

    code = OgErr.FILESYS


class CacheError(OgError):
    """Error in the local cache partition (OG_ERR_CACHE)."""

    code = OgErr.CACHE


class NoGptError(OgError):
    """The disk has no GPT partition table (OG_ERR_NOGPT)."""

    code = OgErr.NOGPT


class RepositoryError(OgError):
    """Cannot mount or use the image repository (OG_ERR_REPO)."""

    code = OgErr.REPO


class NoMsdosError(OgError):
    """The disk has no MSDOS partition table (OG_ERR_NOMSDOS)."""

    code = OgErr.NOMSDOS


class ImageSizePartitionError(OgError):
    """The image's data does not fit the target partition (OG_ERR_IMGSIZEPARTITION)."""

    code = OgErr.IMGSIZEPARTITION


class UpdateCacheError(OgError):
    """updateCache failed: checksum mismatch or incomplete copy (OG_ERR_UPDATECACHE)."""

    code = OgErr.UPDATECACHE


class DontFormatError(OgError):
    """Formatting failed (OG_ERR_DONTFORMAT)."""

    code = OgErr.DONTFORMAT


class ImageFileError(OgError):
    """Corrupt image file or image from another tool version (OG_ERR_IMAGEFILE)."""

    code = OgErr.IMAGEFILE


class GenericError(OgError):
    """Unexpected error (OG_ERR_GENERIC)."""

    code = OgErr.GENERIC


class UnicastSyntaxError(OgError):
    """Bad unicast session (OG_ERR_UCASTSYNTAXT)."""

    code = OgErr.UCASTSYNTAXT


class UnicastSendPartitionError(OgError):
    """Unicast send of a partition failed (OG_ERR_UCASTSENDPARTITION)."""

    code = OgErr.UCASTSENDPARTITION


class UnicastSendFileError(OgError):
    """Unicast send of a file failed (OG_ERR_UCASTSENDFILE)."""

    code = OgErr.UCASTSENDFILE


class UnicastReceivePartitionError(OgError):
    """Unicast receive into a partition failed (OG_ERR_UCASTRECEIVERPARTITION)."""

    code = OgErr.UCASTRECEIVERPARTITION


class UnicastReceiveFileError(OgError):
    """Unicast receive of a file failed (OG_ERR_UCASTRECEIVERFILE)."""

    code = OgErr.UCASTRECEIVERFILE


class MulticastSyntaxError(FormatError):
    """Malformed multicast session string (OG_ERR_MCASTSYNTAXT)."""

    code = OgErr.MCASTSYNTAXT


class MulticastSendFileError(OgError):
    """Multicast send of a file failed (OG_ERR_MCASTSENDFILE)."""

    code = OgErr.MCASTSENDFILE


class MulticastReceiveFileError(OgError):
    """Multicast receive into a file (the cache) failed (OG_ERR_MCASTRECEIVERFILE)."""

    code = OgErr.MCASTRECEIVERFILE


class MulticastSendPartitionError(OgError):
    """Multicast send of a partition failed (OG_ERR_MCASTSENDPARTITION)."""

    code = OgErr.MCASTSENDPARTITION


class MulticastReceivePartitionError(OgError):
    """Multicast receive into a partition failed (OG_ERR_MCASTRECEIVERPARTITION).

    OpenGnSys 1.1.1d returns 58 here by mistake; ogref returns 59.
    """

    code = OgErr.MCASTRECEIVERPARTITION


class ProtocolJoinMasterError(OgError):
    """Cannot join the multicast/unicast session (OG_ERR_PROTOCOLJOINMASTER)."""

    code = OgErr.PROTOCOLJOINMASTER


class DontMountImageError(OgError):
    """Cannot mount a synchronised image (OG_ERR_DONTMOUNT_IMAGE)."""

    code = OgErr.DONTMOUNT_IMAGE


class DontSyncImageError(OgError):
    """The image is not synchronisable (OG_ERR_DONTSYNC_IMAGE)."""

    code = OgErr.DONTSYNC_IMAGE


class DontUnmountImageError(OgError):
    """Cannot unmount an image (OG_ERR_DONTUNMOUNT_IMAGE)."""

    code = OgErr.DONTUNMOUNT_IMAGE


class NotDifferentError(OgError):
    """No difference between the base image and the partition (OG_ERR_NOTDIFFERENT)."""

    code = OgErr.NOTDIFFERENT


class SynchronizingError(OgError):
    """Error while synchronising (OG_ERR_SYNCHRONIZING)."""

    code = OgErr.SYNCHRONIZING


class NotUefiError(OgError):
    """UEFI is not active (OG_ERR_NOTUEFI)."""

    code = OgErr.NOTUEFI


class NotBiosError(OgError):
    """Legacy BIOS is not active (OG_ERR_NOTBIOS)."""

    code = OgErr.NOTBIOS


def _collect() -> dict[OgErr, type[OgError]]:
    found: dict[OgErr, type[OgError]] = {}
    stack: list[type[OgError]] = [OgError]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if "code" not in cls.__dict__:
            continue  # a refinement of its parent's number (ConfigError, UnsafePathError)
        # the most specific class registered first wins only if no exact "owner" exists yet
        if cls.code not in found or found[cls.code] in cls.__mro__[1:]:
            found[cls.code] = cls
    found[OgErr.FORMAT] = FormatError
    found[OgErr.GENERIC] = GenericError
    return found


ERROR_BY_CODE: dict[OgErr, type[OgError]] = _collect()


def error_for(code: int | OgErr, message: str) -> OgError:
    """Build the error whose OpenGnSys number is ``code`` (GenericError for unknown numbers)."""
    try:
        key = OgErr(code)
    except ValueError:
        return GenericError(f"{message} (code {code})")
    return ERROR_BY_CODE.get(key, GenericError)(message)
