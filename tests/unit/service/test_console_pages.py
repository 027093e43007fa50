"""The console's pages without a browser (the browser tests drive them in Chromium): the wizards
validate through the API's path and the decision core — an error is shown by its field and
nothing is submitted —, the image catalogue, the map's range selection, the Spanish catalogue
and the projector-readable colours."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ogref.site import read_yaml, site_part

from .test_api import Service

ROOT = Path(__file__).resolve().parents[3]
WIZARD = ROOT / "scenarios" / "s09-deploy-wizard-two-phase.yaml"
WEB = ROOT / "ogref" / "service" / "web"


@pytest.fixture
def wiz(tmp_path: Path) -> Any:
    data, _ = site_part(read_yaml(WIZARD))
    # pc01 and pc02 already hold win10 in their caches, pc03 a stale copy
    data["classrooms"][0]["computers"]["overrides"].update({
        "pc01": {"cache": {"size": "40GiB", "free": "28GiB", "images": ["win10"]}},
        "pc02": {"cache": {"size": "40GiB", "free": "28GiB", "images": ["win10"]}},
        "pc03": {"cache": {"size": "40GiB", "free": "28GiB",
                           "images": [{"name": "win10", "state": "stale"}]}},
    })  # fmt: skip
    s = Service(tmp_path, data)
    yield s
    s.database.close()


def _get(svc: Service, url: str, **headers: str) -> Any:
    return svc.client.get(url, headers={"Authorization": f"Bearer {svc.admin}", **headers})


def _post(svc: Service, url: str, form: dict[str, str]) -> Any:
    return svc.client.post(url, headers={"Authorization": f"Bearer {svc.admin}"}, data=form)


def _errors(html: str) -> dict[str, str]:
    """The non-empty field errors of a form answer."""
    return {
        m[1]: m[2]
        for m in re.finditer(r'<span class="error" id="err-([\w]*)"[^>]*>([^<]+)</span>', html)
    }


def _operations(svc: Service) -> list[Any]:
    return list(svc.console("GET", "/api/v1/operations").json()["operations"])


WHOLE_ROOM = json.dumps({"classroom": "aula1"})


def test_the_deploy_wizard_refuses_a_direct_method_by_its_field_and_submits_nothing(
    wiz: Service,
) -> None:
    page = _get(wiz, "/ui/deploy?classroom=aula1")
    assert page.status_code == 200
    offered = re.findall(r'name="method" value="([^"]+)"', page.text)
    assert offered == ["UNICAST-CACHE", "MULTICAST-CACHE", "TORRENT-CACHE"]
    form = {"form": "restore", "mode": "deploy", "scope": WHOLE_ROOM, "part": "1:1",
            "image": "win10", "method": "UNICAST-DIRECT"}  # fmt: skip
    reply = _post(wiz, "/ui/submit", form)
    errors = _errors(reply.text)
    assert list(errors) == ["method"]
    assert "always goes through the CACHE" in errors["method"]
    assert _operations(wiz) == []


def test_the_wizard_preview_fails_the_computer_without_a_cache_and_switches_nobody(
    wiz: Service,
) -> None:
    form = {"form": "restore", "mode": "update_cache", "scope": WHOLE_ROOM, "part": "1:1",
            "image": "win10", "method": "TORRENT-CACHE", "torrent_mode": "peer",
            "torrent_time": "60"}  # fmt: skip
    html = _post(wiz, "/ui/preview", form).text
    assert 'data-method="TORRENT-CACHE">23 × TORRENT-CACHE' in html
    assert "switched" not in html
    row = re.search(r'<tr class=" failed" data-pc="pc24">(.*?)</tr>', html)
    assert row and "error 15" in row[1] and "OG_ERR_NOTCACHE" in row[1]
    # the Restore command on the same computers switches pc24 instead
    html = _post(wiz, "/ui/preview", {**form, "mode": "restore"}).text
    assert re.search(r'<tr class="switched" data-pc="pc24"><td>pc24</td><td>TORRENT-CACHE</td>'
                     r"<td>UNICAST-DIRECT</td>", html)  # fmt: skip


def test_the_create_form_shows_a_bad_name_by_its_field_and_submits_nothing(
    wiz: Service,
) -> None:
    page = _get(wiz, "/ui/create?classroom=aula1&pc=pc01")
    assert "<option selected>pc01</option>" in page.text
    form = {"form": "create", "computer": "pc01", "part": "1:2", "target": "REPO"}
    errors = _errors(_post(wiz, "/ui/submit", {**form, "name": "bad name!"}).text)
    assert list(errors) == ["name"] and "invalid image name" in errors["name"]
    assert list(_errors(_post(wiz, "/ui/submit", {**form, "name": ""}).text)) == ["name"]
    assert _operations(wiz) == []
    # a good one: the preview is the createImage call and the version it publishes
    html = _post(wiz, "/ui/preview", {**form, "name": "win10"}).text
    assert "[createImage] 1 2 REPO /win10" in html and "r2" in html
    reply = _post(wiz, "/ui/submit", {**form, "name": "ubuntu-new"})
    assert reply.status_code == 204 and reply.headers["HX-Redirect"].startswith("/ui/operations/")
    (op,) = _operations(wiz)
    assert op["kind"] == "create" and op["spec"]["image"] == "ubuntu-new"


def test_a_unicast_partition_clone_is_refused_by_its_field_and_not_submitted(
    wiz: Service,
) -> None:
    form = {"form": "clone", "master": "pc01", "part": "1:1", "clone_method": "UNICAST",
            "scope": json.dumps({"computers": ["pc01", "pc02", "pc03"]})}  # fmt: skip
    errors = _errors(_post(wiz, "/ui/submit", form).text)
    assert list(errors) == ["clone_method"] and "multicast only" in errors["clone_method"]
    assert _operations(wiz) == []
    html = _post(wiz, "/ui/preview", {**form, "clone_method": "MULTICAST"}).text
    assert "2 × MULTICAST-DIRECT" in html and 'data-pc="pc01"' not in html  # not the MASTER


def test_boot_once_and_boot_target_are_previewed_per_computer(wiz: Service) -> None:
    scope = json.dumps({"computers": ["pc01", "pc02"]})
    once = _post(wiz, "/ui/preview", {"form": "boot", "part": "1:2", "scope": scope}).text
    assert "boot 1:2 directly from the live client" in once
    target = _post(wiz, "/ui/preview",
                   {"form": "boot", "part": "1:1", "scope": scope, "permanent": "on"}).text  # fmt: skip
    assert target.count("set boot target 1:1 (Netboot avanzado); reboot") == 2


def test_the_catalogue_lists_versions_checksums_and_who_holds_a_copy(wiz: Service) -> None:
    from ogref.model import Filesystem, Image
    from ogref.service import store

    with wiz.database.transaction() as s:
        store.add_image_version(s, Image("win10", Filesystem.NTFS, 17 << 30, 9 << 30,
                                         checksum="0123456789abcdef0123456789abcdef"))  # fmt: skip
    wiz.start()  # a restarted service reads the new version (a create's publish does it live)
    html = _get(wiz, "/ui/catalogue").text
    rows = re.findall(r'<tr data-image="win10" data-revision="(\d)"', html)
    assert rows == ["2", "1"]  # newest first, the previous one kept
    assert "0123456789abcdef0123456789abcdef" in html and "NTFS" in html
    assert "17.0 GiB" in html and "9.0 GiB" in html
    holders = dict(re.findall(r'<span class="holder" data-pc="(\w+)" data-how="([^"]+)"', html))
    assert holders == {"pc01": "current", "pc02": "current", "pc03": "stale"}


def test_the_catalogue_and_the_api_show_a_chunked_image(wiz: Service) -> None:
    from ogref.model import Filesystem, Image, ImageFormat
    from ogref.service import store

    with wiz.database.transaction() as s:
        store.add_image_version(s, Image("win10", Filesystem.NTFS, 17 << 30, 9 << 30,
                                         checksum="c" * 64, format=ImageFormat.CHUNKED))  # fmt: skip
    wiz.start()
    html = _get(wiz, "/ui/catalogue").text
    formats = re.findall(r'<td class="format" data-format="(\w+)"', html)
    assert formats[:2] == ["chunked", "partclone"]  # r2 (chunked), then r1
    reply = wiz.console("GET", "/api/v1/computers/pc01/images?disk=1&partition=1")
    listed = reply.json()["same_filesystem"] + reply.json()["other_filesystem"]
    assert [i["format"] for i in listed if i["name"] == "win10"] == ["chunked"]


def test_the_catalogue_counts_the_caches_the_service_filled(wiz: Service) -> None:
    from ogref.service import store

    sub = wiz.console("POST", "/api/v1/operations", json={"operation": {"update_cache": {
        "image": "win10", "method": "UNICAST-CACHE", "to": "pc05"}}})  # fmt: skip
    op = sub.json()["op"]
    with wiz.database.transaction() as s:
        store.finish_record(s, op, "pc05", store.RecordResult(0, "", method_used="UNICAST-CACHE"))
    html = _get(wiz, "/ui/catalogue").text
    assert f'data-pc="pc05" data-how="#{op}"' in html


def test_a_range_names_the_computers_the_server_would_expand(wiz: Service) -> None:
    reply = _get(wiz, "/ui/range?classroom=aula1&range=pc03-pc06,pc09")
    assert reply.json() == {"names": ["pc03", "pc04", "pc05", "pc06", "pc09"]}
    for bad in ("pc03-", "pc10-pc03", "lab01"):
        reply = _get(wiz, f"/ui/range?classroom=aula1&range={bad}")
        assert reply.status_code == 422 and reply.json()["error"], bad


def test_a_page_in_spanish_uses_the_seeds_terms(wiz: Service) -> None:
    es = _get(wiz, "/ui/classrooms/aula1", **{"Accept-Language": "es-ES,es;q=0.9,en;q=0.5"}).text
    assert '<html lang="es">' in es
    for term in ("Aula aula1", ">Restaurar<", ">Asistente de despliegue<", ">Crear imagen<",
                 ">Clonar partición<", ">Catálogo de imágenes<", "ogLive en espera"):  # fmt: skip
        assert term in es, term
    wizard = _get(wiz, "/ui/deploy?classroom=aula1", **{"Accept-Language": "es"}).text
    assert "Solo actualizar la caché" in wizard and ">Imagen<" in wizard
    # the cookie the language links set wins over the browser's language
    wiz.client.cookies.set("lang", "en")
    en = _get(wiz, "/ui/classrooms/aula1", **{"Accept-Language": "es"}).text
    wiz.client.cookies.clear()
    assert '<html lang="en">' in en and ">Restore<" in en


def test_every_string_of_the_console_has_its_spanish_translation() -> None:
    from babel.messages.pofile import read_po

    from ogref.service.web import i18n

    with i18n.catalogue("es").open("rb") as f:
        po = read_po(f, locale="es")
    translated = {m.id for m in po if m.id and m.string}
    assert i18n.messages() - translated == set()
    assert {"Restore": "Restaurar", "Classroom": "Aula", "Computer": "Equipo",
            "Image": "Imagen", "Repository": "Repositorio",
            "Deploy wizard": "Asistente de despliegue", "Create image": "Crear imagen",
            "Clone partition": "Clonar partición"}.items() <= {
        m.id: m.string for m in po}.items()  # fmt: skip


def _luminance(hex_colour: str) -> float:
    h = hex_colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    channels = [int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_the_status_colours_are_readable_on_a_projector() -> None:
    """Every status tile's text against its colour meets WCAG AA (4.5:1) and the type is large."""
    css = (WEB / "static" / "console.css").read_text()
    default_fg = re.search(r"--fg:\s*(#[0-9a-fA-F]+)", css)
    assert default_fg
    rules = re.findall(r'((?:\[data-status="\w+"\](?:,\s*)?)+)\s*\{([^}]*)\}', css)
    seen = set()
    for selectors, body in rules:
        bg = re.search(r"background:\s*(#[0-9a-fA-F]+)", body)
        if not bg:
            continue
        fg = re.search(r"(?<!-)color:\s*(#[0-9a-fA-F]+)", body)
        for status in re.findall(r'"(\w+)"', selectors):
            seen.add(status)
            ratio = _contrast(bg[1], fg[1] if fg else default_fg[1])
            assert ratio >= 4.5, f"{status}: {ratio:.2f}:1"
    from ogref.model import ClientStatus

    assert seen == {s.value for s in ClientStatus}
    root = re.search(r":root\s*\{[^}]*font-size:\s*(\d+)px", css)
    assert root and int(root[1]) >= 18
    small = [float(x) for x in re.findall(r"li\.pc [^{]*\{[^}]*font-size:\s*([\d.]+)rem", css)]
    assert small and min(small) >= 0.9
