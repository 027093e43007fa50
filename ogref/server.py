"""The server — OpenGnSys's ogAdmServer role: holds the classroom model, sends commands to the
agents, collects their status and tracking logs, and keeps a per-computer record of each command.

Agents talk to it over TCP, the console over a UNIX socket; both with signed requests
(:mod:`ogref.transports.signing`).  Console routes: ``/console/submit`` (a Restore / Deploy /
updateCache of the site's operation ``index``, planned with :func:`ogref.console.build_requests`),
``/console/status`` (per-computer records of an operation), ``/console/clients`` (status
colours and the OS reports), ``/console/reboot`` (restart the live client of some computers),
``/console/halt``.  With ``--os-listen`` it also takes the unsigned ``POST /api/os`` that a
booted operating system sends when it has started (OGAgent's "started": hostname, status LNX…),
matched to a computer by the sender's address, never by what it claims.  Each client's tracking log is appended to ``<logdir>/<ip>.log``.  A
client that stops sending heartbeats for ``--heartbeat-timeout`` seconds while it has a command,
or that exceeds ``--command-timeout``, is recorded failed; the others carry on.  The records are
plain JSON; converting them into a backend's results is the caller's job.
"""

from __future__ import annotations

import argparse
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
from ogref.console import build_requests, operation_for
from ogref.errors import OgErr
from ogref.model import ClientStatus
from ogref.site import RestoreSpec, Site, load_site
from ogref.transports.signing import UnixHTTPServer, make_handler, read_key

Json = dict[str, Any]
SERVER_PORT = 2008
OS_PORT = 8781
CONTROL = ("halt", "reboot", "poweroff")  # commands outside any operation


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


@dataclass
class Operation:
    """One console command over its scope: per-computer records, filled as agents finish."""

    id: str
    kind: str
    index: int
    submitted: float
    records: dict[str, Json] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return all(r.get("final") for r in self.records.values())


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

    # ------------------------------------------------------------------ agents

    def _seen(self, body: Json) -> Client:
        c = self.clients[str(body["name"])]
        c.last_seen = time.time()
        c.status = ClientStatus(body.get("status", "OPG"))
        c.ip = str(body.get("ip", c.ip)).split("/")[0]
        return c

    def heartbeat(self, body: Json) -> Json:
        with self.lock:
            self._seen(body)
        return {}

    def poll(self, body: Json) -> Json:
        deadline = time.time() + 2.0
        with self.lock:
            c = self._seen(body)
            while not c.queue and time.time() < deadline:
                self.lock.wait(0.2)
            if not c.queue or c.current is not None:
                return {"command": None}
            cmd = c.queue.popleft()
            if cmd.get("kind") in CONTROL:
                return {"command": cmd}
            c.current = cmd["id"]
            c.sent_at = time.time()
            self.ops[cmd["op"]].records[c.name]["sent"] = c.sent_at
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
                rec = op.records.get(name)
                if rec is not None and not rec.get("final") and "sent" in rec:
                    rec.setdefault("log", []).extend(lines)
        return {}

    def done(self, body: Json) -> Json:
        with self.lock:
            c = self.clients[str(body["name"])]
            op_id = str(body["id"]).split("/")[0]
            op = self.ops.get(op_id)
            if op is not None and not op.records[c.name].get("final"):
                rec = op.records[c.name]
                rec.update(body["result"])
                rec["status"] = "ok" if rec["code"] == 0 else "failed"
                rec["final"] = True
            if c.current == body["id"]:
                c.current = None
            self.lock.notify_all()
        return {}

    # ------------------------------------------------------------------ console

    def submit(self, body: Json) -> Json:
        index = int(body["index"])
        spec = self.site.operations[index]
        kind = spec.kind
        if kind not in ("restore", "deploy", "update_cache"):
            raise ValueError(f"the lab server does not run {kind} operations yet")
        rspec: RestoreSpec = getattr(spec, kind)
        pairs = build_requests(self.site, rspec, operation_for(kind))
        op = Operation(f"op{len(self.ops)}", kind, index, time.time())
        engine = self.site.policy.to_text()
        with self.lock:
            self.ops[op.id] = op
            for pc, req in pairs:
                cmd = {
                    "id": f"{op.id}/{pc.name}",
                    "op": op.id,
                    "kind": kind,
                    "request": request_to_json(req),
                    "engine": engine,
                }
                op.records[pc.name] = {
                    "name": pc.name,
                    "classroom": pc.classroom,
                    "group": pc.group,
                    "requested": str(req.method),
                    "status": "not_started",
                    "final": False,
                }
                self.clients[pc.name].queue.append(cmd)
            self.lock.notify_all()
        return {"op": op.id, "computers": [pc.name for pc, _ in pairs]}

    def _expire(self) -> None:
        now = time.time()
        for c in self.clients.values():
            if c.current is None:
                continue
            op_id = c.current.split("/")[0]
            op = self.ops.get(op_id)
            if op is None:
                continue
            rec = op.records[c.name]
            why = ""
            if now - c.last_seen > self.heartbeat_timeout:
                why = f"client stopped responding (no heartbeat for {now - c.last_seen:.0f} s)"
                c.status = ClientStatus.OFF
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
                c.current = None
        # a client that never appeared cannot take its command
        for op in self.ops.values():
            for name, rec in op.records.items():
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

    def status(self, body: Json) -> Json:
        with self.lock:
            self._expire()
            op = self.ops[str(body["op"])]
            return {"op": op.id, "done": op.done, "records": list(op.records.values())}

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
            c.status = status
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
