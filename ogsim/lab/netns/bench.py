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
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from ogsim.lab.netns.calibration import LabHw, breakdown, dirty_limit, fit, measure_write_rate
from ogsim.lab.netns.cpu import CpuMonitor
from ogsim.lab.netns.plot import plot
from ogsim.results import Results
from ogsim.scenario import Scenario, build_scenario

# multicast session rate and FEC: OpenGnSys's defaults, or what a 100 Mbit/s LAN can carry
PROFILES: dict[str, tuple[str, str]] = {
    "opengnsys": ("90M", "8x8/128"),
    "line-rate": ("100M", "none"),
}

GOALS = {
    "MULTICAST": "T(16)/T(1) ≤ 1.10, link fraction ≥ 0.9",
    "TORRENT": "T(16)/T(1) ≤ 1.5",
    "UNICAST": "T(N)/T(1) ≈ N (shared uplink)",
}


BENCH_PIECE = "256KiB"


def bench_scenario(
    method: str,
    n: int,
    image_mib: int,
    rate: str = "100Mbit",
    *,
    lab: LabHw | None = None,
    engine: dict[str, Any] | None = None,
    profile: str = "opengnsys",
) -> Scenario:
    """One classroom of ``n`` clients deploying a ``image_mib`` MiB (data) image by ``method``;
    with ``lab``, the computers and repository carry the lab host's hardware; ``profile`` sets
    the multicast session's rate and the repository's FEC (:data:`PROFILES`)."""
    mcast_rate, fec = PROFILES[profile]
    hw: dict[str, Any] = {"link": {"rate": rate}, **(lab.hw() if lab else {})}
    repo_hw: dict[str, Any] = {"uplink": rate, **(lab.repo_hw() if lab else {})}
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
                        "torrent_piece": BENCH_PIECE,
                        "filesystem": "EXT4",
                        "data": f"{image_mib}MiB",
                        "stored": f"{image_mib // 2}MiB",
                    }
                ],
                "hw": repo_hw,
                "multicast_fec": fec,
            }
        ],
        "engine": {"RESTOREPROTOCOLNOTCACHE": "UNICAST", "MCASTERRORSESSION": 60, **(engine or {})},
        "classrooms": [
            {
                "name": "aula",
                "subnet": "10.0.1.0/24",
                "multicast": f"9000:full-duplex:239.194.1.1:{mcast_rate}:{n}:30",
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
                    "hw": hw,
                },
                "computers": {"count": n, "first_host": 11},
            }
        ],
        "operations": [{"at": 0, "restore": {"image": "bench", "method": method, "to": "all"}}],
        # the bench image stands in for a classroom's multi-GB images: with OpenGnSys's 4 MiB
        # pieces its 64 MiB would be a 16-piece torrent no swarm can share; 256 KiB pieces keep
        # the piece count of a 1 GiB image, on both backends
        "backends": {
            "sim": lab.sim() if lab else {},
            "netns": {"scale": 1.0},
        },
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


def sender_data_phases(log_dir: Path) -> list[float]:
    """Seconds from "Starting transfer" to "Transfer complete" in each udp-sender log (the data
    phase, without rendezvous, process start or the closing handshake)."""

    def stamp(line: str) -> float:
        h, m, s = line.split(" ", 1)[0].split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)

    out = []
    for log in sorted(log_dir.glob("ogAdmRepoMcast.*")):
        if log.suffix == ".out":
            continue
        lines = log.read_text(errors="replace").replace("\r", "\n").splitlines()
        start = next((stamp(x) for x in lines if "Starting transfer" in x), None)
        end = next((stamp(x) for x in lines if "Transfer complete" in x), None)
        if start is not None and end is not None and end >= start:
            out.append(end - start)
    return out


def untrusted(row: dict[str, Any]) -> bool:
    """A run whose CPUs were saturated or whose disks stalled is not a network result."""
    return bool(row["cpu_bound"] or row.get("io_bound"))


def trust_label(row: dict[str, Any]) -> str:
    """``ok``, ``CPU-bound``, ``I/O-bound`` or both."""
    tags = [
        t for t, on in (("CPU-bound", row["cpu_bound"]), ("I/O-bound", row.get("io_bound"))) if on
    ]
    return " + ".join(tags) or "ok"


def host_idle(seconds: float = 3.0) -> float:
    """The host's idle CPU share over ``seconds`` (before a run: is somebody else busy?)."""
    mon = CpuMonitor().start()
    time.sleep(seconds)
    mon.stop()
    return mon.mean_idle


