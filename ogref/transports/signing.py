"""Signed JSON-over-HTTP between the server, the agents and the repository's control API.

Each request carries ``X-OG-Time`` and ``X-OG-Signature`` = HMAC-SHA256(key, method, path, time,
body); a request older or newer than ``MAX_SKEW`` seconds, or with a bad signature, is refused
(401).  The key is generated per lab and handed to each process in a root-only file.  Transport
only: what the requests mean belongs to the server, the agent and ``ogref.repo``.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MAX_SKEW = 120.0
Json = dict[str, Any]
Route = Callable[[Json], Json]


class ApiError(RuntimeError):
    """A signed request failed (network, refused, or the peer answered an error)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def new_key() -> bytes:
    """A fresh 256-bit lab key."""
    return secrets.token_bytes(32)


def write_key(path: Path, key: bytes) -> None:
    """Store a key (hex) readable by root only."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(key.hex() + "\n")


def read_key(path: Path) -> bytes:
    """Read a key written by :func:`write_key`."""
    return bytes.fromhex(path.read_text().strip())


def signature(key: bytes, method: str, path: str, stamp: str, body: bytes) -> str:
    """The HMAC of one request."""
    msg = f"{method}\n{path}\n{stamp}\n".encode() + body
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def verify(key: bytes, method: str, path: str, headers: Any, body: bytes) -> bool:
    """Whether a request's signature is good and its time is fresh."""
    stamp = headers.get("X-OG-Time", "")
    sig = headers.get("X-OG-Signature", "")
    try:
        if abs(time.time() - float(stamp)) > MAX_SKEW:
            return False
    except ValueError:
        return False
    return hmac.compare_digest(sig, signature(key, method, path, stamp, body))


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


class SignedClient:
    """Posts signed JSON to ``http://host:port`` or ``unix:/path/to.sock``."""

    def __init__(self, base: str, key: bytes, timeout: float = 30.0) -> None:
        self.base = base
        self.key = key
        self.timeout = timeout

    def _conn(self, timeout: float) -> http.client.HTTPConnection:
        if self.base.startswith("unix:"):
            return _UnixConnection(self.base[5:], timeout)
        u = urlsplit(self.base)
        return http.client.HTTPConnection(u.hostname or "", u.port or 80, timeout=timeout)

    def post(self, path: str, payload: Json | None = None, timeout: float | None = None) -> Json:
        """POST ``payload`` to ``path``; the decoded JSON answer (ApiError otherwise)."""
        body = json.dumps(payload or {}).encode()
        stamp = f"{time.time():.3f}"
        headers = {
            "Content-Type": "application/json",
            "X-OG-Time": stamp,
            "X-OG-Signature": signature(self.key, "POST", path, stamp, body),
        }
        conn = self._conn(timeout or self.timeout)
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError as exc:
            raise ApiError(f"{self.base}{path}: {exc}") from None
        finally:
            conn.close()
        try:
            answer = json.loads(data or b"{}")
        except ValueError:
            answer = {"error": data[:200].decode("utf-8", "replace")}
        if resp.status != 200:
            raise ApiError(
                f"{self.base}{path}: {resp.status} {answer.get('error', '')}", resp.status
            )
        return dict(answer)


def make_handler(key: bytes, routes: Mapping[str, Route]) -> type[BaseHTTPRequestHandler]:
    """A request handler that verifies signatures and dispatches ``POST path`` to ``routes``."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _reply(self, status: int, obj: Json) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0") or 0)
            body = self.rfile.read(length) if length else b""
            if not verify(key, "POST", self.path, self.headers, body):
                self._reply(401, {"error": "bad or missing signature"})
                return
            route = routes.get(self.path)
            if route is None:
                self._reply(404, {"error": f"no route {self.path}"})
                return
            try:
                payload = json.loads(body or b"{}")
                self._reply(200, route(payload))
            except Exception as exc:  # an error answer, never a dead server
                self._reply(400, {"error": f"{type(exc).__name__}: {exc}"})

        def do_GET(self) -> None:
            self._reply(405, {"error": "POST signed JSON only"})

    return Handler


class UnixHTTPServer(ThreadingHTTPServer):
    """The same HTTP server on a UNIX socket (the console side, reachable from any namespace)."""

    address_family = socket.AF_UNIX

    def server_bind(self) -> None:
        self.socket.bind(self.server_address)
        self.server_name = "unix"
        self.server_port = 0

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)
