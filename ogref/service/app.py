"""The service's HTTP face: a versioned JSON API (``/api/v1``) on FastAPI for three callers, each
with its own credential and nothing of the others':

- **agents** (``POST /api/v1/agent/sync``): requests signed with the computer's own Ed25519 key
  and numbered (:mod:`.keys`); the headers are authenticated before the body is read, the body is
  bounded and read with a deadline, and every answer is signed by the service over the request
  it answers.  An agent's credential opens nothing else;
- **console users and scripts** (everything under ``/api/v1`` but the agent and OS routes):
  a bearer API token (``ogt_…``) or a session cookie from ``POST /api/v1/login`` — with the
  session's CSRF token in ``X-CSRF-Token`` on every change; teachers see and act on their
  classrooms only (:func:`.users.can`);
- **a booted OS** (``POST /api/v1/os``): unsigned — an installed system carries no lab key — and
  matched to a computer by the address it comes from, never by what it claims.

It routes and checks; the work is the engine's (:mod:`.engine`).  Routes that call the engine
are coroutines, so they run on the event loop thread as the engine requires (a plain ``def``
route runs in a worker thread); authenticating a console caller only reads the database, so a
busy console does not hold the write lock the engine's agent exchanges take.  ``openapi()`` is the document
kept in ``docs/openapi.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import delete, select, update

from ogref.console import images_for_partition, operation_for, plan_restore, plan_to_dict
from ogref.errors import ConfigError, OgError
from ogref.model import Image as Img
from ogref.model.protocol import MulticastSession, TorrentSession
from ogref.service import db, store
from ogref.service.db import Database, utcnow
from ogref.service.engine import Engine, RefusedError
from ogref.service.keys import (
    AuthError,
    MalformedError,
    ReplayedError,
    check_request_headers,
    new_computer_key,
    public_raw,
    request_computer,
    sign_answer,
)
from ogref.service.users import (
    Action,
    check_csrf,
    hash_password,
    new_csrf,
    new_session,
    token_hash,
    verify_password,
)
from ogref.site import OperationSpec, RestoreSpec, validation_error

log = logging.getLogger("ogref.service")

Json = dict[str, Any]
API = "/api/v1"
AGENT_BODY_LIMIT = 1 << 20  # an agent's sync: status, a batch of log lines, results
CONSOLE_BODY_LIMIT = 4 << 20  # a site import
BODY_DEADLINE = 10.0  # seconds to send a body: a slow sender is cut off, others unaffected
MAX_LOG_STREAMS = 256  # followed tracking logs at once (each polls the database)
LOG_STREAM_POLL = 0.5  # seconds between looks for new lines
SESSION_COOKIE = "og_session"
SESSION_HOURS = 12
TOKEN_TOUCH = timedelta(seconds=60)  # how often a token's last use is written at most


@dataclass
class Caller:
    """An authenticated console user."""

    user_id: int
    name: str
    role: str
    classrooms: frozenset[str]
    csrf: str | None  # a browser session's; None for an API token

    def may(self, action: Action, classroom: str | None) -> bool:
        from ogref.service.users import can

        return can(self.role, self.classrooms, action, classroom)


# --------------------------------------------------------------------------- request models


class SubmitIn(BaseModel):
    """Run the site's operation ``index`` (its ``operations:`` list), or ``operation``: one
    console command written as a site file's ``operations:`` entry (``{"restore": {"image": …,
    "method": …, "to": {"classroom": …}}}``, ``deploy``, ``update_cache``, ``create``,
    ``clone``, ``boot``)."""

    index: int | None = Field(default=None, ge=0, le=100_000)
    operation: dict[str, Any] | None = None


class UserIn(BaseModel):
    """A console user: ``admin`` (everything) or ``teacher`` (the ``classrooms`` given)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")
    password: str = Field(min_length=8, max_length=1024)
    role: str = Field(default="teacher", pattern="^(admin|teacher)$")
    classrooms: list[Annotated[str, Field(min_length=1, max_length=63)]] = Field(
        default_factory=list, max_length=1000
    )


class PreviewIn(BaseModel):
    """The Restore form before it is sent: ``mode`` (restore, deploy or update_cache) and the
    command (``image``, ``method``, ``to``, multicast/torrent fields) as in a site file."""

    mode: str = Field(default="restore", pattern="^(restore|deploy|update_cache)$")
    command: dict[str, Any]


