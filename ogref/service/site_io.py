"""The site YAML as an import/export format of the service database.

:func:`import_site` validates a parsed site mapping exactly as :func:`ogref.site.build_site` does
(errors are its :class:`~ogref.errors.ConfigError`: file, YAML path, reason), then makes the
database's configuration that site: repositories and images, the engine.cfg preset and keys,
organisational units, classrooms, groups and computers, and the site's ``operations:`` list.
Rows are matched by name and updated in place, so what the site file does not describe
survives an import: operation history, tracking logs and OS reports of computers still there,
users and their classroom assignments, each computer's status, credential and replay counter.
Image versions the site does not name are marked deleted, never dropped.

:func:`export_site` writes the database's configuration back as a mapping that
:class:`~ogref.site.SiteSpec` accepts and that builds the same :class:`~ogref.site.Site`
(computers listed one by one with their address, MAC and settings after inheritance; settings
every computer of a classroom shares are given once in its ``defaults``); :func:`load_site`
builds that Site.  Export → import → export is a fixed point.

Not here: YAML text (callers use :func:`ogref.site.read_yaml` and ``yaml.safe_dump``), the
operation history (:mod:`ogref.service.store`), users.

What is stored where: see :mod:`ogref.service.db`; a computer's ``disks`` and ``cache`` columns
hold its resolved ``disks:`` and ``cache:`` in the site schema (sizes in bytes), ``hw`` its merged
``hw:`` mapping; a repository's ``hw`` its ``hw:``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ogref.errors import ConfigError
from ogref.model import Disk
from ogref.model import Image as Img
from ogref.service import db
from ogref.site import CacheSpec, Site, SiteSpec, build_site, expand_names, resolve_computers

SOURCE = "database"
"""The ``source`` of errors and Sites built from the database."""

# values a computer takes when neither the classroom nor the computer says (ogref.site)
_BUILTIN = {"profile": "default", "windows_needs_reboot": True, "hw": {}}
_PER_COMPUTER = ("repository", "disks", "cache", "profile", "windows_needs_reboot", "hw")


# --------------------------------------------------------------------------- import


def import_site(session: Session, data: Any, source: str = "<site>") -> Site:
    """Validate the site mapping ``data`` and make it the database's configuration (in the
    caller's transaction); the built Site.  Raises ConfigError naming ``source`` and the path."""
    site = build_site(data, source=source)
    spec = SiteSpec.model_validate(data)
    _check_fits(spec, site, source)
    layers = {rc.name: rc.layer for room in spec.classrooms for rc in resolve_computers(room)}

    settings = session.get(db.SiteSettings, 1)
    if settings is None:
        settings = db.SiteSettings(id=1)
        session.add(settings)
    settings.engine_preset = spec.engine_preset
    settings.source = source[:1024]
    settings.imported_at = db.utcnow()
    session.execute(delete(db.EngineSetting))
    session.execute(delete(db.SiteOperation))
    session.execute(delete(db.GroupMember))
    session.add_all(
        db.EngineSetting(key=k, value=v, position=i) for i, (k, v) in enumerate(spec.engine.items())
    )
    session.add_all(
        db.SiteOperation(position=i, spec=_plain(op)) for i, op in enumerate(spec.operations)
    )

    repos = _by_name(session, db.Repository)
    for i, r in enumerate(spec.repositories):
        repo_row = repos.get(r.name) or _added(session, repos, db.Repository(name=r.name))
        repo_row.address, repo_row.multicast_fec = r.address, r.multicast_fec
        repo_row.hw, repo_row.position = dict(r.hw), i
    session.flush()
    for repo in site.repositories:
        _import_images(session, repos[repo.name].id, repo.images)

    ous = _by_name(session, db.OrgUnit)
    for i, ou in enumerate(site.org_units):
        ou_row = ous.get(ou.name) or _added(session, ous, db.OrgUnit(name=ou.name))
        ou_row.position = i
    session.flush()

    rooms = _by_name(session, db.Classroom)
    for i, room in enumerate(spec.classrooms):
        room_row = rooms.get(room.name) or _added(session, rooms, db.Classroom(name=room.name))
        room_row.org_unit_id = ous[room.org_unit].id
        room_row.subnet, room_row.multicast, room_row.torrent = (
            room.subnet,
            room.multicast,
            room.torrent,
        )
        room_row.position = i
    session.flush()

    groups = {(g.classroom_id, g.name): g for g in session.scalars(select(db.ComputerGroup))}
    wanted_groups: set[tuple[int, str]] = set()
    for croom in site.classrooms:
        room_id = rooms[croom.name].id
        for i, g in enumerate(croom.groups):
            key = (room_id, g.name)
            wanted_groups.add(key)
            group_row = groups.get(key)
            if group_row is None:
                group_row = groups[key] = db.ComputerGroup(classroom_id=room_id, name=g.name)
                session.add(group_row)
            group_row.position = i
    session.flush()

    pcs = _by_name(session, db.Computer)
    for croom in site.classrooms:
        room_id = rooms[croom.name].id
        for i, pc in enumerate(croom.computers):
            pc_row = pcs.get(pc.name) or _added(session, pcs, db.Computer(name=pc.name))
            layer = layers[pc.name]
            cache = (
                None if layer.no_cache or not isinstance(layer.cache, CacheSpec) else layer.cache
            )
            pc_row.mac, pc_row.ip = pc.mac, pc.ip
            pc_row.classroom_id, pc_row.position = room_id, i
            pc_row.group_id = groups[(room_id, pc.group)].id if pc.group else None
            pc_row.repository_id = repos[pc.repository].id
            pc_row.profile = pc.profile.name
            pc_row.windows_needs_reboot = pc.profile.windows_needs_reboot
            pc_row.disks = [_disk(d) for d in pc.disks.disks]
            pc_row.cache = _full(cache) if cache is not None else None
            pc_row.hw = dict(site.hw.get(pc.name, {}))
    session.flush()
    session.add_all(
        db.GroupMember(group_id=groups[(rooms[r.name].id, g.name)].id, position=i, computer_id=cid)
        for r in site.classrooms
        for g in r.groups
        for i, cid in enumerate(pcs[m].id for m in g.computers)
    )

    # what the site no longer has (history rows keep their names; see ogref.service.db)
    names = {pc.name for pc in site.computers}
    for name, pc_row in pcs.items():
        if name not in names:
            session.delete(pc_row)
    session.flush()
    for key, group_row in groups.items():
        if key not in wanted_groups:
            session.delete(group_row)
    session.flush()
    _drop_missing(session, rooms, {c.name for c in site.classrooms})
    _drop_missing(session, ous, {ou.name for ou in site.org_units})
    _drop_missing(session, repos, {r.name for r in site.repositories})
    session.flush()
    return site


