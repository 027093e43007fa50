"""One pure function per figure, each taking results and returning a matplotlib Figure.

Agg backend, fixed sizes and fonts, SVG without dates (``save``) so reports diff cleanly.
Figures: per-computer phase timeline, completion-time CDF per method, scaling curves
(makespan against N per method), link utilisation.  No simulation, no file layout here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ogsim.results import Results

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
    fig, ax = plt.subplots(figsize=(10, max(3.0, 0.18 * len(recs) + 1.2)))
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
    ax.legend(loc="lower right", fontsize=7, ncols=4)
    fig.tight_layout()
    return fig


def plot_cdf(results: Results) -> Figure:
    """Completion-time CDF of successful computers, one curve per method used."""
    fig, ax = plt.subplots(figsize=(7, 4))
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
    ax.legend(fontsize=8)
    ax.set_title(f"{results.scenario}: completion-time CDF per method (scale {results.scale:g})")
    fig.tight_layout()
    return fig


def plot_links(results: Results) -> Figure:
    """Utilisation of the tracked shared links over time (step plot)."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for s in results.links:
        if not s.t or max(s.bps, default=0) <= 0:
            continue
        ax.step(
            s.t,
            [b / 1e6 for b in s.bps],
            where="post",
            label=f"{s.name} (cap {s.capacity_bps / 1e6:g} Mbit/s)",
        )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("Mbit/s")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{results.scenario}: link utilisation")
    fig.tight_layout()
    return fig


def plot_scaling(points: list[tuple[str, int, float]], title: str = "scaling") -> Figure:
    """Makespan against the number of computers, one curve per method: (method, n, seconds)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    by: dict[str, list[tuple[int, float]]] = {}
    for method, n, t in points:
        by.setdefault(method, []).append((n, t))
    for method, pts in sorted(by.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=method)
    ax.set_xlabel("computers (N)")
    ax.set_ylabel("makespan (s)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def save(fig: Figure, path: Path) -> Path:
    """Write a figure as SVG without a date, then close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"Date": None}
    fig.savefig(path, format="svg", metadata=meta)
    plt.close(fig)
    return path
