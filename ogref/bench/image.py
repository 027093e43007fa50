"""Imaging benchmark: ogref create/restore against the raw partclone shell pipelines.

On a 2 GiB loop partition holding about 1 GiB of varied data (text, binaries, already-compressed
bytes, sparse files) it runs, in one go and on warm caches: raw ``partclone.extfs -c | zstd -T0``
and ``| lzop``, ogref's create with each compressor (sidecars included), then the raw and ogref
restores.  It prints MB/s, the ogref/raw ratio, image sizes and peak memory.  It is a benchmark:
it asserts nothing.  Needs root.  ``python -m ogref.bench.image [--data-mib N] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ogref.model.image import Compressor
from ogref.model.storage import Filesystem, TableKind
from ogref.runtime import disk, filesystem
from ogref.runtime.create import create_image
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.loopdev import LoopDisk
from ogref.runtime.mount import Mount
from ogref.runtime.restore import restore_image
from ogref.units import GIB, MIB

RAW_COMP = {Compressor.ZSTD: "zstd -q -T0 -3 -c", Compressor.LZOP: "lzop -c"}
RAW_DECOMP = {Compressor.ZSTD: "zstd -q -d -c", Compressor.LZOP: "lzop -d -c"}


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-mib", type=int, default=1024)
    ap.add_argument("--part-gib", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench-image needs root (loop devices, mounts)", file=sys.stderr)
        return 7
    work = Path(tempfile.mkdtemp(prefix="ogref-bench-", dir=args.workdir))
    rows: list[dict[str, object]] = []
    part = args.part_gib * GIB
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
            for comp in (Compressor.ZSTD, Compressor.LZOP):
                ext = comp.value.lower()
                raw_img = work / f"raw.{ext}"
                t_raw_c = _sh(
                    f"partclone.extfs -c -s {src} -o - -L {log} | {RAW_COMP[comp]} > {raw_img}"
                )
                start = time.monotonic()
                made = create_image(
                    src, repo, f"bench-{ext}", comp=comp, reduce=False, lock_dir=work / "locks"
                )
                t_og_c = time.monotonic() - start
                t_raw_r = _sh(
                    f"{RAW_DECOMP[comp]} {raw_img} | partclone.restore -s - -o {dst} -L {log}"
                )
                start = time.monotonic()
                restore_image(repo, f"bench-{ext}", dst, lock_dir=work / "locks")
                t_og_r = time.monotonic() - start
                rows.append({
                    "compressor": ext,
                    "used_mib": round(used / MIB),
                    "raw_create_MBps": round(used / t_raw_c / 1e6, 1),
                    "ogref_create_MBps": round(used / t_og_c / 1e6, 1),
                    "create_ratio": round(t_raw_c / t_og_c, 3),
                    "raw_restore_MBps": round(used / t_raw_r / 1e6, 1),
                    "ogref_restore_MBps": round(used / t_og_r / 1e6, 1),
                    "restore_ratio": round(t_raw_r / t_og_r, 3),
                    "raw_image_mib": round(raw_img.stat().st_size / MIB, 1),
                    "ogref_image_mib": round(made.image.stored_size / MIB, 1),
                })  # fmt: skip
                raw_img.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    zstd_size = next(float(str(r["ogref_image_mib"])) for r in rows if r["compressor"] == "zstd")
    lzop_size = next(float(str(r["ogref_image_mib"])) for r in rows if r["compressor"] == "lzop")
    summary = {
        "data_written_mib": round(wrote / MIB),
        "rows": rows,
        "zstd_over_lzop_size": round(zstd_size / lzop_size, 3),
        "peak_rss_python_mib": round(peak_self),
        "peak_rss_largest_child_mib": round(peak_child),
        "note": "warm page cache (drop_caches denied); MB/s = filesystem used bytes / wall time",
    }
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(
        f"ogref imaging benchmark: {summary['data_written_mib']} MiB written, "
        f"{rows[0]['used_mib']} MiB used on a {args.part_gib} GiB ext4 partition"
    )
    head = (
        "comp",
        "raw c MB/s",
        "ogref c MB/s",
        "c ratio",
        "raw r MB/s",
        "ogref r MB/s",
        "r ratio",
        "raw MiB",
        "ogref MiB",
    )
    print("  ".join(f"{h:>12}" for h in head))
    for r in rows:
        vals = (
            r["compressor"],
            r["raw_create_MBps"],
            r["ogref_create_MBps"],
            r["create_ratio"],
            r["raw_restore_MBps"],
            r["ogref_restore_MBps"],
            r["restore_ratio"],
            r["raw_image_mib"],
            r["ogref_image_mib"],
        )
        print("  ".join(f"{v!s:>12}" for v in vals))
    print(
        f"zstd/lzop image size: {summary['zstd_over_lzop_size']}   peak RSS: python "
        f"{summary['peak_rss_python_mib']} MiB, largest child {summary['peak_rss_largest_child_mib']} MiB"
    )
    print(summary["note"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