Named = TypeVar("Named", db.Repository, db.OrgUnit, db.Classroom, db.Computer)


def _by_name(session: Session, table: type[Named]) -> dict[str, Named]:
    return {row.name: row for row in session.scalars(select(table))}


def _added(session: Session, rows: dict[str, Named], row: Named) -> Named:
    session.add(row)
    rows[row.name] = row
    return row


def _drop_missing(session: Session, rows: dict[str, Named], keep: set[str]) -> None:
    for name, row in rows.items():
        if name not in keep:
            session.delete(row)
    session.flush()


def _import_images(session: Session, repository_id: int, images: tuple[Img, ...]) -> None:
    """Each image of the site becomes its current version; other versions of the same name
    stay (older) or are marked deleted (newer); versions of other names are marked deleted."""
    rows = session.scalars(select(db.Image).where(db.Image.repository_id == repository_id))
    existing = {(r.name, r.revision): r for r in rows}
    current = {img.name: img.revision for img in images}
    position = {img.name: i for i, img in enumerate(images)}
    now = db.utcnow()
    for (name, revision), old in existing.items():
        if old.deleted_at is None and (name not in current or revision > current[name]):
            old.deleted_at = now
        old.position = position.get(name, old.position)
    for img in images:
        row = existing.get((img.name, img.revision))
        if row is None:
            row = db.Image(repository_id=repository_id, name=img.name, revision=img.revision)
            session.add(row)
        row.filesystem, row.data_size, row.stored_size = (
            str(img.filesystem),
            img.data_size,
            img.stored_size,
        )
        row.compressor, row.tool, row.checksum = str(img.compressor), str(img.tool), img.checksum
        row.kind, row.base, row.os_name = str(img.kind), img.base, img.os_name
        row.torrent_piece, row.position, row.deleted_at = (
            img.torrent_piece,
            position[img.name],
            None,
        )
        row.format, row.added_size = str(img.format), img.added_size


