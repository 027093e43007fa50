"""``ogsim course deploy-wizard-small --backend netns`` as a real subprocess (this worktree's code):
the exercise's classroom in a namespace lab — the real service given the exercise, three real
agents, smbd, loop disks — reached by a headless Chromium through the relay URL the course
prints.  The student does the Deploy wizard in two phases (real SMB copies into pc01's and
pc02's CACHEs, pc03 fails with error 15; then updateCache + restore from the CACHE): after phase 1
the Exercise page says *partial* (one step of two done), after phase 2 *passed*, every expectation
holding.  Each restored partition is verified (fsck, file-tree hash).  SIGTERM ends the course:
results.json (backend netns) is written and nothing of the run is left — its manifest destroyed,
no namespace, loop device or mount of it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ogsim.results import Results
from tests.lab.test_netns_course import _lab_namespaces, _namespaces

from .test_console import CHROMIUM, DRIVER, _css, _login, _shot, _wait
from .test_console import browser as browser  # a fixture
from .test_course import CourseRun, _course_page, _states, _verdict
from .test_netns_wizard import _mib, _phase

pytestmark = [
    pytest.mark.root,
    pytest.mark.netns,
    pytest.mark.browser,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        CHROMIUM is None or DRIVER is None,
        reason="needs Debian's chromium and chromium-driver (`make deps` installs them as root)",
    ),
]


def test_a_course_exercise_on_namespaces(tmp_path: Path, browser: Any) -> None:
    out = tmp_path / "out"
    run = CourseRun("deploy-wizard-small", out, backend="netns")
    try:
        assert "scaled ×0.002" in run.seen and "ubuntu" in run.seen, run.seen
        assert run.url.startswith("http://127.0.0.1:")
        ours = _lab_namespaces(out / "lab" / "manifest.jsonl")
        assert len(ours) == 6 and ours <= _namespaces()  # switch, repo, srv, 3 computers
        _login(browser, run.url, run.user, run.password)
        _wait(browser, lambda d: len(_css(d, '#map li[data-status="OPG"]')) == 3, timeout=60)
        browser.get(f"{run.url}/ui/course")
        assert "Deploy wizard in two phases" in _css(browser, "h1")[0].text
        assert set(_states(browser).values()) == {"pending"}
        # phase 1: updateCache only — one step of two: not passed yet
        rows = _phase(browser, run.url, "update_cache", image="ubuntu")
        assert {n: r.get_attribute("data-status") for n, r in rows.items()} == {
            "pc01": "ok", "pc02": "ok", "pc03": "failed"}  # fmt: skip
        assert _mib(rows["pc01"]) > 0 and "15" in rows["pc03"].text
        _course_page(browser, run.url)
        assert _verdict(browser) == "partial"  # every check holds so far, one step is missing
        # phase 2: updateCache + restore from the CACHE — the exercise is done
        rows = _phase(browser, run.url, "deploy", image="ubuntu")
        assert {n: r.get_attribute("data-status") for n, r in rows.items()} == {
            "pc01": "ok", "pc02": "ok", "pc03": "failed"}  # fmt: skip
        browser.get(f"{run.url}/ui/course")
        _wait(browser, lambda d: _verdict(d) == "passed", timeout=90)
        states = _states(browser)
        assert len(states) == 3 and set(states.values()) == {"holds"}, states
        _shot(browser, "course-netns")
    finally:
        run.stop()
    rest, _ = run.proc.communicate(timeout=60)
    assert run.proc.returncode == 0, rest
    assert "PASSED" in rest and "lab destroyed" in rest, rest
    results = Results.read(out / "results.json")
    assert results.backend == "netns" and [o.kind for o in results.operations] == [
        "update_cache", "deploy"]  # fmt: skip
    moved = {c.name: c.bytes_moved for c in results.operations[0].computers}
    assert moved["pc01"] > 1 << 20 and moved["pc02"] > 1 << 20 and moved["pc03"] == 0
    # the restored partitions were checked as ogsim run checks them: fsck and the file tree
    restored = {c.name: c for c in results.operations[1].computers if c.status == "ok"}
    assert sorted(restored) == ["pc01", "pc02"]
    for c in restored.values():
        (check,) = [p.detail for p in c.phases if p.name == "verify"]
        assert "fsck clean" in check and "file-tree hash equal" in check, check
    checks = json.loads((out / "course" / "checks.json").read_text())
    assert checks["passed"] and checks["operations"] == 2
    # nothing of the run is left: its manifest destroyed, no namespace, loop device or mount
    assert not (out / "lab" / "manifest.jsonl").exists()
    assert not _lab_namespaces(out / "lab" / "manifest.destroyed") & _namespaces()
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in loops, "loop devices left behind"
    assert str(tmp_path) not in Path("/proc/mounts").read_text(), "mounts left behind"
