"""``make bench-api`` smoke: five agents, a short status load; the lines it promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(90)
def test_the_bench_prints_latency_percentiles_and_status_rate() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "ogsim.bench_api", "--n", "5", "--status-seconds", "0.5"],
        capture_output=True, text=True, env=env, timeout=80,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    num = r"\d+\.\d{3} s"
    assert re.search(
        rf"^N=5: submit→start p50 {num}  p95 {num}  p99 {num}  max {num}  \(5/5 agents started;",
        run.stdout,
        re.M,
    ), run.stdout
    rate = re.search(
        r"^N=5: GET /api/v1/computers (\d+\.\d) req/s .*, 0 errors\)$", run.stdout, re.M
    )
    assert rate and float(rate[1]) > 0, run.stdout
    assert "goal" not in run.stdout  # the goal is stated for 200 agents only
