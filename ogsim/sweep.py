"""``ogsim sweep``: a grid of synthetic scenarios (N × method × loss × image size × link rate)
run across worker processes with a rich progress bar; one results.json per point.

Each point is an ordinary synthetic scenario (:mod:`ogsim.synthetic`), so a sweep's results feed
``ogsim report`` (which draws the scaling curves).  Orchestration only.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from ogref.model import Method
from ogref.units import parse_rate, parse_ratio, parse_size


def _split(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


@dataclass(frozen=True)
class Grid:
    """The sweep's axes (strings as written on the command line, validated)."""

    n: tuple[int, ...]
    methods: tuple[str, ...]
    loss: tuple[str, ...]
    image: tuple[str, ...]
    link: tuple[str, ...]

    @classmethod
    def parse(cls, n: str, methods: str, loss: str, image: str, link: str) -> Grid:
        """Parse comma-separated axes; units go through ogref.units."""
        counts = tuple(int(x) for x in _split(n))
        ms = tuple(str(Method.parse(m)) for m in _split(methods))
        for x in _split(loss):
            parse_ratio(x)
        for x in _split(image):
            parse_size(x)
        for x in _split(link):
            parse_rate(x)
        return cls(counts, ms, tuple(_split(loss)), tuple(_split(image)), tuple(_split(link)))

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


def run_point(point: tuple[int, str, str, str, str], out_dir: str) -> Row:
    """Simulate one grid point and write its results.json."""
    from ogsim.simulator import simulate
    from ogsim.synthetic import synthetic

    n, method, loss, image, link = point
    name = f"sweep-{method.lower()}-n{n}-loss{loss.replace('%', 'pct')}-{image}-{link}"
    sc = synthetic(n, method, data=image, stored=image, link=link, loss=loss, name=name)
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
    with Progress(*columns) as progress, ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        task = progress.add_task("sweep", total=len(points))
        futures = {pool.submit(run_point, p, str(out_dir)): i for i, p in enumerate(points)}
        for fut in as_completed(futures):
            rows[futures[fut]] = fut.result()
            progress.advance(task)
    return [rows[i] for i in range(len(points))]
