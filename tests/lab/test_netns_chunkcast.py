"""chunkcast in the lab's network (root, namespaces): every receiver ends with the image's exact
bytes after a late join, a crash and a rejoin, nftables loss, forged and garbled datagrams
injected on the subnet (dropped and counted, an insider's hash-failing chunk never written), and
on the second subnet through the router (multicast by smcroute or the lab's relay).

The image is a synthetic chunked image (:mod:`ogsim.lab.chunkimage`); receivers write into files
the size of its device and are compared byte for byte with a local restore of it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ogref.transports import chunkcast
from ogref.transports.chunkcast import runtime
from ogsim.expect import evaluate
from ogsim.lab.capabilities import probe
from ogsim.lab.chunkimage import ChunkImage, make
from ogsim.lab.manifest import Manifest
from ogsim.lab.netns.multicast_lab import GROUP, MulticastLab

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def lab(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[MulticastLab, ChunkImage, Path]]:
    base = tmp_path_factory.mktemp("chunkcast")
    img = make(base / "images", "lab", 8 * 1024 * 1024, seed=3)
    key = base / "key"
    key.write_text(runtime.new_key())
    caps = probe()
    far = caps.has("multicast_routing") or caps.has("multicast_relay")
    m = Manifest(base / "lab")
    with m.owned():
        built = MulticastLab.build(m, base / "run", 3, far=int(far))
        if not far:
            built.how_across = "no CONFIG_IP_MROUTE and no CONFIG_NFT_DUP_NETDEV on this host"
        yield built, img, key


def _stats(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def _wait(proc: subprocess.Popen[bytes], out: Path, timeout: float = 120) -> None:
    code = proc.wait(timeout)
    assert code == 0, out.read_text(errors="replace")


def _until_written(target: Path, size: float, proc: subprocess.Popen[bytes]) -> None:
    """Wait until the receiver has written ``size`` bytes into its (sparse) target."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if target.exists() and target.stat().st_blocks * 512 >= size:
            return
        time.sleep(0.02)
    raise AssertionError(f"{target}: {size:.0f} bytes never written (exit {proc.poll()})")


def _same(target: Path, img: ChunkImage) -> None:
    assert target.read_bytes() == img.device.read_bytes(), f"{target}: not the image's bytes"


def test_lab_processes_run_this_tree(lab: tuple[MulticastLab, ChunkImage, Path]) -> None:
    # the namespaces' programs must import the ogref under test (PYTHONPATH inherited)
    built, _img, _key = lab
    out = built.run_dir / "env.out"
    argv = [sys.executable, "-c", "import ogref.transports.chunkcast as c; print(c.__file__)"]
    built.start(built.clients[0], "env", argv, out=out).wait(30)
    assert out.read_text().strip() == chunkcast.__file__


def test_late_join_and_crash_rejoin_end_bit_identical(
    lab: tuple[MulticastLab, ChunkImage, Path],
) -> None:
    built, img, key = lab
    run = built.run_dir / "late"
    run.mkdir()
    session = built.session(9070, 30)
    c0, c1, c2 = built.clients
    sender = built.start(built.repo, "send-late", built.chunkcast_send(
        img.directory, img.name, session, key, run / "send.json", "--idle-end", "3"))  # fmt: skip
    targets = {h.name: run / f"{h.name}.disk" for h in built.clients}

    def receiver(h: Any, tag: str, *extra: str) -> subprocess.Popen[bytes]:
        argv = built.chunkcast_receive(h, targets[h.name], session, key,
                                       run / f"{h.name}.{tag}.json", *extra)  # fmt: skip
        return built.start(h, f"recv-{h.name}-{tag}", argv, out=run / f"{h.name}.{tag}.out")

    r0 = receiver(c0, "first")
    r2 = receiver(c2, "first")
    _until_written(targets["c2"], 0.3 * img.manifest.data_size, r2)
    os.kill(r2.pid, signal.SIGKILL)  # a crash mid-session
    r2.wait()
    _until_written(targets["c0"], 0.5 * img.manifest.data_size, r0)
    r1 = receiver(c1, "first")  # a late joiner, halfway through
    r2b = receiver(c2, "again", "--resume", "--manifest", str(img.manifest_path))
    for p, h, tag in ((r0, c0, "first"), (r1, c1, "first"), (r2b, c2, "again")):
        _wait(p, run / f"{h.name}.{tag}.out")
    _wait(sender, built.run_dir / "send-late.out")
    for t in targets.values():
        _same(t, img)
    again = _stats(run / "c2.again.json")
    assert again["resumed_objects"] > 0, "the rejoin did not keep what the crash left"
    late = _stats(run / "c1.first.json")
    assert late["joined_after_s"] >= 0 and late["bad_objects"] == 0
    send = _stats(run / "send.json")
    assert send["done"] == 3 and send["forged"] == 0


