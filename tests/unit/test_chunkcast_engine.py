"""chunkcast's engine hook: the ``MCASTPROTOCOL`` key (udpcast stays the default) and the
repository control API handing a chunkcast session's key to a client whose capability token it
accepts — and to nobody else."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from ogref.errors import ConfigError
from ogref.model.policy import EngineConfig, McastProtocol
from ogref.model.protocol import MulticastSession
from ogref.repo.control import create_app
from ogref.repo.sender import Senders
from ogref.runtime.imagefile import ImageStore
from ogref.service.keys import issue_token, public_raw

SESSION = "9000:full-duplex:239.194.1.1:90M:20:60"


def test_udpcast_stays_the_default_and_chunkcast_is_chosen_by_key() -> None:
    assert EngineConfig().mcast_protocol is McastProtocol.UDPCAST
    assert EngineConfig.opengnsys_1_1_1d().mcast_protocol is McastProtocol.UDPCAST
    cfg = EngineConfig.from_text("MCASTPROTOCOL=chunkcast\n")
    assert cfg.mcast_protocol is McastProtocol.CHUNKCAST
    assert 'MCASTPROTOCOL="CHUNKCAST"' in cfg.to_text()
    with pytest.raises(ConfigError):
        EngineConfig.from_text("MCASTPROTOCOL=frisbee\n")


class FakeChunkcast:
    def __init__(self) -> None:
        self.calls: list[tuple[str, MulticastSession, str]] = []

    def start(self, name: str, session: MulticastSession, client: str = "") -> tuple[str, str]:
        self.calls.append((name, session, client))
        return ("started" if len(self.calls) == 1 else "running"), "ab" * 32


def _client(tmp_path: Path, chunkcast: FakeChunkcast | None) -> tuple[TestClient, str]:
    server = Ed25519PrivateKey.generate()
    token = issue_token(server, {"computer": "pc01", "op": "restore", "image": "win10",
                                 "session": SESSION}, ttl=300)  # fmt: skip
    senders = Senders(ImageStore(tmp_path), tmp_path / "log")
    app = create_app(senders, public_raw(server), chunkcast)  # type: ignore[arg-type]
    return TestClient(app), token


def test_the_control_api_gives_the_session_key_to_token_holders(tmp_path: Path) -> None:
    fake = FakeChunkcast()
    client, token = _client(tmp_path, fake)
    body = {"image": "win10", "session": SESSION, "protocol": "chunkcast"}
    got = client.post("/api/v1/multicast/start", json=body,
                      headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert got.status_code == 200, got.text
    assert got.json() == {"state": "started", "port": 9000, "key": "ab" * 32}
    assert fake.calls[0][0] == "win10" and fake.calls[0][2] == "pc01"
    again = client.post("/api/v1/multicast/start", json=body,
                        headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert again.json()["state"] == "running" and again.json()["key"] == "ab" * 32
    # no token, no key
    denied = client.post("/api/v1/multicast/start", json=body)
    assert denied.status_code == 401 and "key" not in denied.text
    assert len(fake.calls) == 2


def test_a_repository_without_chunkcast_says_so(tmp_path: Path) -> None:
    client, token = _client(tmp_path, None)
    got = client.post("/api/v1/multicast/start",
                      json={"image": "win10", "session": SESSION, "protocol": "chunkcast"},
                      headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert got.status_code == 501


def test_the_command_line_reports_errors_as_opengnsys_numbers(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from ogref.transports.chunkcast.cli import app

    runner = CliRunner()
    key = tmp_path / "key"
    assert runner.invoke(app, ["keygen", str(key)]).exit_code == 0
    assert len(bytes.fromhex(key.read_text().strip())) == 32
    assert key.stat().st_mode & 0o077 == 0
    missing = runner.invoke(app, ["send", str(tmp_path), "nope", "--session", SESSION,
                                  "--key-file", str(key)])  # fmt: skip
    assert missing.exit_code == 2 and json.loads(missing.stdout)["error"] == "NOTFOUND"
    bad = runner.invoke(app, ["receive", str(tmp_path / "disk"), "--session", "9001:x",
                              "--key-file", str(key)])  # fmt: skip
    assert bad.exit_code == 55
    key.write_text("short")
    weak = runner.invoke(app, ["send", str(tmp_path), "nope", "--session", SESSION,
                               "--key-file", str(key)])  # fmt: skip
    assert weak.exit_code == 1 and "32 bytes" in weak.stdout  # FORMAT


def test_the_rule_the_engine_and_the_simulator_share() -> None:
    # chunkcast onto a partition (any image: the repository's chunked version, a MASTER's cut)
    # and into the CACHE only for a chunked image (a .img stays udpcast); udpcast by default
    cc, udp = McastProtocol.CHUNKCAST, McastProtocol.UDPCAST
    assert cc.carries(into_cache=False, chunked=False) and cc.carries(into_cache=True, chunked=True)
    assert not cc.carries(into_cache=True, chunked=False)
    assert not any(
        udp.carries(into_cache=a, chunked=b) for a in (False, True) for b in (False, True)
    )
