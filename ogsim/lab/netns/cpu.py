"""CPU headroom of the host while a lab run transfers: idle fraction sampled from ``/proc/stat``.

Emulation with namespaces is faithful only while the CPUs are not saturated (Mininet-HiFi kept
≥ 35 % idle every second); a run whose idle share drops below ``MIN_IDLE`` in more than a tenth of
its samples is marked CPU-bound, i.e. untrustworthy as a network measurement.  Measures only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

MIN_IDLE = 0.15
SAMPLE_S = 0.5


def _times() -> tuple[int, int]:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return idle, sum(fields)


@dataclass
class CpuMonitor:
    """Samples the idle share every ``SAMPLE_S`` seconds between ``start`` and ``stop``."""

    samples: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _loop(self) -> None:
        idle0, total0 = _times()
        while not self._stop.wait(SAMPLE_S):
            idle1, total1 = _times()
            if total1 > total0:
                self.samples.append((idle1 - idle0) / (total1 - total0))
            idle0, total0 = idle1, total1

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

    def summary(self) -> dict[str, float | bool]:
        return {
            "cpu_idle_mean": round(self.mean_idle, 3),
            "cpu_idle_min": round(self.min_idle, 3),
            "cpu_saturated_share": round(self.saturated_share, 3),
            "cpu_bound": self.cpu_bound,
        }
