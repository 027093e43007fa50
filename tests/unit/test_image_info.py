"""What deployImage's image lookup (``ogGetImageInfo``) decides, and ``deployImage CACHE``.

1.1.1d maps ogGetImageInfo's status: 1 (no file) → 2, 5 (not an image) → 33, anything else → 40;
``deployImage CACHE …`` restores from the cache whatever protocol follows (§2.1).  The core
reproduces each; the runtime reports the three cases as the core expects them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ogref.core.deploy import DeployRequest, DeploySession, Operation
from ogref.core.driver import ModelOracle, drive
from ogref.core.events import (
    ConfigureOs,
    Defect,
    Finish,
    ImageInspected,
    InspectImage,
    RestorePartition,
    Source,
)
from ogref.core.table import CopyState, Room
from ogref.errors import FormatError, OgErr
from ogref.model import EngineConfig, Method
from ogref.runtime.executor import REFUSED_DEFECTS, Executor, Machine, StrictRefusedError
from ogref.runtime.imagefile import ImageStore, inspect
from tests.unit.situations import REPO, Answering, cache_for, computer, run


def lookup(event: ImageInspected, method: str = "UNICAST", **req: object) -> Finish:
    cache = cache_for(CopyState.CURRENT, Room.FITS)
    oracle = Answering(computer(cache), REPO, on=InspectImage, event=event)
    cmds = run(cache, method, EngineConfig(), oracle=oracle, **req)[1]
    last = cmds[-1]
    assert isinstance(last, Finish) and not any(isinstance(c, RestorePartition) for c in cmds)
    return last


@pytest.mark.parametrize("source", [Source.REPO, Source.CACHE])
def test_an_image_whose_header_is_not_an_image_is_33(source: Source) -> None:
    got = lookup(ImageInspected(found=True, readable=False, detail="not lzop"), source=source)
    assert got.code == OgErr.IMAGEFILE and "not lzop" in got.message


def test_an_image_whose_information_cannot_be_read_otherwise_is_40() -> None:
    got = lookup(ImageInspected(found=True, readable=True, image=None, detail="a directory"))
    assert got.code == OgErr.GENERIC and "a directory" in got.message


def test_a_missing_image_is_still_2() -> None:
    assert lookup(ImageInspected(found=False)).code == OgErr.NOTFOUND


@pytest.mark.parametrize("method", ["TORRENT", "MULTICAST", "UNICAST-DIRECT"])
def test_deploy_image_cache_restores_from_the_cache_whatever_the_protocol(method: str) -> None:
    """No session string is needed either: deployImage CACHE never reads it."""
    cache = cache_for(CopyState.CURRENT, Room.FITS)
    req = DeployRequest(Operation.RESTORE_COMMAND, "img", Method.parse(method), source=Source.CACHE)
    session = DeploySession(req, EngineConfig())
    cmds = drive(session, ModelOracle(computer(cache), REPO))
    restore = next(c for c in cmds if isinstance(c, RestorePartition))
    assert restore.source is Source.CACHE
    assert any(isinstance(c, ConfigureOs) for c in cmds)
    assert session.result is not None and session.result.ok
    assert not any(type(c).__name__ in ("InspectCache", "FetchToCache") for c in cmds)


def test_restore_image_still_refuses_torrent() -> None:
    """restoreImage knows UNICAST and MULTICAST only (§2.4): 1, from the cache as well."""
    with pytest.raises(FormatError):
        DeployRequest(Operation.RESTORE_IMAGE, "img", Method.parse("TORRENT"), source=Source.CACHE)


# ----------------------------------------------------------------- the runtime's side


def test_runtime_lookup_tells_missing_corrupt_and_unreadable_apart(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    (tmp_path / "junk.img").write_bytes(b"this is no image at all\n" * 64)
    (tmp_path / "dir.img").mkdir()
    missing, junk, folder = (inspect(store, n) for n in ("nothing", "junk", "dir"))
    assert not missing.found
    assert junk.found and not junk.readable and junk.image is None
    assert folder.found and folder.readable and folder.image is None and folder.detail


def test_runtime_executor_passes_the_detail_to_the_core(tmp_path: Path) -> None:
    (tmp_path / "dir.img").mkdir()
    ex = Executor(Machine({}, repository=tmp_path))
    ev = ex.answer(InspectImage("dir", Source.REPO))
    assert isinstance(ev, ImageInspected) and "regular file" in ev.detail


@pytest.mark.parametrize("row", [2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 23, 24])
def test_runtime_refuses_only_the_destructive_defects(row: int, tmp_path: Path) -> None:
    ex = Executor(Machine({}, repository=tmp_path))
    defect = Defect(f"OpenGnSys 1.1.1d (deviation {row}): …", row=row)
    if row in (2, 4, 5, 10, 11):
        with pytest.raises(StrictRefusedError) as info:
            ex.answer(defect)
        assert info.value.code == OgErr.NOTEXEC and f"deviation {row}" in info.value.message
    else:
        assert ex.answer(defect) is None
    assert set(REFUSED_DEFECTS) == {2, 4, 5, 10, 11}


def test_agent_requests_keep_a_missing_torrent_session() -> None:
    from ogref.agent.protocol import request_from_json, request_to_json

    req = DeployRequest(Operation.RESTORE_COMMAND, "img", Method.parse("TORRENT"))
    assert req.torrent is None and request_from_json(request_to_json(req)) == req


def test_plan_cli_takes_an_engine_preset(tmp_path: Path) -> None:
    import json

    import yaml
    from typer.testing import CliRunner

    from ogref.cli import app

    seed = Path(__file__).resolve().parents[2] / "labs" / "seed-aula-35.yaml"
    data = yaml.safe_load(seed.read_text())
    room = data["classrooms"][0]
    room["computers"].setdefault("overrides", {})["pc01"] = {
        "disks": [
            {
                "number": 1,
                "size": "250GiB",
                "partitions": [{"number": 1, "size": "60GiB", "fs": "EXT4"}],
            }
        ]
    }
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(data))

    def pc01(*extra: str) -> dict[str, object]:
        result = CliRunner().invoke(app, ["plan", str(site), "--json", "--to", "pc01", *extra])
        computers = json.loads(result.stdout)["computers"]
        return dict(computers[0], exit=result.exit_code)

    ours = pc01("--engine-preset", "opengnsys-1.1.1d")
    theirs = pc01("--engine-preset", "opengnsys-1.1.1d-strict")
    assert (ours["code"], ours["exit"]) == (int(OgErr.FILESYS), int(OgErr.FILESYS))
    assert (theirs["code"], theirs["exit"]) == (0, 0)
    assert any("deviation 11" in line for line in theirs["log"])  # type: ignore[union-attr]
    bad = CliRunner().invoke(app, ["plan", str(site), "--engine-preset", "stock"])
    assert bad.exit_code == int(OgErr.FORMAT) and "unknown engine preset 'stock'" in bad.output
