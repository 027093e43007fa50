"""bench-image's chunked-format rows: the side-by-side row against ogref's partclone | zstd, the
differential one (about 5 % of the data modified, added and deleted; the differential image's
stored bytes against the changed data compressed; its in-place restore onto the base against a
full restore), and the dedup one (two images of one base with different software: what each
adds to the repository against its difference; repository bytes / sum of image sizes).  Measures only: it asserts nothing, and needs the loop partitions
:mod:`ogref.bench.image` builds.
"""

from __future__ import annotations

import random
import shutil
import statistics
import time
from pathlib import Path

import zstandard

from ogref.model.storage import Filesystem
from ogref.runtime.chunked.create import create_chunked
from ogref.runtime.chunked.manifest import Chunking
from ogref.runtime.chunked.restore import restore_chunked
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.mount import Mount
from ogref.units import MIB


def chunking(avg_kib: int) -> Chunking:
    """FastCDC parameters around an average of ``avg_kib`` KiB (min avg/4, max avg×4)."""
    avg = avg_kib * 1024
    return Chunking(avg // 4, avg, avg * 4)


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def side_by_side(
    times: dict[tuple[str, str], list[float]],
    cpus: dict[tuple[str, str], list[float]],
    store_mib: float,
    used: int,
    avg_kib: int,
) -> dict[str, object]:
    """Chunked create/restore beside ogref's partclone | zstd, measured in the same rounds."""
    t = {k: times[("zstd", k)] for k in ("og_c", "ck_c", "og_r", "ck_r")}
    cpu = {k: cpus[("zstd", k)] for k in ("og_c", "ck_c", "og_r", "ck_r")}

    def ratio(a: list[float], b: list[float]) -> float:
        return round(statistics.median(a) / statistics.median(b), 3)

    return {
        "level": 3,
        "chunk_avg_kib": avg_kib,
        "create_MBps": round(used / statistics.median(t["ck_c"]) / 1e6, 1),
        "restore_MBps": round(used / statistics.median(t["ck_r"]) / 1e6, 1),
        "create_ratio": _spread([o / c for o, c in zip(t["og_c"], t["ck_c"], strict=True)]),
        "restore_ratio": _spread([o / c for o, c in zip(t["og_r"], t["ck_r"], strict=True)]),
        "create_cpu_ratio": ratio(cpu["og_c"], cpu["ck_c"]),
        "restore_cpu_ratio": ratio(cpu["og_r"], cpu["ck_r"]),
        "seconds": {k: [round(x, 2) for x in v] for k, v in t.items()},
        "cpu_seconds": {k: [round(x, 2) for x in v] for k, v in cpu.items()},
        "store_mib": round(store_mib, 1),
        "note": "ratio = ogref partclone|zstd time / chunked time per round (> 1: chunked faster)",
    }


def change(root: Path, data_mib: int, seed: int = 11) -> tuple[int, int]:
    """Change about 5 % of ``data_mib``: a third added, a third modified, a third deleted.

    Returns (changed bytes, those bytes compressed by zstd -3 as one stream)."""
    rng = random.Random(seed)
    budget = data_mib * MIB * 5 // 100 // 3
    changed: list[bytes] = []
    text = sorted((root / "text").glob("*.txt"))
    bins = sorted((root / "bin").glob("*"))
    # added: half new prose (a shuffled existing document), half incompressible
    added = root / "added"
    added.mkdir(exist_ok=True)
    words = text[0].read_bytes().split(b" ")
    rng.shuffle(words)
    prose = b" ".join(words)[: budget // 2]
    (added / "notes.txt").write_bytes(prose)
    blob = rng.randbytes(budget - len(prose))
    (added / "blob.bin").write_bytes(blob)
    changed += [prose, blob]
    # modified: 64 KiB overwritten in the middle of binaries until the budget is spent
    spent = 0
    for path in bins[::7]:
        size = path.stat().st_size
        if size < 256 * 1024 or spent >= budget:
            continue
        patch = rng.randbytes(64 * 1024)
        with open(path, "r+b") as f:
            f.seek(size // 2)
            f.write(patch)
        changed.append(patch)
        spent += len(patch)
    # deleted: documents (nothing to store, but the filesystem's metadata changes)
    gone = 0
    for path in text[1::3]:
        if gone >= budget:
            break
        gone += path.stat().st_size
        path.unlink()
    raw = b"".join(changed)
    return len(raw), len(zstandard.ZstdCompressor(level=3).compress(raw))


def differential(
    src: str,
    dst: str,
    repo: ImageStore,
    locks: Path,
    data_mib: int,
    full_restore_s: float,
    avg_kib: int,
) -> dict[str, object]:
    """Change ``src`` (whose chunked image ``bench`` ``dst`` holds), make ``bench-v2`` against
    it and restore it in place onto ``dst``."""
    with Mount(src, Filesystem.EXT4) as root:
        raw, compressed = change(root, data_mib)
    made = create_chunked(
        src, repo, "bench-v2", lock_dir=locks, diff_of="bench", chunking=chunking(avg_kib)
    )
    # in place onto the base, two ways side by side: every block read and hashed (the check
    # without a record), and the partition's record (its fingerprint unchanged since the base
    # was restored).  dst holds the base; before each later measure the base is restored again.
    seconds: dict[str, list[float]] = {"hash": [], "record": []}
    written: dict[str, int] = {}
    for i, way in enumerate(("hash", "record", "hash", "record")):
        if i:
            restore_chunked(repo, "bench", dst, lock_dir=locks, in_place=False)
        start = time.monotonic()
        done = restore_chunked(repo, "bench-v2", dst, lock_dir=locks, use_record=way == "record")
        seconds[way].append(time.monotonic() - start)
        written[way] = done.written_bytes
        assert done.by_record == (way == "record"), "the record was not used as measured"
    assert made.diff_bytes is not None
    hash_s = statistics.median(seconds["hash"])
    record_s = statistics.median(seconds["record"])
    return {
        "changed_mib": round(raw / MIB, 2),
        "changed_compressed_mib": round(compressed / MIB, 2),
        "diff_stored_mib": round(made.diff_bytes / MIB, 2),
        "diff_over_changed_compressed": round(made.diff_bytes / compressed, 3),
        "restore_onto_base_s": {k: [round(x, 2) for x in v] for k, v in seconds.items()},
        "written_mib": {k: round(v / MIB, 2) for k, v in written.items()},
        "full_restore_s": round(full_restore_s, 2),
        "restore_onto_base_over_full_by_hash": round(hash_s / full_restore_s, 3),
        "restore_onto_base_over_full": round(record_s / full_restore_s, 3),
        "goals": "diff ≤ 1.3× changed compressed; restore onto base ≤ 0.25× a full restore",
        "note": "onto base: by_hash reads and hashes every used block (no record); the other "
        "trusts the partition's record, its ext4 superblock fingerprint unchanged",
    }


def software(root: Path, name: str, mib: int, seed: int) -> bytes:
    """A made-up package of ``mib`` MiB under ``root/opt/name``: files half prose (words of its
    own), half incompressible; returns its bytes (its difference to the base)."""
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(2, 8)).hex().encode() for _ in range(3000)]
    pkg = root / "opt" / name
    pkg.mkdir(parents=True)
    out = []
    for i in range(mib):
        prose = b" ".join(rng.choice(words) for _ in range(70_000))[: MIB // 2]
        data = prose + rng.randbytes(MIB - len(prose))
        (pkg / f"part{i:03}.bin").write_bytes(data)
        out.append(data)
    return b"".join(out)


def dedup(
    src: str, repo: ImageStore, locks: Path, data_mib: int, avg_kib: int
) -> dict[str, object]:
    """Two images made from the same base (``src``) with different software each add only
    their difference: a base image, then ``lab-a`` (base + package A) and ``lab-b`` (base +
    package B, A removed), each a full create into the same repository; then the base deleted.
    Reports repository bytes / sum of image sizes, and each image's added bytes against its
    package compressed by zstd -3 as one stream."""
    from ogref.runtime.chunked import garbage, image, usage

    sw_mib = max(1, data_mib * 5 // 100)
    store = image.chunk_store(repo)

    def stored() -> int:
        return sum(p.stat().st_size for _, p in store.entries())

    params = chunking(avg_kib)
    create_chunked(src, repo, "base", lock_dir=locks, chunking=params)
    out: dict[str, object] = {"software_mib_each": sw_mib}
    for label, seed, drop in (("a", 21, ""), ("b", 22, "lab-a")):
        with Mount(src, Filesystem.EXT4) as root:
            if drop:
                shutil.rmtree(root / "opt" / drop)
            diff = software(root, f"lab-{label}", sw_mib, seed)
        compressed = len(zstandard.ZstdCompressor(level=3).compress(diff))
        before = stored()
        create_chunked(src, repo, f"lab-{label}", lock_dir=locks, chunking=params)
        added = stored() - before
        out[f"lab_{label}"] = {
            "difference_mib": round(len(diff) / MIB, 2),
            "difference_compressed_mib": round(compressed / MIB, 2),
            "added_mib": round(added / MIB, 2),
            "added_over_difference_compressed": round(added / compressed, 3),
        }
    with_base = usage.report(repo)
    out["with_base"] = {
        "repository_mib": round(with_base.repository_bytes / MIB, 1),
        "images_mib": round(with_base.images_bytes / MIB, 1),
        "dedup_ratio": with_base.dedup_ratio,
    }
    gone = garbage.delete(repo, "base")
    two = usage.report(repo)
    out["base_deleted"] = {
        "freed_mib": round(gone.collected.bytes_freed / MIB, 2) if gone.collected else None,
        "repository_mib": round(two.repository_bytes / MIB, 1),
        "images_mib": round(two.images_bytes / MIB, 1),
        "dedup_ratio": two.dedup_ratio,
    }
    out["note"] = (
        "dedup_ratio = repository bytes / sum of the images' stored sizes (each as if alone); "
        "goal: each image adds about its difference (added / difference compressed ≈ 1)"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    """Only the dedup row, on a partition of its own (``make bench-image`` runs it too)."""
    import argparse
    import json
    import os
    import sys
    import tempfile

    from ogref.bench.image import fill
    from ogref.runtime import filesystem
    from ogref.runtime.loopdev import LoopDisk

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--data-mib", type=int, default=512)
    ap.add_argument("--part-mib", type=int, default=1024)
    ap.add_argument("--chunk-kib", type=int, default=128)
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (loop devices, mounts)", file=sys.stderr)
        return 7
    load_start = list(os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="ogref-bench-dedup-", dir=args.workdir))
    try:
        with LoopDisk(work / "disk.img", args.part_mib * MIB) as loop:
            filesystem.make(loop.device, Filesystem.EXT4, "bench")
            with Mount(loop.device, Filesystem.EXT4) as root:
                fill(root, args.data_mib)
            row = dedup(loop.device, ImageStore(work / "repo"), work / "locks", args.data_mib,
                        args.chunk_kib)  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    row["loadavg_start_end"] = [load_start, list(os.getloadavg())]
    print(json.dumps(row, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
