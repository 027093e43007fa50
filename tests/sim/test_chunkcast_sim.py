"""``ogsim run --backend sim`` picks the multicast model from the site's ``MCASTPROTOCOL``, as the
engine picks the protocol: udpcast's session (a receiver that misses the start barrier fails
with 60; everyone at the slowest's pace) or chunkcast's model (a late joiner completes; a slow
disk delays only itself)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ogsim.results import Results
from ogsim.scenario import build_scenario, read_yaml
from ogsim.simulator import simulate

S17 = Path(__file__).resolve().parents[2] / "scenarios" / "s17-multicast-late-join.yaml"


def _run(protocol: str, **changes: Any) -> Results:
    data = copy.deepcopy(read_yaml(S17))
    data["engine"] = {**data.get("engine", {}), "MCASTPROTOCOL": protocol}
    data.update(changes)
    return simulate(build_scenario(data))


def _by_name(r: Results) -> dict[str, Any]:
    return {c.name: c for c in r.operations[0].computers}


def test_the_key_picks_the_model_a_late_joiner_completes_only_by_chunkcast() -> None:
    udp, cc = _run("UDPCAST"), _run("CHUNKCAST")
    assert any(e.text.startswith("mcast ") for e in udp.events)
    assert not any(e.text.startswith("chunkcast ") for e in udp.events)
    assert any(e.text.startswith("chunkcast ") for e in cc.events)
    assert _by_name(udp)["pc08"].code == 60  # udpcast: the session had started without it
    late = _by_name(cc)["pc08"]
    assert late.status == "ok", late  # chunkcast: it joins the running session
    assert all(c.status == "ok" for c in cc.operations[0].computers)


def test_a_slow_disk_delays_only_itself_by_chunkcast() -> None:
    data = read_yaml(S17)
    room = copy.deepcopy(data["classrooms"][0])
    hw = copy.deepcopy(room["defaults"]["hw"])
    # a slow PC: its disk writes under a third of the session's data rate (70 Mbit/s, 2:1)
    hw["disk"] = {**hw["disk"], "write": "5MB/s"}
    room["computers"]["overrides"] = {"pc01": {"hw": hw}}
    ends = {}
    for protocol in ("UDPCAST", "CHUNKCAST"):
        r = _run(protocol, classrooms=[room], faults=[], expect=[])
        ends[protocol] = {c.name: c.finished for c in r.operations[0].computers}
    others = [f"pc0{i}" for i in range(2, 9)]
    # udpcast: the others wait for pc01; chunkcast: they finish well before it
    assert min(ends["UDPCAST"][n] for n in others) >= 0.95 * ends["UDPCAST"]["pc01"]
    assert max(ends["CHUNKCAST"][n] for n in others) < 0.6 * ends["CHUNKCAST"]["pc01"]
