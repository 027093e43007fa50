"""Pure parts of the lab's transports and services: the udp-sender and
udp-receiver command lines (OpenGnSys's options), and the agent's request encoding.  No root."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from ogref.agent.protocol import request_from_json, request_to_json
from ogref.core.deploy import DeployRequest, Operation
from ogref.errors import ImageError, MulticastReceiveFileError, ProtocolJoinMasterError
from ogref.model import Method, MulticastSession, TorrentSession
from ogref.repo.sender import SenderOptions, sender_argv
from ogref.runtime.proc import run_pipeline
from ogref.transports.multicast import ReceiverConfig, receive_file, receiver_argv, receiver_source


def test_sender_has_opengnsys_options() -> None:
    s = MulticastSession.parse("9000:full-duplex:239.194.17.36:70M:50:60")
    argv = sender_argv(s, Path("/img/a.img"), SenderOptions(), Path("/log"))
    text = " ".join(argv)
    for part in (
        "--portbase 9000",
        "--full-duplex",
        "--mcast-data-address 239.194.17.36",
        "--fec 8x8/128",
        "--max-bitrate 70m",
        "--ttl 16",
        "--min-receivers 50",
        "--max-wait 60",
        "--retries-until-drop 65",
        "--rexmit-hello-interval 500",
        "--file /img/a.img",
        "--nokbd",
    ):
        assert part in text


def test_receiver_sets_the_rendezvous_only_across_subnets() -> None:
    s = MulticastSession()
    same = ReceiverConfig("eth0", "10.0.1.11/24", "10.0.1.1", 120, 30)
    other = ReceiverConfig("eth0", "10.0.2.11/24", "10.0.1.1", 120, 30)
    assert "--mcast-rdv-address" not in receiver_argv(same, s, None)
    assert "--mcast-rdv-address" in receiver_argv(other, s, None)
    argv = receiver_argv(same, s, Path("/c/a.img"))
    assert argv[argv.index("--start-timeout") + 1] == "120"
    assert argv[argv.index("--receive-timeout") + 1] == "30"
    assert argv[-2:] == ["--file", "/c/a.img"]


def test_receiver_hears_the_senders_announcements() -> None:
    # udpcast's default TTL 1 makes the receiver rendezvous by broadcast, deaf to the sender's
    # hellos on 224.0.0.1 (OpenGnSys's sender runs with --ttl 16): one started first never joins
    argv = receiver_argv(
        ReceiverConfig("eth0", "10.0.1.11/24", "10.0.1.1"), MulticastSession(), None
    )
    assert argv[argv.index("--ttl") + 1] == "16"


def test_no_fec_option_when_fec_is_none() -> None:
    s = MulticastSession.parse("9000:full-duplex:239.194.1.1:100M:4:30")
    assert "--fec" not in sender_argv(s, Path("/a"), SenderOptions(fec="none"), Path("/l"))


def test_a_start_waits_until_the_sender_listens(tmp_path: Path) -> None:
    import subprocess

    from ogref.repo.sender import udp_port_bound, wait_until_listening

    table = tmp_path / "udp"
    table.write_text("  sl  local_address rem_address   st\n   0: 0100000A:2329 00000000:0000 07\n")
    assert udp_port_bound(9001, (table,))
    assert not udp_port_bound(9000, (table,))
    calls: list[int] = []

    def bound_on_third_look(port: int) -> bool:
        calls.append(port)
        return len(calls) >= 3

    proc = subprocess.Popen(["sleep", "5"])
    try:
        assert wait_until_listening(proc, 9001, 5, bound=bound_on_third_look)
        assert calls == [9001, 9001, 9001]
    finally:
        proc.kill()
        proc.wait()
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert not wait_until_listening(dead, 9001, 5, bound=lambda _p: False)


def test_requests_travel_as_json() -> None:
    req = DeployRequest(
        Operation.RESTORE_COMMAND,
        "ou/win7",
        Method.parse("MULTICAST-DIRECT"),
        1,
        2,
        multicast=MulticastSession.parse("9002:half-duplex:239.194.1.2:80M:3:20"),
        torrent=TorrentSession.parse("leecher:0"),
    )
    assert request_from_json(request_to_json(req)) == req


def test_lab_pieces_scale_with_the_image() -> None:
    from ogsim.lab.netns.images import lab_piece

    assert lab_piece(1.0) == 4 * 1024 * 1024  # OpenGnSys's ctorrent -l 4194304
    assert lab_piece(0.1) == 256 * 1024  # 419 430 rounded down to a power of two
    assert lab_piece(0.001) == 16 * 1024  # never below one block
    assert lab_piece(1.0, 256 * 1024) == 256 * 1024  # the image's own torrent pieces
    assert lab_piece(0.25, 1024 * 1024) == 256 * 1024


def _fake_receiver(tmp_path: Path, monkeypatch: Any, body: str) -> None:
    """A ``udp-receiver`` on PATH that behaves as ``body`` (a shell script) says."""
    exe = tmp_path / "bin" / "udp-receiver"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{exe.parent}:{os.environ['PATH']}")


def test_a_session_that_never_arrives_is_a_join_failure(tmp_path: Path, monkeypatch: Any) -> None:
    # udp-receiver exits 0 with nothing when its unicast rendezvous worked but no multicast
    # reached it (seen across subnets on a kernel without multicast routing)
    _fake_receiver(tmp_path, monkeypatch, "exit 0")
    cfg = ReceiverConfig("eth0", "10.0.2.11/24", "10.0.1.1")
    session = MulticastSession.parse("9000:full-duplex:239.194.2.1:90M:2:10")
    source = receiver_source(cfg, session)
    with pytest.raises(ProtocolJoinMasterError) as info:
        source(lambda b: None, hashlib.md5())
    assert info.value.code == 60 and "never reached this computer" in info.value.message
    with pytest.raises(ProtocolJoinMasterError):
        receive_file(cfg, session, tmp_path / "img")
    # data, then a clean exit: a normal receive
    _fake_receiver(tmp_path / "b", monkeypatch, "printf abc")
    got: list[bytes] = []
    assert receiver_source(cfg, session)(got.append, hashlib.md5()) == 3


def test_a_feed_failure_is_chained_to_the_pipeline_error() -> None:
    # the restore path must still see *why* the network source failed
    def feed(stream: Any) -> None:
        raise ProtocolJoinMasterError("no session")

    with pytest.raises(ImageError) as info:
        run_pipeline([["cat"]], error=ImageError, what="restore", feed=feed)
    assert isinstance(info.value.__cause__, ProtocolJoinMasterError)


def test_a_receiver_never_accepted_is_a_join_failure(tmp_path: Path, monkeypatch: Any) -> None:
    # a late receiver: the running session never accepts it (udpcast prints no "Connected as")
    _fake_receiver(tmp_path, monkeypatch, "echo 'Receiver error' >&2; exit 255")
    cfg = ReceiverConfig("eth0", "10.0.1.18/24", "10.0.1.1")
    session = MulticastSession.parse("9000:full-duplex:239.194.1.1:70M:7:60")
    with pytest.raises(ProtocolJoinMasterError, match="never joined"):
        receiver_source(cfg, session)(lambda b: None, hashlib.md5())
    # accepted, then broken off: a receive failure (57 into a file)
    _fake_receiver(tmp_path / "b", monkeypatch, "echo 'Connected as #0 to 10.0.1.1' >&2; exit 1")
    with pytest.raises(MulticastReceiveFileError) as info:
        receive_file(cfg, session, tmp_path / "img")
    assert not isinstance(info.value, ProtocolJoinMasterError)
