"""Simulated computers speaking to a real console service: one agent per computer, each with its
own credential (issued by the service's console, as the labs register theirs) and the real
:class:`ogref.agent.link.ServiceLink` — signed, numbered, long-polling ``sync`` requests.

An agent runs no imaging.  A command it receives is played back from what the simulator
predicted for that computer in that operation (:mod:`ogsim.prediction`), in wall-clock time
``speed`` times faster: the status goes BSY, each phase's start is a new stage (the service
hears of it at once), the predicted tracking-log lines are sent as they come due, and at the
predicted end the result — code, message, method used, reasons, phases (in wall-clock time),
bytes — is reported as a live client reports it.  A clone's MASTER announces its image at once
and ends when its operation's last target does; a create's result carries the image it made
(so the service publishes it); a boot leaves the computer in the booted OS's status, until a
reboot.  A command the prediction has no record for is reported failed.

Bounded: one link thread per computer and one timer thread for every agent's timed steps.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ogref.agent.link import ServiceLink
from ogref.errors import OgErr
from ogref.model import ClientStatus
from ogref.service.keys import save_private_key
from ogsim.lab.console import Console
from ogsim.prediction import Prediction
from ogsim.results import ComputerResult

Json = dict[str, Any]


class Timer:
    """One thread running callables at wall-clock instants (in time order)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._count = itertools.count()
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="fleet-timer", daemon=True)
        self._thread.start()

    def at(self, when: float, fn: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._count), fn))
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (not self._heap or self._heap[0][0] > time.time()):
                    delay = self._heap[0][0] - time.time() if self._heap else None
                    self._cond.wait(delay)
                if self._stop:
                    return
                _, _, fn = heapq.heappop(self._heap)
            fn()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(5)


@dataclass
class SimAgent:
    """One simulated computer's live client (see the module docstring)."""

    name: str
    ip: str
    fleet: Fleet
    link: ServiceLink | None = None
    status: ClientStatus = ClientStatus.OPG
    command_id: str = ""
    stage: str = ""
    transfer: tuple[float, float, float] = (0.0, 0.0, 0.0)  # wall start, wall end, bytes
    started: float = 0.0
    commands: int = 0
    received: list[tuple[float, Json]] = field(default_factory=list)

    def state(self) -> Json:
        activity: Json = {}
        if self.command_id:
            start, end, total = self.transfer
            frac = (
                0.0 if end <= start else min(1.0, max(0.0, (time.time() - start) / (end - start)))
            )
            activity = {"id": self.command_id, "stage": self.stage, "done": total * frac,
                        "total": total}  # fmt: skip
        return {"status": str(self.status), "ip": self.ip, "activity": activity}

    def busy(self) -> bool:
        return bool(self.command_id)

    # ------------------------------------------------------------------ commands

    def on_command(self, cmd: Json) -> None:
        """From the link thread: take the command and schedule its predicted steps."""
        now = time.time()
        self.received.append((now, cmd))
        if self.fleet.on_receive is not None:
            self.fleet.on_receive(self.name, cmd, now)
        kind = str(cmd.get("kind", ""))
        link = self.link
        assert link is not None
        if kind == "halt":
            self.status = ClientStatus.OFF
            link.stop.set()
            return
        if kind in ("reboot", "poweroff"):
            link.log(f"{kind} requested by the service")
            self.status = ClientStatus.OFF if kind == "poweroff" else ClientStatus.OPG
            link.nudge()
            if kind == "poweroff":

                def off() -> None:
                    link.flush(5)
                    link.stop.set()

                self.fleet.timer.at(now, off)
            return
        self.commands += 1
        self.command_id = str(cmd.get("id", ""))
        self.status = ClientStatus.BSY
        self.stage = kind
        self.started = now
        link.nudge()
        prediction = self.fleet.prediction
        index = prediction.match(cmd, self.name)
        if index is None:
            self._finish(cmd, {"code": int(OgErr.GENERIC),
                               "message": "the simulator predicted nothing for this command"})  # fmt: skip
            return
        if kind == "clone_source":
            self._master(cmd, index)
            return
        rec = prediction.record(index, self.name)
        if rec is None:
            self._finish(cmd, {"code": int(OgErr.GENERIC),
                               "message": f"the simulator has no record of {self.name} in "
                               f"operation {index}"})  # fmt: skip
            return
        self._play(cmd, rec)

    def _wall(self, t: float, s0: float) -> float:
        return self.started + (t - s0) / self.fleet.speed

    def _play(self, cmd: Json, rec: ComputerResult) -> None:
        """The predicted record of this computer, in wall-clock time ``speed`` times faster."""
        timer, link, s0 = self.fleet.timer, self.link, rec.started
        assert link is not None
        moving = next((p for p in rec.phases if p.bytes > 0), None)
        if moving is not None:
            self.transfer = (self._wall(moving.start, s0), self._wall(moving.end, s0), moving.bytes)
        for p in sorted(rec.phases, key=lambda p: p.start):
            timer.at(self._wall(p.start, s0), functools.partial(self._set_stage, p.name))
        for line in rec.log:
            timer.at(self._wall(line.t, s0), functools.partial(link.log, line.text))
        end = rec.finished
        if end is None:
            end = max([p.end for p in rec.phases] + [s0])
        timer.at(self._wall(end, s0), lambda: self._finish(cmd, self._result(cmd, rec, s0)))

    def _set_stage(self, name: str) -> None:
        if self.command_id:
            self.stage = name
            if self.link is not None:
                self.link.nudge()

    def _result(self, cmd: Json, rec: ComputerResult, s0: float) -> Json:
        code = (
            rec.code if rec.code is not None else (0 if rec.status == "ok" else int(OgErr.GENERIC))
        )
        out: Json = {
            "code": code,
            "message": rec.message or ("" if code == 0 else f"{rec.status} in the simulation"),
            "requested": rec.method_requested,
            "method_used": rec.method_used,
            "switched": rec.switched,
            "reasons": list(rec.fallback_reasons),
            "bytes_moved": int(rec.bytes_moved),
            "checksum_verified": rec.checksum_verified,
            "phases": [
                {
                    "name": p.name,
                    "start": self._wall(p.start, s0),
                    "end": self._wall(p.end, s0),
                    "bytes": p.bytes,
                    "detail": p.detail,
                }
                for p in rec.phases
            ],
        }
        if rec.os_hostname:
            out["os_hostname"] = rec.os_hostname
        if cmd.get("kind") == "create" and code == 0:
            out["image"] = self.fleet.created_image(self.name, cmd, rec)
        if cmd.get("kind") == "boot" and code == 0:
            out["os_status"] = str((cmd.get("boot") or {}).get("status", ""))
        return out

    def _master(self, cmd: Json, index: int) -> None:
        """A clone's MASTER: announces its image now, ends with the operation's last target."""
        link = self.link
        assert link is not None
        clone = cmd.get("clone") or {}
        image = {"name": str(clone.get("image", "")), "os_name": str(clone.get("os_name", ""))}
        link.ready(str(cmd["id"]), image)
        start, end = self.fleet.prediction.span(index)
        message = f"partition sent by multicast ({clone.get('multicast', '')})"
        self.fleet.timer.at(
            self._wall(end, start),
            lambda: self._finish(cmd, {"code": 0, "message": message, "phases": [
                {"name": "send", "start": self.started, "end": time.time(), "bytes": 0,
                 "detail": "multicast"}]}),
        )  # fmt: skip

    def _finish(self, cmd: Json, result: Json) -> None:
        result.setdefault("started", self.started)
        result["finished"] = time.time()
        booted = result.get("os_status")
        self.status = ClientStatus(booted) if booted in ("LNX", "WIN") else ClientStatus.OPG
        self.command_id, self.stage, self.transfer = "", "", (0.0, 0.0, 0.0)
        if self.link is not None:
            self.link.log(f"finished: code {result['code']}: {result.get('message', '')}")
            self.link.done(str(cmd["id"]), result)


