"""Site descriptions in YAML: repositories, engine.cfg policy, classrooms and console commands.

A *site* is what exists (repositories with images, organisational units, classrooms, groups,
computers with disks and caches) plus the console commands asked of it (``operations``).  Values are
validated with pydantic; inheritance runs ``defaults → group → computer``; units are strings parsed
by :mod:`ogref.units`.  The result is built from :mod:`ogref.model` values only.

Bad input raises :class:`~ogref.errors.ConfigError` naming the file, the YAML path and the reason:
the file must be UTF-8 YAML without duplicate keys, at most 64 levels deep and 64 MiB long;
computer names are RFC 1123 host labels; repository addresses are IPv4 addresses; names of
repositories, classrooms and groups are unique; ``engine:`` holds engine.cfg keys only; every
command's scope names existing computers.  A computer given ``disks: []`` has no disk (restoring
to it fails like OpenGnSys, with OG_ERR_PARTITION); without ``disks`` it gets one 100 GiB partition.
Per-computer ``hw`` mappings (link rates, disk speeds…) are carried through the same inheritance but
not interpreted here: simulator and labs validate them.  This module plans nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ogref.errors import ConfigError, FormatError
from ogref.model import (
    Cache,
    CachedImage,
    Classroom,
    CloneTool,
    Compressor,
    Computer,
    Disk,
    DiskLayout,
    EngineConfig,
    Filesystem,
    Group,
    HardwareProfile,
    Image,
    ImageFormat,
    ImageKind,
    Method,
    MulticastSession,
    OrgUnit,
    Partition,
    Repository,
    TableKind,
    TorrentSession,
)
from ogref.model.names import check_host_label
from ogref.units import GIB, Duration, Size

_IMAGE_DIGEST = "md5:"
MAX_YAML_BYTES = 64 * 1024**2
MAX_YAML_DEPTH = 64
MAX_RANGE = 100_000


class Strict(BaseModel):
    """Base: unknown keys are errors (typos are caught), values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --------------------------------------------------------------------------- repository


