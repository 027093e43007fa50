"""The Deploy wizard in a real headless Chromium against a classroom of network namespaces: the
netns lab's real service, agents, smbd and loop disks (3 computers, pc03 without a CACHE), no
operation submitted by the lab — the browser does it, through a TCP relay to the service's
console socket (:class:`ogsim.lab.relay.Relay`).  Phase 1 (updateCache only) really copies the
image into two caches and fails pc03 with error 15 (no automatic switch); phase 2 (updateCache +
restore) restores from them; both phases show in the history.  Everything the lab made is destroyed (its manifest).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ogsim.lab.relay import Relay

from .test_console import CHROMIUM, DRIVER, _css, _login, _shot, _wait
from .test_console import browser as browser  # a fixture

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


@pytest.fixture
def netns_lab(tmp_path: Path) -> Iterator[tuple[Any, Relay]]:
    from ogsim.lab.manifest import Manifest
    from ogsim.lab.netns.backend import LabOptions, _halt, build
    from tests.lab.test_netns import leftovers, scenario

    sc = scenario(
        [  # listed so the lab makes the image; the browser submits the commands
            {"at": 0, "update_cache": {"image": "ubu", "method": "UNICAST-CACHE", "to": "all"}},
            {"at": 0, "deploy": {"image": "ubu", "method": "UNICAST-CACHE", "to": "all"}},
        ],
        overrides={"pc03": {"cache": "none"}},
    )
    run_dir = tmp_path / "lab"
    run_dir.mkdir()
    manifest = Manifest(run_dir)
    with manifest.owned():
        lab = build(sc, run_dir, manifest, LabOptions())
        relay = Relay(run_dir / "console.sock")
        try:
            reply = lab.console.http.put("/api/v1/users/profe", json={
                "name": "profe", "password": "secret-admin", "role": "admin", "classrooms": []})  # fmt: skip
            assert reply.status_code == 200, reply.text
            yield lab, relay
        finally:
            relay.close()
            _halt(lab)
    prefixes = {
        line.split('"name": "')[1].split("-")[0]
        for line in (run_dir / "manifest.destroyed").read_text().splitlines()
        if '"kind": "netns"' in line
    }
    assert not leftovers(prefixes), "namespaces left behind"


def _phase(browser: Any, base: str, mode: str, image: str = "ubu") -> dict[str, Any]:
    """One phase of the Deploy wizard on the whole classroom (``mode``: update_cache or
    deploy) by UNICAST-CACHE; the command's records by computer, once it has ended."""
    browser.get(f"{base}/ui/deploy?classroom=aula1&mode={mode}")
    _css(browser, f'#same-fs input[value="{image}"]')[0].click()
    _css(browser, 'input[name=method][value="UNICAST-CACHE"]')[0].click()
    _css(browser, "#submit-btn")[0].click()
    _wait(browser, lambda d: "/ui/operations/" in d.current_url)
    _wait(browser, lambda d: _css(d, '#op[data-done="yes"]'), timeout=120)
    return {r.get_attribute("data-pc"): r for r in _css(browser, "#op tr[data-pc]")}


def _mib(row: Any) -> int:
    return int(row.find_elements("css selector", "td")[6].text or 0)


def test_the_deploy_wizard_in_two_phases_on_namespaces(netns_lab: Any, browser: Any) -> None:
    _lab, relay = netns_lab
    _login(browser, relay.url, "profe", "secret-admin")
    _wait(browser, lambda d: len(_css(d, '#map li[data-status="OPG"]')) == 3, timeout=60)
    # phase 1: updateCache only — real SMB copies into pc01's and pc02's caches
    rows = _phase(browser, relay.url, "update_cache")
    assert {n: r.get_attribute("data-status") for n, r in rows.items()} == {
        "pc01": "ok", "pc02": "ok", "pc03": "failed"}  # fmt: skip
    assert "15" in rows["pc03"].text and not _css(browser, "#op tr.switched")
    assert _mib(rows["pc01"]) > 0 and _mib(rows["pc02"]) > 0
    # phase 2: updateCache + restore — the caches are current, the restore reads them
    rows = _phase(browser, relay.url, "deploy")
    assert {n: r.get_attribute("data-status") for n, r in rows.items()} == {
        "pc01": "ok", "pc02": "ok", "pc03": "failed"}  # fmt: skip
    assert rows["pc01"].find_elements("css selector", "td")[2].text == "UNICAST-CACHE"
    _shot(browser, "deploy-wizard-netns")
    browser.get(f"{relay.url}/ui/operations")
    kinds = [r.find_elements("css selector", "td")[2].text
             for r in _css(browser, "table.history tbody tr")]  # fmt: skip
    assert kinds == ["deploy", "update_cache"]