def wait_for_idle(min_idle: float, patience_s: float) -> float:
    """Wait (up to ``patience_s``) until the host is at least ``min_idle`` idle; the last idle."""
    deadline = time.monotonic() + patience_s
    idle = host_idle()
    while idle < min_idle and time.monotonic() < deadline:
        print(f"host busy (idle {idle:.0%} < {min_idle:.0%}): waiting", file=sys.stderr)
        time.sleep(10)
        idle = host_idle()
    return idle


def phase_means(r: Results) -> dict[str, float]:
    """Mean duration of each phase name over the ok computers (what the time went to)."""
    sums: dict[str, list[float]] = {}
    for c in r.operations[0].computers:
        if c.status != "ok":
            continue
        for p in c.phases:
            sums.setdefault(p.name, []).append(p.end - p.start)
    return {k: round(sum(v) / len(v), 3) for k, v in sums.items()}


def measure(
    method: str,
    n: int,
    image_mib: int,
    out: Path,
    *,
    retries: int = 0,
    min_idle: float = 0.0,
    patience_s: float = 600.0,
    profile: str = "opengnsys",
) -> dict[str, Any]:
    """One lab run and its simulator prediction; a CPU-bound run is retried ``retries`` times,
    each attempt after waiting for the host to be ``min_idle`` idle."""
    from ogsim.lab.netns.backend import LabOptions, run  # the lab's extras: only to measure

    sc = bench_scenario(method, n, image_mib, profile=profile)
    attempt = 0
    while True:
        idle_before = wait_for_idle(min_idle, patience_s) if min_idle > 0 else None
        where = out / f"{method}-{n}"
        if where.exists():  # an earlier attempt: keep it aside
            shutil.rmtree(where.with_suffix(".prev"), ignore_errors=True)
            where.rename(where.with_suffix(".prev"))
        t = time.monotonic()
        r = run(sc, None, where, LabOptions(scale=1.0, verify=False, torrent_stall=120))
        wall = time.monotonic() - t
        extra = r.metrics.extra
        if not (extra["cpu_bound"] or extra.get("io_bound")) or attempt >= retries:
            break
        attempt += 1
        print(f"{method} N={n}: {trust_label(extra)}, retry {attempt}/{retries}", file=sys.stderr)
    op = r.operations[0]
    ok = sum(1 for c in op.computers if c.status == "ok")
    stored = next(iter(r.metrics.extra["images"].values()))["stored"]
    transfer = _transfer_s(r)
    phases = sender_data_phases(where / "lab" / "logs" / "mcast")
    row: dict[str, Any] = {
        "method": method,
        "profile": profile,
        "n": n,
        "ok": ok,
        "T": op.makespan,
        "transfer_s": round(transfer, 3),
        "stored_bytes": stored,
        "data_bytes": r.metrics.extra["images"]["bench"]["data"],
        "wall_s": round(wall, 1),
        "attempts": attempt + 1,
        "host_idle_before": round(idle_before, 3) if idle_before is not None else None,
        "phases": phase_means(r),
        "breakdown": breakdown(r),
        "link_fraction": round(stored * 8 / transfer / 100e6, 3) if transfer else None,
        # multicast only: the sender's data phase alone (udpcast's own start and end excluded)
        "wire_fraction": round(stored * 8 / max(phases) / 100e6, 3) if phases else None,
        **{
            k: r.metrics.extra[k]
            for k in ("cpu_idle_mean", "cpu_idle_min", "cpu_saturated_share", "cpu_bound")
        },
        "io_stall_share": r.metrics.extra.get("io_stall_share"),
        "io_bound": bool(r.metrics.extra.get("io_bound", False)),
    }
    return row


def _with_real_size(sc: Scenario, stored: int, data: int) -> Scenario:
    raw = json.loads(json.dumps(sc.spec.model_dump(mode="json", by_alias=True, exclude_none=True)))
    raw["repositories"][0]["images"][0].update(stored=stored, data=data)
    return build_scenario(raw, source=sc.source)


def lab_sized(sc: Scenario, lab: Results) -> Scenario:
    """``sc`` with the images the lab run made: their real stored, data, (a chunked image's)
    used and (a chunked differential image's) added bytes, at scale 1 on the simulator — what the simulator must
    be given to predict that lab run."""
    raw = json.loads(json.dumps(sc.spec.model_dump(mode="json", by_alias=True, exclude_none=True)))
    made = lab.metrics.extra.get("images", {})
    for image in raw["repositories"][0]["images"]:
        real = made.get(image["name"])
        if real is None:
            continue
        image.update(stored=int(real["stored"]), data=int(real["data"]))
        if "added" in real and image.get("kind") == "diff":
            image["added"] = int(real["added"])
        if real.get("used") and image.get("format") == "chunked":
            image["used"] = int(real["used"])
    if raw.get("backends", {}).get("sim") is not None:
        raw["backends"]["sim"].pop("scale", None)
    return build_scenario(raw, source=sc.source)


