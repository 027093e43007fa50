"""ogServer's agent protocol: ogClient (OpenGnSys's Python live client) driven by ogLab's engine.

The wire, as ogServer and ogClient have it (ogServer ``src/core.c``, ``src/rest.c``
``og_send_request``, ``src/client.c``; ogClient ``src/ogRest.py``, ``src/live/ogOperations.py``):

- the *client* connects to the server (port 8889); the server knows it by its source address
  and writes HTTP requests on that connection: ``GET /refresh`` at once, then ``POST /probe``,
  ``POST /image/restore`` and the others, each ``METHOD /uri HTTP/1.1``, ``Content-Length``,
  ``Content-Type: application/json`` and a single-line JSON body (no body: length 0);
- the client answers each with ``HTTP/1.0 <code> <reason>``, ``Content-Length`` and JSON:
  200 done (with the command's data), 202 accepted (reboot, poweroff), 400 bad request, 500 the
  command failed, 503 busy (a command already runs), 103 an event (a user session started or
  stopped in an installed OS, ``{"event": "session", "action": "start"|"stop", "user"}``);
- it is not authenticated: anyone who can reach the port and owns a computer's address is that
  computer.  ogLab offers it as an opt-in (``ogref serve --ogclient-listen``) beside its own
  signed agent link, and says so in ``docs/security.md``.

How it meets the engine: each connection is an agent of the engine's own protocol, in process
(:meth:`~ogref.service.engine.Engine.sync`, unsigned since no network is crossed): its status
and finished commands go in, its next command comes out and is written to ogClient as the
request that asks for the same thing; ogClient's answer becomes the command's result.  What
ogClient cannot do (multicast, a cache update alone, a clone, partitioning) fails with a message
saying so, as a client whose engine lacks the method would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Interface
from typing import Any

from sqlalchemy import select

from ogref.errors import OgErr
from ogref.service import db
from ogref.service.engine import Engine

log = logging.getLogger("ogref.service.compat.agent")
Json = dict[str, Any]
MAX_ANSWER = 1 << 20
PROBE_EVERY = 5.0  # seconds between probes of an idle client (its heartbeat for the engine)
REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 500: "Internal Server Error",
           503: "Service Unavailable", 103: "Early Hints"}  # fmt: skip


class ProtocolError(ValueError):
    """An answer that is not ogClient's HTTP/1.0."""


# --------------------------------------------------------------------------- the messages


@dataclass(frozen=True)
class Request:
    """A request the server writes to ogClient."""

    method: str
    uri: str
    body: Json | None = None

    def encode(self) -> bytes:
        """ogServer's bytes: request line, Content-Length, Content-Type, a compact JSON line."""
        content = json.dumps(self.body, separators=(",", ":")) if self.body is not None else ""
        return (
            f"{self.method} /{self.uri} HTTP/1.1\r\nContent-Length: {len(content.encode())}\r\n"
            f"Content-Type: application/json\r\n\r\n{content}"
        ).encode()


@dataclass(frozen=True)
class Answer:
    """ogClient's answer: its status code and JSON body (None when it has none)."""

    code: int
    body: Json | None = None

    def encode(self) -> bytes:
        """As ogClient writes it (used by tests and by a stand-in client)."""
        text = json.dumps(self.body) if self.body is not None else ""
        return (
            f"HTTP/1.0 {self.code} {REASONS.get(self.code, 'Unknown')}\r\n"
            f"Content-Length: {len(text.encode())}\r\nContent-Type: application/json\r\n\r\n{text}"
        ).encode()


def parse_head(head: bytes) -> tuple[int, int]:
    """The status code and Content-Length of an answer's head (up to the blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or parts[0] != "HTTP/1.0" or not parts[1].isdigit():
        raise ProtocolError(f"not an ogClient answer: {lines[0][:60]!r}")
    code = int(parts[1])
    if code not in REASONS:
        raise ProtocolError(f"ogClient answered {code}, which ogServer does not know")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            if not value.strip().isdigit() or int(value) > MAX_ANSWER:
                raise ProtocolError(f"bad Content-Length {value.strip()!r}")
            length = int(value)
    return code, length


def parse_answer(data: bytes) -> Answer:
    """One whole answer (head and body)."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        raise ProtocolError("no blank line after the head")
    code, length = parse_head(head + b"\r\n")
    if len(rest) < length:
        raise ProtocolError(f"body shorter than its Content-Length ({len(rest)} < {length})")
    return Answer(code, _body(rest[:length]))


