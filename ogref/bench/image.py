"""Imaging benchmark: ogref create/restore against the raw partclone shell pipelines.

On a 2 GiB loop partition holding about 1 GiB of varied data (text, binaries, already-compressed
bytes, sparse files) it runs, in one go and on warm caches, for zstd and lzop: the raw shell
pipelines ``partclone.extfs -c | zstd -T0`` (``| lzop``) and ``zstd -dc | partclone.restore``
with exactly the argv ogref uses, and ogref's create (sidecars included) and restore (verified).
Each pair is measured ``--rounds`` times, alternating which side goes first (other work on the
machine shifts both), after an unmeasured warm-up restore.  It prints median MB/s, the median
raw/ogref time ratio with its min-max, the CPU-time ratio, image sizes and peak memory, and a
side-by-side row of the chunked format (issue 14: create into a fresh chunk store, parallel
restore) against ogref's partclone | zstd, with the load average.  It is a benchmark: it asserts
nothing.  Needs root.  ``python -m ogref.bench.image [--rounds N]
[--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from ogref.bench import chunked as bench_chunked
from ogref.model.image import Compressor
from ogref.model.storage import Filesystem, TableKind
from ogref.runtime import compressor, disk, filesystem, partclone
from ogref.runtime.chunked.create import create_chunked
from ogref.runtime.chunked.restore import restore_chunked
from ogref.runtime.create import create_image
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.loopdev import LoopDisk
from ogref.runtime.mount import Mount
from ogref.runtime.restore import restore_image
from ogref.units import GIB, MIB


def fill(root: Path, data_mib: int, seed: int = 7) -> int:
    """About ``data_mib`` MiB: 30 % text, 30 % binaries, 25 % incompressible, 15 % sparse."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = [
        "".join(rng.choice(letters) for _ in range(rng.randint(2, 9))).encode() for _ in range(5000)
    ]
    total = 0
    text_dir = root / "text"
    text_dir.mkdir()
    block = b" ".join(rng.choice(words) for _ in range(200_000))  # ~1.2 MB of prose
    target = data_mib * MIB * 30 // 100
    i = 0
    while total < target:
        data = block[i % 97 :] + block[: i % 97]
        (text_dir / f"doc{i:05}.txt").write_bytes(data)
        total += len(data)
        i += 1
    bin_dir = root / "bin"
    bin_dir.mkdir()
    target += data_mib * MIB * 30 // 100
    sources = [
        p
        for d in ("/usr/bin", "/usr/lib/x86_64-linux-gnu", "/usr/lib")
        for p in sorted(Path(d).glob("*"))
        if p.is_file() and not p.is_symlink()
    ]
    for n, src in enumerate(sources * 20):
        if total >= target:
            break
        shutil.copyfile(src, bin_dir / f"{n:06}-{src.name}")
        total += src.stat().st_size
    comp_dir = root / "compressed"
    comp_dir.mkdir()
    target += data_mib * MIB * 25 // 100
    n = 0
    while total < target:
        (comp_dir / f"blob{n:04}.zst").write_bytes(os.urandom(8 * MIB))
        total += 8 * MIB
        n += 1
    sparse_dir = root / "sparse"
    sparse_dir.mkdir()
    for k in range(4):
        with open(sparse_dir / f"vm{k}.raw", "wb") as f:
            f.truncate(256 * MIB)
            for off in range(0, 256 * MIB, 32 * MIB):
                f.seek(off)
                f.write(rng.randbytes(MIB))
                total += MIB
    return total


def _sh(cmd: str) -> float:
    start = time.monotonic()
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True, capture_output=True)
    return time.monotonic() - start


def raw_create_cmd(comp: Compressor, src: str, out: Path, log: Path) -> str:
    """The shell pipeline ogref's create runs, minus ogref: same partclone and compressor argv."""
    clone = shlex.join(partclone.clone_argv(Filesystem.EXT4, src, str(log)))
    comp_argv = compressor.compress_argv(comp)
    assert comp_argv is not None
    return f"{clone} | {shlex.join(comp_argv)} > {shlex.quote(str(out))}"


