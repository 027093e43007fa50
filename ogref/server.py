"""The server — OpenGnSys's ogAdmServer role: holds the classroom model, sends commands to the
agents, collects their status and tracking logs, and keeps a per-computer record of each command.

Agents talk to it over TCP, the console over a UNIX socket; both with signed requests
(:mod:`ogref.transports.signing`).  Console routes: ``/console/submit`` (the site's operation
``index``: a Restore / Deploy / updateCache planned with :func:`ogref.console.build_requests`; a
createImage sent to the source computer; a clone from a MASTER planned with
:func:`ogref.console.plan_clone` — the MASTER is sent ``clone_source``, and once it reports
``/agent/ready`` with what it sends, each target gets its restore-from-MASTER request; a boot
once / boot target planned with :func:`ogref.console.plan_boot`),
``/console/status`` (per-computer records of an operation), ``/console/clients`` (status
colours and the OS reports), ``/console/reboot`` (restart the live client of some computers),
``/console/halt``.  When each computer's part of a command is handed to its agent is the console's
command queue's rule (:mod:`ogref.command_queue`), the simulator's too; a computer waiting is
told why in its record's log.  With ``--os-listen`` it also takes the unsigned ``POST /api/os`` that a
booted operating system sends when it has started (OGAgent's "started": hostname, status LNX…),
matched to a computer by the sender's address, never by what it claims.  Each client's tracking log is appended to ``<logdir>/<ip>.log``.  A
client that stops sending heartbeats for ``--heartbeat-timeout`` seconds while it has a command,
or that exceeds ``--command-timeout``, is recorded failed; the others carry on.  The records are
plain JSON; converting them into a backend's results is the caller's job.
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ogref.agent import request_to_json
from ogref.command_queue import CommandQueue, Job
from ogref.console import build_requests, job, operation_for, plan_boot, plan_clone
from ogref.errors import OgErr, OgError
from ogref.model import ClientStatus, Transport
from ogref.site import BootSpec, CloneSpec, CreateSpec, RestoreSpec, Site, load_site
from ogref.transports.signing import UnixHTTPServer, make_handler, read_key

Json = dict[str, Any]
SERVER_PORT = 2008
OS_PORT = 8781
CONTROL = ("halt", "reboot", "poweroff")  # commands outside any operation
KINDS = ("restore", "deploy", "update_cache", "create", "clone", "boot")


@dataclass
class Client:
    """What the server knows of one computer."""

    name: str
    ip: str = ""
    status: ClientStatus = ClientStatus.OFF
    last_seen: float = 0.0
    queue: deque[Json] = field(default_factory=deque)
    current: str | None = None
    sent_at: float = 0.0
    os_reports: list[Json] = field(default_factory=list)
    activity: Json = field(default_factory=dict)  # the agent's last report: stage, bytes
    history: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=64))

    def set_status(self, status: ClientStatus, when: float) -> None:
        """A new status colour; changes are kept (the last 64) so a short visit is not missed."""
        if status != self.status or not self.history:
            self.history.append((when, str(status)))
        self.status = status


@dataclass
class Operation:
    """One console command over its scope: per-computer records, filled as agents finish."""

    id: str
    kind: str
    index: int
    submitted: float
    records: dict[str, Json] = field(default_factory=dict)
    source: Json | None = None  # a clone's MASTER (not one of the operation's computers)
    waiting: list[tuple[str, Json]] = field(default_factory=list)  # held until the MASTER is ready

    @property
    def done(self) -> bool:
        return all(r.get("final") for r in self.records.values()) and (
            self.source is None or bool(self.source.get("final"))
        )

    def record(self, name: str) -> Json | None:
        """The record of ``name`` in this operation (a target, or the MASTER of a clone)."""
        if name in self.records:
            return self.records[name]
        if self.source is not None and self.source["name"] == name:
            return self.source
        return None

    def all_records(self) -> list[Json]:
        return [*self.records.values(), *([self.source] if self.source is not None else [])]


class Server:
    """The server's state and its API routes."""

    def __init__(
        self, site: Site, log_dir: Path, heartbeat_timeout: float, command_timeout: float
    ) -> None:
        self.site = site
        self.log_dir = log_dir
        self.heartbeat_timeout = heartbeat_timeout
        self.command_timeout = command_timeout
        self.clients = {pc.name: Client(pc.name, str(pc.address)) for pc in site.computers}
        self.ops: dict[str, Operation] = {}
        self.lock = threading.Condition()
        # when each computer's part of a command may start: the console's rule, shared with the
        # simulator (one command at a time per computer, images read after their create, one
        # command per multicast address and port)
        self.queue = CommandQueue()
        self.pending: dict[Job, tuple[Operation, str, Json]] = {}  # queued, not yet deliverable
        self.jobs: dict[str, Job] = {}  # command id → its job
        self.told: dict[Job, str] = {}
        self._seq = itertools.count()

    def _release(self) -> None:
        """Hand the agents what the command queue lets start (the lock is held); log who waits."""
        for j in self.queue.startable():
            op, name, cmd = self.pending.pop(j)
            if op.source is not None and name != op.source["name"] and "ready" not in op.source:
                op.waiting.append((name, cmd))  # a clone target: held until the MASTER sends
            else:
                self.clients[name].queue.append(cmd)
        now = time.time()
        for j, why in self.queue.waits().items():
            if self.told.get(j) == why:
                continue
            self.told[j] = why
            op, name, _cmd = self.pending[j]
            rec = op.record(name)
            if rec is not None:
                rec.setdefault("log", []).append({"t": now, "text": f"queued: {why}"})
        self.lock.notify_all()

    def _end_job(self, command_id: str) -> None:
        """The job of ``command_id`` ended (or will never run): what waited on it may start."""
        j = self.jobs.get(command_id)
        if j is not None:
            self.pending.pop(j, None)
            self.queue.finished(j)

    # ------------------------------------------------------------------ agents

    def _seen(self, body: Json) -> Client:
        c = self.clients[str(body["name"])]
        c.last_seen = time.time()
        c.set_status(ClientStatus(body.get("status", "OPG")), c.last_seen)
        c.ip = str(body.get("ip", c.ip)).split("/")[0]
        return c

    def heartbeat(self, body: Json) -> Json:
        with self.lock:
            c = self._seen(body)
            activity = body.get("activity")
            if isinstance(activity, dict):
                c.activity = {**activity, "t": c.last_seen}
        return {}

    def poll(self, body: Json) -> Json:
        """The agent's next command (waiting up to 2 s for one).  Reboot, power off and halt go
        first; an operation only to a computer in the live client (one running an installed OS
        keeps it queued until it reboots into the live client)."""
        deadline = time.time() + 2.0
        with self.lock:
            c = self._seen(body)
            while True:
                if c.current is None and c.queue:
                    control = next((cmd for cmd in c.queue if cmd.get("kind") in CONTROL), None)
                    if control is not None:
                        c.queue.remove(control)
                        return {"command": control}
                    if c.status not in (ClientStatus.LNX, ClientStatus.WIN):
                        break
                if time.time() >= deadline:
                    return {"command": None}
                self.lock.wait(0.2)
            cmd = c.queue.popleft()
            c.current = cmd["id"]
            c.sent_at = time.time()
            rec = self.ops[cmd["op"]].record(c.name)
            if rec is not None:
                rec["sent"] = c.sent_at
            return {"command": cmd}

    def log(self, body: Json) -> Json:
        name = str(body["name"])
        ip = self.clients[name].ip or name
        lines = body.get("lines", [])
        with (self.log_dir / f"{ip}.log").open("a", encoding="utf-8") as f:
            for line in lines:
                stamp = time.strftime("%H:%M:%S", time.localtime(float(line["t"])))
                f.write(f"{stamp} {line['text']}\n")
        with self.lock:
            for op in self.ops.values():
                rec = op.record(name)
                if rec is not None and not rec.get("final") and "sent" in rec:
                    rec.setdefault("log", []).extend(lines)
        return {}

    def done(self, body: Json) -> Json:
        with self.lock:
            c = self.clients[str(body["name"])]
            op_id = str(body["id"]).split("/")[0]
            op = self.ops.get(op_id)
            rec = op.record(c.name) if op is not None else None
            if op is not None and rec is not None and not rec.get("final"):
                rec.update(body["result"])
                rec["status"] = "ok" if rec["code"] == 0 else "failed"
                rec["final"] = True
                if rec is op.source and rec["code"] != 0:
                    self._master_failed(op, int(rec["code"]), str(rec.get("message", "")))
            if c.current == body["id"]:
                c.current = None
            self._end_job(str(body["id"]))
            self._release()
        return {}

    # ------------------------------------------------------------------ console

    def ready(self, body: Json) -> Json:
        """A clone's MASTER sends: its targets get their requests, with what it sends."""
        with self.lock:
            op = self.ops[str(body["id"]).split("/")[0]]
            master = self.clients[str(body["name"])]
            if op.source is None or op.source["name"] != master.name:
                raise ValueError(f"{master.name} is not the MASTER of {op.id}")
            op.source["ready"] = time.time()
            for name, cmd in op.waiting:
                cmd["master"] = {"name": master.name, "ip": master.ip, "image": body["image"]}
                self.clients[name].queue.append(cmd)
            op.waiting.clear()
            self.lock.notify_all()
        return {}

    def _master_failed(self, op: Operation, code: int, why: str) -> None:
        """The MASTER failed (or vanished) before sending: its targets fail with its code."""
        assert op.source is not None
        held = [name for name, _cmd in op.waiting]
        queued = [j.computer for j in self.queue.cancel(int(op.id[2:]))]
        for name in [*held, *queued]:
            if name == op.source["name"]:
                continue
            op.records[name].update(
                status="failed",
                code=code,
                message=f"MASTER {op.source['name']} did not send: {why}",
                final=True,
                finished=time.time(),
            )
            self._end_job(f"{op.id}/{name}")
        op.waiting.clear()

    def _entry(self, name: str, requested: str) -> Json:
        pc = self.site.computer(name)
        return {
            "name": name,
            "classroom": pc.classroom,
            "group": pc.group,
            "requested": requested,
            "status": "not_started",
            "final": False,
        }

    def submit(self, body: Json) -> Json:
        """Plan the site's operation ``index`` and queue it; a command the console refuses
        (repository mismatch, no such partition…) is answered ``refused`` with its code."""
        index = int(body["index"])
        spec = self.site.operations[index]
        kind = spec.kind
        if kind not in KINDS:
            raise ValueError(f"the lab server does not run {kind} operations")
        try:
            return self._submit(index, spec.kind)
        except OgError as exc:
            return {"refused": {"code": int(exc.code), "message": exc.message}}

    def _submit(self, index: int, kind: str) -> Json:
        spec = self.site.operations[index]
        with self.lock:
            seq = next(self._seq)
        op = Operation(f"op{seq}", kind, index, time.time())
        engine = self.site.policy.to_text()
        queued: list[tuple[Job, str, Json]] = []

        def command(name: str, **extra: Any) -> Json:
            return {"id": f"{op.id}/{name}", "op": op.id, "kind": kind, "engine": engine, **extra}

        body_spec = getattr(spec, kind)
        if isinstance(body_spec, CreateSpec):
            name = body_spec.computer
            op.records[name] = self._entry(name, "create")
            writes = body_spec.image if body_spec.target == "REPO" else None
            queued.append(
                (job(seq, name, writes=writes), name, command(name, create=body_spec.model_dump()))
            )
        elif isinstance(body_spec, CloneSpec):
            plan = plan_clone(self.site, body_spec)
            if plan.method.transport is not Transport.MULTICAST:
                raise ValueError(
                    f"{plan.method} clone: the lab sends a MASTER's partition by multicast only "
                    "(udpcast, as OpenGnSys's ogMcastSendPartition); no unicast partition sender"
                )
            session = plan.computers[0].request.multicast
            assert session is not None
            master = body_spec.master
            op.source = self._entry(master, "clone-source")
            clone = {
                **body_spec.model_dump(),
                "image": plan.image.name,
                "os_name": plan.image.os_name,
                "multicast": str(session),
                "fec": self.site.repository(self.site.computer(master).repository).multicast_fec,
            }
            queued.append(
                (
                    Job(seq, master, session=(session.address, session.port)),
                    master,
                    command(master, kind="clone_source", clone=clone),
                )
            )
            for p in plan.computers:
                op.records[p.computer] = self._entry(p.computer, str(p.requested))
                cmd = command(p.computer, request=request_to_json(p.request))
                queued.append((job(seq, p.computer, p.request), p.computer, cmd))
        elif isinstance(body_spec, BootSpec):
            for pc in self.site.scope(body_spec.to):
                rec = op.records[pc.name] = self._entry(pc.name, "boot")
                try:
                    bplan = plan_boot(pc, body_spec.disk, body_spec.partition, body_spec.permanent)
                except OgError as exc:
                    rec.update(status="failed", code=int(exc.code), message=exc.message)
                    rec.update(final=True, finished=time.time())
                    continue
                boot = {
                    **body_spec.model_dump(exclude={"to"}),
                    "status": str(bplan.status),
                    "tracked_boots": bplan.tracked_boots,
                    "steps": list(bplan.steps),
                }
                queued.append((job(seq, pc.name), pc.name, command(pc.name, boot=boot)))
        else:
            rspec: RestoreSpec = body_spec
            for pc, req in build_requests(self.site, rspec, operation_for(kind)):
                op.records[pc.name] = self._entry(pc.name, str(req.method))
                cmd = command(pc.name, request=request_to_json(req))
                queued.append((job(seq, pc.name, req), pc.name, cmd))
        with self.lock:
            self.ops[op.id] = op
            self.queue.submit([j for j, _name, _cmd in queued])
            for j, name, cmd in queued:
                self.pending[j] = (op, name, cmd)
                self.jobs[cmd["id"]] = j
            self._release()
        return {"op": op.id, "computers": list(op.records)}

    def _expire(self) -> None:
        now = time.time()
        changed = False
        for c in self.clients.values():
            if c.current is None:
                continue
            op_id = c.current.split("/")[0]
            op = self.ops.get(op_id)
            rec = op.record(c.name) if op is not None else None
            if op is None or rec is None:
                continue
            why = ""
            if now - c.last_seen > self.heartbeat_timeout:
                why = f"client stopped responding (no heartbeat for {now - c.last_seen:.0f} s)"
                c.set_status(ClientStatus.OFF, now)
            elif now - c.sent_at > self.command_timeout:
                why = f"command timed out after {self.command_timeout:.0f} s"
            if why and not rec.get("final"):
                rec.update(
                    status="failed",
                    code=int(OgErr.GENERIC),
                    message=why,
                    final=True,
                    finished=now,
                    lost=True,
                )
                self._end_job(c.current)
                c.current = None
                if rec is op.source:
                    self._master_failed(op, int(OgErr.GENERIC), why)
                changed = True
        # a client that never appeared cannot take its command
        for op in self.ops.values():
            for rec in op.all_records():
                name = rec["name"]
                c = self.clients[name]
                if (
                    not rec.get("final")
                    and "sent" not in rec
                    and now - op.submitted > self.heartbeat_timeout
                    and now - c.last_seen > self.heartbeat_timeout
                ):
                    rec.update(
                        status="not_started",
                        code=None,
                        final=True,
                        message="client not running (no heartbeat)",
                        lost=True,
                    )
                    c.queue.clear()
                    self._end_job(f"{op.id}/{name}")
                    if rec is op.source:
                        self._master_failed(op, int(OgErr.GENERIC), "client not running")
                    changed = True
        if changed:
            self._release()

    def status(self, body: Json) -> Json:
        with self.lock:
            self._expire()
            op = self.ops[str(body["op"])]
            return {
                "op": op.id,
                "done": op.done,
                "records": list(op.records.values()),
                "source": op.source,
            }

    def clients_status(self, _body: Json) -> Json:
        with self.lock:
            self._expire()
            return {
                "clients": [
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
                    for c in self.clients.values()
                ]
            }

    def reboot(self, body: Json) -> Json:
        """Queue ``reboot`` (or ``poweroff``) for the live clients of ``names``."""
        kind = str(body.get("kind", "reboot"))
        if kind not in ("reboot", "poweroff"):
            raise ValueError(f"no such control command {kind!r}")
        names = [str(n) for n in body["names"]]
        with self.lock:
            for n in names:
                self.clients[n].queue.append({"id": kind, "kind": kind})
            self.lock.notify_all()
        return {"queued": names}

    def os_started(self, body: Json, peer: str) -> Json:
        """A booted OS reports itself; the computer is the one whose address sent it."""
        with self.lock:
            c = next((c for c in self.clients.values() if c.ip == peer), None)
            if c is None:
                raise ValueError(f"no computer has the address {peer}")
            now = time.time()
            status = ClientStatus(str(body.get("status", "LNX")))
            report: Json = {
                "t": now,
                "peer": peer,
                "hostname": str(body.get("hostname", "")),
                "status": str(status),
                **{k: str(v) for k, v in body.items() if k in ("fstab_root", "os")},
            }
            c.os_reports.append(report)
            c.set_status(status, now)
            c.last_seen = now
            self.lock.notify_all()
        stamp = time.strftime("%H:%M:%S", time.localtime(now))
        with (self.log_dir / f"{c.ip or c.name}.log").open("a", encoding="utf-8") as f:
            f.write(f"{stamp} OS started: hostname {report['hostname']} ({report['status']})\n")
        return {"computer": c.name}

    def halt(self, _body: Json) -> Json:
        with self.lock:
            for c in self.clients.values():
                c.queue.append({"id": "halt", "kind": "halt"})
            self.lock.notify_all()
        return {}

    def routes(self) -> dict[str, Any]:
        return {
            "/agent/heartbeat": self.heartbeat,
            "/agent/poll": self.poll,
            "/agent/log": self.log,
            "/agent/done": self.done,
            "/agent/ready": self.ready,
            "/console/submit": self.submit,
            "/console/status": self.status,
            "/console/clients": self.clients_status,
            "/console/reboot": self.reboot,
            "/console/halt": self.halt,
        }


