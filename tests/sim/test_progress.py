"""Live progress: the simulator's event stream covers every stage of every computer, reads like
the console, and the plain view writes no control characters."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

from ogsim.progress import (
    ComputerEvent,
    Event,
    JsonView,
    LineView,
    OperationEvent,
    StageEvent,
    fan_out,
)
from ogsim.scenario import load_scenario
from ogsim.simulator import simulate

ROOT = Path(__file__).resolve().parents[2]
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _events(name: str) -> list[Event]:
    got: list[Event] = []
    simulate(load_scenario(ROOT / "scenarios" / f"{name}.yaml"), None, got.append)
    return got


def test_every_computer_goes_through_every_stage() -> None:
    events = _events("s01-unicast-cache-35")
    ops = [e for e in events if isinstance(e, OperationEvent)]
    assert [o.text for o in ops] == ["restore win10 UNICAST-CACHE → aula1 (35 computers)"]
    by: dict[str, list[ComputerEvent]] = {}
    for e in events:
        if isinstance(e, ComputerEvent):
            by.setdefault(e.name, []).append(e)
    assert len(by) == 35
    for name, evs in by.items():
        stages = [e.stage for e in evs if e.stage]
        for stage in ("inspect", "fetch", "restore", "postconf"):
            assert stage in stages, (name, stages)
        assert evs[-1].final and evs[-1].code == 0
        assert [e.t for e in evs] == sorted(e.t for e in evs)  # virtual time runs forward
        fetch = next(e for e in evs if e.stage == "fetch")
        assert fetch.total > 0 and fetch.status == "BSY"


def test_a_switch_is_told_with_its_reason() -> None:
    events = _events("seed-35pc-torrent-cache")
    notes = {
        e.name: e.note for e in events if isinstance(e, ComputerEvent) and "switched" in e.note
    }
    assert set(notes) == {"pc34", "pc35"}
    assert all("UNICAST-DIRECT" in n for n in notes.values())


def test_the_plain_view_writes_lines_without_control_characters() -> None:
    text, js = io.StringIO(), io.StringIO()
    view = fan_out(LineView(text), JsonView(js))
    simulate(load_scenario(ROOT / "scenarios" / "seed-35pc-torrent-cache.yaml"), None, view)
    lines = text.getvalue().splitlines()
    assert lines and not any(CONTROL.search(line) for line in lines)
    assert any("switched" in line and "pc34" in line for line in lines)
    assert any("ended with error" in line or "ended ok" in line for line in lines)
    assert len(js.getvalue().splitlines()) > len(lines)  # JSON keeps every event


def test_ogsim_run_in_a_pipe_logs_plain_lines() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ogsim"), "run",
         str(ROOT / "scenarios" / "s07-multicast-fallback.yaml"), "--out", "/tmp/oglab-progress"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "operation 0 submitted: restore" in done.stderr
    assert not CONTROL.search(done.stderr), "control characters in the non-terminal log"
    json_run = subprocess.run(
        [str(Path(sys.executable).parent / "ogsim"), "run", "--json-events",
         str(ROOT / "scenarios" / "s07-multicast-fallback.yaml"), "--out", "/tmp/oglab-progress"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    import json

    kinds = {json.loads(line)["kind"] for line in json_run.stdout.splitlines()}
    assert kinds == {"operation", "computer"}


def test_stage_events_are_plain_data() -> None:
    from dataclasses import asdict

    assert asdict(StageEvent("network", "veths", 3, 10))["kind"] == "stage"
