"""The service's engine: OpenGnSys's ogAdmServer role — plans console commands, hands each
computer its part when the command queue allows, takes the agents' reports, keeps every
record in the database, and notices computers that vanish.

One agent request carries everything (``sync``): its status and what it is doing, its
tracking-log lines, the results of finished commands, a MASTER's "ready"; the answer is its next
command, held back up to ``wait`` seconds when there is none (a long poll: a command submitted
for an idle computer starts at once).  Reboot, power-off and halt go before any operation; an
operation waits while the computer runs an installed OS (LNX/WIN) rather than the live client.
When each computer's part may start is :mod:`ogref.command_queue`'s rule (the simulator's too).

State: operations, records, log lines, OS reports and computers' status live in the database
(:mod:`.store`), so a restarted service picks up where it stopped — running parts keep waiting
for their agents' results, queued ones are queued again in submission order.  What is only
in memory: the command queue (rebuilt at start), each computer's live state (status history,
activity, the commands released to it), and the events that wake long polls.  Everything runs
on one event loop thread; database calls are short and made in place.

Not here: HTTP, authentication (:mod:`.app`, :mod:`.keys`), planning rules (:mod:`ogref.console`,
:mod:`ogref.core`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from ogref.command_queue import CommandQueue, Job
from ogref.console import build_requests, job, operation_for, plan_boot, plan_clone
from ogref.errors import OgErr, OgError
from ogref.model import ClientStatus, Transport
from ogref.service import db, store
from ogref.service.db import Database, from_epoch
from ogref.service.site_io import load_site
from ogref.site import BootSpec, CloneSpec, CreateSpec, OperationSpec, RestoreSpec, Site

Json = dict[str, Any]
KINDS = ("restore", "deploy", "update_cache", "create", "clone", "boot")
CONTROL = ("halt", "reboot", "poweroff")
OS_STATUSES = (ClientStatus.LNX, ClientStatus.WIN)


class RefusedError(ValueError):
    """A command the service does not carry out (not an OpenGnSys refusal: those are OgError)."""


@dataclass
class Live:
    """What the service knows of one computer right now (not persisted but its status)."""

    name: str
    ip: str = ""
    status: ClientStatus = ClientStatus.OFF
    last_seen: float = 0.0
    current: str | None = None  # the command id it runs
    sent_at: float = 0.0
    outbox: deque[Json] = field(default_factory=deque)  # operation commands it may take
    control: deque[Json] = field(default_factory=deque)  # reboot / poweroff / halt
    activity: Json = field(default_factory=dict)
    history: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=64))
    os_reports: list[Json] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dirty: bool = False  # status or last-seen to write
    session: str = ""  # the running live client's start (a reboot starts another)
    # a real boot whose result waits for the OS: (op id, the agent's result, its session)
    booting: tuple[int, Json, str] | None = None

    def set_status(self, status: ClientStatus, when: float) -> None:
        if status != self.status or not self.history:
            self.history.append((when, str(status)))
            self.dirty = True
        self.status = status


@dataclass
class _Op:
    """What the engine keeps of an unfinished operation in memory."""

    id: int
    kind: str
    source: str | None = None  # a clone's MASTER
    ready: Json | None = None  # what the MASTER announced it sends
    held: list[tuple[str, Json]] = field(default_factory=list)  # targets waiting for it


def _epoch(value: Any) -> float | None:
    return value.timestamp() if value is not None else None


class Engine:
    """The server role over a database (see the module docstring)."""

    def __init__(
        self,
        database: Database,
        *,
        heartbeat_timeout: float = 15.0,
        command_timeout: float = 3600.0,
        clock: Callable[[], float] = time.time,
        server_key: Any = None,
    ) -> None:
        self.db = database
        self.server_key = server_key  # signs the repository's capability tokens
        self.heartbeat_timeout = heartbeat_timeout
        self.command_timeout = command_timeout
        self.clock = clock
        with database.reading() as s:
            self.site: Site = load_site(s)
            rows = s.execute(select(db.Computer.name, db.Computer.address, db.Computer.status))
            self.live = {
                name: Live(name, address or "", ClientStatus(status or "OFF"))
                for name, address, status in rows
            }
        self.queue = CommandQueue()
        self.pending: dict[Job, tuple[int, str, Json]] = {}  # job → (operation, computer, cmd)
        self.jobs: dict[str, Job] = {}  # command id → job
        self.ops: dict[int, _Op] = {}
        self.told: dict[Job, str] = {}
        self._lines: list[store.NewLogLine] = []
        self._unsent: list[tuple[int, str, Any]] = []  # handed out, to mark sent (one batch)
        self._sent_written: asyncio.Future[None] | None = None
        self.seqs: dict[str, int] = {}  # agents' replay counters to write (the app keeps them)
        # what a result says beyond the record's columns (a create's image), by command id
        self.extras: dict[str, Json] = {}
        self._restore_state()

    # ------------------------------------------------------------------ start-up

    def _restore_state(self) -> None:
        """Rebuild the command queue from the unfinished operations (a restarted service)."""
        with self.db.reading() as s:
            unfinished = store.unfinished_operations(s)
        for view in unfinished:
            op = _Op(view.id, view.kind)
            jobs = []
            for r in view.records:
                if r.role == "source":
                    op.source = r.computer
                    if r.ready_at is not None:
                        op.ready = {"name": r.computer, "ip": self.live[r.computer].ip}
                if r.final:
                    continue
                j = r.job
                jobs.append(j)
                cmd = self._command(view.id, r.computer, r.command)
                self.pending[j] = (view.id, r.computer, cmd)
                self.jobs[cmd["id"]] = j
                if r.sent_at is not None:  # the agent was running it: it will report
                    self.live[r.computer].current = cmd["id"]
                    self.live[r.computer].sent_at = r.sent_at.timestamp()
            self.ops[view.id] = op
            if jobs:
                self.queue.submit(jobs)
        for j in self.queue.startable():
            _op_id, name, cmd = self.pending[j]
            if self.live[name].current == cmd["id"]:
                del self.pending[j]  # running: nothing to deliver
            else:
                self._deliver(j)
        # a restarted service has not heard from anyone yet: every computer with work in hand
        # gets a heartbeat period from now to report, as if it had just been seen
        now = self.clock()
        for live in self.live.values():
            if live.current is not None or live.outbox:
                live.last_seen = now

    def reload_site(self) -> None:
        """Re-read the site after its configuration changed in the database (a computer or a
        classroom added or removed): new computers start OFF, removed ones are forgotten."""
        with self.db.reading() as s:
            self.site = load_site(s)
            rows = list(s.execute(select(db.Computer.name, db.Computer.address)))
        names = set()
        for name, address in rows:
            names.add(name)
            if name not in self.live:
                self.live[name] = Live(name, address or "")
        for name in list(self.live):
            if name not in names:
                del self.live[name]

    # ------------------------------------------------------------------ console: submit

    @staticmethod
    def _command(op_id: int, name: str, template: Json) -> Json:
        return {**template, "id": f"{op_id}/{name}", "op": op_id}

    def submit(self, index: int, user_id: int | None = None) -> Json:
        """Plan the site's operation ``index`` (its ``operations:`` list) and queue it."""
        if not 0 <= index < len(self.site.operations):
            raise RefusedError(f"the site has no operation {index}")
        return self.submit_spec(self.site.operations[index], user_id, site_index=index)

    def submit_spec(
        self, spec: OperationSpec, user_id: int | None = None, site_index: int | None = None
    ) -> Json:
        """Plan one console command (a Restore form, a wizard, a create…) and queue it.  A
        command the console refuses (a repository mismatch, a partition that does not exist…)
        is answered ``refused`` with its OpenGnSys code, and recorded as such."""
        if spec.kind not in KINDS:
            raise RefusedError(f"the service does not run {spec.kind} operations")
        try:
            records, jobs = self._plan(spec)
        except OgError as exc:
            names = self._scope(spec)
            refused = [
                store.NewRecord(n, status="refused", code=int(exc.code), message=exc.message,
                                final=True)
                for n in names
            ]  # fmt: skip
            with self.db.transaction() as s:
                view = store.create_operation(
                    s, spec.kind, spec.model_dump(mode="json", exclude_none=True)[spec.kind],
                    refused, site_index=site_index, submitted_by=user_id,
                )  # fmt: skip
            return {
                "op": view.id,
                "computers": names,
                "refused": {"code": int(exc.code), "message": exc.message},
            }
        body = getattr(spec, spec.kind)
        with self.db.transaction() as s:
            view = store.create_operation(
                s,
                spec.kind,
                body.model_dump(mode="json", exclude_none=True),
                records,
                site_index=site_index,
                submitted_by=user_id,
            )
        op = _Op(view.id, spec.kind)
        op.source = next((r.computer for r in view.records if r.role == "source"), None)
        self.ops[view.id] = op
        final = {r.computer for r in view.records if r.final}
        queued = []
        for rec, j0 in zip(records, jobs, strict=True):
            if rec.computer in final:
                continue
            j = Job(view.id, j0.computer, j0.reads, j0.writes, j0.session)
            cmd = self._command(view.id, rec.computer, rec.command)
            self.pending[j] = (view.id, rec.computer, cmd)
            self.jobs[cmd["id"]] = j
            queued.append(j)
        if queued:
            self.queue.submit(queued)
        self._release()
        return {"op": view.id, "computers": [r.computer for r in view.records]}

    def _scope(self, spec: OperationSpec) -> list[str]:
        body = getattr(spec, spec.kind)
        if isinstance(body, CreateSpec):
            return [body.computer]
        try:
            return [pc.name for pc in self.site.scope(body.to)]
        except OgError:
            return []

    def _plan(self, spec: OperationSpec) -> tuple[list[store.NewRecord], list[Job]]:
        """One record per computer (with its command template) and its command-queue job."""
        kind = spec.kind
        engine_text = self.site.policy.to_text()
        body = getattr(spec, kind)
        records: list[store.NewRecord] = []
        jobs: list[Job] = []

        def add(j: Job, requested: str, cmd: Json, role: store.Role = "target") -> None:
            records.append(
                store.NewRecord.for_job(j, requested, {"kind": kind, "engine": engine_text, **cmd},
                                        role)
            )  # fmt: skip
            jobs.append(j)

        if isinstance(body, CreateSpec):
            writes = body.image if body.target == "REPO" else None
            add(job(0, body.computer, writes=writes), "create", {"create": body.model_dump()})
        elif isinstance(body, CloneSpec):
            plan = plan_clone(self.site, body)
            if plan.method.transport is not Transport.MULTICAST:
                raise RefusedError(
                    f"{plan.method} clone: a MASTER's partition is sent by multicast only "
                    "(udpcast, as OpenGnSys's ogMcastSendPartition); no unicast partition sender"
                )
            session = plan.computers[0].request.multicast
            assert session is not None
            master = body.master
            repo = self.site.repository(self.site.computer(master).repository)
            clone = {
                **body.model_dump(),
                "image": plan.image.name,
                "os_name": plan.image.os_name,
                "multicast": str(session),
                "fec": repo.multicast_fec,
            }
            add(
                Job(0, master, session=(session.address, session.port)),
                "clone-source",
                {"kind": "clone_source", "clone": clone},
                "source",
            )
            from ogref.agent.protocol import request_to_json

            for p in plan.computers:
                add(job(0, p.computer, p.request), str(p.requested),
                    {"request": request_to_json(p.request)})  # fmt: skip
        elif isinstance(body, BootSpec):
            for pc in self.site.scope(body.to):
                try:
                    bplan = plan_boot(pc, body.disk, body.partition, body.permanent)
                except OgError as exc:
                    records.append(
                        store.NewRecord(pc.name, "boot", status="failed", code=int(exc.code),
                                        message=exc.message, final=True)
                    )  # fmt: skip
                    jobs.append(job(0, pc.name))
                    continue
                boot = {
                    **body.model_dump(exclude={"to"}),
                    "status": str(bplan.status),
                    "tracked_boots": bplan.tracked_boots,
                    "steps": list(bplan.steps),
                }
                add(job(0, pc.name), "boot", {"boot": boot})
        else:
            from ogref.agent.protocol import request_to_json

            assert isinstance(body, RestoreSpec)
            for pc, req in build_requests(self.site, body, operation_for(kind)):
                add(job(0, pc.name, req), str(req.method), {"request": request_to_json(req)})
        return records, jobs

    # ------------------------------------------------------------------ the queue

    def _deliver(self, j: Job) -> None:
        op_id, name, cmd = self.pending.pop(j)
        op = self.ops.get(op_id)
        if op is not None and op.source is not None and name != op.source and op.ready is None:
            op.held.append((name, cmd))  # a clone target: held until its MASTER sends
            return
        if op is not None and op.ready is not None and name != op.source:
            cmd = {**cmd, "master": op.ready}
        live = self.live[name]
        live.outbox.append(cmd)
        live.wake.set()

    def _release(self) -> None:
        """Hand the agents what the command queue lets start; log who waits, and why."""
        for j in self.queue.startable():
            self._deliver(j)
        now = self.clock()
        for j, why in self.queue.waits().items():
            if self.told.get(j) != why:
                self.told[j] = why
                self._lines.append(
                    store.NewLogLine(j.computer, f"queued: {why}", from_epoch(now), j.op)
                )

    def _end_job(self, command_id: str) -> None:
        j = self.jobs.pop(command_id, None)
        if j is not None:
            self.pending.pop(j, None)
            self.queue.finished(j)

    # ------------------------------------------------------------------ agents

    def seen(self, name: str, body: Json) -> Live:
        live = self.live[name]
        now = self.clock()
        live.last_seen = now
        live.dirty = True
        if body.get("status"):
            live.set_status(ClientStatus(str(body["status"])), now)
        if body.get("ip"):
            live.ip = str(body["ip"]).split("/")[0]
        activity = body.get("activity")
        if isinstance(activity, dict):
            live.activity = {**activity, "t": now}
        if body.get("session"):
            live.session = str(body["session"])
            if live.booting is not None and live.booting[2] != live.session:
                self._boot_ended(live, None)  # a new live client came up instead of the OS
        return live

    def _boot_ended(self, live: Live, os_report: Json | None) -> None:
        """A real boot's record ends: ok when the OS reported, failed (6, OG_ERR_NOTOS) when
        the computer came back to a live client instead — never a success on the agent's word."""
        assert live.booting is not None
        op_id, result, _session = live.booting
        live.booting = None
        if os_report is not None:
            out = {
                **result,
                "code": 0,
                "message": f"{result.get('message', '')}; OS started: hostname "
                f"{os_report.get('hostname', '')}",
                "os_hostname": os_report.get("hostname"),
            }
        else:
            out = {
                **result,
                "code": int(OgErr.NOTOS),
                "message": f"{result.get('message', '')}; the restored OS did not start: the "
                "computer came back to the live client (boot loader refused or missing)",
            }
        out["finished"] = self.clock()
        with self.db.transaction() as s:
            store.finish_record(s, op_id, live.name, store.RecordResult.from_agent(out))

    async def sync(self, name: str, body: Json) -> Json:
        """One agent exchange (see the module docstring); the answer: its next command."""
        live = self.seen(name, body)
        for line in body.get("log") or []:
            op_id = int(live.current.split("/")[0]) if live.current else None
            self._lines.append(
                store.NewLogLine(name, str(line["text"]), from_epoch(float(line["t"])), op_id)
            )
        for done in body.get("done") or []:
            self._done(name, str(done["id"]), dict(done["result"]))
        for ready in body.get("ready") or []:
            self._ready(name, str(ready["id"]), dict(ready.get("image") or {}),
                        dict(ready.get("chunkcast") or {}))  # fmt: skip
        wait = max(0.0, min(float(body.get("wait", 0.0)), 5.0))
        command = self._next(live)
        if command is None and wait > 0:
            live.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(live.wake.wait(), wait)
            command = self._next(live)
        if command is not None and "op" in command:
            await self._sent(int(command["op"]), name, live.sent_at)
        return {"command": command}

    async def _sent(self, op_id: int, name: str, at: float) -> None:
        """Record that ``name`` was handed its part of ``op_id`` before the agent hears of it.
        Parts handed out in the same turn of the event loop (a long poll woken by a submit,
        for each of a classroom's computers) are written in one transaction."""
        self._unsent.append((op_id, name, from_epoch(at)))
        if self._sent_written is None:
            loop = asyncio.get_running_loop()
            self._sent_written = loop.create_future()
            loop.call_soon(self._write_sent)
        await asyncio.shield(self._sent_written)

    def _write_sent(self) -> None:
        batch, self._unsent = self._unsent, []
        done, self._sent_written = self._sent_written, None
        assert done is not None
        try:
            with self.db.transaction() as s:
                store.mark_sent_many(s, batch)
        except Exception as exc:  # every waiter's request fails (a 500), none is answered
            done.set_exception(exc)
            return
        done.set_result(None)

    def _next(self, live: Live) -> Json | None:
        if live.control:
            return live.control.popleft()
        if live.current is not None or not live.outbox or live.status in OS_STATUSES:
            return None
        cmd = live.outbox.popleft()
        live.current = cmd["id"]
        live.sent_at = self.clock()
        return self._with_token(live.name, cmd)  # its record is marked sent by the caller

    def _with_token(self, name: str, cmd: Json) -> Json:
        """A command that asks the repository for a multicast session carries the capability
        token the repository checks (this computer, this image, this session)."""
        request = cmd.get("request") or {}
        if (
            self.server_key is None
            or not request.get("multicast")
            or request.get("source") != "REPO"
        ):
            return cmd
        from ogref.service.keys import issue_token

        claims = {"computer": name, "image": request["image"], "session": request["multicast"],
                  "op": int(cmd["op"])}  # fmt: skip
        return {
            **cmd,
            "repository_token": issue_token(self.server_key, claims, self.command_timeout + 600),
        }

    def finish(self, name: str, command_id: str, result: Json) -> None:
        """A command's result reported outside an exchange (an agent that leaves with it)."""
        self.seen(name, {})
        self._done(name, command_id, result)

    def _done(self, name: str, command_id: str, result: Json) -> None:
        op_id = int(command_id.split("/")[0])
        made = result.get("image") if isinstance(result.get("image"), dict) else None
        if result.get("awaiting_os") and int(result.get("code", 1)) == 0:
            # a real boot: the record ends when the OS reports, or fails when the live client
            # comes back instead (_boot_ended); the computer is free for the queue now
            live = self.live[name]
            live.booting = (op_id, dict(result), live.session)
            if live.current == command_id:
                live.current = None
            self._end_job(command_id)
            self._release()
            return
        with self.db.transaction() as s:
            store.finish_record(s, op_id, name, store.RecordResult.from_agent(result))
            j = self.jobs.get(command_id)
            if made and j is not None and j.writes and int(result.get("code", 1)) == 0:
                self._publish(s, name, made)  # a create into the repository
        if made:
            self.extras[command_id] = {"image": made}
        live = self.live[name]
        if live.current == command_id:
            live.current = None
        op = self.ops.get(op_id)
        if op is not None and op.source == name and int(result.get("code", 0)) != 0:
            self._master_failed(op, int(result["code"]), str(result.get("message", "")))
        self._end_job(command_id)
        self._release()

    def _publish(self, s: Any, name: str, made: Json) -> None:
        """A create into the repository published a new version: the catalogue shows it."""
        from ogref.agent.protocol import image_from_json

        try:
            image = image_from_json({**made, "repository": self.site.computer(name).repository})
        except (KeyError, ValueError, OgError):
            return  # a create into a CACHE, or an answer without sizes: no catalogue entry
        try:
            store.add_image_version(s, image)
        except LookupError:
            return
        s.flush()
        self.site = load_site(s)

    def _ready(
        self, name: str, command_id: str, image: Json, chunkcast: Json | None = None
    ) -> None:
        """A MASTER sends: its targets get its address, the image (and a chunkcast session's
        key: held in memory only, handed to the targets' commands, never stored or shown)."""
        op = self.ops.get(int(command_id.split("/")[0]))
        if op is None or op.source != name:
            raise RefusedError(f"{name} is not the MASTER of {command_id}")
        with self.db.transaction() as s:
            store.mark_ready(s, op.id, name)
        op.ready = {"name": name, "ip": self.live[name].ip, "image": image}
        if chunkcast:
            op.ready["chunkcast"] = chunkcast
        for target, cmd in op.held:
            live = self.live[target]
            live.outbox.append({**cmd, "master": op.ready})
            live.wake.set()
        op.held.clear()

    def _master_failed(self, op: _Op, code: int, why: str) -> None:
        """The MASTER failed (or vanished) before sending: its targets fail with its code."""
        assert op.source is not None
        names = [n for n, _ in op.held] + [j.computer for j in self.queue.cancel(op.id)]
        op.held.clear()
        result = store.RecordResult(code, f"MASTER {op.source} did not send: {why}")
        with self.db.transaction() as s:
            for n in names:
                if n != op.source:
                    store.finish_record(s, op.id, n, result)
        for n in names:
            self._end_job(f"{op.id}/{n}")

    # ------------------------------------------------------------------ housekeeping

    def tick(self) -> None:
        """Every second or so: lost computers, timed-out commands, buffered writes."""
        now = self.clock()
        lost: list[tuple[Live, str]] = []
        for live in self.live.values():
            if live.current is None:
                continue
            if now - live.last_seen > self.heartbeat_timeout:
                lost.append(
                    (live, f"client stopped responding (no heartbeat for {now - live.last_seen:.0f} s)")
                )  # fmt: skip
                live.set_status(ClientStatus.OFF, now)
            elif now - live.sent_at > self.command_timeout:
                lost.append((live, f"command timed out after {self.command_timeout:.0f} s"))
        for live, why in lost:
            assert live.current is not None
            command_id, live.current = live.current, None
            op_id = int(command_id.split("/")[0])
            with self.db.transaction() as s:
                store.finish_record(
                    s, op_id, live.name, store.RecordResult(int(OgErr.GENERIC), why), lost=True
                )
            op = self.ops.get(op_id)
            if op is not None and op.source == live.name:
                self._master_failed(op, int(OgErr.GENERIC), why)
            self._end_job(command_id)
        # a part released to a computer that never appeared cannot be carried out
        never: list[Job] = []
        for live in self.live.values():
            if live.outbox and now - live.last_seen > self.heartbeat_timeout:
                for cmd in list(live.outbox):
                    never.append(self.jobs.get(cmd["id"], Job(int(cmd["op"]), live.name)))
                live.outbox.clear()
        if never:
            result = store.RecordResult(
                int(OgErr.GENERIC), "client not running (no heartbeat)", status="not_started"
            )
            with self.db.transaction() as s:
                for j in never:
                    store.finish_record(s, j.op, j.computer, result, lost=True)
            for j in never:
                self._end_job(f"{j.op}/{j.computer}")
        if lost or never:
            self._release()
        self.flush()

    def flush(self) -> None:
        """Write buffered log lines and changed statuses."""
        lines, self._lines = self._lines, []
        dirty = [live for live in self.live.values() if live.dirty]
        seqs, self.seqs = self.seqs, {}
        if not lines and not dirty and not seqs:
            return
        changed = {live.name: live for live in dirty}
        with self.db.transaction() as s:
            if lines:
                store.append_logs(s, lines)
            # one UPDATE per computer in name order: two flushes at once (housekeeping and a
            # console request) lock their rows in the same order, so PostgreSQL never finds
            # them deadlocked
            store.flush_computers(
                s,
                [
                    store.ComputerFlush(
                        name,
                        seqs.get(name),
                        changed[name].status if name in changed else None,
                        from_epoch(changed[name].last_seen or self.clock())
                        if name in changed
                        else None,
                    )
                    for name in sorted(seqs.keys() | changed.keys())
                ],
            )
        for live in dirty:
            live.dirty = False

    # ------------------------------------------------------------------ console: read

    def operation(self, op_id: int) -> Json:
        """An operation's per-computer records (and a clone's MASTER), with their logs."""
        self.flush()
        with self.db.reading() as s:
            view = store.get_operation(s, op_id)
            if view is None:
                raise KeyError(op_id)
            logs: dict[str, list[Json]] = {}
            rows = s.execute(
                select(db.Computer.name, db.LogLine.t, db.LogLine.text)
                .join(db.Computer, db.Computer.id == db.LogLine.computer_id)
                .where(db.LogLine.operation_id == op_id)
                .order_by(db.LogLine.id)
            )
            for name, t, text in rows:
                logs.setdefault(name, []).append({"t": t.timestamp(), "text": text})
        records = [self._record(r, logs.get(r.computer, [])) for r in view.records]
        targets = [r for r, v in zip(records, view.records, strict=True) if v.role == "target"]
        source = next((r for r, v in zip(records, view.records, strict=True) if v.role == "source"), None)  # fmt: skip
        return {"op": view.id, "index": view.site_index, "kind": view.kind, "done": view.done,
                "records": targets, "source": source}  # fmt: skip

    def _record(self, r: store.RecordView, log: list[Json]) -> Json:
        pc = self.site.computer(r.computer)
        out: Json = {
            "name": r.computer,
            "classroom": pc.classroom,
            "group": pc.group,
            "requested": r.requested,
            "status": r.status,
            "code": r.code,
            "message": r.message,
            "method_used": r.method_used,
            "switched": bool(r.switched),
            "reasons": list(r.reasons),
            "phases": [dict(p) for p in r.phases],
            "bytes_moved": r.bytes_moved or 0,
            "checksum_verified": r.checksum_verified,
            "final": r.final,
            "lost": r.lost,
            "log": log,
        }
        for key, value in (
            ("started", r.started_at),
            ("sent", r.sent_at),
            ("ready", r.ready_at),
            ("finished", r.finished_at),
        ):
            if value is not None:
                out[key] = value.timestamp()
        for key in ("stream_md5", "os_hostname"):
            if getattr(r, key):
                out[key] = getattr(r, key)
        out.update(self.extras.get(f"{r.operation_id}/{r.computer}", {}))
        return out

    def clients(self) -> list[Json]:
        """Every computer: status and colour, activity, status history, OS reports."""
        return [
            {
                "name": c.name,
                "ip": c.ip,
                "status": str(c.status),
                "colour": c.status.colour,
                "last_seen": c.last_seen,
                "activity": c.activity,
                "history": [list(h) for h in c.history],
                "os": list(c.os_reports),
            }
            for c in self.live.values()
        ]

    # ------------------------------------------------------------------ console: act

    def control(self, names: list[str], kind: str) -> list[str]:
        """Queue ``reboot`` / ``poweroff`` for the live clients of ``names``."""
        if kind not in ("reboot", "poweroff"):
            raise RefusedError(f"no such control command {kind!r}")
        for n in names:
            live = self.live[n]
            live.control.append({"id": kind, "kind": kind})
            live.wake.set()
        return names

    def halt(self) -> None:
        """Every agent stops (the labs' teardown)."""
        for live in self.live.values():
            live.control.append({"id": "halt", "kind": "halt"})
            live.wake.set()

    def os_started(self, body: Json, peer: str) -> str:
        """A booted OS reports itself; the computer is the one whose address sent it."""
        live = next((c for c in self.live.values() if c.ip == peer), None)
        if live is None:
            with self.db.reading() as s:
                name = store.computer_at(s, peer)
            if name is None:
                raise RefusedError(f"no computer has the address {peer}")
            live = self.live[name]
        now = self.clock()
        status = ClientStatus(str(body.get("status", "LNX")))
        report: Json = {
            "t": now,
            "peer": peer,
            "hostname": str(body.get("hostname", ""))[:253],
            "status": str(status),
            **{k: str(v)[:200] for k, v in body.items() if k in ("fstab_root", "os", "firmware")},
            **({"secure_boot": body["secure_boot"]} if body.get("secure_boot") in (0, 1) else {}),
        }
        live.os_reports.append(report)
        if live.booting is not None:
            self._boot_ended(live, report)
        live.set_status(status, now)
        live.last_seen = now
        with self.db.transaction() as s:
            store.add_os_report(
                s, live.name, status, hostname=report["hostname"], peer=peer,
                fstab_root=report.get("fstab_root"), os=report.get("os"), t=from_epoch(now),
            )  # fmt: skip
        self._lines.append(
            store.NewLogLine(live.name, f"OS started: hostname {report['hostname']} ({status})",
                             from_epoch(now))
        )  # fmt: skip
        return live.name
