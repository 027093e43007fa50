"""Model validation against published results (make validate) — these must pass in CI."""

from __future__ import annotations

from ogsim import validation


def test_frisbee_multicast_is_flat_and_close_to_published() -> None:
    check = validation.frisbee(counts=(1, 10, 40, 80))
    assert check.ok, check.verdict


def test_ezio_bittorrent_overtakes_multicast_between_11_and_16() -> None:
    check = validation.ezio()
    assert check.ok, validation.render_table([check])


def test_unicast_grows_at_the_uplink_slope() -> None:
    check = validation.unicast_slope()
    assert check.ok, check.verdict
