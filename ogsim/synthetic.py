"""Synthetic scenarios built from a few parameters (N, method, image, link, loss, disk…).

Used by the benchmark, the sweep and the model validations: they build the same YAML-shaped
mapping a scenario file holds and load it through :func:`ogsim.scenario.build_scenario`, so
generated and written scenarios go through one schema.  Generates data only.
"""

from __future__ import annotations

from typing import Any

from ogsim.scenario import Scenario, build_scenario


def synthetic(
    n: int,
    method: str,
    *,
    data: str = "30GiB",
    stored: str | None = None,
    link: str = "1Gbit",
    uplink: str = "1Gbit",
    loss: str = "0%",
    write: str = "150MB/s",
    random_write: str | None = None,
    piece_cache: str | None = None,
    read: str | None = None,
    decompress: str = "400MB/s",
    stall: str | None = None,
    stall_factor: float | None = None,
    slice_rates: str | list[float] | None = None,
    mcast_rate: int = 999,
    torrent: str = "peer:60",
    smb_overhead: str = "8%",
    repo_hw: dict[str, Any] | None = None,
    repeat: int = 1,  # the same restore this many times (the command queue runs them in turn)
    slow_write: str | None = None,  # the first computer's disk writes at this rate (a straggler)
    postconf: bool = False,
    per_room: int = 250,  # one /24 classroom each; more rooms are routed to the repository
    seed: int = 1,
    name: str | None = None,
    sim: dict[str, Any] | None = None,
    engine: dict[str, Any] | None = None,
) -> Scenario:
    """A one-repository site with ``n`` identical computers restored by ``method`` at t=0."""
    stored = stored or data
    disk: dict[str, Any] = {"write": write}
    if random_write:
        disk["random_write"] = random_write
    if piece_cache:
        disk["piece_cache"] = piece_cache
    if read:
        disk["read"] = read
    if stall:
        disk["stall"] = stall
        disk["stall_factor"] = stall_factor or 8.0
    if slice_rates is not None:
        disk["slice_rates"] = slice_rates
    hw = {
        "link": {"rate": link, "loss": loss},
        "disk": disk,
        "decompress": decompress,
        "inspect": "0.5s",
    }
    slow_disk = {**disk, "write": slow_write}
    rooms = []
    left, idx = n, 0
    while left > 0:
        count = min(per_room, left)
        idx += 1
        rooms.append(
            {
                "name": f"room{idx:02d}",
                "subnet": f"10.{idx // 200}.{idx % 200}.0/24",
                "multicast": f"{9000 + 2 * (idx % 50)}:full-duplex:239.194.{idx}.1:{mcast_rate}M:{count}:60",
                "torrent": torrent,
                "defaults": {
                    "disks": [
                        {
                            "number": 1,
                            "size": "2TiB",
                            "partitions": [{"number": 1, "size": "1TiB", "fs": "NTFS"}],
                        }
                    ],
                    "cache": {"size": "1000GiB"},
                    "hw": hw,
                },
                "computers": {
                    "count": count,
                    "prefix": f"r{idx:02d}pc",
                    "first_host": 2,
                    **(
                        {"overrides": {_first(idx, count): {"hw": {"disk": slow_disk}}}}
                        if slow_write and idx == 1
                        else {}
                    ),
                },
            }
        )
        left -= count
    doc: dict[str, Any] = {
        "name": name or f"synthetic-{method.lower()}-{n}",
        "seed": seed,
        "repositories": [
            {
                "name": "repo",
                "address": "10.0.1.1" if n <= per_room else "10.250.0.1",
                "images": [{"name": "img", "filesystem": "NTFS", "data": data, "stored": stored}],
                "hw": {
                    "uplink": uplink,
                    "smb_overhead": smb_overhead,
                    "read": "100Gbit",
                    **(repo_hw or {}),
                },
            }
        ],
        "engine": engine or {},
        "classrooms": rooms,
        "operations": [
            {"at": 0, "restore": {"image": "img", "method": method, "postconf": postconf}}
        ]
        * repeat,
        "backends": {"sim": sim or {}},
    }
    return build_scenario(doc, source=f"<synthetic {method} N={n}>")


def _first(room: int, count: int) -> str:
    """The name of a generated classroom's first computer."""
    return f"r{room:02d}pc{1:0{max(2, len(str(count)))}d}"
