"""The decision tables of deployImage/updateCache, written as data.

Three tables, each a list of rows matched first-to-last (``None`` in a row matches anything):

* ``ADMISSION`` — given the cache as found, may the image come through the cache, and how?
* ``FALLBACK`` — after 15 (no cache) or 16 (no room), which direct method, if any?
* ``FAILURE_CODES`` — which OpenGnSys number a transfer or restore failure gets.

Each row cites the row of the executed 1.1.1d table (reference §11) it reproduces, or says
``ogLab`` where it is a deliberate, documented deviation.  The session (:mod:`ogref.core.deploy`)
looks rows up here and nowhere else decides; tests walk these rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ogref.core.events import FailureKind
from ogref.errors import OgErr
from ogref.model.image import Image
from ogref.model.method import UNICAST_DIRECT, Method, Staging, Transport
from ogref.model.policy import CacheFullAction, NotCacheProtocol
from ogref.model.storage import Cache


class CopyState(StrEnum):
    """The cached copy of the requested image."""

    ABSENT = "absent"
    CURRENT = "current"  # complete, whole-file checksum equal to the repository's
    STALE = "stale"  # another version (checksum differs)
    PARTIAL = "partial"  # interrupted transfer of this version: resumable


class Room(StrEnum):
    """Whether the image fits the cache (OpenGnSys compares with >=: equality is too big)."""

    FITS = "fits"
    GE_FREE = "ge_free"  # required >= free space (counting a stale copy as reclaimable)
    GE_SIZE = "ge_size"  # image >= the whole cache partition


class Admission(StrEnum):
    """What to do about the cache."""

    USE_CACHED = "use_cached"
    FETCH = "fetch"
    REPLACE = "replace"  # delete the stale copy, then fetch
    RESUME = "resume"
    FORMAT = "format"
    DELETE = "delete"
    EVICT = "evict"
    FAIL_NOTCACHE = "fail_15"
    FAIL_CACHESIZE = "fail_16"


@dataclass(frozen=True)
class AdmissionRow:
    """One row of the cache-admission table."""

    id: str
    ref: str
    has_cache: bool | None
    copy: CopyState | None
    room: Room | None
    acf: CacheFullAction | None
    freed: bool | None
    decision: Admission
    reason: str


ADMISSION: tuple[AdmissionRow, ...] = (
    AdmissionRow("A1", "§11 row 2", False, None, None, None, None, Admission.FAIL_NOTCACHE,
                 "the client has no CACHE partition"),
    AdmissionRow("A2", "§11 row 3 (whole-file checksum: ogLab)", True, CopyState.CURRENT, None, None,
                 None, Admission.USE_CACHED, "the cached copy is current (whole-file MD5 equal)"),
    AdmissionRow("A3", "§11 row 4", True, None, Room.GE_SIZE, None, None, Admission.FAIL_CACHESIZE,
                 "the image is not smaller than the whole CACHE partition"),
    AdmissionRow("A4", "ogLab: free space re-checked after FORMAT/DELETE/EVICT", True, None,
                 Room.GE_FREE, None, True, Admission.FAIL_CACHESIZE,
                 "still not enough free CACHE space after freeing it"),
    AdmissionRow("A5", "§11 row 5", True, None, Room.GE_FREE, CacheFullAction.FORMAT, False,
                 Admission.FORMAT, "not enough free CACHE space: ACTIONCACHEFULL=FORMAT"),
    AdmissionRow("A6", "§11 row 5", True, None, Room.GE_FREE, CacheFullAction.DELETE, False,
                 Admission.DELETE, "not enough free CACHE space: ACTIONCACHEFULL=DELETE"),
    AdmissionRow("A7", "ogLab extension", True, None, Room.GE_FREE, CacheFullAction.EVICT, False,
                 Admission.EVICT, "not enough free CACHE space: ACTIONCACHEFULL=EVICT"),
    AdmissionRow("A8", "§11 row 5", True, None, Room.GE_FREE, CacheFullAction.NONE, False,
                 Admission.FAIL_CACHESIZE, "not enough free CACHE space (ACTIONCACHEFULL=NONE)"),
    AdmissionRow("A9", "§11 row 8 (resume)", True, CopyState.PARTIAL, Room.FITS, None, None,
                 Admission.RESUME, "an interrupted copy of this version is resumed"),
    AdmissionRow("A10", "§11 row 4-8 (stale copy dropped)", True, CopyState.STALE, Room.FITS, None,
                 None, Admission.REPLACE, "the cached copy is outdated: replaced"),
    AdmissionRow("A11", "§11 rows 6-8", True, CopyState.ABSENT, Room.FITS, None, None,
                 Admission.FETCH, "the image is not in the cache: fetched"),
)  # fmt: skip


def _match(value: object, pattern: object) -> bool:
    return pattern is None or value == pattern


def admission(
    has_cache: bool, copy: CopyState, room: Room, acf: CacheFullAction, freed: bool
) -> AdmissionRow:
    """The first admission row matching the situation."""
    for row in ADMISSION:
        if (
            _match(has_cache, row.has_cache)
            and _match(copy, row.copy)
            and _match(room, row.room)
            and _match(acf, row.acf)
            and _match(freed, row.freed)
        ):
            return row
    raise AssertionError(f"admission table is not total: {has_cache, copy, room, acf, freed}")


def copy_state(cache: Cache, image: Image) -> CopyState:
    """Classify the cached copy of ``image`` (whole-file checksums, for every protocol)."""
    cached = cache.get(image.name)
    if cached is None:
        return CopyState.ABSENT
    same_version = bool(image.checksum) and cached.checksum == image.checksum
    if cached.complete:
        if same_version or (not image.checksum and cached.size == image.stored_size):
            return CopyState.CURRENT
        return CopyState.STALE
    # an interrupted transfer is resumable only if it is of the same version of the image
    return (
        CopyState.PARTIAL if same_version and cached.size < image.stored_size else CopyState.STALE
    )


def room_for(cache: Cache, image: Image, copy: CopyState) -> Room:
    """Whether ``image`` fits ``cache``: OpenGnSys's ``>=`` comparisons, stale copy reclaimable."""
    if image.stored_size >= cache.size:
        return Room.GE_SIZE
    cached = cache.get(image.name)
    present = cached.size if cached else 0
    required = image.stored_size - (present if copy is CopyState.PARTIAL else 0)
    reclaimable = present if copy is CopyState.STALE else 0
    if required >= cache.free + reclaimable:
        return Room.GE_FREE
    return Room.FITS


