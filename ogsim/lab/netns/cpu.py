"""CPU headroom of the host while a lab run transfers: idle fraction sampled from ``/proc/stat``.

Emulation with namespaces is faithful only while the CPUs are not saturated (Mininet-HiFi kept
≥ 35 % idle every second); a run whose idle share drops below ``MIN_IDLE`` in more than a tenth of
its samples is marked CPU-bound, i.e. untrustworthy as a network measurement.  The disks are
loop devices on the host's one disk, shared with everything else running there: the kernel's
I/O pressure (``/proc/pressure/io``, "some": the share of time at least one task waited for I/O)
is sampled too, and a run that spent more than ``MAX_IO_STALL`` of its time so is marked
I/O-bound (a receiver stalled by writeback is not a network result either).  Measures only.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

MIN_IDLE = 0.15
SAMPLE_S = 0.5
MAX_IO_STALL = 0.10
PSI_IO = "/proc/pressure/io"


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


def _times() -> tuple[int, int]:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return idle, sum(fields)


@dataclass
class CpuMonitor:
    """Samples the idle share every ``SAMPLE_S`` seconds between ``start`` and ``stop``."""

    samples: list[float] = field(default_factory=list)
    io_stall_s: float = 0.0
    elapsed_s: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _loop(self) -> None:
        idle0, total0 = _times()
        io0, t0 = _io_stall_us(), time.monotonic()
        while not self._stop.wait(SAMPLE_S):
            idle1, total1 = _times()
            if total1 > total0:
                self.samples.append((idle1 - idle0) / (total1 - total0))
            idle0, total0 = idle1, total1
        io1 = _io_stall_us()
        self.elapsed_s = time.monotonic() - t0
        if io0 is not None and io1 is not None:
            self.io_stall_s = (io1 - io0) / 1e6

    def start(self) -> CpuMonitor:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

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

    def summary(self) -> dict[str, float | bool]:
        return {
            "io_stall_share": round(self.io_stall_share, 3),
            "io_bound": self.io_bound,
            "cpu_idle_mean": round(self.mean_idle, 3),
            "cpu_idle_min": round(self.min_idle, 3),
            "cpu_saturated_share": round(self.saturated_share, 3),
            "cpu_bound": self.cpu_bound,
        }
