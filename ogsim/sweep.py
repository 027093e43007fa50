"""``ogsim sweep``: a grid of synthetic scenarios (N × method × loss × image size × link rate)
run across worker processes with a rich progress bar; one results.json per point.

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
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

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

    @classmethod
    def parse(
        cls,
        n: str,
        methods: str,
        loss: str,
        image: str,
        link: str,
        mcast_rate: str = DEFAULT_MCAST_RATE,
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
        )

    def points(self) -> list[tuple[int, str, str, str, str]]:
        """Every combination."""
        return list(itertools.product(self.n, self.methods, self.loss, self.image, self.link))


@dataclass(frozen=True)
class Row:
    """One sweep point's outcome."""

    n: int
    method: str
    loss: str
    image: str
    link: str
    makespan: float
    ok: int
    path: str


def run_point(
    point: tuple[int, str, str, str, str], out_dir: str, mcast_mbit: int = DEFAULT_MBIT
) -> Row:
    """Simulate one grid point and write its results.json."""
    from ogsim.simulator import simulate
    from ogsim.synthetic import synthetic

    n, method, loss, image, link = point
    name = safe_name(f"sweep-{method.lower()}-n{n}-loss{loss.replace('%', 'pct')}-{image}-{link}")
    sc = synthetic(
        n, method, data=image, stored=image, link=link, loss=loss, mcast_rate=mcast_mbit, name=name
    )
    results = simulate(sc)
    path = results.write(Path(out_dir) / name / "results.json")
    return Row(
        n, method, loss, image, link, results.metrics.makespan_s, results.metrics.ok, str(path)
    )


def run_grid(grid: Grid, jobs: int, out_dir: Path) -> list[Row]:
    """Run every point on ``jobs`` processes; rows come back in grid order."""
    points = grid.points()
    rows: dict[int, Row] = {}
    columns = (
        *Progress.get_default_columns()[:1],
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    workers = max(1, min(jobs, len(points)))
    with Progress(*columns) as progress, ProcessPoolExecutor(max_workers=workers) as pool:
        task = progress.add_task("sweep", total=len(points))
        futures = {
            pool.submit(run_point, p, str(out_dir), grid.mcast_mbit): i
            for i, p in enumerate(points)
        }
        for fut in as_completed(futures):
            rows[futures[fut]] = fut.result()
            progress.advance(task)
    return [rows[i] for i in range(len(points))]
