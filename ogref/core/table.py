"""The decision tables of deployImage/updateCache, written as data.

Three tables, each a list of rows matched first-to-last (``None`` in a row matches anything):

* ``ADMISSION`` — given the cache as found, may the image come through the cache, and how?
* ``FALLBACK`` — after 15 (no cache) or 16 (no room), which direct method, if any?
* ``FAILURE_CODES`` — which OpenGnSys number a transfer or restore failure gets.

Each row cites the row of the executed 1.1.1d table (reference §11) it reproduces, or says
``ogLab`` where it is a deliberate, documented deviation.  The ``strict`` column says in which
mode a row applies: ``None`` both, ``False`` ogLab's only, ``True`` only under ``STRICT``
(``engine_preset: opengnsys-1.1.1d-strict``), where 1.1.1d's defects are reproduced bug for bug;
``defect`` names the row of ``docs/deviations.md`` such a row switches back.  The session
(:mod:`ogref.core.deploy`) looks rows up here and nowhere else decides; tests walk these rows.
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
    STALE_HEAD = "stale_head"  # another version whose last MiB matches (ogLab: just stale)
    PARTIAL = "partial"  # interrupted transfer of this version: resumable (strict: any .bf)


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
    DROP = "drop"  # strict: delete the stale copy first, then decide again without it
    FETCH_BESIDE_BF = "fetch_beside_bf"  # strict: fetch; the leftover .torrent.bf stays → 31


@dataclass(frozen=True)
class AdmissionRow:
    """One row of the cache-admission table (``transport``: the one updateCache would use)."""

    id: str
    ref: str
    strict: bool | None
    has_cache: bool | None
    copy: CopyState | None
    room: Room | None
    acf: CacheFullAction | None
    freed: bool | None
    transport: Transport | None
    decision: Admission
    reason: str
    defect: int = 0
    chunked: bool | None = None  # a chunked image (True), an OpenGnSys .img (False), either


_S = True  # strict (1.1.1d) only
_O = False  # ogLab only
_B = None  # both

ADMISSION: tuple[AdmissionRow, ...] = (
    AdmissionRow("A1", "§11 row 2", _B, False, None, None, None, None, None, Admission.FAIL_NOTCACHE,
                 "the client has no CACHE partition"),
    AdmissionRow("A2", "§11 row 3 (whole-file checksum: ogLab)", _B, True, CopyState.CURRENT, None,
                 None, None, None, Admission.USE_CACHED,
                 "the cached copy is current (whole-file MD5 equal)"),
    AdmissionRow("S1", "§11 row 4 (TORRENT compares whole files)", _S, True, CopyState.STALE_HEAD,
                 None, None, None, Transport.TORRENT, Admission.DROP,
                 "the cached copy is outdated: deleted before the size check", 4),
    AdmissionRow("S2", "§11 row 3 (UNICAST/MULTICAST compare the last MiB)", _S, True,
                 CopyState.STALE_HEAD, None, None, None, None, Admission.USE_CACHED,
                 "the cached copy is another version whose last MiB matches the repository's "
                 "(.sum): taken for current, the outdated image is restored", 5),
    AdmissionRow("S3", "§11 row 4 (stale copy deleted first)", _S, True, CopyState.STALE, None, None,
                 None, None, Admission.DROP,
                 "the cached copy is outdated: deleted before the size check", 4),
    AdmissionRow("A3", "§11 row 4", _B, True, None, Room.GE_SIZE, None, None, None,
                 Admission.FAIL_CACHESIZE, "the image is not smaller than the whole CACHE partition"),
    AdmissionRow("A4", "ogLab: free space re-checked after FORMAT/DELETE/EVICT", _O, True, None,
                 Room.GE_FREE, None, True, None, Admission.FAIL_CACHESIZE,
                 "still not enough free CACHE space after freeing it"),
    AdmissionRow("S4", "§11 row 5 (free space not checked again)", _S, True, None, Room.GE_FREE,
                 None, True, None, Admission.FETCH,
                 "free space is not checked again after freeing it: the transfer runs out of "
                 "space", 8),
    AdmissionRow("A5", "§11 row 5", _B, True, None, Room.GE_FREE, CacheFullAction.FORMAT, False,
                 None, Admission.FORMAT, "not enough free CACHE space: ACTIONCACHEFULL=FORMAT"),
    AdmissionRow("A6", "§11 row 5", _B, True, None, Room.GE_FREE, CacheFullAction.DELETE, False,
                 None, Admission.DELETE, "not enough free CACHE space: ACTIONCACHEFULL=DELETE"),
    AdmissionRow("A7", "ogLab extension", _B, True, None, Room.GE_FREE, CacheFullAction.EVICT,
                 False, None, Admission.EVICT, "not enough free CACHE space: ACTIONCACHEFULL=EVICT"),
    AdmissionRow("A8", "§11 row 5", _B, True, None, Room.GE_FREE, CacheFullAction.NONE, False, None,
                 Admission.FAIL_CACHESIZE, "not enough free CACHE space (ACTIONCACHEFULL=NONE)"),
    AdmissionRow("A12", "§11 row 5 (an empty or unknown value behaves as NONE; read under STRICT)",
                 _B, True, None, Room.GE_FREE, CacheFullAction.OTHER, False, None,
                 Admission.FAIL_CACHESIZE,
                 "not enough free CACHE space (ACTIONCACHEFULL is not a 1.1.1d value: as NONE)",
                 3),
    AdmissionRow("A9", "§11 row 8 (resume)", _O, True, CopyState.PARTIAL, Room.FITS, None, None,
                 None, Admission.RESUME, "an interrupted copy of this version is resumed"),
    AdmissionRow("S5", "§11 row 8 (ctorrent resumes from the .bf)", _S, True, CopyState.PARTIAL,
                 Room.FITS, None, None, Transport.TORRENT, Admission.RESUME,
                 "an interrupted torrent download (.torrent.bf) is resumed"),
    AdmissionRow("S6", "§11 rows 6/7' (a leftover .torrent.bf)", _S, True, CopyState.PARTIAL,
                 Room.FITS, None, None, None, Admission.FETCH_BESIDE_BF,
                 "a leftover .torrent.bf: the copy is made, but the final check still sees the "
                 ".bf and fails (31) with a correct copy", 2),
    AdmissionRow("C1", "ogLab: chunked images (docs/chunked-images.md)", _O, True, CopyState.STALE,
                 Room.FITS, None, None, None, Admission.FETCH,
                 "the cached copy is another version: only the chunks the CACHE lacks are "
                 "fetched, the old version's own chunks freed once the new one is complete",
                 chunked=True),
    AdmissionRow("A10", "§11 row 4-8 (stale copy dropped)", _O, True, CopyState.STALE, Room.FITS,
                 None, None, None, Admission.REPLACE, "the cached copy is outdated: replaced"),
    AdmissionRow("A11", "§11 rows 6-8", _B, True, CopyState.ABSENT, Room.FITS, None, None, None,
                 Admission.FETCH, "the image is not in the cache: fetched"),
)  # fmt: skip


def _match(value: object, pattern: object) -> bool:
    return pattern is None or value == pattern


def admission(
    has_cache: bool,
    copy: CopyState,
    room: Room,
    acf: CacheFullAction,
    freed: bool,
    *,
    strict: bool = False,
    transport: Transport = Transport.UNICAST,
    chunked: bool = False,
) -> AdmissionRow:
    """The first admission row matching the situation (ogLab's rows, or 1.1.1d's if ``strict``).

    ogLab compares whole files, so outside ``strict`` a ``STALE_HEAD`` copy is simply stale.
    A ``chunked`` image is ogLab's own format: 1.1.1d's rows never apply to it.
    """
    if chunked:
        strict = False
    if not strict and copy is CopyState.STALE_HEAD:
        copy = CopyState.STALE
    for row in ADMISSION:
        if (
            _match(strict, row.strict)
            and _match(has_cache, row.has_cache)
            and _match(copy, row.copy)
            and _match(room, row.room)
            and _match(acf, row.acf)
            and _match(freed, row.freed)
            and _match(transport, row.transport)
            and _match(chunked, row.chunked)
        ):
            return row
    raise AssertionError(
        f"admission table is not total: {strict, has_cache, copy, room, acf, freed, transport}"
    )


def copy_state(cache: Cache, image: Image, *, strict: bool = False) -> CopyState:
    """Classify the cached copy of ``image`` (whole-file checksums, for every protocol).

    ``strict``: any interrupted copy is 1.1.1d's ``partial_torrent`` — its ``.bf`` keeps it,
    whatever version it is of.  A chunked copy is compared by its manifest's digest; ``strict``
    does not apply to it (1.1.1d has no chunked images).
    """
    cached = cache.get(image.name)
    if cached is None:
        return CopyState.ABSENT
    if image.chunked:
        same = cached.chunked and cached.checksum == image.checksum
        if cached.complete:
            return CopyState.CURRENT if same else CopyState.STALE
        return CopyState.PARTIAL if same else CopyState.STALE
    same_version = bool(image.checksum) and cached.checksum == image.checksum
    if cached.complete:
        if same_version or (not image.checksum and cached.size == image.stored_size):
            return CopyState.CURRENT
        return CopyState.STALE_HEAD if cached.same_tail else CopyState.STALE
    if strict:
        return CopyState.PARTIAL
    # an interrupted transfer is resumable only if it is of the same version of the image
    return (
        CopyState.PARTIAL if same_version and cached.size < image.stored_size else CopyState.STALE
    )


_STALE = (CopyState.STALE, CopyState.STALE_HEAD)


def required_bytes(
    cache: Cache,
    image: Image,
    copy: CopyState,
    *,
    strict: bool = False,
    present: int = 0,
    transport: Transport = Transport.UNICAST,
) -> int:
    """The bytes bringing ``image`` adds to ``cache``.

    ogLab needs only the missing part of a resumable copy; 1.1.1d (``strict``) needs the whole
    image (``SIZEREQUIRED=FILESIZE``).  A chunked image needs only the chunks the CACHE's store
    lacks: its stored size less ``present`` (the bytes of its chunks already there, from any
    image or from an interrupted update) — except by TORRENT, whose pack of every chunk is
    downloaded whole into the CACHE before its chunks are taken out.
    """
    if image.chunked and transport is Transport.TORRENT:
        return image.stored_size
    if image.chunked:
        return max(0, image.stored_size - min(present, image.stored_size))
    cached = cache.get(image.name)
    held = cached.size if cached else 0
    credited = held if copy is CopyState.PARTIAL and not strict else 0
    return image.stored_size - credited


def _reclaimable(cache: Cache, image: Image, copy: CopyState) -> int:
    """Bytes of a stale copy that count as free: an ``.img`` is replaced; a chunked image's old
    version stays until the new one is complete (its chunks are what the update builds on)."""
    cached = cache.get(image.name)
    if cached is None or copy not in _STALE or image.chunked:
        return 0
    return cached.size


def room_for(
    cache: Cache,
    image: Image,
    copy: CopyState,
    *,
    strict: bool = False,
    present: int = 0,
    transport: Transport = Transport.UNICAST,
) -> Room:
    """Whether ``image`` fits ``cache``: OpenGnSys's ``>=`` comparisons on the bytes to add
    (:func:`required_bytes`), a stale ``.img`` copy reclaimable."""
    if image.stored_size >= cache.size:
        return Room.GE_SIZE
    required = required_bytes(
        cache, image, copy, strict=strict, present=present, transport=transport
    )
    if required >= cache.free + _reclaimable(cache, image, copy):
        return Room.GE_FREE
    return Room.FITS


def eviction_order(
    cache: Cache, image: Image, present: int = 0, transport: Transport = Transport.UNICAST
) -> tuple[str, ...]:
    """Other images to evict, least recently used first, until ``image`` fits (may not suffice)."""
    copy = copy_state(cache, image)
    required = required_bytes(cache, image, copy, present=present, transport=transport)
    available = cache.free + _reclaimable(cache, image, copy)
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
    to_multicast: bool | None  # None = fail with the code (or with ``fails_with``)
    reason: str
    fails_with: OgErr | None = None
    defect: int = 0


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
    FallbackRow("F6", "§11 row 9 (any other value; STRICT only: ogLab refuses it when reading)",
                True, NotCacheProtocol.OTHER, None, None,
                "RESTOREPROTOCOLNOTCACHE is not a 1.1.1d value: deployImage calls restoreImage "
                "with no arguments, which fails (5)", OgErr.IMAGE, 3),
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
    """One row of the failure-code table.

    ``in_deploy``: the restore ran inside deployImage (the console's Restore, the Deploy
    wizard), which in 1.1.1d reports any restoreImage failure as 5.  ``deletes_copy``: the
    failed copy in the cache is deleted (1.1.1d's final checksum check does it).
    """

    transport: Transport | None
    stage: Stage | None
    kind: FailureKind | None
    code: OgErr
    ref: str
    strict: bool | None = None
    in_deploy: bool | None = None
    defect: int = 0
    deletes_copy: bool = False


FAILURE_CODES: tuple[FailureRow, ...] = (
    FailureRow(Transport.MULTICAST, Stage.PARTITION, None, OgErr.IMAGE,
               "§11 row 10: deployImage masks every restoreImage failure as 5", strict=True,
               in_deploy=True, defect=7),
    FailureRow(None, Stage.PARTITION, None, OgErr.IMAGE,
               "§11 row 10: deployImage masks every restoreImage failure as 5", strict=True,
               in_deploy=True, defect=23),
    FailureRow(Transport.UNICAST, Stage.CACHE, None, OgErr.UPDATECACHE,
               "§11 row 6: rsync's status is ignored; the final check fails and deletes the copy",
               strict=True, defect=6, deletes_copy=True),
    FailureRow(None, None, FailureKind.NOT_FOUND, OgErr.NOTFOUND, "§2.2"),
    FailureRow(None, None, FailureKind.LOCKED, OgErr.LOCKED, "§2.5"),
    FailureRow(None, Stage.CACHE, FailureKind.CHECKSUM, OgErr.UPDATECACHE, "§11 row 6"),
    FailureRow(Transport.MULTICAST, None, FailureKind.JOIN, OgErr.PROTOCOLJOINMASTER, "§11 row 7"),
    FailureRow(Transport.MULTICAST, Stage.CACHE, FailureKind.RECEIVE, OgErr.MCASTRECEIVERFILE,
               "§11 row 7"),
    FailureRow(Transport.MULTICAST, Stage.PARTITION, FailureKind.RECEIVE,
               OgErr.MCASTSENDPARTITION, "§3: restoreImage's ogMcastReceiverPartition returns 58",
               strict=True, defect=7),
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


def failure_code(
    transport: Transport,
    stage: Stage,
    kind: FailureKind,
    *,
    strict: bool = False,
    in_deploy: bool = False,
) -> FailureRow:
    """The OpenGnSys number for a failure (first matching row; 1.1.1d's if ``strict``)."""
    for row in FAILURE_CODES:
        if (
            _match(strict, row.strict)
            and _match(in_deploy, row.in_deploy)
            and _match(transport, row.transport)
            and _match(stage, row.stage)
            and _match(kind, row.kind)
        ):
            return row
    raise AssertionError("failure table is not total")
