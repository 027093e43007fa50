"""Course exercises in a real headless Chromium (Debian's packages, Selenium) against
``ogsim course … --backend sim``: the student does the exercise in the console's Restore form and
the Exercise page shows which expectations hold.

- the seed's 35-PC exercise done right (TORRENT-CACHE on the classroom): marked passed, every
  expectation holds, and the run's report (summary + figures) opens from the page;
- the MULTICAST-CACHE exercise done wrong on purpose (the student picks UNICAST-DIRECT): marked
  not passed — the fallback and the method expectations do not hold, "all restored" does.

Screenshots of the expectations view (1280×800) go to ``reports/screenshots/``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_console import CHROMIUM, DRIVER, ROOT, _css, _login, _shot, _wait
from tests.browser.test_console import browser as browser  # a fixture

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None or DRIVER is None,
        reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
        "chromium-driver; `make deps` does it as root)",
    ),
]


class CourseRun:
    """``ogsim course EXERCISE --backend BACKEND`` (this worktree's code, as a subprocess): the
    console URL and the printed credentials; ``seen`` is what it printed up to them."""

    def __init__(self, exercise: str, out: Path, speed: int = 200, backend: str = "sim") -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ogsim.cli", "course", exercise, "--backend", backend,
             "--speed", str(speed), "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=out.parent,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.seen = ""
        for line in self.proc.stdout:
            self.seen += line
            m = re.search(r"console: (http://\S+)/ui/course\s+user: (\S+)\s+password: (\S+)", line)
            if m:
                self.url, self.user, self.password = m[1], m[2], m[3]
                return
        raise AssertionError(f"ogsim course did not print the console's URL:\n{self.seen}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _restore(browser: Any, base: str, image: str, method: str) -> None:
    """The student's Restore on the whole classroom from the form; waits for the records."""
    browser.get(f"{base}/ui/restore?classroom=aula1")
    _wait(browser, lambda d: _css(d, "#same-fs input"))
    pick = [e for e in _css(browser, "#same-fs input") if e.get_attribute("value") == image]
    pick[0].click()
    _css(browser, f'input[name=method][value="{method}"]')[0].click()
    _css(browser, "#submit-btn")[0].click()
    _wait(browser, lambda d: "/ui/operations/" in d.current_url)


def _checks(browser: Any) -> list[dict[str, str]]:
    """The expectations shown, read in one go (the list is refreshed every 2 s)."""
    return list(
        browser.execute_script(
            "return Array.from(document.querySelectorAll('#course-checks li[data-state]'))"
            ".map(li => ({name: li.dataset.name, state: li.dataset.state,"
            " diff: (li.querySelector('.diff') || {innerText: ''}).innerText}))"
        )
    )


def _states(browser: Any) -> dict[str, str]:
    return {c["name"]: c["state"] for c in _checks(browser)}


def _verdict(browser: Any) -> str | None:
    return browser.execute_script(
        "const v = document.querySelector('#verdict'); return v && v.dataset.verdict"
    )


def _course_page(browser: Any, base: str) -> None:
    browser.get(f"{base}/ui/course")
    # before the operation ends every expectation is pending; after, the verdict replaces it
    _wait(browser, lambda d: _verdict(d) not in (None, "pending"), timeout=60)


def test_the_seeds_exercise_done_right_is_marked_passed(tmp_path: Path, browser: Any) -> None:
    run = CourseRun("seed-35pc", tmp_path / "out")
    try:
        _login(browser, run.url, run.user, run.password)
        browser.get(f"{run.url}/ui/course")
        assert "Restore with Torrent-CACHE" in _css(browser, "h1")[0].text
        assert "win7-base" in _css(browser, "#task")[0].text
        assert set(_states(browser).values()) == {"pending"}
        _restore(browser, run.url, "win7-base", "TORRENT-CACHE")
        _course_page(browser, run.url)
        assert _verdict(browser) == "passed"
        states = _states(browser)
        assert len(states) == 5 and set(states.values()) == {"holds"}, states
        assert "fallback of 2 computer(s) to UNICAST-DIRECT" in states
        _shot(browser, "course-passed")
        # the run's report: the summary page and its figures, served by the console
        _css(browser, "#report-link")[0].click()
        browser.switch_to.window(browser.window_handles[-1])
        _wait(browser, lambda d: "summary.html" in d.current_url)
        assert "UNICAST-DIRECT" in browser.page_source
        figures = [e.get_attribute("src") for e in _css(browser, "img")]
        assert any(f and f.endswith("timeline.svg") for f in figures)
        ok = browser.execute_script(
            "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
        )
        assert ok, figures  # every figure loaded from the console
        browser.close()
        browser.switch_to.window(browser.window_handles[0])
        browser.get(f"{run.url}/ui/course/report/..%2F..%2Fexercise.json")
        assert "detail" in browser.page_source  # a 404, not the file
        assert "expectations" not in browser.page_source
    finally:
        run.stop()


def test_an_exercise_done_wrong_is_marked_not_passed(tmp_path: Path, browser: Any) -> None:
    run = CourseRun("multicast-cache-fallback", tmp_path / "out", speed=500)
    try:
        _login(browser, run.url, run.user, run.password)
        # the student picks the wrong method: UNICAST-DIRECT instead of MULTICAST-CACHE
        _restore(browser, run.url, "win10", "UNICAST-DIRECT")
        _course_page(browser, run.url)
        assert _verdict(browser) == "failed"
        states = _states(browser)
        assert states == {
            "all restored": "holds",
            "fallback of 2 computer(s) to MULTICAST-DIRECT": "fails",
            "method used MULTICAST-CACHE on 18 computer(s)": "fails",
        }, states
        wrong = [c["diff"] for c in _checks(browser) if c["state"] == "fails"]
        assert "UNICAST-DIRECT" in wrong[1] and "pc01" in wrong[1]
        _shot(browser, "course-failed")
        # in Spanish too (the exercise's own texts, the page's words)
        browser.get(f"{run.url}/lang/es")
        browser.get(f"{run.url}/ui/course")
        assert "Multicast-CACHE con cambio automático" in _css(browser, "h1")[0].text
        assert "no se cumple" in _css(browser, "#course-checks")[0].text
    finally:
        run.stop()