class Fleet:
    """One :class:`SimAgent` per computer of the prediction's scenario (or of ``names``)."""

    def __init__(
        self,
        prediction: Prediction,
        console: Console,
        url: str,
        work: Path,
        speed: float,
        *,
        names: list[str] | None = None,
        idle_wait: float = 2.0,
        on_receive: Callable[[str, Json, float], None] | None = None,
    ) -> None:
        self.prediction = prediction
        self.speed = speed
        self.on_receive = on_receive
        self.timer = Timer()
        work.mkdir(parents=True, exist_ok=True)
        server_public = console.server_public()
        site = prediction.scenario.site
        self.agents: dict[str, SimAgent] = {}
        for pc in site.computers:
            if names is not None and pc.name not in names:
                continue
            key = work / f"{pc.name}.pem"
            save_private_key(key, console.register(pc.name))
            agent = SimAgent(pc.name, pc.ip.split("/")[0], self)
            agent.link = ServiceLink(
                url, pc.name, key, server_public, work / f"{pc.name}.seq",
                state=agent.state, on_command=agent.on_command, busy=agent.busy,
                idle_wait=idle_wait,
            )  # fmt: skip
            self.agents[pc.name] = agent

    def start(self) -> None:
        for agent in self.agents.values():
            assert agent.link is not None
            agent.link.start()

    def busy(self) -> bool:
        """Whether an agent runs a command or has something left to tell."""
        return any(
            a.command_id or (a.link is not None and not a.link.outbox.empty())
            for a in self.agents.values()
        )

    def created_image(self, name: str, cmd: Json, rec: ComputerResult) -> Json:
        """What a simulated create made (the service publishes it in the catalogue)."""
        c = cmd.get("create") or {}
        pc = self.prediction.scenario.site.computer(name)
        part = pc.disks.partition(int(c.get("disk", 1)), int(c.get("partition", 1)))
        used = part.used if part is not None and part.used else int(rec.bytes_moved)
        return {
            "name": str(c.get("image", "")),
            "filesystem": str(part.filesystem) if part is not None else "EXT4",
            "data_size": used,
            "stored_size": int(rec.bytes_moved),
            "compressor": "ZSTD",
            "checksum": "",
            "os_name": "",
        }

    def close(self) -> None:
        """Stop every link (all at once: each may be in a long poll), then the timer."""
        links = [a.link for a in self.agents.values() if a.link is not None]
        for link in links:
            link.stop.set()
            link.wake.set()
        for link in links:
            link.close()
        self.timer.close()
