"""``ogsim compare``: the researcher's figure set, as one sweep and one Markdown report.

From one grid of synthetic classrooms (run like ``ogsim sweep``: a local Dask cluster, a
scheduler's address, or in process) it derives: T(N) per method with the spread over seeds;
the crossover points — where P2P (TORRENT-CACHE) overtakes multicast, with constant disks and
with the lab's measured per-slice disk spread, and where the CACHE pays off once the same image
is deployed a second time; and the sensitivity at one classroom size to the link rate, the image
size, packet loss and one slow receiver.  Writes the table (Parquet + CSV), ``compare.md`` and
``compare.svg``.  Composition and reporting only: the models are the simulator's.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ogsim.sweep import Point, Row

MULTICASTS = ("MULTICAST-DIRECT", "MULTICAST-CACHE")
P2P = "TORRENT-CACHE"
# what every point of a comparison shares: peers stop when they have the image (no seeding
# time in T), every computer starts at once (no random sleeps)
COMMON: dict[str, Any] = {"torrent": "peer:0", "engine": {"STARTDELAY": "NONE"}}


def _x(**specific: Any) -> str:
    """A point's ``extra``: the common keywords plus its own (canonical JSON)."""
    return json.dumps({**COMMON, **specific}, sort_keys=True)


BASE, SPREAD, TWICE = _x(), _x(slice_rates="lab"), _x(repeat=2)


