"""Measure the building blocks of the chunked format (docs/chunked-images.md, "Choices").

Single-threaded throughput and CPU time, on one synthetic corpus (30 % prose, 30 % binaries
from /usr, 25 % random, 15 % zeros), of: FastCDC chunkers (pyfastcdc, fastcdc's Cython
module), chunk hashes (BLAKE3, SHA-256), zstd bindings (zstandard, pyzstd) at levels 1 and 3,
and the compression ratio of independent chunks against one stream.  The alternatives are not
project dependencies: ``pip install fastcdc pyzstd`` first.
``python tools/measure-chunk-blocks.py [MiB]``.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import pyfastcdc
import pyzstd
import zstandard
from fastcdc import fastcdc_cy

MIB = 1 << 20


def corpus(mib: int) -> bytes:
    rng = random.Random(7)
    target = mib * MIB
    letters = b"abcdefghijklmnopqrstuvwxyz"
    words = [bytes(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(5000)]
    text = b" ".join(rng.choice(words) for _ in range(200_000))
    parts: list[bytes] = []
    total = 0
    while total < target * 0.3:
        parts.append(text)
        total += len(text)
    for d in ("/usr/bin", "/usr/lib/x86_64-linux-gnu"):
        for p in sorted(Path(d).glob("*")):
            if total >= target * 0.6:
                break
            if p.is_file() and not p.is_symlink():
                parts.append(p.read_bytes())
                total += len(parts[-1])
    while total < target * 0.85:
        parts.append(rng.randbytes(4 * MIB))
        total += 4 * MIB
    while total < target:
        parts.append(bytes(MIB))
        total += MIB
    return b"".join(parts)[:target]


def timed(label: str, size: int, fn: Callable[[], Any]) -> Any:
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label:44s} {size / wall / 1e6:8.0f} MB/s wall   cpu {cpu:.2f} s")
    return out


def main() -> None:
    data = corpus(int(sys.argv[1]) if len(sys.argv) > 1 else 256)
    n = len(data)
    view = memoryview(data)
    for avg in (64 * 1024, 256 * 1024, MIB):
        cdc = pyfastcdc.FastCDC(avg)
        cuts = timed(f"pyfastcdc avg {avg >> 10} KiB", n, lambda c=cdc: list(c.cut_buf(data)))
        print(f"   {len(cuts)} chunks, mean {n // len(cuts)} bytes")
        timed(
            f"fastcdc (Cython) avg {avg >> 10} KiB",
            n,
            lambda a=avg: list(fastcdc_cy.fastcdc_cy(data, a // 4, a, a * 4)),
        )
    pieces = [
        view[c.offset : c.offset + c.length] for c in pyfastcdc.FastCDC(256 * 1024).cut_buf(data)
    ]
    timed("blake3, 256 KiB chunks", n, lambda: [blake3.blake3(p).digest() for p in pieces])
    timed("sha256, 256 KiB chunks", n, lambda: [hashlib.sha256(p).digest() for p in pieces])
    for level in (1, 3):
        comp = zstandard.ZstdCompressor(level=level)
        frames = timed(
            f"zstandard -{level}, chunks", n, lambda c=comp: [c.compress(p) for p in pieces]
        )
        timed(
            f"pyzstd -{level}, chunks", n, lambda lv=level: [pyzstd.compress(p, lv) for p in pieces]
        )
        whole = zstandard.ZstdCompressor(level=level).compress(data)
        print(f"   ratio: chunks {sum(map(len, frames)) / n:.4f}, one stream {len(whole) / n:.4f}")
    frames = [zstandard.ZstdCompressor(level=3).compress(p) for p in pieces]
    dec = zstandard.ZstdDecompressor()
    timed("zstandard decompress", n, lambda: [dec.decompress(f) for f in frames])
    timed("pyzstd decompress", n, lambda: [pyzstd.decompress(f) for f in frames])
    for avg in (64 * 1024, MIB):
        comp = zstandard.ZstdCompressor(level=3)
        cut = pyfastcdc.FastCDC(avg).cut_buf(data)
        size = sum(len(comp.compress(view[c.offset : c.offset + c.length])) for c in cut)
        print(f"zstd -3 ratio with {avg >> 10} KiB chunks: {size / n:.4f}")


if __name__ == "__main__":
    main()
