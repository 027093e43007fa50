"""The netns lab end to end: real smbd, udpcast, opentracker + libtorrent, agents and server in
namespaces, restoring onto loop disks; every restored partition verified (fsck + file-tree hash).

Small on purpose (2–6 clients, 20–40 MiB images, generous but bounded timeouts): the whole file
runs in about two minutes as root.  Each test checks that nothing is left behind.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ogsim.expect import evaluate
from ogsim.lab.capabilities import CAPABILITIES, probe
from ogsim.lab.netns import LabOptions, destroy, run
from ogsim.results import Results
from ogsim.scenario import build_scenario

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(600)]


def lab_data(
    name: str,
    seed: int,
    images: list[dict[str, Any]],
    partition: dict[str, Any],
    cache: str,
) -> dict[str, Any]:
    """One 3-computer classroom on a 1 Gbit/s LAN, lab scale 0.002 (the netns tests' shape)."""
    return {
        "name": name,
        "seed": seed,
        "repositories": [
            {"name": "repo", "address": "10.0.1.1", "images": images, "hw": {"uplink": "1Gbit"}}
        ],
        "engine": {"RESTOREPROTOCOLNOTCACHE": "UNICAST", "MCASTERRORSESSION": 30},
        "classrooms": [
            {
                "name": "aula1",
                "subnet": "10.0.1.0/24",
                "multicast": "9000:full-duplex:239.194.1.1:90M:3:10",
                "torrent": "peer:2",
                "defaults": {
                    "repository": "repo",
                    "disks": [{"number": 1, "size": "250GiB", "partitions": [partition]}],
                    "cache": {"size": cache, "free": cache},
                    "hw": {"link": {"rate": "1Gbit"}},
                },
                "computers": {"count": 3, "first_host": 11, "overrides": {}},
            }
        ],
        "operations": [],
        "backends": {"netns": {"scale": 0.002}},
    }


BASE = lab_data(
    "lab-test",
    7,
    [{"name": "ubu", "filesystem": "EXT4", "data": "20GiB", "stored": "10GiB"}],
    {"number": 1, "size": "60GiB", "fs": "EXT4"},
    "60GiB",
)


def scenario(ops: list[dict[str, Any]], base: dict[str, Any] = BASE, **changes: Any) -> Any:
    data = copy.deepcopy(base)
    data["operations"] = ops
    room = data["classrooms"][0]
    for key, value in changes.items():
        if key == "overrides":
            room["computers"]["overrides"] = value
        elif key == "count":
            room["computers"]["count"] = value
        elif key in ("multicast", "torrent"):
            room[key] = value
        else:
            data[key] = value
    return build_scenario(data)


def leftovers(prefixes: set[str]) -> list[str]:
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line for line in names.splitlines() if line.split(" ")[0].split("-")[0] in prefixes]


def run_lab(sc: Any, tmp_path: Path, **opts: Any) -> Results:
    results = run(sc, None, tmp_path, LabOptions(**opts))
    manifest = tmp_path / "lab" / "manifest.destroyed"
    prefixes = {
        line.split('"name": "')[1].split("-")[0]
        for line in manifest.read_text().splitlines()
        if '"kind": "netns"' in line
    }
    assert not leftovers(prefixes), "namespaces left behind"
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in loops, "loop devices left behind"
    assert str(tmp_path) not in Path("/proc/mounts").read_text(), "mounts left behind"
    return results


def verified(c: Any) -> bool:
    return any(
        p.name == "verify" and "equal" in p.detail and "fsck clean" in p.detail for p in c.phases
    )


def test_unicast_cache_and_fallback_to_unicast_direct(tmp_path: Path) -> None:
    sc = scenario(
        [{"at": 0, "restore": {"image": "ubu", "method": "UNICAST-CACHE", "to": "all"}}],
        count=2,
        overrides={"pc02": {"cache": "none"}},
    )
    r = run_lab(sc, tmp_path)
    by = {c.name: c for c in r.operations[0].computers}
    assert by["pc01"].status == "ok" and by["pc01"].method_used == "UNICAST-CACHE"
    assert by["pc02"].status == "ok" and by["pc02"].method_used == "UNICAST-DIRECT"
    assert by["pc02"].switched
    assert all(verified(c) for c in by.values())
    assert (tmp_path / "results.json").exists()
    assert (tmp_path / "client-logs" / "10.0.1.11.log").read_text().count("restoreImage") >= 1