def _check_fits(spec: SiteSpec, site: Site, source: str) -> None:
    """What build_site accepts but the tables cannot hold: names longer than their columns,
    ``hw`` values that are not JSON.  (Duplicate names are build_site's error already.)"""

    def fail(msg: str, path: str) -> ConfigError:
        return ConfigError(msg, source=source, path=path)

    def fits(value: str, size: int, what: str, path: str) -> None:
        if len(value) > size:
            raise fail(f"{what} {value[:40]!r}… is longer than {size} characters", path)

    def json_ok(value: Any, what: str, path: str) -> None:
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise fail(
                f"{what} is not plain data (strings, numbers, mappings): {exc}", path
            ) from None

    for key in spec.engine:
        fits(key, 64, "engine key", f"engine.{key[:40]}")
    for i, r in enumerate(spec.repositories):
        fits(r.name, db.NAME, "repository name", f"repositories.{i}.name")
        fits(r.address, 64, "repository address", f"repositories.{i}.address")
        json_ok(r.hw, "hw", f"repositories.{i}.hw")
        for j, img in enumerate(r.images):
            path = f"repositories.{i}.images.{j}"
            fits(img.name, db.IMAGE_NAME, "image name", f"{path}.name")
            fits(img.base, db.IMAGE_NAME, "base image name", f"{path}.base")
            fits(img.os, 255, "OS name", f"{path}.os")
            fits(img.checksum, 64, "checksum", f"{path}.checksum")
    for i, room in enumerate(spec.classrooms):
        path = f"classrooms.{i}"
        fits(room.name, db.NAME, "classroom name", f"{path}.name")
        fits(room.org_unit, db.NAME, "org unit name", f"{path}.org_unit")
        for j, g in enumerate(room.groups):
            fits(g.name, db.NAME, "group name", f"{path}.groups.{j}.name")
        for pc in site.classroom(room.name).computers:
            fits(pc.name, db.NAME, "computer name", path)
            fits(pc.mac, 17, f"MAC of {pc.name}", path)
            fits(pc.profile.name, db.NAME, f"profile of {pc.name}", path)
            json_ok(site.hw.get(pc.name, {}), f"hw of {pc.name}", path)
    for i, op in enumerate(spec.operations):
        json_ok(_plain(op), "operation", f"operations.{i}")


# --------------------------------------------------------------------------- export


