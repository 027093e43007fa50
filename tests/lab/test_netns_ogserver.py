"""The netns lab driven through the ogServer facade, as ogCLI would drive an OpenGnSys server:
from inside the lab network, list the scope tree and the connected clients, wake them, restore
an image to the classroom, and read each client's result and status — the real service, agents
restoring onto loop disks over real SMB.  The restore asked for as ``UNICAST`` (OpenGnSys's
UNICAST-CACHE) reaches ogLab's decision core: the computer without a CACHE falls back to
UNICAST-DIRECT, exactly as through ``/api/v1``.  Under a minute as root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ogsim.lab.manifest import Manifest
from ogsim.lab.netns.backend import LabOptions, _halt, build
from tests.lab.test_netns import leftovers, scenario

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
OGSERVER_PORT = 8888


def test_ogcli_calls_restore_a_namespace_classroom(tmp_path: Path) -> None:
    # the site's operation is not run: it only makes the lab build the image "ubu"
    unused = {"at": 0, "restore": {"image": "ubu", "method": "UNICAST-CACHE", "to": "all"}}
    sc = scenario([unused], count=2, overrides={"pc02": {"cache": "none"}})
    run_dir = tmp_path / "lab"
    run_dir.mkdir(parents=True)
    manifest = Manifest(run_dir)
    with manifest.owned():
        lab = build(sc, run_dir, manifest, LabOptions(ogserver_port=OGSERVER_PORT))
        try:
            token = (run_dir / "admin.token").read_text().strip()
            url = f"http://{lab.server.address}:{OGSERVER_PORT}"
            argv = [sys.executable, "-m", "tests.lab.ogcli_stand_in", url, token, "ubu", "UNICAST"]
            done = subprocess.run(
                lab.repo.exec_argv(argv), capture_output=True, text=True, timeout=150,
                env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            out = json.loads(done.stdout)
            assert lab.console is not None
            op = lab.console.status(1)
        finally:
            _halt(lab)
    prefixes = {
        line.split('"name": "')[1].split("-")[0]
        for line in (run_dir / "manifest.destroyed").read_text().splitlines()
        if '"kind": "netns"' in line
    }
    assert not leftovers(prefixes), "namespaces left behind"
    (center,) = out["scopes"]["scope"]
    (room,) = center["scope"]
    assert room["name"] == "aula1" and room["type"] == "room"
    assert [(pc["name"], pc["ip"]) for pc in room["scope"]] == [
        ("pc01", "10.0.1.11"), ("pc02", "10.0.1.12")
    ]  # fmt: skip
    assert [(c["addr"], c["state"]) for c in out["clients_before"]] == [
        ("10.0.1.11", "OPG"), ("10.0.1.12", "OPG")
    ]  # fmt: skip
    assert out["wol"] == 200 and out["restore"] == 200
    assert "BSY" in out["states_seen"]  # the restore was seen running
    records = {r["name"]: r for r in op["records"]}
    messages = {n: (r["status"], r["code"], r["message"]) for n, r in records.items()}
    assert [(c["addr"], c["state"], c["last_cmd"]["result"]) for c in out["clients_after"]] == [
        ("10.0.1.11", "OPG", "success"), ("10.0.1.12", "OPG", "success")
    ], messages  # fmt: skip
    assert out["info"]["name"] == "pc01" and out["info"]["ip"] == "10.0.1.11"
    assert records["pc01"]["status"] == "ok" and records["pc02"]["status"] == "ok"
    assert records["pc01"]["method_used"] == "UNICAST-CACHE"
    assert records["pc02"]["method_used"] == "UNICAST-DIRECT" and records["pc02"]["switched"]
    assert all(r["checksum_verified"] for r in records.values()), records
