"""The console's Restore planning, the seed's 35-PC example, and the other console commands."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ogref.console import (
    RepositoryMismatchError,
    images_for_partition,
    plan_boot,
    plan_clone,
    plan_restore,
)
from ogref.core.deploy import Operation
from ogref.core.events import FetchToCache
from ogref.errors import NotOsError, OgErr
from ogref.model import ClientStatus
from ogref.site import CloneSpec, RestoreSpec, build_site, load_site

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "labs" / "seed-aula-35.yaml"


def seed_data() -> dict:
    return yaml.safe_load(SEED.read_text())


def test_seed_example_33_torrent_2_unicast_direct_with_reasons() -> None:
    site = load_site(SEED)
    op = site.operations[0]
    plan = plan_restore(site, op.restore)
    assert plan.by_method() == {"TORRENT-CACHE": 33, "UNICAST-DIRECT": 2}
    switched = {p.computer: p for p in plan.switched}
    assert set(switched) == {"pc34", "pc35"}
    assert (
        "free CACHE space" in switched["pc34"].reasons[0]
        and "error 16" in switched["pc34"].reasons[0]
    )
    assert (
        "no CACHE partition" in switched["pc35"].reasons[0]
        and "error 15" in switched["pc35"].reasons[0]
    )
    for p in switched.values():
        assert any("method switched" in line for line in p.log)  # reason reaches the tracking log
    assert all(p.ok for p in plan.computers)


def test_seed_example_under_opengnsys_1_1_1d_fails_the_two() -> None:
    data = seed_data()
    data["engine"] = {"RESTOREPROTOCOLNOTCACHE": "NONE"}
    site = build_site(data)
    plan = plan_restore(site, site.operations[0].restore)
    codes = {p.computer: p.code for p in plan.computers if not p.ok}
    assert codes == {"pc34": OgErr.CACHESIZE, "pc35": OgErr.NOTCACHE}


def test_deploy_wizard_never_switches() -> None:
    site = load_site(SEED)
    plan = plan_restore(site, site.operations[0].restore, Operation.DEPLOY_WIZARD)
    failed = {p.computer: p for p in plan.computers if not p.ok}
    assert set(failed) == {"pc34", "pc35"} and not plan.switched
    assert "no automatic switch" in failed["pc35"].message


def test_update_cache_phase_then_restore_from_cache() -> None:
    site = load_site(SEED)
    spec = site.operations[0].restore
    night = plan_restore(site, spec, Operation.UPDATE_CACHE)
    assert sum(p.ok for p in night.computers) == 33


def test_multicast_session_nclients_is_the_scope_size() -> None:
    site = load_site(SEED)
    spec = RestoreSpec(image="win7-base", method="MULTICAST", to="pc01-pc10")
    plan = plan_restore(site, spec)
    fetch = next(c for c in plan.computers[0].commands if isinstance(c, FetchToCache))
    assert fetch.multicast is not None and fetch.multicast.nclients == 10
    assert str(fetch.multicast) == "9000:full-duplex:239.194.1.1:70M:10:60"


def test_repository_mismatch_is_refused_naming_both() -> None:
    data = seed_data()
    data["repositories"].append({"name": "repo2", "address": "10.0.0.2", "images": []})
    data["classrooms"][0]["computers"]["overrides"]["pc05"] = {"repository": "repo2"}
    site = build_site(data)
    with pytest.raises(RepositoryMismatchError) as exc:
        plan_restore(site, site.operations[0].restore)
    msg = str(exc.value)
    assert "pc05" in msg and "repo2" in msg and "'repo'" in msg and exc.value.code == OgErr.REPO


def test_image_lists_same_and_different_filesystem() -> None:
    data = seed_data()
    data["repositories"][0]["images"].append(
        {"name": "ubuntu", "filesystem": "EXT4", "data": "4GiB"}
    )
    site = build_site(data)
    same, other = images_for_partition(site, "pc01", 1, 1)
    assert [i.name for i in same] == ["win7-base"] and [i.name for i in other] == ["ubuntu"]
    same2, other2 = images_for_partition(site, "pc01", 1, 2)
    assert [i.name for i in same2] == ["ubuntu"] and [i.name for i in other2] == ["win7-base"]


def test_clone_from_master_partition_and_from_master_cache() -> None:
    site = load_site(SEED)
    plan = plan_clone(site, CloneSpec(master="pc01", disk=1, partition=2, to="pc02-pc05"))
    assert [p.computer for p in plan.computers] == ["pc02", "pc03", "pc04", "pc05"]
    assert all(p.ok and str(p.used) == "MULTICAST-DIRECT" for p in plan.computers)
    data = seed_data()
    data["classrooms"][0]["computers"]["overrides"]["pc01"] = {
        "cache": {"size": "20GiB", "images": ["win7-base"]}
    }
    site2 = build_site(data)
    plan2 = plan_clone(site2, CloneSpec(master="pc01", to="pc02", from_cache="win7-base"))
    assert plan2.computers[0].ok and plan2.image.name == "win7-base"


def test_boot_once_windows_tracked_three_boots_and_permanent_target() -> None:
    site = load_site(SEED)
    pc = site.computer("pc01")
    once = plan_boot(pc, 1, 1, permanent=False)
    assert once.status is ClientStatus.WIN and once.tracked_boots == 3
    linux = plan_boot(pc, 1, 2, permanent=True)
    assert linux.status is ClientStatus.LNX and linux.steps[-1] == "reboot"
    assert ClientStatus.LNX.colour == "maroon" and ClientStatus.OPG.colour == "yellow"


def test_boot_of_a_partition_without_os_is_refused() -> None:
    data = seed_data()
    data["classrooms"][0]["defaults"]["disks"][0]["partitions"].append(
        {"number": 3, "size": "1GiB", "fs": "EMPTY"}
    )
    site = build_site(data)
    with pytest.raises(NotOsError):
        plan_boot(site.computer("pc01"), 1, 3, permanent=False)


def test_plan_cli_prints_the_seed_example(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ogref.cli import app

    result = CliRunner().invoke(app, ["plan", str(SEED), "--json"])
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(result.stdout)
    assert data["summary"] == {"TORRENT-CACHE": 33, "UNICAST-DIRECT": 2}


def test_plan_cli_exit_code_is_the_opengnsys_number() -> None:
    from typer.testing import CliRunner

    from ogref.cli import app

    result = CliRunner().invoke(app, ["plan", str(SEED), "--mode", "deploy"])
    assert result.exit_code in (15, 16)


def test_classrooms_sharing_a_multicast_session_count_all_their_computers() -> None:
    data = seed_data()
    room2 = dict(data["classrooms"][0])
    room2.update(
        name="aula2", subnet="10.0.2.0/24", computers={"count": 5, "prefix": "pb"}, groups=[]
    )
    room3 = dict(
        room2,
        name="aula3",
        subnet="10.0.3.0/24",
        computers={"count": 3, "prefix": "pc3-"},
        multicast="9002:full-duplex:239.194.1.3:70M:35:60",
    )
    data["classrooms"] += [room2, room3]
    site = build_site(data)
    plan = plan_restore(site, RestoreSpec(image="win7-base", method="MULTICAST-DIRECT"))
    sessions = {p.computer: p.request.multicast for p in plan.computers}
    assert sessions["pc01"].nclients == 40 and sessions["pb01"].nclients == 40  # same 9000 session
    assert sessions["pc3-01"].nclients == 3 and sessions["pc3-01"].port == 9002


def test_macs_are_deterministic_across_processes() -> None:
    import subprocess
    import sys

    code = (
        "from ogref.site import load_site; import sys; "
        f"print(load_site({str(SEED)!r}).computer('pc07').mac)"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={"PYTHONHASHSEED": str(i), "PATH": ""},
            check=True,
        ).stdout
        for i in (1, 2)
    }
    assert len(outs) == 1