def export_site(session: Session) -> dict[str, Any]:
    """The database's configuration as a site mapping (SiteSpec-valid)."""
    settings = session.get(db.SiteSettings, 1)
    repos = list(session.scalars(select(db.Repository).order_by(db.Repository.position)))
    repo_name = {r.id: r.name for r in repos}
    current: dict[tuple[int, str], db.Image] = {}
    for img in session.scalars(
        select(db.Image)
        .where(db.Image.deleted_at.is_(None))
        .order_by(db.Image.position, db.Image.id)
    ):
        seen = current.get((img.repository_id, img.name))
        if seen is None or img.revision > seen.revision:  # the highest revision not deleted
            current[(img.repository_id, img.name)] = img
    out: dict[str, Any] = {
        "repositories": [
            {
                "name": r.name,
                "address": r.address,
                "multicast_fec": r.multicast_fec,
                **({"hw": r.hw} if r.hw else {}),
                "images": [_image(img) for (rid, _n), img in current.items() if rid == r.id],
            }
            for r in repos
        ],
        "engine_preset": settings.engine_preset if settings is not None else "oglab",
    }
    engine = session.scalars(select(db.EngineSetting).order_by(db.EngineSetting.position))
    out["engine"] = {e.key: e.value for e in engine}

    ou_name = {o.id: (o.position, o.name) for o in session.scalars(select(db.OrgUnit))}
    rooms = sorted(
        session.scalars(select(db.Classroom)), key=lambda c: (ou_name[c.org_unit_id], c.position)
    )
    pcs_of: dict[int, list[db.Computer]] = {}
    for pc in session.scalars(select(db.Computer).order_by(db.Computer.position)):
        pcs_of.setdefault(pc.classroom_id, []).append(pc)
    pc_name = {pc.id: pc.name for pcs in pcs_of.values() for pc in pcs}
    members: dict[int, list[str]] = {}
    for m in session.scalars(select(db.GroupMember).order_by(db.GroupMember.position)):
        members.setdefault(m.group_id, []).append(pc_name[m.computer_id])
    groups_of: dict[int, list[db.ComputerGroup]] = {}
    for g in session.scalars(select(db.ComputerGroup).order_by(db.ComputerGroup.position)):
        groups_of.setdefault(g.classroom_id, []).append(g)

    out["classrooms"] = [
        _classroom(
            room,
            ou_name[room.org_unit_id][1],
            pcs_of.get(room.id, []),
            [(g.name, members.get(g.id, [])) for g in groups_of.get(room.id, [])],
            repo_name,
        )
        for room in rooms
    ]
    ops = session.scalars(select(db.SiteOperation).order_by(db.SiteOperation.position))
    out["operations"] = [op.spec for op in ops]
    return out


def load_site(session: Session) -> Site:
    """The domain Site the database describes."""
    return build_site(export_site(session), source=SOURCE)


def _classroom(
    room: db.Classroom,
    org_unit: str,
    pcs: list[db.Computer],
    groups: list[tuple[str, list[str]]],
    repo_name: dict[int, str],
) -> dict[str, Any]:
    values: list[dict[str, Any]] = [
        {
            "repository": repo_name[pc.repository_id],
            "disks": pc.disks,
            "cache": pc.cache if pc.cache is not None else "none",
            "profile": pc.profile,
            "windows_needs_reboot": pc.windows_needs_reboot,
            "hw": pc.hw,
        }
        for pc in pcs
    ]
    # what most computers have goes into the classroom's defaults; the others override it
    # (hw merges key by key, so it goes there only when every computer has the same)
    defaults: dict[str, Any] = {}
    for key in _PER_COMPUTER if values else ():
        column = [v[key] for v in values]
        if key == "hw":
            common = column[0] if all(c == column[0] for c in column) else _BUILTIN["hw"]
        else:
            common = _most_common(column)
        if key not in _BUILTIN or common != _BUILTIN[key]:
            defaults[key] = common
        effective = defaults.get(key, _BUILTIN.get(key))
        for v in values:
            if v[key] == effective:
                del v[key]
    if "disks" in defaults:
        defaults["disks"] = [_readable_disk(d) for d in defaults["disks"]]
    if isinstance(defaults.get("cache"), dict):
        defaults["cache"] = _readable_cache(defaults["cache"])
    computers = []
    for pc, own in zip(pcs, values, strict=True):
        if "disks" in own:
            own["disks"] = [_readable_disk(d) for d in own["disks"]]
        if isinstance(own.get("cache"), dict):
            own["cache"] = _readable_cache(own["cache"])
        computers.append({"name": pc.name, "ip": pc.ip, "mac": pc.mac, **own})
    return {
        "name": room.name,
        "org_unit": org_unit,
        "subnet": room.subnet,
        "multicast": room.multicast,
        "torrent": room.torrent,
        "defaults": defaults,
        "groups": [{"name": name, "members": _ranges(names)} for name, names in groups],
        "computers": computers,
    }


