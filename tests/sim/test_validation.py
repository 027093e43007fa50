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


def test_bittorrent_predictions_do_not_move_with_the_published_multi_n_points(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the BitTorrent side reads N = 1 only: changing every published multi-N figure changes
    # the errors (and the multicast fits), never a predicted BitTorrent time
    def predicted() -> dict[str, float]:
        check = validation.ezio(counts=(1, 2, 32))
        _inputs_are_single_computer_runs(check)
        return {r.label: r.predicted for r in check.rows if r.label.startswith("BitTorrent")}

    before = predicted()
    monkeypatch.setattr(validation, "EZIO_BT", {**validation.EZIO_BT, 2: 1.0, 32: 9999.0})
    scaled = {n: t * (1.5 if n > 1 else 1.0) for n, t in validation.EZIO_MULTICAST.items()}
    monkeypatch.setattr(validation, "EZIO_MULTICAST", scaled)
    monkeypatch.setattr(validation, "EZIO_BT_32_SAVING", 0.1)
    bt = {n: t if n == 1 else 3 * t for n, t in validation.EZIO_BT.items()}
    monkeypatch.setattr(validation, "EZIO_BT", bt)
    monkeypatch.setattr(validation, "EZIO_CROSSOVER", (2, 3))
    assert predicted() == before


def test_slice_stall_fit_recovers_the_stalls_that_made_the_curve() -> None:
    slices = validation.ezio_slices()
    q, d = 0.03, 0.02
    base = {n: 400.0 * (1 + 0.002 * n) for n in (1, 2, 4, 8, 16, 32)}
    t1 = 400.0
    # the same session with the stalls on and the disks recalibrated on N = 1
    published = {
        n: b / base[1] * (t1 - slices * d * q) + slices * d * (1 - (1 - q) ** n)
        for n, b in base.items()
    }
    fq, fd = validation.fit_slice_stalls(base, published, slices)
    assert fq == pytest.approx(q, rel=1e-3) and fd == pytest.approx(d, rel=1e-3)
    # a linear curve (no bend) wants rarer stalls than a bent one
    linear = {n: t1 + 80.0 * (n - 1) for n in base}
    assert validation.fit_slice_stalls(base, linear, slices)[0] < q / 3
    with pytest.raises(ValueError):
        validation.fit_slice_stalls(base, {1: t1}, slices)


def test_ezio_multicast_is_predicted_leave_one_out_within_tolerance() -> None:
    check = validation.ezio_multicast()
    _inputs_are_single_computer_runs(check)
    assert any("FITTED, NOT MEASURED" in text for text in check.inputs)
    predicted = check.predictions()
    assert [r.label for r in predicted] == [f"multicast N={n}" for n in (2, 4, 8, 16, 24, 32)]
    for row in predicted:
        n = int(row.label.split("=")[1])
        fitted_on = row.note.split("fitted on N = ")[1].split(", ")
        assert str(n) not in fitted_on and len(fitted_on) == 5, row.note
    assert check.ok, validation.render_table([check])


def test_a_leave_one_out_prediction_never_reads_its_own_published_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write = validation.ezio_rates()[0]
    before = validation.ezio_multicast_model(write)
    moved = {**validation.EZIO_MULTICAST, 16: 3 * validation.EZIO_MULTICAST[16]}
    monkeypatch.setattr(validation, "EZIO_MULTICAST", moved)
    after = validation.ezio_multicast_model(write)
    # the fold that left N = 16 out is the same fit and predicts the same time ...
    assert after.folds[16] == before.folds[16]
    assert after.folds[16].time(16) == before.folds[16].time(16)
    # ... while every fold that read N = 16 moved (so the comparison can fail)
    for k in (2, 4, 8, 24, 32):
        assert after.folds[k] != before.folds[k], k
    # the crossover's multicast at N = 13, 14 uses the fold without N = 16
    assert after.nearest(14) == 16 and after.nearest(12) == 16 and after.nearest(1) == 2


def test_unicast_is_judged_on_predictable_rows_and_shows_wds_unjudged() -> None:
    check = validation.unicast(counts=(1, 2))
    wds = next(r for r in check.rows if r.label.startswith("WDS"))
    assert wds.role == validation.INFO and "NOT JUDGED" in wds.note
    judged = check.predictions()
    assert judged and all(r.label.startswith("netns UNICAST") for r in judged)
    assert all(r.also_in for r in judged)
    text = validation.render_table([check])
    assert "0 of 0 predictions" in text  # the lab's rows are counted in their own check
