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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(90)
def test_ogservers_api_drives_the_simulated_classroom(tmp_path: Path) -> None:
    """What ogCLI does, over ``ogsim serve --ogserver-listen``: the tree, the connected
    clients, a wake-up, a restore of the classroom (``TIPTORRENT``: ogClient's P2P type), and
    each client's result read back from ``GET /clients`` — the simulated agents carried out the
    restore the service planned, as for ``/api/v1``."""
    out = tmp_path / "out"
    og = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ogsim.cli", "serve", str(eight_pcs(tmp_path)),
         "--backend", "sim", "--speed", "400", "--out", str(out), "--ogserver-listen", og],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        ready = re.search(r"at (http://\S+)/api/v1 — admin token in (\S+)", first)
        assert ready, first
        assert og in proc.stdout.readline()
        token = Path(ready[2]).read_text().strip()
        http = httpx.Client(base_url=f"http://{og}", headers={"Authorization": token}, timeout=10)
        (center,) = http.get("/scopes").json()["scope"]
        (room,) = center["scope"]
        ips = [pc["ip"] for pc in room["scope"]]
        assert len(ips) == 8 and all(pc["type"] == "computer" for pc in room["scope"])
        deadline = time.monotonic() + 30
        while len(http.get("/clients").json()["clients"]) < 8 and time.monotonic() < deadline:
            time.sleep(0.1)  # the simulated agents connect
        clients = http.get("/clients").json()["clients"]
        assert sorted(c["addr"] for c in clients) == sorted(ips)
        assert {c["state"] for c in clients} == {"OPG"}
        assert http.post("/wol", json={"type": "broadcast", "clients": ips}).status_code == 200
        (image,) = http.get("/images").json()["images"]
        restore = {"clients": ips, "disk": "1", "partition": "1", "name": image["name"],
                   "id": str(image["id"]), "profile": str(image["software_id"]),
                   "repository": "10.0.0.1", "type": "TIPTORRENT"}  # fmt: skip
        reply = http.post("/image/restore", json=restore)
        assert reply.status_code == 200 and reply.content == b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            clients = http.get("/clients").json()["clients"]
            if all(c["last_cmd"]["result"] != "unknown" for c in clients):
                break
            time.sleep(0.1)
        assert [c["last_cmd"]["result"] for c in clients] == ["success"] * 8, clients
        assert {c["state"] for c in clients} == {"OPG"}
        # the same operation, as ogLab's own API has it: the torrent the scenario predicted
        api = httpx.Client(base_url=ready[1], headers={"Authorization": f"Bearer {token}"})
        (op,) = api.get("/api/v1/operations").json()["operations"]
        detail = api.get(f"/api/v1/operations/{op['op']}").json()
        assert [r["method_used"] for r in detail["records"]] == ["TORRENT-CACHE"] * 8
        http.close()
        api.close()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
