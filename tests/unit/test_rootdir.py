"""RootDir: paths inside a tree never lead out of it, by openat2 and by the fallback walker.

A tmp directory stands for a restored filesystem: hostile links (absolute, ``../../``, loops, a
link to ``/``), a FIFO and a dangling link; a sentinel file outside it must stay untouched.  The
kernel resolver and the walker are run on the same cases, and hypothesis builds random link
trees on which both must agree and never return a descriptor outside the root.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ogref.errors import NotWriteError, OgErr, UnsafePathError
from ogref.runtime import rootdir
from ogref.runtime.rootdir import RootDir

RESOLVERS = [
    pytest.param(
        True,
        id="openat2",
        marks=pytest.mark.skipif(
            not rootdir.openat2_available(), reason="no openat2 on this kernel"
        ),
    ),
    pytest.param(False, id="walker"),
]
SENTINEL = "sentinel: must not change\n"


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """``(root, sentinel)``: a hostile tree and a file outside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    sentinel = outside / "sentinel"
    sentinel.write_text(SENTINEL)
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "sub/deep").mkdir(parents=True)
    (root / "etc/hostname").write_text("old\n")
    (root / "etc/abs").symlink_to(sentinel)  # absolute, to the host's file
    (root / "etc/up").symlink_to("../../outside/sentinel")  # relative, climbing out
    (root / "etc/inner").symlink_to("hostname")  # stays inside: followed
    (root / "etc/via").symlink_to("../etc/hostname")  # stays inside through '..'
    (root / "etc/loop1").symlink_to("loop2")
    (root / "etc/loop2").symlink_to("loop1")
    (root / "etc/self").symlink_to("self")
    (root / "etc/dangling").symlink_to("nothere")
    (root / "slash").symlink_to("/")  # '/etc' -> '/' in an image
    (root / "sub/deep/escape").symlink_to("../../..")
    os.mkfifo(root / "etc/fifo")
    return root, sentinel


def _rel_to_sentinel(root: Path, sentinel: Path) -> str:
    return os.path.relpath(sentinel, root)


@pytest.mark.parametrize("kernel", RESOLVERS)
def test_hostile_links_are_refused_and_the_sentinel_is_untouched(
    tree: tuple[Path, Path], kernel: bool
) -> None:
    root, sentinel = tree
    hostile = [
        "etc/abs",
        "etc/up",
        f"slash{sentinel}",
        f"sub/deep/escape/../{_rel_to_sentinel(root.parent, sentinel)}",
        _rel_to_sentinel(root, sentinel),  # "../outside/sentinel" given directly
        f"etc/../{_rel_to_sentinel(root, sentinel)}",
    ]
    with RootDir(root, kernel=kernel) as rd:
        for rel in hostile:
            with pytest.raises(UnsafePathError) as err:
                rd.write_text(rel, "pwned\n")
            assert err.value.code == OgErr.NOTWRITE
            assert "outside" in err.value.reason, (rel, err.value.reason)
            with pytest.raises(UnsafePathError):
                rd.read_text(rel)
        for rel in ("etc/loop1", "etc/self"):
            with pytest.raises(UnsafePathError, match="loop"):
                rd.write_text(rel, "x")
        # a FIFO is refused at once (opening it for writing would block forever)
        with pytest.raises(UnsafePathError, match="not a regular file"):
            rd.write_text("etc/fifo", "x")
        with pytest.raises(UnsafePathError, match="not a regular file"):
            rd.read_text("etc/fifo")
        with pytest.raises(UnsafePathError, match="dangling"):
            rd.write_text("etc/dangling", "x")
        # removing a link removes the link, never what it points at
        assert rd.unlink("etc/abs") and rd.unlink("etc/up")
        assert not rd.unlink("etc/abs")
        with pytest.raises(UnsafePathError):
            rd.unlink(f"slash{sentinel}")
        with pytest.raises(UnsafePathError, match="directory"):
            rd.unlink("etc")
        # a fresh file replaces a final link in place; a path whose directories leave is refused
        for rel in hostile[2:]:
            with pytest.raises(UnsafePathError):
                rd.write_text(rel, "pwned\n", fresh=True)
        (root / "etc/abs").symlink_to(sentinel)
        rd.write_text("etc/abs", "inside\n", fresh=True)
        assert (root / "etc/abs").read_text() == "inside\n"
    assert sentinel.read_text() == SENTINEL