INJECT = r"""
import os, socket, sys, time
from ogref.transports.chunkcast import wire
group, port, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
key = bytes.fromhex(open(sys.argv[4]).read().strip())
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
i = 0
while not os.path.exists(stop) and i < 2000:  # until the receivers are done
    i += 1
    body = wire.Data(1 + i % 5, 0, 100, os.urandom(100)).encode()
    s.sendto(wire.seal(os.urandom(32), wire.Kind.DATA, 0, 10**6 + i, body), (group, port))
    s.sendto(b"OGCC\x01" + os.urandom(20), (group, port))
    garbled = bytearray(wire.seal(key, wire.Kind.DATA, 0, 10**6 + i, body))
    garbled[30] ^= 0x55
    s.sendto(bytes(garbled), (group, port))
    time.sleep(0.05)
"""


def test_loss_and_forged_datagrams_do_not_reach_the_disk(
    lab: tuple[MulticastLab, ChunkImage, Path],
) -> None:
    built, img, key = lab
    assert built.loss is not None
    run = built.run_dir / "loss"
    run.mkdir()
    session = built.session(9072, 30)
    c0, c1, c2 = built.clients
    for h in (c0, c1):
        built.loss.set_loss(h, 0.03)
    try:
        sender = built.start(built.repo, "send-loss", built.chunkcast_send(
            img.directory, img.name, session, key, run / "send.json", "--idle-end", "3"))  # fmt: skip
        procs = []
        for h in (c0, c1):
            argv = built.chunkcast_receive(h, run / f"{h.name}.disk", session, key,
                                           run / f"{h.name}.json")  # fmt: skip
            procs.append((built.start(h, f"recv-loss-{h.name}", argv), h))
        stop = run / "stop"
        inj = built.start(c2, "inject",
                          [sys.executable, "-c", INJECT, GROUP, "9072", str(stop), str(key)])  # fmt: skip
        for p, h in procs:
            _wait(p, built.run_dir / f"recv-loss-{h.name}.out")
        stop.touch()
        inj.wait(60)
        _wait(sender, built.run_dir / "send-loss.out")
    finally:
        for h in (c0, c1):
            built.loss.set_loss(h, 0)
    for h in (c0, c1):
        _same(run / f"{h.name}.disk", img)
        st = _stats(run / f"{h.name}.json")
        assert st["lost"] > 0, "no loss was seen: the nftables rule did not apply"
        assert st["forged"] > 0, "the forged and garbled datagrams were not counted"
        assert st["malformed"] > 0
        assert st["bad_objects"] == 0


def test_a_receiver_on_the_other_subnet(lab: tuple[MulticastLab, ChunkImage, Path]) -> None:
    built, img, key = lab
    if not built.far:
        pytest.skip(f"second subnet: {built.how_across}")
    run = built.run_dir / "far"
    run.mkdir()
    session = built.session(9074, 30)
    f0 = built.far[0]
    sender = built.start(built.repo, "send-far", built.chunkcast_send(
        img.directory, img.name, session, key, run / "send.json", "--idle-end", "3"))  # fmt: skip
    argv = built.chunkcast_receive(f0, run / "f0.disk", session, key, run / "f0.json")
    r = built.start(f0, "recv-far", argv)
    _wait(r, built.run_dir / "recv-far.out")
    _wait(sender, built.run_dir / "send-far.out")
    _same(run / "f0.disk", img)
    assert built.topo.relayed() > 0 or built.how_across == "smcroute"