class ImageSpec(Strict):
    """An image in a repository."""

    name: str
    filesystem: str = "NTFS"
    data: Size = Field(description="data size the target partition must hold")
    stored: Size | None = Field(default=None, description="compressed file size (default data/2)")
    compressor: str = "ZSTD"
    tool: str = "PARTCLONE"
    kind: Literal["monolithic", "diff"] = "monolithic"
    base: str = ""
    checksum: str = ""
    revision: int = 1
    os: str = ""
    torrent_piece: Size = Field(
        default=4 * 1024**2,
        description="piece size of the image's .torrent (OpenGnSys's ctorrent -l: 4MiB); "
        "a power of two of at least 16KiB",
    )
    format: Literal["partclone", "chunked"] = Field(
        default="partclone",
        description="partclone: the OpenGnSys NAME.img; chunked: NAME.manifest.json over the "
        "repository's chunk store (docs/chunked-images.md)",
    )
    added: Size | None = Field(
        default=None,
        description="a chunked differential image (kind: diff): stored bytes of its chunks "
        "that its base lacks (default: its whole stored size)",
    )
    used: Size | None = Field(
        default=None,
        description="a chunked image: bytes of its filesystem's used blocks, what a restore "
        "reads and writes (default: data, the filesystem's size)",
    )

    @model_validator(mode="after")
    def _chunked(self) -> ImageSpec:
        if self.added is not None and not (self.format == "chunked" and self.kind == "diff"):
            raise ValueError(
                "added is for a chunked differential image (format: chunked, kind: diff)"
            )
        if self.used is not None and self.format != "chunked":
            raise ValueError("used is for a chunked image (format: chunked)")
        return self

    def build(self, repository: str) -> Image:
        stored = self.stored if self.stored is not None else max(1, self.data // 2)
        checksum = self.checksum or _synthetic_checksum(self.name, self.revision, stored)
        chunked = self.format == "chunked"
        added = 0
        if chunked and self.kind == "diff":
            added = min(stored, self.added if self.added is not None else stored)
        return Image(
            name=self.name,
            filesystem=Filesystem.parse(self.filesystem),
            data_size=self.data,
            stored_size=stored,
            repository=repository,
            tool=CloneTool(self.tool.upper()),
            compressor=Compressor.parse(self.compressor),
            checksum=checksum,
            kind=ImageKind(self.kind),
            base=self.base,
            revision=self.revision,
            os_name=self.os,
            torrent_piece=self.torrent_piece,
            format=ImageFormat(self.format),
            added_size=added,
            used_size=min(self.used, self.data) if self.used is not None else 0,
        )


def _synthetic_checksum(name: str, revision: int, size: int) -> str:
    """A stable stand-in for the whole-file MD5 of an image described only on paper."""
    import hashlib

    return hashlib.md5(f"{name}:{revision}:{size}".encode()).hexdigest()


class RepositorySpec(Strict):
    """A repository server."""

    name: str = "repo"
    address: str = "10.0.0.1"
    images: list[ImageSpec] = Field(default_factory=list)
    multicast_fec: str = Field(
        default="8x8/128",
        pattern=r"^(none|\d+x\d+/\d+)$",
        description="udp-sender --fec (OpenGnSys: 8x8/128); 'none' sends no redundancy",
    )
    hw: dict[str, Any] = Field(default_factory=dict)

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        try:
            IPv4Address(v)
        except ValueError:
            raise FormatError(f"not an IPv4 address: {v!r}") from None
        return v

    def build(self) -> Repository:
        return Repository(
            self.name,
            self.address,
            tuple(i.build(self.name) for i in self.images),
            multicast_fec=self.multicast_fec,
        )


# --------------------------------------------------------------------------- computers


class PartitionSpec(Strict):
    """A partition of a disk."""

    number: int = Field(ge=1)
    size: Size
    fs: str = "EMPTY"
    os: str = ""


class DiskSpec(Strict):
    """A disk and its partition table (the CACHE is described separately)."""

    number: int = Field(default=1, ge=1)
    size: Size = 500 * GIB
    table: Literal["MSDOS", "GPT"] = "MSDOS"
    partitions: list[PartitionSpec] = Field(default_factory=list)


class CachedImageSpec(Strict):
    """An image already in a cache: current, stale (another version), stale_head (another
    version whose last MiB matches: 1.1.1d's UNICAST/MULTICAST check takes it for current) or
    partial (an interrupted download)."""

    name: str
    state: Literal["current", "stale", "stale_head", "partial"] = "current"
    size: Size | None = None
    last_used: float = 0.0


class CacheSpec(Strict):
    """A CACHE partition; ``used`` bytes are taken by other files (or give ``free``)."""

    size: Size
    used: Size | None = None
    free: Size | None = None
    images: list[str | CachedImageSpec] = Field(default_factory=list)
    disk: int = 1
    partition: int = 4

    @model_validator(mode="after")
    def _one_of_used_free(self) -> CacheSpec:
        if self.used is not None and self.free is not None:
            raise ValueError("give either used or free, not both")
        return self


class ComputerLayer(Strict):
    """Fields a computer takes from defaults, its group or itself (all optional per layer)."""

    repository: str | None = None
    disks: list[DiskSpec] | None = None
    cache: CacheSpec | Literal["none"] | None = Field(default=None)
    profile: str | None = None
    windows_needs_reboot: bool | None = None
    hw: dict[str, Any] = Field(default_factory=dict)
    no_cache: bool | None = Field(default=None, description="the computer has no CACHE partition")

    def merged(self, over: ComputerLayer) -> ComputerLayer:
        data = {k: v for k, v in self.__dict__.items()}
        for key in over.model_fields_set:
            value = getattr(over, key)
            if key == "hw":
                data["hw"] = _deep_merge(data.get("hw") or {}, value)
            else:
                data[key] = value
        return ComputerLayer.model_construct(_fields_set=set(data), **data)


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = (
            _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


class ComputerSpec(ComputerLayer):
    """One computer: a name plus optional ip/mac and layer overrides."""

    name: str
    ip: str | None = None
    mac: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_host_label(v)


class GroupSpec(ComputerLayer):
    """A computer group; its fields override the classroom defaults for its members."""

    name: str
    members: list[str] = Field(default_factory=list)

    @field_validator("members", mode="before")
    @classmethod
    def _expand(cls, v: Any) -> Any:
        if isinstance(v, str):
            return expand_names(v)
        if isinstance(v, list):
            out: list[str] = []
            for item in v:
                out += expand_names(item) if isinstance(item, str) else [item]
            return out
        return v


def expand_names(text: str) -> list[str]:
    """Expand ``pc01-pc10`` (or ``pc01..pc10``) into names; other text is one name."""
    m = re.fullmatch(r"([A-Za-z_-]*?)(\d+)\s*(?:-|\.\.)\s*\1?(\d+)", text.strip())
    if not m:
        return [text.strip()]
    prefix, a, b = m.group(1), m.group(2), m.group(3)
    width = len(a)
    lo, hi = int(a), int(b)
    if hi < lo:
        raise FormatError(f"empty range {text.strip()!r}: the first number is larger than the last")
    if hi - lo >= MAX_RANGE:
        raise FormatError(f"range {text.strip()!r} names more than {MAX_RANGE} computers")
    return [f"{prefix}{i:0{width}d}" for i in range(lo, hi + 1)]


class ComputersSpec(Strict):
    """Generated computers ``<prefix>01…<prefix>NN`` plus per-name overrides."""

    count: int = Field(ge=1, le=100_000)
    prefix: str = "pc"
    first_host: int = Field(default=11, ge=1)
    overrides: dict[str, ComputerLayer] = Field(default_factory=dict)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str, info: ValidationInfo) -> str:
        count = info.data.get("count", 1)
        check_host_label(f"{v}{count:0{max(2, len(str(count)))}d}")
        return v

    def names(self) -> list[str]:
        """The generated names, ``<prefix>01`` … (at least two digits)."""
        width = max(2, len(str(self.count)))
        return [f"{self.prefix}{i:0{width}d}" for i in range(1, self.count + 1)]


class ClassroomSpec(Strict):
    """A classroom: subnet, network parameters, defaults, groups and computers."""

    name: str
    org_unit: str = "ou"
    subnet: str = "10.0.1.0/24"
    multicast: str = "9000:full-duplex:239.194.1.1:70M:50:60"
    torrent: str = "peer:60"
    defaults: ComputerLayer = Field(default_factory=ComputerLayer)
    groups: list[GroupSpec] = Field(default_factory=list)
    computers: ComputersSpec | list[ComputerSpec]

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, v: str) -> str:
        IPv4Network(v)
        return v

    @field_validator("multicast")
    @classmethod
    def _mcast(cls, v: str) -> str:
        MulticastSession.parse(v)
        return v

    @field_validator("torrent")
    @classmethod
    def _torrent(cls, v: str) -> str:
        TorrentSession.parse(v)
        return v


