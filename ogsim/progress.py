"""Live progress of a run: the events every backend emits while it runs, and the three ways
``ogsim run`` shows them (a live rich view on a terminal, one plain line per event elsewhere,
JSON lines for scripts).

One vocabulary for the simulator (virtual time), the namespace lab and the VM lab (wall time,
from what the agents already report — status, stage, bytes — through the server):

- :class:`StageEvent` — the lab being prepared: ``network``, ``images``, ``services``,
  ``agents``, ``vms`` (with ``done``/``total`` where it counts things), then ``run``;
- :class:`OperationEvent` — a console command submitted, refused or ended, worded like the
  console ("restore win10 UNICAST-DIRECT → aula1 (35 computers)");
- :class:`ComputerEvent` — a computer's status colour, stage (inspect, fetch, restore,
  postconf, boot…), bytes done and expected, the method it uses, a switch and its reason, its
  end (code and message).

Views keep the latest state per computer and derive rates and ETAs themselves.  This module
draws; it runs nothing and decides nothing.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import IO, Any, Literal, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ogref.model import ClientStatus
from ogref.units import format_duration, format_size


@dataclass(frozen=True)
class StageEvent:
    """The lab is preparing: ``stage`` (network, images, services, agents, vms, run)."""

    stage: str
    detail: str = ""
    done: int = 0
    total: int = 0
    t: float = 0.0
    kind: Literal["stage"] = "stage"


@dataclass(frozen=True)
class OperationEvent:
    """A console command: ``state`` submitted, refused or ended."""

    index: int
    text: str
    state: Literal["submitted", "refused", "ended"] = "submitted"
    computers: int = 0
    t: float = 0.0
    kind: Literal["operation"] = "operation"


@dataclass(frozen=True)
class ComputerEvent:
    """What one computer is doing now (``status``: OpenGnSys's status code)."""

    name: str
    status: str
    stage: str = ""
    done: float = 0.0
    total: float = 0.0
    method: str = ""
    note: str = ""  # a switch and its reason, or the end's message
    code: int | None = None
    final: bool = False
    t: float = 0.0
    kind: Literal["computer"] = "computer"


Event = StageEvent | OperationEvent | ComputerEvent
Emit = Callable[[Event], None]


def nothing(_event: Event) -> None:
    """The emitter of a run nobody watches."""


def operation_text(kind: str, spec: Any, computers: int) -> str:
    """A command as the console words it: ``restore win10 UNICAST-DIRECT → aula1 (35 computers)``."""
    from ogref.console import scope_label

    parts = [kind.replace("_", " ")]
    for attr in ("image", "method"):
        value = getattr(spec, attr, None)
        if value:
            parts.append(str(value))
    if getattr(spec, "master", None):
        parts.append(f"from {spec.master}")
    to = getattr(spec, "to", None)
    where = scope_label(to) if to is not None else str(getattr(spec, "computer", ""))
    return f"{' '.join(parts)} → {where} ({computers} computer{'s' if computers != 1 else ''})"


# --------------------------------------------------------------------------- state


@dataclass
class _Seat:
    event: ComputerEvent
    since: float  # wall time the stage began
    rate: float = 0.0  # bytes/s, smoothed
    last_done: float = 0.0
    last_t: float = 0.0


@dataclass
class RunState:
    """The latest of everything, as the views need it."""

    stage: StageEvent | None = None
    operations: list[OperationEvent] = field(default_factory=list)
    seats: dict[str, _Seat] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def update(self, ev: Event) -> None:
        now = time.monotonic()
        if isinstance(ev, StageEvent):
            self.stage = ev
        elif isinstance(ev, OperationEvent):
            self.operations.append(ev)
        else:
            seat = self.seats.get(ev.name)
            if seat is None or seat.event.stage != ev.stage:
                seat = _Seat(ev, now, last_done=ev.done, last_t=ev.t)
            else:
                dt = ev.t - seat.last_t
                if dt > 0 and ev.done >= seat.last_done:
                    inst = (ev.done - seat.last_done) / dt
                    seat.rate = inst if not seat.rate else 0.6 * seat.rate + 0.4 * inst
                    seat.last_done, seat.last_t = ev.done, ev.t
                seat.event = ev
            self.seats[ev.name] = seat

    def counts(self) -> dict[str, int]:
        out = {"done": 0, "failed": 0, "running": 0}
        for s in self.seats.values():
            e = s.event
            if e.final:
                out["done" if e.code == 0 else "failed"] += 1
            elif e.stage:
                out["running"] += 1
        return out


def _colour(status: str) -> str:
    try:
        return {"grey": "grey50", "yellow": "yellow", "red": "red", "blue": "blue",
                "maroon": "dark_red"}.get(ClientStatus(status).colour, "white")  # fmt: skip
    except ValueError:
        return "white"


def _eta(seat: _Seat) -> str:
    e = seat.event
    if seat.rate <= 0 or not e.total or e.done >= e.total:
        return ""
    return format_duration(round((e.total - e.done) / seat.rate))


# --------------------------------------------------------------------------- views


class LiveView:
    """A rich live view: the lab's stage, one line per computer (grouped counts and the slowest
    beyond ``rows`` computers), and a summary line."""

    def __init__(self, console: Console, rows: int = 20) -> None:
        self.console = console
        self.state = RunState()
        self.rows = rows
        self.live = Live(console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.update(self.render())
        self.live.__exit__(*exc)  # type: ignore[arg-type]

    def __call__(self, ev: Event) -> None:
        self.state.update(ev)
        self.live.update(self.render())

    def render(self) -> RenderableType:
        st = self.state
        parts: list[RenderableType] = []
        if st.stage is not None and st.stage.stage != "run":
            s = st.stage
            count = f" {s.done}/{s.total}" if s.total else ""
            parts.append(Text(f"⏳ {s.stage}{count} {s.detail}", style="bold"))
        for op in st.operations[-3:]:
            parts.append(Text(f"▶ {op.state}: {op.text}", style="cyan"))
        seats = list(st.seats.values())
        if seats:
            parts.append(self._table(seats))
        c = st.counts()
        rate = sum(s.rate for s in seats if not s.event.final)
        elapsed = format_duration(round(time.monotonic() - st.started))
        parts.append(
            Text(
                f"{c['done']} done · {c['failed']} failed · {c['running']} running · "
                f"{format_size(rate)}/s · {elapsed}"
            )
        )
        return Group(*parts)

    def _table(self, seats: list[_Seat]) -> Table:
        table = Table(box=None, pad_edge=False, show_header=True, header_style="dim")
        for col in ("computer", "", "stage", "bytes", "rate", "eta", "note"):
            table.add_column(col, no_wrap=col != "note", overflow="fold")
        shown = seats
        if len(seats) > self.rows:  # failures first, then the slowest still running
            failed = [s for s in seats if s.event.final and s.event.code != 0]
            running = [s for s in seats if not s.event.final]
            slowest = sorted(
                running, key=lambda s: s.event.done / s.event.total if s.event.total else 0.0
            )
            shown = (failed + slowest)[: self.rows // 2]
        for s in shown:
            e = s.event
            size = f"{format_size(e.done)}/{format_size(e.total)}" if e.total else ""
            table.add_row(
                e.name,
                Text("●", style=_colour(e.status)),
                e.stage if not e.final else ("ok" if e.code == 0 else f"error {e.code}"),
                size,
                f"{format_size(s.rate)}/s" if s.rate else "",
                _eta(s),
                e.note,
            )
        if len(shown) < len(seats):
            groups: dict[str, int] = {}
            for s in seats:
                key = (
                    "done"
                    if s.event.final and s.event.code == 0
                    else ("failed" if s.event.final else s.event.stage or "waiting")
                )
                groups[key] = groups.get(key, 0) + 1  # fmt: skip
            table.caption = "  ".join(f"{k}: {v}" for k, v in sorted(groups.items())) + (
                f"  (failures and the slowest shown: {len(shown)})" if shown else ""
            )
        return table


class LineView:
    """One plain line per change of stage, status or end (no control characters): for logs,
    CI and pipes.  Beyond ``limit`` computers only failures and switches are told one by one,
    plus a summary line at each tenth of the computers ended."""

    def __init__(self, out: TextIO | None = None, limit: int = 60) -> None:
        self.out = out or sys.stderr
        self.state = RunState()
        self.limit = limit
        self._said: dict[str, tuple[str, str, bool]] = {}
        self._tenths = 0

    def __call__(self, ev: Event) -> None:
        self.state.update(ev)
        line = ""
        if isinstance(ev, StageEvent):
            count = f" {ev.done}/{ev.total}" if ev.total else ""
            line = f"[{ev.t:9.3f}] stage {ev.stage}{count} {ev.detail}".rstrip()
        elif isinstance(ev, OperationEvent):
            line = f"[{ev.t:9.3f}] operation {ev.index} {ev.state}: {ev.text}"
        else:
            key = (ev.stage, ev.status, ev.final)
            if self._said.get(ev.name) == key and not ev.note:
                return
            self._said[ev.name] = key
            expected = sum(op.computers for op in self.state.operations if op.state == "submitted")
            many = max(len(self.state.seats), expected) > self.limit
            if many and ev.final:
                self._summary(ev.t)
            if many and not (ev.final and ev.code != 0) and not ev.note.startswith("switched"):
                return
            what = (
                f"ended {'ok' if ev.code == 0 else f'with error {ev.code}'}"
                if ev.final
                else f"{ev.stage or 'waiting'}"
            )
            size = f" {format_size(ev.done)}/{format_size(ev.total)}" if ev.total else ""
            note = f" — {ev.note}" if ev.note else ""
            line = f"[{ev.t:9.3f}] {ev.name} {ev.status} {what}{size}{note}"
        self.out.write(line + "\n")
        self.out.flush()

    def _summary(self, t: float) -> None:
        c = self.state.counts()
        ended = c["done"] + c["failed"]
        tenths = ended * 10 // max(1, len(self.state.seats))
        if tenths > self._tenths:
            self._tenths = tenths
            self.out.write(
                f"[{t:9.3f}] {ended}/{len(self.state.seats)} computers ended: {c['done']} ok, "
                f"{c['failed']} failed, {c['running']} running\n"
            )


class JsonView:
    """Every event as one JSON object per line."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def __call__(self, ev: Event) -> None:
        self.out.write(json.dumps(asdict(ev), sort_keys=True) + "\n")
        self.out.flush()


def fan_out(*emitters: Emit) -> Emit:
    """One emitter feeding several views."""

    def emit(ev: Event) -> None:
        for e in emitters:
            e(ev)

    return emit
