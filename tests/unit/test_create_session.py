"""The createImage session: checks, space estimate, reduce/extend and the automatic rollback."""

from __future__ import annotations

import pytest

from ogref.core.create import CreateRequest, CreateSession
from ogref.core.events import (
    CheckFilesystem,
    Command,
    DiscardStaged,
    DropBackup,
    Event,
    ExtendFilesystem,
    Finish,
    InspectStore,
    InspectTarget,
    PublishImage,
    ReduceFilesystem,
    Source,
    StepFailed,
    StepFinished,
    StoreInspected,
    TargetInspected,
    WriteImage,
    WriteSidecars,
)
from ogref.errors import OgErr
from ogref.model import EngineConfig, Filesystem
from ogref.units import GIB


def run(
    fs: Filesystem = Filesystem.EXT4,
    free: int = 50 * GIB,
    backup: int = 0,
    fail: type | None = None,
    reduce: bool = True,
    no_space: bool = False,
    **store: object,
) -> list[Command]:
    session = CreateSession(
        CreateRequest(1, 2, Source.REPO, "ubuntu", "pc11"), EngineConfig(img_reduce=reduce)
    )
    out: list[Command] = []
    pending = session.start()
    while pending:
        cmd = pending.pop(0)
        out.append(cmd)
        event: Event | None = None
        if isinstance(cmd, InspectTarget):
            event = TargetInspected(True, 40 * GIB, fs, False, 20 * GIB)
        elif isinstance(cmd, InspectStore):
            event = StoreInspected(present=True, free=free, backup_size=backup, **store)  # type: ignore[arg-type]
        elif isinstance(
            cmd, CheckFilesystem | ReduceFilesystem | WriteImage | PublishImage | ExtendFilesystem
        ):
            event = (
                StepFailed("boom", no_space=no_space)
                if fail is type(cmd)
                else StepFinished(data_size=18 * GIB)
            )
        if event is not None:
            pending = session.handle(event) + pending
    assert session.finished
    return out


def types(cmds: list[Command]) -> list[type]:
    return [type(c) for c in cmds]


def test_happy_path_reduces_writes_sidecars_and_extends() -> None:
    cmds = run()
    t = types(cmds)
    order = [
        CheckFilesystem,
        ReduceFilesystem,
        WriteImage,
        WriteSidecars,
        PublishImage,
        ExtendFilesystem,
        Finish,
    ]
    assert [x for x in t if x in order] == order
    side = next(c for c in cmds if isinstance(c, WriteSidecars))
    assert side.info == f"PARTCLONE:ZSTD:EXT4:{18 * GIB // 1024}:pc11"
    assert cmds[-1].ok  # type: ignore[attr-defined]


def test_failed_write_never_touches_the_current_image() -> None:
    cmds = run(fail=WriteImage)
    t = types(cmds)
    assert t.index(DiscardStaged) > t.index(WriteImage)
    assert WriteSidecars not in t and PublishImage not in t
    assert ExtendFilesystem in t  # the source is grown back even on failure
    assert cmds[-1].code == OgErr.IMAGE  # type: ignore[attr-defined]


def test_destination_full_while_writing_is_16() -> None:
    cmds = run(fail=WriteImage, no_space=True)
    assert cmds[-1].code == OgErr.CACHESIZE and DiscardStaged in types(cmds)  # type: ignore[attr-defined]


def test_failed_publish_is_5_and_discards_the_staged_copy() -> None:
    cmds = run(fail=PublishImage)
    assert cmds[-1].code == OgErr.IMAGE and DiscardStaged in types(cmds)  # type: ignore[attr-defined]


def test_space_estimate_counts_the_old_backup() -> None:
    # 20 GiB used → about 13 GiB needed
    assert run(free=10 * GIB)[-1].code == OgErr.CACHESIZE  # type: ignore[attr-defined]
    made = run(free=10 * GIB, backup=5 * GIB)
    assert made[-1].ok and DropBackup in types(made)  # type: ignore[attr-defined]
    assert DropBackup not in types(run(free=30 * GIB, backup=5 * GIB))


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"fail": CheckFilesystem}, OgErr.PARTITION),
        ({"fail": ReduceFilesystem}, OgErr.REDUCEFS),
        ({"fail": ExtendFilesystem}, OgErr.EXTENDFS),
        ({"writable": False}, OgErr.NOTWRITE),
        ({"image_locked": True}, OgErr.LOCKED),
        ({"fs": Filesystem.EMPTY}, OgErr.FILESYS),
    ],
)
def test_failure_codes(kwargs: dict, code: OgErr) -> None:
    assert run(**kwargs)[-1].code == code  # type: ignore[attr-defined]


def test_fat_is_not_reduced() -> None:
    assert ReduceFilesystem not in types(run(fs=Filesystem.FAT32))
    assert ReduceFilesystem not in types(run(reduce=False))
