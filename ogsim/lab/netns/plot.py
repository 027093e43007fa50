"""The calibration figure of ``python -m ogsim.lab.netns.bench``: predicted vs measured deploy
time, before and after calibration, one SVG (matplotlib lives only in plotting modules)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _untrusted(row: dict[str, Any]) -> bool:
    return bool(row["cpu_bound"] or row.get("io_bound"))


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Predicted vs measured deploy time (before and after calibration) as a small SVG."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # text as text: a small file
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    ok = [r for r in rows if r.get("sim_T")]
    for key, label, marker in (("sim_before", "before", "x"), ("sim_T", "after", "o")):
        for bound, alpha in ((False, 1.0), (True, 0.35)):
            pts = [(r["T"], r[key]) for r in ok if r.get(key) and _untrusted(r) is bound]
            if pts:
                xs, ys = zip(*pts, strict=True)
                tag = f"{label}{' (CPU/I-O-bound lab run)' if bound else ''}"
                ax.scatter(xs, ys, marker=marker, alpha=alpha, label=tag)
    hi = max([r["T"] for r in ok] + [r.get("sim_before", 0) for r in ok] + [1.0]) * 1.3
    lo = min([r["T"] for r in ok] + [1.0]) * 0.7
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="0.85", zorder=0)
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi))
    ax.set_xlabel("measured in the netns lab (s)")
    ax.set_ylabel("predicted by the simulator (s)")
    ax.set_title("sim vs lab, deploy time (grey: ±10 %)", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