def _body(raw: bytes) -> Json | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise ProtocolError("the body is not JSON") from None
    if not isinstance(value, dict):
        raise ProtocolError("the body is not a JSON object")
    return value


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    code, length = parse_head(head)
    raw = await reader.readexactly(length) if length else b""
    return Answer(code, _body(raw))


# --------------------------------------------------------------------------- our commands

RESTORE_KINDS = ("restore", "deploy")


class InexpressibleError(ValueError):
    """An engine command ogClient has no request for."""


def restore_type_for(method: str) -> str:
    """The ``type`` ogClient runs for one of our methods (after the decision core chose it)."""
    if method == "UNICAST-DIRECT":
        return "UNICAST-DIRECT"
    if method == "UNICAST-CACHE":
        return "UNICAST"  # ogClient: UNICAST without DIRECT goes through the cache
    if method == "TORRENT-CACHE":
        return "TIPTORRENT"  # ogClient's P2P into the cache
    raise InexpressibleError(f"ogClient has no {method} (it dropped multicast)")


def to_request(cmd: Json, lookup: Callable[[str], tuple[str, int]]) -> Request:
    """The ogClient request for an engine command; ``lookup(image)`` gives the repository
    address and the image id ogClient is told."""
    kind = cmd.get("kind")
    if kind in ("reboot", "poweroff"):
        return Request("POST", kind)
    if kind in RESTORE_KINDS:
        req = cmd["request"]
        repository, image_id = lookup(str(req["image"]))
        return Request("POST", "image/restore", {
            "disk": str(req["disk"]), "partition": str(req["partition"]),
            "name": str(req["image"]), "repository": repository,
            "type": restore_type_for(str(req["method"])), "profile": "0", "id": str(image_id),
        })  # fmt: skip
    if kind == "create":
        c = cmd["create"]
        if c.get("target", "REPO") != "REPO":
            raise InexpressibleError("ogClient creates images in the repository only")
        repository, image_id = lookup(str(c["image"]))
        return Request("POST", "image/create", {
            "disk": str(c["disk"]), "partition": str(c["partition"]), "code": "0",
            "id": str(image_id), "name": str(c["image"]), "repository": repository,
        })  # fmt: skip
    if kind == "boot":
        b = cmd["boot"]
        if b.get("permanent"):
            raise InexpressibleError("ogClient has no permanent boot target (only a session)")
        return Request(
            "POST", "session", {"disk": str(b["disk"]), "partition": str(b["partition"])}
        )
    raise InexpressibleError(f"ogClient has no request for {kind!r}")


def result_of(cmd: Json, answer: Answer) -> Json:
    """The engine's result for ``cmd`` from ogClient's answer."""
    ok = answer.code == 200 or (answer.code == 202 and cmd.get("kind") in ("reboot", "poweroff"))
    if not ok:
        why = {400: "refused the request", 500: "the command failed",
               503: "busy with another command"}.get(answer.code, f"answered {answer.code}")  # fmt: skip
        return {"code": int(OgErr.GENERIC), "message": f"ogClient: {why}"}
    out: Json = {"code": 0, "message": "ogClient: done"}
    if cmd.get("kind") in RESTORE_KINDS:
        out["method_used"] = str(cmd["request"]["method"])
    if cmd.get("kind") == "create" and answer.body:
        body = answer.body
        out["message"] = f"ogClient: created {body.get('name', '')}"
        with contextlib.suppress(KeyError, TypeError, ValueError):
            out["image"] = {"name": str(body["name"]), "filesystem": str(body["filesystem"]),
                            "data_size": int(body["datasize"]),
                            "compressor": str(body.get("compressor", "LZOP")).upper()}  # fmt: skip
    return out


def status_of(answer: Answer, current: str) -> str:
    """Our status from a probe or refresh answer (ogClient's live mode says OPG or BSY; its
    Linux/Windows modes' refresh says ``LINUX``/``WIN``; a 103 session event adds the S)."""
    body = answer.body or {}
    if answer.code == 103 and body.get("event") == "session":
        base = current.rstrip("S") if current in ("LNXS", "WINS") else current
        if base in ("LNX", "WIN"):
            return base + "S" if body.get("action") == "start" else base
        return current
    status = str(body.get("status", ""))
    if status in ("OPG", "BSY"):
        return status
    if status == "VDI":
        return "OPG"
    # an installed OS's probe says LINUX/WIN with or without a user session: a session a 103
    # event opened stays open (ogServer's probe answer sets OPG, BSY and VDI only)
    if status.startswith("LINUX"):
        return current if current == "LNXS" else "LNX"
    if status.startswith("WIN"):
        return current if current == "WINS" else "WIN"
    return "OPG" if answer.code == 200 else current