def eviction_order(cache: Cache, image: Image) -> tuple[str, ...]:
    """Other images to evict, least recently used first, until ``image`` fits (may not suffice)."""
    copy = copy_state(cache, image)
    cached = cache.get(image.name)
    present = cached.size if cached else 0
    required = image.stored_size - (present if copy is CopyState.PARTIAL else 0)
    available = cache.free + (present if copy is CopyState.STALE else 0)
    chosen: list[str] = []
    for other in sorted(
        (c for c in cache.images if c.name != image.name), key=lambda c: (c.last_used, c.name)
    ):
        if required < available:
            break
        chosen.append(other.name)
        available += other.size
    return tuple(chosen)


# --------------------------------------------------------------------------- fallback


@dataclass(frozen=True)
class FallbackRow:
    """One row of the fallback table, consulted only for codes 15 and 16."""

    id: str
    ref: str
    allowed: bool | None
    rpnc: NotCacheProtocol | None
    transport: Transport | None
    to_multicast: bool | None  # None = fail with the code
    reason: str


FALLBACK: tuple[FallbackRow, ...] = (
    FallbackRow("F1", "seed §4.2: the Deploy wizard never switches", False, None, None, None,
                "no automatic switch in the Deploy wizard / updateCache"),
    FallbackRow("F2", "§11 row 9", True, NotCacheProtocol.NONE, None, None,
                "RESTOREPROTOCOLNOTCACHE=NONE: no fallback"),
    FallbackRow("F3", "§11 row 9", True, NotCacheProtocol.UNICAST, None, False,
                "RESTOREPROTOCOLNOTCACHE=UNICAST"),
    FallbackRow("F4", "§11 row 9", True, NotCacheProtocol.MULTICAST, Transport.MULTICAST, True,
                "RESTOREPROTOCOLNOTCACHE=MULTICAST keeps multicast"),
    FallbackRow("F5", "§11 row 9 (TORRENT always falls back to unicast)", True,
                NotCacheProtocol.MULTICAST, None, False,
                "RESTOREPROTOCOLNOTCACHE=MULTICAST, not a multicast request"),
)  # fmt: skip


