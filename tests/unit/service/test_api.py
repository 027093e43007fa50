"""The console service end to end in one process: real database (an SQLite file; the command
flow and the restart also on PostgreSQL), real FastAPI app (through its ASGI interface), the
real agent link and its signatures.

Covers issue 12's "done when" list: a computer's credential used for another computer or a
console route is refused; a replayed request is refused; a forged answer is refused by the
agent; an oversized or slow body is refused without holding up others; a restart in the
middle of an operation loses and duplicates nothing; teachers are held to their classrooms;
browser sessions need their CSRF token; random payloads only ever get a 4xx with a message.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ogref.agent.link import SYNC_PATH, ServiceLink
from ogref.service import db
from ogref.service.app import create_app
from ogref.service.db import Database
from ogref.service.engine import Engine
from ogref.service.keys import (
    load_or_create_server_key,
    private_key_from_pem,
    public_key_text,
    public_raw,
    save_private_key,
    sign_request,
    verify_answer,
)
from ogref.service.main import ensure_admin
from ogref.service.migrations import upgrade
from ogref.service.site_io import import_site
from ogref.service.users import hash_password, new_api_token

from .conftest import SITE

SITE_OPS = {
    **SITE,
    "operations": [
        {"restore": {"image": "win10", "method": "UNICAST-DIRECT", "to": {"classroom": "aula1"}}},
        {"restore": {"image": "win10", "method": "UNICAST-DIRECT", "to": {"classroom": "aula2"}}},
    ],
}


class Service:
    """One service over a database (an SQLite file unless ``url`` is given), and what its tests
    need of it."""

    def __init__(
        self, tmp: Path, site: dict[str, Any] | None = None, url: str | None = None
    ) -> None:
        self.tmp = tmp
        self.url = url or f"sqlite:///{tmp / 'svc.db'}"
        upgrade(self.url)
        self.database = Database(self.url)
        with self.database.transaction() as s:
            import_site(s, site if site is not None else SITE_OPS)
        token_file = tmp / "admin.token"
        ensure_admin(self.database, token_file, None)
        self.admin = token_file.read_text().strip()
        self.key = load_or_create_server_key(tmp / "server.key")
        self.server_public = public_key_text(public_raw(self.key))
        self.start()

    def start(self) -> None:
        self.engine = Engine(self.database, server_key=self.key, heartbeat_timeout=30)
        self.app = create_app(self.engine, self.key)
        self.client = TestClient(self.app)

    def console(self, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.admin}", **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)

    def register(self, name: str) -> Path:
        """A computer's key as the console issues it, saved for its agent."""
        reply = self.console("POST", f"/api/v1/computers/{name}/credential")
        assert reply.status_code == 200, reply.text
        path = self.tmp / f"{name}.pem"
        save_private_key(path, reply.json()["private_key_pem"].encode())
        return path

    def sync(self, name: str, key: Path, seq: int, body: dict[str, Any]) -> Any:
        from ogref.service.keys import load_private_key

        data = json.dumps(body).encode()
        headers = sign_request(load_private_key(key), name, "POST", SYNC_PATH, seq, data)
        reply = self.client.post(SYNC_PATH, content=data, headers=headers)
        return headers, reply


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    s = Service(tmp_path)
    yield s
    s.database.close()


@pytest.fixture
def any_svc(empty_url: str, tmp_path: Path) -> Iterator[Service]:
    """A service on each backend (SQLite file, PostgreSQL)."""
    s = Service(tmp_path, url=empty_url)
    yield s
    s.database.close()


def test_an_agent_exchange_is_signed_both_ways(svc: Service) -> None:
    key = svc.register("pc01")
    headers, reply = svc.sync("pc01", key, 1, {"status": "OPG", "ip": "10.0.1.11"})
    assert reply.status_code == 200, reply.text
    verify_answer(bytes.fromhex(svc.server_public), headers, 200, reply.content, reply.headers)
    assert reply.json() == {"command": None}
    # a replayed request: refused, and the refusal is signed too (with the counter to catch up)
    headers, again = svc.sync("pc01", key, 1, {"status": "OPG"})
    assert again.status_code == 409 and again.json()["last_seq"] == 1
    verify_answer(bytes.fromhex(svc.server_public), headers, 409, again.content, again.headers)


