"""CPU headroom of the host while a lab run transfers: idle fraction sampled from ``/proc/stat``.

Emulation with namespaces is faithful only while the CPUs are not saturated (Mininet-HiFi kept
≥ 35 % idle every second); a run whose idle share drops below ``MIN_IDLE`` in more than a tenth of
its samples is marked CPU-bound, i.e. untrustworthy as a network measurement.  The disks are
loop devices on the host's one disk, shared with everything else running there: the kernel's
I/O pressure (``/proc/pressure/io``, "some": the share of time at least one task waited for I/O)
is sampled too, and a run that spent more than ``MAX_IO_STALL`` of its time so is marked
I/O-bound (a receiver stalled by writeback is not a network result either).  Given the run's
cgroup (v2), it also reads the run's own CPU: the cores its processes used and the share of the
time at least one of them was runnable but waiting for a CPU (the cgroup's ``cpu.pressure``,
"some") — on a host shared with other work the idle share says the host was busy, the wait
share says whether *the run* was held back by it.  With ``trace_s`` it also keeps a trace of
the cgroup's cumulative CPU seconds (wall instant, seconds) every ``trace_s``, with the host's
busy CPU seconds at the same instant (everything: the run's processes, the kernel's threads
working for them — loop devices, writeback, softirqs — and any other work) and the kernel's
part of the host's and of the cgroup's (the host's kernel time less the cgroup's is the
kernel's threads and interrupts, whoever they work for; other programs' user time is not in
it), from which the CPU a stage of a run cost can be read (:func:`cpu_between`).  Measures only.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

MIN_IDLE = 0.15
SAMPLE_S = 0.5
MAX_IO_STALL = 0.10
PSI_IO = "/proc/pressure/io"
MAX_CPU_WAIT = 0.10
TICK = os.sysconf("SC_CLK_TCK")


def _cgroup_cpu_us(cgroup: Path | None) -> tuple[int, int] | None:
    """The cgroup's cumulative (CPU used, some task waiting for a CPU) in µs (None without
    cgroup v2 PSI)."""
    if cgroup is None:
        return None
    try:
        usage = next(int(line.split()[1]) for line in (cgroup / "cpu.stat").read_text().splitlines()
                     if line.startswith("usage_usec"))  # fmt: skip
        wait = next(int(line.rsplit("total=", 1)[1])
                    for line in (cgroup / "cpu.pressure").read_text().splitlines()
                    if line.startswith("some"))  # fmt: skip
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return usage, wait


def _io_stall_us() -> int | None:
    """Cumulative µs some task waited for I/O (None without PSI)."""
    try:
        with open(PSI_IO) as f:
            for line in f:
                if line.startswith("some"):
                    return int(line.rsplit("total=", 1)[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def host_busy_s() -> float:
    """The host's busy CPU seconds so far, every core (``/proc/stat``: all but idle and iowait)."""
    idle, total = _times()
    return (total - idle) / TICK


def host_kernel_s() -> float:
    """The host's CPU seconds in the kernel so far, every core (``/proc/stat``: system, irq,
    softirq) — kernel threads (loop devices' workers, writeback) count only here."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (fields[2] + sum(fields[5:7])) / TICK


def _cgroup_system_s(cgroup: Path | None) -> float:
    """The cgroup's CPU seconds in the kernel so far (``system_usec``; 0 if unreadable)."""
    if cgroup is None:
        return 0.0
    try:
        text = (cgroup / "cpu.stat").read_text()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("system_usec"):
            return int(line.split()[1]) / 1e6
    return 0.0


