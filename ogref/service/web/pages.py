"""The console's pages (``/``, ``/login``, ``/ui/…``): HTML over the engine the API serves.

Each page authenticates with the API's own ``caller`` (a session cookie; a page without one
redirects to the login form), checks the API's roles with ``require``, and changes nothing
without the session's CSRF token (htmx sends it in ``X-CSRF-Token`` on every request).  The
Restore form builds the same command a site file's ``operations:`` entry holds and goes through
the same validation (:func:`ogref.service.app.operation_spec`) and decision core
(:func:`ogref.console.plan_restore`) as ``POST /api/v1/plan`` and ``/operations``; a bad value is
shown next to its field and nothing is submitted.

Not here: what a command does (the engine), who may do what (:mod:`ogref.service.users`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from ogref.errors import OgErr, OgError
from ogref.model import ALL_METHODS, ClientStatus
from ogref.model.method import Staging
from ogref.service.users import Action
from ogref.service.web import course, i18n

HERE = Path(__file__).parent
SESSION_COOKIE = "og_session"
SESSION_SECONDS = 12 * 3600
FORM_LIMIT = 64 << 10
# which form input a session-string error is about (the parser's message names it)
_MCAST_FIELDS = (
    ("port", "mcast_port"),
    ("duplex", "mcast_duplex"),
    ("address", "mcast_address"),
    ("bitrate", "mcast_rate"),
    ("rate", "mcast_rate"),
    ("nclients", "mcast_clients"),
    ("maxwait", "mcast_maxwait"),
)
ICONS = {
    "OFF": "⏻",
    "INI": "…",
    "OPG": "og",
    "BSY": "⟳",
    "WIN": "⊞",
    "WINS": "⊞",
    "LNX": "🐧",
    "LNXS": "🐧",
    "OSX": "",
    "MNT": "⚙",
}


@dataclass(frozen=True)
class Hooks:
    """What the pages use of the API: authentication, roles, sessions."""

    caller: Callable[[Request], Any]
    changing: Callable[[Request, Any], Any]
    require: Callable[[Any, Action, set[str] | None], None]
    classrooms_of: Callable[[list[str]], set[str]]
    open_session: Callable[[str, str], tuple[str, str] | None]


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["ICONS"] = ICONS
    env.globals["METHODS"] = [str(m) for m in ALL_METHODS]
    env.filters["ogerr"] = lambda code: (
        f"OG_ERR_{OgErr(code).name}" if code in OgErr._value2member_map_ else str(code)
    )
    return env


def mount(app: FastAPI, engine: Any, hooks: Hooks) -> None:
    """Add the console's pages and static files to ``app``."""
    env = _env()
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def render(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        lang = i18n.pick(request.cookies.get("lang"), request.headers.get("accept-language"))
        tr = i18n.translations(lang)
        env.install_gettext_translations(tr, newstyle=True)  # type: ignore[attr-defined]
        html = env.get_template(template).render(request=request, lang=lang, **ctx)
        return HTMLResponse(html, status)

    def who_or_login(request: Request) -> Any:
        try:
            return hooks.caller(request)
        except HTTPException:
            return None

    def to_login() -> RedirectResponse:
        return RedirectResponse("/login", 303)

    def tree(who: Any) -> list[dict[str, Any]]:
        """Organisational units → classrooms → groups, as far as ``who`` may see."""
        out = []
        for ou in engine.site.org_units:
            rooms = [
                {"name": r.name, "groups": [g.name for g in r.groups], "n": len(r.computers)}
                for r in ou.classrooms
                if who.may(Action.VIEW, r.name)
            ]
            if rooms:
                out.append({"name": ou.name, "classrooms": rooms})
        return out

    def statuses() -> dict[str, dict[str, Any]]:
        return {c["name"]: c for c in engine.clients()}

    # ------------------------------------------------------------------ session

    @app.get("/login", include_in_schema=False)
    async def login_form(request: Request) -> Response:
        return render(request, "login.html", error=None)

    @app.post("/login", include_in_schema=False)
    async def login_post(request: Request) -> Response:
        form = await _form(request)
        # argon2 takes tens of milliseconds and 64 MiB: off the event loop
        opened = await run_in_threadpool(
            hooks.open_session, form.get("user", ""), form.get("password", "")
        )
        if opened is None:
            return render(request, "login.html", 401, error=True, user=form.get("user", ""))
        token, _csrf = opened
        reply = RedirectResponse("/", 303)
        reply.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict",
                         max_age=SESSION_SECONDS)  # fmt: skip
        return reply

    @app.get("/lang/{lang}", include_in_schema=False)
    async def set_language(lang: str, request: Request) -> Response:
        back = request.headers.get("referer") or "/"
        reply = RedirectResponse(back if back.startswith(str(request.base_url)) else "/", 303)
        if lang in i18n.LANGUAGES:
            reply.set_cookie("lang", lang, samesite="strict", max_age=365 * 86400)
        return reply

    # ------------------------------------------------------------------ the console

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> Response:
        who = who_or_login(request)
        if who is None:
            return to_login()
        t = tree(who)
        if t:
            return RedirectResponse(f"/ui/classrooms/{t[0]['classrooms'][0]['name']}", 303)
        return render(request, "empty.html", who=who, tree=t)

    @app.get("/ui/classrooms/{name}", include_in_schema=False)
    async def classroom(name: str, request: Request) -> Response:
        who = who_or_login(request)
        if who is None:
            return to_login()
        room = _classroom(engine, name)
        hooks.require(who, Action.VIEW, {name})
        st = statuses()
        pcs = [
            {"name": pc.name, "ip": pc.ip.split("/")[0], "group": pc.group,
             "status": st[pc.name]["status"], "activity": st[pc.name]["activity"]}
            for pc in room.computers
        ]  # fmt: skip
        return render(request, "classroom.html", who=who, tree=tree(who), room=room, pcs=pcs,
                      legend=[(s.value, s.meaning) for s in ClientStatus])  # fmt: skip

    def selection(request: Request, who: Any, action: Action = Action.OPERATE) -> dict[str, Any]:
        """The map's selection of a form's query: its scope, computers, first computer, room."""
        q = request.query_params
        scope, names = _scope_of(engine, q.get("classroom", ""), q.get("group", ""),
                                 q.getlist("pc"), q.get("range", ""))  # fmt: skip
        if not names:
            raise HTTPException(404, "no computer selected")
        hooks.require(who, action, hooks.classrooms_of(names))
        first = engine.site.computer(names[0])
        room = engine.site.classroom(first.classroom)
        return {"who": who, "tree": tree(who), "room": room, "scope": scope, "names": names,
                "first": first.name, "parts": _partitions(first)}  # fmt: skip

    def restore_page(request: Request, wizard: bool) -> Response:
        who = who_or_login(request)
        if who is None:
            return to_login()
        ctx = selection(request, who)
        parts, room, names = ctx["parts"], ctx["room"], ctx["names"]
        disk, part = (parts[0]["disk"], parts[0]["partition"]) if parts else (1, 1)
        same, other = _columns(engine, ctx["first"], disk, part)
        m = room.multicast
        # the wizard always goes through the CACHE: its methods are the CACHE ones; the
        # decision core refuses any other (a 422 by the method field)
        methods = [str(x) for x in ALL_METHODS if not wizard or x.staging is Staging.CACHE]
        mode = request.query_params.get("mode", "update_cache" if wizard else "restore")
        return render(
            request, "restore.html", **ctx, disk=disk, partition=part,
            same=same, other=other, mode=mode, wizard=wizard, methods=methods,
            mcast={"port": m.port, "duplex": str(m.duplex), "address": m.address,
                   "rate": m.rate_mbit, "clients": len(names), "maxwait": m.max_wait},
            torrent={"mode": str(room.torrent.mode), "time": room.torrent.seed_time},
        )  # fmt: skip

    @app.get("/ui/restore", include_in_schema=False)
    async def restore_form(request: Request) -> Response:
        if request.query_params.get("mode") in ("deploy", "update_cache"):
            return restore_page(request, wizard=True)
        return restore_page(request, wizard=False)

    @app.get("/ui/deploy", include_in_schema=False)
    async def deploy_wizard(request: Request) -> Response:
        """Asistente Deploy: updateCache only, or updateCache + restore; no automatic switch."""
        return restore_page(request, wizard=True)

    @app.get("/ui/create", include_in_schema=False)
    async def create_form(request: Request) -> Response:
        """Crear imagen: a reference computer's partition into the repository (or its CACHE)."""
        who = who_or_login(request)
        if who is None:
            return to_login()
        ctx = selection(request, who, Action.CREATE_IMAGE)
        repo = engine.site.repository(engine.site.computer(ctx["first"]).repository)
        return render(request, "create.html", **ctx, images=[i.name for i in repo.images],
                      computers=_room_computers(engine, ctx["room"]))  # fmt: skip

    @app.get("/ui/clone", include_in_schema=False)
    async def clone_form(request: Request) -> Response:
        """Asistente de particiones remotas: a MASTER's partition (or cached image) to others."""
        who = who_or_login(request)
        if who is None:
            return to_login()
        ctx = selection(request, who)
        master = engine.site.computer(ctx["first"])
        cached = [i.name for i in master.cache.images] if master.cache else []
        return render(request, "clone.html", **ctx, cached=cached,
                      computers=_room_computers(engine, ctx["room"]))  # fmt: skip

    @app.get("/ui/boot", include_in_schema=False)
    async def boot_form(request: Request) -> Response:
        """Iniciar sesión (boot once) / Netboot avanzado (permanent boot target + reboot)."""
        who = who_or_login(request)
        if who is None:
            return to_login()
        ctx = selection(request, who)
        return render(request, "boot.html", **ctx)

    @app.get("/ui/partitions", include_in_schema=False)
    async def partitions(request: Request, computer: str) -> Response:
        """The partition chooser of a reference computer or MASTER (the forms reload it)."""
        who = who_or_login(request)
        if who is None:
            return to_login()
        if computer not in engine.live:
            raise HTTPException(404, f"no computer {computer!r}")
        hooks.require(who, Action.VIEW, hooks.classrooms_of([computer]))
        return render(request, "_partitions.html",
                      parts=_partitions(engine.site.computer(computer)))  # fmt: skip

    @app.get("/ui/range", include_in_schema=False)
    async def name_range(request: Request, classroom: str, range: str = "") -> Response:
        """The computers of the map a range names (``pc03-pc10``, ``pc01,pc05-pc07``), as the
        server expands it when a form is sent; the map ticks them."""
        who = who_or_login(request)
        if who is None:
            return to_login()
        room = _classroom(engine, classroom)
        hooks.require(who, Action.VIEW, {classroom})
        try:
            _scope, names = _scope_of(engine, classroom, "", [], range)
        except HTTPException as exc:
            return JSONResponse({"names": [], "error": str(exc.detail)}, 422)
        mine = {pc.name for pc in room.computers}
        names = [n for n in names if n in mine]
        if not names:
            return JSONResponse(
                {"names": [], "error": f"no computer of {classroom} in {range!r}"}, 422
            )
        return JSONResponse({"names": names})

    @app.get("/ui/catalogue", include_in_schema=False)
    async def catalogue(request: Request) -> Response:
        """Each repository's images: versions, sizes, filesystem, checksums, cached copies."""
        who = who_or_login(request)
        if who is None:
            return to_login()
        visible = {pc.name for pc in engine.site.computers
                   if who.may(Action.VIEW, pc.classroom)}  # fmt: skip
        return render(request, "catalogue.html", who=who, tree=tree(who),
                      repos=_catalogue(engine, visible))  # fmt: skip

    @app.get("/ui/images", include_in_schema=False)
    async def images(request: Request, computer: str, part: str = "1:1") -> Response:
        who = who_or_login(request)
        if who is None:
            return to_login()
        hooks.require(who, Action.VIEW, hooks.classrooms_of([computer]))
        disk, partition = (int(x) for x in part.split(":", 1))
        same, other = _columns(engine, computer, disk, partition)
        return render(request, "_images.html", same=same, other=other)

    def checked(form: dict[str, str], who: Any) -> tuple[Any, dict[str, Any], dict[str, str]]:
        """A form as a console command, validated as the API validates it and run through the
        decision core: (the command, what the core says of it, errors by field).  Any error
        means nothing may be submitted."""
        spec, errors = _command(form)
        if errors:
            return None, {}, errors
        from ogref.service.app import operation_spec

        try:
            op = operation_spec(spec)
            action = Action.CREATE_IMAGE if op.kind == "create" else Action.VIEW
            hooks.require(who, action, hooks.classrooms_of(engine._scope(op)))
            return op, _dry_run(engine, op), {}
        except HTTPException as exc:
            if exc.status_code == 403:
                raise
            return None, {}, _field_errors(exc.detail)
        except OgError as exc:
            return None, {}, {_og_field(exc, form.get("form", "restore")):
                              f"{exc.message} ({int(exc.code)} OG_ERR_{exc.code.name})"}  # fmt: skip

    @app.post("/ui/preview", include_in_schema=False)
    async def preview(request: Request) -> Response:
        who = hooks.changing(request, hooks.caller(request))
        form = await _form(request)
        op, said, errors = checked(form, who)
        if errors:
            return render(request, "_errors.html", errors=errors)
        return render(request, "_preview.html", kind=op.kind, plan=said.get("plan"),
                      boot=said.get("boot"), create=said.get("create"), errors={})  # fmt: skip

    @app.post("/ui/submit", include_in_schema=False)
    async def submit(request: Request) -> Response:
        who = hooks.changing(request, hooks.caller(request))
        form = await _form(request)
        op, _said, errors = checked(form, who)
        if errors:
            return render(request, "_errors.html", errors=errors)
        action = Action.CREATE_IMAGE if op.kind == "create" else Action.OPERATE
        hooks.require(who, action, hooks.classrooms_of(engine._scope(op)))
        from ogref.service.engine import RefusedError

        try:
            result = engine.submit_spec(op, who.user_id)
        except RefusedError as exc:
            return render(request, "_errors.html", errors={_og_field(exc, op.kind): str(exc)})
        return Response(status_code=204, headers={"HX-Redirect": f"/ui/operations/{result['op']}"})

    @app.post("/ui/control", include_in_schema=False)
    async def control(request: Request) -> Response:
        who = hooks.changing(request, hooks.caller(request))
        form = await _form(request, multi=True)
        one = {k: v[-1] for k, v in form.items()}
        kind = one.get("kind", "reboot")
        try:
            _scope, names = _scope_of(engine, one.get("classroom", ""), one.get("group", ""),
                                      form.get("pc", []), one.get("range", ""))  # fmt: skip
        except HTTPException as exc:
            return render(request, "_errors.html", errors={"": str(exc.detail)})
        if kind not in ("reboot", "poweroff") or not names:
            return render(request, "_errors.html", errors={"": "select computers first"})
        hooks.require(who, Action.OPERATE, hooks.classrooms_of(names))
        engine.control(names, kind)
        return render(request, "_errors.html", errors={}, note=f"{kind}: {', '.join(names)}")

    @app.get("/ui/operations", include_in_schema=False)
    async def history(request: Request) -> Response:
        who = who_or_login(request)
        if who is None:
            return to_login()
        ops = [o for o in _history(engine, who) if o]
        return render(request, "history.html", who=who, tree=tree(who), ops=ops)

    @app.get("/ui/operations/{op_id}", include_in_schema=False)
    async def operation(op_id: int, request: Request, part: str = "") -> Response:
        who = who_or_login(request)
        if who is None:
            return to_login()
        try:
            op = engine.operation(op_id)
        except KeyError:
            raise HTTPException(404, f"no operation {op_id}") from None
        hooks.require(who, Action.VIEW, hooks.classrooms_of([r["name"] for r in op["records"]]))
        rows = [_row(r) for r in op["records"]]
        summary: dict[str, int] = {}
        for r in rows:
            # a failed computer counts as failed, whatever method it had started with
            key = (r["used"] if r["status"] == "ok" else None) or r["status"]
            summary[key] = summary.get(key, 0) + 1
        ctx = {"who": who, "tree": tree(who), "op": op, "rows": rows, "summary": summary}
        return render(request, "_operation.html" if part else "operation.html", **ctx)

    @app.get("/ui/computers/{name}/log", include_in_schema=False)
    async def tracking_log(name: str, request: Request) -> Response:
        who = who_or_login(request)
        if who is None:
            return to_login()
        if name not in engine.live:
            raise HTTPException(404, f"no computer {name!r}")
        hooks.require(who, Action.VIEW, hooks.classrooms_of([name]))
        return render(request, "log.html", who=who, tree=tree(who), name=name)

    course.mount(app, engine, hooks)  # the course exercise's page and report (course.py)


