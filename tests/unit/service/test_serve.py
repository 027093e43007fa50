"""``ogref serve`` as a user starts it: a real process, real uvicorn on loopback, a real SQLite
file; agents are real :class:`~ogref.agent.link.ServiceLink` threads.

Covers what the in-process tests of ``test_api`` cannot: the service killed (SIGKILL, no
chance to flush) in the middle of an operation and started again over the same state loses no
record, no result and no log line, and gives no command twice; a tracking log followed through
server-sent events gets its lines as they arrive; ``--log-format json`` writes JSON lines;
the API document in ``docs/`` is the one the code serves; ``ogref site import|export`` round-trip.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from ogref.agent.link import ServiceLink
from ogref.service.keys import save_private_key

from .conftest import SITE

ROOT = Path(__file__).resolve().parents[3]
SITE_OPS = {
    **SITE,
    "operations": [
        {"restore": {"image": "win10", "method": "UNICAST-DIRECT", "to": {"classroom": "aula1"}}}
    ],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """An ``ogref serve`` process over ``state``; started again with :meth:`start`."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.state = tmp / "state"
        self.site = tmp / "site.yaml"
        self.site.write_text(yaml.safe_dump(SITE_OPS))
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.token_file = tmp / "admin.token"
        self.public_file = tmp / "server.pub"
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.extra: list[str] = []  # more options for ``ogref serve``

    def start(self) -> None:
        self.runs += 1
        self.log_path = self.tmp / f"serve-{self.runs}.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ogref", "serve", "--state", str(self.state),
                 "--site", str(self.site), "--listen", f"127.0.0.1:{self.port}",
                 "--admin-token-file", str(self.token_file),
                 "--server-public-file", str(self.public_file),
                 "--log-format", "json", "--log-level", "debug", *self.extra],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()
            try:
                if httpx.get(f"{self.base}/api/v1/me", headers=self.auth, timeout=2).is_success:
                    return
            except (httpx.HTTPError, FileNotFoundError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"not serving within 60 s: {self.log_path.read_text()}")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token_file.read_text().strip()}"}

    def call(self, method: str, path: str, **kw: Any) -> Any:
        reply = httpx.request(method, f"{self.base}{path}", headers=self.auth, timeout=30, **kw)
        assert reply.is_success, reply.text
        return reply.json()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                return -9
        return int(self.proc.returncode)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path)
    s.start()
    try:
        yield s
    finally:
        s.stop()


class Agent:
    """A computer's agent reduced to its link: each command is recorded, logs a line and is
    finished when the test says so."""

    def __init__(self, served: Served, name: str) -> None:
        self.name = name
        reply = served.call("POST", f"/api/v1/computers/{name}/credential")
        key = served.tmp / f"{name}.pem"
        save_private_key(key, reply["private_key_pem"].encode())
        self.commands: list[dict[str, Any]] = []
        self.got = threading.Event()
        self.link = ServiceLink(
            served.base, name, key, served.public_file.read_text().strip(),
            served.tmp / f"{name}.seq",
            state=lambda: {"status": "OPG", "ip": "10.0.1.11"}, on_command=self.take,
            busy=lambda: False, idle_wait=1.0,
        )  # fmt: skip
        self.link.start()

    def take(self, cmd: dict[str, Any]) -> None:
        self.commands.append(cmd)
        self.link.log(f"{self.name} started {cmd['id']}")
        self.got.set()

    def finish(self) -> None:
        cmd = self.commands[-1]
        self.link.log(f"{self.name} finished {cmd['id']}")
        self.link.done(cmd["id"], {"code": 0, "message": "ok", "started": time.time(),
                                   "finished": time.time()})  # fmt: skip
        assert self.link.flush(30)


