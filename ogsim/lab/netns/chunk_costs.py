"""``python -m ogsim.lab.netns.chunk_costs``: what moving and storing chunks costs on this lab host.

The simulator's chunked update needs three costs the byte counts alone do not give (issue 14,
s26): the **per-chunk request** of the UNICAST update (one SMB open, read and close per chunk,
four workers, each with its own connection), the **per-directory listing** of the cache
inspection (the sizes of the chunks a CACHE lacks, one ``listPath`` per chunk-store
sub-directory) and the **syncfs** that makes the fetched chunks durable before the manifest is
installed.  They are measured here, on one client (N = 1), with the runtime's own code: a
repository namespace serving a chunk store through the lab's Samba, one client namespace behind
a shaped 100 Mbit/s link running :func:`ogref.runtime.chunked.transfer.fetch` into a CACHE on a
loop-device ext4, and ``syncfs`` of that CACHE after writing known amounts of chunk files.

* ``fetch``: updates of K = 8, 32, 96 chunks (each into an empty CACHE), twice each; the
  least-squares line ``t = a + b·K`` minus the wire time of the chunks' bytes (plus the
  measured SMB framing) gives the per-chunk request latency ``b − wire/K`` that the four
  workers do not hide, and the fixed cost ``a`` (connections, manifest, the final syncfs);
  the same line over CPU seconds (the client process's, every thread, and smbd's, from the
  processes) gives the **per-chunk CPU cost** — what N clients on this host's cores share;
* ``listing``: ``listPath`` of D sub-directories, the mean per directory;
* ``syncfs``: seconds against dirty bytes (1–64 MiB of chunk files), a line ``a + bytes/rate``;
* ``restore``: a chunked restore in place by hash onto an empty ext4 (as the lab's CACHE
  restore onto its fresh partitions): its rate of used bytes and the cores it keeps busy
  (CPU seconds ÷ seconds), which is how N restores share this host's cores.
* ``writeback``: one writer's ``fsync`` of 16, 48 and 96 MiB written onto a fresh loop device
  (a restore's final writeback): the line of the host's kernel CPU seconds outside this
  process (the loop device's workers copying into its backing file) against bytes gives the
  bytes they copy per core-second (``writeback_cpu_rate``), the line of the fsync's seconds
  less that CPU the host disk's rate alone for the backing file's writeback
  (``writeback_rate``) — the simulator's ``backends.sim.shared_disk`` of a one-host lab.

Root (namespaces, loop devices).  Writes ``chunk_costs.json`` in ``--out`` and prints it; the
lab manifest destroys what it made.  It decides nothing; :mod:`ogsim.lab.netns.chunked_bench`
turns the numbers into the simulator's parameters.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHUNK = 128 * 1024  # uncompressed bytes per made-up chunk (the format's average)
COUNTS = (8, 32, 96)
DIRTY_MIB = (1, 4, 16, 64)
WRITEBACK_MIB = (16, 48, 96)  # a restore's final fsync at s26's netns scale writes ≈ 95 MiB
LINK_BPS = 100e6


def chunk_data(rng: random.Random) -> bytes:
    """Half words, half random bytes: compresses to about 0.6, as the lab's chunks do."""
    from ogsim.lab.netns.images import words

    return words(rng, CHUNK // 2) + rng.randbytes(CHUNK - CHUNK // 2)


def make_images(share: Path, seed: int = 5) -> dict[str, dict[str, int]]:
    """One chunked image per count of :data:`COUNTS` in the ``share`` directory (no chunk
    shared between them); name → chunks and stored bytes."""
    from ogref.model.storage import Filesystem
    from ogref.runtime import partclone
    from ogref.runtime.chunked import chunk, image
    from ogref.runtime.chunked.manifest import ChunkRef, Manifest
    from ogref.runtime.imagefile import ImageStore

    rng = random.Random(seed)
    images = ImageStore(share)
    store = image.chunk_store(images)
    made: dict[str, dict[str, int]] = {}
    bs = 4096
    for k in COUNTS:
        refs, stored = [], 0
        for _ in range(k):
            data = chunk_data(rng)
            frame = chunk.compress(data)
            store.put(chunk.digest(data), frame)
            refs.append(ChunkRef(chunk.digest(data), len(data)))
            stored += len(frame)
        blocks = k * CHUNK // bs
        header = partclone.Header("0.3.23", "EXTFS", blocks * bs, bs, blocks, blocks)
        m = Manifest(header, Filesystem.EXT4, b"\xff" * (blocks // 8), tuple(refs))
        image.publish(images, f"k{k}", m)
        made[f"k{k}"] = {"chunks": k, "stored": stored}
    store.sync()
    return made


def _syncfs(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        if libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _cpu(server_pids: list[int]) -> tuple[float, float]:
    """CPU seconds of this process (every thread) and of smbd: its processes ``server_pids``
    with their reaped children, and their live children (one per connection)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    tick = os.sysconf("SC_CLK_TCK")
    served = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid in server_pids:
            served += sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
        elif ppid in server_pids:
            served += sum(int(x) for x in fields[11:13]) / tick
    return own.ru_utime + own.ru_stime, served


def client(
    server: str, cred: Path, cache_root: Path, names: list[str], rounds: int, server_pids: list[int]
) -> dict[str, Any]:
    """In the client's namespace: the fetches, the listings and the syncfs measurements."""
    import shutil

    from ogref.runtime.chunked import transfer as tr
    from ogref.runtime.chunked.manifest import Manifest
    from ogref.runtime.imagefile import ImageStore
    from ogref.transports.chunks import SmbChunkSource
    from ogref.transports.smb import SmbCredentials

    creds = SmbCredentials.from_file(server, cred)
    out: dict[str, Any] = {"fetch": [], "listing": [], "syncfs": []}
    for rnd in range(rounds):
        for name in names if rnd % 2 == 0 else names[::-1]:
            cache = ImageStore(cache_root / "images")
            shutil.rmtree(cache.root, ignore_errors=True)
            cache.root.mkdir(parents=True)
            _syncfs(cache_root)
            src = SmbChunkSource(creds)
            cpu0 = _cpu(server_pids)
            t = time.monotonic()
            try:
                done = tr.fetch(src, cache, name, new_source=lambda: SmbChunkSource(creds))
            finally:
                src.close()
            seconds = time.monotonic() - t
            cpu1 = _cpu(server_pids)
            out["fetch"].append(
                {
                    "image": name,
                    "chunks": done.chunks_moved,
                    "bytes": done.bytes_moved,
                    "seconds": seconds,
                    "client_cpu": cpu1[0] - cpu0[0],
                    "server_cpu": cpu1[1] - cpu0[1],
                }
            )
    # listings: every sub-directory of the share's store holding chunks of the largest image
    with SmbChunkSource(creds) as src:
        made = Manifest.from_json(src.manifest_bytes(names[-1]), names[-1])
        subs = sorted({c.digest[:2] for c in made.chunks})
        t = time.monotonic()
        for sub in subs:
            src._dir(sub)
        out["listing"].append({"dirs": len(subs), "seconds": time.monotonic() - t})
    # syncfs against dirty bytes: chunk-sized files, as an update writes them
    rng = random.Random(3)
    frame = rng.randbytes(80_000)
    for rnd in range(rounds):
        for mib in DIRTY_MIB if rnd % 2 == 0 else DIRTY_MIB[::-1]:
            d = cache_root / f"dirty{mib}"
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir()
            _syncfs(cache_root)
            n = mib * (1 << 20) // len(frame)
            for i in range(n):
                (d / f"{i:05d}.zst").write_bytes(frame)
            t = time.monotonic()
            _syncfs(cache_root)
            out["syncfs"].append(
                {"bytes": n * len(frame), "files": n, "seconds": time.monotonic() - t}
            )
            shutil.rmtree(d)
    return out


def measure_restore(work: Path, data_mib: int = 48, rounds: int = 2) -> list[dict[str, float]]:
    """A chunked restore as the lab's CACHE restore runs it: in place, by hash, onto an empty
    ext4 of the same size (loop devices on this host): used bytes, seconds and CPU seconds
    (every thread) of each run."""
    import resource

    from ogref.model.storage import Filesystem, TableKind
    from ogref.runtime import disk, filesystem
    from ogref.runtime.chunked.create import create_chunked
    from ogref.runtime.chunked.restore import restore_chunked
    from ogref.runtime.imagefile import ImageStore
    from ogref.runtime.loopdev import LoopDisk
    from ogref.runtime.mount import Mount
    from ogsim.lab.netns.images import fill

    def cpu() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        return own.ru_utime + own.ru_stime

    part = 4 * data_mib << 20
    out = []
    with LoopDisk(work / "restore.img", 2 * part + (8 << 20)) as loop:
        disk.write_table(loop.device, TableKind.GPT, [disk.PartSpec(part, Filesystem.EXT4)] * 2)
        src, dst = loop.partition(1), loop.partition(2)
        filesystem.make(src, Filesystem.EXT4, "src")
        with Mount(src, Filesystem.EXT4) as root:
            fill(root, data_mib << 20, 0.6, random.Random(9), text=True)
        store = ImageStore(work / "restore-store")
        store.root.mkdir(parents=True, exist_ok=True)
        locks = work / "locks"
        made = create_chunked(src, store, "r", lock_dir=locks)
        for _ in range(rounds):
            filesystem.make(dst, Filesystem.EXT4, "dst")
            c, t = cpu(), time.monotonic()
            restore_chunked(store, "r", dst, lock_dir=locks, in_place=True, use_record=False)
            seconds, cpu_s = time.monotonic() - t, cpu() - c
            out.append({"used": made.manifest.data_size, "seconds": seconds, "cpu": cpu_s})
    return out


def _io_stall() -> float:
    """Seconds some task of the host waited for I/O so far (``/proc/pressure/io``; 0 without)."""
    try:
        with open("/proc/pressure/io") as f:
            some = next(line for line in f if line.startswith("some"))
    except (OSError, StopIteration):
        return 0.0
    return int(some.rsplit("total=", 1)[1]) / 1e6


def measure_writeback(
    work: Path, sizes_mib: tuple[int, ...] = WRITEBACK_MIB, rounds: int = 3
) -> list[dict[str, float]]:
    """One writer's writeback to this host's disk (N = 1), as a restore's final ``fsync`` does
    it: ``mib`` MiB written (buffered ``pwrite``) onto a fresh loop device over a sparse file,
    then its ``fsync`` timed, with the host's CPU seconds in the kernel outside this process
    during it (the loop device's kernel workers and the flusher; the host's background rate of
    it, measured just before, subtracted; other programs' user time is not in it) and the
    host's I/O stall.  A fresh device per run: the lab's loop
    files are fresh too, so the writeback allocates their blocks."""
    import resource

    from ogref.runtime.loopdev import LoopDisk
    from ogsim.lab.netns.cpu import host_kernel_s as _host_kernel

    def own() -> float:  # this process's kernel time (its writes, its fsync's own part)
        return resource.getrusage(resource.RUSAGE_SELF).ru_stime

    block = random.Random(11).randbytes(4 << 20)
    out = []
    for rnd in range(rounds):
        for mib in sizes_mib if rnd % 2 == 0 else sizes_mib[::-1]:
            with LoopDisk(work / f"writeback{mib}.img", (mib + 4) << 20) as loop:
                fd = os.open(loop.device, os.O_RDWR | os.O_CLOEXEC)
                try:
                    for i in range(mib // 4):
                        os.pwrite(fd, block, i * len(block))
                    b0, t0 = _host_kernel(), time.monotonic()  # the host's background rate
                    time.sleep(0.2)
                    background = (_host_kernel() - b0) / (time.monotonic() - t0)
                    b, c, io, t = _host_kernel(), own(), _io_stall(), time.monotonic()
                    os.fsync(fd)
                    seconds = time.monotonic() - t
                    other = (_host_kernel() - b) - (own() - c) - background * seconds
                    out.append({"bytes": float(mib << 20), "seconds": seconds,
                                "other_cpu": max(0.0, other), "background_cores": background,
                                "io_stall": _io_stall() - io})  # fmt: skip
                finally:
                    os.close(fd)
    return out


def line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares ``y = a + b·x``: (a, b)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return my - b * mx, b


def summarise_writeback(rows: list[dict[str, float]]) -> dict[str, float | None]:
    """The bytes the kernel's threads copy per core-second (the slope of the CPU outside the
    writer against bytes, each size's median over the rounds), the host disk's rate alone
    for the rest of the fsync (the slope of its seconds less that CPU), its fixed seconds
    and the I/O stall per MB (information)."""
    if not rows:
        return {}
    import statistics

    # each size's median over the rounds (one slow fsync, another process's burst, weigh less)
    # a loop device's flush copies the bytes into its backing file (the kernel's CPU), then
    # writes the backing file back: the disk's part is the fsync's seconds less that CPU
    xs = sorted({r["bytes"] for r in rows})
    disk = [statistics.median(max(0.0, r["seconds"] - r["other_cpu"]) for r in rows
                              if r["bytes"] == x) for x in xs]  # fmt: skip
    cpus = [statistics.median(r["other_cpu"] for r in rows if r["bytes"] == x) for x in xs]
    a, b = line(xs, disk)
    _, c = line(xs, cpus)
    return {
        "writeback_fixed_s": round(max(0.0, a), 4),
        "writeback_rate": round(1 / b) if b > 0 else None,
        "writeback_cpu_rate": round(1 / c) if c > 0 else None,
        "writeback_io_stall_s_per_mb": round(
            sum(r["io_stall"] for r in rows) / sum(r["bytes"] for r in rows) * 1e6, 5
        ),
    }


def summarise(raw: dict[str, Any], smb_overhead: float, link_bps: float = LINK_BPS) -> dict:
    """The simulator's parameters from the raw measurements: per-chunk request seconds (the
    slope of the fetch time against the chunk count, less each chunk's wire time), the
    fetch's fixed seconds, per-directory listing seconds, and syncfs's fixed seconds and rate."""
    f = raw["fetch"]
    a, b = line([r["chunks"] for r in f], [r["seconds"] for r in f])
    wire = [r["bytes"] * (1 + smb_overhead) * 8 / link_bps / r["chunks"] for r in f]
    per_chunk_wire = sum(wire) / len(wire)
    ca, cb = line([r["chunks"] for r in f], [r["client_cpu"] + r["server_cpu"] for r in f])
    s = raw["syncfs"]
    sa, sb = line([r["bytes"] for r in s], [r["seconds"] for r in s])
    lst = raw["listing"]
    rs = raw.get("restore") or []
    restore = {}
    if rs:
        secs = sum(r["seconds"] for r in rs)
        restore = {
            "restore_rate": round(sum(r["used"] for r in rs) / secs),
            "restore_cpu": round(sum(r["cpu"] for r in rs) / secs, 3),
        }
    writeback = summarise_writeback(raw.get("writeback") or [])
    return (
        restore
        | writeback
        | {
            "chunk_request_s": round(max(0.0, b - per_chunk_wire), 5),
            "fetch_fixed_s": round(max(0.0, a), 4),
            "fetch_slope_s": round(b, 5),
            "chunk_wire_s": round(per_chunk_wire, 5),
            "chunk_cpu_s": round(max(0.0, cb), 5),
            "fetch_cpu_fixed_s": round(max(0.0, ca), 4),
            "list_s": round(sum(r["seconds"] for r in lst) / sum(r["dirs"] for r in lst), 5),
            "syncfs_s": round(max(0.0, sa), 4),
            "syncfs_rate": round(1 / sb, 0) if sb > 0 else None,
        }
    )


def measure(out: Path, rounds: int = 2, smb_overhead: float = 0.059) -> dict[str, Any]:
    """Build the two-namespace lab, run :func:`client` in the client, destroy the lab."""
    from ogref.model.storage import Filesystem
    from ogref.runtime import filesystem
    from ogref.runtime.loopdev import LoopDisk
    from ogref.runtime.mount import Mount
    from ogsim.lab.manifest import Manifest
    from ogsim.lab.netns.multicast_lab import MulticastLab
    from ogsim.lab.netns.samba import start_smbd

    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="chunk-costs-", dir=out))
    share = work / "share"
    made = make_images(share)
    m = Manifest(work / "lab")
    load = [os.getloadavg()[0]]
    with m.owned():
        lab = MulticastLab.build(m, work / "run", 1, rate_bps=LINK_BPS)
        accounts = start_smbd(m, lab.repo, share, work / "smb")
        assert m.cgroup is not None
        pids = [int(x) for x in (m.cgroup / "cgroup.procs").read_text().split()]
        with LoopDisk(work / "cache.img", 512 << 20) as loop:
            filesystem.make(loop.device, Filesystem.EXT4, "CACHE")
            with Mount(loop.device, Filesystem.EXT4) as root:
                argv = [sys.executable, "-m", "ogsim.lab.netns.chunk_costs", "--client",
                        lab.repo.address, str(accounts.reader_file), str(root),
                        ",".join(made), str(rounds), ",".join(map(str, pids))]  # fmt: skip
                done = subprocess.run(
                    lab.clients[0].exec_argv(argv),
                    capture_output=True,
                    text=True,
                    check=True,
                    env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
                    timeout=600,
                )
    raw = json.loads(done.stdout)
    raw["restore"] = measure_restore(work)
    raw["writeback"] = measure_writeback(work)
    load.append(os.getloadavg()[0])
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    doc = {
        "images": made,
        "raw": raw,
        "smb_overhead": smb_overhead,
        "params": summarise(raw, smb_overhead),
        "loadavg_start_end": load,
    }
    (out / "chunk_costs.json").write_text(json.dumps(doc, indent=1))
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ogsim.lab.netns.chunk_costs")
    p.add_argument("--out", type=Path, default=Path("reports/lab-chunk-costs"))
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--client", nargs=6, help=argparse.SUPPRESS)
    p.add_argument("--writeback-only", action="store_true",
                   help="measure only the writeback of a loop device (no Samba lab)")  # fmt: skip
    a = p.parse_args(argv)
    if a.client:
        server, cred, root, names, rounds, group = a.client
        pids = [int(x) for x in group.split(",") if x]
        res = client(server, Path(cred), Path(root), names.split(","), int(rounds), pids)
        print(json.dumps(res))
        return 0
    if os.geteuid() != 0:
        print("chunk_costs: needs root (network namespaces, loop devices)", file=sys.stderr)
        return 2
    if a.writeback_only:
        a.out.mkdir(parents=True, exist_ok=True)
        load = [os.getloadavg()[0]]
        with tempfile.TemporaryDirectory(prefix="writeback-", dir=a.out) as work:
            raw = {"writeback": measure_writeback(Path(work), rounds=max(3, a.rounds))}
        load.append(os.getloadavg()[0])
        got = summarise_writeback(raw["writeback"])
        (a.out / "writeback.json").write_text(
            json.dumps({"raw": raw, "params": got, "loadavg_start_end": load}, indent=1)
        )
        print(json.dumps(got, indent=1))
        print(f"load average at start and end: {load}")
        return 0
    doc = measure(a.out, a.rounds)
    print(json.dumps(doc["params"], indent=1))
    print(f"load average at start and end: {doc['loadavg_start_end']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
