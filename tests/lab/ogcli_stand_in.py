"""What ogCLI does against an ogServer, reduced to the calls of a classroom restore, run inside a
lab namespace (``python -m tests.lab.ogcli_stand_in URL TOKEN IMAGE TYPE``): the tree, the
connected clients, a wake-up, the restore, then ``GET /clients`` until every client has a
result.  Prints the transcript as one JSON object (for tests/lab/test_netns_ogserver.py)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import httpx


def main(url: str, token: str, image: str, kind: str) -> dict[str, Any]:
    http = httpx.Client(base_url=url, headers={"Authorization": token}, timeout=10)
    out: dict[str, Any] = {"scopes": http.get("/scopes").json()}
    rooms = out["scopes"]["scope"][0]["scope"]
    ips = [pc["ip"] for room in rooms for pc in room["scope"] if pc["type"] == "computer"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the live clients come up and report
        clients = http.get("/clients").json()["clients"]
        if len(clients) == len(ips) and all(c["state"] == "OPG" for c in clients):
            break
        time.sleep(0.2)
    out["clients_before"] = clients
    out["wol"] = http.post("/wol", json={"type": "broadcast", "clients": ips}).status_code
    images = http.get("/images").json()["images"]
    found = next(i for i in images if i["name"] == image)
    repos = http.get("/repositories").json()["repositories"]
    body = {"clients": ips, "disk": "1", "partition": "1", "name": found["name"],
            "id": str(found["id"]), "profile": str(found["software_id"]),
            "repository": repos[0]["ip"], "type": kind}  # fmt: skip
    out["restore"] = http.post("/image/restore", json=body).status_code
    states: set[str] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        clients = http.get("/clients").json()["clients"]
        states |= {c["state"] for c in clients}
        if all(c["last_cmd"]["result"] != "unknown" for c in clients):
            break
        time.sleep(0.2)
    out["states_seen"] = sorted(states)
    out["clients_after"] = clients
    out["info"] = http.request("GET", "/client/info", json={"client": [ips[0]]}).json()
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5])))
