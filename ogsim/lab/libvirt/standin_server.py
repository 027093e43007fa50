"""TEMPORARY stand-in for the ogAdmServer role (``ogref/server.py``, being built for the netns
lab) — used by the libvirt lab until that server lands, then goes away.

A threaded HTTP/JSON server on the lab bridge: live clients post their status (OPG, BSY…) and
tracking-log lines and long-poll for commands; restored systems post ``/api/os`` with their
hostname (status LNX), matched to a computer by source address.  The backend queues commands and
waits on statuses.  Every status change and log line is kept with its time.  No authentication
(the lab network is isolated and this is a stand-in); it plans nothing.
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ogref.model.status import ClientStatus


@dataclass
class ClientState:
    """What the server knows of one computer."""

    name: str
    ip: str
    status: ClientStatus = ClientStatus.OFF
    history: list[tuple[float, ClientStatus]] = field(default_factory=list)
    log: list[tuple[float, str]] = field(default_factory=list)
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    os_reports: list[dict[str, Any]] = field(default_factory=list)
    commands: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)


class StandinServer:
    """The stand-in server for ``clients`` (name → lab IP), listening on ``host:port``."""

    def __init__(self, host: str, port: int, clients: dict[str, str]) -> None:
        self.host = host
        self.port = port
        self.t0 = time.monotonic()
        self.clients = {n: ClientState(n, ip) for n, ip in clients.items()}
        self._by_ip = {ip: n for n, ip in clients.items()}
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 3)

    # ------------------------------------------------------------------ backend side

    def set_status(self, name: str, status: ClientStatus) -> None:
        with self._cond:
            c = self.clients[name]
            c.status = status
            c.history.append((self.now(), status))
            self._cond.notify_all()

    def add_log(self, name: str, text: str) -> None:
        with self._cond:
            self.clients[name].log.append((self.now(), text))

    def send(self, name: str, kind: str, **body: Any) -> int:
        """Queue a command for ``name``; return its id."""
        cid = next(self._ids)
        self.add_log(name, f"command {kind} queued")
        self.clients[name].commands.put({"id": cid, "kind": kind, **body})
        return cid

    def wait(self, pred: Any, timeout: float) -> bool:
        """Wait until ``pred()`` holds (re-checked on every update)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 1.0))
        return True

    def wait_status(
        self, name: str, status: ClientStatus, timeout: float, since: float = 0
    ) -> bool:
        c = self.clients[name]
        return self.wait(lambda: any(t >= since and s is status for t, s in c.history), timeout)

    def wait_result(self, name: str, cid: int, timeout: float) -> dict[str, Any] | None:
        c = self.clients[name]
        self.wait(lambda: cid in c.results, timeout)
        return c.results.get(cid)

    # ------------------------------------------------------------------ HTTP side

    def _post(self, path: str, body: dict[str, Any], peer: str) -> dict[str, Any]:
        if path == "/api/os":
            name = self._by_ip.get(peer) or self._by_ip.get(str(body.get("ip", "")))
            if name is None:
                return {"error": f"unknown client {peer}"}
            body = {**body, "t": self.now(), "peer": peer}
            with self._cond:
                self.clients[name].os_reports.append(body)
            self.add_log(name, f"OS booted, hostname {body.get('hostname')!r}")
            self.set_status(name, ClientStatus(body.get("status", "LNX")))
            return {"ok": True}
        name = str(body.get("name", ""))
        if name not in self.clients:
            name = self._by_ip.get(peer, "")
        if not name:
            return {"error": "unknown client"}
        if path == "/api/status":
            self.set_status(name, ClientStatus(body["status"]))
        elif path == "/api/log":
            self.add_log(name, str(body["text"]))
        elif path == "/api/result":
            with self._cond:
                self.clients[name].results[int(body["id"])] = body
                self._cond.notify_all()
        else:
            return {"error": f"no {path}"}
        return {"ok": True}

    def _command(self, name: str) -> dict[str, Any]:
        c = self.clients.get(name)
        if c is None:
            return {}
        try:
            return c.commands.get(timeout=20)
        except queue.Empty:
            return {}

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _json(self, obj: dict[str, Any]) -> None:
                data = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/api/command":
                    name = parse_qs(url.query).get("name", [""])[0]
                    if name not in server.clients:
                        name = server._by_ip.get(self.client_address[0], "")
                    self._json(server._command(name))
                else:
                    self.send_error(404)

            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", "0"))
                try:
                    body = json.loads(self.rfile.read(size) or b"{}")
                except ValueError:
                    body = {}
                self._json(server._post(urlsplit(self.path).path, body, self.client_address[0]))

        self._httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
