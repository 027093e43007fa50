"""The ogServer facade (:mod:`ogref.service.compat.rest`) against recorded requests and the
answers ogServer gives (``tests/fixtures/ogserver/rest.yaml``, written from ogServer's and
ogCLI's public sources), over a real engine, database and agent link (signed agent exchanges,
as ``test_api``): every path ogCLI and ogCp use, its errors, a restore carried out by agents
and read back as each client's result."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ogref.service import db
from ogref.service.compat.codes import restore_type
from ogref.service.compat.rest import OgServerFacade, create_ogserver_app, routes
from ogref.service.users import new_api_token

from .test_api import Service

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ogserver"
REST = yaml.safe_load((FIXTURES / "rest.yaml").read_text())


def matches(expected: Any, actual: Any, where: str = "body") -> list[str]:
    """Differences between an expected value (with the fixture's wildcards) and ``actual``."""
    if expected == "<any>":
        return []
    if expected == "<int>":
        ok = isinstance(actual, int) and not isinstance(actual, bool)
        return [] if ok else [f"{where}: {actual!r} is not an integer"]
    if expected == "<str>":
        return [] if isinstance(actual, str) else [f"{where}: {actual!r} is not a string"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: {actual!r} is not an object"]
        open_ = expected.get("...") is True
        keys = {k for k in expected if k != "..."}
        out = [f"{where}: missing {k!r}" for k in sorted(keys - actual.keys())]
        if not open_:
            out += [f"{where}: unexpected {k!r}" for k in sorted(actual.keys() - keys)]
        for k in sorted(keys & actual.keys()):
            out += matches(expected[k], actual[k], f"{where}.{k}")
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: {actual!r} is not a list of {len(expected)}"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out += matches(e, a, f"{where}[{i}]")
        return out
    if isinstance(expected, str) and isinstance(actual, int) and not isinstance(actual, bool):
        return [] if str(actual) == expected else [f"{where}: {actual!r} != {expected!r}"]
    return [] if expected == actual else [f"{where}: {actual!r} != {expected!r}"]


def subset(expected: Any, actual: Any, where: str = "command") -> list[str]:
    """``expected``'s keys, recursively, hold the same values in ``actual``."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: {actual!r} is not an object"]
        out = []
        for k, v in expected.items():
            out += subset(v, actual.get(k), f"{where}.{k}") if k in actual else [f"{where}: no {k}"]
        return out
    return [] if expected == actual else [f"{where}: {actual!r} != {expected!r}"]


class Replay:
    """The fixture's steps against one service: its ogServer facade, its agents."""

    def __init__(self, tmp: Path, site: dict[str, Any]) -> None:
        self.svc = Service(tmp, site)
        self.http = TestClient(create_ogserver_app(self.svc.engine))
        self.tokens = {"admin": self.svc.admin, "teacher": self._teacher("aula2"), "wrong": "x"}
        self.keys: dict[str, Path] = {}
        self.seq: dict[str, int] = {}
        self.taken: dict[str, str] = {}  # the command id each agent runs

    def _teacher(self, room: str) -> str:
        token, digest = new_api_token()
        with self.svc.database.transaction() as s:
            user = db.User(name="teacher", role="teacher", password_hash="x")
            s.add(user)
            s.flush()
            cid = s.query(db.Classroom.id).filter(db.Classroom.name == room).scalar()
            s.add(db.UserClassroom(user_id=user.id, classroom_id=cid))
            s.add(db.ApiToken(token_hash=digest, user_id=user.id, label="teacher"))
        return token

    def request(self, req: dict[str, Any]) -> Any:
        auth = req.get("auth", "admin")
        headers = {"Authorization": self.tokens[auth]} if auth != "none" else {}
        if "raw_size" in req:
            content: bytes | None = b"X" * int(req["raw_size"])
        elif "raw" in req:
            content = str(req["raw"]).encode()
        elif "body" in req:
            content = json.dumps(req["body"]).encode()
        else:
            content = None
        return self.http.request(req["method"], req["path"], headers=headers, content=content)

    def agent(self, name: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if name not in self.keys:
            self.keys[name] = self.svc.register(name)
        self.seq[name] = self.seq.get(name, 0) + 1
        _, reply = self.svc.sync(name, self.keys[name], self.seq[name], body)
        assert reply.status_code == 200, reply.text
        command: dict[str, Any] | None = reply.json()["command"]
        return command

    def step(self, i: int, step: dict[str, Any]) -> None:
        label = f"step {i} ({step.get('source') or step.get('request') or step.get('agent')})"
        if "request" in step:
            reply = self.request(step["request"])
            exp = step["expect"]
            assert reply.status_code == exp["status"], f"{label}: {reply.status_code} {reply.text}"
            if reply.status_code != 200:  # ogServer's errors: no body at all
                assert reply.content == b"" and reply.headers["content-length"] == "0", label
                if reply.status_code == 401:
                    assert reply.headers["www-authenticate"] == "Basic", label
            if "body" in exp:
                actual = reply.json() if reply.content else None
                problems = matches(exp["body"], actual)
                assert not problems, f"{label}: {problems}"
            return
        name = step["agent"]
        if "report" in step:
            assert self.agent(name, step["report"]) is None, label
        if "take" in step:
            command = self.agent(name, {"status": "OPG"})
            assert command is not None, f"{label}: no command"
            problems = subset(step["take"], command)
            assert not problems, f"{label}: {problems} in {command}"
            self.taken[name] = str(command["id"])
        if "done" in step:
            body = {"status": "OPG", "done": [{"id": self.taken.pop(name), "result": step["done"]}]}
            self.agent(name, body)


@pytest.fixture
def replay(tmp_path: Path) -> Iterator[Replay]:
    r = Replay(tmp_path, REST["site"])
    yield r
    r.svc.database.close()


def test_every_recorded_request_gets_ogservers_answer(replay: Replay) -> None:
    for i, step in enumerate(REST["steps"]):
        replay.step(i, step)


def test_the_fixture_covers_every_path_the_console_and_cli_use() -> None:
    """Issue 21's list of 25 paths (each method), every one replayed by the fixture."""
    used = {
        (s["request"]["method"], s["request"]["path"])
        for s in REST["steps"]
        if "request" in s and s["expect"]["status"] == 200
    }
    wanted = {
        ("GET", p)
        for p in ("/scopes", "/clients", "/images", "/oglive/list", "/stats", "/repositories",
                  "/client/setup", "/client/info", "/mode", "/hardware", "/software", "/session")
    } | {
        ("POST", p)
        for p in ("/wol", "/poweroff", "/reboot", "/refresh", "/session", "/image/restore",
                  "/image/create", "/mode", "/oglive/set", "/hardware", "/software",
                  "/client/add", "/client/delete", "/center/add", "/center/delete", "/room/add",
                  "/room/delete", "/image/delete")
    }  # fmt: skip
    assert wanted - used == set()


def test_the_matcher_finds_differences() -> None:
    """The replay's comparison is not a formality: wrong values, extra and missing keys and
    wrong kinds are all reported."""
    assert matches({"a": 1}, {"a": 2})
    assert matches({"a": 1}, {"a": 1, "b": 2})
    assert not matches({"a": 1, "...": True}, {"a": 1, "b": 2})
    assert matches({"a": 1, "b": 2}, {"a": 1})
    assert matches({"n": "<int>"}, {"n": "3"})
    assert matches([1, 2], [1])
    assert not matches({"n": "<int>", "s": "<str>"}, {"n": 3, "s": ""})
    assert subset({"a": {"b": 1}}, {"a": {"b": 2}})


@pytest.mark.parametrize(
    ("text", "method", "multicast", "torrent"),
    [
        ("UNICAST", "UNICAST-CACHE", None, None),
        ("unicast-direct", "UNICAST-DIRECT", None, None),
        ("UNICAST-CACHE", "UNICAST-CACHE", None, None),
        ("MULTICAST 9000:full-duplex:239.194.1.1:70M:50:60", "MULTICAST-CACHE",
         "9000:full-duplex:239.194.1.1:70M:50:60", None),
        ("MULTICAST-DIRECT", "MULTICAST-DIRECT", None, None),
        ("TORRENT peer:60", "TORRENT-CACHE", None, "peer:60"),
        ("TIPTORRENT", "TORRENT-CACHE", None, None),
    ],
)  # fmt: skip
def test_restore_types_map_onto_the_five_methods(
    text: str, method: str, multicast: str | None, torrent: str | None
) -> None:
    rt = restore_type(text)
    assert (str(rt.method), rt.multicast, rt.torrent) == (method, multicast, torrent)


@pytest.mark.parametrize("text", ["FTP", "TORRENT-DIRECT", "UNICAST 9000", ""])
def test_restore_types_ogclient_cannot_run_are_refused(text: str) -> None:
    from ogref.errors import OgError

    with pytest.raises(OgError):
        restore_type(text)


FIELDS = ["clients", "client", "disk", "partition", "name", "id", "type", "mode", "image",
          "room", "center", "ip", "mac", "netmask", "gateway", "repository", "profile", "code",
          "repository_id", "description", "comment", "echo", "run"]  # fmt: skip
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-3, max_value=3)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from(
        [
            "1",
            "0",
            "-1",
            "99999999999999999999",
            "10.0.1.11",
            "10.0.2.11",
            "UNICAST",
            "MULTICAST 1:2",
            "TORRENT x",
            "TIPTORRENT",
            "pxe",
            "default",
            "255.255.255.0",
            "10.0.9.1",
            "win10",
            "aula1",
            "",
        ]
    )
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
PATHS = sorted(f"/{r.prefix}" for r in routes(OgServerFacade.__new__(OgServerFacade)))


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replay]:
    r = Replay(tmp_path_factory.mktemp("fuzz"), REST["site"])
    yield r
    r.svc.database.close()


TEMPLATES = [
    (s["request"]["method"], s["request"]["path"], s["request"]["body"])
    for s in REST["steps"]
    if "request" in s
    and isinstance(s["request"].get("body"), dict)
    and s["expect"]["status"] == 200
]


BOUNDARY: list[Any] = ["0", "-1", "", "2147483648", "1.5", " 1", 0, -1, 2**31, 1.5, None,
                       True, [], {}, ["10.0.1.11", 7], "../x", "x" * 300]  # fmt: skip


def test_each_field_of_each_accepted_request_at_its_boundaries(tmp_path: Path) -> None:
    """Every request the fixture accepts, with each of its fields dropped or set to each
    boundary value in turn: the answer is one ogServer could give (200, or an empty
    400/401/404/405), never a crash.  Requests that delete go last."""
    r = Replay(tmp_path, REST["site"])
    try:
        ordered = sorted(TEMPLATES, key=lambda t: "delete" in t[1])
        for method, path, body in ordered:
            for key in body:
                for value in [*BOUNDARY, "<dropped>"]:
                    changed = {k: v for k, v in body.items() if k != key}
                    if value != "<dropped>":
                        changed[key] = value
                    req = {"method": method, "path": path, "body": changed}
                    reply = r.request(req)
                    assert reply.status_code in (200, 400, 401, 404, 405), (req, reply.status_code)
                    if reply.status_code != 200:
                        assert reply.content == b"", (req, reply.text)
    finally:
        r.svc.database.close()


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    request=st.tuples(
        st.sampled_from(["GET", "POST"]),
        st.sampled_from(PATHS),
        st.none() | st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6) | VALUES,
    )
)
def test_random_requests_get_ogservers_kind_of_answer(
    fuzzed: Replay, request: tuple[str, str, Any]
) -> None:
    """Whatever arrives, the answer is one ogServer could give: 200, or 400/401/404/405 with no
    body — never a crash (TestClient re-raises any exception the app lets out)."""
    method, path, body = request
    req = {"method": method, "path": path, **({"body": body} if body is not None else {})}
    reply = fuzzed.request(req)
    assert reply.status_code in (200, 400, 401, 404, 405), (req, reply.status_code)
    if reply.status_code != 200:
        assert reply.content == b"", (req, reply.text)