# --------------------------------------------------------------------------- helpers of mount


async def _form(request: Request, multi: bool = False) -> Any:
    """A form-encoded body (bounded by the service's body limit)."""
    body = await request.body()
    if len(body) > FORM_LIMIT:
        raise HTTPException(413, "form too large")
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return parsed if multi else {k: v[-1] for k, v in parsed.items()}


def _classroom(engine: Any, name: str) -> Any:
    try:
        return engine.site.classroom(name)
    except OgError:
        raise HTTPException(404, f"no classroom {name!r}") from None


def _scope_of(
    engine: Any, classroom: str, group: str, picked: list[str], span: str
) -> tuple[dict[str, Any], list[str]]:
    """The command's ``to:`` from the map's selection — ticked computers or a range first, then
    a group, then the whole classroom — and the computers it names."""
    from ogref.site import Scope, expand_names

    try:
        if picked or span.strip():
            names = list(picked)
            for part in span.replace(" ", "").split(","):
                if part:
                    names += expand_names(part)
            names = list(dict.fromkeys(n for n in names if n in engine.live))
            scope: dict[str, Any] = {"computers": names}
        elif group:
            scope = {"classroom": classroom, "group": group}
        else:
            scope = {"classroom": classroom}
        return scope, [pc.name for pc in engine.site.scope(Scope(**scope))]
    except (OgError, ValueError) as exc:
        raise HTTPException(422, str(exc)) from None