def os_handler(server: Server) -> type[BaseHTTPRequestHandler]:
    """``POST /api/os`` only: JSON from a booted OS (unsigned: the image carries no lab key)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            length = min(int(self.headers.get("Content-Length", "0") or 0), 65536)
            body = self.rfile.read(length) if length else b""
            status, answer = 404, {"error": f"no route {self.path}"}
            if self.path == "/api/os":
                try:
                    status, answer = (
                        200,
                        server.os_started(json.loads(body), self.client_address[0]),
                    )
                except Exception as exc:
                    status, answer = 400, {"error": f"{type(exc).__name__}: {exc}"}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ogref.server")
    p.add_argument("--site", required=True, type=Path)
    p.add_argument("--listen", required=True, help="IP:PORT for agents")
    p.add_argument("--console", required=True, type=Path, help="UNIX socket for the console")
    p.add_argument("--key-file", required=True, type=Path)
    p.add_argument("--log-dir", required=True, type=Path)
    p.add_argument("--heartbeat-timeout", type=float, default=15.0)
    p.add_argument("--command-timeout", type=float, default=3600.0)
    p.add_argument("--os-listen", help="IP:PORT for the unsigned OS-started reports")
    a = p.parse_args(argv)
    a.log_dir.mkdir(parents=True, exist_ok=True)
    server = Server(load_site(a.site), a.log_dir, a.heartbeat_timeout, a.command_timeout)
    handler = make_handler(read_key(a.key_file), server.routes())
    host, port = a.listen.rsplit(":", 1)
    tcp = ThreadingHTTPServer((host, int(port)), handler)
    a.console.unlink(missing_ok=True)
    unix = UnixHTTPServer(str(a.console), handler)  # type: ignore[arg-type]
    servers: list[ThreadingHTTPServer] = [tcp, unix]
    if a.os_listen:
        oh, op = a.os_listen.rsplit(":", 1)
        servers.append(ThreadingHTTPServer((oh, int(op)), os_handler(server)))
    for s in servers:
        s.daemon_threads = True
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"server on {a.listen}, console on {a.console}", flush=True)
    stop.wait()
    for s in servers:
        s.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
