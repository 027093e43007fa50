"""The simulator with chunked images (s26): an update moves only the chunks the CACHE lacks
(the core's count), a restore from the CACHE runs at the chunked restore's rate, and the same
classroom without the base in its caches moves (or cannot fit) the whole image."""

from __future__ import annotations

import copy
from pathlib import Path

from ogref.site import read_yaml
from ogsim.chunks import chunk_count, directories
from ogsim.disk import DiskState, chunked_restore_rate
from ogsim.expect import evaluate
from ogsim.scenario import build_scenario, load_scenario
from ogsim.simulator import simulate

S26 = Path(__file__).resolve().parents[2] / "scenarios" / "s26-chunked-differential-deploy.yaml"
GIB = 1 << 30


def test_only_the_missing_chunks_move_and_the_expectations_hold() -> None:
    sc = load_scenario(S26)
    results = simulate(sc)
    assert all(c.ok for c in evaluate(results, sc.spec.expect))
    image = sc.site.repository("repo").image("ubuntu-v2")
    assert image.added_size == GIB and image.stored_size == 20 * GIB
    for pc in results.operations[0].computers:
        assert pc.bytes_moved == image.added_size
        fetch = next(p for p in pc.phases if p.name == "fetch")
        restore = next(p for p in pc.phases if p.name == "restore")
        assert fetch.bytes == image.added_size
        hw = sc.hosts[pc.name]
        want = image.restored_size / chunked_restore_rate(DiskState(hw), image)
        assert abs((restore.end - restore.start) - want) < 0.01 * want


def test_without_the_base_the_whole_image_must_fit() -> None:
    raw = copy.deepcopy(read_yaml(S26))
    cache = raw["classrooms"][0]["defaults"]["cache"]
    cache["images"] = []
    sc = build_scenario(raw, source="no-base")
    results = simulate(sc)
    # 20 GiB do not fit the 18 GiB free: 16, and the console's Restore falls back to DIRECT
    for pc in results.operations[0].computers:
        assert pc.method_used == "UNICAST-DIRECT", pc
        assert pc.bytes_moved == sc.site.repository("repo").image("ubuntu-v2").stored_size


def _phases(raw: dict, name: str) -> list[tuple[str, float]]:
    results = simulate(build_scenario(raw, source=name))
    pc = results.operations[0].computers[0]
    return [(p.name, p.end - p.start) for p in pc.phases]


def test_chunk_level_costs_add_what_the_lab_measures() -> None:
    """``hw.chunks``: the cache inspection lists the missing chunks' directories, the update
    pays its setup, per-chunk latency and syncfs on top of the wire (its per-chunk CPU work
    overlaps it), the restore processes the used bytes at the measured rate."""
    raw = copy.deepcopy(read_yaml(S26))
    before = _phases(raw, "plain")
    image = raw["repositories"][0]["images"][1]
    image["used"] = "24GiB"
    hw = raw["classrooms"][0]["defaults"]["hw"]
    hw["chunks"] = {"setup": "0.5s", "request": "2ms", "cpu": "1ms", "list": "10ms",
                    "syncfs": "0.25s", "restore": "400MB/s"}  # fmt: skip
    after = _phases(raw, "chunk costs")
    sc = build_scenario(raw, source="x")
    v2 = sc.site.repository("repo").image("ubuntu-v2")
    n = chunk_count(v2, v2.added_size)
    assert n == round(GIB / (128 * 1024 * 20 / 24))  # 128 KiB of used bytes, stored at 20/24
    inspect_b = [t for name, t in before if name == "inspect"]
    inspect_a = [t for name, t in after if name == "inspect"]
    assert inspect_a[:2] == inspect_b[:2]  # target and image: unchanged
    assert abs(inspect_a[2] - inspect_b[2] - directories(n) * 0.010) < 1e-6
    fetch_b = next(t for name, t in before if name == "fetch")
    fetch_a = next(t for name, t in after if name == "fetch")
    assert n * 0.001 < fetch_b  # the CPU work hides behind the wire
    assert abs(fetch_a - fetch_b - (0.5 + n * 0.002 + 0.25)) < 1e-6
    restore = next(t for name, t in after if name == "restore")
    assert abs(restore - 24 * GIB / 400e6 * 8 / 8) < 1e-6


def test_the_updates_whole_cpu_runs_from_its_start_at_the_cores_measured() -> None:
    """``hw.chunks.fetch_cpu``: the update's CPU (``cpu`` per chunk, the host's whole) runs
    from the update's start at that many cores, alongside its setup and wire; the later ends
    it.  ``inspect_cpu`` is the cores a chunked operation's inspection step keeps busy (alone
    it lasts ``inspect`` either way)."""
    raw = copy.deepcopy(read_yaml(S26))
    hw = raw["classrooms"][0]["defaults"]["hw"]
    hw["chunks"] = {"setup": "0.5s", "cpu": "5ms", "fetch_cpu": 0.5, "inspect_cpu": 1.5}
    sc = build_scenario(raw, source="x")
    v2 = sc.site.repository("repo").image("ubuntu-v2")
    n = chunk_count(v2, v2.added_size)
    got = _phases(raw, "fetch cpu")
    fetch = next(t for name, t in got if name == "fetch")
    assert abs(fetch - n * 0.005 / 0.5) < 1e-6  # longer than the setup and the wire
    plain = _phases(copy.deepcopy(read_yaml(S26)), "plain")
    assert [t for name, t in got if name == "inspect"] == [
        t for name, t in plain if name == "inspect"
    ]
    hw["chunks"] = {"setup": "0.5s", "cpu": "0.01ms", "fetch_cpu": 0.5}
    wire_bound = next(t for name, t in _phases(raw, "wire") if name == "fetch")
    assert wire_bound > 0.5 + n * 0.00001 / 0.5 and wire_bound < fetch
