"""udpcast in the lab's network, without the rest of the lab: back-to-back sessions on one group
with receivers joining at different moments, and receivers that start before the sender.

These are the two ways a session used to stall or hang (docs/deviations.md #21 and the IGMPv3
querier in :mod:`ogsim.lab.netns.topology`); they use the product's own command lines
(:func:`ogref.repo.sender.sender_argv`, :func:`ogref.transports.multicast.receiver_argv`).
"""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

import pytest

from ogref.model.protocol import MulticastSession
from ogref.repo.sender import SenderOptions, sender_argv, wait_until_listening
from ogref.transports.multicast import ReceiverConfig, receiver_argv
from ogsim.lab.manifest import Manifest
from ogsim.lab.netns.shaping import shape
from ogsim.lab.netns.topology import Host, Topology

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(300)]

N = 4


def _lab(tmp_path: Path) -> tuple[Manifest, Topology, Host, list[Host], Path]:
    m = Manifest(tmp_path / "lab")
    topo = Topology(m)
    topo.build_switch()
    repo = topo.add_host("repo", "10.0.7.1/24", mcast_router=True)
    clients = [topo.add_host(f"c{i}", f"10.0.7.{11 + i}/24") for i in range(N)]
    for h in (repo, *clients):
        shape(topo, h, 100e6)
    image = tmp_path / "img.bin"
    image.write_bytes(random.Random(5).randbytes(64 * 1024 * 1024))
    return m, topo, repo, clients, image


def _members(topo: Topology, group: str) -> set[str]:
    """The switch ports the snooping bridge forwards ``group`` to."""
    out = subprocess.run(
        ["bridge", "-n", topo.switch, "mdb", "show"], capture_output=True, text=True, check=True
    ).stdout
    return {
        line.split(" port ")[1].split()[0] for line in out.splitlines() if f" grp {group} " in line
    }


def _session(
    tmp_path: Path,
    topo: Topology,
    repo: Host,
    clients: list[Host],
    image: Path,
    port: int,
    *,
    late_sender: float,
    stagger: float = 0.0,
) -> tuple[list[int], str, set[str]]:
    """One session; the receivers start 0–1 s apart (or all before the sender)."""
    s = MulticastSession.parse(f"{port}:full-duplex:239.194.7.1:90M:{N}:20")
    log = tmp_path / f"sender.{port}"
    sender_cmd = ["timeout", "60", *sender_argv(s, image, SenderOptions(), log)]
    rcv_cfgs = [ReceiverConfig("eth0", h.ip, repo.address, 40, 20) for h in clients]
    out = tmp_path / f"sender.{port}.out"
    sender = None
    if not late_sender:
        sender = subprocess.Popen(
            repo.exec_argv(sender_cmd), stdout=out.open("wb"), stderr=subprocess.STDOUT
        )
        assert wait_until_listening(sender, port + 1, 5)
    rng = random.Random(port)
    receivers = []
    for h, cfg in zip(clients, rcv_cfgs, strict=True):
        time.sleep(rng.random() * stagger)
        argv = ["timeout", "60", *receiver_argv(cfg, s, Path("/dev/null"))]
        receivers.append(
            subprocess.Popen(
                h.exec_argv(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
    if late_sender:
        time.sleep(late_sender)
        sender = subprocess.Popen(
            repo.exec_argv(sender_cmd), stdout=out.open("wb"), stderr=subprocess.STDOUT
        )
    time.sleep(2)
    members = _members(topo, s.address)
    codes = [p.wait() for p in receivers]
    assert sender is not None
    sender.wait()
    text = out.read_text(errors="replace") + (
        log.read_text(errors="replace") if log.exists() else ""
    )
    return codes, text.replace("\r", "\n"), members


def test_back_to_back_sessions_on_one_group_do_not_stall(tmp_path: Path) -> None:
    # under IGMPv2 a late joiner hears an earlier member's report and stays silent; the snooping
    # bridge then never forwards the group to it and udp-sender waits on it ("notAnswered")
    m, topo, repo, clients, image = _lab(tmp_path)
    with m.owned():
        for k in range(3):
            codes, text, members = _session(
                tmp_path, topo, repo, clients, image, 9040 + 2 * k, late_sender=0
            )
            assert members >= {h.port for h in clients}, f"session {k}: only {members} joined"
            assert codes == [0] * N, text
            assert "notAnswered" not in text, f"session {k} stalled:\n{text}"
            assert text.count("New connection") == N
            time.sleep(1)


def test_receivers_started_before_the_sender_still_join(tmp_path: Path) -> None:
    m, topo, repo, clients, image = _lab(tmp_path)
    with m.owned():
        codes, text, _members = _session(
            tmp_path, topo, repo, clients, image, 9060, late_sender=1.5
        )
        assert text.count("New connection") == N, text
        assert codes == [0] * N, text
