"""``python -m ogsim.lab.netns.bench``: the lab benchmark (issue item 7) and the simulator's
calibration against it (item 8), side by side in one run.

For each method (default UNICAST-DIRECT, MULTICAST-DIRECT, TORRENT-CACHE) and each N (default
1, 4, 16, 35) it builds one classroom of N clients with 100 Mbit/s shaped links and a 100 Mbit/s
repository uplink, deploys one image, and records the deploy time T(N) (console command to the
last computer's end, verification excluded), T(N)/T(1), the fraction of the link rate reached by
the transfer, and the CPU headroom measured during the run; a CPU-bound run is marked
untrustworthy instead of being published as a network result.  The same scenario runs on the
simulator (scale 1, the lab's real image sizes) and the report gives predicted vs measured.
Writes ``bench.json`` and ``bench.md`` in ``--out``.  Needs root.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ogsim.lab.netns.backend import LabOptions, run
from ogsim.results import Results
from ogsim.scenario import Scenario, build_scenario

GOALS = {
    "MULTICAST": "T(16)/T(1) ≤ 1.10, link fraction ≥ 0.9",
    "TORRENT": "T(16)/T(1) ≤ 1.5",
    "UNICAST": "T(N)/T(1) ≈ N (shared uplink)",
}


def bench_scenario(method: str, n: int, image_mib: int, rate: str = "100Mbit") -> Scenario:
    """One classroom of ``n`` clients deploying a ``image_mib`` MiB (data) image by ``method``."""
    data = {
        "name": f"bench-{method.lower()}-{n}",
        "seed": 11,
        "repositories": [
            {
                "name": "repo",
                "address": "10.0.1.1",
                "images": [
                    {
                        "name": "bench",
                        "filesystem": "EXT4",
                        "data": f"{image_mib}MiB",
                        "stored": f"{image_mib // 2}MiB",
                    }
                ],
                "hw": {"uplink": rate},
            }
        ],
        "engine": {"RESTOREPROTOCOLNOTCACHE": "UNICAST", "MCASTERRORSESSION": 60},
        "classrooms": [
            {
                "name": "aula",
                "subnet": "10.0.1.0/24",
                "multicast": f"9000:full-duplex:239.194.1.1:90M:{n}:30",
                "torrent": "peer:0",
                "defaults": {
                    "repository": "repo",
                    "disks": [
                        {
                            "number": 1,
                            "size": f"{image_mib * 4}MiB",
                            "partitions": [
                                {"number": 1, "size": f"{image_mib * 2}MiB", "fs": "EXT4"}
                            ],
                        }
                    ],
                    "cache": {"size": f"{image_mib * 2}MiB", "free": f"{image_mib * 2}MiB"},
                    "hw": {"link": {"rate": rate}},
                },
                "computers": {"count": n, "first_host": 11},
            }
        ],
        "operations": [{"at": 0, "restore": {"image": "bench", "method": method, "to": "all"}}],
        "backends": {"sim": {}, "netns": {"scale": 1.0}},
    }
    return build_scenario(data, source=f"<bench {method} N={n}>")


def _transfer_s(r: Results) -> float:
    """Longest network phase (fetch, or a DIRECT restore) among ok computers."""
    best = 0.0
    for c in r.operations[0].computers:
        for p in c.phases:
            if p.name == "fetch" or (p.name == "restore" and "DIRECT" in p.detail):
                best = max(best, p.end - p.start)
    return best


def measure(method: str, n: int, image_mib: int, out: Path) -> dict[str, Any]:
    """One lab run and its simulator prediction."""
    sc = bench_scenario(method, n, image_mib)
    t = time.monotonic()
    r = run(sc, None, out / f"{method}-{n}", LabOptions(scale=1.0, verify=False, torrent_stall=120))
    wall = time.monotonic() - t
    op = r.operations[0]
    ok = sum(1 for c in op.computers if c.status == "ok")
    stored = next(iter(r.metrics.extra["images"].values()))["stored"]
    transfer = _transfer_s(r)
    row: dict[str, Any] = {
        "method": method,
        "n": n,
        "ok": ok,
        "T": op.makespan,
        "transfer_s": round(transfer, 3),
        "stored_bytes": stored,
        "wall_s": round(wall, 1),
        "link_fraction": round(stored * 8 / transfer / 100e6, 3) if transfer else None,
        **{
            k: r.metrics.extra[k]
            for k in ("cpu_idle_mean", "cpu_idle_min", "cpu_saturated_share", "cpu_bound")
        },
    }
    try:
        from ogsim.simulator import simulate

        sim_sc = _with_real_size(sc, stored, r.metrics.extra["images"]["bench"]["data"])
        sim = simulate(sim_sc, None)
        row["sim_T"] = sim.operations[0].makespan
    except Exception as exc:  # the lab number stands without a prediction
        row["sim_error"] = f"{type(exc).__name__}: {exc}"
    return row


def _with_real_size(sc: Scenario, stored: int, data: int) -> Scenario:
    raw = json.loads(json.dumps(sc.spec.model_dump(mode="json", by_alias=True, exclude_none=True)))
    raw["repositories"][0]["images"][0].update(stored=stored, data=data)
    return build_scenario(raw, source=sc.source)


def calibrate(rows: list[dict[str, Any]], image_mib: int) -> None:
    """(Re)compute the simulator's prediction of every row from the lab's real image size."""
    from ogsim.simulator import simulate

    for row in rows:
        sc = bench_scenario(row["method"], row["n"], image_mib)
        sim_sc = _with_real_size(sc, row["stored_bytes"], row.get("data_bytes", image_mib << 20))
        try:
            row["sim_T"] = simulate(sim_sc, None).operations[0].makespan
            row.pop("sim_error", None)
        except Exception as exc:
            row["sim_error"] = f"{type(exc).__name__}: {exc}"


def report(rows: list[dict[str, Any]]) -> str:
    """The Markdown report: T(N), ratios, link fraction, CPU headroom, sim vs lab."""
    lines = [
        "# netns lab benchmark (100 Mbit/s links, 100 Mbit/s repository uplink)",
        "",
        "| method | N | ok | T(N) s | T(N)/T(1) | link fraction | CPU idle mean/min | "
        "trust | sim T s | sim error |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    base: dict[str, float] = {}
    for r in rows:
        if r["n"] == 1 and r["T"]:
            base[r["method"]] = r["T"]
    for r in rows:
        t1 = base.get(r["method"])
        ratio = f"{r['T'] / t1:.2f}" if t1 and r["T"] else "-"
        trust = "CPU-BOUND (untrustworthy)" if r["cpu_bound"] else "ok"
        frac = r["link_fraction"]
        if frac is not None and r["method"].startswith("UNICAST"):
            frac = f"{frac * r['n']:.3f} (uplink, shared)"
        sim = r.get("sim_T")
        err = f"{(sim - r['T']) / r['T']:+.0%}" if sim and r["T"] else r.get("sim_error", "-")
        lines.append(
            f"| {r['method']} | {r['n']} | {r['ok']}/{r['n']} | {r['T']} | {ratio} | "
            f"{frac} | {r['cpu_idle_mean']:.2f}/{r['cpu_idle_min']:.2f} | "
            f"{trust} | {sim if sim is not None else '-'} | {err} |"
        )
    lines += ["", "Goals: " + "; ".join(f"{k}: {v}" for k, v in GOALS.items()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ogsim.lab.netns.bench")
    p.add_argument("--methods", default="UNICAST-DIRECT,MULTICAST-DIRECT,TORRENT-CACHE")
    p.add_argument("--n", default="1,4,16,35")
    p.add_argument("--image-mib", type=int, default=64)
    p.add_argument("--out", type=Path, default=Path("reports/bench-lab"))
    p.add_argument(
        "--calibrate-only",
        action="store_true",
        help="recompute the simulator column of an existing bench.json",
    )
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    if a.calibrate_only:
        rows = json.loads((a.out / "bench.json").read_text())
        calibrate(rows, a.image_mib)
        (a.out / "bench.json").write_text(json.dumps(rows, indent=1))
        (a.out / "bench.md").write_text(report(rows))
        print(report(rows))
        return 0
    rows = []
    for method in a.methods.split(","):
        for n in (int(x) for x in a.n.split(",")):
            row = measure(method, n, a.image_mib, a.out / "runs")
            rows.append(row)
            print(json.dumps(row), flush=True)
            (a.out / "bench.json").write_text(json.dumps(rows, indent=1))
            (a.out / "bench.md").write_text(report(rows))
    print(report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
