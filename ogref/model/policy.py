"""EngineConfig: the engine.cfg policy knobs as data, loadable from a real ``engine.cfg``.

engine.cfg is a shell file of ``KEY=value`` lines (and comments): any other line refuses the file,
so a YAML file or ``/etc/passwd`` is not taken for one.  We read the keys that matter for creating,
restoring and deploying images, refuse unknown *values* of those keys with the file, line and
reason (OpenGnSys silently misbehaves on them), refuse a known key written in another case
(``restoreprotocolnotcache``: the shell would ignore it), and keep other keys verbatim in
``extra``.  A site file's ``engine:`` mapping goes through the same checks, and there every key
must be one of :data:`ENGINE_KEYS` (a typo would otherwise be ignored).

Our default follows the seed: a client that cannot use its cache falls back to UNICAST-DIRECT
(``RESTOREPROTOCOLNOTCACHE=UNICAST``) and new images are compressed with zstd.
``EngineConfig.opengnsys_1_1_1d()`` gives the stock 1.1.1d values (NONE, lzop);
``EngineConfig.opengnsys_1_1_1d_strict()`` adds ``STRICT=TRUE`` (the decision core reproduces
1.1.1d's defects, ``docs/deviations.md``) and 1.1.1d's start sleeps.  Under ``STRICT`` the values
1.1.1d does not know are read as it reads them (``OTHER``) instead of being refused.
This module holds data and parsing only; the rules that consult it are in :mod:`ogref.core`.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from ogref.errors import ConfigError, FormatError
from ogref.model.image import CloneTool, Compressor


class CacheFullAction(StrEnum):
    """``ACTIONCACHEFULL``: what updateCache does when the cache lacks free space.

    NONE fails with 16; FORMAT reformats the whole cache; DELETE deletes every cached image;
    EVICT (an ogLab extension) deletes least-recently-used *other* images only until it fits.
    """

    NONE = "NONE"
    FORMAT = "FORMAT"
    DELETE = "DELETE"
    EVICT = "EVICT"
    OTHER = "OTHER"  # STRICT only: any value 1.1.1d does not know (it behaves as NONE)


class McastProtocol(StrEnum):
    """``MCASTPROTOCOL`` (ogLab key): how MULTICAST moves an image — udpcast (OpenGnSys's, the
    default) or chunkcast (receiver-driven, chunked images only; docs/chunkcast.md)."""

    UDPCAST = "UDPCAST"
    CHUNKCAST = "CHUNKCAST"

    def carries(self, *, into_cache: bool, chunked: bool) -> bool:
        """Whether a MULTICAST transfer goes by chunkcast under this key: straight onto a
        partition (the repository's chunked version of the image, or a MASTER's partition cut
        into chunks), or into the CACHE when the image is chunked (the CACHE's chunk store; a
        non-chunked image stays a ``.img`` there, by udpcast).  The engine (the executors)
        and the simulator both ask this; the engine also falls back to udpcast when the
        repository holds no chunked version (that the simulator takes for granted)."""
        return self is McastProtocol.CHUNKCAST and (chunked or not into_cache)


class NotCacheProtocol(StrEnum):
    """``RESTOREPROTOCOLNOTCACHE``: the direct method used when the cache cannot be used."""

    NONE = "NONE"
    UNICAST = "UNICAST"
    MULTICAST = "MULTICAST"
    OTHER = "OTHER"  # STRICT only: any other value (1.1.1d then calls restoreImage with no args)


@dataclass(frozen=True)
class StartDelay:
    """``STARTDELAY`` (an ogLab key): the random sleep before a multicast or torrent updateCache.

    OpenGnSys's updateCache sleeps a random whole number of seconds before it asks the
    repository for a multicast session (1–30 s) and before it starts ctorrent (1–120 s), to
    spread simultaneous requests of a classroom.  ogLab's server coordinates the start (the
    control API starts one sender per session; the tracker takes every announce), so our
    default is no sleep.  Both backends draw from this one policy: the simulator with its seeded
    generator, the agent with the system's.

    engine.cfg values: ``NONE`` (ogLab default), ``OPENGNSYS`` (torrent 1–120 s, multicast
    1–30 s; hard-coded in its scripts, so its own engine.cfg has no such key), or explicit
    ranges ``TORRENT:1-120,MULTICAST:1-30`` (an omitted one is 0).
    """

    torrent: tuple[int, int] = (0, 0)
    multicast: tuple[int, int] = (0, 0)

    @classmethod
    def opengnsys(cls) -> StartDelay:
        """OpenGnSys's updateCache sleeps."""
        return cls(torrent=(1, 120), multicast=(1, 30))

    @classmethod
    def parse(cls, raw: str) -> StartDelay:
        """An engine.cfg value (see the class doc)."""
        text = raw.strip().upper()
        if text in ("", "NONE", "0"):
            return cls()
        if text == "OPENGNSYS":
            return cls.opengnsys()
        ranges: dict[str, tuple[int, int]] = {}
        for item in text.split(","):
            m = re.fullmatch(r"\s*(TORRENT|MULTICAST)\s*:\s*([0-9]+)\s*-\s*([0-9]+)\s*", item)
            if m is None:
                raise FormatError(
                    "must be NONE, OPENGNSYS or ranges such as TORRENT:1-120,MULTICAST:1-30"
                )
            lo, hi = int(m.group(2)), int(m.group(3))
            if lo > hi:
                raise FormatError(f"{m.group(1)}: the range {lo}-{hi} is empty")
            key = m.group(1).lower()
            if key in ranges:
                raise FormatError(f"{m.group(1)} given twice")
            ranges[key] = (lo, hi)
        return cls(**ranges)

    def range_for(self, transport: str) -> tuple[int, int]:
        """The (min, max) seconds before a ``TORRENT`` or ``MULTICAST`` updateCache."""
        key = str(transport).upper()
        if key == "TORRENT":
            return self.torrent
        if key == "MULTICAST":
            return self.multicast
        return (0, 0)

    def draw(self, transport: str, randint: Callable[[int, int], int]) -> float:
        """Seconds to sleep before an updateCache by ``transport`` (0 without drawing if none)."""
        lo, hi = self.range_for(transport)
        if hi <= 0:
            return 0.0
        return float(randint(lo, hi))

    def __str__(self) -> str:
        if self == StartDelay():
            return "NONE"
        if self == StartDelay.opengnsys():
            return "OPENGNSYS"
        return ",".join(
            f"{name}:{lo}-{hi}"
            for name, (lo, hi) in (("TORRENT", self.torrent), ("MULTICAST", self.multicast))
            if hi > 0
        )