# --------------------------------------------------------------------------- operations


class Scope(Strict):
    """What a command targets: a classroom, a group of it, or named computers (default: all)."""

    classroom: str | None = None
    group: str | None = None
    computers: list[str] | None = None

    @model_validator(mode="after")
    def _group_in_a_classroom(self) -> Scope:
        # groups are named within their classroom; without it the scope would silently be
        # every computer of the site
        if self.group is not None and self.classroom is None:
            raise ValueError(f"group {self.group!r} needs its classroom (classroom: …)")
        return self


class RestoreSpec(Strict):
    """The console's Restore command (or the Deploy wizard / updateCache with ``wizard``)."""

    image: str
    method: str = "UNICAST"
    disk: int = Field(default=1, ge=1)
    partition: int = Field(default=1, ge=1)
    to: Scope | str = "all"
    multicast: str | None = None
    torrent: str | None = None
    allow_fs_change: bool = False
    postconf: bool = True

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        Method.parse(v)
        return v


class CreateSpec(Strict):
    """Create an image from a computer's partition."""

    computer: str
    disk: int = 1
    partition: int = 1
    image: str
    target: Literal["REPO", "CACHE"] = "REPO"


class CloneSpec(Strict):
    """Clone a MASTER's partition (or a cached image of it) to other computers."""

    master: str
    disk: int = 1
    partition: int = 1
    to: Scope | str = "all"
    method: Literal["MULTICAST", "UNICAST"] = "MULTICAST"
    from_cache: str | None = Field(default=None, description="image in the MASTER's cache")