def raw_restore_cmd(comp: Compressor, img: Path, dst: str, log: Path) -> str:
    """The stock restore pipeline with ogref's argv: the decompressor reads the file itself."""
    decomp = compressor.decompress_argv(comp)
    assert decomp is not None
    restore = shlex.join(partclone.restore_argv(dst, str(log)))
    return f"{shlex.join(decomp)} < {shlex.quote(str(img))} | {restore}"


OGREF_EXTRA = (
    "ogref's extra work, timed on its side only: create = header/fs/space/lock checks, "
    "e2fsck -f, whole-file MD5 + torrent SHA-1 pieces in the same pass, fsync, "
    ".info/.sum/.full.sum/.torrent, staged rename; restore = header read, size/lock/fs checks, "
    "whole-file MD5 in the same pass and compared with .full.sum"
)


def _cpu_seconds() -> float:
    """CPU time of this process and its waited-for children (user + system)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _ratio(raw: list[float], ogref: list[float]) -> float:
    return round(statistics.median(raw) / statistics.median(ogref), 3)


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-mib", type=int, default=1024)
    ap.add_argument("--part-gib", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="measurements of each pair (median)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument(
        "--no-chunked", dest="chunked", action="store_false", help="skip the chunked-format row"
    )
    ap.add_argument("--chunk-kib", type=int, default=128, help="FastCDC average chunk size")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench-image needs root (loop devices, mounts)", file=sys.stderr)
        return 7
    ck_params = bench_chunked.chunking(args.chunk_kib)
    load_start = list(os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="ogref-bench-", dir=args.workdir))
    rows: list[dict[str, object]] = []
    part = args.part_gib * GIB
    comps = (Compressor.ZSTD, Compressor.LZOP)
    times: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    diff_row: dict[str, object] = {}
    dedup_row: dict[str, object] = {}
    sizes: dict[tuple[str, str], float] = {}
    try:
        with LoopDisk(work / "disk.img", 2 * part + 8 * MIB) as loop:
            disk.write_table(
                loop.device,
                TableKind.GPT,
                [disk.PartSpec(part, Filesystem.EXT4), disk.PartSpec(part, Filesystem.EXT4)],
            )
            src, dst = loop.partition(1), loop.partition(2)
            filesystem.make(src, Filesystem.EXT4, "bench")
            with Mount(src, Filesystem.EXT4) as root:
                wrote = fill(root, args.data_mib)
            used = filesystem.used_bytes(src, Filesystem.EXT4)
            subprocess.run(["cat", src], stdout=subprocess.DEVNULL, check=True)  # warm the cache
            repo = ImageStore(work / "repo")
            repo.root.mkdir()
            log = work / "partclone.log"
            locks = work / "locks"
            # warm-up, not measured: the first write into the sparse destination allocates its
            # blocks, which would penalise whichever restore ran first
            warm = work / "warm.img"
            _sh(raw_create_cmd(Compressor.ZSTD, src, warm, log))
            _sh(raw_restore_cmd(Compressor.ZSTD, warm, dst, log))
            warm.unlink()

            def measure(key: tuple[str, str], fn: Callable[[], object]) -> None:
                cpu0 = _cpu_seconds()
                start = time.monotonic()
                fn()
                times.setdefault(key, []).append(time.monotonic() - start)
                cpus.setdefault(key, []).append(_cpu_seconds() - cpu0)

            for rnd in range(args.rounds):
                for comp in comps:
                    ext = comp.value.lower()
                    raw_img = work / f"raw.{ext}"
                    name = f"bench-{ext}"
                    creates: list[tuple[tuple[str, str], Callable[[], object]]] = [
                        ((ext, "raw_c"), partial(_sh, raw_create_cmd(comp, src, raw_img, log))),
                        (
                            (ext, "og_c"),
                            partial(
                                create_image, src, repo, name, comp=comp, reduce=False,
                                lock_dir=locks,
                            ),
                        ),
                    ]  # fmt: skip
                    restores: list[tuple[tuple[str, str], Callable[[], object]]] = [
                        ((ext, "raw_r"), partial(_sh, raw_restore_cmd(comp, raw_img, dst, log))),
                        ((ext, "og_r"), partial(restore_image, repo, name, dst, lock_dir=locks)),
                    ]
                    if comp is Compressor.ZSTD and args.chunked:
                        # a fresh chunk store each round: a full create, not a deduplicated one
                        ck_repo = ImageStore(work / "chunked")
                        shutil.rmtree(ck_repo.root, ignore_errors=True)
                        ck_repo.root.mkdir()
                        creates.append(
                            (("zstd", "ck_c"), partial(create_chunked, src, ck_repo, "bench",
                                                       lock_dir=locks, chunking=ck_params))
                        )  # fmt: skip
                        restores.append(
                            (("zstd", "ck_r"), partial(restore_chunked, ck_repo, "bench", dst,
                                                       lock_dir=locks))
                        )  # fmt: skip
                    order = 1 if rnd % 2 else -1  # alternate who goes first
                    for key, fn in creates[::order]:
                        measure(key, fn)
                    for key, fn in restores[::order]:
                        measure(key, fn)
                    sizes[(ext, "raw")] = raw_img.stat().st_size / MIB
                    sizes[(ext, "og")] = repo.files(name).img.stat().st_size / MIB
                    if comp is Compressor.ZSTD and args.chunked:
                        sizes[("zstd", "ck")] = _tree_bytes(work / "chunked") / MIB
                    raw_img.unlink()
            if args.chunked:  # dst holds the image of src (both formats restored the same data)
                diff_row = bench_chunked.differential(
                    src, dst, ImageStore(work / "chunked"), locks, args.data_mib,
                    statistics.median(times[("zstd", "ck_r")]), args.chunk_kib,
                )  # fmt: skip
                dedup_row = bench_chunked.dedup(
                    src, ImageStore(work / "dedup"), locks, args.data_mib, args.chunk_kib
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for comp in comps:
        ext = comp.value.lower()
        t = {k: times[(ext, k)] for k in ("raw_c", "og_c", "raw_r", "og_r")}
        c_ratio = [r / o for r, o in zip(t["raw_c"], t["og_c"], strict=True)]
        r_ratio = [r / o for r, o in zip(t["raw_r"], t["og_r"], strict=True)]
        cpu = {k: cpus[(ext, k)] for k in ("raw_c", "og_c", "raw_r", "og_r")}
        rows.append({
            "compressor": ext,
            "used_mib": round(used / MIB),
            "raw_create_MBps": round(used / statistics.median(t["raw_c"]) / 1e6, 1),
            "ogref_create_MBps": round(used / statistics.median(t["og_c"]) / 1e6, 1),
            "create_ratio": _spread(c_ratio),
            "raw_restore_MBps": round(used / statistics.median(t["raw_r"]) / 1e6, 1),
            "ogref_restore_MBps": round(used / statistics.median(t["og_r"]) / 1e6, 1),
            "restore_ratio": _spread(r_ratio),
            "seconds": {k: [round(x, 2) for x in v] for k, v in t.items()},
            "cpu_seconds": {k: [round(x, 2) for x in v] for k, v in cpu.items()},
            "create_cpu_ratio": _ratio(cpu["raw_c"], cpu["og_c"]),
            "restore_cpu_ratio": _ratio(cpu["raw_r"], cpu["og_r"]),
            "raw_image_mib": round(sizes[(ext, "raw")], 1),
            "ogref_image_mib": round(sizes[(ext, "og")], 1),
        })  # fmt: skip
    chunked = None
    if args.chunked:
        chunked = bench_chunked.side_by_side(
            times, cpus, sizes[("zstd", "ck")], used, args.chunk_kib
        )
        chunked["differential"] = diff_row
        chunked["dedup"] = dedup_row
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    zstd_size = next(float(str(r["ogref_image_mib"])) for r in rows if r["compressor"] == "zstd")
    lzop_size = next(float(str(r["ogref_image_mib"])) for r in rows if r["compressor"] == "lzop")
    summary = {
        "data_written_mib": round(wrote / MIB),
        "rounds": args.rounds,
        "rows": rows,
        "zstd_over_lzop_size": round(zstd_size / lzop_size, 3),
        "peak_rss_python_mib": round(peak_self),
        "peak_rss_largest_child_mib": round(peak_child),
        "raw_create": raw_create_cmd(Compressor.ZSTD, "SRC", Path("OUT"), Path("LOG")),
        "raw_restore": raw_restore_cmd(Compressor.ZSTD, Path("IMG"), "DST", Path("LOG")),
        "ogref_extra": OGREF_EXTRA,
        "chunked": chunked,
        "loadavg_start_end": [load_start, list(os.getloadavg())],
        "note": (
            "warm page cache (drop_caches denied); MB/s = filesystem used bytes / median wall "
            "time; ratio = raw time / ogref time per round (median, min-max over rounds), "
            "the two sides alternating who runs first"
        ),
    }
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(
        f"ogref imaging benchmark: {summary['data_written_mib']} MiB written, "
        f"{rows[0]['used_mib']} MiB used on a {args.part_gib} GiB ext4 partition, "
        f"{args.rounds} rounds"
    )
    head = (
        "comp",
        "raw c MB/s",
        "ogref c MB/s",
        "c ratio",
        "(min-max)",
        "raw r MB/s",
        "ogref r MB/s",
        "r ratio",
        "(min-max)",
        "raw MiB",
        "ogref MiB",
    )
    print("  ".join(f"{h:>12}" for h in head))
    for r in rows:
        cr = r["create_ratio"]
        rr = r["restore_ratio"]
        assert isinstance(cr, dict) and isinstance(rr, dict)
        vals = (
            r["compressor"],
            r["raw_create_MBps"],
            r["ogref_create_MBps"],
            cr["median"],
            f"{cr['min']}-{cr['max']}",
            r["raw_restore_MBps"],
            r["ogref_restore_MBps"],
            rr["median"],
            f"{rr['min']}-{rr['max']}",
            r["raw_image_mib"],
            r["ogref_image_mib"],
        )
        print("  ".join(f"{v!s:>12}" for v in vals))
    print(
        f"zstd/lzop image size: {summary['zstd_over_lzop_size']}   peak RSS: python "
        f"{summary['peak_rss_python_mib']} MiB, largest child {summary['peak_rss_largest_child_mib']} MiB"
    )
    print(
        "CPU seconds raw/ogref (median; ogref's hashing shows here even when wall time hides "
        "it): "
        + ", ".join(
            f"{r['compressor']} create {r['create_cpu_ratio']} restore {r['restore_cpu_ratio']}"
            for r in rows
        )
    )
    if chunked is not None:
        print(
            f"chunked (zstd-{chunked['level']} chunks) vs ogref partclone|zstd, time ratio "
            f"ogref/chunked (> 1: chunked faster): create {chunked['create_ratio']} "
            f"(CPU {chunked['create_cpu_ratio']}), restore {chunked['restore_ratio']} "
            f"(CPU {chunked['restore_cpu_ratio']}); chunked {chunked['create_MBps']} / "
            f"{chunked['restore_MBps']} MB/s; chunk store {chunked['store_mib']} MiB"
        )
        diff = chunked["differential"]
        print(f"differential (~5 % changed): {json.dumps(diff)}")
        if isinstance(diff, dict) and "restore_onto_base_over_full" in diff:
            print(
                "in-place restore onto the base / full chunked restore (same run): by hash "
                f"{diff['restore_onto_base_over_full_by_hash']}, by record "
                f"{diff['restore_onto_base_over_full']} (goal ≤ 0.25)"
            )
        print(f"dedup (two images of one base, different software): {json.dumps(chunked['dedup'])}")
        print(f"load average at start and end: {summary['loadavg_start_end']}")
    print(f"raw create:  {summary['raw_create']}")
    print(f"raw restore: {summary['raw_restore']}")
    print(OGREF_EXTRA)
    print(summary["note"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