def host_steal_s() -> float:
    """The CPU seconds the hypervisor stole from this guest so far, every core (``/proc/stat``
    steal; 0 on bare metal)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    return int(fields[7]) / TICK if len(fields) > 7 else 0.0


def _times() -> tuple[int, int]:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return idle, sum(fields)


@dataclass
class CpuMonitor:
    """Samples the idle share every ``SAMPLE_S`` seconds between ``start`` and ``stop``."""

    cgroup: Path | None = None  # the run's cgroup: its own CPU use and wait are read too
    samples: list[float] = field(default_factory=list)
    io_stall_s: float = 0.0
    elapsed_s: float = 0.0
    cgroup_cpu_s: float | None = None  # CPU time the run's processes used
    cgroup_wait_s: float | None = None  # time some process of the run waited for a CPU
    steal_s: float = 0.0  # CPU seconds the hypervisor stole from the host (every core)
    trace_s: float | None = None  # with a cgroup: sample its CPU seconds this often
    # (epoch s, the cgroup's CPU s, the host's busy CPU s, the host's kernel CPU s, the
    # cgroup's kernel CPU s, the tracer's own CPU s — its reads of /proc are kernel time too)
    trace: list[tuple[float, float, float, float, float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _tracer: threading.Thread | None = None

    def _trace(self) -> None:
        assert self.trace_s is not None
        while True:
            now = _cgroup_cpu_us(self.cgroup)
            if now is not None:
                self.trace.append((time.time(), now[0] / 1e6, host_busy_s(), host_kernel_s(),
                                   _cgroup_system_s(self.cgroup), time.thread_time()))  # fmt: skip
            if self._stop.wait(self.trace_s):
                break

    def _loop(self) -> None:
        idle0, total0 = _times()
        io0, t0, steal0 = _io_stall_us(), time.monotonic(), host_steal_s()
        cg0 = _cgroup_cpu_us(self.cgroup)
        while not self._stop.wait(SAMPLE_S):
            idle1, total1 = _times()
            if total1 > total0:
                self.samples.append((idle1 - idle0) / (total1 - total0))
            idle0, total0 = idle1, total1
        io1 = _io_stall_us()
        cg1 = _cgroup_cpu_us(self.cgroup)
        self.elapsed_s = time.monotonic() - t0
        self.steal_s = host_steal_s() - steal0
        if cg0 is not None and cg1 is not None:
            self.cgroup_cpu_s = (cg1[0] - cg0[0]) / 1e6
            self.cgroup_wait_s = (cg1[1] - cg0[1]) / 1e6
        if io0 is not None and io1 is not None:
            self.io_stall_s = (io1 - io0) / 1e6

    def start(self) -> CpuMonitor:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        if self.trace_s and self.cgroup is not None:
            self._tracer = threading.Thread(target=self._trace, daemon=True)
            self._tracer.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._tracer is not None:
            self._tracer.join()

    @property
    def mean_idle(self) -> float:
        return sum(self.samples) / len(self.samples) if self.samples else 1.0

    @property
    def min_idle(self) -> float:
        return min(self.samples) if self.samples else 1.0

    @property
    def saturated_share(self) -> float:
        """Fraction of samples below MIN_IDLE."""
        if not self.samples:
            return 0.0
        return sum(1 for s in self.samples if s < MIN_IDLE) / len(self.samples)

    @property
    def cpu_bound(self) -> bool:
        return self.saturated_share > 0.10

    @property
    def io_stall_share(self) -> float:
        """Share of the run's time some task waited for I/O (0 without PSI)."""
        return self.io_stall_s / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def io_bound(self) -> bool:
        return self.io_stall_share > MAX_IO_STALL

    @property
    def cpu_wait_share(self) -> float | None:
        """Share of the run's time some process of its cgroup waited for a CPU (None: no
        cgroup given, or no PSI)."""
        if self.cgroup_wait_s is None or self.elapsed_s <= 0:
            return None
        return self.cgroup_wait_s / self.elapsed_s

    def summary(self) -> dict[str, float | bool]:
        own: dict[str, float | bool] = {}
        wait = self.cpu_wait_share
        if wait is not None and self.cgroup_cpu_s is not None:
            own = {"cpu_wait_share": round(wait, 3),
                   "cpu_cores_used": round(self.cgroup_cpu_s / self.elapsed_s, 2),
                   "cpu_waited": wait > MAX_CPU_WAIT}  # fmt: skip
        return {
            **own,
            "io_stall_share": round(self.io_stall_share, 3),
            "io_bound": self.io_bound,
            "cpu_idle_mean": round(self.mean_idle, 3),
            "cpu_idle_min": round(self.min_idle, 3),
            "cpu_saturated_share": round(self.saturated_share, 3),
            "cpu_bound": self.cpu_bound,
            "cpu_steal_share": round(self.steal_share, 4),
        }

    @property
    def steal_share(self) -> float:
        """Share of the host's CPU time (every core) the hypervisor stole during the run."""
        cores = os.cpu_count() or 1
        return self.steal_s / (self.elapsed_s * cores) if self.elapsed_s > 0 else 0.0


def cpu_between(trace: Sequence[Sequence[float]], a: float, b: float) -> float:
    """CPU seconds a cumulative ``trace`` ((time, CPU s, …), time ascending) grew by between
    instants ``a`` and ``b`` (linear between samples, clamped at the ends)."""

    def at(t: float) -> float:
        if not trace or t <= trace[0][0]:
            return trace[0][1] if trace else 0.0
        for p0, p1 in itertools.pairwise(trace):
            (t0, c0), (t1, c1) = p0[:2], p1[:2]
            if t <= t1:
                return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c1
        return trace[-1][1]

    return max(0.0, at(b) - at(a))