class BootSpec(Strict):
    """Boot a restored partition once, or make it the permanent boot target."""

    to: Scope | str = "all"
    disk: int = 1
    partition: int = 1
    permanent: bool = False


class OperationSpec(Strict):
    """One console command at a time offset (``at``)."""

    at: Duration = 0.0
    restore: RestoreSpec | None = None
    deploy: RestoreSpec | None = None
    update_cache: RestoreSpec | None = None
    create: CreateSpec | None = None
    clone: CloneSpec | None = None
    boot: BootSpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> OperationSpec:
        kinds = [
            k
            for k in ("restore", "deploy", "update_cache", "create", "clone", "boot")
            if getattr(self, k) is not None
        ]
        if len(kinds) != 1:
            raise ValueError(
                "an operation needs exactly one of restore, deploy, update_cache, create, clone, boot"
                f" (got {kinds or 'none'})"
            )
        return self

    @property
    def kind(self) -> str:
        return next(
            k
            for k in ("restore", "deploy", "update_cache", "create", "clone", "boot")
            if getattr(self, k) is not None
        )


# --------------------------------------------------------------------------- site


class SiteSpec(Strict):
    """A whole site: repositories, engine.cfg policy, classrooms and console commands."""

    repositories: list[RepositorySpec] = Field(default_factory=lambda: [RepositorySpec()])
    engine: dict[str, str | int | bool] = Field(
        default_factory=dict, description="engine.cfg keys, e.g. RESTOREPROTOCOLNOTCACHE: UNICAST"
    )
    engine_preset: Literal["oglab", "opengnsys-1.1.1d", "opengnsys-1.1.1d-strict"] = Field(
        default="oglab",
        description="base of the engine.cfg policy (engine: keys apply over it); "
        "opengnsys-1.1.1d-strict predicts a stock 1.1.1d installation bug for bug",
    )
    classrooms: list[ClassroomSpec]
    operations: list[OperationSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class Site:
    """A validated site, built from domain values."""

    repositories: tuple[Repository, ...]
    policy: EngineConfig
    org_units: tuple[OrgUnit, ...]
    hw: dict[str, dict[str, Any]] = field(default_factory=dict)
    repository_hw: dict[str, dict[str, Any]] = field(default_factory=dict)
    operations: tuple[OperationSpec, ...] = ()

    @property
    def classrooms(self) -> tuple[Classroom, ...]:
        return tuple(c for ou in self.org_units for c in ou.classrooms)

    @property
    def computers(self) -> tuple[Computer, ...]:
        return tuple(pc for room in self.classrooms for pc in room.computers)

    def classroom(self, name: str) -> Classroom:
        for room in self.classrooms:
            if room.name == name:
                return room
        raise FormatError(f"no classroom {name!r}")

    def classroom_of(self, computer: str) -> Classroom:
        for room in self.classrooms:
            if any(c.name == computer for c in room.computers):
                return room
        raise FormatError(f"no computer {computer!r}")

    def computer(self, name: str) -> Computer:
        return self.classroom_of(name).computer(name)

    def repository(self, name: str) -> Repository:
        for repo in self.repositories:
            if repo.name == name:
                return repo
        raise FormatError(f"no repository {name!r}")

    def find_image(self, name: str) -> Image:
        """The image called ``name`` in whichever repository holds it."""
        for repo in self.repositories:
            if repo.has(name):
                return repo.image(name)
        from ogref.errors import NotFoundError

        raise NotFoundError(f"image {name!r} is in no repository")

    def scope(self, to: Scope | str) -> tuple[Computer, ...]:
        """Resolve a command scope into computers, in console order."""
        if isinstance(to, str):
            if to == "all":
                return self.computers
            names = []
            for part in to.split(","):
                names += expand_names(part)
            return tuple(self.computer(n) for n in names)
        if to.computers is not None:
            names = []
            for part in to.computers:
                names += expand_names(part)
            return tuple(self.computer(n) for n in names)
        if to.classroom is None:
            return self.computers
        room = self.classroom(to.classroom)
        return room.group(to.group) if to.group else room.computers


# --------------------------------------------------------------------------- loading


def load_site(path: str | Path) -> Site:
    """Read and validate a site YAML file."""
    p = Path(path)
    return build_site(read_yaml(p), source=str(p))


class _Refused(yaml.MarkedYAMLError):
    """Well-formed YAML that a site file may not hold (duplicate keys, too deep)."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate mapping keys and nesting beyond MAX_YAML_DEPTH
    (PyYAML composes nodes recursively: deeper input would end in a RecursionError)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refused(
                    problem=f"nested deeper than {MAX_YAML_DEPTH} levels", problem_mark=mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue  # merged keys (<<) may be overridden: that is what they are for
            key = self.construct_object(key_node)
            if key in first:
                raise _Refused(
                    problem=f"duplicate key {key!r} (first given on line {first[key] + 1})",
                    problem_mark=key_node.start_mark,
                )
            first[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file, turning I/O, encoding and syntax errors into ConfigError."""
    source = str(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=source) from None
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"larger than {MAX_YAML_BYTES // 1024**2} MiB", source=source)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x})", source=source, path=f"line {line}"
        ) from None
    return parse_yaml(text, source)


