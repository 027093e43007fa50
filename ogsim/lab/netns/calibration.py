"""Calibration of the simulator against the netns lab (issue 5 item 8): the lab host's hardware.

The simulator's defaults describe a classroom PC (HDD/SSD, a 20 s configureOs, 1 s per
inspection); the lab's "PCs" are loop devices on this host's page cache, a data-only EXT4
partition with nothing to post-configure, and transports that start as processes.  Predicting
the lab therefore needs the *lab host's* parameters, and these are taken from the lab itself:

* from the N = 1 run of each method (so N = 1 is in-sample, N > 1 is the check):
  ``inspect`` (time before the first transfer ÷ the number of inspections the core asks for),
  ``postconf`` (end of the restore → the agent's report), the CACHE-restore data rate
  (``decompress``: zstd + partclone onto a loop device), SMB's overhead on the wire (the UNICAST
  fetch's rate against the link), udp-sender's start-up and closing acknowledgements
  (``mcast_start``) and libtorrent's start-up (``torrent_start``), each the residual of the
  N = 1 deploy time after the rest of the model;
* from a measurement on this host: the write rate of a loop disk (``dd … conv=fsync``),
  its number of cores, which every client's decompression shares (``shared_cpus``), and the
  kernel's dirty-writeback threshold (``disk.dirty``): a restore straight from the network
  writes into the page cache and ends with partclone's sync of all of it.

``breakdown`` splits one lab run into those steps; ``fit`` turns the N = 1 runs into a
:class:`LabHw`; ``LabHw.hw()``/``repo_hw()`` are the scenario's ``hw:`` mappings.  Pure
functions over results except :func:`measure_write_rate` and :func:`dirty_limit`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ogsim.results import Results

CACHE_RESTORE = "CACHE"


def _is_transfer(name: str, detail: str) -> bool:
    return name == "fetch" or (name == "restore" and "DIRECT" in detail)


def _is_local(name: str, detail: str) -> bool:
    return name == "restore" and detail.startswith(CACHE_RESTORE)


def breakdown(r: Results) -> dict[str, float]:
    """Mean per ok computer of the lab's steps: ``pre`` (start → first transfer: inspections,
    random start delay), ``transfer`` (fetch or DIRECT restore), ``local`` (restore from the
    CACHE), ``post`` (last step's end → finished); ``transfer_max`` over the computers."""
    rows: dict[str, list[float]] = {"pre": [], "transfer": [], "local": [], "post": []}
    tmax = 0.0
    for c in r.operations[0].computers:
        if c.status != "ok" or c.finished is None:
            continue
        phases = sorted(c.phases, key=lambda p: p.start)
        moving = [p for p in phases if _is_transfer(p.name, p.detail)]
        local = [p for p in phases if _is_local(p.name, p.detail)]
        if moving:
            rows["pre"].append(moving[0].start - c.started)
            t = sum(p.end - p.start for p in moving)
            rows["transfer"].append(t)
            tmax = max(tmax, t)
        if local:
            rows["local"].append(sum(p.end - p.start for p in local))
        work = [p for p in phases if p.name not in ("verify", "seed", "seeding")]
        if work:
            rows["post"].append(c.finished - max(p.end for p in work))
    out = {k: round(sum(v) / len(v), 3) for k, v in rows.items() if v}
    out["transfer_max"] = round(tmax, 3)
    return out


@dataclass
class LabHw:
    """The lab host's parameters for the simulator (SI units: s, bytes/s)."""

    inspect_s: float = 0.05
    postconf_s: float = 0.3
    decompress_rate: float = 200e6
    write_rate: float = 500e6
    dirty_bytes: float = 0.0
    smb_overhead: float = 0.08
    mcast_start_s: float = 0.0
    torrent_start_s: float = 0.0
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    fitted_from: list[str] = field(default_factory=list)
    # the host's one disk for the computers' writeback (0: each computer writes at write_rate),
    # the bytes the kernel's threads copy into the loop files per core-second before it (0: no
    # CPU counted) and the fixed seconds after; measured alone (``ogsim.lab.netns.chunk_costs``:
    # an fsync of a loop device)
    disk_rate: float = 0.0
    writeback_cpu_rate: float = 0.0
    writeback_fixed_s: float = 0.0
    # the cores' worth of one process's work the host's cores do when every one is busy,
    # measured on the host alone (``ogsim.lab.netns.contention``; 0: ``cpus``, no contention)
    busy_cores: float = 0.0

    def hw(self) -> dict[str, Any]:
        """The classroom's ``hw:`` mapping (without the link)."""
        return {
            "inspect": f"{self.inspect_s:.4f}s",
            "postconf": f"{self.postconf_s:.4f}s",
            "decompress": f"{self.decompress_rate / 1e6:.3f}MB/s",
            "disk": {
                "write": f"{self.write_rate / 1e6:.3f}MB/s",
                "read": f"{self.write_rate / 1e6:.3f}MB/s",
                "random_write": f"{self.write_rate / 1e6:.3f}MB/s",
                "dirty": int(self.dirty_bytes),
            },
        }

    def repo_hw(self) -> dict[str, Any]:
        """The repository's extra ``hw:`` keys."""
        return {
            "smb_overhead": f"{self.smb_overhead * 100:.2f}%",
            "mcast_start": f"{self.mcast_start_s:.4f}s",
            "torrent_start": f"{self.torrent_start_s:.4f}s",
        }

    def sim(self) -> dict[str, Any]:
        """The scenario's ``backends.sim`` keys: the clients share this host's cores (and,
        when measured, its disk for their writeback)."""
        out: dict[str, Any] = {"shared_cpus": self.cpus}
        if self.busy_cores > 0:
            out["shared_cpus_busy"] = round(min(self.busy_cores, float(self.cpus)), 3)
        if self.disk_rate > 0:
            disk = {"rate": f"{self.disk_rate / 1e6:.3f}MB/s"}
            if self.writeback_cpu_rate > 0:
                disk["cpu"] = f"{self.writeback_cpu_rate / 1e6:.3f}MB/s"
            if self.writeback_fixed_s > 0:
                disk["fixed"] = f"{self.writeback_fixed_s:.4f}s"
            out["shared_disk"] = disk
        return out

    def writeback_s(self, nbytes: float) -> float:
        """Seconds ``nbytes`` of one computer's writeback take alone through the shared disk
        (as the simulator runs it with :meth:`sim`'s ``shared_disk``; 0 without one)."""
        if self.disk_rate <= 0 or nbytes <= 0:
            return 0.0
        cpu = nbytes / self.writeback_cpu_rate if self.writeback_cpu_rate > 0 else 0.0
        return self.writeback_fixed_s + cpu + nbytes / self.disk_rate

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def inspections(method: str) -> int:
    """Inspection steps the decision core asks for before the first transfer (target, image,
    and the cache for the cache methods)."""
    return 2 if method.endswith("DIRECT") else 3


def measure_write_rate(directory: Path | None = None, mib: int = 128, runs: int = 3) -> float:
    """Write rate (bytes/s) of a lab client disk: ``dd … conv=fsync`` onto a loop device whose
    sparse backing file sits under ``directory`` — the path of a restore's writes and of
    partclone's final sync, whose flush reaches the host's disk (without root, which loop
    devices need, onto a plain file there, as ``--calibrate-only`` did before).  That disk is
    shared and noisy (239–1041 MB/s in three runs here), so this is the median of ``runs``.
    The loop device is detached and the file removed before returning."""
    from ogref.runtime.loopdev import LoopDisk

    rates = []
    dd = ["dd", "if=/dev/zero", "bs=4M", f"count={mib // 4}", "conv=fsync"]
    with contextlib.ExitStack() as stack:
        d = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=directory)))
        target = str(d / "w.bin")
        if os.geteuid() == 0:
            target = stack.enter_context(LoopDisk(d / "w.img", (mib + 4) << 20)).device
        for _ in range(runs):
            t = time.monotonic()
            subprocess.run([*dd, f"of={target}"], check=True, capture_output=True)
            rates.append(mib * (1 << 20) / (time.monotonic() - t))
    return sorted(rates)[len(rates) // 2]


def dirty_limit() -> float:
    """Bytes of written data this host's kernel keeps in memory before background writeback:
    ``vm.dirty_background_bytes``, or ``vm.dirty_background_ratio`` % of MemAvailable."""
    vm = Path("/proc/sys/vm")
    fixed = int((vm / "dirty_background_bytes").read_text())
    if fixed:
        return float(fixed)
    pct = int((vm / "dirty_background_ratio").read_text())
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return pct / 100 * int(line.split()[1]) * 1024
    return 0.0


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def fit(
    rows: list[dict[str, Any]],
    residual: Any,
    write_rate: float | None = None,
    dirty_bytes: float | None = None,
) -> LabHw:
    """The lab host's parameters from the N = 1 row of each method (each method's own N = 1
    row, CPU-bound or not: ``fitted_from`` says which were).

    ``residual(row, hw)`` must give the simulator's deploy time of ``row`` with ``hw`` (start-up
    terms still at zero): each start-up term is the lab's N = 1 time minus it.
    """
    use = [r for r in rows if r["n"] == 1 and r.get("breakdown")]
    hw = LabHw(
        fitted_from=[
            f"{r['method']} N=1{' (untrusted)' if r['cpu_bound'] or r.get('io_bound') else ''}"
            for r in use
        ]
    )
    if write_rate:
        hw.write_rate = write_rate
    if dirty_bytes is not None:
        hw.dirty_bytes = dirty_bytes
    pre = [r["breakdown"]["pre"] / inspections(r["method"]) for r in use if "pre" in r["breakdown"]]
    post = [r["breakdown"]["post"] for r in use if "post" in r["breakdown"]]
    local = [
        r.get("data_bytes", 0) / r["breakdown"]["local"]
        for r in use
        if r["breakdown"].get("local") and r.get("data_bytes")
    ]
    hw.inspect_s = _mean(pre) or hw.inspect_s
    hw.postconf_s = _mean(post) or hw.postconf_s
    hw.decompress_rate = _mean(local) or hw.decompress_rate
    # SMB: the UNICAST fetch into the cache is the wire alone (no decompression behind it)
    link = 100e6 / 8
    smb = [
        link * r["breakdown"]["transfer"] / r["stored_bytes"] - 1.0
        for r in use
        if r["method"] in ("UNICAST-CACHE", "UNICAST") and r["breakdown"].get("transfer")
    ]
    if smb:
        hw.smb_overhead = max(0.0, _mean(smb) or 0.0)
    # udpcast's start-up and closing handshake: the mean residual of the CACHE and DIRECT N = 1
    # runs (both pay it; the DIRECT one also its end-of-stream sync, which the model now has)
    mcast = [r for r in use if r["method"].startswith("MULTICAST")]
    mc = [r["T"] - residual(r, hw) for r in mcast]
    hw.mcast_start_s = max(0.0, _mean(mc) or 0.0)
    bt = [r["T"] - residual(r, hw) for r in use if r["method"].startswith("TORRENT")]
    hw.torrent_start_s = max(0.0, _mean(bt) or 0.0)
    return hw
