"""The chunked format without devices: the manifest's encoding, self-digest and offset mapping,
and partclone's stream read (CRCs checked and removed) and written back (``-a0``)."""

from __future__ import annotations

import io
import json
import random
import struct

import pytest

from ogref.errors import ImageFileError
from ogref.model.storage import Filesystem
from ogref.runtime import partclone
from ogref.runtime.chunked import chunk
from ogref.runtime.chunked.blockstream import UsedBlocks, write_stream
from ogref.runtime.chunked.manifest import ChunkRef, Extent, Manifest, extents

BS = 512


def _bitmap(used: list[int], total: int) -> bytes:
    out = bytearray((total + 7) // 8)
    for b in used:
        out[b // 8] |= 1 << (b % 8)
    return bytes(out)


def _header(total: int, used: int, checksum: bool) -> partclone.Header:
    return partclone.Header("0.3.23", "EXTFS", total * BS, BS, total, used,
                            checksum_size=4 if checksum else 0,
                            blocks_per_checksum=3 if checksum else 0)  # fmt: skip


USED = [0, 1, 2, 5, 9, 10, 11, 12, 30]
TOTAL = 33


def _manifest(data: bytes) -> Manifest:
    bitmap = _bitmap(USED, TOTAL)
    refs = (
        ChunkRef(chunk.digest(data[:1000]), 1000),
        ChunkRef(chunk.digest(data[1000:]), len(data) - 1000),
    )
    return Manifest(_header(TOTAL, len(USED), False), Filesystem.EXT4, bitmap, refs)  # fmt: skip


def test_extents_of_a_bitmap() -> None:
    assert extents(_bitmap(USED, TOTAL), TOTAL) == [
        Extent(0, 3), Extent(5, 1), Extent(9, 4), Extent(30, 1)
    ]  # fmt: skip
    assert extents(_bitmap([], 8), 8) == []


def test_placements_cross_extents() -> None:
    made = _manifest(bytes(len(USED) * BS))
    # stream bytes 1000..2000: the end of block 1, block 2, then block 5 (second extent)
    assert list(made.placements(1000, 1000)) == [(1000, 0, 536), (5 * BS, 536, 464)]
    covered = [
        (dev, n) for off, ref in zip(made.chunk_offsets(), made.chunks, strict=True)
        for dev, _, n in made.placements(off, ref.size)
    ]  # fmt: skip
    assert sum(n for _, n in covered) == made.data_size
    assert {dev // BS for dev, _ in covered} <= set(USED)


def test_manifest_round_trip_and_self_digest() -> None:
    made = _manifest(random.Random(1).randbytes(len(USED) * BS))
    again = Manifest.from_json(made.to_json())
    assert again.chunks == made.chunks and again.bitmap == made.bitmap
    assert again.digest == made.digest
    doc = json.loads(made.to_json())
    doc["chunks"][0][1] += 1
    doc["chunks"][1][1] -= 1
    with pytest.raises(ImageFileError, match="digest"):
        Manifest.from_json(json.dumps(doc).encode())


def test_manifest_whose_chunks_do_not_cover_the_blocks_is_refused() -> None:
    with pytest.raises(ImageFileError, match="cover"):
        Manifest(_header(TOTAL, len(USED), False), Filesystem.EXT4, _bitmap(USED, TOTAL),
                 (ChunkRef("0" * 64, 7),))  # fmt: skip


def partclone_stream(data: bytes, checksum: bool) -> bytes:
    """A partclone stream as partclone writes it (CRC every 3 blocks when ``checksum``)."""
    header = _header(TOTAL, len(USED), checksum)
    out = io.BytesIO()
    write_stream(header, _bitmap(USED, TOTAL), [], out.write)
    head = bytearray(out.getvalue())
    if checksum:  # the header of a checksummed stream
        head[: partclone.HEADER_SIZE] = _checksummed_header(header)
    body = bytearray()
    for i in range(0, len(data), 3 * BS):
        group = data[i : i + 3 * BS]
        body += group
        if checksum:
            body += struct.pack("<I", partclone.crc32(group))
    return bytes(head) + bytes(body)


def _checksummed_header(h: partclone.Header) -> bytes:
    raw = bytearray(h.pack())
    fmt = struct.Struct("<16s14s4sH16sQQQQIIHHHHIBBI")
    f = list(fmt.unpack(bytes(raw)))
    f[13], f[14], f[15] = 32, 4, 3
    body = fmt.pack(*f)[:-4]
    return body + struct.pack("<I", partclone.crc32(body))


def _read_all(reader: UsedBlocks) -> bytes:
    out = bytearray(reader.size + 10)
    view = memoryview(out)
    done = 0
    while n := reader.readinto(view[done : done + 700]):
        done += n
    return bytes(out[:done])


@pytest.mark.parametrize("checksum", [False, True], ids=["a0", "crc32"])
def test_used_blocks_read_back(checksum: bool) -> None:
    data = random.Random(2).randbytes(len(USED) * BS)
    reader = UsedBlocks(io.BytesIO(partclone_stream(data, checksum)))
    assert reader.bitmap == _bitmap(USED, TOTAL)
    assert _read_all(reader) == data
    # written back without checksums: the -a0 stream
    again = io.BytesIO()
    write_stream(reader.header, reader.bitmap, [data], again.write)
    assert again.getvalue() == partclone_stream(data, False)


@pytest.mark.parametrize("where", ["data", "truncated"])
def test_a_damaged_stream_is_33(where: str) -> None:
    raw = bytearray(partclone_stream(random.Random(3).randbytes(len(USED) * BS), True))
    if where == "data":
        raw[-100] ^= 1
    else:
        del raw[-50:]
    with pytest.raises(ImageFileError):
        _read_all(UsedBlocks(io.BytesIO(bytes(raw))))