# The keys a scenario file (ogsim's ``ScenarioSpec``) adds to a site; a site reader ignores them
# without a word.  Spelled out here because ogref never imports ogsim; a unit test keeps the two
# in step.
SCENARIO_KEYS = frozenset(
    {"name", "description", "seed", "network", "faults", "expect", "backends", "exercise"}
)


def unknown_keys(extra: list[str]) -> list[str]:
    """Of the keys :func:`site_part` left out, those that are neither site nor scenario keys
    (probably typos)."""
    return [k for k in extra if k not in SCENARIO_KEYS]


def site_part(data: Any) -> tuple[Any, list[str]]:
    """The site keys of a parsed file and the names of the others (a scenario file adds
    ``faults:``, ``expect:``, ``backends:`` … that a site reader ignores)."""
    if not isinstance(data, dict):
        return data, []
    extra = sorted(str(k) for k in data if k not in SiteSpec.model_fields)
    return {k: v for k, v in data.items() if k in SiteSpec.model_fields}, extra


def parse_yaml(text: str, source: str = "<yaml>") -> Any:
    """Parse YAML text with the strict loader; errors are ConfigError naming the line."""
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        reason = problem if isinstance(exc, _Refused) else f"YAML syntax error: {problem}"
        raise ConfigError(reason, source=source, path=where) from None
    except RecursionError:  # a construct deeper than the composer's bound; never expected
        raise ConfigError(
            f"nested too deeply (at most {MAX_YAML_DEPTH} levels)", source=source
        ) from None
    finally:
        loader.dispose()


def validation_error(exc: ValidationError, source: str, prefix: str = "") -> ConfigError:
    """The most specific pydantic error (the deepest; the first of those) as a ConfigError with
    its YAML path: for a union such as ``ComputersSpec | list[ComputerSpec]`` that is the error
    inside the member the value was meant for, not "not a mapping"."""
    errors = exc.errors()
    err = max(errors, key=lambda e: len(e["loc"]))
    loc = [str(x) for x in err["loc"] if not str(x).startswith(("function-", "union["))]
    # pydantic appends the union member tag (e.g. "str", "CachedImageSpec"); drop those
    loc = [
        x
        for x in loc
        if not x[:1].isupper()
        and x not in ("str", "int", "list", "literal")
        and not re.match(r"[a-z]+\[", x)  # list[ComputerSpec], dict[str,any]…
    ]
    path = ".".join(([prefix] if prefix else []) + loc)
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = f"unknown key {loc[-1]!r} (typo?)"
    ctx_err = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_err, FormatError):
        msg = ctx_err.message
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return ConfigError(msg, source=source, path=path)


