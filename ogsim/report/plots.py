"""One pure function per figure, each taking results and returning a matplotlib Figure.

Agg backend, fixed sizes and fonts, SVG without dates (``save``) so reports diff cleanly.
Figures: per-computer phase timeline, completion-time CDF per method, scaling curves
(makespan against N per method), link utilisation (one panel per tracked link, idle ones
included, and the clients' links added together from their transfer phases).  Legends sit outside the axes (below them, laid out by matplotlib's constrained
layout), never over bars or curves.  No simulation, no file layout here.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ogsim.results import Results

if TYPE_CHECKING:
    from ogsim.compare import Preset
    from ogsim.sweep import Row

plt.rcParams.update({"font.size": 9, "svg.hashsalt": "oglab", "figure.dpi": 100})

PHASE_COLOURS = {
    "inspect": "#bbbbbb",
    "format-cache": "#8c564b",
    "wait": "#e6e6a0",
    "barrier": "#ffbb78",
    "download": "#1f77b4",
    "fetch": "#1f77b4",
    "seeding": "#aec7e8",
    "restore": "#2ca02c",
    "postconf": "#9467bd",
    "boot": "#17becf",
    "create": "#d62728",
}


def plot_timeline(results: Results, max_rows: int = 60) -> Figure:
    """Horizontal bars: each computer's phases over time (first ``max_rows`` computers)."""
    recs = [c for op in results.operations for c in op.computers][:max_rows]
    fig, ax = plt.subplots(figsize=(10, max(3.0, 0.18 * len(recs) + 1.6)), layout="constrained")
    seen: set[str] = set()
    for row, c in enumerate(recs):
        for p in c.phases:
            if p.name == "fetch" and any(q.name == "download" for q in c.phases):
                continue  # the torrent fetch is drawn as wait + download + seeding
            label = p.name if p.name not in seen else None
            seen.add(p.name)
            ax.barh(
                row,
                max(p.end - p.start, 1e-3),
                left=p.start,
                height=0.8,
                color=PHASE_COLOURS.get(p.name, "#7f7f7f"),
                label=label,
            )
        if c.status != "ok":
            ax.text(
                c.finished or 0,
                row,
                f" {c.status} {c.code or ''}",
                va="center",
                fontsize=7,
                color="red",
            )
    ax.set_yticks(range(len(recs)))
    ax.set_yticklabels([f"{c.name} {c.method_used or ''}" for c in recs], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    ax.set_title(
        f"{results.scenario}: phases per computer (seed {results.seed}, "
        f"scale {results.scale:g}, backend {results.backend})"
    )
    _legend_below(fig, fontsize=7, ncols=6)
    return fig


def _legend_below(fig: Figure, fontsize: float = 8, ncols: int = 3) -> None:
    """One figure legend under the axes (the constrained layout makes room for it), in as many
    columns as fit the figure's width (at most ``ncols``): long labels are never cut off."""
    handles, labels = fig.axes[0].get_legend_handles_labels()
    if not handles:
        return
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    for cols in range(max(1, min(ncols, len(handles))), 0, -1):
        legend = fig.legend(
            handles,
            labels,
            loc="outside lower center",
            fontsize=fontsize,
            ncols=cols,
            frameon=False,
        )
        if cols == 1 or legend.get_window_extent(renderer).width <= fig.bbox.width:
            return
        legend.remove()


def plot_cdf(results: Results) -> Figure:
    """Completion-time CDF of successful computers, one curve per method used."""
    fig, ax = plt.subplots(figsize=(7, 4.4), layout="constrained")
    by: dict[str, list[float]] = {}
    for op in results.operations:
        for c in op.computers:
            if c.status == "ok" and c.finished is not None:
                by.setdefault(c.method_used or op.kind, []).append(c.finished - op.at)
    for method, times in sorted(by.items()):
        xs = sorted(times)
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        ax.step(xs, ys, where="post", label=f"{method} (n={len(xs)})")
    ax.set_xlabel("completion time (s)")
    ax.set_ylabel("fraction of computers")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(f"{results.scenario}: completion-time CDF per method (scale {results.scale:g})")
    _legend_below(fig, ncols=3)
    return fig


CLIENTS = "clients' links (sum)"


def clients_traffic(results: Results) -> tuple[list[float], list[float]]:
    """What the computers' own links carried together over time (bits/s, piecewise constant
    from each time on), each transfer phase at its average rate; a torrent fetch counts once
    (its download).  Empty when the results record no transfer."""
    steps: dict[float, float] = {}
    for op in results.operations:
        for c in op.computers:
            torrent = any(p.name == "download" for p in c.phases)
            for p in c.phases:
                if p.bytes <= 0 or p.end <= p.start or (torrent and p.name == "fetch"):
                    continue
                rate = p.bytes * 8 / (p.end - p.start)
                steps[p.start] = steps.get(p.start, 0.0) + rate
                steps[p.end] = steps.get(p.end, 0.0) - rate
    t, bps, level = [], [], 0.0
    for when in sorted(steps):
        level += steps[when]
        t.append(when)
        bps.append(max(0.0, level) if abs(level) > 1e-6 else 0.0)
    return t, bps


def plot_links(results: Results) -> Figure:
    """Utilisation of every tracked shared link over time (step plots, one panel per link, its
    capacity dashed; a link that carried nothing is drawn flat and marked idle), then the
    clients' links added together (each transfer at its average rate: with BitTorrent the
    peers receive together far more than the repository sends)."""
    series = results.links
    t_clients, bps_clients = clients_traffic(results)
    panels = len(series) + (1 if t_clients else 0)
    fig, axes = plt.subplots(
        max(1, panels),
        1,
        figsize=(8, max(3.0, 1.7 * panels + 1.0)),
        sharex=True,
        squeeze=False,
        layout="constrained",
    )
    end = max((s.t[-1] for s in series if s.t), default=0.0)
    for ax, s in zip(axes[:, 0], series, strict=False):
        t = s.t or [0.0, end]
        mbps = [b / 1e6 for b in s.bps] or [0.0, 0.0]
        idle = max(mbps, default=0.0) <= 0
        label = f"{s.name}{' (idle)' if idle else ''}"
        ax.step(t, mbps, where="post", label=label, color="#7f7f7f" if idle else "#1f77b4")
        ax.axhline(s.capacity_bps / 1e6, linestyle="--", linewidth=0.8, color="#d62728")
        ax.set_ylim(0, s.capacity_bps / 1e6 * 1.1)
        ax.set_ylabel("Mbit/s")
        ax.set_title(f"{label}: capacity {s.capacity_bps / 1e6:g} Mbit/s", fontsize=8, loc="left")
        ax.grid(alpha=0.3)
    if t_clients:
        ax = axes[len(series), 0]
        mbps = [b / 1e6 for b in bps_clients]
        ax.step(t_clients, mbps, where="post", label=CLIENTS, color="#2ca02c")
        ax.set_ylim(0, max(mbps) * 1.1 or 1.0)
        ax.set_ylabel("Mbit/s")
        ax.set_title(
            f"{CLIENTS}, each transfer at its average rate: peak {max(mbps):,.0f} Mbit/s",
            fontsize=8,
            loc="left",
        )
        ax.grid(alpha=0.3)
    if not panels:
        axes[0, 0].text(0.5, 0.5, "no tracked links", ha="center", va="center")
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(f"{results.scenario}: link utilisation")
    return fig


def plot_scaling(points: list[tuple[str, int, float]], title: str = "scaling") -> Figure:
    """Makespan against the number of computers, one curve per method: (method, n, seconds)."""
    fig, ax = plt.subplots(figsize=(7, 4.4), layout="constrained")
    by: dict[str, list[tuple[int, float]]] = {}
    for method, n, t in points:
        by.setdefault(method, []).append((n, t))
    for method, pts in sorted(by.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=method)
    ax.set_xlabel("computers (N)")
    ax.set_ylabel("makespan (s)")
    ax.grid(alpha=0.3)
    ax.set_title(title)
    _legend_below(fig, ncols=4)
    return fig


def save(fig: Figure, path: Path) -> Path:
    """Write a figure as SVG without a date, then close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"Date": None}
    fig.savefig(path, format="svg", metadata=meta)
    plt.close(fig)
    return path


def compare_figure(rows: list[Row], p: Preset, path: Path) -> Path:
    """``ogsim compare``'s figure: T(N) per method on log-log axes, the band spanning the
    seeds (:mod:`ogsim.compare` makes the rows)."""
    from ogsim.compare import BASE, MULTICASTS, SPREAD, _t

    fig, ax = plt.subplots(figsize=(7, 4.5))
    base = {"image": p.image, "link": p.link, "loss": "0%"}
    for m in p.methods:
        ns, mean, lo, hi = [], [], [], []
        for n in p.counts:
            xs = _t(rows, n=n, method=m, extra=BASE, **base)
            if xs:
                ns.append(n)
                mean.append(statistics.fmean(xs))
                lo.append(min(xs))
                hi.append(max(xs))
        (line,) = ax.plot(ns, mean, marker="o", label=m)
        ax.fill_between(ns, lo, hi, color=line.get_color(), alpha=0.2)
    for m in MULTICASTS:
        ns = [n for n in p.counts if _t(rows, n=n, method=m, extra=SPREAD, **base)]
        ts = [statistics.fmean(_t(rows, n=n, method=m, extra=SPREAD, **base)) for n in ns]
        ax.plot(ns, ts, linestyle="--", label=f"{m}, measured disk spread")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("computers (N)")
    ax.set_ylabel("deploy time (s)")
    ax.set_title(f"T(N), {p.image} image, {p.link}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
