"""ogServer's agent protocol (:mod:`ogref.service.compat.agent`): the messages both ways as the
public sources have them (``tests/fixtures/ogclient/messages.yaml``), and ogClients — scripted
to behave as ogClient's ``ogRest.py`` does — driven over real TCP by the engine: connected,
refreshed, probed, given a restore planned through the ogServer facade, their answers read
back as each client's result."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ogref.service.compat.agent import (
    Answer,
    InexpressibleError,
    OgClientPort,
    ProtocolError,
    Request,
    parse_answer,
    read_answer,
    result_of,
    status_of,
    to_request,
)
from ogref.service.compat.rest import create_ogserver_app

from .test_api import Service
from .test_ogserver_compat import subset

MESSAGES = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "fixtures" / "ogclient" / "messages.yaml").read_text()
)


def lookup(image: str) -> tuple[str, int]:
    return ("10.0.0.1", 1)


@pytest.mark.parametrize("case", MESSAGES["requests"], ids=lambda c: c["line"])
def test_engine_commands_become_ogservers_requests(case: dict[str, Any]) -> None:
    request = to_request(case["command"], lookup)
    raw = request.encode().decode()
    head, _, body = raw.partition("\r\n\r\n")
    content = json.dumps(case["body"], separators=(",", ":")) if case["body"] is not None else ""
    assert head.split("\r\n") == [
        case["line"],
        f"Content-Length: {len(content)}",
        "Content-Type: application/json",
    ]
    assert (json.loads(body) if body else None) == case["body"]


@pytest.mark.parametrize("case", MESSAGES["inexpressible"], ids=lambda c: c["source"])
def test_what_ogclient_cannot_do_is_not_sent(case: dict[str, Any]) -> None:
    with pytest.raises(InexpressibleError):
        to_request(case["command"], lookup)


COMMANDS = {
    "restore": {"id": "1/pc01", "op": 1, "kind": "restore",
                "request": {"image": "win10", "method": "UNICAST-DIRECT", "disk": 1, "partition": 1}},
    "create": {"id": "2/pc01", "op": 2, "kind": "create",
               "create": {"computer": "pc01", "disk": 1, "partition": 1, "image": "win10b"}},
    "reboot": {"id": "reboot", "kind": "reboot"},
}  # fmt: skip


@pytest.mark.parametrize("case", MESSAGES["answers"], ids=lambda c: c["source"][:40])
def test_ogclient_answers_are_read_as_ogserver_reads_them(case: dict[str, Any]) -> None:
    answer = parse_answer(case["raw"].encode())
    assert (answer.code, answer.body) == (case["parsed"]["code"], case["parsed"]["body"])
    assert parse_answer(answer.encode()) == answer  # what a stand-in client writes, the same
    means = case["means"]
    if "status" in means:
        assert status_of(answer, means.get("from", "OPG")) == means["status"]
    if "result_for" in means:
        result = result_of(COMMANDS[means["result_for"]], answer)
        assert not subset(means["result"], result), result


@pytest.mark.parametrize("case", MESSAGES["malformed"], ids=lambda c: c["source"][:40])
def test_malformed_answers_are_refused(case: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        parse_answer(case["raw"].encode())


# --------------------------------------------------------------------------- over TCP

SITE: dict[str, Any] = {
    "repositories": [{"name": "repo", "address": "10.0.0.1",
                      "images": [{"name": "win10", "data": "8GiB", "stored": "4GiB"}]}],
    "classrooms": [{
        "name": "loop", "org_unit": "ou1", "subnet": "127.0.0.0/8",
        "defaults": {"disks": [{"number": 1, "size": "500GiB", "partitions": [
            {"number": 1, "size": "100GiB", "fs": "NTFS", "os": "Windows 10"}]}]},
        "computers": [{"name": "pc01", "ip": "127.0.0.11/8"}, {"name": "pc02", "ip": "127.0.0.12/8"}],
    }],
    "operations": [],
}  # fmt: skip
REFRESH = next(a for a in MESSAGES["answers"] if "refresh" in a["source"])["parsed"]["body"]


class FakeOgClient:
    """A client that behaves as ogClient's ``ogRest`` does: answers the refresh and probes
    itself, records what it is asked and answers other requests with what a test gives."""

    def __init__(self, address: str, status: str = "OPG") -> None:
        self.address = address
        self.status = status  # what its probe says (an installed OS's ogClient: LINUX)
        self.writer: asyncio.StreamWriter | None = None
        self.asked: list[tuple[str, Any]] = []
        self.answers: asyncio.Queue[Answer] = asyncio.Queue()
        self.closed = asyncio.Event()

    async def run(self, port: int) -> None:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=(self.address, 0)
        )
        self.writer = writer
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *headers = head.decode().split("\r\n")
                length = next(
                    int(h.split(":")[1]) for h in headers if h.startswith("Content-Length")
                )
                body = json.loads(await reader.readexactly(length)) if length else None
                method, uri, _ = line.split(" ")
                self.asked.append((f"{method} {uri}", body))
                if uri == "/refresh":
                    answer = Answer(
                        200, REFRESH if self.status == "OPG" else {"status": self.status}
                    )
                elif uri == "/probe":
                    answer = Answer(200, {"status": self.status, "speed": 1000})
                else:
                    answer = await self.answers.get()
                writer.write(answer.encode())
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()
            self.closed.set()

    async def wait_for(self, uri: str, timeout: float = 10.0) -> Any:
        async def seen() -> Any:
            while True:
                for asked, body in self.asked:
                    if asked == uri:
                        return body
                await asyncio.sleep(0.02)

        return await asyncio.wait_for(seen(), timeout)


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Service]:
    s = Service(tmp_path, SITE)
    yield s
    s.database.close()


def test_ogclients_restore_through_the_facade_and_report(svc: Service) -> None:
    async def scenario() -> None:
        port = OgClientPort(svc.engine, probe_every=0.1)
        server = await asyncio.start_server(port.handle, "127.0.0.1", 0)
        tcp_port = server.sockets[0].getsockname()[1]
        pcs = {n: FakeOgClient(ip) for n, ip in (("pc01", "127.0.0.11"), ("pc02", "127.0.0.12"))}
        tasks = [asyncio.create_task(pc.run(tcp_port)) for pc in pcs.values()]
        facade = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_ogserver_app(svc.engine)), base_url="http://og"
        )
        auth = {"Authorization": svc.admin}

        async def clients() -> list[dict[str, Any]]:
            reply = await facade.get("/clients", headers=auth)
            assert reply.status_code == 200
            return list(reply.json()["clients"])

        # connected: refreshed first (as ogServer does), then probed; listed as OPG
        for pc in pcs.values():
            await pc.wait_for("POST /probe")
            assert pc.asked[0] == ("GET /refresh", None)
        assert [(c["addr"], c["state"]) for c in await clients()] == [
            ("127.0.0.11", "OPG"),
            ("127.0.0.12", "OPG"),
        ]
        restore = {"clients": ["127.0.0.11", "127.0.0.12"], "disk": "1", "partition": "1",
                   "name": "win10", "repository": "10.0.0.1", "type": "UNICAST-DIRECT",
                   "profile": "0", "id": "1"}  # fmt: skip
        reply = await facade.post("/image/restore", headers=auth, json=restore)
        assert reply.status_code == 200 and reply.content == b""
        for pc in pcs.values():
            body = await pc.wait_for("POST /image/restore")
            assert body == {k: v for k, v in restore.items() if k != "clients"}
        assert {c["state"] for c in await clients()} == {"BSY"}
        await pcs["pc01"].answers.put(Answer(200, {"disk": "1", "partition": "1", "image_id": "1"}))
        await pcs["pc02"].answers.put(Answer(500))

        async def settled() -> list[dict[str, Any]]:
            while True:
                now = await clients()
                if all(c["last_cmd"]["result"] != "unknown" for c in now):
                    return now
                await asyncio.sleep(0.05)

        now = await asyncio.wait_for(settled(), 10)
        assert [(c["addr"], c["state"], c["last_cmd"]["result"]) for c in now] == [
            ("127.0.0.11", "OPG", "success"),
            ("127.0.0.12", "OPG", "failure"),
        ]
        op = svc.engine.operation(1)
        records = {r["name"]: r for r in op["records"]}
        assert records["pc01"]["status"] == "ok"
        assert records["pc01"]["method_used"] == "UNICAST-DIRECT"
        assert records["pc02"]["status"] == "failed"
        assert "ogClient" in records["pc02"]["message"]
        # a power-off: 202 and the client goes away
        reply = await facade.post("/poweroff", headers=auth, json={"clients": ["127.0.0.11"]})
        assert reply.status_code == 200
        await pcs["pc01"].wait_for("POST /poweroff")
        await pcs["pc01"].answers.put(Answer(202))
        await asyncio.wait_for(pcs["pc01"].closed.wait(), 10)
        assert [c["addr"] for c in await clients()] == ["127.0.0.12"]
        # an address no computer has: the connection is closed at once
        stranger = FakeOgClient("127.0.0.99")
        await asyncio.wait_for(stranger.run(tcp_port), 10)
        assert stranger.asked == []
        for t in tasks:
            t.cancel()
        await facade.aclose()
        server.close()

    asyncio.run(scenario())


def test_an_installed_os_ogclient_reports_its_users_sessions(svc: Service) -> None:
    """ogClient in an installed Linux (its ``linux`` mode) says LINUX; a user's login and
    logout arrive as unsolicited 103 events (``ogclient event login USER``): LNX, LNXS, LNX."""

    async def scenario() -> None:
        port = OgClientPort(svc.engine, probe_every=0.1)
        server = await asyncio.start_server(port.handle, "127.0.0.1", 0)
        pc = FakeOgClient("127.0.0.11", status="LINUX")
        task = asyncio.create_task(pc.run(server.sockets[0].getsockname()[1]))
        facade = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_ogserver_app(svc.engine)), base_url="http://og"
        )

        async def state(wanted: str) -> None:
            while True:
                reply = await facade.get("/clients", headers={"Authorization": svc.admin})
                if [c["state"] for c in reply.json()["clients"]] == [wanted]:
                    return
                await asyncio.sleep(0.05)

        await asyncio.wait_for(state("LNX"), 10)
        for action, wanted in (("start", "LNXS"), ("stop", "LNX")):
            assert pc.writer is not None
            event = {"event": "session", "action": action, "user": "alumno"}
            pc.writer.write(Answer(103, event).encode())
            await asyncio.wait_for(state(wanted), 10)
        task.cancel()
        await facade.aclose()
        server.close()

    asyncio.run(scenario())


def test_read_answer_reads_exactly_one_answer() -> None:
    async def go() -> tuple[Answer, Answer]:
        reader = asyncio.StreamReader()
        reader.feed_data(Answer(103, {"event": "session", "action": "start", "user": "u"}).encode())
        reader.feed_data(Answer(200, {"status": "OPG", "speed": 100}).encode())
        reader.feed_eof()
        return await read_answer(reader), await read_answer(reader)

    first, second = asyncio.run(go())
    assert first.code == 103 and second.body == {"status": "OPG", "speed": 100}
    assert Request("POST", "probe").encode().startswith(b"POST /probe HTTP/1.1\r\n")


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    data=st.binary(max_size=200)
    | st.builds(
        lambda code, length, body: (
            f"HTTP/1.0 {code} X\r\nContent-Length: {length}\r\n\r\n".encode() + body
        ),
        st.sampled_from([103, 200, 202, 400, 418, 500, 503]),
        st.integers(-5, 400) | st.sampled_from([10**30]),
        st.binary(max_size=60) | st.sampled_from([b"{}", b"[]", b'{"status": "OPG"}', b"null"]),
    )
)
def test_any_bytes_are_an_answer_or_a_protocol_error(data: bytes) -> None:
    """What a client writes is either ogClient's answer or refused as such (the connection is
    closed), never another exception that would take the agent port down."""
    try:
        answer = parse_answer(data)
    except ProtocolError:
        return
    assert answer.code in (103, 200, 202, 400, 500, 503)
    assert answer.body is None or isinstance(answer.body, dict)