def build_site(data: Any, source: str = "<site>", prefix: str = "") -> Site:
    """Validate a parsed YAML mapping and build the Site."""
    if not isinstance(data, dict):
        raise ConfigError("the document must be a mapping", source=source, path=prefix)
    try:
        spec = SiteSpec.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, source, prefix) from None
    return _build(spec, source, prefix)


def _build(spec: SiteSpec, source: str, prefix: str) -> Site:
    def err(msg: str, path: str) -> ConfigError:
        return ConfigError(msg, source=source, path=".".join(p for p in (prefix, path) if p))

    base = EngineConfig.preset(spec.engine_preset)
    pairs = [(f"engine.{k}", k, _cfg_value(v)) for k, v in spec.engine.items()]
    try:
        policy = base.with_engine_cfg(pairs, source, known_only=True)
    except ConfigError as exc:
        raise err(exc.reason, exc.path) from None

    _unique([r.name for r in spec.repositories], "repository", "repositories", err)
    _unique([c.name for c in spec.classrooms], "classroom", "classrooms", err)
    repos: list[Repository] = []
    for i, r in enumerate(spec.repositories):
        try:
            repos.append(r.build())
        except FormatError as exc:
            raise err(exc.message, f"repositories.{i}") from None
    images = {img.name: img for repo in repos for img in repo.images}
    repo_names = {r.name for r in repos}

    ous: dict[str, list[Classroom]] = {}
    hw: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for ci, room in enumerate(spec.classrooms):
        path = f"classrooms.{ci}"
        built, room_hw = _build_classroom(room, images, repo_names, path, err)
        dupes = seen & {c.name for c in built.computers}
        if dupes:
            raise err(f"computer names used in two classrooms: {sorted(dupes)}", path)
        seen |= {c.name for c in built.computers}
        ous.setdefault(room.org_unit, []).append(built)
        hw.update(room_hw)
    org_units = tuple(OrgUnit(name, tuple(rooms)) for name, rooms in ous.items())
    site = Site(
        repositories=tuple(repos),
        policy=policy,
        org_units=org_units,
        hw=hw,
        repository_hw={r.name: dict(r.hw) for r in spec.repositories},
        operations=tuple(spec.operations),
    )
    _check_operations(site, err)
    return site


def _unique(names: list[str], what: str, path: str, err: Any) -> None:
    """Refuse a name given twice, at the second one's YAML path."""
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            raise err(
                f"{what} {name!r} is defined twice (first at {path}.{first[name]})",
                f"{path}.{i}.name",
            )
        first[name] = i


def _check_operations(site: Site, err: Any) -> None:
    """Every command's computers exist, so a typo or a reversed range is a load error."""
    for i, op in enumerate(site.operations):
        body = getattr(op, op.kind)
        targets: list[tuple[str, str | Scope]] = []
        if isinstance(body, CreateSpec):
            targets.append(("computer", body.computer))
        else:
            if isinstance(body, CloneSpec):
                targets.append(("master", body.master))
            targets.append(("to", body.to))
        for key, target in targets:
            try:
                if key == "to":
                    site.scope(target)
                else:
                    assert isinstance(target, str)
                    site.computer(target)
            except FormatError as exc:
                raise err(exc.message, f"operations.{i}.{op.kind}.{key}") from None


def _cfg_value(v: str | int | bool) -> str:
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    return str(v)


