"""``python -m ogsim.lab.netns.chunked_bench``: s26 (a chunked differential image deployed to
caches holding its base) on the namespace lab and on the simulator, side by side in one run.

1. The lab host's costs are measured (:mod:`ogsim.lab.netns.chunk_costs`: per-chunk SMB
   request and CPU cost, per-directory listing, syncfs, a chunked restore's rate and cores;
   :func:`~ogsim.lab.netns.calibration.measure_write_rate` and the dirty-writeback threshold).
2. s26 runs on the lab with **one** computer (``--fit-runs`` times); from those alone the rest
   is fitted (means): the inspection step (start to fetch less the listings, per step), the
   chunked restore's rate (used bytes ÷ the restore less its final fsync at the measured disk
   rate) and the update's fixed cost (its fetch time less the wire, the per-chunk costs and
   the syncfs).
3. s26 runs on the lab as written (four computers) — the check, nothing fitted from it.
4. The simulator, given the images each lab run made (``lab_sized``) and the lab host's
   hardware, predicts both; the report gives lab vs sim per stage (inspect, fetch, restore: the
   mean over the computers, the lab's min–max) and the makespan, with their ratio.

Writes ``chunked.json`` and ``chunked.md`` in ``--out``.  Root.  Hold the bench lock.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from ogref.site import read_yaml
from ogsim.chunks import chunk_count, directories
from ogsim.lab.netns.calibration import LabHw, dirty_limit, measure_write_rate
from ogsim.results import Results
from ogsim.scenario import Scenario, build_scenario

S26 = Path(__file__).resolve().parents[3] / "scenarios" / "s26-chunked-differential-deploy.yaml"
STAGES = ("start+inspect", "fetch", "restore", "report")
INSPECTIONS = 3  # target, image, cache (UNICAST-CACHE)


def scenario(n: int, raw: dict[str, Any] | None = None) -> Scenario:
    """s26 with ``n`` computers (as written: 4)."""
    doc = copy.deepcopy(raw if raw is not None else read_yaml(S26))
    doc["classrooms"][0]["computers"]["count"] = n
    return build_scenario(doc, source=f"<s26 N={n}>")


def stages(r: Results) -> dict[str, Any]:
    """Per stage, each ok computer's seconds — ``start+inspect``: the operation's start to the
    fetch (the agent's start, the inspections, the core's decisions), ``fetch``, ``restore``,
    ``report``: the restore's end to the computer's end — and the makespan."""
    op = r.operations[0]
    out: dict[str, Any] = {s: [] for s in STAGES}
    for c in op.computers:
        if c.status != "ok" or c.finished is None:
            continue
        fetch = next(p for p in c.phases if p.name == "fetch")
        restore = next(p for p in c.phases if p.name == "restore")
        out["start+inspect"].append(round(fetch.start - op.at, 4))
        out["fetch"].append(round(fetch.end - fetch.start, 4))
        out["restore"].append(round(restore.end - restore.start, 4))
        out["report"].append(round(c.finished - restore.end, 4))
    out["total"] = round(float(op.makespan or 0.0), 4)
    return out


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def fit(costs: dict[str, Any], runs: list[Results], base: LabHw) -> tuple[LabHw, dict[str, Any]]:
    """The lab host's hardware from the measured costs and the N = 1 runs (their means):
    ``(hw, chunks)`` where ``chunks`` is the classroom's ``hw.chunks`` mapping."""
    made = runs[0].metrics.extra["images"]["ubuntu-v2"]
    each = [stages(r) for r in runs]
    st = {s: [x for e in each for x in e[s]] for s in STAGES}
    image = scenario(1).site.repository("repo").image("ubuntu-v2")
    image = dataclasses.replace(
        image,
        stored_size=made["stored"],
        used_size=made.get("used", 0),
        data_size=made["data"],
        added_size=made["added"],
    )
    n = chunk_count(image, made["added"])
    listing = directories(n) * costs["list_s"]
    hw = copy.deepcopy(base)
    hw.inspect_s = max(0.0, (_mean(st["start+inspect"]) - listing) / INSPECTIONS)
    hw.postconf_s = 0.0
    used = made.get("used") or made["data"]
    # the restore's final fsync, at the disk's rate as the simulator runs it on a one-host lab
    # (through the host's shared capacity, like a DIRECT restore's sync)
    fsync = min(used, hw.dirty_bytes) / min(hw.write_rate, hw.cpus * hw.decompress_rate)
    rate = used / max(1e-3, _mean(st["restore"]) - fsync)
    wire = made["added"] * (1 + hw.smb_overhead) / (100e6 / 8)
    flush = min(made["added"], hw.dirty_bytes) / hw.write_rate
    per_chunk = max(costs["chunk_cpu_s"], 0.0)  # alone, the CPU work overlaps the wire
    rest = n * costs["chunk_request_s"] + costs["syncfs_s"] + flush
    setup = max(0.0, _mean(st["fetch"]) - max(wire, n * per_chunk) - rest)
    chunks = {
        "setup": f"{setup:.4f}s",
        "request": f"{costs['chunk_request_s']:.5f}s",
        "cpu": f"{costs['chunk_cpu_s']:.5f}s",
        "list": f"{costs['list_s']:.5f}s",
        "syncfs": f"{costs['syncfs_s']:.4f}s",
        "restore": f"{rate / 1e6:.3f}MB/s",
        "restore_cpu": round(costs.get("restore_cpu") or 1.0, 3),
    }
    return hw, chunks