def _wait(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_killed_service_loses_and_duplicates_nothing(served: Served) -> None:
    agents = {n: Agent(served, n) for n in ("pc01", "pc02", "pc03")}
    try:
        _wait(lambda: len(served.call("GET", "/api/v1/computers")["clients"]) >= 3)
        op = served.call("POST", "/api/v1/operations", json={"index": 0})["op"]
        for a in agents.values():
            assert a.got.wait(20), f"{a.name} got no command"
        agents["pc01"].finish()
        _wait(lambda: any(r["name"] == "pc01" and r["final"] for r in
                          served.call("GET", f"/api/v1/operations/{op}")["records"]))  # fmt: skip
        served.kill()  # no lifespan, no flush: only what was committed survives
        served.start()
        agents["pc02"].finish()  # its result, kept by the link while the service was away
        agents["pc03"].finish()
        _wait(lambda: served.call("GET", f"/api/v1/operations/{op}")["done"])
        final = served.call("GET", f"/api/v1/operations/{op}")
        by = {r["name"]: r for r in final["records"]}
        assert set(by) == {"pc01", "pc02", "pc03", "pc04"}
        for n in agents:
            assert by[n]["status"] == "ok", json.dumps(by[n], indent=1)
            texts = [line["text"] for line in by[n]["log"]]
            assert any("started" in t for t in texts) and any("finished" in t for t in texts)
        assert by["pc04"]["status"] != "ok"  # it never came: failed, not lost, not "ok"
        # no command twice: each agent saw its command once (or again with the same id)
        for a in agents.values():
            assert len({c["id"] for c in a.commands}) == 1, a.commands
    finally:
        for a in agents.values():
            a.link.close()
    # SIGTERM: a clean stop (uvicorn exits by the signal it caught, after the shutdown)
    assert served.stop() in (0, -signal.SIGTERM)
    lines = [json.loads(x) for x in served.log_path.read_text().splitlines() if x.startswith("{")]
    assert lines and all({"t", "level", "logger", "msg"} <= set(x) for x in lines)
    assert any(x["msg"].startswith("stopped") for x in lines), lines


def test_a_tracking_log_is_followed_as_it_grows(served: Served) -> None:
    agent = Agent(served, "pc01")
    try:
        _wait(lambda: len(served.call("GET", "/api/v1/computers")["clients"]) >= 1)
        got: list[dict[str, Any]] = []
        url = f"{served.base}/api/v1/computers/pc01/log/stream"
        with httpx.stream("GET", url, headers=served.auth, timeout=30) as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            for i in range(3):
                agent.link.log(f"line {i}")
            agent.link.nudge()
            for raw in events.iter_lines():
                if raw.startswith("data: "):
                    got.append(json.loads(raw[6:]))
                if len(got) == 3:
                    break
        assert [g["text"] for g in got] == ["line 0", "line 1", "line 2"]
        # and one that is not allowed to look: no token → 401
        assert httpx.get(url, timeout=10).status_code == 401
    finally:
        agent.link.close()


def test_the_api_document_in_docs_is_the_served_one() -> None:
    from ogref.service.main import openapi_text

    kept = (ROOT / "docs" / "openapi.json").read_text()
    assert kept == openapi_text(), (
        "docs/openapi.json is stale: regenerate with `ogref serve --openapi > docs/openapi.json`"
    )


def test_site_import_export_round_trips_through_the_command_line(tmp_path: Path) -> None:
    from ogref.cli import _mount_service, app

    _mount_service()
    runner = CliRunner()
    scenario = ROOT / "scenarios" / "s01-unicast-cache-35.yaml"
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    for db_name, source, out in (("a", scenario, first), ("b", first, second)):
        url = f"sqlite:///{tmp_path / db_name}.db"
        r = runner.invoke(app, ["site", "import", str(source), "--db", url])
        assert r.exit_code == 0, r.output
        assert "35 computers" in r.output
        r = runner.invoke(app, ["site", "export", "--db", url, "-o", str(out)])
        assert r.exit_code == 0, r.output
    assert first.read_text() == second.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("classrooms: [{name: aula1, computers: {count: 0}}]\n")
    r = runner.invoke(app, ["site", "import", str(bad), "--db", f"sqlite:///{tmp_path}/c.db"])
    assert r.exit_code == 1 and "bad.yaml" in r.output


def test_the_opengnsys_ports_speak_ogservers_protocols(tmp_path: Path) -> None:
    """``--ogserver-listen`` serves ogServer's REST API at the root of its own port (the raw
    token in ``Authorization``), and only there; ``--ogclient-listen`` takes ogClient
    connections and closes one from an address no computer has."""
    served = Served(tmp_path)
    og_port, agent_port = _free_port(), _free_port()
    served.extra = ["--ogserver-listen", f"127.0.0.1:{og_port}",
                    "--ogclient-listen", f"127.0.0.1:{agent_port}"]  # fmt: skip
    served.start()
    try:
        token = served.token_file.read_text().strip()
        og = f"http://127.0.0.1:{og_port}"
        scopes = httpx.get(f"{og}/scopes", headers={"Authorization": token}, timeout=10)
        assert scopes.status_code == 200, scopes.text
        rooms = [r["name"] for r in scopes.json()["scope"][0]["scope"]]
        assert rooms == ["aula1", "aula2"]
        assert httpx.get(f"{og}/scopes", timeout=10).status_code == 401
        mine = httpx.get(f"{og}/api/v1/me", headers=served.auth, timeout=10)
        assert mine.status_code == 404 and mine.content == b""  # ogServer knows no such path
        assert (
            httpx.get(f"{served.base}/scopes", headers=served.auth, timeout=10).status_code == 404
        )
        with socket.create_connection(("127.0.0.1", agent_port), timeout=10) as conn:
            assert conn.recv(100) == b""  # 127.0.0.1 is no computer of the site: closed
    finally:
        served.stop()