def test_multicast_cache_and_direct(tmp_path: Path) -> None:
    sc = scenario(
        [
            {
                "at": 0,
                "restore": {
                    "image": "ubu",
                    "method": "MULTICAST-CACHE",
                    "to": {"computers": ["pc01", "pc02"]},
                },
            },
            {"at": 0, "restore": {"image": "ubu", "method": "MULTICAST-DIRECT", "to": "all"}},
        ],
        overrides={"pc03": {"cache": "none"}},
    )
    r = run_lab(sc, tmp_path)
    first, second = r.operations
    assert [c.method_used for c in first.computers] == ["MULTICAST-CACHE"] * 2
    assert [c.method_used for c in second.computers] == ["MULTICAST-DIRECT"] * 3
    assert all(c.status == "ok" and verified(c) for op in r.operations for c in op.computers)


def test_seed_example_torrent_cache_with_two_fallbacks(tmp_path: Path) -> None:
    sc = scenario(
        [{"at": 0, "restore": {"image": "ubu", "method": "TORRENT-CACHE", "to": "all"}}],
        count=5,
        overrides={"pc04": {"cache": {"size": "60GiB", "free": "4GiB"}}, "pc05": {"cache": "none"}},
        expect=[
            {"all_restored": True},
            {"fallback": {"computers": ["pc04", "pc05"], "method": "UNICAST-DIRECT"}},
            {"count": {"status": "ok", "method": "TORRENT-CACHE", "equals": 3}},
        ],
    )
    r = run_lab(sc, tmp_path)
    checks = evaluate(r, sc.spec.expect)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    assert all(verified(c) for c in r.operations[0].computers)
    seeded = sum(r.metrics.extra["seeder_uploaded"].values())
    assert seeded > 0


def test_client_crash_during_multicast_is_reported_and_others_finish(tmp_path: Path) -> None:
    sc = scenario(
        [{"at": 0, "restore": {"image": "ubu", "method": "MULTICAST-DIRECT", "to": "all"}}],
        multicast="9000:full-duplex:239.194.1.1:20M:3:10",
        faults=[{"at": 3, "client_crash": {"target": ["pc02"]}}],
    )
    t0 = time.monotonic()
    r = run_lab(sc, tmp_path, heartbeat_timeout=6.0)
    by = {c.name: c for c in r.operations[0].computers}
    assert by["pc02"].status == "crashed"
    assert "no heartbeat" in by["pc02"].message
    assert by["pc01"].status == "ok" and by["pc03"].status == "ok"
    assert verified(by["pc01"]) and verified(by["pc03"])
    # udp-sender drops the dead receiver only after --retries-until-drop 65 (~60 s measured)
    assert time.monotonic() - t0 < 420


def _needs(capability: str) -> Any:
    """Skip, naming the kernel option, where this host lacks ``capability``."""
    cap = CAPABILITIES[capability]
    return pytest.mark.skipif(
        os.geteuid() == 0 and not probe().has(capability),
        reason=f"this kernel has no {cap.what} ({cap.kernel_option}; check: {cap.check})",
    )


@pytest.mark.parametrize(
    ("router", "mechanism"),
    [
        pytest.param("smcroute", "smcrouted", marks=_needs("multicast_routing"), id="smcroute"),
        pytest.param("relay", "frames duplicated", marks=_needs("multicast_relay"), id="relay"),
    ],
)
def test_multicast_across_two_subnets(tmp_path: Path, router: str, mechanism: str) -> None:
    data = copy.deepcopy(BASE)
    room2 = copy.deepcopy(data["classrooms"][0])
    room2.update(
        name="aula2", subnet="10.0.2.0/24", multicast="9002:full-duplex:239.194.2.1:90M:2:10"
    )
    room2["computers"] = {"count": 2, "first_host": 11, "prefix": "pcb"}
    data["classrooms"][0]["computers"]["count"] = 1
    data["classrooms"] = [data["classrooms"][0], room2]
    data["operations"] = [
        {
            "at": 0,
            "restore": {"image": "ubu", "method": "MULTICAST-DIRECT", "to": {"classroom": "aula2"}},
        }
    ]
    sc = build_scenario(data)
    r = run_lab(sc, tmp_path, multicast_router=router)
    comps = r.operations[0].computers
    assert len(comps) == 2
    assert all(c.status == "ok" and verified(c) for c in comps), [c.message for c in comps]
    assert any(mechanism in e.text for e in r.events)
    assert r.host is not None and any(mechanism in n for n in r.host.notes)
    if router == "relay":  # the session crossed through the relay, not some other way
        relayed = next(n for n in r.host.notes if "frames duplicated" in n)
        assert int(relayed.split("relay: ")[1].split()[0]) > 1000


