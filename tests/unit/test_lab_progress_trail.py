"""The netns lab tells every stage an agent passed through, even one shorter than a poll."""

from __future__ import annotations

from ogsim.lab.clock import ScenarioClock
from ogsim.lab.netns.backend import _Running, _tell
from ogsim.progress import ComputerEvent, Event


def _running(record: dict[str, object]) -> _Running:
    return _Running(0, "restore", None, "op1", 0.0, 0.0, records={"pc01": record})


def test_a_stage_passed_between_two_polls_is_still_told_with_its_bytes() -> None:
    got: list[Event] = []
    told: dict[str, tuple[object, ...]] = {}
    clock = ScenarioClock()
    act = {
        "id": "op1/pc01",
        "stage": "restore",
        "done": 5,
        "total": 40,
        "trail": [
            {"stage": "inspect", "done": 0, "total": 0},
            {"stage": "fetch", "done": 20, "total": 20},
            {"stage": "restore", "done": 5, "total": 40},
        ],
    }
    clients = {"pc01": {"status": "BSY", "activity": act}}
    _tell(got.append, _running({"sent": True}), clients, clock, told)
    stages = [(e.stage, e.done, e.total) for e in got if isinstance(e, ComputerEvent)]
    assert stages == [("inspect", 0, 0), ("fetch", 20, 20), ("restore", 5, 40)]
    # the next poll tells only what is new
    got.clear()
    act["done"] = 10
    _tell(got.append, _running({"sent": True}), clients, clock, told)
    assert [(e.stage, e.done) for e in got if isinstance(e, ComputerEvent)] == [("restore", 10)]


def test_stages_of_a_command_that_ended_between_two_polls_come_from_its_record() -> None:
    got: list[Event] = []
    told: dict[str, tuple[object, ...]] = {"pc01/trail": ("inspect",)}
    trail = [
        {"stage": "inspect", "done": 0, "total": 0},
        {"stage": "restore", "done": 40, "total": 40},
        {"stage": "postconf", "done": 40, "total": 40},
    ]
    rec = {"sent": True, "final": True, "code": 0, "message": "ok", "trail": trail}
    _tell(
        got.append,
        _running(rec),
        {"pc01": {"status": "OPG", "activity": {}}},
        ScenarioClock(),
        told,
    )
    events = [e for e in got if isinstance(e, ComputerEvent)]
    assert [e.stage for e in events[:-1]] == ["restore", "postconf"]
    assert events[-1].final and events[-1].code == 0