# --------------------------------------------------------------------------- the port


class OgClientPort:
    """The agent port: one task per connected ogClient, an engine agent in process."""

    def __init__(self, engine: Engine, probe_every: float = PROBE_EVERY) -> None:
        self.engine = engine
        self.probe_every = probe_every
        self.connected: dict[str, asyncio.Task[None]] = {}

    def computer_at(self, address: str) -> str | None:
        for pc in self.engine.site.computers:
            if str(IPv4Interface(pc.ip).ip) == address:
                return pc.name
        return None

    def lookup(self, image: str) -> tuple[str, int]:
        """The repository address and the current version's id of ``image``."""
        with self.engine.db.reading() as s:
            row = s.execute(
                select(db.Image.id, db.Repository.address)
                .join(db.Repository, db.Repository.id == db.Image.repository_id)
                .where(db.Image.name == image, db.Image.deleted_at.is_(None))
                .order_by(db.Image.revision.desc())
            ).first()
        if row is None:
            return (self.engine.site.repositories[0].address, 0)
        return (str(row[1]), int(row[0]))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if peer else ""
        name = self.computer_at(address)
        if name is None:
            log.warning("ogclient from %s: no computer has that address; closed", address)
            writer.close()
            return
        old = self.connected.get(name)
        if old is not None:
            old.cancel()
        task = asyncio.current_task()
        assert task is not None
        self.connected[name] = task
        log.info("ogclient %s connected from %s", name, address)
        try:
            await self.serve(name, address, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, ProtocolError) as exc:
            log.info("ogclient %s: %s", name, exc)
        finally:
            if self.connected.get(name) is task:
                del self.connected[name]
            writer.close()

    async def ask(
        self, name: str, request: Request, reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter, status: str,
    ) -> tuple[Answer, str]:  # fmt: skip
        """Write one request and wait for its answer; the answer and the computer's status
        (103 events on the way change it; the engine hears from the computer every few seconds
        meanwhile)."""
        writer.write(request.encode())
        await writer.drain()
        read = asyncio.ensure_future(read_answer(reader))
        try:
            while True:
                done, _ = await asyncio.wait({read}, timeout=self.probe_every)
                if not done:
                    self.engine.seen(name, {"status": status})
                    continue
                answer = read.result()
                if answer.code != 103:
                    return answer, status
                status = status_of(answer, status)
                self.engine.seen(name, {"status": status})
                read = asyncio.ensure_future(read_answer(reader))
        finally:
            read.cancel()

    async def serve(
        self, name: str, address: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        answer, status = await self.ask(name, Request("GET", "refresh"), reader, writer, "OPG")
        status = status_of(answer, status)
        done: list[Json] = []
        while True:
            reply = await self.engine.sync(
                name, {"status": status, "ip": address, "done": done, "wait": self.probe_every}
            )
            done = []
            cmd = reply["command"]
            if cmd is None:
                answer, status = await self.ask(
                    name, Request("POST", "probe"), reader, writer, status
                )
                status = status_of(answer, status)
                continue
            if cmd.get("kind") == "halt":
                return
            try:
                request = to_request(cmd, self.lookup)
            except (InexpressibleError, KeyError) as exc:
                done = [{"id": cmd["id"], "result": {"code": int(OgErr.GENERIC),
                                                     "message": f"ogClient: {exc}"}}]  # fmt: skip
                continue
            answer, _ = await self.ask(name, request, reader, writer, "BSY")
            if "op" in cmd:
                done = [{"id": cmd["id"], "result": result_of(cmd, answer)}]
            if cmd.get("kind") in ("reboot", "poweroff") or request.uri == "session":
                self.engine.seen(name, {"status": "OFF" if cmd.get("kind") == "poweroff"
                                        else "INI"})  # fmt: skip
                for d in done:
                    self.engine.finish(name, d["id"], d["result"])
                return  # ogClient closes the connection (it reboots, powers off, or leaves)

    async def start(self, sock: Any) -> asyncio.Server:
        return await asyncio.start_server(self.handle, sock=sock)