class ControlIn(BaseModel):
    names: list[Annotated[str, Field(min_length=1, max_length=63)]] = Field(max_length=10_000)
    kind: str = Field(default="reboot", pattern="^(reboot|poweroff)$")


class LoginIn(BaseModel):
    user: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, at most ``limit`` bytes, within :data:`BODY_DEADLINE`."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPException(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0

    async def collect() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"body larger than {limit} bytes")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), BODY_DEADLINE)
    except TimeoutError:
        raise HTTPException(408, f"body not sent within {BODY_DEADLINE:.0f} s") from None
    return b"".join(chunks)


class BoundedBody:
    """ASGI middleware: every request body is at most ``limit`` bytes and arrives within
    :data:`BODY_DEADLINE` seconds of its headers (413 / 408 otherwise).  The event loop serves
    others meanwhile: a slow sender holds up nobody but itself."""

    def __init__(self, app: Any, limit: int = CONSOLE_BODY_LIMIT) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await JSONResponse({"detail": f"body larger than {self.limit} bytes"}, 413)(
                    scope, receive, send
                )
                return
        loop = asyncio.get_running_loop()
        start = loop.time()
        size = 0
        complete = False

        async def bounded() -> Any:
            nonlocal size, complete
            if complete:
                return await receive()  # after the body: a disconnect, whenever it comes
            left = BODY_DEADLINE - (loop.time() - start)
            try:
                message = await asyncio.wait_for(receive(), max(0.0, left))
            except TimeoutError:
                raise HTTPException(408, f"body not sent within {BODY_DEADLINE:.0f} s") from None
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.limit:
                    raise HTTPException(413, f"body larger than {self.limit} bytes")
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, bounded, send)


def _raw_path(request: Request) -> str:
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string") or b""
    return raw.decode("latin-1") + (("?" + query.decode("latin-1")) if query else "")


def operation_spec(data: dict[str, Any]) -> OperationSpec:
    """A console command from its JSON (as a site file's ``operations:`` entry); a bad one is
    a 422 naming the field."""
    from pydantic import ValidationError

    try:
        spec = OperationSpec.model_validate(data)
    except ValidationError as exc:
        err = validation_error(exc, "operation")
        raise HTTPException(422, {"message": err.reason, "field": err.path or None}) from None
    if spec.at:
        raise HTTPException(422, {"message": "at: a console command runs now", "field": "at"})
    body = getattr(spec, spec.kind)
    if isinstance(body, RestoreSpec):  # the form's session fields: their message, their field
        for name, parse in (
            ("multicast", MulticastSession.parse),
            ("torrent", TorrentSession.parse),
        ):
            text = getattr(body, name)
            if text is not None:
                try:
                    parse(text)
                except OgError as exc:
                    raise HTTPException(422, {"message": exc.message, "code": int(exc.code),
                                              "field": f"{spec.kind}.{name}"}) from None  # fmt: skip
    return spec


def image_json(image: Img) -> dict[str, Any]:
    """An image as the console lists it."""
    return {
        "name": image.name,
        "repository": image.repository,
        "filesystem": str(image.filesystem),
        "os": image.os_name,
        "data_bytes": image.data_size,
        "stored_bytes": image.stored_size,
        "format": str(image.format),
        "revision": image.revision,
        "checksum": image.checksum,
    }


