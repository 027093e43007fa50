"""chunkcast into a CACHE's chunk store (MULTICAST-CACHE): a receiver that already holds some of
the image's chunks asks only for the others, and what it hands out carries the very frame that
came (stored as is, no recompression) — the store then holds every chunk, each sound."""

from __future__ import annotations

from pathlib import Path

from ogref.runtime.chunked.store import ChunkStore
from ogref.transports.chunkcast import objects
from ogref.transports.chunkcast.receiver import Completed, ReceiverConfig, ReceiverCore
from ogref.transports.chunkcast.runtime import _StoreWriter
from ogref.transports.chunkcast.sender import SenderConfig
from tests.unit.chunkcast_net import KEY, make_image, sender_for


def test_a_store_receiver_asks_only_for_what_the_store_lacks(tmp_path: Path) -> None:
    made, frames = make_image(5)
    objs = objects.ImageObjects.of(made)
    store = ChunkStore(tmp_path / "chunks")
    held = [r.digest for r in objs.chunks[::2]]
    for digest in held:
        store.put(digest, frames[digest])
    sender = sender_for(made, frames, SenderConfig(rate_bps=50e6, min_receivers=1))
    core = ReceiverCore(KEY, 7, ReceiverConfig(), 0.0, manifest=made)
    core.already(r.digest for r in objs.chunks if store.has(r.digest))
    writer = _StoreWriter(store, objs, 2)
    got: list[Completed] = []
    now = 0.0
    while not core.complete and now < 60:
        out, _wake = sender.poll(now)
        for packet in out:
            got.extend(core.receive(packet, now))
        for packet in core.poll(now, 0)[0]:
            sender.receive(packet, now)
        now += 0.002
    assert core.complete
    for done in got:
        writer.put(done)
    writer.close()
    wanted = {i + 1 for i, r in enumerate(objs.chunks) if r.digest not in held}
    assert {d.obj for d in got} == wanted  # what the store held was never handed out
    assert all(d.frame == frames[objs.ref(d.obj).digest] for d in got)  # the frame as it came
    assert writer.stored == len(wanted) and core.stats.resumed_objects == len(objs.chunks) - len(
        wanted
    )
    for ref in objs.chunks:
        assert store.verify(ref.digest, ref.size) == ""
