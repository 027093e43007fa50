"""A chunked image's pack through udpcast in the lab's network (without the rest of the lab):
udp-sender sends the repository's ``NAME.pack`` as ``ogref.repo.sender`` would, one receiver
keeps the chunks its store lacks and skips the others, another writes every chunk straight onto
a "partition" at its offsets (MULTICAST-CACHE and MULTICAST-DIRECT of a chunked image)."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest

from ogref.model.protocol import MulticastSession
from ogref.repo.sender import SenderOptions, sender_argv, wait_until_listening
from ogref.runtime.chunked import chunk, transfer
from ogref.runtime.chunked import image as chunked_image
from ogref.runtime.imagefile import ImageStore
from ogref.transports.multicast import ReceiverConfig, receiver_argv
from ogsim.lab.manifest import Manifest
from ogsim.lab.netns.topology import Topology
from tests.unit.test_chunk_transfer import BS, TOTAL, _image

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(120)]


def test_a_pack_through_udpcast_is_kept_or_written(tmp_path: Path) -> None:
    rng = random.Random(8)
    pieces = [rng.randbytes(4 * BS) for _ in range(8)]
    used = list(range(0, 16)) + list(range(32, 48))
    repo = ImageStore(tmp_path / "repo")
    made = _image(repo, "img", pieces, used)
    pack = transfer.ensure_pack(repo, "img")
    assert pack is not None
    m = Manifest(tmp_path / "lab")
    with m.owned():
        topo = Topology(m)
        topo.build_switch()
        src = topo.add_host("repo", "10.0.8.1/24", mcast_router=True)
        clients = [topo.add_host(f"k{i}", f"10.0.8.{11 + i}/24") for i in range(2)]
        s = MulticastSession.parse("9060:full-duplex:239.194.8.1:90M:2:20")
        argv = ["timeout", "60", *sender_argv(s, pack, SenderOptions(), tmp_path / "sender")]
        sender = subprocess.Popen(src.exec_argv(argv), stdout=subprocess.DEVNULL)
        assert wait_until_listening(sender, s.port + 1, 5)
        procs = []
        for h in clients:
            cfg = ReceiverConfig("eth0", h.ip, src.address, 40, 20)
            cmd = h.exec_argv(["timeout", "60", *receiver_argv(cfg, s, None)])
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
        store = chunked_image.chunk_store(ImageStore(tmp_path / "cache"))
        store.put(chunk.digest(pieces[3]), chunk.compress(pieces[3]))  # the CACHE holds one
        outs = [p.communicate(timeout=60)[0] for p in procs]
        sender.wait(30)
    assert [p.returncode for p in procs] == [0, 0]
    keeper = transfer.Unpacker(made, store)
    keeper.feed(outs[0])
    keeper.finish()
    dev = tmp_path / "dev"
    dev.write_bytes(bytes(TOTAL * BS))
    fd = os.open(dev, os.O_WRONLY)
    try:
        writer = transfer.PackWriter(made, fd)
        for i in range(0, len(outs[1]), 1500):  # as a stream arrives, in pieces
            writer.feed(outs[1][i : i + 1500])
        writer.finish()
    finally:
        os.close(fd)
    assert (keeper.kept, keeper.skipped) == (7, 1) and transfer.missing(made, store) == []
    disk = dev.read_bytes()
    assert b"".join(disk[b * BS : (b + 1) * BS] for b in used) == b"".join(pieces)
