"""Figures: right axes and series, checked lightly (not by pixels)."""

from __future__ import annotations

from pathlib import Path

from ogsim.report import plots
from ogsim.scenario import load_scenario
from ogsim.simulator import simulate

SEED = Path(__file__).resolve().parents[2] / "scenarios" / "seed-35pc-torrent-cache.yaml"


def test_figures_have_expected_series() -> None:
    r = simulate(load_scenario(SEED))
    cdf = plots.plot_cdf(r)
    assert len(cdf.axes[0].lines) == 2  # TORRENT-CACHE and UNICAST-DIRECT
    tl = plots.plot_timeline(r)
    assert len(tl.axes[0].get_yticklabels()) == 35
    links = plots.plot_links(r)
    assert any("repo uplink" in line.get_label() for line in links.axes[0].lines)
    sc = plots.plot_scaling([("A", 1, 10.0), ("A", 2, 20.0), ("B", 1, 5.0)])
    assert len(sc.axes[0].lines) == 2
