"""``ogsim serve`` end to end (no root): the real service as a child process, eight simulated
agents with their own credentials; an operation submitted through the API with the admin
token completes with every record ok, and SIGTERM writes a results file that validates."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from ogsim.results import Results

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "scenarios" / "seed-35pc-torrent-cache.yaml"


def eight_pcs(tmp: Path) -> Path:
    """The seed's classroom cut to 8 computers (no groups or expectations)."""
    data = yaml.safe_load(SEED.read_text(encoding="utf-8"))
    room = data["classrooms"][0]
    room["groups"] = []
    room["computers"] = {"count": 8, "first_host": 11}
    data["expect"] = []
    data["name"] = "serve-8pc"
    path = tmp / "serve-8pc.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.timeout(60)
def test_an_operation_through_the_api_completes_and_sigterm_writes_the_results(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ogsim.cli", "serve", str(eight_pcs(tmp_path)),
         "--backend", "sim", "--speed", "400", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        ready = re.search(r"at (http://\S+)/api/v1 — admin token in (\S+)", first)
        assert ready, first
        url, token = ready[1], Path(ready[2]).read_text().strip()
        http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        sub = http.post("/api/v1/operations", json={"index": 0})
        assert sub.status_code == 200, sub.text
        assert len(sub.json()["computers"]) == 8
        deadline = time.monotonic() + 30
        while True:
            status = http.get(f"/api/v1/operations/{sub.json()['op']}").json()
            if status["done"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status["done"], status
        recs = status["records"]
        assert [r["status"] for r in recs] == ["ok"] * 8, [r["message"] for r in recs]
        assert all(r["method_used"] == "TORRENT-CACHE" and r["log"] for r in recs)
        # the agents reported the predicted stages: the fetch, then the restore
        assert all({"fetch", "restore"} <= {p["name"] for p in r["phases"]} for r in recs)
        http.close()
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, rest
    results = Results.read(out / "results.json")  # validates against the schema's model
    (op,) = results.operations
    assert (op.index, op.kind, op.method) == (0, "restore", "TORRENT-CACHE")
    assert [c.status for c in op.computers] == ["ok"] * 8
    assert results.metrics.ok == 8 and results.metrics.extra["serve"]["speed"] == 400
    # scenario seconds: the predicted restore takes minutes, not the second of wall time
    assert op.makespan is not None and op.makespan > 60