def test_the_engine_restores_by_chunkcast_when_the_key_says_so(tmp_path: Path) -> None:
    # the whole engine: console command, agents, the repository's control API starting a
    # chunkcast sender, MULTICAST-DIRECT onto the clients' partitions, each verified (fsck and
    # the file tree's hash) — with MCASTPROTOCOL=CHUNKCAST in the site's engine keys
    from tests.lab.test_netns import BASE, run_lab, scenario, verified

    base = {
        **BASE,
        "engine": {**BASE["engine"], "MCASTPROTOCOL": "CHUNKCAST"},
        "repositories": [{**BASE["repositories"][0], "images": [
            {"name": "ubu", "filesystem": "EXT4", "data": "5GiB", "stored": "2GiB"}]}],
    }  # fmt: skip
    sc = scenario(
        [{"at": 0, "restore": {"image": "ubu", "method": "MULTICAST-DIRECT", "to": "all"}}],
        base=base,
        count=2,
    )
    r = run_lab(sc, tmp_path)
    computers = r.operations[0].computers
    assert [c.method_used for c in computers] == ["MULTICAST-DIRECT"] * 2
    assert all(c.status == "ok" and verified(c) for c in computers), computers
    logs = [(tmp_path / "client-logs" / f"10.0.1.{11 + i}.log").read_text() for i in range(2)]
    assert all("chunkcast:" in text and "bytes written" in text for text in logs), logs[0][-2000:]


S27 = Path(__file__).resolve().parents[2] / "scenarios" / "s27-chunkcast-clone-and-cache.yaml"


def test_multicast_cache_and_clone_from_master_by_chunkcast(tmp_path: Path) -> None:
    # scenario s27 (the library runs it here: one lab run), MCASTPROTOCOL=CHUNKCAST:
    # 1. clone from a MASTER: pc01 cuts its partition into chunks and serves them by chunkcast,
    #    the session key reaching the targets through the service with the MASTER's "ready";
    # 2. MULTICAST-CACHE of a chunked image: the core's updateCache, the chunks received by
    #    chunkcast into each CACHE's chunk store, then the core's restore from the CACHE.
    # Every disk verified: fsck clean and the file tree's hash (the reference's, the MASTER's);
    # the scenario's expectations hold as they do on the simulator
    from ogsim.scenario import load_scenario
    from tests.lab.test_netns import run_lab, verified

    sc = load_scenario(S27)
    r = run_lab(sc, tmp_path)
    checks = evaluate(r, sc.spec.expect)
    assert not [c.diff() for c in checks if c.applicable and not c.ok]
    cloned, cached = r.operations
    assert [c.method_used for c in cached.computers] == ["MULTICAST-CACHE"] * 3, cached
    assert all(c.status == "ok" and verified(c) for c in cached.computers), cached.computers
    for c in cached.computers:
        fetch = [p for p in c.phases if p.name == "fetch"]
        assert fetch and fetch[0].detail == "MULTICAST chunkcast", c.phases
        assert c.bytes_moved > 0
    log = (tmp_path / "client-logs" / "10.0.1.12.log").read_text()
    assert "stored in the CACHE" in log, log[-2000:]
    assert sorted(c.name for c in cloned.computers) == ["pc02", "pc03"]
    for c in cloned.computers:
        assert c.status == "ok" and verified(c), c  # fsck clean + the MASTER's file tree
        assert c.checksum_verified is True  # every chunk against the session's manifest
        assert any("chunkcast from MASTER" in p.detail for p in c.phases), c.phases
        assert c.bytes_moved > 1 << 20
    assert any("MASTER pc01: code 0" in e.text and "by chunkcast" in e.text for e in r.events)