class _FieldError(FormatError):
    """A computer's field is wrong; the caller names the layer (defaults, group…) that set it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _host(net: IPv4Network, index: int) -> IPv4Address | None:
    """The ``index``-th usable address of ``net`` (as ``net.hosts()``), None past its end."""
    if net.prefixlen >= 31:
        first, count = 0, net.num_addresses
    else:
        first, count = 1, net.num_addresses - 2
    return net.network_address + first + index if 0 <= index < count else None


@dataclass(frozen=True)
class ResolvedComputer:
    """One computer of a classroom after inheritance: its name, the ip/mac the site gives (None:
    assigned by the classroom), the group whose fields it takes, its merged layer and, per
    field, the YAML path of the layer that set it (so an error names the line to fix)."""

    name: str
    ip: str | None
    mac: str | None
    group: GroupSpec | None
    layer: ComputerLayer
    path: str
    origin: dict[str, str] = field(default_factory=dict)


def _no_error_expected(msg: str, path: str) -> ConfigError:
    return ConfigError(msg, path=path)


def resolve_computers(
    room: ClassroomSpec, path: str = "", err: Any = _no_error_expected
) -> list[ResolvedComputer]:
    """The classroom's computers in order, each with its fields merged ``defaults → its group →
    itself`` (a computer listed by two groups takes the first's).  ``err(reason, yaml_path)``
    builds the error raised for unknown names in overrides or group members."""
    specs: list[tuple[str, str | None, str | None, ComputerLayer, str]] = []
    if isinstance(room.computers, ComputersSpec):
        cs = room.computers
        names = cs.names()
        unknown = set(cs.overrides) - set(names)
        if unknown:
            raise err(
                f"overrides name unknown computers {sorted(unknown)}", f"{path}.computers.overrides"
            )
        for name in names:
            layer = cs.overrides.get(name, ComputerLayer())
            specs.append((name, None, None, layer, f"{path}.computers.overrides.{name}"))
    else:
        for i, c in enumerate(room.computers):
            specs.append((c.name, c.ip, c.mac, c, f"{path}.computers.{i}"))

    _unique([g.name for g in room.groups], "group", f"{path}.groups", err)
    group_of: dict[str, tuple[GroupSpec, str]] = {}
    all_names = {s[0] for s in specs}
    for gi, g in enumerate(room.groups):
        missing = [m for m in g.members if m not in all_names]
        if missing:
            raise err(
                f"group {g.name} lists unknown computers {missing}", f"{path}.groups.{gi}.members"
            )
        for m in g.members:
            group_of.setdefault(m, (g, f"{path}.groups.{gi}"))

    out: list[ResolvedComputer] = []
    for name, ip, mac, own, cpath in specs:
        layers: list[tuple[ComputerLayer, str]] = [(room.defaults, f"{path}.defaults")]
        group, gpath = group_of.get(name, (None, ""))
        if group is not None:
            layers.append((group, gpath))
        layers.append((own, cpath))
        layer = room.defaults
        origin: dict[str, str] = {}
        for one, where in layers:
            origin.update({key: where for key in one.model_fields_set})
            if one is not room.defaults:
                layer = layer.merged(one)
        out.append(ResolvedComputer(name, ip, mac, group, layer, cpath, origin))
    return out


def _build_classroom(
    room: ClassroomSpec, images: dict[str, Image], repo_names: set[str], path: str, err: Any
) -> tuple[Classroom, dict[str, dict[str, Any]]]:
    net = IPv4Network(room.subnet)
    computers: list[Computer] = []
    hw: dict[str, dict[str, Any]] = {}
    first = room.computers.first_host if isinstance(room.computers, ComputersSpec) else 11
    for idx, rc in enumerate(resolve_computers(room, path, err)):
        name, ip, mac, layer = rc.name, rc.ip, rc.mac, rc.layer
        if ip is None:
            host = _host(net, first - 1 + idx)
            if host is None:
                raise err(f"subnet {room.subnet} has no address left for {name}", path)
            ip = f"{host}/{net.prefixlen}"
        if mac is None:
            mac = _mac(room.name, idx)
        try:
            computers.append(
                _build_computer(name, ip, mac, layer, room, rc.group, images, repo_names)
            )
        except _FieldError as exc:
            where = f"{rc.origin[exc.field]}.{exc.field}" if exc.field in rc.origin else rc.path
            raise err(exc.message, where) from None
        except FormatError as exc:
            raise err(exc.message, rc.path) from None
        hw[name] = dict(layer.hw)
    groups = tuple(Group(g.name, tuple(g.members)) for g in room.groups)
    try:
        built = Classroom(
            name=room.name,
            computers=tuple(computers),
            groups=groups,
            multicast=MulticastSession.parse(room.multicast),
            torrent=TorrentSession.parse(room.torrent),
            org_unit=room.org_unit,
        )
    except FormatError as exc:
        raise err(exc.message, path) from None
    return built, hw


def _mac(classroom: str, index: int) -> str:
    """A deterministic locally administered MAC from the classroom name and the index."""
    import hashlib

    room = hashlib.sha256(classroom.encode()).digest()[0]
    return f"52:54:00:{room:02x}:{(index >> 8) & 0xFF:02x}:{index & 0xFF:02x}"


def _build_computer(
    name: str,
    ip: str,
    mac: str,
    layer: ComputerLayer,
    room: ClassroomSpec,
    group: GroupSpec | None,
    images: dict[str, Image],
    repo_names: set[str],
) -> Computer:
    repository = layer.repository or next(iter(sorted(repo_names)), "repo")
    if repository not in repo_names:
        raise _FieldError("repository", f"repository {repository!r} is not defined")
    if layer.disks is None:  # not described: one disk with one 100 GiB partition
        disks_spec = [DiskSpec(partitions=[PartitionSpec(number=1, size=100 * GIB)])]
    else:  # ``disks: []`` is a computer without a disk
        disks_spec = layer.disks
    numbers = [d.number for d in disks_spec]
    if len(set(numbers)) != len(numbers):
        raise _FieldError("disks", f"duplicate disk numbers {numbers}")
    try:
        disks = DiskLayout(
            tuple(
                Disk(
                    number=d.number,
                    size=d.size,
                    table=TableKind(d.table),
                    partitions=tuple(
                        Partition(p.number, p.size, Filesystem.parse(p.fs), os_name=p.os)
                        for p in d.partitions
                    ),
                )
                for d in disks_spec
            )
        )
    except FormatError as exc:
        raise _FieldError("disks", exc.message) from None
    cache: Cache | None = None
    if layer.cache not in (None, "none") and not layer.no_cache:
        assert isinstance(layer.cache, CacheSpec)
        try:
            cache = _build_cache(layer.cache, images)
        except FormatError as exc:
            raise _FieldError("cache", exc.message) from None
    profile = HardwareProfile(
        layer.profile or "default",
        True if layer.windows_needs_reboot is None else layer.windows_needs_reboot,
    )
    return Computer(
        name=name,
        ip=ip,
        mac=mac,
        repository=repository,
        disks=disks,
        cache=cache,
        group=group.name if group else "",
        classroom=room.name,
        org_unit=room.org_unit,
        profile=profile,
    )


def _build_cache(spec: CacheSpec, images: dict[str, Image]) -> Cache:
    cached: list[CachedImage] = []
    for item in spec.images:
        entry = CachedImageSpec(name=item) if isinstance(item, str) else item
        img = images.get(entry.name)
        if img is None and entry.size is None:
            raise FormatError(f"cached image {entry.name!r} is in no repository: give its size")
        size = entry.size if entry.size is not None else (img.stored_size if img else 0)
        checksum = img.checksum if img else ""
        if entry.state in ("stale", "stale_head"):
            checksum = "stale-" + (checksum or entry.name)
        cached.append(
            CachedImage(
                entry.name,
                size if entry.state != "partial" else min(size, size // 2 or 1),
                checksum,
                complete=entry.state != "partial",
                last_used=entry.last_used,
                same_tail=entry.state == "stale_head",
                chunked=bool(img and img.chunked),
            )
        )
    images_size = sum(c.size for c in cached)
    if spec.free is not None:
        overhead = spec.size - spec.free - images_size
        if overhead < 0:
            raise FormatError(
                f"cache: free {spec.free} + cached images {images_size} exceed its size {spec.size}"
            )
    else:
        overhead = spec.used or 0
    return Cache(
        size=spec.size,
        images=tuple(cached),
        overhead=overhead,
        disk=spec.disk,
        partition=spec.partition,
    )
