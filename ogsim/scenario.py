"""Scenario files: a site document (``ogref.site``) plus what goes wrong, what must hold, where
it runs and how it is scaled.

``ScenarioSpec`` extends ``SiteSpec`` with ``name``, ``description``, ``seed``, ``network``,
``faults``, ``expect`` and ``backends``; the ``hw:`` mappings are validated here, layer by layer,
so every error names the file, the YAML path and the reason (``ConfigError``).  The scenario's
``name`` names its output directory (``out/<name>/…``), so it must be a plain identifier: letters,
digits, ``.``, ``_`` and ``-``, starting with a letter or digit (no ``/``, no ``..``).  Loading builds the
one domain model with ``ogref.site.build_site``; nothing here simulates or decides.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ogref.errors import ConfigError, FormatError
from ogref.model import Method
from ogref.site import Site, SiteSpec, build_site, expand_names, read_yaml, validation_error
from ogref.units import Duration, PositiveRate, Rate, Ratio, parse_size
from ogsim.hardware import ComputerHwLayer, HostHw, NetworkSpec, RepositoryHw, resolve_host

SCHEMA_PATH = Path(__file__).with_name("scenario.schema.json")
SCENARIO_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


def safe_name(text: str) -> str:
    """``text`` made a scenario name: runs of other characters become ``-`` (a file stem)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-_")[:100]
    return name or "scenario"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _names(v: Any) -> Any:
    if isinstance(v, str):
        out: list[str] = []
        for part in v.split(","):
            out += expand_names(part)
        return out
    if isinstance(v, list):
        flat: list[str] = []
        for item in v:
            flat += _names(item) if isinstance(item, str) else [item]
        return flat
    return v


Targets = Annotated[list[str], BeforeValidator(_names)]


# --------------------------------------------------------------------------- faults


class LinkLossFault(_Strict):
    """Packet loss on computers' links (``repo`` names the repository uplink)."""

    target: Targets
    loss: Ratio
    duration: Duration | None = Field(default=None, alias="for")


class LinkDownFault(_Strict):
    """Links down for a while (``for``; forever when absent)."""

    target: Targets
    duration: Duration | None = Field(default=None, alias="for")


class ClientCrashFault(_Strict):
    """Computers crash (power off) and stay off."""

    target: Targets


class SeederDeathFault(_Strict):
    """Torrent seeders stop uploading: ``repo`` (the repository seeder) or computers."""

    target: Targets


class SlowDiskFault(_Strict):
    """Disks become ``factor`` times slower (for ``for``, or until the end)."""

    target: Targets
    factor: float = Field(gt=1.0)
    duration: Duration | None = Field(default=None, alias="for")


class RepositoryRestartFault(_Strict):
    """The repository services restart: transfers from it stall for ``outage`` (its hw.restart)."""

    repository: str = "repo"
    outage: Duration | None = None


FAULT_KINDS = (
    "link_loss",
    "link_down",
    "client_crash",
    "seeder_death",
    "slow_disk",
    "repository_restart",
)