def create_app(engine: Engine, server_key: Any) -> FastAPI:
    """The application over ``engine``; ``server_key`` signs the answers to agents."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async def housekeeping() -> None:
            while True:
                await asyncio.sleep(1.0)
                engine.tick()

        task = asyncio.create_task(housekeeping())
        try:
            yield
        finally:
            task.cancel()
            engine.flush()
            log.info("stopped: buffered log lines and statuses written")

    app = FastAPI(
        lifespan=lifespan,
        title="ogLab console service",
        version="1",
        description="OpenGnSys's server role: console, agents and booted systems (see "
        "docs/security.md for who may call what).",
    )
    app.add_middleware(BoundedBody)
    database: Database = engine.db
    credentials: dict[str, tuple[bytes | None, int]] = {}
    with database.reading() as s:
        for name, key, seq in s.execute(
            select(db.Computer.name, db.Computer.public_key, db.Computer.seq)
        ):
            credentials[name] = (bytes(key) if key else None, int(seq or 0))

    # ------------------------------------------------------------------ agents

    def signed(request_headers: Any, status: int, payload: dict[str, Any]) -> Response:
        from ogref.service.keys import RequestId

        body = json.dumps(payload).encode()
        headers = sign_answer(server_key, RequestId.from_headers(request_headers), status, body)
        return Response(body, status, headers=headers, media_type="application/json")

    @app.post(f"{API}/agent/sync", tags=["agent"], summary="an agent's exchange (signed)")
    async def agent_sync(request: Request) -> Response:
        try:
            name = request_computer(request.headers)
            key, last_seq = credentials.get(name, (None, 0))
            pending = check_request_headers(
                request.method, _raw_path(request), request.headers, key, last_seq
            )
        except ReplayedError as exc:
            return signed(request.headers, 409, {"error": str(exc), "last_seq": exc.last_seq})
        except MalformedError as exc:
            raise HTTPException(400, str(exc)) from None
        except AuthError as exc:
            raise HTTPException(401, str(exc)) from None
        body = await read_body(request, AGENT_BODY_LIMIT)
        try:
            seq = pending.verify(body)
        except AuthError as exc:
            raise HTTPException(401, str(exc)) from None
        current = credentials.get(name, (key, last_seq))
        if current[1] >= seq:  # the same request twice at once: the first one wins
            return signed(request.headers, 409, {"error": "replayed", "last_seq": current[1]})
        credentials[name] = (key, seq)
        engine.seqs[name] = seq
        try:
            payload = json.loads(body or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("not an object")
            answer = await engine.sync(name, payload)
        except (ValueError, KeyError, TypeError, RefusedError) as exc:
            return signed(request.headers, 400, {"error": f"{type(exc).__name__}: {exc}"})
        return signed(request.headers, 200, answer)

    # ------------------------------------------------------------------ a booted OS

    @app.post(f"{API}/os", tags=["os"], summary="a booted system reports (unsigned)")
    @app.post("/api/os", tags=["os"], summary="the same, where OGAgent's stand-in posts it")
    async def os_started(request: Request) -> dict[str, str]:
        body = await read_body(request, 64 << 10)
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise ValueError("not an object")
            peer = request.client.host if request.client else ""
            return {"computer": engine.os_started(payload, peer)}
        except (ValueError, RefusedError) as exc:
            raise HTTPException(400, str(exc)) from None

    # ------------------------------------------------------------------ console users

    def caller(request: Request) -> Caller:
        """The console user of a request.  Only reads — a token's ``last_used_at`` is written
        at most every :data:`TOKEN_TOUCH_S` — so a busy console never holds the database's
        write lock the engine's agent exchanges need."""
        if "x-og-computer" in request.headers:
            raise HTTPException(403, "a computer's credential opens the agent route only")
        auth = request.headers.get("authorization", "")
        now = utcnow()
        touch: int | None = None
        with database.reading() as s:
            if auth.lower().startswith("bearer "):
                token = auth[7:].strip()
                row = s.scalar(
                    select(db.ApiToken).where(db.ApiToken.token_hash == token_hash(token))
                )
                if row is None:
                    raise HTTPException(401, "unknown API token")
                if row.last_used_at is None or now - row.last_used_at > TOKEN_TOUCH:
                    touch = row.id
                user_id, csrf = row.user_id, None
            else:
                cookie = request.cookies.get(SESSION_COOKIE)
                sess = (
                    s.scalar(
                        select(db.UserSession).where(
                            db.UserSession.token_hash == token_hash(cookie)
                        )
                    )
                    if cookie
                    else None
                )
                if sess is None or sess.expires_at < now:
                    raise HTTPException(401, "log in first (POST /api/v1/login) or send a token")
                user_id, csrf = sess.user_id, sess.csrf_token
            user = s.get(db.User, user_id)
            if user is None:
                raise HTTPException(401, "no such user")
            rooms = s.scalars(
                select(db.Classroom.name)
                .join(db.UserClassroom, db.UserClassroom.classroom_id == db.Classroom.id)
                .where(db.UserClassroom.user_id == user.id)
            )
            who = Caller(user.id, user.name, user.role, frozenset(rooms), csrf)
        if touch is not None:
            with database.transaction() as s:
                s.execute(
                    update(db.ApiToken).where(db.ApiToken.id == touch).values(last_used_at=now)
                )
        return who

    def changing(request: Request, who: Caller = Depends(caller)) -> Caller:
        """A state-changing console request: a browser session must send its CSRF token."""
        if who.csrf is not None and not check_csrf(who.csrf, request.headers.get("x-csrf-token")):
            raise HTTPException(403, "missing or wrong X-CSRF-Token")
        return who

    def classrooms_of(names: list[str]) -> set[str]:
        return {engine.site.computer(n).classroom for n in names}

    def require(who: Caller, action: Action, rooms: set[str] | None) -> None:
        if rooms is None:
            if not who.may(action, None):
                raise HTTPException(403, f"{who.name} may not {action}")
            return
        denied = sorted(r for r in rooms if not who.may(action, r))
        if denied:
            raise HTTPException(403, f"{who.name} may not {action} in {', '.join(denied)}")

    @app.post(f"{API}/login", tags=["console"], summary="open a browser session")
    def login(data: LoginIn, response: Response) -> dict[str, str]:
        opened = open_session(data.user, data.password)
        if opened is None:
            raise HTTPException(401, "wrong user or password")
        token, csrf = opened
        response.set_cookie(
            SESSION_COOKIE, token, httponly=True, samesite="strict", max_age=SESSION_HOURS * 3600
        )
        return {"user": data.user, "csrf": csrf}

    def open_session(name: str, password: str) -> tuple[str, str] | None:
        """A new browser session of ``name`` (its cookie value and CSRF token), or None."""
        with database.transaction() as s:
            user = s.scalar(select(db.User).where(db.User.name == name))
            if not verify_password(user.password_hash if user else None, password):
                return None
            assert user is not None
            token, digest = new_session()
            csrf = new_csrf()
            s.add(
                db.UserSession(
                    token_hash=digest,
                    user_id=user.id,
                    csrf_token=csrf,
                    expires_at=utcnow() + timedelta(hours=SESSION_HOURS),
                )
            )
        return token, csrf

    @app.post(f"{API}/logout", tags=["console"])
    def logout(
        request: Request, response: Response, who: Caller = Depends(changing)
    ) -> dict[str, str]:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            with database.transaction() as s:
                s.execute(
                    update(db.UserSession)
                    .where(db.UserSession.token_hash == token_hash(cookie))
                    .values(expires_at=utcnow())
                )
        response.delete_cookie(SESSION_COOKIE)
        return {"user": who.name}

    @app.get(f"{API}/me", tags=["console"])
    def me(who: Caller = Depends(caller)) -> dict[str, Any]:
        return {"user": who.name, "role": who.role, "classrooms": sorted(who.classrooms)}

    @app.post(f"{API}/operations", tags=["console"], summary="run one of the site's operations")
    async def submit(data: SubmitIn, who: Caller = Depends(changing)) -> dict[str, Any]:
        if (data.index is None) == (data.operation is None):
            raise HTTPException(422, "give either index (a site operation) or operation")
        if data.index is not None:
            if data.index >= len(engine.site.operations):
                raise HTTPException(404, f"the site has no operation {data.index}")
            spec = engine.site.operations[data.index]
        else:
            spec = operation_spec(data.operation or {})
        action = Action.CREATE_IMAGE if spec.kind == "create" else Action.OPERATE
        require(who, action, classrooms_of(engine._scope(spec)))
        try:
            return engine.submit_spec(spec, who.user_id, site_index=data.index)
        except RefusedError as exc:
            raise HTTPException(422, str(exc)) from None

    @app.post(
        f"{API}/plan",
        tags=["console"],
        summary="preview a Restore / Deploy / updateCache: each computer's method and why",
    )
    def preview(data: PreviewIn, who: Caller = Depends(caller)) -> dict[str, Any]:
        spec = operation_spec({data.mode: data.command})
        body = getattr(spec, spec.kind)
        require(who, Action.VIEW, classrooms_of(engine._scope(spec)))
        plan = plan_restore(engine.site, body, operation_for(spec.kind))
        return plan_to_dict(plan)

    @app.get(
        f"{API}/computers/{{name}}/images",
        tags=["console"],
        summary="the Restore form's two columns: images of the same and of another filesystem",
    )
    def restorable(
        name: str, disk: int = 1, partition: int = 1, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        if name not in engine.live:
            raise HTTPException(404, f"no computer {name!r}")
        require(who, Action.VIEW, classrooms_of([name]))
        same, other = images_for_partition(engine.site, name, disk, partition)
        return {
            "computer": name,
            "disk": disk,
            "partition": partition,
            "same_filesystem": [image_json(i) for i in same],
            "other_filesystem": [image_json(i) for i in other],
        }

    @app.get(f"{API}/operations", tags=["console"], summary="the command history, newest first")
    async def operations(
        limit: int = 50, before: int | None = None, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        engine.flush()
        with database.reading() as s:
            views = store.recent_operations(s, max(1, min(limit, 500)), before)
        out = []
        for v in views:
            names = [r.computer for r in v.records]
            rooms = classrooms_of([n for n in names if n in engine.live])
            if not all(who.may(Action.VIEW, r) for r in rooms):
                continue  # a teacher sees the operations of their classrooms only
            statuses: dict[str, int] = {}
            for r in v.records:
                statuses[r.status] = statuses.get(r.status, 0) + 1
            out.append({
                "op": v.id, "kind": v.kind, "spec": v.spec, "state": v.state,
                "submitted": v.submitted_at.timestamp(),
                "finished": v.finished_at.timestamp() if v.finished_at else None,
                "computers": len(names), "statuses": statuses,
                "switched": sum(1 for r in v.records if r.switched),
            })  # fmt: skip
        return {"operations": out}

    @app.get(f"{API}/operations/{{op_id}}", tags=["console"])
    async def operation(op_id: int, who: Caller = Depends(caller)) -> dict[str, Any]:
        try:
            out = engine.operation(op_id)
        except KeyError:
            raise HTTPException(404, f"no operation {op_id}") from None
        names = [r["name"] for r in out["records"]]
        require(who, Action.VIEW, classrooms_of(names))
        return out

    @app.get(f"{API}/computers", tags=["console"], summary="status colours and activity")
    async def computers(who: Caller = Depends(caller)) -> dict[str, Any]:
        visible = [
            c for c in engine.clients() if who.may(Action.VIEW, engine.site.computer(c["name"]).classroom)
        ]  # fmt: skip
        return {"clients": visible}

    @app.get(f"{API}/computers/{{name}}/log", tags=["console"], summary="a tracking log")
    async def computer_log(
        name: str,
        after: int = 0,
        limit: int = 1000,
        who: Caller = Depends(caller),
    ) -> dict[str, Any]:
        if name not in engine.live:
            raise HTTPException(404, f"no computer {name!r}")
        require(who, Action.VIEW, classrooms_of([name]))
        engine.flush()
        with database.reading() as s:
            lines = store.tail_log(s, name, max(0, after), max(1, min(limit, 10_000)))
        return {
            "computer": name,
            "lines": [
                {"id": x.id, "t": x.t.timestamp(), "text": x.text, "op": x.operation_id}
                for x in lines
            ],
        }

    streams = asyncio.Semaphore(MAX_LOG_STREAMS)

    @app.get(
        f"{API}/computers/{{name}}/log/stream",
        tags=["console"],
        summary="a tracking log as it grows (server-sent events, one line per event)",
        response_class=StreamingResponse,
    )
    async def computer_log_stream(
        name: str, request: Request, after: int = 0, who: Caller = Depends(caller)
    ) -> StreamingResponse:
        if name not in engine.live:
            raise HTTPException(404, f"no computer {name!r}")
        require(who, Action.VIEW, classrooms_of([name]))
        if streams.locked():
            raise HTTPException(503, f"{MAX_LOG_STREAMS} logs are being followed; try later")
        await streams.acquire()

        async def events() -> AsyncIterator[str]:
            last = max(0, after)
            try:
                while not await request.is_disconnected():
                    engine.flush()
                    with database.reading() as s:
                        lines = store.tail_log(s, name, last, 1000)
                    for x in lines:
                        last = x.id
                        data = {"t": x.t.timestamp(), "text": x.text, "op": x.operation_id}
                        yield f"id: {x.id}\ndata: {json.dumps(data)}\n\n"
                    if not lines:
                        yield ": idle\n\n"  # a comment: keeps proxies and the client awake
                        await asyncio.sleep(LOG_STREAM_POLL)
            finally:
                streams.release()

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get(
        f"{API}/computers/stream",
        tags=["console"],
        summary="status changes as they happen (server-sent events; the first event is all)",
        response_class=StreamingResponse,
    )
    async def computers_stream(
        request: Request, who: Caller = Depends(caller)
    ) -> StreamingResponse:
        if streams.locked():
            raise HTTPException(503, f"{MAX_LOG_STREAMS} streams are open; try later")
        await streams.acquire()

        def view() -> dict[str, Json]:
            out = {}
            for c in engine.clients():
                if who.may(Action.VIEW, engine.site.computer(c["name"]).classroom):
                    out[c["name"]] = {k: c[k] for k in ("name", "status", "colour", "activity")}
            return out

        async def events() -> AsyncIterator[str]:
            sent: dict[str, Json] = {}
            try:
                while not await request.is_disconnected():
                    now = view()
                    changed = [v for k, v in now.items() if sent.get(k) != v]
                    if changed:
                        sent = now
                        yield f"data: {json.dumps(changed)}\n\n"
                    else:
                        yield ": idle\n\n"
                    await asyncio.sleep(LOG_STREAM_POLL)
            finally:
                streams.release()

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post(f"{API}/computers/control", tags=["console"], summary="reboot or power off")
    async def control(data: ControlIn, who: Caller = Depends(changing)) -> dict[str, Any]:
        unknown = [n for n in data.names if n not in engine.live]
        if unknown:
            raise HTTPException(404, f"no computer {unknown[0]!r}")
        require(who, Action.OPERATE, classrooms_of(data.names))
        return {"queued": engine.control(data.names, data.kind)}

    @app.post(f"{API}/halt", tags=["console"], summary="stop every agent (labs)")
    async def halt(who: Caller = Depends(changing)) -> dict[str, str]:
        require(who, Action.MANAGE, None)
        engine.halt()
        return {}

    @app.post(
        f"{API}/computers/{{name}}/credential",
        tags=["console"],
        summary="register a computer: a new key pair (the private key is shown once)",
    )
    async def credential(name: str, who: Caller = Depends(changing)) -> dict[str, str]:
        require(who, Action.MANAGE, None)
        if name not in engine.live:
            raise HTTPException(404, f"no computer {name!r}")
        pem, raw = new_computer_key()
        with database.transaction() as s:
            s.execute(
                update(db.Computer).where(db.Computer.name == name).values(public_key=raw, seq=0)
            )
        credentials[name] = (raw, 0)
        engine.seqs[name] = 0
        return {"computer": name, "private_key_pem": pem.decode()}

    @app.put(f"{API}/users/{{name}}", tags=["console"], summary="create or update a console user")
    def put_user(name: str, data: UserIn, who: Caller = Depends(changing)) -> dict[str, Any]:
        require(who, Action.MANAGE, None)
        if name != data.name:
            raise HTTPException(422, "the name in the path and in the body differ")
        with database.transaction() as s:
            rooms = {r.name: r.id for r in s.scalars(select(db.Classroom))}
            unknown = sorted(set(data.classrooms) - set(rooms))
            if unknown:
                raise HTTPException(422, f"no classroom {unknown[0]!r}")
            user = s.scalar(select(db.User).where(db.User.name == name))
            if user is None:
                user = db.User(name=name, role=data.role, password_hash="")
                s.add(user)
            user.role = data.role
            user.password_hash = hash_password(data.password)
            s.flush()
            s.execute(delete(db.UserClassroom).where(db.UserClassroom.user_id == user.id))
            for room in data.classrooms:
                s.add(db.UserClassroom(user_id=user.id, classroom_id=rooms[room]))
        return {"user": name, "role": data.role, "classrooms": sorted(data.classrooms)}

    @app.get(f"{API}/server-key", tags=["console"], summary="the key agents pin")
    def server_public(who: Caller = Depends(caller)) -> dict[str, str]:
        from ogref.service.keys import public_key_text

        return {"public_key": public_key_text(public_raw(server_key))}

    @app.exception_handler(OgError)
    async def og_error(_request: Request, exc: OgError) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.message, "code": int(exc.code), "name": f"OG_ERR_{exc.code.name}",
             **({"field": exc.path} if isinstance(exc, ConfigError) and exc.path else {})},
            status_code=422,
        )  # fmt: skip

    from ogref.service.web.pages import Hooks, mount

    mount(app, engine, Hooks(caller, changing, require, classrooms_of, open_session))
    app.state.credentials = credentials
    return app


def openapi(app: FastAPI) -> str:
    """The API document as kept in ``docs/openapi.json``."""
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"
