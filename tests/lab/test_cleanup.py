"""Cleanup that survives every exit: a namespace lab killed by SIGINT, SIGTERM or SIGKILL
(then ``ogsim destroy``) leaves nothing — namespaces, links, nft tables, loop devices, mounts,
processes, its cgroup; a topology that fails half-way is removed; an agent stopped in the middle
of a restore wipes the half-written filesystem's signatures.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ogsim.lab import cgroup
from ogsim.lab.netns import LabOptions, run
from ogsim.lab.netns import topology as topo_mod
from ogsim.scenario import build_scenario
from tests.lab.test_netns import BASE, lab_data

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(400)]

OGSIM = str(Path(sys.executable).parent / "ogsim")
ROOT = Path(__file__).resolve().parents[2]


def _scenario(tmp_path: Path, method: str = "UNICAST-DIRECT") -> Path:
    data = lab_data(
        "cleanup",
        11,
        [{"name": "ubu", "filesystem": "EXT4", "data": "40GiB", "stored": "30GiB"}],
        {"number": 1, "size": "80GiB", "fs": "EXT4"},
        "60GiB",
    )
    data["classrooms"][0]["defaults"]["hw"] = {"link": {"rate": "100Mbit"}}
    data["operations"] = [{"at": 0, "restore": {"image": "ubu", "method": method, "to": "all"}}]
    path = tmp_path / "cleanup.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _owned(run_dir: Path) -> dict[str, list[str]]:
    """What the run recorded, by kind (from the manifest, destroyed or not)."""
    out: dict[str, list[str]] = {}
    for name in ("manifest.jsonl", "manifest.destroyed"):
        path = run_dir / name
        if path.exists():
            for line in path.read_text().splitlines():
                obj = json.loads(line)
                if "kind" in obj:
                    out.setdefault(obj["kind"], []).append(obj["name"])
    return out


def _leftovers(out: Path) -> list[str]:
    lab = out / "lab"
    owned = _owned(lab)
    left = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names = {line.split()[0] for line in netns.splitlines() if line.strip()}
    left += [f"netns {n}" for n in owned.get("netns", []) if n in names]
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    left += [f"loop {line}" for line in loops.splitlines() if str(out) in line]
    mounts = Path("/proc/mounts").read_text()
    left += [f"mount {line}" for line in mounts.splitlines() if str(out) in line]
    left += [f"cgroup {c}" for c in owned.get("cgroup", []) if Path(c).exists()]
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(out) in cmd and "pytest" not in cmd:
            left.append(f"process {pid}: {cmd[:120]}")
    return left


def _start(scenario: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [OGSIM, "run", str(scenario), "--backend", "netns", "--out", str(out), "-q"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_transferring(out: Path, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Until every agent runs and the repository serves (the lab is fully built)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owned = _owned(out / "lab")
        agents = [n for n in owned.get("process_group", []) if n.startswith("agent-")]
        if len(agents) == 3:
            time.sleep(3)  # the operation is submitted and its transfers start
            return
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.2)
    raise AssertionError("the lab never finished building")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=str)
def test_a_killed_run_leaves_nothing(tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "out"
    proc = _start(_scenario(tmp_path), out)
    _wait_transferring(out, proc)
    assert _owned(out / "lab").get("cgroup"), "the run made no cgroup"
    proc.send_signal(sig)
    proc.wait(120)
    if sig == signal.SIGKILL:
        assert _leftovers(out), "SIGKILL should leave the lab for ogsim destroy"
        done = subprocess.run([OGSIM, "destroy", str(out)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    else:
        assert proc.returncode == 2, proc.stderr.read().decode() if proc.stderr else ""
    assert _leftovers(out) == []
    assert (out / "lab" / "manifest.destroyed").exists()


def test_a_topology_that_fails_half_way_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = topo_mod.sh
    calls = {"veth": 0}

    def failing(argv: Any, **kw: Any) -> str:
        if "veth" in argv:
            calls["veth"] += 1
            if calls["veth"] == 3:
                raise topo_mod.TopologyError("injected: link add failed")
        return real(argv, **kw)

    monkeypatch.setattr(topo_mod, "sh", failing)
    sc = build_scenario(
        {**BASE, "operations": [{"at": 0, "restore": {"image": "ubu", "to": "all"}}]}
    )
    with pytest.raises(topo_mod.TopologyError, match="injected"):
        run(sc, None, tmp_path / "out", LabOptions())
    assert _leftovers(tmp_path / "out") == []
    assert _owned(tmp_path / "out" / "lab")["netns"], "nothing was built before the failure"


def test_a_namespace_of_another_run_is_never_adopted(tmp_path: Path) -> None:
    from ogsim.lab.manifest import Manifest

    manifest = Manifest(tmp_path / "run")
    topo = topo_mod.Topology(manifest, prefix="ogtest" + os.urandom(2).hex())
    other = f"{topo.prefix}-sw"
    subprocess.run(["ip", "netns", "add", other], check=True)
    try:
        with pytest.raises(topo_mod.TopologyError, match="exists already"):
            topo.build_switch()
        manifest.destroy()
        assert Path(f"/run/netns/{other}").exists(), "destroy removed a namespace not ours"
    finally:
        subprocess.run(["ip", "netns", "del", other], check=False)


def test_the_cgroup_catches_a_process_that_escaped_its_group(tmp_path: Path) -> None:
    from ogsim.lab.manifest import Manifest

    if cgroup.cgroup2_root() is None:
        pytest.skip("no writable cgroup2 mount on this host")
    manifest = Manifest(tmp_path / "run")
    cg = cgroup.create(manifest, "oglab-test-" + os.urandom(3).hex())
    assert cg is not None
    # a daemon that double-forks into a new session, unrecorded (as samba-dcerpcd does)
    script = "import os,time\nif os.fork(): os._exit(0)\nos.setsid()\ntime.sleep(300)"
    subprocess.run(cgroup.joined([sys.executable, "-c", script], cg), check=True)
    time.sleep(0.3)
    escaped = cgroup.members(cg)
    assert len(escaped) == 1
    manifest.destroy()
    assert not cg.exists()
    assert not Path(f"/proc/{escaped[0]}").exists() or (
        "zombie" in Path(f"/proc/{escaped[0]}/status").read_text()
    )


def test_an_agent_stopped_mid_restore_wipes_the_half_written_filesystem(tmp_path: Path) -> None:
    from ogref.runtime.loopdev import partition_path
    from ogsim.lab.manifest import Manifest
    from ogsim.lab.netns import backend

    data = yaml.safe_load(_scenario(tmp_path).read_text())
    data["classrooms"][0]["computers"]["count"] = 1
    sc = build_scenario(data)
    opts = LabOptions()
    manifest = Manifest(tmp_path / "run")
    with manifest.owned():
        lab = backend.build(sc, tmp_path / "run", manifest, opts)
        assert lab.console is not None
        deadline = time.monotonic() + 60
        while lab.console.clients()[0]["status"] == "OFF":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        lab.console.submit(0)
        agent = lab.agents["pc01"]
        deadline = time.monotonic() + 120
        while True:  # until the partition is being written
            act = lab.console.clients()[0].get("activity") or {}
            if act.get("stage") == "restore" and int(act.get("done") or 0) > 1 << 20:
                break
            assert time.monotonic() < deadline, act
            time.sleep(0.05)
        os.kill(agent.pid, signal.SIGTERM)  # the agent only, not its pipeline
        agent.wait(60)
        node = partition_path(lab.disks["pc01"].device, 1)
        probe = subprocess.run(["wipefs", "--no-act", node], capture_output=True, text=True)
        assert probe.stdout.strip() == "", f"signatures left on {node}:\n{probe.stdout}"
        assert agent.returncode == 128 + signal.SIGTERM