def test_a_routed_classroom_without_multicast_routing_fails_with_60(tmp_path: Path) -> None:
    # network.router.multicast: false — the session must not reach aula2 by any means.  Two
    # receivers: udp-sender sends point-to-point (unicast, routed) to a lone receiver
    data = copy.deepcopy(BASE)
    room2 = copy.deepcopy(data["classrooms"][0])
    room2.update(
        name="aula2", subnet="10.0.2.0/24", multicast="9002:full-duplex:239.194.2.1:90M:2:10"
    )
    room2["computers"] = {"count": 2, "first_host": 11, "prefix": "pcb"}
    data["classrooms"][0]["computers"]["count"] = 1
    data["classrooms"] = [data["classrooms"][0], room2]
    data["engine"]["MCASTERRORSESSION"] = 8
    data["engine"]["MCASTWAIT"] = 5
    data["network"] = {"router": {"multicast": False}}
    data["operations"] = [
        {
            "at": 0,
            "restore": {"image": "ubu", "method": "MULTICAST-DIRECT", "to": {"classroom": "aula2"}},
        }
    ]
    r = run_lab(build_scenario(data), tmp_path)
    comps = r.operations[0].computers
    assert len(comps) == 2
    for c in comps:
        assert c.status == "failed" and c.code == 60, (c.status, c.code, c.message)
        assert "never reached this computer" in c.message
    assert r.host is not None and any("unicast only" in n for n in r.host.notes)


def test_destroy_cleans_a_killed_run(tmp_path: Path) -> None:
    sc_file = tmp_path / "sc.yaml"
    import yaml

    data = copy.deepcopy(BASE)
    data["operations"] = [
        {"at": 0, "restore": {"image": "ubu", "method": "UNICAST-DIRECT", "to": "all"}}
    ]
    sc_file.write_text(yaml.safe_dump(data))
    code = (
        "import sys, os, signal; from pathlib import Path;"
        "from ogsim.scenario import load_scenario; from ogsim.lab.netns import backend;"
        "orig = backend.execute;"
        "backend.execute = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL);"
        f"backend.run(load_scenario('{sc_file}'), None, Path('{tmp_path / 'out'}'))"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=300, check=False)
    assert done.returncode == -9
    run_dir = tmp_path / "out" / "lab"
    assert (run_dir / "manifest.jsonl").exists()
    errors = destroy(tmp_path / "out")
    assert errors == []
    text = (run_dir / "manifest.destroyed").read_text()
    prefixes = {
        line.split('"name": "')[1].split("-")[0]
        for line in text.splitlines()
        if '"kind": "netns"' in line
    }
    assert not leftovers(prefixes)
    assert (
        str(tmp_path)
        not in subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    )
    for line in text.splitlines():
        if '"kind": "process_group"' in line:
            pid = int(line.split('"pid": ')[1].split(",")[0])
            assert (
                not Path(f"/proc/{pid}").exists()
                or "zombie" in Path(f"/proc/{pid}/status").read_text()
            )