_TRUE = {"TRUE", "YES", "1"}
_FALSE = {"FALSE", "NO", "0", ""}


@dataclass(frozen=True)
class EngineConfig:
    """The engine.cfg keys ogref acts on (names in brackets).

    Attributes:
        action_cache_full: [ACTIONCACHEFULL]
        restore_protocol_not_cache: [RESTOREPROTOCOLNOTCACHE]
        mcast_error_session: [MCASTERRORSESSION] s, udp-receiver --start-timeout
        mcast_wait: [MCASTWAIT] s, udp-receiver --receive-timeout
        img_prog: [IMGPROG] cloning tool
        img_comp: [IMGCOMP] compressor for new images
        img_ext: [IMGEXT]
        img_reduce: [IMGREDUCE] shrink the filesystem before imaging
        win_reduce: [OGWINREDUCE]
        win_chkdisk: [OGWINCHKDISK]
        create_speed: [CREATESPEED]
        factor_sync: [FACTORSYNC] %
        backup: [BACKUP] keep ``.ant`` of synchronised images
        img_fs: [IMGFS] container filesystem of synchronised images
        sleep_before_reboot: [OGSLEEP] s
        default_speed: [DEFAULTSPEED]
        start_delay: [STARTDELAY] ogLab key: random sleep before a multicast/torrent
            updateCache (:class:`StartDelay`; default none, OpenGnSys's preset sleeps)
        mcast_protocol: [MCASTPROTOCOL] ogLab key: UDPCAST (default) or CHUNKCAST for
            MULTICAST-DIRECT of images the repository also holds chunked (docs/chunkcast.md)
        strict: [STRICT] ogLab key: the decision core reproduces 1.1.1d's decisions bug for bug
            (the deviations of ``docs/deviations.md`` rows 2-8, 10-12, 23, 24 switched back);
            for predicting a stock installation (planner, simulator).  The real runtime refuses
            the decisions that would destroy data.
        extra: every other key, verbatim
    """

    action_cache_full: CacheFullAction = CacheFullAction.NONE
    restore_protocol_not_cache: NotCacheProtocol = NotCacheProtocol.UNICAST
    mcast_error_session: int = 120
    mcast_wait: int = 30
    img_prog: CloneTool = CloneTool.PARTCLONE
    img_comp: Compressor = Compressor.ZSTD
    img_ext: str = "img"
    img_reduce: bool = True
    win_reduce: bool = True
    win_chkdisk: bool = True
    create_speed: int = 400000
    factor_sync: int = 120
    backup: bool = False
    img_fs: str = "EXT4"
    sleep_before_reboot: int = 20
    default_speed: str = ""
    start_delay: StartDelay = field(default_factory=StartDelay)
    strict: bool = False
    mcast_protocol: McastProtocol = McastProtocol.UDPCAST
    extra: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @classmethod
    def opengnsys_1_1_1d(cls) -> EngineConfig:
        """The stock OpenGnSys 1.1.1d engine.cfg (no fallback, lzop).

        Its updateCache sleeps are hard-coded in OpenGnSys's scripts, not in engine.cfg: add
        ``start_delay=StartDelay.opengnsys()`` (``STARTDELAY=OPENGNSYS``) to model them too.
        """
        return cls(
            restore_protocol_not_cache=NotCacheProtocol.NONE,
            img_comp=Compressor.LZOP,
        )

    @classmethod
    def opengnsys_1_1_1d_strict(cls) -> EngineConfig:
        """A stock 1.1.1d installation, predicted bug for bug: the stock engine.cfg, ``STRICT``
        (the decision-level deviations switched back) and its updateCache sleeps (row 20)."""
        return replace(cls.opengnsys_1_1_1d(), strict=True, start_delay=StartDelay.opengnsys())

    @classmethod
    def preset(cls, name: str) -> EngineConfig:
        """The configuration a site's ``engine_preset`` (or ``ogref plan --engine-preset``) names."""
        try:
            return PRESETS[name]()
        except KeyError:
            raise FormatError(
                f"unknown engine preset {name!r} (one of {', '.join(PRESETS)})"
            ) from None

    @classmethod
    def from_text(
        cls, text: str, source: str = "engine.cfg", base: EngineConfig | None = None
    ) -> EngineConfig:
        """Parse engine.cfg text over ``base`` (default: ogLab's defaults); values of known keys
        are validated, others kept in ``extra`` (see :meth:`with_engine_cfg`)."""
        pairs = [(f"line {n}", key, raw) for n, key, raw in _assignments(text, source)]
        return (base if base is not None else cls()).with_engine_cfg(pairs, source)

    @classmethod
    def from_file(cls, path: str | Path, base: EngineConfig | None = None) -> EngineConfig:
        """Read and parse an engine.cfg file (it must hold at least one ``KEY=value`` line)
        over ``base``."""
        p = Path(path)
        try:
            with p.open("rb") as f:
                raw = f.read(_MAX_FILE + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", source=str(p)) from None
        if len(raw) > _MAX_FILE:
            raise ConfigError(
                f"larger than {_MAX_FILE // 1024} KiB: not an engine.cfg", source=str(p)
            )
        text = raw.decode("utf-8", errors="replace")
        if not _assignments(text, str(p)):
            raise ConfigError("holds no KEY=value line: not an engine.cfg", source=str(p))
        return cls.from_text(text, source=str(p), base=base)

    def with_engine_cfg(
        self, pairs: Iterable[tuple[str, str, str]], source: str, *, known_only: bool = False
    ) -> EngineConfig:
        """A copy with engine.cfg ``(where, KEY, value)`` assignments applied, each validated.

        ``where`` names the place in ``source`` (``line 3``, ``engine.IMGCOMP``) for errors.
        Unknown keys go to ``extra``; with ``known_only`` they are refused (site files).
        ``STRICT`` (among the pairs, else this one's) makes the values 1.1.1d does not know of
        ``RESTOREPROTOCOLNOTCACHE``/``ACTIONCACHEFULL`` read as ``OTHER``, as 1.1.1d reads them.
        """
        pairs = list(pairs)
        strict = self.strict
        for where, key, raw in pairs:
            if key == "STRICT":  # shell semantics: the last assignment wins
                try:
                    strict = _bool(raw)
                except FormatError as exc:
                    raise ConfigError(
                        f"{key}={raw!r}: {exc.message}", source=source, path=where
                    ) from None
        values: dict[str, Any] = {}
        extra = dict(self.extra)
        for where, key, raw in pairs:
            try:
                check_engine_key(key, known_only=known_only)
            except FormatError as exc:
                raise ConfigError(exc.message, source=source, path=where) from None
            spec = _KEYS.get(key)
            if spec is None:
                extra[key] = raw
                continue
            attr, convert = spec
            try:
                values[attr] = (
                    _stock_value(_STOCK_VALUES[key], raw, strict)
                    if key in _STOCK_VALUES
                    else convert(raw)
                )
            except (FormatError, ValueError) as exc:
                reason = exc.message if isinstance(exc, FormatError) else str(exc)
                raise ConfigError(f"{key}={raw!r}: {reason}", source=source, path=where) from None
        return self.with_overrides(**values, extra=tuple(extra.items()))

    def with_overrides(self, **kwargs: Any) -> EngineConfig:
        """A copy with some attributes changed (validated like the originals)."""
        names = {f.name for f in fields(self)}
        unknown = set(kwargs) - names
        if unknown:
            raise FormatError(f"unknown EngineConfig fields {sorted(unknown)}")
        return replace(self, **kwargs)

    def to_text(self) -> str:
        """Render as engine.cfg lines (the keys ogref knows, then ``extra``)."""
        lines = []
        for key, (attr, _) in _KEYS.items():
            value = getattr(self, attr)
            if isinstance(value, bool):
                value = "TRUE" if value else "FALSE"
            lines.append(f'{key}="{value}"')
        lines += [f"{k}={shlex.quote(v)}" for k, v in self.extra]
        return "\n".join(lines) + "\n"


# The values 1.1.1d's scripts act on; ogLab adds EVICT.  Under STRICT any other value is OTHER.
_STOCK_VALUES: dict[str, tuple[type[StrEnum], frozenset[str], frozenset[str]]] = {
    "ACTIONCACHEFULL": (
        CacheFullAction,
        frozenset({"NONE", "FORMAT", "DELETE"}),
        frozenset({"EVICT"}),
    ),
    "RESTOREPROTOCOLNOTCACHE": (
        NotCacheProtocol,
        frozenset({"NONE", "UNICAST", "MULTICAST"}),
        frozenset(),
    ),
}


def _stock_value(
    spec: tuple[type[StrEnum], frozenset[str], frozenset[str]], raw: str, strict: bool
) -> StrEnum:
    """A value of a key whose unknown values 1.1.1d mis-handles silently.

    ogLab refuses them (naming the allowed ones); under STRICT they are read as 1.1.1d reads
    them, exactly as written (no stripping, case-sensitive): stock values as themselves,
    anything else — ogLab's EVICT included — as OTHER.
    """
    kind, stock, ours = spec
    if strict:
        return kind(raw) if raw in stock else kind("OTHER")
    value = raw.strip()
    if value in stock or value in ours:
        return kind(value)
    allowed = ", ".join(sorted(stock | ours))
    raise FormatError(f"must be one of {allowed} (upper case)")


def _bool(raw: str) -> bool:
    key = raw.strip().upper()
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise FormatError("must be TRUE or FALSE")


def _int(raw: str) -> int:
    expr = raw.strip()
    if not re.fullmatch(r"[0-9]+(\s*\*\s*[0-9]+)*", expr):
        raise FormatError("must be a whole number (or a product such as 100000*4)")
    result = 1
    for factor in expr.split("*"):
        result *= int(factor)
    return result


def _tool(raw: str) -> CloneTool:
    try:
        return CloneTool(raw.strip().upper())
    except ValueError:
        raise FormatError("must be partclone, ntfsclone, partimage or dd") from None


def _str(raw: str) -> str:
    return raw


_KEYS: dict[str, tuple[str, Any]] = {
    "ACTIONCACHEFULL": (
        "action_cache_full",
        lambda raw: _stock_value(_STOCK_VALUES["ACTIONCACHEFULL"], raw, strict=False),
    ),
    "RESTOREPROTOCOLNOTCACHE": (
        "restore_protocol_not_cache",
        lambda raw: _stock_value(_STOCK_VALUES["RESTOREPROTOCOLNOTCACHE"], raw, strict=False),
    ),
    "MCASTERRORSESSION": ("mcast_error_session", _int),
    "MCASTWAIT": ("mcast_wait", _int),
    "IMGPROG": ("img_prog", _tool),
    "IMGCOMP": ("img_comp", lambda raw: Compressor.parse(raw)),
    "IMGEXT": ("img_ext", _str),
    "IMGREDUCE": ("img_reduce", _bool),
    "OGWINREDUCE": ("win_reduce", _bool),
    "OGWINCHKDISK": ("win_chkdisk", _bool),
    "CREATESPEED": ("create_speed", _int),
    "FACTORSYNC": ("factor_sync", _int),
    "BACKUP": ("backup", _bool),
    "IMGFS": ("img_fs", _str),
    "OGSLEEP": ("sleep_before_reboot", _int),
    "DEFAULTSPEED": ("default_speed", _str),
    "STARTDELAY": ("start_delay", StartDelay.parse),
    "STRICT": ("strict", _bool),
    "MCASTPROTOCOL": ("mcast_protocol", lambda raw: McastProtocol(raw.strip().upper())),
}

PRESETS: dict[str, Callable[[], EngineConfig]] = {
    "oglab": EngineConfig,
    "opengnsys-1.1.1d": EngineConfig.opengnsys_1_1_1d,
    "opengnsys-1.1.1d-strict": EngineConfig.opengnsys_1_1_1d_strict,
}

# keys of OpenGnSys 1.1.1d's engine.cfg that ogref keeps (in ``extra``) but does not act on
STOCK_KEYS = ("OGENGINECONFIGURATE", "OGLOGSESSION", "OGLOGCOMMAND", "NODEBUGFUNCTIONS")
ENGINE_KEYS: tuple[str, ...] = (*_KEYS, *STOCK_KEYS)
"""Every key a site file's ``engine:`` may hold."""

_MAX_FILE = 1024 * 1024


def check_engine_key(key: str, *, known_only: bool = False) -> None:
    """Refuse a known key in the wrong case, or (``known_only``) any key not in ENGINE_KEYS."""
    if key in ENGINE_KEYS:
        return
    if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise FormatError(f"{key!r} is not an engine.cfg key (KEY=value, a shell variable name)")
    upper = key.upper()
    if upper in ENGINE_KEYS:
        raise FormatError(f"unknown engine.cfg key {key!r}: keys are upper case ({upper})")
    if known_only:
        close = difflib.get_close_matches(upper, ENGINE_KEYS, n=1)
        hint = f"did you mean {close[0]}?" if close else "known: " + ", ".join(ENGINE_KEYS)
        raise FormatError(f"unknown engine.cfg key {key!r} ({hint})")


_ASSIGN = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def _assignments(text: str, source: str) -> list[tuple[int, str, str]]:
    """``(line, KEY, value)`` for each shell assignment, with quotes and comments removed;
    a line that is neither an assignment, a comment nor blank refuses the text."""
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _ASSIGN.match(stripped)
        if not m:
            raise ConfigError(
                f"not a KEY=value line: {stripped[:40]!r} (is this an engine.cfg?)",
                source=source,
                path=f"line {lineno}",
            )
        key, rest = m.group(1), m.group(2)
        try:
            words = shlex.split(rest, comments=True, posix=True)
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}", source=source, path=f"line {lineno}") from None
        out.append((lineno, key, " ".join(words)))
    return out