def fallback(allowed: bool, rpnc: NotCacheProtocol, transport: Transport) -> FallbackRow:
    """The first fallback row matching the situation."""
    for row in FALLBACK:
        if (
            _match(allowed, row.allowed)
            and _match(rpnc, row.rpnc)
            and _match(transport, row.transport)
        ):
            return row
    raise AssertionError("fallback table is not total")


def fallback_method(row: FallbackRow) -> Method | None:
    """The method a fallback row switches to (None: fail)."""
    if row.to_multicast is None:
        return None
    return Method(Transport.MULTICAST, Staging.DIRECT) if row.to_multicast else UNICAST_DIRECT


# --------------------------------------------------------------------------- failure codes


class Stage(StrEnum):
    """Where a failure happened: filling the cache, or writing the partition."""

    CACHE = "cache"
    PARTITION = "partition"


@dataclass(frozen=True)
class FailureRow:
    """One row of the failure-code table."""

    transport: Transport | None
    stage: Stage | None
    kind: FailureKind | None
    code: OgErr
    ref: str


FAILURE_CODES: tuple[FailureRow, ...] = (
    FailureRow(None, None, FailureKind.NOT_FOUND, OgErr.NOTFOUND, "§2.2"),
    FailureRow(None, None, FailureKind.LOCKED, OgErr.LOCKED, "§2.5"),
    FailureRow(None, Stage.CACHE, FailureKind.CHECKSUM, OgErr.UPDATECACHE, "§11 row 6"),
    FailureRow(Transport.MULTICAST, None, FailureKind.JOIN, OgErr.PROTOCOLJOINMASTER, "§11 row 7"),
    FailureRow(Transport.MULTICAST, Stage.CACHE, FailureKind.RECEIVE, OgErr.MCASTRECEIVERFILE,
               "§11 row 7"),
    FailureRow(Transport.MULTICAST, Stage.PARTITION, FailureKind.RECEIVE,
               OgErr.MCASTRECEIVERPARTITION, "ogLab: 59, not 58 nor a masking 5"),
    FailureRow(Transport.TORRENT, Stage.CACHE, None, OgErr.UPDATECACHE, "§11 row 8"),
    FailureRow(Transport.UNICAST, Stage.CACHE, None, OgErr.UPDATECACHE,
               "§11 row 6 (ogLab: the copy's own error is reported, not ignored)"),
    FailureRow(None, Stage.PARTITION, FailureKind.CORRUPT, OgErr.IMAGEFILE,
               "ogLab: a corrupt stream is 33, never success"),
    FailureRow(None, Stage.PARTITION, None, OgErr.IMAGE, "§11 row 10"),
    FailureRow(None, None, None, OgErr.GENERIC, "fallthrough"),
)  # fmt: skip


def failure_code(transport: Transport, stage: Stage, kind: FailureKind) -> FailureRow:
    """The OpenGnSys number for a failure (first matching row)."""
    for row in FAILURE_CODES:
        if _match(transport, row.transport) and _match(stage, row.stage) and _match(kind, row.kind):
            return row
    raise AssertionError("failure table is not total")
