"""``ogsim sweep`` on Dask distributed: a real local cluster of two worker processes gives the
same table as the in-process run (same seeds), a killed worker's tasks are re-run, and the
table is Parquet + CSV that pandas reads."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")

from ogsim.sweep import Grid, Point, Row, run_grid, run_point  # noqa: E402
from ogsim.sweep_cluster import INPROCESS, local_client, write_table  # noqa: E402

GRID = Grid.parse("1,2", "UNICAST-DIRECT,MULTICAST-CACHE,TORRENT-CACHE", "0%,1%", "64MiB", "1Gbit",
                  seeds="1,2")  # fmt: skip


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    c = local_client(2)
    try:
        yield c
    finally:
        cluster = c.cluster
        c.close()
        cluster.close()


def _plain(rows: list[Row]) -> list[Row]:
    return [replace(r, path="") for r in rows]


def test_two_worker_cluster_gives_the_in_process_table(client: Any, tmp_path: Path) -> None:
    here = run_grid(GRID, 1, tmp_path / "here", "inprocess")
    there = run_grid(GRID, 2, tmp_path / "there", client=client)
    assert len(here) == len(GRID.points()) == 24
    assert _plain(there) == _plain(here)
    parquet, csv = write_table(there, tmp_path / "there")
    table = pd.read_parquet(parquet)
    assert list(table["makespan"]) == [r.makespan for r in here]
    assert pd.read_csv(csv)["seed"].tolist() == [r.seed for r in here]
    assert set(table.columns) >= {"n", "method", "loss", "seed", "makespan", "ok"}


def test_a_killed_workers_task_is_run_again(client: Any, tmp_path: Path) -> None:
    slow = [Point(40, "TORRENT-CACHE", "0%", "2GiB", "1Gbit", seed) for seed in (1, 2, 3, 4)]
    result: dict[str, Any] = {}

    def sweep() -> None:
        result["rows"] = run_grid(GRID, 2, tmp_path, points=slow, client=client, retries=0)

    t = threading.Thread(target=sweep)
    t.start()
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:
        busy = {w: tasks for w, tasks in client.processing().items() if tasks}
        if busy:
            victim = sorted(busy)[0]
        else:
            time.sleep(0.05)
    assert victim is not None, "no task ever started"
    pid = client.run(os.getpid, workers=[victim])[victim]  # a worker this test's cluster started
    os.kill(pid, signal.SIGKILL)
    t.join(timeout=120)
    rows = result["rows"]
    assert [r.seed for r in rows] == [1, 2, 3, 4] and all(r.ok == 40 for r in rows)
    assert victim not in client.scheduler_info()["workers"]  # it did die
    again = run_point(slow[0], str(tmp_path / "check"), GRID.mcast_mbit)
    assert replace(rows[0], path="") == replace(again, path="")


def test_inprocess_is_a_cluster_choice(tmp_path: Path) -> None:
    rows = run_grid(GRID, 1, tmp_path, INPROCESS, points=GRID.points()[:2])
    assert [r.method for r in rows] == ["UNICAST-DIRECT", "UNICAST-DIRECT"]
