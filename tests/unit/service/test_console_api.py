"""The console's own calls — what the Restore form and the wizards need from the service: the
per-computer plan before sending (from the decision core, not recomputed), the two image
columns of a partition, a command written in the request (not only a site file's operation),
and a bad value answered with the field it is in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ogref.site import read_yaml, site_part

from .test_api import Service, _teacher_token
from .test_api import svc as svc  # a fixture

ROOT = Path(__file__).resolve().parents[3]
SEED = ROOT / "scenarios" / "seed-35pc-torrent-cache.yaml"


@pytest.fixture
def seed(tmp_path: Path) -> Any:
    data, _ = site_part(read_yaml(SEED))
    s = Service(tmp_path, data)
    yield s
    s.database.close()


def _seed_restore() -> dict[str, Any]:
    data, _ = site_part(read_yaml(SEED))
    op = data["operations"][0]
    kind = next(iter(op.keys() - {"at"}))
    return {kind: op[kind]}


def test_the_preview_of_the_seeds_restore_is_33_torrent_and_2_unicast(seed: Service) -> None:
    (kind, command), = _seed_restore().items()  # fmt: skip
    reply = seed.console("POST", "/api/v1/plan", json={"mode": kind, "command": command})
    assert reply.status_code == 200, reply.text
    plan = reply.json()
    assert plan["summary"] == {"TORRENT-CACHE": 33, "UNICAST-DIRECT": 2}
    switched = [c for c in plan["computers"] if c["switched"]]
    assert len(switched) == 2 and all(c["reasons"] for c in switched)


def test_a_command_in_the_request_runs_and_is_recorded(svc: Service) -> None:
    op = {
        "restore": {
            "image": "win10",
            "method": "UNICAST-DIRECT",
            "to": {"classroom": "aula1", "group": "fila1"},
        }
    }
    reply = svc.console("POST", "/api/v1/operations", json={"operation": op})
    assert reply.status_code == 200, reply.text
    sub = reply.json()
    assert sorted(sub["computers"]) == ["pc01", "pc02"]
    status = svc.console("GET", f"/api/v1/operations/{sub['op']}").json()
    assert status["kind"] == "restore" and len(status["records"]) == 2


@pytest.mark.parametrize(
    ("operation", "field"),
    [
        ({"restore": {"image": "win10", "method": "FOO", "to": {"classroom": "aula1"}}},
         "restore.method"),
        ({"restore": {"image": "win10", "method": "MULTICAST-CACHE",
                      "multicast": "9000:duplex:239.1.1.1:70M:10:60",
                      "to": {"classroom": "aula1"}}}, "restore.multicast"),
        ({"restore": {"image": "win10", "to": {"group": "fila1"}}}, "restore.to"),
        ({"restore": {"image": "win10"}, "boot": {"to": {"classroom": "aula1"}}}, None),
    ],
)  # fmt: skip
def test_a_bad_command_is_refused_naming_its_field(
    svc: Service, operation: dict[str, Any], field: str | None
) -> None:
    before = svc.console("GET", "/api/v1/computers").json()
    reply = svc.console("POST", "/api/v1/operations", json={"operation": operation})
    assert reply.status_code == 422, reply.text
    detail = reply.json()["detail"]
    assert detail["field"] == field and detail["message"]
    assert svc.console("GET", "/api/v1/computers").json() == before  # nothing queued


def test_an_unknown_image_in_a_preview_is_a_422_with_its_opengnsys_code(svc: Service) -> None:
    reply = svc.console("POST", "/api/v1/plan", json={"command": {
        "image": "nope", "method": "UNICAST-DIRECT", "to": {"classroom": "aula1"}}})  # fmt: skip
    assert reply.status_code == 422
    assert reply.json()["code"] == 2 and reply.json()["name"] == "OG_ERR_NOTFOUND"


def test_the_restore_form_lists_images_of_the_same_filesystem_first(svc: Service) -> None:
    reply = svc.console("GET", "/api/v1/computers/pc01/images?disk=1&partition=1")
    assert reply.status_code == 200, reply.text
    cols = reply.json()
    names = [i["name"] for i in cols["same_filesystem"] + cols["other_filesystem"]]
    assert names == ["win10"]
    assert svc.console("GET", "/api/v1/computers/pc01/images?partition=9").status_code == 422


def test_a_teacher_cannot_preview_another_classroom(svc: Service) -> None:
    token = _teacher_token(svc, ["aula2"])
    reply = svc.client.post(
        "/api/v1/plan",
        headers={"Authorization": f"Bearer {token}"},
        json={"command": {"image": "win10", "method": "UNICAST-DIRECT",
                          "to": {"classroom": "aula1"}}},
    )  # fmt: skip
    assert reply.status_code == 403
