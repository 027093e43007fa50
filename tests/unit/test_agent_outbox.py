"""The agent's outbox is empty only once the service has acknowledged what it carried."""

from __future__ import annotations

from ogref.agent.link import Outbox


def test_what_is_in_flight_is_not_yet_delivered() -> None:
    box = Outbox()
    box.done.append({"id": "op1/pc01", "result": {"code": 0}})
    _, done, _ = box.take()
    assert done and not box.empty()  # taken for an exchange still in flight
    box.delivered()
    assert box.empty()


def test_a_failed_exchange_gives_it_back() -> None:
    box = Outbox()
    box.lines.append({"t": 0.0, "text": "hello"})
    taken = box.take()
    box.give_back(*taken)
    assert not box.empty() and box.lines == [{"t": 0.0, "text": "hello"}]
    assert box.take() == taken


def test_an_exchange_that_carried_nothing_leaves_it_empty() -> None:
    box = Outbox()
    assert box.take() == ([], [], []) and box.empty()
