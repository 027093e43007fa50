"""Figures: right axes and series, legends off the data, checked lightly (not by pixels)."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.transforms import Bbox

from ogsim.report import plots
from ogsim.results import ComputerResult, LinkSeries, OperationResult, Phase, Results
from ogsim.scenario import load_scenario
from ogsim.simulator import simulate

SEED = Path(__file__).resolve().parents[2] / "scenarios" / "seed-35pc-torrent-cache.yaml"


@pytest.fixture(scope="module")
def seed() -> Results:
    return simulate(load_scenario(SEED))


def test_figures_have_expected_series(seed: Results) -> None:
    cdf = plots.plot_cdf(seed)
    assert len(cdf.axes[0].lines) == 2  # TORRENT-CACHE and UNICAST-DIRECT
    tl = plots.plot_timeline(seed)
    assert len(tl.axes[0].get_yticklabels()) == 35
    links = plots.plot_links(seed)
    assert any("repo uplink" in str(line.get_label()) for ax in links.axes for line in ax.lines)
    sc = plots.plot_scaling([("A", 1, 10.0), ("A", 2, 20.0), ("B", 1, 5.0)])
    assert len(sc.axes[0].lines) == 2


def _legend(fig: Figure) -> Legend:
    found = [*fig.legends, *(ax.get_legend() for ax in fig.axes)]
    legends = [legend for legend in found if legend is not None]
    assert len(legends) == 1, legends
    return legends[0]


def _overlap(a: Bbox, b: Bbox) -> bool:
    """Strict overlap (touching edges do not count)."""
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("figure", ["timeline", "cdf", "scaling"])
def test_legends_sit_off_the_bars_and_curves(seed: Results, figure: str) -> None:
    fig = {
        "timeline": lambda: plots.plot_timeline(seed),
        "cdf": lambda: plots.plot_cdf(seed),
        "scaling": lambda: plots.plot_scaling([("A", 1, 10.0), ("A", 8, 30.0), ("B", 8, 5.0)]),
    }[figure]()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    box = _legend(fig).get_window_extent(renderer)
    ax = fig.axes[0]
    artists = [*ax.patches, *ax.lines]
    assert artists
    on_top = [a for a in artists if _overlap(box, a.get_window_extent(renderer))]
    assert on_top == [], f"the legend covers {len(on_top)} of {len(artists)} bars/curves"
    assert not _overlap(box, ax.get_window_extent(renderer)), "the legend is inside the axes"
    # and it is on the figure, not cut off
    assert Bbox.union([box, fig.bbox]).bounds == fig.bbox.bounds


def _labels(fig: Figure) -> list[str]:
    labels = (str(line.get_label()) for ax in fig.axes for line in ax.lines)
    return [label for label in labels if not label.startswith("_")]


def test_link_figure_plots_every_tracked_link(seed: Results) -> None:
    assert [s.name for s in seed.links] == ["router", "repo uplink"]
    labels = _labels(plots.plot_links(seed))
    assert labels[:2] == ["router (idle)", "repo uplink"]  # the idle router is drawn too
    r = Results(
        scenario="x",
        links=[
            LinkSeries(name="router", capacity_bps=1e10, t=[0.0, 5.0], bps=[2e8, 0.0]),
            LinkSeries(name="repo uplink", capacity_bps=1e9, t=[0.0, 5.0], bps=[1e9, 0.0]),
            LinkSeries(name="pc01 uplink", capacity_bps=1e9),  # a MASTER that never sent
        ],
    )
    fig = plots.plot_links(r)
    assert _labels(fig) == ["router", "repo uplink", "pc01 uplink (idle)"]
    assert len(fig.axes) == 3
    assert len(plots.plot_links(Results(scenario="none")).axes) == 1


def test_link_figure_adds_the_clients_links_together(seed: Results) -> None:
    fig = plots.plot_links(seed)
    assert _labels(fig) == ["router (idle)", "repo uplink", "clients' links (sum)"]
    (clients,) = [
        ln for ax in fig.axes for ln in ax.lines if ln.get_label() == "clients' links (sum)"
    ]
    # BitTorrent: the 33 peers receive far more together than the repository's 1 Gbit/s uplink
    assert max(clients.get_ydata()) > 5_000  # Mbit/s


def test_clients_sum_is_each_transfer_at_its_average_rate() -> None:
    def pc(name: str, *phases: Phase) -> ComputerResult:
        return ComputerResult(name=name, phases=list(phases), status="ok")

    r = Results(
        scenario="x",
        links=[LinkSeries(name="repo uplink", capacity_bps=1e9, t=[0.0, 20.0], bps=[1e9, 0.0])],
        operations=[
            OperationResult(
                index=0,
                kind="restore",
                at=0.0,
                computers=[
                    pc("pc01", Phase(name="restore", start=0, end=10, bytes=1e9)),
                    pc(
                        "pc02",
                        Phase(name="download", start=5, end=15, bytes=5e8),
                        Phase(name="fetch", start=5, end=15, bytes=5e8),  # the same bytes
                        Phase(name="restore", start=15, end=20, bytes=0),  # from the CACHE
                    ),
                ],
            )
        ],
    )
    fig = plots.plot_links(r)
    (line,) = [ln for ax in fig.axes for ln in ax.lines if ln.get_label() == "clients' links (sum)"]
    points = dict(zip(line.get_xdata(), line.get_ydata(), strict=True))
    assert points == {0.0: 800.0, 5.0: 1200.0, 10.0: 400.0, 15.0: 0.0}


def test_a_legend_of_long_labels_stays_on_the_figure() -> None:
    points = [
        (f"{m} loss {loss} link 100Mbit", n, n * 10.0)
        for m in ("UNICAST-DIRECT", "MULTICAST-DIRECT", "TORRENT-CACHE")
        for loss in ("0%", "1%")
        for n in (10, 35)
    ]
    fig = plots.plot_scaling(points)
    fig.canvas.draw()
    box = _legend(fig).get_window_extent(fig.canvas.get_renderer())  # type: ignore[attr-defined]
    assert Bbox.union([box, fig.bbox]).bounds == fig.bbox.bounds