def _most_common(values: list[Any]) -> Any:
    """The value most entries have (the first of those tied); values may be JSON data."""
    keys = [json.dumps(v, sort_keys=True) for v in values]
    counts = Counter(keys)
    best = max(counts.values())
    return values[next(i for i, k in enumerate(keys) if counts[k] == best)]


def _readable(n: int) -> int | str:
    """A byte count as the site writes it, in the largest binary unit that divides it
    (``20GiB``, ``2500MiB``), else as a number."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return n


def _readable_disk(d: dict[str, Any]) -> dict[str, Any]:
    return {
        **d,
        "size": _readable(d["size"]),
        "partitions": [{**p, "size": _readable(p["size"])} for p in d["partitions"]],
    }


def _readable_cache(c: dict[str, Any]) -> dict[str, Any]:
    out = {k: _readable(v) if k in ("size", "used", "free") else v for k, v in c.items()}
    out["images"] = [
        {**i, "size": _readable(i["size"])} if isinstance(i, dict) and "size" in i else i
        for i in c.get("images", [])
    ]
    return out


def _ranges(names: list[str]) -> list[str]:
    """Runs of three or more consecutive names (``pc01``, ``pc02``, ``pc03``) as one range
    (``pc01-pc03``), when the site's range syntax expands it back to exactly those names."""
    out: list[str] = []
    i = 0
    while i < len(names):
        j = i
        while j + 1 < len(names) and _next_name(names[j]) == names[j + 1]:
            j += 1
        text = f"{names[i]}-{names[j]}"
        if j - i >= 2 and expand_names(text) == names[i : j + 1]:
            out.append(text)
            i = j + 1
        else:
            out.append(names[i])
            i += 1
    return out


def _next_name(name: str) -> str | None:
    m = re.fullmatch(r"([A-Za-z_-]*?)(\d+)", name)
    if m is None:
        return None
    prefix, digits = m.groups()
    return f"{prefix}{int(digits) + 1:0{len(digits)}d}"


def _image(img: db.Image) -> dict[str, Any]:
    return {
        "name": img.name,
        "filesystem": img.filesystem,
        "data": _readable(img.data_size),
        "stored": _readable(img.stored_size),
        "compressor": img.compressor,
        "tool": img.tool,
        "kind": img.kind,
        "base": img.base,
        "checksum": img.checksum,
        "revision": img.revision,
        "os": img.os_name,
        "torrent_piece": _readable(img.torrent_piece),
        **({"format": img.format} if img.format != "partclone" else {}),
        **({"added": img.added_size} if img.format == "chunked" and img.kind == "diff" else {}),
    }


# --------------------------------------------------------------------------- values


def _disk(d: Disk) -> dict[str, Any]:
    """A disk in the site schema (``DiskSpec``), sizes in bytes."""
    return {
        "number": d.number,
        "size": d.size,
        "table": str(d.table),
        "partitions": [
            {"number": p.number, "size": p.size, "fs": str(p.filesystem), "os": p.os_name}
            for p in d.partitions
        ],
    }


def _plain(value: Any) -> Any:
    """A site-schema model as JSON data, only the fields the site gave, numbers as numbers
    (the schema's own serializers print sizes and durations rounded for people)."""
    if isinstance(value, BaseModel):
        return {
            k: _plain(getattr(value, k))
            for k in type(value).model_fields
            if k in value.model_fields_set
        }
    return _json(value)


def _full(value: Any) -> Any:
    """A site-schema model as JSON data, every field but those None, numbers as numbers."""
    if isinstance(value, BaseModel):
        fields = {k: getattr(value, k) for k in type(value).model_fields}
        return {k: _full(v) for k, v in fields.items() if v is not None}
    return _json(value, _full)


def _json(value: Any, inner: Any = None) -> Any:
    each = inner or _plain
    if isinstance(value, list | tuple):
        return [each(v) for v in value]
    if isinstance(value, dict):
        return {str(k): each(v) for k, v in value.items()}
    return value
