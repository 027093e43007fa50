"""The site YAML as an import/export format of the database: every lab and scenario site
survives import → export → build unchanged, export → import → export is a fixed point,
imports replace the configuration but keep history, users and live state, errors name the
file and the YAML path."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from ogref.errors import ConfigError
from ogref.service import db
from ogref.service.db import Database
from ogref.service.site_io import export_site, import_site, load_site
from ogref.service.store import (
    NewLogLine,
    NewRecord,
    append_logs,
    create_operation,
    set_status,
    unfinished_operations,
)
from ogref.site import Site, SiteSpec, build_site
from tests.postgres import PostgresServer

from .conftest import BACKENDS, SITE, TEMPLATE

SafeDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when it is there
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ROOT = Path(__file__).resolve().parents[3]
SITE_FILES = sorted([*ROOT.glob("labs/*.yaml"), *ROOT.glob("scenarios/*.yaml")])


def site_part(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(), Loader=SafeLoader)
    return {k: v for k, v in data.items() if k in SiteSpec.model_fields}


def assert_same_site(got: Site, want: Site) -> None:
    """Equal Sites; when not, the first field that differs is named."""
    if got == want:
        return
    assert got.repositories == want.repositories
    assert got.repository_hw == want.repository_hw
    assert got.policy == want.policy
    assert [ou.name for ou in got.org_units] == [ou.name for ou in want.org_units]
    for g, w in zip(got.classrooms, want.classrooms, strict=True):
        assert g.computers == w.computers, g.name
        assert g == w
    assert got.hw == want.hw
    assert got.operations == want.operations
    assert got == want


def round_trip(database: Database, data: dict[str, Any], source: str) -> dict[str, Any]:
    """Import ``data``, export it: the export builds the same Site as ``data`` and importing
    it changes nothing (the second export is the first)."""
    want = build_site(data, source=source)
    with database.transaction() as s:
        assert_same_site(import_site(s, data, source=source), want)
    with database.reading() as s:
        exported = export_site(s)
    text = yaml.dump(exported, Dumper=SafeDumper, sort_keys=False)
    assert yaml.load(text, Loader=SafeLoader) == exported  # plain YAML, read back the same
    assert_same_site(build_site(exported, source="export"), want)
    with database.transaction() as s:
        import_site(s, exported, source="export")
        assert export_site(s) == exported
    return exported


def test_there_are_sites_to_round_trip() -> None:
    assert len(SITE_FILES) >= 20


@pytest.mark.parametrize("path", SITE_FILES, ids=lambda p: p.name)
def test_site_files_round_trip(database: Database, path: Path) -> None:
    round_trip(database, site_part(path), str(path))


def test_a_change_in_the_database_shows_in_the_site(site_db: Database) -> None:
    """load_site reads the tables (not a copy of the imported file)."""
    with site_db.transaction() as s:
        s.execute(update(db.Computer).where(db.Computer.name == "pc03").values(ip="10.0.1.99/24"))
        s.execute(update(db.Image).values(checksum="0" * 32))
    with site_db.reading() as s:
        site = load_site(s)
        assert site == build_site(export_site(s))
    assert site.computer("pc03").ip == "10.0.1.99/24"
    assert site.find_image("win10").checksum == "0" * 32


def test_export_is_compact_and_readable(site_db: Database) -> None:
    with site_db.reading() as s:
        out = export_site(s)
    room = out["classrooms"][0]
    assert room["defaults"]["cache"] == {
        "size": "20GiB",
        "free": "16GiB",
        "images": [],
        "disk": 1,
        "partition": 4,
    }
    assert room["groups"] == [{"name": "fila1", "members": ["pc01", "pc02"]}]
    assert room["computers"][0] == {
        "name": "pc01",
        "ip": "10.0.1.11/24",
        "mac": "52:54:00:60:00:00",
    }
    assert out["repositories"][0]["images"][0]["data"] == "8GiB"


def test_computers_differing_from_the_most_common_are_overrides(database: Database) -> None:
    data = site_part(ROOT / "labs" / "seed-aula-35.yaml")
    out = round_trip(database, data, "seed")
    room = out["classrooms"][0]
    assert room["defaults"]["cache"]["free"] == "18GiB"
    assert room["groups"][0]["members"] == ["pc01-pc12"]
    overrides = {c["name"]: c for c in room["computers"] if set(c) - {"name", "ip", "mac"}}
    assert set(overrides) == {"pc34", "pc35"}
    assert overrides["pc35"]["cache"] == "none"


# --------------------------------------------------------------------------- what an import keeps


CHANGED = {
    **SITE,
    "classrooms": [
        {**SITE["classrooms"][0], "computers": {"count": 3}},  # pc04 is gone
        {**SITE["classrooms"][1], "name": "aula3"},  # aula2 renamed
    ],
}


def test_import_replaces_configuration_but_keeps_history_users_and_state(
    site_db: Database,
) -> None:
    with site_db.transaction() as s:
        user = db.User(name="ana", password_hash="h", role="teacher")
        s.add(user)
        s.flush()
        for room in s.scalars(select(db.Classroom)):
            s.add(db.UserClassroom(user_id=user.id, classroom_id=room.id))
        pc01 = s.scalars(select(db.Computer).where(db.Computer.name == "pc01")).one()
        pc01.public_key, pc01.seq = b"\x01" * 32, 41
        set_status(s, "pc01", "OPG", db.utcnow())
        op = create_operation(
            s, "restore", {"image": "win10"}, [NewRecord("pc01"), NewRecord("pc04")]
        )
        append_logs(s, [NewLogLine("pc01", "a", operation_id=op.id), NewLogLine("pc04", "b")])
    with site_db.transaction() as s:
        import_site(s, CHANGED, source="changed")
    with site_db.reading() as s:
        assert_same_site(load_site(s), build_site(CHANGED))
        pc01 = s.scalars(select(db.Computer).where(db.Computer.name == "pc01")).one()
        assert (pc01.public_key, pc01.seq, pc01.status) == (b"\x01" * 32, 41, "OPG")
        assert pc01.last_seen is not None
        assert s.scalars(select(db.User.name)).all() == ["ana"]
        rooms = s.scalars(
            select(db.Classroom.name).join(db.UserClassroom).order_by(db.Classroom.name)
        ).all()
        assert rooms == ["aula1"]  # aula2 is gone, aula3 is new
        [kept] = unfinished_operations(s)
        assert [r.computer for r in kept.records] == ["pc01", "pc04"]
        gone = s.scalars(
            select(db.OperationRecord).where(db.OperationRecord.computer_name == "pc04")
        ).one()
        assert gone.computer_id is None
        assert s.scalars(select(db.LogLine.text)).all() == ["a"]  # pc04's log went with it


def test_image_versions(site_db: Database) -> None:
    """The site names the current version; others stay as history (older) or are marked
    deleted (newer ones, other names)."""

    def site_with(*images: dict[str, Any]) -> dict[str, Any]:
        return {
            **SITE,
            "operations": [],
            "repositories": [{**SITE["repositories"][0], "images": list(images)}],
        }

    def versions(s: Any) -> list[tuple[str, int, bool]]:
        rows = s.scalars(select(db.Image).order_by(db.Image.name, db.Image.revision))
        return [(i.name, i.revision, i.deleted_at is None) for i in rows]

    with site_db.transaction() as s:
        s.add(
            db.Image(
                repository_id=s.scalars(select(db.Repository.id)).one(),
                name="win10",
                revision=2,
                filesystem="NTFS",
                data_size=9 * 2**30,
                stored_size=5 * 2**30,
                compressor="ZSTD",
                tool="PARTCLONE",
                checksum="f" * 32,
            )
        )  # what a create would add
    with site_db.reading() as s:
        assert load_site(s).find_image("win10").revision == 2
    with site_db.transaction() as s:
        import_site(
            s,
            site_with(
                {"name": "win10", "data": "8GiB", "revision": 3}, {"name": "ubu", "data": "4GiB"}
            ),
        )
        assert versions(s) == [
            ("ubu", 1, True),
            ("win10", 1, True),
            ("win10", 2, True),
            ("win10", 3, True),
        ]
    with site_db.transaction() as s:
        import_site(s, site_with({"name": "win10", "data": "8GiB"}))
        assert versions(s) == [
            ("ubu", 1, False),
            ("win10", 1, True),
            ("win10", 2, False),
            ("win10", 3, False),
        ]
        assert [i.name for i in load_site(s).repositories[0].images] == ["win10"]
    with site_db.transaction() as s:
        import_site(
            s,
            site_with(
                {"name": "ubu", "data": "4GiB"}, {"name": "win10", "data": "8GiB", "revision": 2}
            ),
        )
        assert versions(s) == [
            ("ubu", 1, True),
            ("win10", 1, True),
            ("win10", 2, True),
            ("win10", 3, False),
        ]
        images = load_site(s).repositories[0].images
    assert [(i.name, i.revision) for i in images] == [("ubu", 1), ("win10", 2)]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("data", "path", "reason"),
    [
        (
            {**SITE, "classrooms": [{**SITE["classrooms"][0], "subnet": "10.0.1.0/33"}]},
            "classrooms.0.subnet",
            "",
        ),
        ({**SITE, "clasrooms": []}, "clasrooms", "unknown key"),
        (
            {
                **SITE,
                "classrooms": [SITE["classrooms"][0], {**SITE["classrooms"][1], "name": "aula1"}],
            },
            "classrooms.1.name",
            "defined twice",
        ),
        (
            {**SITE, "repositories": [*SITE["repositories"], SITE["repositories"][0]]},
            "repositories.1.name",
            "defined twice",
        ),
        (
            {
                **SITE,
                "classrooms": [{**SITE["classrooms"][0], "groups": [{"name": "g"}, {"name": "g"}]}],
            },
            "classrooms.0.groups.1.name",
            "defined twice",
        ),
        (
            {
                **SITE,
                "classrooms": [
                    {**SITE["classrooms"][0], "defaults": {"hw": {"bought": dt.date(2020, 1, 1)}}}
                ],
            },
            "classrooms.0",
            "hw of pc01 is not plain data",
        ),
        (
            {**SITE, "classrooms": [{**SITE["classrooms"][1], "groups": [{"name": "x" * 101}]}]},
            "classrooms.0.groups.0.name",
            "longer than 100",
        ),
    ],
)
def test_bad_sites_are_refused_with_file_and_path(
    site_db: Database, data: dict[str, Any], path: str, reason: str
) -> None:
    with site_db.reading() as s:
        before = export_site(s)
    with pytest.raises(ConfigError) as err, site_db.transaction() as s:
        import_site(s, data, source="bad.yaml")
    assert (err.value.source, err.value.path) == ("bad.yaml", path)
    assert reason in err.value.reason
    with site_db.reading() as s:
        assert export_site(s) == before


def test_an_empty_database_exports_an_empty_site(database: Database) -> None:
    with database.reading() as s:
        out = export_site(s)
        assert load_site(s).computers == ()
    assert out["classrooms"] == [] and out["repositories"] == []


# --------------------------------------------------------------------------- generated sites

NAMES = st.sampled_from(["a", "b", "c", "d"])
SIZES = st.integers(min_value=1, max_value=2**31).map(lambda n: n * 512)


@st.composite
def images(draw: st.DrawFn) -> dict[str, Any]:
    data = draw(st.integers(min_value=2**20, max_value=2**30))
    image: dict[str, Any] = {
        "name": draw(st.sampled_from(["win10", "ubuntu", "ou1/lab"])),
        "data": data,
    }
    if draw(st.booleans()):
        image["stored"] = draw(st.integers(min_value=1, max_value=data))
    if draw(st.booleans()):
        image["revision"] = draw(st.integers(min_value=1, max_value=4))
    image["filesystem"] = draw(st.sampled_from(["NTFS", "ext4", "vfat", "LINUX-SWAP"]))
    image["compressor"] = draw(st.sampled_from(["ZSTD", "lzop", "gzip", "none"]))
    image["os"] = draw(st.sampled_from(["", "Windows 10", "Ubuntu 24.04"]))
    return image


@st.composite
def layers(draw: st.DrawFn, image_names: list[str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    if draw(st.booleans()):
        parts = draw(st.lists(SIZES, min_size=0, max_size=3))
        layer["disks"] = [
            {
                "number": 1,
                "size": sum(parts) + draw(SIZES),
                "table": draw(st.sampled_from(["MSDOS", "GPT"])),
                "partitions": [
                    {
                        "number": i + 1,
                        "size": p,
                        "fs": draw(st.sampled_from(["NTFS", "EXT4", "EMPTY"])),
                    }
                    for i, p in enumerate(parts)
                ],
            }
        ]
    if draw(st.booleans()):
        cached = draw(st.lists(st.sampled_from(image_names), unique=True)) if image_names else []
        entries: list[Any] = [
            n
            if draw(st.booleans())
            else {"name": n, "state": draw(st.sampled_from(["current", "stale", "partial"]))}
            for n in cached
        ]
        layer["cache"] = {
            "size": 64 * 2**30,
            "used": draw(st.integers(0, 2**30)),
            "images": entries,
        }
    elif draw(st.booleans()):
        layer["cache"] = "none"
    if draw(st.booleans()):
        layer["profile"] = draw(st.sampled_from(["default", "fast", "uefi"]))
    if draw(st.booleans()):
        layer["windows_needs_reboot"] = draw(st.booleans())
    if draw(st.booleans()):
        layer["hw"] = draw(
            st.dictionaries(
                st.sampled_from(["disk", "link", "boot"]),
                st.one_of(
                    st.text(max_size=3), st.dictionaries(NAMES, st.integers(0, 9), max_size=2)
                ),
                max_size=2,
            )
        )
    return layer


@st.composite
def sites(draw: st.DrawFn) -> dict[str, Any]:
    repo_images = draw(st.lists(images(), max_size=3, unique_by=lambda i: i["name"]))
    names = [i["name"] for i in repo_images]
    repos: list[dict[str, Any]] = [{"name": "repo", "address": "10.0.0.1", "images": repo_images}]
    if draw(st.booleans()):
        repos.append(
            {
                "name": "repo2",
                "address": "10.0.0.2",
                "hw": {"uplink": "10Gbit"},
                "multicast_fec": "none",
            }
        )
    rooms = []
    for i in range(draw(st.integers(1, 3))):
        room: dict[str, Any] = {
            "name": f"room{i}",
            "org_unit": draw(st.sampled_from(["ou-b", "ou-a"])),
            "subnet": f"10.{i}.0.0/24",
            "defaults": draw(layers(names)),
        }
        if draw(st.booleans()):
            count = draw(st.integers(1, 4))
            pcs = [f"r{i}pc{k:02d}" for k in range(1, count + 1)]
            overrides = draw(st.dictionaries(st.sampled_from(pcs), layers(names), max_size=2))
            room["computers"] = {
                "count": count,
                "prefix": f"r{i}pc",
                "first_host": draw(st.integers(1, 100)),
                "overrides": overrides,
            }
        else:
            pcs = [f"m{i}x{k}" for k in range(draw(st.integers(1, 4)))]
            room["computers"] = [
                {
                    "name": n,
                    **draw(layers(names)),
                    **({"ip": f"10.{i}.0.{200 + k}/24"} if draw(st.booleans()) else {}),
                }
                for k, n in enumerate(pcs)
            ]
        room["groups"] = [
            {
                "name": f"g{j}",
                "members": draw(st.lists(st.sampled_from(pcs), unique=True)),
                **draw(layers(names)),
            }
            for j in range(draw(st.integers(0, 2)))
        ]
        use_repo2: bool = draw(st.booleans())
        if repos[1:] and use_repo2:
            room["defaults"]["repository"] = "repo2"
        rooms.append(room)
    site: dict[str, Any] = {
        "repositories": repos,
        "engine_preset": draw(
            st.sampled_from(["oglab", "opengnsys-1.1.1d", "opengnsys-1.1.1d-strict"])
        ),
        "engine": draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "RESTOREPROTOCOLNOTCACHE": st.sampled_from(["NONE", "UNICAST", "MULTICAST"]),
                    "ACTIONCACHEFULL": st.sampled_from(["NONE", "FORMAT", "DELETE"]),
                    "IMGCOMP": st.sampled_from(["lzop", "zstd"]),
                    "OGWINCHKDISK": st.booleans(),
                    "OGSLEEP": st.integers(0, 9),
                },
            )
        ),
        "classrooms": rooms,
    }
    if names:
        site["operations"] = [
            {
                "at": draw(st.floats(0, 1e6, allow_nan=False)),
                "restore": {"image": draw(st.sampled_from(names)), "to": {"classroom": "room0"}},
            }
            for _ in range(draw(st.integers(0, 2)))
        ]
    return site


@pytest.fixture(scope="module", params=BACKENDS)
def shared_db(request: pytest.FixtureRequest) -> Iterator[Database]:
    """One database for every generated site (each import replaces the previous site), on
    each backend."""
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        name = "generated_sites"
        d = Database(server.create_database(name, TEMPLATE))
        yield d
        d.close()
        server.drop_database(name)
        return
    migrated: Path = request.getfixturevalue("migrated")
    path = request.getfixturevalue("tmp_path_factory").mktemp("generated") / "sites.db"
    shutil.copyfile(migrated, path)
    d = Database(f"sqlite:///{path}")
    yield d
    d.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=sites())
def test_generated_sites_round_trip(shared_db: Database, data: dict[str, Any]) -> None:
    """Each generated site replaces the previous one in the same database."""
    round_trip(shared_db, data, "generated")
    with shared_db.reading() as s:
        assert s.scalar(select(func.count()).select_from(db.Computer)) == len(
            build_site(data).computers
        )
