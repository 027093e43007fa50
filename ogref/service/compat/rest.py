"""ogServer's REST API over ogLab's engine: what ogCLI and ogCp call, answered from ogLab's
database and carried out by ogLab's engine.

The wire, as ogServer has it (``src/rest.c``, ``src/core.c``; facts, not code):

- paths at the root, matched by prefix in ogServer's order (so ``/modes`` is ``/mode``);
  ``GET`` and ``POST`` only, anything else 405; some ``GET`` requests carry a JSON body;
- the raw API token in ``Authorization`` (no scheme), else 401 with ``WWW-Authenticate: Basic``;
- a request of 128 KiB or more: 413 (ogServer's buffer), before anything else;
- a body that is not JSON: 404; a path ogServer does not know: 404; a known path with the other
  method: 405; a missing body where one is needed, a missing or mistyped field, or a handler that
  fails: 400.  Every error has an empty body (``Content-Length: 0``);
- numbers in requests travel as strings (``"disk": "1"``); answers carry JSON numbers.

Here the token is an ogLab console API token (``ogt_…``; ``Bearer`` accepted too): an admin's
opens everything, a teacher's its classrooms (another classroom's computers: 401, as a wrong
key; they are left out of the lists).  Computers are named by IPv4 address as in ogServer;
an address no computer has is skipped, as ogServer skips clients it does not know.

What each path does with ogLab's model: ``docs/opengnsys-compat.md`` (the mapping table).
Commands go to :class:`~ogref.service.engine.Engine` exactly as ``/api/v1`` sends them: a
restore is a :class:`~ogref.site.RestoreSpec` given to ``submit_spec`` (the decision core plans
it, the command queue releases it), so a refusal or a fallback is the same as there.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from fastapi import FastAPI, Request, Response
from pydantic import ValidationError
from sqlalchemy import func, select

from ogref.errors import OgError
from ogref.model import ClientStatus
from ogref.model.image import validate_image_name
from ogref.model.protocol import MulticastSession, TorrentSession
from ogref.service import db
from ogref.service.compat.codes import (
    FILESYSTEM_IDS,
    GPT_PARTITION_CODES,
    IMAGE_TYPES,
    PARTITION_CODES,
    TABLE_CODES,
    WOL_SENT,
    restore_type,
    state_of,
)
from ogref.service.engine import Engine, RefusedError
from ogref.service.site_io import export_site, import_site
from ogref.service.users import API_TOKEN_PREFIX, Action, can, token_hash
from ogref.site import BootSpec, CreateSpec, OperationSpec, RestoreSpec, Scope

log = logging.getLogger("ogref.service.compat")
Json = dict[str, Any]
MAX_REQUEST = 131072  # ogServer's request buffer (OG_MSG_REQUEST_MAXLEN): beyond it, 413
LIVE_DIR = "ogLive"  # the one live client ogLab boots (GET /oglive/list, client "livedir")
MODES = ("ogLive", "pxe")  # boot-mode templates offered (GET /mode)
PENDING = IPv4Network("0.0.0.0/32")  # a room's network not known yet (its address: 0.0.0.0)
LINK_MBPS = 1000  # GET /clients "speed": ogLab's agents do not report their link


class OgServerError(Exception):
    """An ogServer error answer: ``status`` with an empty body (``why`` goes to the log)."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status
        self.why = why


def bad(why: str) -> OgServerError:
    return OgServerError(400, why)


@dataclass(frozen=True)
class Who:
    """The console user whose token came in ``Authorization``."""

    user_id: int
    role: str
    classrooms: frozenset[str]

    def may(self, action: Action, classroom: str | None) -> bool:
        return can(self.role, self.classrooms, action, classroom)


@dataclass
class CompatState:
    """What the facade keeps beside the engine (memory only, as ogServer keeps it): computers
    woken and not yet heard from, boot modes and live-client directories set per computer."""

    woken: dict[str, float] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)
    live_dirs: dict[str, str] = field(default_factory=dict)
    waker: Callable[[list[str]], None] | None = None  # powers on computers (a lab backend)
    started: float = field(default_factory=time.time)


# --------------------------------------------------------------------------- request fields


def _obj(body: Any) -> Json:
    if not isinstance(body, dict):
        raise bad("the body is not a JSON object")
    return body


