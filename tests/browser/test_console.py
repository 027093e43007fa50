"""The web console in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
driven by Selenium; no browser download) against a real service.

- the seed's 35-PC example end to end on a simulated classroom (``ogsim serve``): log in as an
  administrator, open the Restore form, see both image columns, preview 33 TORRENT-CACHE + 2
  UNICAST-DIRECT with reasons, submit, watch the map's colours change, find the two fallbacks in
  the command's records and in the history;
- a bad form value gets its message next to the field and nothing is submitted;
- a teacher sees only their classroom.

Screenshots of the main screens (1280×800) are written to ``reports/screenshots/``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "scenarios" / "seed-35pc-torrent-cache.yaml"
SHOTS = ROOT / "reports" / "screenshots"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None or DRIVER is None,
        reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
        "chromium-driver; `make deps` does it as root)",
    ),
]


class Served:
    """``ogsim serve`` of a scenario: the real service, simulated agents."""

    def __init__(self, scenario: Path, out: Path, speed: int) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ogsim.cli", "serve", str(scenario), "--backend", "sim",
             "--speed", str(speed), "--out", str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=out.parent,
        )  # fmt: skip
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        ready = re.search(r"at (http://\S+)/api/v1 — admin token in (\S+)", first)
        assert ready, first + (self.proc.stdout.read() if self.proc.poll() is not None else "")
        self.url = ready[1]
        token = Path(ready[2]).read_text().strip()
        self.api = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def user(self, name: str, password: str, role: str, classrooms: list[str]) -> None:
        reply = self.api.put(f"/api/v1/users/{name}", json={
            "name": name, "password": password, "role": role, "classrooms": classrooms})  # fmt: skip
        assert reply.status_code == 200, reply.text

    def stop(self) -> None:
        self.api.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = Served(SEED, tmp_path_factory.mktemp("serve") / "out", speed=200)
    try:
        s.user("profe", "secret-admin", "admin", [])
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1280,800", "--lang=en"):  # fmt: skip
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: Any, check: Any, timeout: float = 20.0) -> Any:
    """``check(driver)`` until truthy; an element htmx replaced meanwhile (stale) is retried."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    )
    return wait.until(lambda d: check(d))


def _text(driver: Any, selector: str) -> str:
    """The text of the first element matching ``selector``, read in one script call (no element
    reference to go stale when htmx swaps the fragment); "" when there is none."""
    text = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';", selector
    )
    return str(text).strip()