class FaultSpec(_Strict):
    """One fault at a time offset ``at``; exactly one kind."""

    at: Duration = 0.0
    link_loss: LinkLossFault | None = None
    link_down: LinkDownFault | None = None
    client_crash: ClientCrashFault | None = None
    seeder_death: SeederDeathFault | None = None
    slow_disk: SlowDiskFault | None = None
    repository_restart: RepositoryRestartFault | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> FaultSpec:
        kinds = [k for k in FAULT_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a fault needs exactly one of {', '.join(FAULT_KINDS)} (got {kinds})")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in FAULT_KINDS if getattr(self, k) is not None)


# --------------------------------------------------------------------------- expectations


def _method(v: str) -> str:
    return str(Method.parse(v))


MethodName = Annotated[str, AfterValidator(_method)]
Status = Literal["ok", "failed", "crashed", "refused", "not_started"]


OperationIndex = Annotated[
    int,
    Field(
        ge=0,
        description="index of the scenario operation to look at (0 = the first of 'operations'; "
        "the same on every backend); default: each computer's last operation",
    ),
]


class FallbackExpect(_Strict):
    """These computers were switched automatically to ``method``."""

    computers: Targets
    method: MethodName
    operation: OperationIndex | None = None


class MethodUsedExpect(_Strict):
    """These computers (default: all not listed in ``except``) ended using ``method``."""

    method: MethodName
    computers: Targets | None = None
    except_: Targets = Field(default_factory=list, alias="except")
    operation: OperationIndex | None = None


class BootedExpect(_Strict):
    """These computers (default: all in the operation) booted the restored OS, which reported
    ``hostname`` (default: each computer's own name) — a boot operation on a backend that boots."""

    computers: Targets | None = None
    hostname: str | None = None
    operation: OperationIndex | None = None
    secure_boot: bool | None = Field(
        default=None,
        description="the booted OS also reported Secure Boot enforced (true) or not (false)",
    )
    firmware: Literal["bios", "uefi"] | None = Field(
        default=None, description="the booted OS also reported this firmware"
    )


class CodeExpect(_Strict):
    """These computers finished with OpenGnSys code ``code`` (0 = success)."""

    computers: Targets
    code: int


class StatusExpect(_Strict):
    """These computers ended in ``status`` (ok, failed, crashed, refused, not_started)."""

    computers: Targets
    status: Status


class CountExpect(_Strict):
    """Exactly ``equals`` computers match the filter (status and/or method used)."""

    equals: int = Field(ge=0)
    status: Status | None = None
    method: MethodName | None = None
    operation: OperationIndex | None = None


class OrderExpect(_Strict):
    """Operation ``then`` started on every computer only after operation ``first`` had ended on
    all of its computers (the command queue made it wait)."""

    first: OperationIndex
    then: OperationIndex


EXPECT_KINDS = (
    "all_restored",
    "all_verified",
    "fallback",
    "method_used",
    "code",
    "status",
    "count",
    "booted",
    "makespan_below",
    "makespan_above",
    "order",
    "concurrent",
)


class ExpectSpec(_Strict):
    """One expectation; exactly one kind (plus an optional ``backends`` filter)."""

    all_restored: bool | None = Field(default=None, description="every computer ended OK")
    all_verified: bool | None = Field(default=None, description="every cached copy verified")
    fallback: FallbackExpect | None = None
    method_used: MethodUsedExpect | None = None
    code: CodeExpect | None = None
    status: StatusExpect | None = None
    count: CountExpect | None = None
    booted: BootedExpect | None = None
    makespan_below: Duration | None = None
    makespan_above: Duration | None = None
    order: OrderExpect | None = None
    concurrent: list[OperationIndex] | None = Field(
        default=None,
        min_length=2,
        description="these operations ran at the same time (their spans overlap pairwise)",
    )
    backends: list[Literal["sim", "netns", "libvirt"]] | None = Field(
        default=None, description="backends this expectation applies to (default: all)"
    )
    clock: Literal["scenario", "wall"] = Field(
        default="scenario",
        description="makespan bounds: in scenario time (the simulator's; a lab measures it only "
        "at scale 1) or in the lab run's real seconds (labs only)",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ExpectSpec:
        kinds = [k for k in EXPECT_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"an expectation needs exactly one of {', '.join(EXPECT_KINDS)}")
        if self.clock != "scenario" and not kinds[0].startswith("makespan"):
            raise ValueError("clock applies to makespan_below / makespan_above only")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in EXPECT_KINDS if getattr(self, k) is not None)


# --------------------------------------------------------------------------- backends


class SharedDiskSpec(_Strict):
    """The one host's disk of a one-host lab (every computer's loop device is a file on it) and
    the kernel's threads that write the computers' dirty pages back to it: shared by every
    computer's writeback (the final fsync of a restore, the syncfs of a chunked update), which
    runs as a loop device's flush does — the kernel copies the bytes into the backing file
    (CPU), then the backing file is written to the disk."""

    rate: PositiveRate = Field(
        description="bytes per second the host's disk takes a backing file's writeback at, "
        "alone (an fsync of a loop device less the kernel's copy, measured alone); shared "
        "max-min fair by the computers' concurrent writebacks, e.g. 2GB/s"
    )
    cpu: PositiveRate | None = Field(
        default=None,
        description="bytes the kernel's threads (the loop devices' workers, outside the "
        "computers' processes) copy into the backing files per second of one core, measured "
        "alone: a writeback's CPU work, one core at most, shared with the computers' CPU work "
        "on shared_cpus cores; unset: no CPU",
    )
    fixed: Duration = Field(
        default=0.0,
        description="per writeback, what it costs beyond its bytes alone (the journal commit, "
        "the disk's cache flush): a latency, not shared",
    )


class SimBackendSpec(_Strict):
    """Simulator knobs: scale and model parameters (all have calibrated defaults)."""

    scale: float = Field(default=1.0, gt=0, le=1, description="image sizes multiplied by this")
    swarm_blocks: int | None = Field(
        default=None,
        ge=4,
        le=65536,
        description="torrent blocks per image (default: 65536/N clamped to 64–1024, ≤ pieces)",
    )
    upload_slots: int = Field(default=4, ge=1, description="torrent upload slots per peer")
    download_slots: int = Field(default=4, ge=1, description="torrent concurrent downloads")
    neighbours: int = Field(default=30, ge=1, description="peers a tracker answer lists")
    torrent_efficiency: Ratio = Field(
        default=0.92, gt=0, description="BitTorrent goodput on the wire (headers, hashing, choking)"
    )
    slice_rtt_factor: float = Field(
        default=1.0,
        ge=0,
        description="udp-sender's acknowledgement round trips per slice (after each slice it "
        "asks every receiver); hidden behind the next slice's sending when shorter",
    )
    slice_blocks: int = Field(
        default=1024,
        ge=16,
        le=1024,
        description="udpcast slice size in 1456-byte blocks (16–1024; default 1024, udp-sender's "
        "maximum; note that udp-sender in full-duplex mode uses a fixed 112 — "
        "ogsim.udpcast.FULL_DUPLEX_SLICE_BLOCKS, which validate's EZIO check sets)",
    )
    slice_stall_chance: Ratio = Field(
        default=0.0,
        description="udpcast: the chance that a receiver, independently per slice, does not "
        "answer the sender's REQACK in time (its pipeline stalled, its answer lost); a slice "
        "in which any of the N receivers fails costs slice_stall more, so a session of S "
        "slices takes S·slice_stall·(1 − (1 − chance)^N) longer.  0 (default) = off; no "
        "hardware measurement gives it (validate-models fits it leave-one-out on EZIO)",
    )
    slice_stall: Duration = Field(
        default=1.0,
        description="udpcast: seconds a slice costs the session when some receiver did not "
        "answer its REQACK in time (the sender's re-ask wait, net of what overlaps with "
        "sending; udp-sender waits at least 1 s per re-ask after the tenth, senddata.c); "
        "used only when slice_stall_chance > 0",
    )
    drop_after: Duration = Field(
        default=56.0,
        description="udp-sender drops a silent receiver after: with --retries-until-drop R "
        "(OpenGnSys: 65) it re-asks every 1.1 RTT, and at least 1 s after the 10th retry: "
        "≈ R − 9 s on a LAN (udpcast senddata.c)",
    )
    util_sample: Duration = Field(default=1.0, description="link-utilisation series resolution")
    shared_cpus: int | None = Field(
        default=None,
        ge=1,
        description="emulation only: every computer's CACHE restore (decompression) shares "
        "this many CPU cores, as in a one-host namespace lab; unset = a CPU per computer",
    )
    shared_disk: SharedDiskSpec | None = Field(
        default=None,
        description="emulation only: every computer's writeback goes to this one host's disk "
        "through its kernel threads, as in a one-host namespace lab; unset = a disk per "
        "computer",
    )
    shared_cpus_busy: float | None = Field(
        default=None,
        gt=0,
        description="emulation only: the work the shared_cpus cores do together when every "
        "one is busy, in cores of one process alone (measured on the host alone: CPU-bound "
        "workers on every core at once against one alone; below shared_cpus when the cores "
        "slow each other — a virtual machine's vCPUs on one physical core's threads, a shared "
        "cache, a hypervisor's other guests); unset = shared_cpus (no contention)",
    )

    @model_validator(mode="after")
    def _busy_within_cores(self) -> SimBackendSpec:
        if self.shared_cpus_busy is not None:
            if self.shared_cpus is None:
                raise ValueError("shared_cpus_busy needs shared_cpus")
            if self.shared_cpus_busy > self.shared_cpus:
                raise ValueError(
                    f"shared_cpus_busy ({self.shared_cpus_busy:g}) is more than shared_cpus "
                    f"({self.shared_cpus}): busy cores cannot do more than each alone"
                )
        return self


class LabBackendSpec(_Strict):
    """Scale for a lab backend (netns, libvirt)."""

    scale: float = Field(default=0.001, gt=0, le=1)


class BackendsSpec(_Strict):
    """Where the scenario may run, and how it is scaled there."""

    sim: SimBackendSpec | None = Field(default_factory=SimBackendSpec)
    netns: LabBackendSpec | None = None
    libvirt: LabBackendSpec | None = None


# --------------------------------------------------------------------------- course exercises


class ExerciseText(_Strict):
    """A text in the console's two languages: Spanish (the seed's) and English."""

    es: str = Field(min_length=1, description="Spanish")
    en: str = Field(min_length=1, description="English")


class ExerciseSpec(_Strict):
    """A course exercise (``scenarios/course/``, ``ogsim course``): what the student reads.  The
    classroom is the scenario's site, the expected outcome its ``expect:``; its ``operations:``
    are the reference solution (the student's Nth operation is checked as operation N)."""

    title: ExerciseText
    task: ExerciseText
    hints: list[ExerciseText] = Field(default_factory=list, description="optional hints, in order")


# --------------------------------------------------------------------------- scenario


class ScenarioSpec(SiteSpec):
    """A scenario: a site plus name, seed, network, faults, expectations and backends."""

    name: str | None = Field(
        default=None,
        description="scenario id, the results directory's name: letters, digits, '.', '_', '-' "
        "(default: the file stem)",
        json_schema_extra={"pattern": SCENARIO_NAME, "maxLength": 100},
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and (len(v) > 100 or not re.fullmatch(SCENARIO_NAME, v)):
            raise FormatError(
                f"scenario name {v[:40]!r} is not a plain name: it names the results directory "
                "(out/<name>/), so use letters, digits, '.', '_' and '-' (at most 100), "
                "starting with a letter or digit"
            )
        return v

    description: str = ""
    seed: int = 1
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    faults: list[FaultSpec] = Field(default_factory=list)
    expect: list[ExpectSpec] = Field(default_factory=list)
    backends: BackendsSpec = Field(default_factory=BackendsSpec)
    exercise: ExerciseSpec | None = Field(
        default=None, description="a course exercise's title and task (es/en); see docs/course.md"
    )


@dataclass(frozen=True)
class Scenario:
    """A loaded scenario: the spec, the built site and each computer's resolved hardware."""

    name: str
    spec: ScenarioSpec
    site: Site
    hosts: dict[str, HostHw]
    repositories: dict[str, RepositoryHw]
    source: str = "<scenario>"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sim(self) -> SimBackendSpec:
        return self.spec.backends.sim or SimBackendSpec()


def load_scenario(path: str | Path) -> Scenario:
    """Read, validate and build a scenario file (ConfigError on any problem)."""
    p = Path(path)
    return build_scenario(read_yaml(p), source=str(p), default_name=p.stem)


def build_scenario(
    data: Any, source: str = "<scenario>", default_name: str = "scenario"
) -> Scenario:
    """Validate a parsed YAML mapping as a scenario and build it."""
    if not isinstance(data, dict):
        raise ConfigError("the document must be a mapping", source=source)
    try:
        spec = ScenarioSpec.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, source) from None
    _check_hw_layers(spec, source)
    site_keys = set(SiteSpec.model_fields)
    site_doc = {k: v for k, v in data.items() if k in site_keys}
    scale = spec.backends.sim.scale if spec.backends.sim else 1.0
    if scale != 1.0:
        site_doc = _scaled(site_doc, scale)
    site = build_site(site_doc, source=source)
    hosts: dict[str, HostHw] = {}
    for name, mapping in site.hw.items():
        try:
            hosts[name] = resolve_host(mapping)
        except ValidationError as exc:
            raise validation_error(exc, source, f"computer {name}.hw") from None
    repos: dict[str, RepositoryHw] = {}
    for i, repo in enumerate(spec.repositories):
        try:
            repos[repo.name] = RepositoryHw.model_validate(repo.hw)
        except ValidationError as exc:
            raise validation_error(exc, source, f"repositories.{i}.hw") from None
    scenario = Scenario(spec.name or safe_name(default_name), spec, site, hosts, repos, source)
    _check_references(scenario)
    return scenario


def _scaled(doc: dict[str, Any], scale: float) -> dict[str, Any]:
    """The site with every image's data and stored sizes (and a chunked image's used bytes, a
    chunked differential image's added bytes) multiplied by ``scale``."""
    out = copy.deepcopy(doc)
    for repo in out.get("repositories") or []:
        for image in repo.get("images") or []:
            for key in ("data", "stored", "added", "used"):
                if image.get(key) is not None:
                    image[key] = max(1, int(parse_size(image[key]) * scale))
    return out


def _check_hw_layers(spec: ScenarioSpec, source: str) -> None:
    layers: list[tuple[str, dict[str, Any]]] = []
    for ci, room in enumerate(spec.classrooms):
        base = f"classrooms.{ci}"
        layers.append((f"{base}.defaults.hw", room.defaults.hw))
        layers += [(f"{base}.groups.{gi}.hw", g.hw) for gi, g in enumerate(room.groups)]
        comps = room.computers
        if isinstance(comps, list):
            layers += [(f"{base}.computers.{i}.hw", c.hw) for i, c in enumerate(comps)]
        else:
            layers += [
                (f"{base}.computers.overrides.{n}.hw", o.hw) for n, o in comps.overrides.items()
            ]
    for path, mapping in layers:
        try:
            ComputerHwLayer.model_validate(mapping)
        except ValidationError as exc:
            raise validation_error(exc, source, path) from None


def _check_references(sc: Scenario) -> None:
    known = {c.name for c in sc.site.computers}
    repos = {r.name for r in sc.site.repositories}

    def check(names: list[str] | None, path: str, allow_repo: bool = False) -> None:
        for n in names or []:
            if n in known or (allow_repo and n in repos):
                continue
            raise ConfigError(f"unknown computer {n!r}", source=sc.source, path=path)

    for i, f in enumerate(sc.spec.faults):
        body = getattr(f, f.kind)
        if hasattr(body, "target"):
            check(body.target, f"faults.{i}.{f.kind}.target", allow_repo=True)
        if isinstance(body, RepositoryRestartFault) and body.repository not in repos:
            raise ConfigError(
                f"unknown repository {body.repository!r}",
                source=sc.source,
                path=f"faults.{i}.repository_restart.repository",
            )
    for i, e in enumerate(sc.spec.expect):
        body = getattr(e, e.kind)
        for attr in ("computers", "except_"):
            names = getattr(body, attr, None)
            if isinstance(names, list):
                check(names, f"expect.{i}.{e.kind}.{attr.rstrip('_')}")
        indices = [getattr(body, "operation", None)]
        if isinstance(body, OrderExpect):
            indices = [body.first, body.then]
        elif isinstance(body, list):
            indices = list(body)
        for op in indices:
            if op is None or op < len(sc.site.operations):
                continue
            raise ConfigError(
                f"operation {op} does not exist (the scenario has {len(sc.site.operations)})",
                source=sc.source,
                path=f"expect.{i}.{e.kind}.operation",
            )


def schema() -> dict[str, Any]:
    """The JSON schema of scenario files (for editors)."""
    out = ScenarioSpec.model_json_schema(by_alias=True)
    out["$id"] = "https://oglab.example/ogsim/scenario.schema.json"
    out["title"] = "ogLab scenario"
    return out


def schema_text() -> str:
    """The schema as the text stored in ``ogsim/scenario.schema.json``."""
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    """Regenerate the stored JSON schema."""
    path.write_text(schema_text(), encoding="utf-8")
    return path


__all__ = [
    "BackendsSpec",
    "ExerciseSpec",
    "ExerciseText",
    "ExpectSpec",
    "FaultSpec",
    "Rate",
    "Scenario",
    "ScenarioSpec",
    "SimBackendSpec",
    "build_scenario",
    "load_scenario",
    "schema",
    "write_schema",
]
