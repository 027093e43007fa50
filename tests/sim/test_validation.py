"""Model validation against published and lab results (make validate): every figure is labelled
input or prediction, no input is a multi-N point, and the checks that pass stay passing."""

from __future__ import annotations

import re

import pytest

from ogsim import validation


def _inputs_are_single_computer_runs(check: validation.ModelCheck) -> None:
    for row in check.rows:
        if row.role == validation.INPUT:
            assert re.search(r"N=1\b", row.label), row.label
    assert check.predictions(), "a check without predictions validates nothing"


def test_frisbee_multicast_is_flat_and_close_to_published() -> None:
    check = validation.frisbee(counts=(1, 10, 40, 80))
    _inputs_are_single_computer_runs(check)
    assert check.ok, validation.render_table([check])


def test_netns_lab_trusted_rows_are_predicted_from_the_single_computer_runs() -> None:
    check = validation._lab_series("five-methods")
    _inputs_are_single_computer_runs(check)
    assert {r.label for r in check.predictions()} >= {"UNICAST-DIRECT N=8", "TORRENT-CACHE N=4"}
    assert check.ok, validation.render_table([check])


def test_render_labels_each_figure_and_counts_the_predictions() -> None:
    check = validation.ModelCheck("x", "y", inputs=["measured: a disk"])
    check.rows = [
        validation.Row("a N=1", 10.0, 10.0, validation.INPUT),
        validation.Row("a N=8", 12.0, 10.0),
    ]
    check.judge()
    text = validation.render_table([check])
    assert "input: measured: a disk" in text and "+20%" in text
    assert not check.ok and "0 of 1 predictions within 15%" in text


def test_ezio_predictions_do_not_move_with_the_published_multi_n_points(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # leave-nothing-in: the N = 32 figures are targets only, so changing them changes the
    # errors, never a predicted time
    def predicted() -> dict[str, float]:
        check = validation.ezio(counts=(1, 2, 32))
        _inputs_are_single_computer_runs(check)
        return {r.label: r.predicted for r in check.rows}

    before = predicted()
    monkeypatch.setattr(validation, "EZIO_MCAST_32", 3 * validation.EZIO_MCAST_32)
    monkeypatch.setattr(validation, "EZIO_BT_32_SAVING", 0.1)
    monkeypatch.setattr(validation, "EZIO_CROSSOVER", (2, 3))
    assert predicted() == before
