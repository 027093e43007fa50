"""Where a sweep's points run: Dask distributed (a local cluster by default, or a scheduler's
address), with a progress bar, retries, and the table of every point (Parquet + CSV).

Why Dask and not Ray: a sweep point is an independent, CPU-bound, pure-Python function of
plain arguments that writes a small JSON file — exactly ``Client.submit``'s model; Dask
distributed is pure Python (no separate object store or raylet to install), its ``LocalCluster``
starts worker *processes* on this machine in a few seconds, the same code runs on a cluster
started with ``dask scheduler`` / ``dask worker`` (SSH, SLURM, Kubernetes through dask-jobqueue or
dask-kubernetes), and its scheduler re-runs the tasks of a worker that dies (up to
``distributed.scheduler.allowed-failures`` times) while ``retries`` re-runs a task that raised.

Each point's random choices come from its own seed (``Point.seed``), never from the worker, so a
table is the same wherever its points ran.  Orchestration and file output only; the model is
:func:`ogsim.sweep.run_point`.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from ogsim.sweep import Point, Row, run_point

if TYPE_CHECKING:
    from distributed import Client

INPROCESS = "inprocess"
COLUMNS = [
    "n",
    "method",
    "loss",
    "image",
    "link",
    "seed",
    "extra",
    "makespan",
    "ok",
    "failed",
    "events",
    "path",
]


def _progress() -> Progress:
    columns = (
        *Progress.get_default_columns()[:1],
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    return Progress(*columns, transient=False)


def local_client(workers: int) -> Client:
    """A Dask client on a new local cluster of ``workers`` single-threaded worker processes
    (the simulator is pure Python: one point per process at a time)."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=40,  # errors only
    )
    return Client(cluster)


def run_points(
    points: list[Point],
    out_dir: str,
    mcast_mbit: int,
    *,
    jobs: int = 2,
    cluster: str | None = None,
    client: Client | None = None,
    retries: int = 2,
    on_row: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Run ``points`` and return their rows in the points' order (see :func:`ogsim.sweep.run_grid`)."""
    if cluster == INPROCESS:
        rows = []
        with _progress() as progress:
            task = progress.add_task("sweep (in process)", total=len(points))
            for p in points:
                rows.append(run_point(p, out_dir, mcast_mbit))
                progress.advance(task)
        return rows
    own: Client | None = None
    if client is None:
        if cluster:
            from distributed import Client

            own = client = Client(cluster, timeout="10s")
        else:
            own = client = local_client(max(1, min(jobs, len(points))))
    try:
        return _gather(client, points, out_dir, mcast_mbit, retries, on_row)
    finally:
        if own is not None:
            local = own.cluster
            own.close()
            if local is not None:
                local.close()


def _gather(
    client: Client,
    points: list[Point],
    out_dir: str,
    mcast_mbit: int,
    retries: int,
    on_row: Callable[[Row], None] | None,
) -> list[Row]:
    from distributed import as_completed

    run = uuid.uuid4().hex[:8]  # two sweeps on one cluster do not share task keys
    futures = {
        client.submit(
            run_point,
            p,
            out_dir,
            mcast_mbit,
            key=f"sweep-{run}-{i}",
            retries=retries,
            pure=False,
        ): i
        for i, p in enumerate(points)
    }
    rows: dict[int, Row] = {}
    with _progress() as progress:
        where = client.scheduler.address if client.scheduler is not None else "a cluster"
        task = progress.add_task(f"sweep on {where}", total=len(points))
        for fut, row in as_completed(futures, with_results=True):
            rows[futures[fut]] = row
            if on_row is not None:
                on_row(row)
            progress.advance(task)
    return [rows[i] for i in range(len(points))]


def write_table(rows: list[Row], out_dir: Path) -> tuple[Path, Path]:
    """``sweep.parquet`` (pyarrow) and ``sweep.csv`` in ``out_dir``: one row per point, the
    columns of :class:`ogsim.sweep.Row` (pandas: ``pd.read_parquet``; polars:
    ``pl.read_parquet``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = [r.record() for r in rows]
    table = pa.Table.from_pylist(records, schema=_schema())
    parquet = out_dir / "sweep.parquet"
    pq.write_table(table, parquet)
    text = out_dir / "sweep.csv"
    with text.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(records)
    return parquet, text


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("n", pa.int64()),
            ("method", pa.string()),
            ("loss", pa.string()),
            ("image", pa.string()),
            ("link", pa.string()),
            ("seed", pa.int64()),
            ("extra", pa.string()),
            ("makespan", pa.float64()),
            ("ok", pa.int64()),
            ("failed", pa.int64()),
            ("events", pa.int64()),
            ("path", pa.string()),
        ]
    )
