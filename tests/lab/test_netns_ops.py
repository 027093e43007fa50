"""The netns lab's createImage, clone from a MASTER and boot once / boot target, end to end:
real partclone + compressor into the repository share (writer account, smbnetfs), restores of
the created image, a MASTER's multicast stream, and the emulated boot reported to the server.

Small on purpose (2–3 clients, 20–40 MiB partitions' data): each test is one lab run of well
under a minute as root.  Each checks that nothing is left behind (see tests/lab/test_netns.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ogsim.expect import evaluate
from tests.lab.test_netns import lab_data, run_lab, verified
from tests.lab.test_netns import scenario as lab_scenario

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(600)]

BASE = lab_data(
    "lab-ops-test",
    11,
    [
        {"name": "ubu", "filesystem": "EXT4", "data": "15GiB", "stored": "8GiB"},
        {"name": "newos", "filesystem": "EXT4", "data": "15GiB", "stored": "8GiB"},
    ],
    {"number": 1, "size": "30GiB", "fs": "EXT4", "os": "Linux"},
    "40GiB",
)


def scenario(ops: list[dict[str, Any]], **changes: Any) -> Any:
    return lab_scenario(ops, BASE, **changes)


def by_name(op: Any) -> dict[str, Any]:
    return {c.name: c for c in op.computers}


def test_create_then_restore_the_created_image_by_torrent(tmp_path: Path) -> None:
    # "newos" exists (made by the lab): re-creating it keeps the old one as .ant, and the
    # repository must serve the new one — sidecars, .torrent, tracker and seeder — at once
    sc = scenario(
        [
            {"at": 0, "create": {"computer": "pc01", "image": "newos", "target": "REPO"}},
            {
                "at": 0,
                "restore": {
                    "image": "newos",
                    "method": "TORRENT-CACHE",
                    "to": {"computers": ["pc02", "pc03"]},
                },
            },
        ]
    )
    r = run_lab(sc, tmp_path)
    made = r.operations[0].computers[0]
    assert made.name == "pc01" and made.status == "ok" and made.code == 0, made.message
    assert made.bytes_moved > 1 << 20
    assert any(p.name == "create" for p in made.phases)
    restored = by_name(r.operations[1])
    for c in restored.values():
        assert c.status == "ok" and c.method_used == "TORRENT-CACHE", c.message
        assert verified(c), c.phases  # the tree of pc01's partition, not the lab's old image
    texts = " ".join(e.text for e in r.events)
    assert "tracker whitelist reloaded" in texts and "new info-hash" in texts
    # the seeder dropped the old version's torrent and seeds the new one (no restart)
    assert "re-created: newos.img.torrent" in (tmp_path / "lab" / "logs" / "seeder.log").read_text()
    share = tmp_path / "lab" / "repo" / "images"
    assert (share / "newos.img.ant").is_file() and (share / "newos.img.torrent").is_file()
    assert (share / "newos.img.info").read_text().strip().endswith("pc01")


def test_failed_create_keeps_the_previous_image_and_reports_16(tmp_path: Path) -> None:
    # pc01's CACHE (32 MiB in the lab) holds "ubu" after the updateCache: no room for a new
    # version of about 0.65 × the partition's data → 16; the cached "ubu" is untouched and a
    # later UNICAST-CACHE restores it from the cache, verified against the lab's image
    sc = scenario(
        [
            {
                "at": 0,
                "update_cache": {
                    "image": "ubu",
                    "method": "UNICAST",
                    "to": {"computers": ["pc01"]},
                },
            },
            {"at": 0, "create": {"computer": "pc01", "image": "ubu", "target": "CACHE"}},
            {
                "at": 0,
                "restore": {
                    "image": "ubu",
                    "method": "UNICAST-CACHE",
                    "to": {"computers": ["pc01"]},
                },
            },
        ],
        overrides={"pc01": {"cache": {"size": "16GiB", "free": "16GiB"}}},
    )
    r = run_lab(sc, tmp_path)
    fetched, failed, again = (op.computers[0] for op in r.operations)
    assert fetched.status == "ok", fetched.message
    assert failed.status == "failed" and failed.code == 16, failed.message
    assert "not enough space in CACHE" in failed.message
    assert again.status == "ok" and again.method_used == "UNICAST-CACHE", again.message
    assert not any(p.name == "fetch" for p in again.phases), "the kept copy must be used"
    assert verified(again)


def test_clone_from_master_to_two_clients_by_multicast(tmp_path: Path) -> None:
    sc = scenario(
        [{"at": 0, "clone": {"master": "pc01", "to": "all", "method": "MULTICAST"}}],
        expect=[
            {"all_restored": True},
            {"method_used": {"method": "MULTICAST-DIRECT"}},
            {"count": {"status": "ok", "equals": 2}},
        ],
    )
    r = run_lab(sc, tmp_path)
    checks = evaluate(r, sc.spec.expect)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    got = by_name(r.operations[0])
    assert sorted(got) == ["pc02", "pc03"]
    for c in got.values():
        assert verified(c), c.phases  # fsck clean + the MASTER's file tree
        assert c.checksum_verified is True  # the stream MD5 equals the MASTER's
        assert c.bytes_moved > 1 << 20
    assert any("MASTER pc01: code 0" in e.text for e in r.events)


def test_boot_once_and_boot_target_report_the_new_hostname(tmp_path: Path) -> None:
    sc = scenario(
        [
            {"at": 0, "clone": {"master": "pc01", "to": "all", "method": "MULTICAST"}},
            {"at": 0, "boot": {"to": {"computers": ["pc02", "pc03"]}}},
            {"at": 0, "boot": {"to": {"computers": ["pc02", "pc03"]}, "permanent": True}},
            {"at": 0, "boot": {"to": {"computers": ["pc01"]}, "partition": 2}},
        ],
        expect=[{"booted": {"operation": 1}}, {"booted": {"operation": 2}}],
    )
    r = run_lab(sc, tmp_path)
    checks = evaluate(r, sc.spec.expect)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    once, target, missing = r.operations[1:]
    for c in once.computers:
        assert "after reboot: OPG" in c.message, c.message  # back in the live client
        assert [p.name for p in c.phases] == ["boot", "reboot"]
    for c in target.computers:
        assert "boot target set" in c.message and "after reboot: LNX" in c.message, c.message
        assert c.os_hostname == c.name
    # a partition that does not exist cannot be booted: the console's plan refuses it (1)
    assert missing.computers[0].status == "failed" and missing.computers[0].code == 1
    assert any("boot emulated" in e.text for e in r.events)