def _ips(value: Any) -> list[str]:
    """ogServer's ``clients`` array: strings only (a bare string is refused, as there)."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise bad("clients: an array of IPv4 address strings")
    return value


def _str(body: Json, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise bad(f"{key}: a string is required")
    return value


def _num(body: Json, key: str, low: int = 0) -> int:
    """A number sent as a string (ogServer's requests) or as a JSON integer (its GET bodies),
    from ``low`` to 2³¹−1 (ogServer's unsigned ints; its database's ids)."""
    value = body.get(key)
    n: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str) and value.strip().isdigit():
        n = int(value)
    if n is None or not low <= n < 2**31:
        raise bad(f"{key}: a number from {low} is required")
    return n


def _mac(text: str) -> str:
    """A MAC address as the site writes it (ogCp sends ``525400000331``)."""
    digits = text.replace(":", "").replace("-", "").lower()
    if len(digits) != 12 or any(c not in "0123456789abcdef" for c in digits):
        raise bad(f"mac: {text!r} is not a MAC address")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def _required(body: Json, *keys: str) -> None:
    missing = [k for k in keys if k not in body]
    if missing:
        raise bad(f"missing {', '.join(missing)}")


# --------------------------------------------------------------------------- the facade


class OgServerFacade:
    """The handlers, over one engine; :func:`create_ogserver_app` routes requests to them."""

    def __init__(self, engine: Engine, state: CompatState | None = None) -> None:
        self.engine = engine
        self.state = state or CompatState()

    # ------------------------------------------------------------------ helpers

    def authenticate(self, header: str) -> Who:
        token = header.strip()
        if token.lower().startswith("bearer "):
            token = token[7:].strip()
        if not token.startswith(API_TOKEN_PREFIX):
            raise OgServerError(401, "not an ogLab API token")
        with self.engine.db.reading() as s:
            row = s.scalar(select(db.ApiToken).where(db.ApiToken.token_hash == token_hash(token)))
            if row is None:
                raise OgServerError(401, "unknown API token")
            user = s.get(db.User, row.user_id)
            if user is None:
                raise OgServerError(401, "no such user")
            rooms = s.scalars(
                select(db.Classroom.name)
                .join(db.UserClassroom, db.UserClassroom.classroom_id == db.Classroom.id)
                .where(db.UserClassroom.user_id == user.id)
            )
            return Who(user.id, user.role, frozenset(rooms))

    def by_ip(self) -> dict[str, str]:
        """Computer name by bare IPv4 address (the site's; an agent's reported one if it
        differs, as ogServer knows a client by the address it connects from)."""
        out = {str(IPv4Interface(pc.ip).ip): pc.name for pc in self.engine.site.computers}
        for live in self.engine.live.values():
            if live.ip and live.ip not in out:
                out[live.ip] = live.name
        return out

    def names(self, who: Who, ips: list[str], action: Action = Action.OPERATE) -> list[str]:
        """The computers at ``ips`` (unknown addresses skipped, as ogServer does); one the
        caller may not act on: 401."""
        known = self.by_ip()
        out: list[str] = []
        for ip in ips:
            name = known.get(ip.strip())
            if name is None:
                log.info("ogserver: no computer has address %s (skipped)", ip)
                continue
            if not who.may(action, self.engine.site.computer(name).classroom):
                raise OgServerError(401, f"may not {action} {name}")
            if name not in out:
                out.append(name)
        return out

    def one(self, who: Who, body: Json, key: str = "client") -> str:
        """The one computer a read names (``{"client": ["IP"]}``): unknown → 400."""
        if key not in body:
            raise bad(f"missing {key}")
        ips = _ips(body[key])
        if len(ips) != 1:
            raise bad(f"{key}: exactly one address")
        names = self.names(who, ips, Action.VIEW)
        if not names:
            raise bad(f"no computer has address {ips[0]}")
        return names[0]

    def submit(self, who: Who, spec: OperationSpec) -> Json:
        try:
            return self.engine.submit_spec(spec, who.user_id)
        except RefusedError as exc:
            raise bad(str(exc)) from None

    def _row(self, s: Any, name: str) -> db.Computer:
        row = s.scalar(select(db.Computer).where(db.Computer.name == name))
        if row is None:
            raise bad(f"no computer {name}")
        return row

    def _last_results(self) -> dict[str, str]:
        """Each computer's last command result as ogServer words it."""
        out: dict[str, str] = {}
        last = (
            select(func.max(db.OperationRecord.id))
            .group_by(db.OperationRecord.computer_name)
            .scalar_subquery()
        )
        with self.engine.db.reading() as s:
            rows = s.execute(
                select(
                    db.OperationRecord.computer_name,
                    db.OperationRecord.status,
                    db.OperationRecord.final,
                ).where(db.OperationRecord.id.in_(last))
            )
            for name, status, final in rows:
                out[name] = "unknown" if not final else "success" if status == "ok" else "failure"
        return out

    def _change_site(self, change: Callable[[Json], None]) -> None:
        """Apply ``change`` to the site's configuration (export, edit, import: history, logs
        and credentials of the computers still there survive), then reload the engine."""
        with self.engine.db.transaction() as s:
            doc = export_site(s)
            change(doc)
            try:
                import_site(s, doc, source="ogserver-compat")
            except OgError as exc:
                raise bad(exc.message) from None
        self.engine.reload_site()

    # ------------------------------------------------------------------ reads

    def scopes(self, who: Who, _body: Any) -> Json:
        site = self.engine.site
        with self.engine.db.reading() as s:
            ou_ids = {k: v for k, v in s.execute(select(db.OrgUnit.name, db.OrgUnit.id))}
            room_ids = {k: v for k, v in s.execute(select(db.Classroom.name, db.Classroom.id))}
            pc_ids = {k: v for k, v in s.execute(select(db.Computer.name, db.Computer.id))}
            group_ids = {
                (room, g): gid
                for room, g, gid in s.execute(
                    select(db.Classroom.name, db.ComputerGroup.name, db.ComputerGroup.id).join(
                        db.Classroom, db.Classroom.id == db.ComputerGroup.classroom_id
                    )
                )
            }
            ou_order = list(s.scalars(select(db.OrgUnit.name).order_by(db.OrgUnit.position)))

        def computer(pc: Any) -> Json:
            return {"name": pc.name, "type": "computer", "id": pc_ids.get(pc.name, 0),
                    "scope": [], "ip": str(IPv4Interface(pc.ip).ip)}  # fmt: skip

        centers = []
        rooms_by_ou = {ou.name: ou.classrooms for ou in site.org_units}
        for ou_name in ou_order:
            rooms = []
            for room in rooms_by_ou.get(ou_name, ()):
                if not who.may(Action.VIEW, room.name):
                    continue
                inner: list[Json] = []
                for g in room.groups:
                    members = [pc for pc in room.computers if pc.group == g.name]
                    inner.append({"name": g.name, "type": "folder",
                                  "id": group_ids.get((room.name, g.name), 0),
                                  "scope": [computer(pc) for pc in members]})  # fmt: skip
                inner += [computer(pc) for pc in room.computers if not pc.group]
                rooms.append({"name": room.name, "type": "room", "id": room_ids[room.name],
                              "scope": inner})  # fmt: skip
            if rooms or who.role == "admin":
                centers.append({"name": ou_name, "type": "center", "id": ou_ids[ou_name],
                                "scope": rooms})  # fmt: skip
        return {"scope": centers}

    def clients(self, who: Who, _body: Any) -> Json:
        """Computers with an agent (ogServer lists connected clients only) and those woken
        and not yet heard from (``WOL_SENT``)."""
        results = self._last_results()
        out: list[Json] = []
        now = time.time()
        for pc in self.engine.site.computers:
            if not who.may(Action.VIEW, pc.classroom):
                continue
            live = self.engine.live.get(pc.name)
            if live is None:
                continue
            ip = str(IPv4Interface(pc.ip).ip)
            busy = live.current is not None or live.status is ClientStatus.BSY
            if state_of(live.status, busy) == "OFF":  # not connected: ogServer lists it not
                woken = self.state.woken.get(pc.name)
                if woken is not None and now - woken < 300:
                    out.append({"addr": ip, "state": WOL_SENT, "last_cmd": {"result": "unknown"}})
                continue
            self.state.woken.pop(pc.name, None)
            out.append({
                "addr": ip,
                "state": state_of(live.status, busy),
                "speed": LINK_MBPS,
                "last_cmd": {"result": results.get(pc.name, "unknown")},
            })  # fmt: skip
        return {"clients": out}

    def repositories(self, who: Who, _body: Any) -> Json:
        with self.engine.db.reading() as s:
            rows = s.execute(
                select(db.Repository.id, db.Repository.address, db.Repository.name).order_by(
                    db.Repository.position
                )
            )
            return {"repositories": [{"id": i, "ip": ip, "name": n} for i, ip, n in rows]}

    def _images(self) -> list[db.Image]:
        """The current version of every image (the highest revision not deleted)."""
        with self.engine.db.reading() as s:
            rows = s.scalars(
                select(db.Image).where(db.Image.deleted_at.is_(None)).order_by(db.Image.id)
            ).all()
            s.expunge_all()
        latest: dict[tuple[int, str], db.Image] = {}
        for img in rows:
            key = (img.repository_id, img.name)
            if key not in latest or img.revision > latest[key].revision:
                latest[key] = img
        return sorted(latest.values(), key=lambda i: i.id)

    def images(self, who: Who, _body: Any) -> Json:
        out = []
        for img in self._images():
            modified = img.created_at if isinstance(img.created_at, datetime) else None
            out.append({
                "name": img.name,
                "datasize": img.data_size,
                "size": img.stored_size,
                "modified": modified.strftime("%a %b %d %H:%M:%S %Y") if modified else "",
                "permissions": "744",
                "software_id": 0,
                "type": IMAGE_TYPES.get(img.kind, 1),
                "id": img.id,
                "repo_id": img.repository_id,
            })  # fmt: skip
        # ogServer: the repository directory's filesystem; the service does not see the
        # repository's disk, so "total" is what the images take and "free" is not known (0)
        total = sum(i.stored_size for i in self._images())
        return {"images": out, "disk": {"total": total, "free": 0}}

    def client_info(self, who: Who, body: Any) -> Json:
        name = self.one(who, _obj(body))
        pc = self.engine.site.computer(name)
        iface = IPv4Interface(pc.ip)
        with self.engine.db.reading() as s:
            row = self._row(s, name)
            room = s.get(db.Classroom, row.classroom_id)
            assert room is not None
            info = {
                "serial_number": "",
                "hardware_id": 0,
                "netdriver": "generic",
                "maintenance": False,
                "netiface": "eth0",
                "repo_id": row.repository_id,
                "livedir": self.state.live_dirs.get(name, LIVE_DIR),
                "netmask": str(iface.netmask),
                "center": room.org_unit_id,
                "remote": False,
                "room": room.id,
                "name": name,
                "boot": self.state.modes.get(name, MODES[0]),
                "mac": pc.mac,
                "id": row.id,
                "ip": str(iface.ip),
            }
        return info

    def client_setup(self, who: Who, body: Any) -> Json:
        name = self.one(who, _obj(body))
        pc = self.engine.site.computer(name)
        parts: list[Json] = []
        for d in pc.disks.disks:
            parts.append({"disk": d.number, "partition": 0, "code": TABLE_CODES.get(str(d.table), 1),
                          "size": d.size // 1024, "used_size": 0, "filesystem": 0, "os": 0,
                          "image": 0, "software": 0})  # fmt: skip
            codes = GPT_PARTITION_CODES if str(d.table) == "GPT" else PARTITION_CODES
            for p in d.partitions:
                fs = str(p.filesystem)
                used = round(100 * p.used / p.size) if p.used and p.size else 0
                parts.append({
                    "disk": d.number, "partition": p.number, "code": codes.get(fs, 0),
                    "size": p.size // 1024, "used_size": used,
                    "filesystem": FILESYSTEM_IDS.get(fs, 0), "os": 1 if p.os_name else 0,
                    "image": 0, "software": 0,
                })  # fmt: skip
        if pc.cache is not None:
            cache = pc.cache
            cache_disk = pc.disks.disk(cache.disk)
            gpt = cache_disk is not None and str(cache_disk.table) == "GPT"
            code = (GPT_PARTITION_CODES if gpt else PARTITION_CODES)["CACHE"]
            parts.append({"disk": cache.disk, "partition": cache.partition,
                          "code": code, "size": cache.size // 1024,
                          "used_size": round(100 * (cache.size - cache.free) / cache.size)
                          if cache.size else 0,
                          "filesystem": FILESYSTEM_IDS["CACHE"], "os": 0, "image": 0,
                          "software": 0})  # fmt: skip
        return {"partitions": parts}

    def session_list(self, who: Who, body: Any) -> Json:
        b = _obj(body)
        if set(b) - {"client"}:
            raise bad("GET /session takes client only")
        name = self.one(who, b)
        pc = self.engine.site.computer(name)
        return {"sessions": [
            {"disk": d.number, "partition": p.number, "name": p.os_name}
            for d in pc.disks.disks for p in d.partitions if p.os_name
        ]}  # fmt: skip

    def hardware_list(self, who: Who, body: Any) -> Json:
        name = self.one(who, _obj(body))
        hw = self.engine.site.hw.get(name) or {}
        items = [{"type": str(k), "description": str(v)} for k, v in sorted(hw.items())]
        return {"hardware": items}

    def software_list(self, who: Who, body: Any) -> Json:
        b = _obj(body)
        name = self.one(who, b)
        _required(b, "disk", "partition")
        part = self.engine.site.computer(name).disks.partition(
            _num(b, "disk"), _num(b, "partition")
        )
        return {"software": [part.os_name] if part is not None and part.os_name else []}

    def modes(self, who: Who, _body: Any) -> Json:
        return {"modes": list(MODES)}

    def oglive_list(self, who: Who, _body: Any) -> Json:
        return {"oglive": [{"distribution": "oglab", "kernel": "oglab", "architecture": "amd64",
                            "revision": "oglab", "directory": LIVE_DIR, "iso": ""}],
                "default": 0}  # fmt: skip

    def stats(self, who: Who, _body: Any) -> Json:
        now = int(time.time())
        try:
            with open("/proc/uptime") as f:
                boot = int(float(f.read().split()[0]))
        except OSError:
            boot = 0
        pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        free = os.sysconf("SC_AVPHYS_PAGES")
        return {"time": {"now": now, "boot": boot, "start": now - int(self.state.started)},
                "memory": {"size": pages * page, "free": free * page},
                "swap": {"size": 0, "free": 0}}  # fmt: skip

    # ------------------------------------------------------------------ commands

    def _clients_only(self, who: Who, body: Any) -> list[str]:
        b = _obj(body)
        _required(b, "clients")
        return self.names(who, _ips(b["clients"]))

    def wol(self, who: Who, body: Any) -> None:
        b = _obj(body)
        _required(b, "clients", "type")
        kind = _str(b, "type")
        if kind not in ("unicast", "broadcast", "1", "2"):
            raise bad(f"type: unicast or broadcast, not {kind!r}")
        names = self.names(who, _ips(b["clients"]))
        now = time.time()
        off = [n for n in names if self.engine.live[n].status is ClientStatus.OFF]
        for n in off:
            self.state.woken[n] = now
        if off and self.state.waker is not None:
            self.state.waker(off)

    def control(self, kind: str) -> Callable[[Who, Any], None]:
        def run(who: Who, body: Any) -> None:
            names = self._clients_only(who, body)
            if names:
                self.engine.control(names, kind)

        return run

    def accepted(self, who: Who, body: Any) -> None:
        """Refresh, hardware and software inventory: ogLab's database already holds each
        computer's configuration (its site); nothing to ask the client."""
        self._clients_only(who, body)

    def software_scan(self, who: Who, body: Any) -> None:
        """As :meth:`accepted`; ogServer's request names the partition (disk, partition)."""
        b = _obj(body)
        _required(b, "clients", "disk", "partition")
        _str(b, "disk"), _str(b, "partition")
        self.names(who, _ips(b["clients"]))

    def image_restore(self, who: Who, body: Any) -> None:
        b = _obj(body)
        _required(b, "clients", "disk", "partition", "name", "repository", "type", "profile", "id")
        for key in ("disk", "partition", "name", "repository", "type", "profile", "id"):
            _str(b, key)
        disk, partition = _num(b, "disk", 1), _num(b, "partition", 1)
        try:
            rt = restore_type(b["type"])
            if rt.multicast is not None:  # the session string the Restore form checks too
                MulticastSession.parse(rt.multicast)
            if rt.torrent is not None:
                TorrentSession.parse(rt.torrent)
        except OgError as exc:
            raise bad(exc.message) from None
        names = self.names(who, _ips(b["clients"]))
        if not names:
            return
        image = b["name"]
        wanted = b["id"].strip()
        for img in self._images():  # the id names the image when it is one of ours
            if wanted.isdigit() and img.id == int(wanted):
                image = img.name
                break
        spec = OperationSpec(restore=RestoreSpec(
            image=image, method=str(rt.method), disk=disk, partition=partition,
            to=Scope(computers=names), multicast=rt.multicast, torrent=rt.torrent,
        ))  # fmt: skip
        self.submit(who, spec)

    def image_create(self, who: Who, body: Any) -> None:
        b = _obj(body)
        _required(b, "clients", "disk", "partition", "code", "id", "name")
        for key in ("disk", "partition", "code", "id", "name"):
            _str(b, key)
        if "description" in b and "repository_id" not in b:
            raise bad("a new image (description) needs repository_id")
        disk, partition = _num(b, "disk", 1), _num(b, "partition", 1)
        validate_image_name(b["name"])  # FormatError: 400
        names = self.names(who, _ips(b["clients"]), Action.CREATE_IMAGE)
        for name in names:
            spec = OperationSpec(create=CreateSpec(
                computer=name, disk=disk, partition=partition, image=b["name"],
            ))  # fmt: skip
            self.submit(who, spec)

    def session(self, who: Who, body: Any) -> None:
        b = _obj(body)
        _required(b, "clients", "disk", "partition")
        disk, partition = _num(b, "disk", 1), _num(b, "partition", 1)
        names = self.names(who, _ips(b["clients"]))
        if names:
            spec = OperationSpec(boot=BootSpec(to=Scope(computers=names), disk=disk,
                                               partition=partition))  # fmt: skip
            self.submit(who, spec)

    def set_mode(self, who: Who, body: Any) -> None:
        b = _obj(body)
        if set(b) - {"clients", "mode"}:
            raise bad("POST /mode takes clients and mode only")
        _required(b, "clients", "mode")
        mode = _str(b, "mode")
        if mode not in MODES:
            raise bad(f"no boot mode {mode!r}")
        for name in self.names(who, _ips(b["clients"])):
            self.state.modes[name] = mode

    def oglive_set(self, who: Who, body: Any) -> None:
        b = _obj(body)
        if set(b) - {"clients", "name"}:
            raise bad("POST /oglive/set takes clients and name only")
        _required(b, "clients", "name")
        live = _str(b, "name")
        if live == "default":
            live = LIVE_DIR
        if live != LIVE_DIR:
            raise bad(f"no live client {live!r}")
        for name in self.names(who, _ips(b["clients"])):
            self.state.live_dirs[name] = live

    def unsupported(self, what: str) -> Callable[[Who, Any], None]:
        def run(who: Who, body: Any) -> None:
            raise bad(f"{what}: not supported by ogLab (docs/opengnsys-compat.md)")

        return run

    # ------------------------------------------------------------------ the site's tree

    def _manager(self, who: Who) -> None:
        if not who.may(Action.MANAGE, None):
            raise OgServerError(401, "only an administrator changes the site")

    def client_add(self, who: Who, body: Any) -> None:
        self._manager(who)
        b = _obj(body)
        _required(b, "name", "ip", "mac", "room")
        name, ip, mac = _str(b, "name"), _str(b, "ip"), _mac(_str(b, "mac"))
        room_id = _num(b, "room")
        try:
            address = IPv4Address(ip)
        except ValueError:
            raise bad(f"ip: {ip!r} is not an IPv4 address") from None
        if ip in self.by_ip():
            raise bad(f"a computer has address {ip} already")
        boot = b.get("boot")
        if boot is not None and boot not in MODES:
            raise bad(f"boot: no boot mode {boot!r}")
        with self.engine.db.reading() as s:
            room = s.get(db.Classroom, room_id)
            repo = s.get(db.Repository, _num(b, "repo_id")) if "repo_id" in b else None
            if room is None:
                raise bad(f"no room {room_id}")
            if "repo_id" in b and repo is None:
                raise bad(f"no repository {b['repo_id']}")
            room_name = room.name
            subnet = IPv4Network(room.subnet)
            repo_name = repo.name if repo is not None else None
        empty = not self.engine.site.classroom(room_name).computers
        if subnet.network_address == PENDING.network_address and empty:
            # a room added without its network (ogCp sends name and netmask only) takes the
            # subnet of its first computer
            subnet = IPv4Interface(f"{ip}/{subnet.prefixlen}").network
        elif address not in subnet:
            raise bad(f"ip: {ip} is not in room {room_name}'s subnet {subnet}")

        def change(doc: Json) -> None:
            for c in doc["classrooms"]:
                if c["name"] == room_name:
                    c["subnet"] = str(subnet)
                    entry: Json = {"name": name, "ip": f"{ip}/{subnet.prefixlen}", "mac": mac}
                    if repo_name:
                        entry["repository"] = repo_name
                    c["computers"].append(entry)

        self._change_site(change)
        if boot is not None:
            self.state.modes[name] = str(boot)

    def client_delete(self, who: Who, body: Any) -> None:
        self._manager(who)
        names = set(self._clients_only(who, body))
        busy = [n for n in names if self.engine.live[n].current is not None]
        if busy:
            raise bad(f"{', '.join(sorted(busy))} runs a command")

        def change(doc: Json) -> None:
            for c in doc["classrooms"]:
                c["computers"] = [pc for pc in c["computers"] if pc["name"] not in names]
                for g in c.get("groups") or []:
                    g["members"] = [m for m in g["members"] if m not in names]

        self._change_site(change)

    def center_add(self, who: Who, body: Any) -> None:
        self._manager(who)
        b = _obj(body if body is not None else {})
        _required(b, "name")
        name = _str(b, "name")
        with self.engine.db.transaction() as s:
            if s.scalar(select(db.OrgUnit).where(db.OrgUnit.name == name)) is not None:
                raise bad(f"a center {name!r} exists")
            count = len(s.scalars(select(db.OrgUnit.id)).all())
            s.add(db.OrgUnit(name=name, position=count))

    def center_delete(self, who: Who, body: Any) -> None:
        self._manager(who)
        b = _obj(body)
        _required(b, "id")
        ou_id = _num(b, "id")
        with self.engine.db.transaction() as s:
            ou = s.get(db.OrgUnit, ou_id)
            if ou is None:
                return  # ogServer's DELETE of no row succeeds
            if s.scalar(select(db.Classroom.id).where(db.Classroom.org_unit_id == ou_id)):
                raise bad(f"center {ou.name} has rooms")
            s.delete(ou)

    def room_add(self, who: Who, body: Any) -> None:
        self._manager(who)
        b = _obj(body)
        _required(b, "name", "netmask", "center")
        name, netmask = _str(b, "name"), _str(b, "netmask")
        center = _num(b, "center")
        gateway = b.get("gateway") or str(PENDING.network_address)
        if not isinstance(gateway, str):
            raise bad("gateway: an IPv4 address")
        try:  # without a gateway: the subnet is its first computer's (see client_add)
            subnet = IPv4Interface(f"{gateway}/{netmask}").network
        except ValueError:
            raise bad(f"gateway/netmask: {gateway}/{netmask} is not a subnet") from None
        with self.engine.db.reading() as s:
            ou = s.get(db.OrgUnit, center)
            if ou is None:
                raise bad(f"no center {center}")
            ou_name = ou.name
        if any(r.name == name for r in self.engine.site.classrooms):
            raise bad(f"a room {name!r} exists")

        def change(doc: Json) -> None:
            doc["classrooms"].append(
                {"name": name, "org_unit": ou_name, "subnet": str(subnet), "computers": []}
            )

        self._change_site(change)

    def room_delete(self, who: Who, body: Any) -> None:
        self._manager(who)
        b = _obj(body)
        _required(b, "id")
        with self.engine.db.reading() as s:
            room = s.get(db.Classroom, _num(b, "id"))
            if room is None:
                return
            name = room.name
        busy = [pc.name for pc in self.engine.site.classroom(name).computers
                if self.engine.live[pc.name].current is not None]  # fmt: skip
        if busy:
            raise bad(f"{', '.join(busy)} runs a command")

        def change(doc: Json) -> None:
            doc["classrooms"] = [c for c in doc["classrooms"] if c["name"] != name]

        self._change_site(change)

    def image_delete(self, who: Who, body: Any) -> None:
        self._manager(who)
        b = _obj(body)
        _required(b, "image")
        wanted = _num(b, "image")
        img = next((i for i in self._images() if i.id == wanted), None)
        if img is None:
            raise bad(f"no image {wanted}")
        repo = next(r for r in self.engine.site.repositories
                    if any(i.name == img.name for i in r.images))  # fmt: skip

        def change(doc: Json) -> None:
            for r in doc["repositories"]:
                if r["name"] == repo.name:
                    r["images"] = [i for i in r["images"] if i["name"] != img.name]

        self._change_site(change)


# --------------------------------------------------------------------------- routing

Handler = Callable[["Who", Any], "Json | None"]


@dataclass(frozen=True)
class Route:
    """One of ogServer's paths: its prefix, the handler per method, whether a body is
    required (``True``), refused (``False``) or optional (``None``) per method."""

    prefix: str
    handlers: dict[str, Handler]
    body: dict[str, bool | None]


def routes(f: OgServerFacade) -> list[Route]:
    """ogServer's table, in its matching order (prefixes: ``mode`` also matches ``modes``)."""
    post_only = {"POST": True}

    def post(prefix: str, h: Handler) -> Route:
        return Route(prefix, {"POST": h}, dict(post_only))

    return [
        Route("clients", {"GET": f.clients, "POST": f.accepted}, {"GET": None, "POST": True}),
        Route("client/setup", {"GET": f.client_setup}, {"GET": True}),
        Route("client/info", {"GET": f.client_info}, {"GET": True}),
        post("client/add", f.client_add),
        post("client/delete", f.client_delete),
        post("wol", f.wol),
        post("shell/run", f.unsupported("shell/run")),
        post("shell/output", f.unsupported("shell/output")),
        Route("session", {"GET": f.session_list, "POST": f.session}, {"GET": True, "POST": True}),
        Route("scopes", {"GET": f.scopes}, {"GET": False}),
        post("poweroff", f.control("poweroff")),
        post("reboot", f.control("reboot")),
        Route("mode", {"GET": f.modes, "POST": f.set_mode}, {"GET": None, "POST": True}),
        post("stop", f.unsupported("stop")),
        post("refresh", f.accepted),
        Route(
            "hardware", {"GET": f.hardware_list, "POST": f.accepted}, {"GET": True, "POST": True}
        ),
        Route(
            "software",
            {"GET": f.software_list, "POST": f.software_scan},
            {"GET": True, "POST": True},
        ),
        Route("repositories", {"GET": f.repositories}, {"GET": False}),
        post("repository/add", f.unsupported("repository/add")),
        post("repository/delete", f.unsupported("repository/delete")),
        Route("images", {"GET": f.images}, {"GET": False}),
        post("image/create", f.image_create),
        post("image/restore", f.image_restore),
        post("image/delete", f.image_delete),
        post("setup", f.unsupported("setup")),
        post("run/schedule", f.unsupported("run/schedule")),
        post("task/run", f.unsupported("task/run")),
        post("schedule/create", f.unsupported("schedule/create")),
        post("schedule/delete", f.unsupported("schedule/delete")),
        post("schedule/update", f.unsupported("schedule/update")),
        Route("schedule/get", {"POST": f.unsupported("schedule/get")}, {"POST": None}),
        Route("oglive/list", {"GET": f.oglive_list}, {"GET": None}),
        post("oglive/set", f.oglive_set),
        Route("center/add", {"POST": f.center_add}, {"POST": None}),
        post("center/delete", f.center_delete),
        post("room/add", f.room_add),
        post("room/delete", f.room_delete),
        post("procedure/add", f.unsupported("procedure/add")),
        post("procedure/update", f.unsupported("procedure/update")),
        post("procedure/run", f.unsupported("procedure/run")),
        post("schedule/command", f.unsupported("schedule/command")),
        post("procedure/delete", f.unsupported("procedure/delete")),
        post("task/add", f.unsupported("task/add")),
        Route("stats", {"GET": f.stats}, {"GET": None}),
    ]


def _empty(status: int, extra: dict[str, str] | None = None) -> Response:
    return Response(b"", status, headers=extra or {}, media_type=None)


async def answer(facade: OgServerFacade, table: list[Route], request: Request) -> Response:
    """One request, judged in ogServer's order: size (as it is read), method, token, JSON,
    path, method, body."""
    head = sum(len(k) + len(v) + 4 for k, v in request.headers.items()) + len(request.url.path)
    chunks: list[bytes] = []
    size = head
    async for chunk in request.stream():
        size += len(chunk)
        if size >= MAX_REQUEST:
            return _empty(413)
        chunks.append(chunk)
    body_bytes = b"".join(chunks)
    method = request.method
    if method not in ("GET", "POST"):
        return _empty(405)
    try:
        who = facade.authenticate(request.headers.get("authorization", ""))
    except OgServerError:
        return _empty(401, {"WWW-Authenticate": "Basic"})
    body: Any = None
    if body_bytes:
        try:
            body = json.loads(body_bytes)
        except ValueError:
            return _empty(404)
    cmd = request.url.path.lstrip("/")
    route = next((r for r in table if cmd.startswith(r.prefix)), None)
    if route is None:
        return _empty(404)
    handler = route.handlers.get(method)
    if handler is None:
        return _empty(405)
    need = route.body.get(method)
    if need is True and body is None:
        return _empty(400)
    if need is False and body is not None:
        return _empty(400)
    try:
        result = handler(who, body)
    except OgServerError as exc:
        log.info("ogserver %s /%s: %s", method, cmd, exc.why)
        extra = {"WWW-Authenticate": "Basic"} if exc.status == 401 else None
        return _empty(exc.status, extra)
    except OgError as exc:
        log.info("ogserver %s /%s: %s", method, cmd, exc.message)
        return _empty(400)
    except ValidationError as exc:  # a value our model refuses (ogServer: the handler fails)
        log.info("ogserver %s /%s: %s", method, cmd, exc.errors()[0].get("msg", exc))
        return _empty(400)
    text = json.dumps(result, separators=(",", ":")) if result is not None else ""
    return Response(text.encode(), 200, media_type="application/json" if text else None)


def create_ogserver_app(engine: Engine, state: CompatState | None = None) -> FastAPI:
    """ogServer's REST API over ``engine`` (serve it on its own port: its paths are at the
    root).  No lifespan of its own: the main application's housekeeping serves both."""
    facade = OgServerFacade(engine, state)
    table = routes(facade)
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, title="ogServer facade")
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]

    async def catch_all(request: Request) -> Response:
        return await answer(facade, table, request)

    app.add_api_route("/{path:path}", catch_all, methods=methods, include_in_schema=False)
    app.state.facade = facade
    return app
