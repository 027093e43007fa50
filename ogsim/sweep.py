"""``ogsim sweep``: a grid of synthetic scenarios (N × method × loss × image size × link rate ×
seed) run on a Dask cluster (:mod:`ogsim.sweep_cluster`: a local one by default, ``--cluster
ADDRESS`` for a real one) with a rich progress bar; one results.json per point and one table of
every point (Parquet + CSV, :func:`ogsim.sweep_cluster.write_table`).

Each point is an ordinary synthetic scenario (:mod:`ogsim.synthetic`), so a sweep's results feed
``ogsim report`` (which draws the scaling curves).  Every classroom's multicast session runs at
one rate (``--mcast-rate``, default ogref's classroom session rate, as the seed's).  Axes are
checked before anything runs: a bad value is a FormatError naming the option (``--n``: whole
numbers 1–50,000; link rates > 0; a multicast rate of 1–999 whole Mbit/s, as udp-sender takes).
Orchestration only: the comparison figure is drawn by :mod:`ogsim.report`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ogref.errors import FormatError
from ogref.model import Method, MulticastSession
from ogref.units import parse_positive_rate, parse_ratio, parse_size
from ogsim.scenario import safe_name

MAX_N = 50_000
DEFAULT_MBIT = MulticastSession().rate_mbit
DEFAULT_MCAST_RATE = f"{DEFAULT_MBIT}M"


def _axis(text: str, option: str) -> list[str]:
    values = _split(text)
    if not values:
        raise FormatError(f"{option}: give at least one value")
    return values


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise FormatError(f"--n: not a whole number: {text!r}") from None
    if not 1 <= n <= MAX_N:
        raise FormatError(f"--n: a computer count must be 1 to {MAX_N}, got {n}")
    return n


def _check(option: str, values: list[str], parse: Callable[[str], object]) -> tuple[str, ...]:
    for x in values:
        try:
            parse(x)
        except FormatError as exc:
            raise FormatError(f"{option}: {exc.message}") from None
    return tuple(values)


def _split(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _mcast_mbit(text: str) -> int:
    """A multicast session rate in whole Mbit/s, 1–999 (the session string's ``NNNM``)."""
    try:
        mbit = parse_positive_rate(text) / 1e6
    except FormatError as exc:
        raise FormatError(f"--mcast-rate: {exc.message}") from None
    if mbit != int(mbit) or not 1 <= mbit <= 999:
        raise FormatError(
            f"--mcast-rate: a multicast session runs at 1 to 999 whole Mbit/s, got {text!r}"
        )
    return int(mbit)


def _positive_size(text: str) -> int:
    size = parse_size(text)
    if size <= 0:
        raise FormatError(f"an image size must be more than 0 bytes: {text!r}")
    return size


@dataclass(frozen=True)
class Grid:
    """The sweep's axes (strings as written on the command line, validated)."""

    n: tuple[int, ...]
    methods: tuple[str, ...]
    loss: tuple[str, ...]
    image: tuple[str, ...]
    link: tuple[str, ...]
    mcast_mbit: int = DEFAULT_MBIT
    seeds: tuple[int, ...] = (1,)

    @classmethod
    def parse(
        cls,
        n: str,
        methods: str,
        loss: str,
        image: str,
        link: str,
        mcast_rate: str = DEFAULT_MCAST_RATE,
        seeds: str = "1",
    ) -> Grid:
        """Parse comma-separated axes and the multicast rate; units go through ogref.units
        (FormatError naming the option)."""
        counts = tuple(_count(x) for x in _axis(n, "--n"))
        try:
            ms = tuple(str(Method.parse(m)) for m in _axis(methods, "--methods"))
        except FormatError as exc:
            raise FormatError(f"--methods: {exc.message}") from None
        return cls(
            counts,
            ms,
            _check("--loss", _axis(loss, "--loss"), parse_ratio),
            _check("--image", _axis(image, "--image"), _positive_size),
            _check("--link", _axis(link, "--link"), parse_positive_rate),
            _mcast_mbit(mcast_rate),
            _seeds(seeds),
        )

    def points(self) -> list[Point]:
        """Every combination."""
        return [
            Point(*p)
            for p in itertools.product(
                self.n, self.methods, self.loss, self.image, self.link, self.seeds
            )
        ]


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(x) for x in _axis(text, "--seeds"))
    except ValueError:
        raise FormatError(f"--seeds: whole numbers, e.g. 1,2,3: {text!r}") from None
    return seeds


@dataclass(frozen=True)
class Point:
    """One grid point: a synthetic scenario's parameters (``extra``: more synthetic keywords,
    as JSON text so a point stays hashable and plain)."""

    n: int
    method: str
    loss: str
    image: str
    link: str
    seed: int = 1
    extra: str = ""


@dataclass(frozen=True)
class Row:
    """One sweep point's outcome (a row of the sweep's table)."""

    n: int
    method: str
    loss: str
    image: str
    link: str
    seed: int
    extra: str
    makespan: float
    ok: int
    failed: int
    events: int
    path: str

    def record(self) -> dict[str, Any]:
        """The row as a plain mapping (the table's columns)."""
        return asdict(self)


def run_point(point: Point, out_dir: str, mcast_mbit: int = DEFAULT_MBIT) -> Row:
    """Simulate one grid point and write its results.json."""
    import json

    from ogsim.simulator import simulate
    from ogsim.synthetic import synthetic

    p = point
    tag = f"-{safe_name(p.extra)}" if p.extra else ""
    name = safe_name(
        f"sweep-{p.method.lower()}-n{p.n}-loss{p.loss.replace('%', 'pct')}-{p.image}-{p.link}"
        f"-s{p.seed}{tag}"
    )[:100]
    extra: dict[str, Any] = json.loads(p.extra) if p.extra else {}
    sc = synthetic(
        p.n,
        p.method,
        data=p.image,
        stored=p.image,
        link=p.link,
        loss=p.loss,
        mcast_rate=mcast_mbit,
        seed=p.seed,
        name=name,
        **extra,
    )
    results = simulate(sc)
    path = results.write(Path(out_dir) / name / "results.json")
    m = results.metrics
    return Row(
        p.n, p.method, p.loss, p.image, p.link, p.seed, p.extra,
        m.makespan_s, m.ok, m.failed, m.events, str(path),
    )  # fmt: skip


def run_grid(
    grid: Grid,
    jobs: int,
    out_dir: Path,
    cluster: str | None = None,
    *,
    points: list[Point] | None = None,
    client: Any = None,
    retries: int = 2,
) -> list[Row]:
    """Run every point (``points``, default the grid's) and return the rows in grid order:
    on a local Dask cluster of ``jobs`` worker processes, on the cluster at ``cluster`` (a
    scheduler address), on ``client`` (an open Dask client), or in this process when
    ``cluster`` is ``"inprocess"``."""
    from ogsim.sweep_cluster import run_points

    return run_points(
        points if points is not None else grid.points(),
        str(out_dir),
        grid.mcast_mbit,
        jobs=jobs,
        cluster=cluster,
        client=client,
        retries=retries,
    )
