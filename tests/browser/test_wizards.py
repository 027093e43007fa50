"""The console's wizards and selection in a real headless Chromium, on a simulated classroom of
12 computers (``ogsim serve``; pc12 has no CACHE partition):

- the Deploy wizard in two phases — updateCache only, then updateCache + restore — with no
  automatic switch (pc12 fails with error 15 both times), both phases in the history, the caches
  it filled in the image catalogue;
- Create image from a reference computer picked on the map: a bad name is shown by its field
  and nothing is submitted; a good one publishes a version the catalogue lists;
- the map in Spanish (the language link), with the seed's terms;
- selection by range and by keyboard alone (Enter in the range field, Enter / Space on a
  computer, Tab between them), carried to the wizard.

Screenshots (1280×800) go to ``reports/screenshots/`` as in :mod:`.test_console`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .test_console import CHROMIUM, DRIVER, ROOT, Served, _css, _login, _shot, _wait
from .test_console import browser as browser  # a fixture

WIZARD = ROOT / "scenarios" / "s09-deploy-wizard-two-phase.yaml"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None or DRIVER is None,
        reason="needs Debian's chromium and chromium-driver (`make deps` installs them as root)",
    ),
]


def classroom(tmp: Path) -> Path:
    """s09's classroom cut to 12 computers (pc12 without a cache) in two groups, with the
    operations the simulated agents play back: updateCache, the Deploy wizard, a create."""
    data = yaml.safe_load(WIZARD.read_text())
    room = data["classrooms"][0]
    room["computers"] = {"count": 12, "prefix": "pc", "first_host": 11,
                         "overrides": {"pc12": {"cache": "none"}}}  # fmt: skip
    room["groups"] = [{"name": "fila1", "members": "pc01-pc06"},
                      {"name": "fila2", "members": "pc07-pc12"}]  # fmt: skip
    room["multicast"] = "9000:full-duplex:239.194.1.1:70M:12:60"
    data["operations"] = [
        {"at": "0s", "update_cache": {"image": "win10", "method": "TORRENT-CACHE", "to": "all"}},
        {"at": "8h", "deploy": {"image": "win10", "method": "UNICAST-CACHE", "to": "all"}},
        {"at": "0s", "create": {"computer": "pc01", "disk": 1, "partition": 2,
                                "image": "ubuntu-new", "target": "REPO"}},
    ]  # fmt: skip
    data["expect"] = []
    path = tmp / "wizard-12pc.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("wizards")
    s = Served(classroom(tmp), tmp / "out", speed=200)
    try:
        s.user("profe", "secret-admin", "admin", [])
        yield s
    finally:
        s.stop()


def _values(driver: Any, selector: str) -> list[str]:
    return [e.get_attribute("value") for e in _css(driver, selector)]


def _records(driver: Any) -> dict[str, Any]:
    _wait(driver, lambda d: _css(d, '#op[data-done="yes"]'), timeout=90)
    return {r.get_attribute("data-pc"): r for r in _css(driver, "#op tr[data-pc]")}


def test_the_deploy_wizard_in_two_phases_without_a_switch(lab: Served, browser: Any) -> None:
    _login(browser, lab.url, "profe", "secret-admin")
    _wait(browser, lambda d: len(_css(d, '#map li[data-status="OPG"]')) == 12)
    # the live client waiting is yellow on the map, as in OpenGnSys
    colours = {li.value_of_css_property("background-color") for li in _css(browser, "#map li")}
    assert colours == {"rgba(255, 228, 92, 1)"}
    _css(browser, "#deploy-btn")[0].click()
    _wait(browser, lambda d: "/ui/deploy" in d.current_url)
    # CACHE methods only; phase 1 (updateCache only) is the default
    assert _values(browser, "input[name=method]") == ["UNICAST-CACHE", "MULTICAST-CACHE",
                                                      "TORRENT-CACHE"]  # fmt: skip
    assert _css(browser, 'input[name=mode][value="update_cache"]')[0].is_selected()
    _css(browser, '#same-fs input[value="win10"]')[0].click()
    _css(browser, 'input[name=method][value="TORRENT-CACHE"]')[0].click()
    _css(browser, "#preview-btn")[0].click()
    _wait(browser, lambda d: _css(d, "#preview table.plan"))
    assert _css(browser, '#preview .count[data-method="TORRENT-CACHE"]')[0].text == (
        "11 × TORRENT-CACHE"
    )
    assert not _css(browser, "#preview tr.switched")  # the wizard switches nobody…
    failed = _css(browser, "#preview tr.failed")
    assert [r.get_attribute("data-pc") for r in failed] == ["pc12"]  # …pc12 fails instead
    assert "OG_ERR_NOTCACHE" in failed[0].text
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", failed[0])
    _shot(browser, "deploy-wizard")
    _css(browser, "#submit-btn")[0].click()
    _wait(browser, lambda d: "/ui/operations/" in d.current_url)
    phase1 = browser.current_url.rsplit("/", 1)[1]
    rows = _records(browser)
    assert sorted(n for n, r in rows.items() if r.get_attribute("data-status") == "ok") == [
        f"pc{i:02d}" for i in range(1, 12)
    ]
    assert rows["pc12"].get_attribute("data-status") == "failed"
    assert "15" in rows["pc12"].text and not _css(browser, "#op tr.switched")
    # phase 2, later: updateCache + restore from the cache
    browser.get(f"{lab.url}/ui/deploy?classroom=aula1&mode=deploy")
    assert _css(browser, 'input[name=mode][value="deploy"]')[0].is_selected()
    _css(browser, '#same-fs input[value="win10"]')[0].click()
    _css(browser, 'input[name=method][value="UNICAST-CACHE"]')[0].click()
    _css(browser, "#submit-btn")[0].click()
    _wait(browser, lambda d: "/ui/operations/" in d.current_url)
    phase2 = browser.current_url.rsplit("/", 1)[1]
    rows = _records(browser)
    assert sum(r.get_attribute("data-status") == "ok" for r in rows.values()) == 11
    assert rows["pc12"].get_attribute("data-status") == "failed"
    # both phases in the history, newest first
    browser.get(f"{lab.url}/ui/operations")
    history = [
        r.find_elements("css selector", "td") for r in _css(browser, "table.history tr")[1:3]
    ]
    assert [(c[0].text, c[2].text, c[4].text) for c in history] == [
        (phase2, "deploy", "UNICAST-CACHE"), (phase1, "update_cache", "TORRENT-CACHE")]  # fmt: skip
    assert [c[6].text for c in history] == ["11 × UNICAST-CACHE, 1 × failed",
                                            "11 × TORRENT-CACHE, 1 × failed"]  # fmt: skip
    _shot(browser, "history-two-phases")
    # the catalogue: the 11 caches the wizard filled hold win10
    browser.get(f"{lab.url}/ui/catalogue")
    holders = {e.get_attribute("data-pc") for e in _css(browser, 'tr[data-image="win10"] .holder')}
    assert holders == {f"pc{i:02d}" for i in range(1, 12)}
    _shot(browser, "image-catalogue")


def test_create_image_from_a_reference_computer(lab: Served, browser: Any) -> None:
    from selenium.webdriver.support.ui import Select

    _login(browser, lab.url, "profe", "secret-admin")
    _css(browser, '#map input[value="pc01"]')[0].click()
    _css(browser, "#create-btn")[0].click()
    _wait(browser, lambda d: "/ui/create" in d.current_url)
    assert Select(_css(browser, "#computer")[0]).first_selected_option.text == "pc01"
    # another reference computer reloads the partition chooser (and back)
    from selenium.webdriver.support import expected_conditions as ec

    for pc in ("pc02", "pc01"):
        old = _css(browser, "#part option")[0]
        Select(_css(browser, "#computer")[0]).select_by_visible_text(pc)
        _wait(browser, ec.staleness_of(old))
        assert _values(browser, "#part option") == ["1:1", "1:2"]
    Select(_css(browser, "#part")[0]).select_by_value("1:2")
    before = lab.api.get("/api/v1/operations").json()["operations"]
    name = _css(browser, "#name")[0]
    name.send_keys("ubuntu new!")
    _css(browser, "#submit-btn")[0].click()
    _wait(browser, lambda d: _css(d, "#err-name")[0].text)
    assert "invalid image name" in _css(browser, "#err-name")[0].text
    assert lab.api.get("/api/v1/operations").json()["operations"] == before
    _shot(browser, "create-image-error")
    name.clear()
    name.send_keys("ubuntu-new")
    _css(browser, "#preview-btn")[0].click()
    _wait(browser, lambda d: _css(d, "#preview .create-call"))
    assert "[createImage] 1 2 REPO /ubuntu-new" in _css(browser, "#preview .create-call")[0].text
    assert _css(browser, "#err-name")[0].text == ""
    _shot(browser, "create-image")
    _css(browser, "#submit-btn")[0].click()
    _wait(browser, lambda d: "/ui/operations/" in d.current_url)
    rows = _records(browser)
    assert list(rows) == ["pc01"] and rows["pc01"].get_attribute("data-status") == "ok"
    browser.get(f"{lab.url}/ui/catalogue")
    made = _css(browser, 'tr[data-image="ubuntu-new"]')
    assert [r.get_attribute("data-revision") for r in made] == ["1"]
    assert "EXT4" in made[0].text


def test_the_map_in_spanish(lab: Served, browser: Any) -> None:
    _login(browser, lab.url, "profe", "secret-admin")
    browser.find_element("link text", "ES").click()
    _wait(browser, lambda d: d.find_element("tag name", "html").get_attribute("lang") == "es")
    try:
        assert _css(browser, "main h1")[0].text == "Aula aula1"
        buttons = [b.text for b in _css(browser, ".actions-bar button")]
        assert buttons[:5] == ["Restaurar", "Asistente de despliegue", "Crear imagen",
                               "Clonar partición", "Arrancar"]  # fmt: skip
        nav = [a.text for a in _css(browser, "header nav a")]
        assert nav == ["Cola de acciones", "Catálogo de imágenes", "Ejercicio"]
        _shot(browser, "classroom-map-es")
        _css(browser, "#deploy-btn")[0].click()
        _wait(browser, lambda d: "/ui/deploy" in d.current_url)
        assert _css(browser, "main h1")[0].text.startswith("Asistente de despliegue")
        legends = [e.text for e in _css(browser, "#restore legend")]
        assert {"Operación", "Imagen", "Método", "Sesión multicast"} <= set(legends)
    finally:
        browser.find_element("link text", "EN").click()


def test_selection_by_range_and_keyboard(lab: Served, browser: Any) -> None:
    from selenium.webdriver.common.keys import Keys

    _login(browser, lab.url, "profe", "secret-admin")

    def picked() -> list[str]:
        return [b.get_attribute("value") for b in _css(browser, "#map input:checked")]

    field = _css(browser, "#range")[0]
    field.send_keys("pc03-pc10", Keys.ENTER)  # Enter selects, and submits nothing
    _wait(browser, lambda d: len(picked()) == 8)
    assert "/ui/classrooms/aula1" in browser.current_url
    box = _css(browser, '#map input[value="pc05"]')[0]
    box.send_keys(Keys.ENTER)  # Enter toggles a computer off…
    box.send_keys(Keys.SPACE)  # …Space on again…
    box.send_keys(Keys.ENTER)  # …and off
    # Tab walks the map: pc05's box, its log link, pc06's box
    active = browser.switch_to.active_element
    active.send_keys(Keys.TAB)
    browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("value") == "pc06"
    _css(browser, '#map input[value="pc11"]')[0].send_keys(Keys.SPACE)
    expected = ["pc03", "pc04", "pc06", "pc07", "pc08", "pc09", "pc10", "pc11"]
    _wait(browser, lambda d: picked() == expected)
    assert _css(browser, "#picked")[0].get_attribute("data-n") == "8"
    # the selected tiles stand out: a thick frame
    framed = [li.get_attribute("data-pc") for li in _css(browser, "#map li.pc")
              if li.value_of_css_property("border-top-width") == "5px"]  # fmt: skip
    assert framed == expected
    _shot(browser, "classroom-map-selection")
    # the range field is cleared so the selection alone is sent to the wizard
    field.clear()
    _css(browser, "#deploy-btn")[0].send_keys(Keys.ENTER)
    _wait(browser, lambda d: "/ui/deploy" in d.current_url)
    assert _css(browser, ".scope")[0].text == f"8 computers: {', '.join(expected)}"