def _css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def _shot(driver: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def _login(driver: Any, base: str, user: str, password: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{base}/login")
    _css(driver, "input[name=user]")[0].send_keys(user)
    field = _css(driver, "input[name=password]")[0]
    field.send_keys(password)
    field.submit()
    _wait(driver, lambda d: "/login" not in d.current_url)


def test_the_seeds_restore_end_to_end(seed: Served, browser: Any) -> None:
    _login(browser, seed.url, "profe", "secret-admin")
    assert browser.current_url.endswith("/ui/classrooms/aula1")
    assert len(_css(browser, "#map li.pc")) == 35
    # the agents have said hello: the live client waits (yellow)
    _wait(browser, lambda d: len(_css(d, '#map li[data-status="OPG"]')) == 35)
    _css(browser, "button[name=mode][value=restore]")[0].click()
    _wait(browser, lambda d: "/ui/restore" in d.current_url)
    # both columns: partition 1 (NTFS) offers win7-base as the same filesystem…
    assert [e.get_attribute("value") for e in _css(browser, "#same-fs input")] == ["win7-base"]
    assert _css(browser, "#other-fs")
    # …partition 2 (EXT4) as a different one (the column reloads on change)
    from selenium.webdriver.support.ui import Select

    Select(_css(browser, "#part")[0]).select_by_value("1:2")
    _wait(browser, lambda d: [e.get_attribute("value") for e in _css(d, "#other-fs input")]
          == ["win7-base"])  # fmt: skip
    Select(_css(browser, "#part")[0]).select_by_value("1:1")
    _wait(browser, lambda d: _css(d, "#same-fs input"))
    _css(browser, "#same-fs input")[0].click()
    _css(browser, 'input[name=method][value="TORRENT-CACHE"]')[0].click()
    _css(browser, "#preview-btn")[0].click()
    _wait(browser, lambda d: _css(d, "#preview table.plan"))
    counts = {e.get_attribute("data-method"): e.text for e in _css(browser, "#preview .count")}
    assert counts == {"TORRENT-CACHE": "33 × TORRENT-CACHE", "UNICAST-DIRECT": "2 × UNICAST-DIRECT"}
    switched = _css(browser, "#preview tr.switched")
    assert [r.find_elements("css selector", "td")[0].text for r in switched] == ["pc34", "pc35"]
    assert all(r.find_elements("css selector", "td")[3].text for r in switched)  # a reason
    _shot(browser, "restore-form")
    _css(browser, "#submit-btn")[0].click()
    _wait(browser, lambda d: "/ui/operations/" in d.current_url)
    op_url = browser.current_url
    # the map while it runs: computers turn busy (red)
    browser.get(f"{seed.url}/ui/classrooms/aula1")
    _wait(browser, lambda d: _css(d, '#map li[data-status="BSY"]'))
    busy = _css(browser, '#map li[data-status="BSY"]')[0]
    assert busy.value_of_css_property("background-color") == "rgba(198, 40, 40, 1)"  # red
    _shot(browser, "classroom-map-restoring")
    browser.get(op_url)
    _wait(browser, lambda d: _css(d, '#op[data-done="yes"]'), timeout=120)
    rows = {r.get_attribute("data-pc"): r for r in _css(browser, "#op tr[data-pc]")}
    assert len(rows) == 35
    assert all(r.get_attribute("data-status") == "ok" for r in rows.values())
    fell_back = sorted(n for n, r in rows.items() if "switched" in (r.get_attribute("class") or ""))
    assert fell_back == ["pc34", "pc35"]
    for n in fell_back:
        cells = rows[n].find_elements("css selector", "td")
        assert cells[2].text == "UNICAST-DIRECT" and cells[4].text  # used, and why
    _shot(browser, "operation-records")
    browser.get(f"{seed.url}/ui/operations")
    first = _css(browser, "table.history tbody tr")[0].text
    assert "33 × TORRENT-CACHE" in first and "2 × UNICAST-DIRECT" in first
    _shot(browser, "history")


def test_a_bad_value_is_shown_by_its_field_and_nothing_is_submitted(
    seed: Served, browser: Any
) -> None:
    _login(browser, seed.url, "profe", "secret-admin")
    before = seed.api.get("/api/v1/operations").json()["operations"]
    browser.get(f"{seed.url}/ui/restore?classroom=aula1&group=fila1")
    _css(browser, "#same-fs input")[0].click()
    _css(browser, 'input[name=method][value="MULTICAST-CACHE"]')[0].click()
    port = _css(browser, "#mcast_port")[0]
    port.clear()
    port.send_keys("90x0")
    _css(browser, "#submit-btn")[0].click()
    _wait(browser, lambda d: _text(d, "#err-mcast_port"))
    assert "port" in _text(browser, "#err-mcast_port")
    assert _text(browser, "#err-image") == ""
    time.sleep(0.5)
    assert "/ui/restore" in browser.current_url
    assert seed.api.get("/api/v1/operations").json()["operations"] == before
    _shot(browser, "restore-form-error")


def test_a_teacher_sees_only_their_classroom(tmp_path: Path, browser: Any) -> None:
    import yaml

    data = yaml.safe_load(SEED.read_text())
    room2 = {**data["classrooms"][0], "name": "aula2", "subnet": "10.0.2.0/24",
             "multicast": "9002:full-duplex:239.194.2.1:70M:35:60", "groups": [],
             "computers": {"count": 4, "first_host": 11, "prefix": "b"}}  # fmt: skip
    data["classrooms"][0]["computers"] = {"count": 4, "first_host": 11}
    data["classrooms"][0]["groups"] = []
    data["classrooms"].append(room2)
    data["expect"], data["operations"] = [], []
    scenario = tmp_path / "two-rooms.yaml"
    scenario.write_text(yaml.safe_dump(data))
    served = Served(scenario, tmp_path / "out", speed=50)
    try:
        served.user("ana", "secret-teacher", "teacher", ["aula2"])
        _login(browser, served.url, "ana", "secret-teacher")
        assert browser.current_url.endswith("/ui/classrooms/aula2")
        assert [a.text for a in _css(browser, "aside.tree a.room")] == ["aula2"]
        assert "teacher" in _css(browser, ".user")[0].text
        browser.get(f"{served.url}/ui/classrooms/aula1")
        assert "may not view in aula1" in browser.page_source
    finally:
        served.stop()