def test_a_credential_opens_its_own_computer_and_nothing_else(svc: Service) -> None:
    key1 = svc.register("pc01")
    svc.register("pc02")
    _, as_other = svc.sync("pc02", key1, 1, {"status": "OPG"})  # pc01's key claiming pc02
    assert as_other.status_code == 401
    headers = sign_request(
        private_key_from_pem(key1.read_bytes()), "pc01", "GET", "/api/v1/computers", 2, b""
    )
    console = svc.client.get("/api/v1/computers", headers=headers)
    assert console.status_code == 403
    _, unknown = svc.sync("nobody", key1, 1, {})
    assert unknown.status_code in (400, 401)
    assert svc.client.get("/api/v1/computers").status_code == 401  # no credential at all


def test_a_forged_answer_is_refused_by_the_agent(svc: Service, tmp_path: Path) -> None:
    key = svc.register("pc01")
    forger = TestClient(create_app(svc.engine, load_or_create_server_key(tmp_path / "evil.key")))
    link = ServiceLink(
        "http://testserver", "pc01", key, svc.server_public, tmp_path / "seq",
        state=lambda: {"status": "OPG"}, on_command=lambda c: None, busy=lambda: False,
        http=forger,
    )  # fmt: skip
    from ogref.service.keys import BadSignatureError

    with pytest.raises(BadSignatureError):
        link._exchange({"status": "OPG", "wait": 0})
    honest = ServiceLink(
        "http://testserver", "pc01", key, svc.server_public, tmp_path / "seq",
        state=lambda: {"status": "OPG"}, on_command=lambda c: None, busy=lambda: False,
        http=svc.client,
    )  # fmt: skip
    assert honest._exchange({"status": "OPG", "wait": 0}) == {"command": None}


def test_an_oversized_body_is_refused_before_it_is_read(svc: Service) -> None:
    key = svc.register("pc01")
    big = {"status": "OPG", "log": [{"t": 0, "text": "x" * 1000}] * 2000}
    _, reply = svc.sync("pc01", key, 1, big)
    assert reply.status_code == 413
    huge_site = svc.console("POST", "/api/v1/operations", content=b"{" + b" " * (5 << 20) + b"}")
    assert huge_site.status_code in (413, 422)


def _agent(svc: Service, name: str, tmp: Path, results: dict[str, Any]) -> ServiceLink:
    """A minimal agent: takes each command and reports success at once."""
    key = svc.register(name)
    link: ServiceLink

    def take(cmd: dict[str, Any]) -> None:
        results.setdefault(name, []).append(cmd)
        link.done(cmd["id"], {"code": 0, "message": "done", "started": time.time(),
                              "finished": time.time()})  # fmt: skip

    link = ServiceLink(
        "http://testserver", name, key, svc.server_public, tmp / f"{name}.seq",
        state=lambda: {"status": "OPG", "ip": "10.0.1.11"}, on_command=take,
        busy=lambda: False, http=svc.client,
    )  # fmt: skip
    return link


def test_a_command_reaches_its_agent_and_the_result_is_recorded(
    any_svc: Service, tmp_path: Path
) -> None:
    svc = any_svc
    got: dict[str, Any] = {}
    links = [_agent(svc, f"pc0{i}", tmp_path, got) for i in range(1, 5)]
    for link in links:  # say hello: the service knows they are up
        link._exchange({"status": "OPG", "wait": 0})
    sub = svc.console("POST", "/api/v1/operations", json={"index": 0}).json()
    assert sorted(sub["computers"]) == ["pc01", "pc02", "pc03", "pc04"]
    for link in links:
        answer = link._exchange({"status": "OPG", "wait": 0})
        assert answer["command"]["request"]["image"] == "win10"
        link.on_command(answer["command"])
        _lines, done, _ready = link.outbox.take()
        link._exchange({"status": "OPG", "done": done, "log": [{"t": time.time(), "text": "hi"}],
                        "wait": 0})  # fmt: skip
    status = svc.console("GET", f"/api/v1/operations/{sub['op']}").json()
    assert status["done"] and all(r["status"] == "ok" for r in status["records"])
    assert all(any(line["text"] == "hi" for line in r["log"]) for r in status["records"])