def _columns(engine: Any, computer: str, disk: int, partition: int) -> tuple[list[Any], list[Any]]:
    from ogref.console import images_for_partition

    try:
        same, other = images_for_partition(engine.site, computer, disk, partition)
    except OgError:
        return [], []
    return list(same), list(other)


def _partitions(pc: Any) -> list[dict[str, Any]]:
    """A computer's partitions a form may name (not its CACHE nor swap)."""
    return [
        {"disk": d.number, "partition": p.number, "fs": str(p.filesystem), "size": p.size,
         "os": p.os_name or ""}
        for d in pc.disks.disks for p in d.partitions
        if str(p.filesystem) not in ("CACHE", "LINUX-SWAP")
    ]  # fmt: skip


def _room_computers(engine: Any, room: Any) -> list[str]:
    return [pc.name for pc in room.computers if pc.name in engine.live]


def _command(form: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """A console form as a command (a site file's ``operations:`` entry) and the errors found
    before validation (a missing image, a non-number).  ``form``: restore (the Restore form and
    the Deploy wizard, ``mode`` restore, deploy or update_cache), create, clone or boot."""
    import json

    errors: dict[str, str] = {}
    which = form.get("form", "restore")
    try:
        scope = json.loads(form.get("scope", "{}"))
        disk, partition = (int(x) for x in form.get("part", "1:1").split(":", 1))
    except ValueError:
        errors["part"] = "choose a partition"
        scope, disk, partition = {}, 1, 1
    if which == "create":
        name = form.get("name", "").strip()
        if not name:
            errors["name"] = "name the image"
        if not form.get("computer"):
            errors["computer"] = "choose the reference computer"
        target = form.get("target", "REPO")
        return {"create": {"computer": form.get("computer", ""), "disk": disk,
                           "partition": partition, "image": name, "target": target}}, errors  # fmt: skip
    if which == "clone":
        if not form.get("master"):
            errors["master"] = "choose the MASTER"
        cmd: dict[str, Any] = {"master": form.get("master", ""), "disk": disk,
                               "partition": partition, "to": scope,
                               "method": form.get("clone_method", "MULTICAST")}  # fmt: skip
        if form.get("from_cache"):
            cmd["from_cache"] = form["from_cache"]
        return {"clone": cmd}, errors
    if which == "boot":
        return {"boot": {"to": scope, "disk": disk, "partition": partition,
                         "permanent": form.get("permanent") == "on"}}, errors  # fmt: skip
    mode = form.get("mode", "restore")
    if mode not in ("restore", "deploy", "update_cache"):
        errors["mode"] = "restore, deploy or update_cache"
    image = form.get("image", "")
    if not image:
        errors["image"] = "choose an image"
    method = form.get("method", "")
    cmd = {
        "image": image, "method": method, "disk": disk, "partition": partition, "to": scope,
        "allow_fs_change": form.get("allow_fs_change") == "on",
        "postconf": form.get("postconf") == "on",
    }  # fmt: skip
    if method.startswith("MULTICAST"):
        cmd["multicast"] = ":".join(
            form.get(k, "").strip()
            for k in ("mcast_port", "mcast_duplex", "mcast_address")
        ) + f":{form.get('mcast_rate', '').strip()}M:" + ":".join(
            form.get(k, "").strip() for k in ("mcast_clients", "mcast_maxwait")
        )  # fmt: skip
    if method.startswith("TORRENT"):
        cmd["torrent"] = (
            f"{form.get('torrent_mode', '').strip()}:{form.get('torrent_time', '').strip()}"
        )
    return {mode: cmd}, errors


def _dry_run(engine: Any, op: Any) -> dict[str, Any]:
    """What the decision core says of a command before it is sent (its errors raise): the
    per-computer plan of a restore, wizard or clone, a boot's steps per computer, the
    createImage call.  The engine plans the same way when the command is submitted."""
    from ogref.console import operation_for, plan_boot, plan_clone, plan_restore, plan_to_dict

    body = getattr(op, op.kind)
    if op.kind in ("restore", "deploy", "update_cache"):
        return {"plan": plan_to_dict(plan_restore(engine.site, body, operation_for(op.kind)))}
    if op.kind == "clone":
        return {"plan": plan_to_dict(plan_clone(engine.site, body))}
    if op.kind == "boot":
        rows = []
        for pc in engine.site.scope(body.to):
            try:
                b = plan_boot(pc, body.disk, body.partition, body.permanent)
                rows.append({"computer": pc.name, "status": str(b.status), "steps": list(b.steps),
                             "tracked": b.tracked_boots, "code": 0, "message": ""})  # fmt: skip
            except OgError as exc:
                rows.append({"computer": pc.name, "status": "", "steps": [],
                             "tracked": 0, "code": int(exc.code), "message": exc.message})  # fmt: skip
        return {"boot": rows}
    from ogref.core.create import CreateRequest, CreateSession
    from ogref.core.events import Log, Source

    engine.site.computer(body.computer)  # an unknown computer: its OpenGnSys error
    request = CreateRequest(body.disk, body.partition, Source(body.target), body.image,
                            hostname=body.computer)  # fmt: skip
    first = CreateSession(request, engine.site.policy).start()
    call = next((c.text for c in first if isinstance(c, Log)), "")
    return {"create": {"computer": body.computer, "call": call,
                       "revision": _next_revision(engine, body)}}  # fmt: skip


def _next_revision(engine: Any, body: Any) -> int | None:
    """The revision a create into the repository publishes (None: into a CACHE)."""
    if body.target != "REPO":
        return None
    repo = engine.site.repository(engine.site.computer(body.computer).repository)
    old = next((i for i in repo.images if i.name == body.image), None)
    return 1 if old is None else old.revision + 1


def _og_field(exc: Exception, form: str) -> str:
    """Which field of ``form`` an OpenGnSys error from the decision core is about."""
    text = str(getattr(exc, "message", exc)).lower()
    if form == "create" and ("name" in text or "image" in text):
        return "name"
    if form == "clone" and ("multicast" in text or "unicast" in text):
        return "clone_method"
    if "master" in text:
        return "master"
    if any(m.lower() in text for m in ("method", "cache, not", "direct", "unicast", "torrent")):
        return "method"
    if "partition" in text or "disk" in text:
        return "part"
    if "image" in text or "repository" in text:
        return "image"
    return ""


def _catalogue(engine: Any, visible: set[str]) -> list[dict[str, Any]]:
    """Each repository's images, every version, and the computers (of ``visible``) holding a
    copy in their CACHE: as the site describes them, and after the service's own cache updates
    (a finished updateCache, Deploy wizard or CACHE restore)."""
    from ogref.service import store

    engine.flush()
    with engine.db.reading() as s:
        versions = store.image_versions(s)
        filled = store.cached_by_operations(s)
    out = []
    for repo in engine.site.repositories:
        current = {i.name: i for i in repo.images}
        holders: dict[str, dict[str, str]] = {}
        for pc in engine.site.computers:
            if pc.name not in visible or pc.repository != repo.name or pc.cache is None:
                continue
            for c in pc.cache.images:
                img = current.get(c.name)
                fresh = c.complete and img is not None and c.checksum == img.checksum
                holders.setdefault(c.name, {})[pc.name] = "current" if fresh else (
                    "partial" if not c.complete else "stale")  # fmt: skip
        for (image, pc_name), op_id in filled.get(repo.name, {}).items():
            if pc_name in visible:
                holders.setdefault(image, {})[pc_name] = f"#{op_id}"
        images = []
        for name in dict.fromkeys([*current, *(v.name for v in versions.get(repo.name, []))]):
            rows = [v for v in versions.get(repo.name, []) if v.name == name]
            by_how: dict[str, list[str]] = {}
            for pc_name, how in sorted(holders.get(name, {}).items()):
                by_how.setdefault(how, []).append(pc_name)
            images.append({"name": name, "versions": rows, "cached": by_how})
        out.append({"name": repo.name, "address": repo.address, "images": images})
    return out


def _field_errors(detail: Any) -> dict[str, str]:
    """An API 422 detail as {form field: message}."""
    if not isinstance(detail, dict):
        return {"": str(detail)}
    message = str(detail.get("message", detail))
    field = str(detail.get("field") or "")
    leaf = field.split(".")[-1] if field else ""
    if leaf == "multicast":
        low = message.lower()
        for word, name in _MCAST_FIELDS:
            if word in low:
                return {name: message}
        return {"mcast_port": message}
    if leaf == "torrent":
        return {"torrent_time" if "time" in message else "torrent_mode": message}
    if leaf in ("disk", "partition"):
        return {"part": message}
    return {leaf if leaf in ("image", "method", "mode") else "": message}


def _history(engine: Any, who: Any) -> list[dict[str, Any]]:
    from ogref.service import store

    engine.flush()
    with engine.db.reading() as s:
        views = store.recent_operations(s, 100)
    out = []
    for v in views:
        rooms = {engine.site.computer(r.computer).classroom for r in v.records
                 if r.computer in engine.live}  # fmt: skip
        if not all(who.may(Action.VIEW, r) for r in rooms):
            continue
        counts: dict[str, int] = {}
        for r in v.records:
            key = (r.method_used if r.status == "ok" else None) or r.status
            counts[key] = counts.get(key, 0) + 1
        body = v.spec if isinstance(v.spec, dict) else {}
        out.append({
            "id": v.id, "kind": v.kind, "image": body.get("image", body.get("name", "")),
            "method": body.get("method", ""), "state": v.state,
            "submitted": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v.submitted_at.timestamp())),
            "n": len(v.records), "counts": counts,
            "switched": sum(1 for r in v.records if r.switched),
        })  # fmt: skip
    return out


def _row(r: dict[str, Any]) -> dict[str, Any]:
    started, finished = r.get("started") or r.get("sent"), r.get("finished")
    return {
        **r,
        "used": r.get("method_used"),
        "duration": f"{finished - started:.0f} s" if started and finished else "",
        "mib": f"{(r.get('bytes_moved') or 0) / 2**20:.0f}",
    }