@dataclass(frozen=True)
class Preset:
    """What a comparison covers."""

    counts: tuple[int, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    image: str
    link: str
    at: int  # the classroom size of the sensitivity tables
    links: tuple[str, ...]
    images: tuple[str, ...]
    losses: tuple[str, ...]
    slow: str  # the slow receiver's disk write rate
    mcast_mbit: int = 999  # udp-sender's --max-bitrate: line rate (the link caps it)


PRESETS = {
    "standard": Preset(
        counts=(1, 5, 10, 35, 100, 300, 1000),
        methods=("UNICAST-DIRECT", "UNICAST-CACHE", *MULTICASTS, P2P),
        seeds=(1, 2, 3),
        image="20GiB",
        link="1Gbit",
        at=35,
        links=("100Mbit", "1Gbit", "10Gbit"),
        images=("5GiB", "20GiB", "50GiB"),
        losses=("0%", "0.1%", "1%"),
        slow="30MB/s",
    ),
    "tiny": Preset(
        counts=(1, 4),
        methods=("UNICAST-DIRECT", "UNICAST-CACHE", *MULTICASTS, P2P),
        seeds=(1, 2),
        image="256MiB",
        link="1Gbit",
        at=4,
        links=("100Mbit", "1Gbit"),
        images=("128MiB", "256MiB"),
        losses=("0%", "1%"),
        slow="30MB/s",
    ),
}


def points(p: Preset) -> list[Point]:
    """Every simulation the report needs (curves, spread variant, second deploys, sensitivity)."""
    out: list[Point] = []
    for n in p.counts:
        for m in p.methods:
            out += [Point(n, m, "0%", p.image, p.link, s, BASE) for s in p.seeds]
        for m in MULTICASTS:
            out.append(Point(n, m, "0%", p.image, p.link, 1, SPREAD))
        for m in p.methods:
            if m != P2P:
                out.append(Point(n, m, "0%", p.image, p.link, 1, TWICE))
    for m in p.methods:
        out += [Point(p.at, m, "0%", p.image, x, 1, BASE) for x in p.links if x != p.link]
        out += [Point(p.at, m, "0%", x, p.link, 1, BASE) for x in p.images if x != p.image]
        out += [Point(p.at, m, x, p.image, p.link, 1, BASE) for x in p.losses if x != "0%"]
        out.append(Point(p.at, m, "0%", p.image, p.link, 1, _x(slow_write=p.slow)))
    return list(dict.fromkeys(out))  # the sensitivity's base point is a curve point


def run(
    preset: Preset,
    out_dir: Path,
    *,
    jobs: int = 2,
    cluster: str | None = None,
    client: Any = None,
) -> list[Row]:
    """Run the preset's points (see :func:`ogsim.sweep.run_grid`) and write the table."""
    from ogsim.sweep_cluster import run_points, write_table

    rows = run_points(
        points(preset), str(out_dir / "runs"), preset.mcast_mbit, jobs=jobs, cluster=cluster,
        client=client,
    )  # fmt: skip
    write_table(rows, out_dir)
    return rows


def _t(rows: Iterable[Row], **match: Any) -> list[float]:
    return [
        r.makespan
        for r in rows
        if all(getattr(r, k) == v for k, v in match.items()) and r.ok == r.n * _ops(r)
    ]


def _ops(r: Row) -> int:
    return 2 if r.extra == TWICE else 1


def _fmt(xs: list[float]) -> str:
    if not xs:
        return "—"
    mean = statistics.fmean(xs)
    if len(xs) == 1 or max(xs) - min(xs) < 0.005 * mean:
        return _dur(mean)
    return f"{_dur(mean)} ({_dur(min(xs))}–{_dur(max(xs))})"


def _dur(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 120:
        return f"{s / 60:.1f} min"
    return f"{s:.1f} s"


def crossover(rows: list[Row], p: Preset, fast: str, slow: str, extra: str = BASE) -> int | None:
    """The smallest N at which ``fast``'s mean time is below ``slow``'s."""
    for n in p.counts:
        a = _t(rows, n=n, method=fast, extra=BASE, image=p.image, link=p.link, loss="0%")
        b = _t(rows, n=n, method=slow, extra=extra, image=p.image, link=p.link, loss="0%")
        if a and b and statistics.fmean(a) < statistics.fmean(b):
            return n
    return None


def report(rows: list[Row], p: Preset, name: str, figure: str | None) -> str:
    """The Markdown report."""
    base = {"image": p.image, "link": p.link, "loss": "0%"}
    lines = [
        f"# Unicast, multicast and P2P compared (`ogsim compare --preset {name}`)",
        "",
        f"One classroom (one multicast session) per 250 computers; image {p.image} (data = "
        f"stored); {p.link} client links, a 1 Gbit/s repository uplink; disks write 150 MB/s "
        "(random writes 120 MB/s), decompression 400 MB/s; multicast sessions at "
        f"{p.mcast_mbit} Mbit/s (the links cap them), FEC 8x8/128; torrent peers stop when they "
        "have the image (T excludes seeding time); every computer starts at once "
        f"(`STARTDELAY=NONE`); seeds {', '.join(map(str, p.seeds))} (mean, and min–max when "
        "they differ).  These are the simulator's predictions: `make validate` shows where its "
        "models were checked and where they miss (docs/simulator-models.md).  Reproduce: "
        f"`ogsim compare --preset {name} --jobs 2 --out out/compare`.",
        "",
        "## T(N): time to deploy N computers",
        "",
        "| N | " + " | ".join(p.methods) + " |",
        "|---|" + "---|" * len(p.methods),
    ]
    for n in p.counts:
        cells = [_fmt(_t(rows, n=n, method=m, extra=BASE, **base)) for m in p.methods]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    if figure:
        lines += ["", f"![T(N) per method]({figure})"]
    lines += ["", "## Crossovers", ""]
    for m in MULTICASTS:
        flat = crossover(rows, p, P2P, m)
        spread = crossover(rows, p, P2P, m, SPREAD)
        lines.append(
            f"* **P2P overtakes {m}**: "
            + (f"from N = {flat}" if flat else f"not up to N = {p.counts[-1]}")
            + " with disks at a constant rate; "
            + (f"from N = {spread}" if spread else f"not up to N = {p.counts[-1]}")
            + " with the lab's measured per-slice write-rate spread (`hw.disk.slice_rates: lab`)."
        )
    lines += [
        "",
        "Multicast with the per-slice spread (udpcast waits for the slowest receiver of each "
        "slice):",
        "",
        "| N | " + " | ".join(f"{m} (spread)" for m in MULTICASTS) + " |",
        "|---|" + "---|" * len(MULTICASTS),
    ]
    for n in p.counts:
        cells = [_fmt(_t(rows, n=n, method=m, extra=SPREAD, **base)) for m in MULTICASTS]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "**A second deploy of the same image** (two restores in a row; the CACHE methods fetch "
        "once and then restore locally):",
        "",
        "| N | " + " | ".join(m for m in p.methods if m != P2P) + " |",
        "|---|" + "---|" * (len(p.methods) - 1),
    ]
    for n in p.counts:
        cells = [_fmt(_t(rows, n=n, method=m, extra=TWICE, **base)) for m in p.methods if m != P2P]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    for direct, cache in (("UNICAST-DIRECT", "UNICAST-CACHE"), MULTICASTS):
        pays = next(
            (
                n
                for n in p.counts
                if (c := _t(rows, n=n, method=cache, extra=TWICE, **base))
                and (d := _t(rows, n=n, method=direct, extra=TWICE, **base))
                and statistics.fmean(c) < statistics.fmean(d)
            ),
            None,
        )
        lines.append(
            f"* **{cache} pays off over {direct} for two deploys** "
            + (f"from N = {pays}." if pays else f"at no N up to {p.counts[-1]}.")
        )
    lines += ["", f"## Sensitivity at N = {p.at}", ""]
    axes: list[tuple[str, list[tuple[str, dict[str, Any]]]]] = [
        ("client link rate", [(x, {**base, "link": x}) for x in p.links]),
        ("image size", [(x, {**base, "image": x}) for x in p.images]),
        ("packet loss", [(x, {**base, "loss": x}) for x in p.losses]),
        (
            "one slow receiver",
            [("none", base), (f"disk {p.slow}", {**base, "_slow": True})],
        ),
    ]
    for title, values in axes:
        lines += [
            f"**{title}**",
            "",
            f"| {title} | " + " | ".join(p.methods) + " |",
            "|---|" + "---|" * len(p.methods),
        ]
        for label, match in values:
            extra = _x(slow_write=p.slow) if match.pop("_slow", False) else BASE
            cells = [
                _fmt(_t(rows, n=p.at, method=m, seed=1, extra=extra, **match)) for m in p.methods
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def compare(
    name: str,
    out_dir: Path,
    *,
    jobs: int = 2,
    cluster: str | None = None,
    client: Any = None,
) -> Path:
    """Run preset ``name`` and write ``compare.md`` and ``compare.svg`` into ``out_dir``."""
    preset = PRESETS[name]
    rows = run(preset, out_dir, jobs=jobs, cluster=cluster, client=client)
    from ogsim.report.plots import compare_figure  # matplotlib only in report modules

    figure = compare_figure(rows, preset, out_dir / "compare.svg")
    text = report(rows, preset, name, figure.name)
    md = out_dir / "compare.md"
    md.write_text(text + "\n")
    return md