def test_a_restart_in_the_middle_loses_and_duplicates_nothing(
    any_svc: Service, tmp_path: Path
) -> None:
    svc = any_svc
    got: dict[str, Any] = {}
    links = {f"pc0{i}": _agent(svc, f"pc0{i}", tmp_path, got) for i in range(1, 5)}
    for link in links.values():
        link._exchange({"status": "OPG", "wait": 0})
    sub = svc.console("POST", "/api/v1/operations", json={"index": 0}).json()
    started = {
        n: links[n]._exchange({"status": "BSY", "wait": 0})["command"] for n in ("pc01", "pc02")
    }
    assert all(started.values())
    # pc01 finishes before the restart; pc02 is running; pc03/pc04 never asked
    links["pc01"]._exchange({"status": "OPG", "wait": 0, "done": [
        {"id": started["pc01"]["id"], "result": {"code": 0, "message": "ok"}}]})  # fmt: skip
    svc.engine.flush()
    svc.start()  # a new engine over the same database: the old one is gone
    after = svc.console("GET", f"/api/v1/operations/{sub['op']}").json()
    by = {r["name"]: r for r in after["records"]}
    assert by["pc01"]["final"] and by["pc01"]["status"] == "ok"
    assert not by["pc02"]["final"] and "sent" in by["pc02"]
    for link in links.values():
        link.http = svc.client
    # pc02 reports after the restart; pc03 and pc04 get their command only now, once each
    assert links["pc02"]._exchange({"status": "OPG", "wait": 0, "done": [
        {"id": started["pc02"]["id"], "result": {"code": 0, "message": "ok"}}]})["command"] is None  # fmt: skip
    for n in ("pc03", "pc04"):
        cmd = links[n]._exchange({"status": "OPG", "wait": 0})["command"]
        assert cmd is not None and cmd["op"] == sub["op"]
        links[n]._exchange({"status": "OPG", "wait": 0, "done": [
            {"id": cmd["id"], "result": {"code": 0, "message": "ok"}}]})  # fmt: skip
        assert links[n]._exchange({"status": "OPG", "wait": 0})["command"] is None
    final = svc.console("GET", f"/api/v1/operations/{sub['op']}").json()
    assert final["done"] and len(final["records"]) == 4
    assert all(r["status"] == "ok" for r in final["records"])
    with svc.database.reading() as s:
        assert s.query(db.Operation).count() == 1


def test_what_sqlite_takes_and_postgresql_cannot_store_is_handled_alike(
    any_svc: Service, tmp_path: Path
) -> None:
    """PostgreSQL's text holds no NUL, its VARCHAR(n) refuses longer text and INTEGER is 32-bit;
    SQLite takes all three.  A NUL in a name asked for finds nothing, in a log line it is kept
    (as U+FFFD on PostgreSQL); ids past any column are not found; an agent's texts are cut to
    their columns; an exit code no column holds is refused with a 400, and the agent's next
    report is taken."""
    svc = any_svc
    nul = "pc\x0001"
    assert svc.client.post("/api/v1/login", json={"user": nul, "password": "x"}).status_code == 401
    assert (
        svc.console("POST", "/api/v1/computers/control", json={"names": [nul]}).status_code == 404
    )
    assert svc.console("GET", "/api/v1/computers/pc%0001/log").status_code == 404
    assert svc.console("GET", f"/api/v1/operations/{2**40}").status_code == 404
    far = svc.console("GET", f"/api/v1/computers/pc01/log?after={10**30}")
    assert far.status_code == 200 and far.json()["lines"] == []
    link = _agent(svc, "pc01", tmp_path, {})
    link._exchange({"status": "OPG", "wait": 0, "log": [{"t": time.time(), "text": "a\x00b"}]})
    svc.engine.flush()
    log = svc.console("GET", "/api/v1/computers/pc01/log").json()
    assert [line["text"] for line in log["lines"]][-1] in ("a\x00b", "a\ufffdb"), log
    sub = svc.console("POST", "/api/v1/operations", json={"index": 0}).json()
    cmd = link._exchange({"status": "BSY", "wait": 0})["command"]
    long = {"method_used": "M" * 40, "os_hostname": "h" * 300, "stream_md5": "x" * 40,
            "message": "m\x00" * 5000}  # fmt: skip
    with pytest.raises(ValueError, match=r"400.*code .* out of range"):
        link._exchange({"status": "OPG", "wait": 0, "done": [
            {"id": cmd["id"], "result": {"code": 2**40, **long}}]})  # fmt: skip
    link._exchange({"status": "OPG", "wait": 0, "done": [
        {"id": cmd["id"], "result": {"code": 0, **long}}]})  # fmt: skip
    rec = svc.console("GET", f"/api/v1/operations/{sub['op']}").json()["records"][0]
    assert (rec["status"], rec["final"]) == ("ok", True)
    assert (rec["method_used"], rec["os_hostname"], rec["stream_md5"]) == (
        "M" * 32, "h" * 255, "x" * 32)  # fmt: skip
    assert rec["message"].replace("\ufffd", "\x00") == long["message"]