def test_share_needs_the_password_and_signing_and_is_read_only_for_clients(tmp_path: Path) -> None:
    import io

    from ogref.errors import OgError
    from ogref.transports.smb import SmbCredentials, SmbShare
    from ogsim.lab.manifest import Manifest
    from ogsim.lab.netns import samba
    from ogsim.lab.netns.topology import Topology

    probe = (
        "import io, sys\n"
        "from ogref.transports.smb import SmbCredentials, SmbShare\n"
        "user, pw, mode = sys.argv[1:4]\n"
        "if mode == 'unsigned':\n"
        "    from smb.SMBConnection import SMBConnection as C\n"
        "    c = C(user, pw, 'c01', 'repo', use_ntlm_v2=True, is_direct_tcp=True,\n"
        "          sign_options=C.SIGN_NEVER)\n"
        "    try:\n"
        "        ok = c.connect('10.0.9.1', 445, timeout=10)\n"
        "        c.getAttributes('ogimages', '/a.img')\n"
        "        print('UNSIGNED-OK' if ok else 'UNSIGNED-REFUSED')\n"
        "    except Exception as e:\n"
        "        print('UNSIGNED-REFUSED', type(e).__name__)\n"
        "    sys.exit(0)\n"
        "try:\n"
        "    s = SmbShare(SmbCredentials('10.0.9.1', user, pw))\n"
        "except Exception as e:\n"
        "    print('LOGIN-REFUSED', e); sys.exit(0)\n"
        "print('SIZE', s.size('/a.img'))\n"
        "if mode == 'write':\n"
        "    try:\n"
        "        s.store('/new.img', io.BytesIO(b'x' * 10)); print('WROTE')\n"
        "    except Exception as e:\n"
        "        print('WRITE-REFUSED', type(e).__name__)\n"
    )
    m = Manifest(tmp_path / "lab")
    with m.owned():
        topo = Topology(m)
        topo.build_switch()
        repo = topo.add_host("repo", "10.0.9.1/24", mcast_router=True)
        cl = topo.add_host("c01", "10.0.9.11/24")
        share = tmp_path / "lab" / "images"
        share.mkdir()
        (share / "a.img").write_bytes(b"0123456789")
        acc = samba.start_smbd(m, repo, share, tmp_path / "lab" / "smb")

        def probe_as(user: str, pw: str, mode: str) -> str:
            return subprocess.run(
                cl.exec_argv([sys.executable, "-c", probe, user, pw, mode]),
                capture_output=True,
                text=True,
                timeout=60,
            ).stdout

        assert "LOGIN-REFUSED" in probe_as("opengnsys", "og", "read")  # no default password
        out = probe_as("opengnsys", acc.reader_password, "write")
        assert "SIZE 10" in out and "WRITE-REFUSED" in out
        assert "WROTE" in probe_as("ogadmin", acc.writer_password, "write")
        assert (share / "new.img").read_bytes() == b"x" * 10
        # signing is required: a client that will not sign is refused, even with the password
        assert "UNSIGNED-REFUSED" in probe_as("opengnsys", acc.reader_password, "unsigned")
    del io, OgError, SmbCredentials, SmbShare


def test_the_lab_tells_its_stages_and_each_computers_progress(tmp_path: Path) -> None:
    from ogsim.progress import ComputerEvent, Event, OperationEvent, StageEvent

    got: list[Event] = []
    data = copy.deepcopy(BASE)
    data["classrooms"][0]["defaults"]["hw"] = {"link": {"rate": "100Mbit"}}  # seconds per stage
    sc = scenario(
        [{"at": 0, "restore": {"image": "ubu", "method": "UNICAST-CACHE", "to": "all"}}],
        base=data,
        count=2,
    )
    r = run(sc, None, tmp_path, LabOptions(emit=got.append))
    assert all(c.status == "ok" for c in r.operations[0].computers)
    stages = [e.stage for e in got if isinstance(e, StageEvent)]
    for stage in ("network", "services", "images", "agents", "run"):
        assert stage in stages, stages
    ops = [e for e in got if isinstance(e, OperationEvent)]
    assert ops[0].text == "restore ubu UNICAST-CACHE → all (2 computers)"
    assert ops[-1].state == "ended"
    for name in ("pc01", "pc02"):
        evs = [e for e in got if isinstance(e, ComputerEvent) and e.name == name]
        seen = {e.stage for e in evs}
        assert {"fetch", "restore"} <= seen, seen  # what the agent reported with its heartbeats
        assert any(e.stage == "fetch" and 0 < e.done <= e.total for e in evs), evs
        assert evs[-1].final and evs[-1].code == 0
