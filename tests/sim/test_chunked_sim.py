"""The simulator with chunked images (s26): an update moves only the chunks the CACHE lacks
(the core's count), a restore from the CACHE runs at the chunked restore's rate, and the same
classroom without the base in its caches moves (or cannot fit) the whole image."""

from __future__ import annotations

import copy
from pathlib import Path

from ogref.site import read_yaml
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
        want = image.data_size / chunked_restore_rate(DiskState(hw), image)
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