def test_two_flushes_at_once_do_not_deadlock(any_svc: Service) -> None:
    """Housekeeping and a console request may flush at the same moment: each writes the
    computers' replay counters and statuses, in the same order, so PostgreSQL never has to
    abort one of them as a deadlock (SQLite runs them one after the other)."""
    engine = any_svc.engine
    names = sorted(engine.live)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(order: list[str]) -> None:
        try:
            start.wait()
            for i in range(1, 40):
                for n in order:
                    engine.seqs[n] = i
                    engine.live[n].dirty = True
                engine.flush()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(o,)) for o in (names, names[::-1])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []


def _teacher_token(svc: Service, classrooms: list[str], name: str = "ana") -> str:
    """A teacher given ``classrooms``, and an API token of theirs."""
    with svc.database.transaction() as s:
        teacher = db.User(name=name, role="teacher", password_hash=hash_password("secret"))
        s.add(teacher)
        s.flush()
        for room_name in classrooms:
            room = s.query(db.Classroom).filter_by(name=room_name).one()
            s.add(db.UserClassroom(user_id=teacher.id, classroom_id=room.id))
        token, digest = new_api_token()
        s.add(db.ApiToken(token_hash=digest, user_id=teacher.id))
    return token


def test_teachers_act_on_their_classrooms_only(svc: Service) -> None:
    token = _teacher_token(svc, ["aula2"])
    as_ana = {"Authorization": f"Bearer {token}"}
    seen = svc.client.get("/api/v1/computers", headers=as_ana).json()["clients"]
    assert {c["name"] for c in seen} == {"lab01", "lab02"}
    assert (
        svc.client.post("/api/v1/operations", json={"index": 0}, headers=as_ana).status_code == 403
    )
    assert (
        svc.client.post("/api/v1/operations", json={"index": 1}, headers=as_ana).status_code == 200
    )
    assert svc.client.post("/api/v1/halt", headers=as_ana).status_code == 403