OPENGNSYS_SIM = {"STARTDELAY": "OPENGNSYS"}  # what the simulator modelled before calibration


def predict(
    row: dict[str, Any], image_mib: int, lab: LabHw | None, engine: dict[str, Any]
) -> float:
    """The simulator's deploy time for a lab row (the lab's real image sizes)."""
    from ogsim.simulator import simulate

    sc = bench_scenario(
        row["method"],
        row["n"],
        image_mib,
        lab=lab,
        engine=engine,
        profile=row.get("profile", "opengnsys"),
    )
    sim_sc = _with_real_size(sc, row["stored_bytes"], row.get("data_bytes", image_mib << 20))
    makespan = simulate(sim_sc, None).operations[0].makespan
    return round(float(makespan or 0.0), 3)


def calibrate(
    rows: list[dict[str, Any]],
    image_mib: int,
    runs: Path | None = None,
    write_rate: float | None = None,
    dirty_bytes: float | None = None,
) -> LabHw:
    """Fit the lab host's hardware from the N = 1 rows, then predict every row twice: with the
    simulator's previous setup (classroom-PC defaults, OpenGnSys's random start delays:
    ``sim_before``) and with the lab host's hardware and the engine's real policy (``sim_T``)."""
    for row in rows:
        results = runs / f"{row['method']}-{row['n']}" / "results.json" if runs else None
        if "breakdown" not in row and results is not None and results.exists():
            row["breakdown"] = breakdown(Results.model_validate_json(results.read_text()))
    bare = {"STARTDELAY": "NONE"}

    def residual(row: dict[str, Any], hw: LabHw) -> float:
        return predict(row, image_mib, hw, bare)

    lab = fit(rows, residual, write_rate, dirty_bytes)
    for row in rows:
        try:
            row["sim_before"] = predict(row, image_mib, None, OPENGNSYS_SIM)
            row["sim_T"] = predict(row, image_mib, lab, bare)
            row.pop("sim_error", None)
        except Exception as exc:  # the lab number stands without a prediction
            row["sim_error"] = f"{type(exc).__name__}: {exc}"
    return lab


def _err(sim: float | None, lab: float | None) -> str:
    return f"{(sim - lab) / lab:+.0%}" if sim is not None and lab else "-"


