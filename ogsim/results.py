"""``results.json``: the one record every backend writes (sim, netns, libvirt).

Per operation and per computer: phases with start/end times, method requested and used, fallback
reasons, bytes moved, checksums verified, final status with the OpenGnSys code and message, and
the tracking log; plus link-utilisation series and run metrics.  Times are seconds from the
scenario start.  Reports and expectations read only this.  No simulation here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
RESULTS_SCHEMA_PATH = Path(__file__).with_name("results.schema.json")

Status = Literal["ok", "failed", "crashed", "refused", "not_started"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Phase(_Record):
    """One step of a computer's operation (inspect, wait, barrier, fetch, seed, restore…)."""

    name: str
    start: float
    end: float
    bytes: float = 0.0
    detail: str = ""


class LogLine(_Record):
    """A tracking-log line with its time."""

    t: float
    text: str


class ComputerResult(_Record):
    """What one computer did in one operation."""

    name: str
    classroom: str = ""
    group: str = ""
    method_requested: str | None = None
    method_used: str | None = None
    switched: bool = False
    fallback_reasons: list[str] = Field(default_factory=list)
    phases: list[Phase] = Field(default_factory=list)
    bytes_moved: float = 0.0
    checksum_verified: bool | None = None
    status: Status = "not_started"
    code: int | None = None
    message: str = ""
    started: float = 0.0
    finished: float | None = None
    os_hostname: str | None = Field(
        default=None, description="hostname the booted (restored) OS reported, boot operations"
    )
    os_firmware: str | None = Field(
        default=None, description="firmware the booted OS found itself on (bios, uefi)"
    )
    os_secure_boot: bool | None = Field(
        default=None, description="the booted OS reported Secure Boot enforced"
    )
    log: list[LogLine] = Field(default_factory=list)


class OperationResult(_Record):
    """One console command over its scope."""

    index: int
    kind: str
    at: float
    image: str | None = None
    method: str | None = None
    scope: str = ""
    computers: list[ComputerResult] = Field(default_factory=list)
    makespan: float | None = None


class LinkSeries(_Record):
    """Utilisation of a shared link: piecewise-constant rate (bits/s) from each time on."""

    name: str
    capacity_bps: float
    t: list[float] = Field(default_factory=list)
    bps: list[float] = Field(default_factory=list)


class Metrics(_Record):
    """Run metrics."""

    makespan_s: float = 0.0
    computers: int = 0
    ok: int = 0
    failed: int = 0
    bytes_total: float = 0.0
    events: int = 0
    wall_s: float = 0.0
    events_per_s: float = 0.0
    peak_rss_mb: float = 0.0
    extra: dict[str, Any] = Field(default_factory=dict)


class HostRecord(_Record):
    """The host a lab backend ran on: its kernel, each capability as the run saw it
    (:mod:`ogsim.lab.capabilities`), and what the run only approximated or how it did it."""

    kernel: str = ""
    capabilities: dict[str, bool] = Field(default_factory=dict)
    assumed_missing: list[str] = Field(
        default_factory=list, description="capabilities treated as missing ($OGSIM_ASSUME_MISSING)"
    )
    notes: list[str] = Field(default_factory=list)


class Results(_Record):
    """The whole run."""

    schema_version: int = SCHEMA_VERSION
    scenario: str
    description: str = ""
    backend: Literal["sim", "netns", "libvirt"] = "sim"
    seed: int = 0
    scale: float = 1.0
    operations: list[OperationResult] = Field(default_factory=list)
    links: list[LinkSeries] = Field(default_factory=list)
    metrics: Metrics = Field(default_factory=Metrics)
    events: list[LogLine] = Field(default_factory=list)
    host: HostRecord | None = Field(default=None, description="lab backends: the host's kernel")

    def last_by_computer(self) -> dict[str, ComputerResult]:
        """Each computer's record in the last operation that involved it."""
        out: dict[str, ComputerResult] = {}
        for op in self.operations:
            for c in op.computers:
                out[c.name] = c
        return out

    def write(self, path: Path) -> Path:
        """Write as JSON (stable key order)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: Path) -> Results:
        """Read a results.json."""
        return cls.model_validate_json(path.read_text(encoding="utf-8"))


def results_schema_text() -> str:
    """The JSON schema of results.json."""
    schema = Results.model_json_schema()
    schema["title"] = "ogLab results"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
