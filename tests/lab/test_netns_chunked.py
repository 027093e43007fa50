"""s26 on the namespace lab: a chunked differential image deployed to caches that hold its base.

Real images (the v2 made with ``--diff-of`` from the base's changed reference partition), the
base's chunks in every CACHE, UNICAST-CACHE through the console: every computer restores the
v2 (file-tree hash equal), moves exactly the chunks its CACHE lacked, and the repository's
bytes on the wire stay within transport overhead of them; the simulator, given the images the
lab made, predicts each computer's bytes within 10 %.  (Run here rather than in
test_library, with these checks.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from ogsim.expect import evaluate
from ogsim.lab.capabilities import check, probe
from ogsim.lab.netns import run
from ogsim.lab.netns.bench import lab_sized
from ogsim.scenario import load_scenario
from ogsim.simulator import simulate

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.slow, pytest.mark.timeout(600)]

S26 = Path(__file__).resolve().parents[2] / "scenarios" / "s26-chunked-differential-deploy.yaml"


def test_differential_deploy_moves_only_missing_chunks(tmp_path: Path) -> None:
    sc = load_scenario(S26)
    verdict = check(sc, "netns", probe())
    if not verdict.ok:
        pytest.skip("; ".join(verdict.refusals))
    lab = run(sc, None, tmp_path)
    checks = evaluate(lab, sc.spec.expect)
    assert not [c.diff() for c in checks if c.applicable and not c.ok]
    extra = lab.metrics.extra
    made = extra["images"]["ubuntu-v2"]
    assert made["format"] == "chunked" and made["base"] == "ubuntu"
    assert 0 < made["added"] < made["stored"] // 5
    pcs = lab.operations[0].computers
    for pc in pcs:
        assert pc.bytes_moved == made["added"], pc  # the chunks the CACHE lacked, no more
        assert any(p.name == "verify" and "equal" in p.detail for p in pc.phases), pc.phases
    wire = extra["repo_tx_bytes"] / len(pcs)
    assert made["added"] < wire < 1.15 * made["added"]  # SMB, TCP/IP, manifest, listings
    # the simulator, given the images the lab made
    sim = simulate(lab_sized(sc, lab))
    for pc in sim.operations[0].computers:
        assert abs(pc.bytes_moved - made["added"]) <= 0.1 * made["added"]
        assert abs(pc.bytes_moved * 1.08 - wire) <= 0.1 * wire  # scenario's smb_overhead 8 %
