"""The lab's CPU monitor reads a run's cgroup: the cores its processes used and the share of the
time one of them waited for a CPU (cpu.stat, cpu.pressure), and marks a held-back run."""

from __future__ import annotations

import time
from pathlib import Path

from ogsim.lab.netns.cpu import MAX_CPU_WAIT, CpuMonitor, _cgroup_cpu_us


def _cgroup(path: Path, usage_us: int, wait_us: int) -> None:
    (path / "cpu.stat").write_text(f"usage_usec {usage_us}\nuser_usec 1\nsystem_usec 2\n")
    (path / "cpu.pressure").write_text(
        f"some avg10=0.00 avg60=0.00 avg300=0.00 total={wait_us}\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    )


def test_a_cgroups_cpu_use_and_wait_are_read(tmp_path: Path) -> None:
    _cgroup(tmp_path, 1_500_000, 250_000)
    assert _cgroup_cpu_us(tmp_path) == (1_500_000, 250_000)
    assert _cgroup_cpu_us(tmp_path / "gone") is None
    assert _cgroup_cpu_us(None) is None


def test_a_run_whose_processes_waited_is_marked(tmp_path: Path) -> None:
    _cgroup(tmp_path, 0, 0)
    mon = CpuMonitor(cgroup=tmp_path).start()
    time.sleep(0.05)
    _cgroup(tmp_path, 40_000, 30_000)  # 40 ms of CPU, 30 ms waiting, in ≈ 50 ms
    mon.stop()
    s = mon.summary()
    assert s["cpu_waited"] is True
    assert float(s["cpu_wait_share"]) > MAX_CPU_WAIT
    assert 0 < float(s["cpu_cores_used"]) <= 1.0
    assert "cpu_waited" not in CpuMonitor().summary()  # no cgroup: no such keys


def test_a_trace_of_the_cgroups_cpu_shows_when_it_was_used(tmp_path: Path) -> None:
    from ogsim.lab.netns.cpu import cpu_between

    _cgroup(tmp_path, 0, 0)
    mon = CpuMonitor(cgroup=tmp_path, trace_s=0.005).start()
    time.sleep(0.05)
    mid = time.time()
    _cgroup(tmp_path, 30_000, 0)  # 30 ms of CPU, all after ``mid``
    time.sleep(0.05)
    mon.stop()
    assert len(mon.trace) >= 5 and mon.trace[0][1] == 0.0 and mon.trace[-1][1] == 0.03
    assert cpu_between(mon.trace, mon.trace[0][0], mid - 0.01) == 0.0
    assert abs(cpu_between(mon.trace, mid - 0.01, mon.trace[-1][0]) - 0.03) < 1e-9
    plain = CpuMonitor(cgroup=tmp_path).start()
    plain.stop()
    assert plain.trace == []  # no trace_s: none kept
    # beside the cgroup's: the host's busy and kernel CPU seconds, the cgroup's kernel seconds
    assert all(len(x) == 6 for x in mon.trace)
    for col in (2, 3):
        assert all(a[col] <= b[col] for a, b in zip(mon.trace, mon.trace[1:], strict=False))
        assert mon.trace[0][col] > 0