def report(rows: list[dict[str, Any]], lab: LabHw | None = None) -> str:
    """The Markdown report: the bench table (T(N), ratios, link fraction, CPU headroom) and the
    calibration table (predicted before/after vs measured)."""
    lines = [
        "## netns lab benchmark (100 Mbit/s links, 100 Mbit/s repository uplink)",
        "",
        "| method | N | ok | T(N) s | T(N)/T(1) | link fraction | data-phase fraction "
        "| CPU idle mean/min | I/O stall | host idle before | attempts | trust |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base: dict[str, float] = {}
    for r in rows:
        if r["n"] == 1 and r["T"]:
            base[r["method"]] = r["T"]
    for r in rows:
        t1 = base.get(r["method"])
        ratio = f"{r['T'] / t1:.2f}" if t1 and r["T"] else "-"
        trust = f"{trust_label(r).upper()} (untrustworthy)" if untrusted(r) else "ok"
        frac = r["link_fraction"]
        if frac is not None and r["method"].startswith("UNICAST"):
            frac = f"{frac * r['n']:.3f} (uplink, shared)"
        before = r.get("host_idle_before")
        stall = r.get("io_stall_share")
        io = "-" if stall is None else f"{stall:.0%}"
        lines.append(
            f"| {r['method']} | {r['n']} | {r['ok']}/{r['n']} | {r['T']} | {ratio} | "
            f"{frac} | {r.get('wire_fraction') or '-'} | "
            f"{r['cpu_idle_mean']:.2f}/{r['cpu_idle_min']:.2f} | "
            f"{io} | "
            f"{'-' if before is None else f'{before:.2f}'} | {r.get('attempts', 1)} | {trust} |"
        )
    lines += ["", "Goals: " + "; ".join(f"{k}: {v}" for k, v in GOALS.items()), ""]
    lines += [
        "## Calibration: simulator vs lab (deploy time, s)",
        "",
        "| method | N | lab | trust | sim before | error before | sim after | error after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        trust = trust_label(r)
        fitted = " (fit)" if r["n"] == 1 else ""
        lines.append(
            f"| {r['method']} | {r['n']} | {r['T']} | {trust} | {r.get('sim_before', '-')} | "
            f"{_err(r.get('sim_before'), r['T'])} | {r.get('sim_T', '-')}{fitted} | "
            f"{_err(r.get('sim_T'), r['T'])} |"
        )
    if lab is not None:
        lines += [
            "",
            "Lab host parameters (fitted from " + ", ".join(lab.fitted_from) + "): "
            f"inspect {lab.inspect_s:.3f} s, post-configuration {lab.postconf_s:.3f} s, "
            f"CACHE restore {lab.decompress_rate / 1e6:.1f} MB/s (data), "
            f"disk write {lab.write_rate / 1e6:.0f} MB/s (dd, measured), "
            f"dirty-writeback threshold {lab.dirty_bytes / 2**20:.0f} MiB (measured), "
            f"SMB overhead {lab.smb_overhead:.1%}, udp-sender start-up {lab.mcast_start_s:.2f} s, "
            f"libtorrent start-up {lab.torrent_start_s:.2f} s, "
            f"{lab.cpus} CPU cores shared by the clients' decompression.",
        ]
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ogsim.lab.netns.bench")
    p.add_argument("--methods", default="UNICAST-DIRECT,MULTICAST-DIRECT,TORRENT-CACHE")
    p.add_argument("--n", default="1,4,16,35")
    p.add_argument("--image-mib", type=int, default=64)
    p.add_argument("--retries", type=int, default=2, help="re-runs of a CPU-bound run")
    p.add_argument(
        "--min-idle", type=float, default=0.6, help="wait for this host idle share before a run"
    )
    p.add_argument("--patience", type=float, default=600.0, help="longest wait for an idle host")
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the trusted rows of an existing bench.json; measure the missing and "
        "CPU-bound ones (a trusted re-run replaces a CPU-bound row)",
    )
    p.add_argument("--out", type=Path, default=Path("reports/bench-lab"))
    p.add_argument(
        "--mcast-profile",
        choices=sorted(PROFILES),
        default="opengnsys",
        help="multicast rate and FEC: OpenGnSys's 90M + 8x8/128, or line-rate 100M without FEC",
    )
    p.add_argument(
        "--calibrate-only",
        action="store_true",
        help="recompute the simulator column of an existing bench.json",
    )
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    if a.calibrate_only:
        rows = json.loads((a.out / "bench.json").read_text())
        return _finish(rows, a.image_mib, a.out)
    old: dict[tuple[str, int], dict[str, Any]] = {}
    if a.resume and (a.out / "bench.json").exists():
        old = {(r["method"], r["n"]): r for r in json.loads((a.out / "bench.json").read_text())}
    rows = dict(old)
    for method in a.methods.split(","):
        for n in (int(x) for x in a.n.split(",")):
            prev = old.get((method, n))
            if prev is not None and not untrusted(prev):
                continue
            row = measure(
                method,
                n,
                a.image_mib,
                a.out / "runs",
                retries=a.retries,
                min_idle=a.min_idle,
                patience_s=a.patience,
                profile=a.mcast_profile,
            )
            if prev is not None and untrusted(row) and prev["cpu_idle_mean"] > row["cpu_idle_mean"]:
                row = prev  # neither is trusted: keep the one with more headroom
            rows[(method, n)] = row
            print(json.dumps(row), flush=True)
            (a.out / "bench.json").write_text(json.dumps(list(rows.values()), indent=1))
    order = {m: i for i, m in enumerate(a.methods.split(","))}
    ordered = sorted(rows.values(), key=lambda r: (order.get(r["method"], 99), r["n"]))
    return _finish(ordered, a.image_mib, a.out)


def _finish(rows: list[dict[str, Any]], image_mib: int, out: Path) -> int:
    write = measure_write_rate(out)
    lab = calibrate(rows, image_mib, out / "runs", write, dirty_limit())
    (out / "bench.json").write_text(json.dumps(rows, indent=1))
    (out / "lab-hw.json").write_text(json.dumps(lab.as_dict(), indent=1))
    text = report(rows, lab)
    (out / "bench.md").write_text(text)
    plot(rows, out / "calibration.svg")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
