"""The manifest's bookkeeping without root: failed destroyers are kept for a retry, released
entries are never destroyed, and the cleanup is not cut short by a second Ctrl-C."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from ogsim.lab.manifest import Manifest, Resource, destroyer, signals_held

CALLS: list[str] = []
FAIL: set[str] = set()


@destroyer("test_thing")
def _destroy_thing(res: Resource) -> None:
    CALLS.append(res.name)
    if res.name in FAIL:
        raise RuntimeError("busy")


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()
    FAIL.clear()


def test_a_failed_destroyer_is_kept_and_retried(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    for name in ("a", "b", "c"):
        m.record("test_thing", name)
    FAIL.add("b")
    errors = m.destroy()
    assert CALLS == ["c", "b", "a"] and errors == ["test_thing b: busy"]
    assert m.path.exists(), "the manifest must stay for a retry"
    assert [r.name for _, r in m.pending()] == ["b"]
    CALLS.clear()
    FAIL.clear()
    assert Manifest(tmp_path).destroy() == []  # what `ogsim destroy` does later
    assert CALLS == ["b"]
    assert not m.path.exists() and m.path.with_suffix(".destroyed").exists()


def test_a_released_entry_is_never_destroyed(tmp_path: Path) -> None:
    m = Manifest(tmp_path)
    ours = m.record("test_thing", "ours")
    theirs = m.record("test_thing", "theirs")  # e.g. a namespace name someone else made first
    m.release(theirs)
    assert m.destroy() == []
    assert CALLS == ["ours"]
    assert ours in m.resources()  # the record stays readable after destruction


def test_the_cleanup_holds_signals_until_it_is_done() -> None:
    got: list[int] = []
    old = signal.signal(signal.SIGTERM, lambda s, f: got.append(s))
    try:
        with signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            assert got == []  # held while the cleanup runs
        assert got == [signal.SIGTERM]  # delivered after
    finally:
        signal.signal(signal.SIGTERM, old)