def sim_of(lab: Results, n: int, hw: LabHw, chunks: dict[str, Any]) -> Results:
    """The simulator's run of s26 with ``n`` computers, the images ``lab`` made and the lab
    host's hardware."""
    from ogsim.lab.netns.bench import lab_sized
    from ogsim.simulator import simulate

    sized = lab_sized(scenario(n), lab)
    raw = json.loads(
        json.dumps(sized.spec.model_dump(mode="json", by_alias=True, exclude_none=True))
    )
    room = raw["classrooms"][0]["defaults"]
    room["hw"] = {"link": room["hw"]["link"], **hw.hw(), "chunks": chunks}
    raw["repositories"][0]["hw"] = {**raw["repositories"][0]["hw"], **hw.repo_hw()}
    raw["backends"]["sim"] = hw.sim()
    return simulate(build_scenario(raw, source=f"<s26 N={n}, lab-sized>"), None)


def table(rows: list[dict[str, Any]]) -> str:
    """The side-by-side table: lab (mean, min–max) vs sim per stage and total, sim/lab."""
    out = [
        "| N | lab run | stage | lab (mean, min–max over PCs) s | sim s | sim / lab |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        idle = row.get("cpu_idle_mean")
        how = "fitted" if row.get("fitted") else "check"
        if idle is not None:
            how += f", CPU idle {idle:.2f}{' (CPU-bound)' if row.get('cpu_bound') else ''}"
        for s in (*STAGES, "total"):
            lab, sim = row["lab"][s], row["sim"][s]
            if s == "total":
                cell, ls, ss = f"{lab:.3f} (makespan)", lab, sim
            else:
                ls, ss = _mean(lab), _mean(sim)
                cell = f"{ls:.3f} ({min(lab):.3f}–{max(lab):.3f})" if lab else "-"
            ratio = f"{ss / ls:.2f}" if ls else "-"
            name = f"**{s}**" if s == "total" else s
            out.append(f"| {row['n']} | {how} | {name} | {cell} | {ss:.3f} | {ratio} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ogsim.lab.netns.chunked_bench")
    p.add_argument("--out", type=Path, default=Path("reports/lab-chunked"))
    p.add_argument("--n", type=int, default=4, help="computers of the checked run (s26: 4)")
    p.add_argument("--costs", type=Path, help="a chunk_costs.json to reuse (else measured)")
    p.add_argument("--fit-runs", type=int, default=2, help="N = 1 lab runs fitted on (mean)")
    a = p.parse_args(argv)
    if os.geteuid() != 0:
        print("chunked_bench: needs root (network namespaces, loop devices)", file=sys.stderr)
        return 2
    from ogsim.lab.netns import run
    from ogsim.lab.netns.chunk_costs import measure

    a.out.mkdir(parents=True, exist_ok=True)
    load = [list(os.getloadavg())]
    if a.costs:
        costs = json.loads(a.costs.read_text())["params"]
    else:
        costs = measure(a.out / "costs")["params"]
    base = LabHw(
        write_rate=measure_write_rate(a.out),
        dirty_bytes=dirty_limit(),
        inspect_s=0.0,
        postconf_s=0.0,
        # reports/published/lab-calibration.md (third pass): SMB's framing, the CACHE
        # restore's rate (the unit of the host's shared capacity)
        smb_overhead=0.059,
        decompress_rate=178.5e6,
    )
    ones = [run(scenario(1), None, a.out / f"lab-n1-{i}") for i in range(a.fit_runs)]
    check = run(scenario(a.n), None, a.out / f"lab-n{a.n}")
    hw, chunks = fit(costs, ones, base)
    rows = []
    for n, lab in [*((1, r) for r in ones), (a.n, check)]:
        sim = sim_of(lab, n, hw, chunks)
        rows.append({"n": n, "lab": stages(lab), "sim": stages(sim),
                     "fitted": n == 1, "images": lab.metrics.extra["images"]["ubuntu-v2"],
                     "cpu_idle_mean": lab.metrics.extra.get("cpu_idle_mean"),
                     "cpu_bound": lab.metrics.extra.get("cpu_bound")})  # fmt: skip
    load.append(list(os.getloadavg()))
    doc = {"costs": costs, "lab_hw": hw.as_dict(), "chunks_hw": chunks, "rows": rows,
           "loadavg_start_end": load}  # fmt: skip
    (a.out / "chunked.json").write_text(json.dumps(doc, indent=1))
    text = (
        f"s26 lab vs sim (N = 1 fitted: {a.fit_runs} runs; N = {a.n} checked); load average "
        f"{load[0][0]:.2f} → {load[1][0]:.2f}\n\n{table(rows)}\n\n"
        f"hw.chunks: {json.dumps(chunks)}\ninspect step {hw.inspect_s:.4f} s, "
        f"disk write {hw.write_rate / 1e6:.0f} MB/s, dirty {hw.dirty_bytes / 2**20:.0f} MiB\n"
    )
    (a.out / "chunked.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