def test_a_browser_session_needs_its_csrf_token(svc: Service) -> None:
    with svc.database.transaction() as s:
        admin = s.query(db.User).filter_by(name="admin").one()
        admin.password_hash = hash_password("pw")
    assert (
        svc.client.post("/api/v1/login", json={"user": "admin", "password": "no"}).status_code
        == 401
    )
    login = svc.client.post("/api/v1/login", json={"user": "admin", "password": "pw"})
    assert login.status_code == 200
    csrf = login.json()["csrf"]
    assert svc.client.get("/api/v1/me").json()["user"] == "admin"  # the cookie suffices to read
    assert svc.client.post("/api/v1/operations", json={"index": 0}).status_code == 403
    ok = svc.client.post("/api/v1/operations", json={"index": 0}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200


def test_a_slow_body_is_cut_off_without_holding_up_others(tmp_path: Path) -> None:
    import socket

    import uvicorn

    from ogref.service import app as app_module

    svc = Service(tmp_path)
    app_module.BODY_DEADLINE = 1.0
    try:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(svc.app, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{")  # fmt: skip
        import httpx

        t0 = time.monotonic()
        fast = httpx.get(f"http://127.0.0.1:{port}/api/v1/me",
                         headers={"Authorization": f"Bearer {svc.admin}"}, timeout=5)  # fmt: skip
        assert fast.status_code == 200 and time.monotonic() - t0 < 1.0
        slow.settimeout(5)
        answer = slow.recv(4096)
        assert b" 408 " in answer.split(b"\r\n")[0] or b" 422 " in answer.split(b"\r\n")[0], answer
        server.should_exit = True
        thread.join(5)
    finally:
        app_module.BODY_DEADLINE = 10.0
        svc.database.close()


JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    route=st.sampled_from(["/api/v1/operations", "/api/v1/computers/control", "/api/v1/login"]),
    payload=JSONISH,
)
def test_random_console_payloads_get_a_4xx_with_a_message(
    any_svc: Service, route: str, payload: Any
) -> None:
    svc = any_svc
    reply = svc.console("POST", route, json=payload)
    assert 200 <= reply.status_code < 500, (route, payload, reply.status_code, reply.text)
    if reply.status_code >= 400:
        assert reply.json().get("detail"), reply.text


SITE_BOOT = {
    **SITE,
    "classrooms": [
        {
            "name": "aula1",
            "subnet": "10.0.1.0/24",
            "defaults": {"disks": [{"partitions": [{"number": 1, "size": "20GiB", "fs": "EXT4"}]}]},
            "computers": {"count": 2},
        }
    ],
    "operations": [{"boot": {"to": {"classroom": "aula1"}, "disk": 1, "partition": 1}}],
}


def test_a_real_boot_ends_with_the_os_report_or_fails_when_the_live_client_returns(
    tmp_path: Path,
) -> None:
    """The agent's "rebooting" is not a success: the record ends ok when the restored OS
    reports, and fails (6) when the computer comes back to a (new) live client instead."""
    svc = Service(tmp_path, SITE_BOOT)
    try:
        keys = {n: svc.register(n) for n in ("pc01", "pc02")}
        seq = dict.fromkeys(keys, 0)

        def sync(n: str, body: dict[str, Any]) -> dict[str, Any]:
            seq[n] += 1
            _, reply = svc.sync(n, keys[n], seq[n], {"wait": 0, **body})
            assert reply.status_code == 200, reply.text
            return reply.json()  # type: ignore[no-any-return]

        ips = {"pc01": "10.0.1.11", "pc02": "10.0.1.12"}
        for n in keys:
            sync(n, {"status": "OPG", "ip": ips[n], "session": f"{n}-a"})
        sub = svc.console("POST", "/api/v1/operations", json={"index": 0}).json()
        for n in keys:
            cmd = sync(n, {"status": "OPG", "session": f"{n}-a"})["command"]
            assert cmd["kind"] == "boot"
            result = {"code": 0, "message": "boot once: UEFI: BootNext 0006; rebooting",
                      "awaiting_os": True}  # fmt: skip
            sync(n, {"status": "OPG", "session": f"{n}-a",
                     "done": [{"id": cmd["id"], "result": result}]})  # fmt: skip
        status = svc.console("GET", f"/api/v1/operations/{sub['op']}").json()
        assert not status["done"]  # the agent's word is not the end
        svc.engine.os_started({"hostname": "pc01", "status": "LNX"}, ips["pc01"])
        sync("pc02", {"status": "OPG", "session": "pc02-b"})  # a new live client: no OS
        status = svc.console("GET", f"/api/v1/operations/{sub['op']}").json()
        by = {r["name"]: r for r in status["records"]}
        assert status["done"]
        assert by["pc01"]["status"] == "ok" and "OS started: hostname pc01" in by["pc01"]["message"]
        assert by["pc02"]["status"] == "failed" and by["pc02"]["code"] == 6
        assert "came back to the live client" in by["pc02"]["message"]
    finally:
        svc.database.close()