@pytest.mark.parametrize("kernel", RESOLVERS)
def test_links_inside_the_root_are_followed(tree: tuple[Path, Path], kernel: bool) -> None:
    root, _ = tree
    with RootDir(root, kernel=kernel) as rd:
        rd.write_text("etc/inner", "one\n")
        assert (root / "etc/hostname").read_text() == "one\n"
        assert rd.read_text("etc/via") == "one\n"
        rd.write_text("/etc/new", "made\n")  # a leading '/' is the root itself
        assert (root / "etc/new").read_text() == "made\n"
        rd.write_text("etc/inner", "fresh\n", fresh=True)  # the link replaced by a file
        assert not (root / "etc/inner").is_symlink() and rd.read_text("etc/hostname") == "one\n"
        assert rd.kind("etc") == "dir" and rd.kind("sub/deep/../../etc/via") == "file"
        assert rd.kind("etc/fifo") == "other" and rd.kind("nothere/x") == "missing"
        assert rd.exists("etc/dangling") and not rd.exists("etc/nothere")
        assert rd.checked_path("etc/hostname") == root / "etc/hostname"
        with pytest.raises(UnsafePathError, match="is a link"):
            rd.checked_path("etc/via")
        with pytest.raises(UnsafePathError, match="is a link"):
            rd.checked_path("slash/etc")
        assert rd.links_under("sub") == ["sub/deep/escape"]
        with pytest.raises(FileNotFoundError):
            rd.read_text("etc/missing")


def test_unsafe_path_error_keeps_code_14_and_error_for_14_is_not_write() -> None:
    from ogref.errors import error_for

    assert isinstance(UnsafePathError("/etc/x", "r"), NotWriteError)
    assert type(error_for(14, "m")) is NotWriteError


# --------------------------------------------------------------------------- property

NAMES = ("a", "b", "c")
_component = st.sampled_from((*NAMES, "..", "."))
_target = st.one_of(
    st.lists(_component, min_size=1, max_size=5).map("/".join),
    st.lists(_component, min_size=1, max_size=3).map(lambda p: "/" + "/".join(p)),
)
_entry = st.tuples(
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map("/".join),
    st.one_of(st.none(), st.just("file"), _target),  # None: directory
)


def _build(root: Path, entries: list[tuple[str, str | None]]) -> None:
    for rel, what in entries:
        path = root / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if what is None:
                path.mkdir()
            elif what == "file":
                path.write_text(rel)
            else:
                path.symlink_to(what)
        except OSError:
            pass  # a name already taken, or a parent that is a file or a link


def _outcome(rd: RootDir, rel: str) -> tuple[str, str]:
    try:
        fd = rd.open(rel, os.O_RDONLY)
    except UnsafePathError as exc:
        return ("refused", exc.reason)
    except OSError as exc:
        return ("error", str(exc.errno))
    try:
        return ("ok", os.readlink(f"/proc/self/fd/{fd}"))
    finally:
        os.close(fd)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(entries=[("b/c", "file"), ("b/a", "c/.")], queries=[])  # "file/." is ENOTDIR
@example(entries=[("a", "file")], queries=["a/.", "a/", "./a"])
@given(
    entries=st.lists(_entry, max_size=12),
    queries=st.lists(st.lists(_component, min_size=1, max_size=5).map("/".join), max_size=6),
)
def test_random_link_trees_walker_agrees_with_the_kernel_and_nothing_leaves_the_root(
    entries: list[tuple[str, str | None]], queries: list[str]
) -> None:
    base = Path(tempfile.mkdtemp(prefix="rootdir-"))
    try:
        root = base / "r"
        root.mkdir()
        for name in NAMES:  # the same names outside the root: an escape would find them
            (base / name).write_text("outside")
        _build(root, entries)
        kernel_ok = rootdir.openat2_available()
        with RootDir(root, kernel=False) as walker, RootDir(root, kernel=kernel_ok) as kernel:
            for rel in queries + [rel for rel, _ in entries]:
                got = _outcome(walker, rel)
                if got[0] == "ok":
                    assert got[1] == str(root) or got[1].startswith(f"{root}/"), (rel, got)
                if kernel_ok:
                    assert got == _outcome(kernel, rel), rel
    finally:
        shutil.rmtree(base)


@pytest.fixture(autouse=True)
def _no_leaked_descriptors() -> Iterator[None]:
    before = len(os.listdir("/proc/self/fd"))
    yield
    assert len(os.listdir("/proc/self/fd")) <= before
