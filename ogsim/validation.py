"""``ogsim validate-models``: the simulator's predictions against measurements it was not tuned on.

Every check says which published or measured figures are *inputs* (hardware measurements, and
single-computer runs that set a rate: "calibrated on N = 1") and which are *predictions* (every
multi-N figure: nothing here is fitted on one).  A check passes when every prediction with a
published value is within ``TOLERANCE`` (15 %; the goal is 10 %).

* **Frisbee** (ATC'03): multicast flat from 1 to 80 clients; the disk rate is Frisbee's own local
  imageunzip measurement, nothing is fitted.
* **EZIO multicast** (1 GbE, 50 GB, HDDs): the N = 1 time sets the disks' sustained write rate;
  the receivers' write-rate spread is the published spread of 1 TB drives of one model at
  the same offset (Krevat et al. 2011, :mod:`ogsim.hdd`; EZIO's own drives were not measured);
  N = 32 (5.6× N = 1) is predicted by udpcast's slice protocol as Clonezilla runs it (112-block
  slices).  Shown beside it (info, not judged): the page-cache view (each receiver's disk at its
  sustained rate, the group at the slowest published drive) and the lab host's loop-disk spread;
  the verdict states what evidence the gap needs.
* **EZIO BitTorrent**: the N = 1 time sets the disks' random-write rate; the crossover with
  multicast (BT faster from 11 clients) and BT at 32 clients (45.289 % less time than multicast,
  our reading of the IEEE Access 2021 abstract) are predicted.
* **Unicast**: the namespace lab's rows (below) and the NCSU WDS figure (31 clients at
  2.5–3.2 MB/s each on a ~1 GbE server) are predicted; EZIO's unicast column is 474·N *computed*
  by its authors, shown for information against the repository model calibrated on its N = 1.
* **netns lab** (reports/published/lab-bench/*.json): the lab host's parameters are fitted on each
  series' N = 1 rows and measured on the host (disk write rate, dirty threshold, cores); every
  trusted N > 1 row is a prediction; untrusted (CPU- or I/O-bound) rows are shown, not judged.

Prints tables; the checks are also pytest tests (tests/sim/test_validation.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ogref.units import parse_size
from ogsim.hdd import HDD_SPREAD_PATH, slowest_of
from ogsim.results import Results
from ogsim.simulator import simulate
from ogsim.synthetic import synthetic
from ogsim.udpcast import BLOCK_BYTES, FULL_DUPLEX_SLICE_BLOCKS, RETRY_FLOOR_S, stall_rate_needed

TOLERANCE = 0.15
GOAL = 0.10
INPUT, PREDICTION, INFO = "input", "prediction", "info"

FRISBEE: dict[str, Any] = {
    "data": "642MB",
    "stored": "180MB",
    "link": "100Mbit",
    "uplink": "1Gbit",
    # effective imageunzip rate to disk: 642 MB in 33 s, measured locally without a network
    # (ATC'03 Table 2) — the raw disk writes 21.4 MB/s, decompression and writes overlap imperfectly
    "write": "19.45MB/s",
    "decompress": "30.6MB/s",  # imageunzip into a null sink: 642 MB in 21 s
    "mcast_rate": 70,  # Frisbee's static ~70 Mbit/s sender cap
}
FRISBEE_PUBLISHED = {1: 33.8, 80: 33.6}

# EZIO / Clonezilla testbed (Cisco 3560G, 1 GbE, HDD clients)
EZIO: dict[str, Any] = {
    "data": "50GB",
    "link": "1Gbit",
    "uplink": "1Gbit",
    "decompress": "600MB/s",
    "mcast_rate": 999,
}
EZIO_MCAST_STORED = "25GB"  # pzstd image on the wire
EZIO_N1 = {"multicast": 390.0, "BT": 675.0, "unicast": 474.0}
EZIO_MCAST_32 = 5.6 * 390.0  # "5.6x slower from 1 to 32 clients"
EZIO_BT_32_SAVING = 0.45289  # "reduced total time for 32 computers by 45.289 %" (vs multicast)
EZIO_CROSSOVER = (11, 16)
WDS_PER_CLIENT = (2.5e6, 3.2e6)  # NCSU: 150–190 MB/min per client, 31 clients
LAB_BENCH = Path(__file__).resolve().parent.parent / "reports" / "published" / "lab-bench"
# the lab host, measured (lab-calibration.md, third pass): loop-disk write rate (dd, median of 3),
# the kernel's dirty-writeback threshold, and the cores every client's decompression shares
LAB_HOST = {"write_rate": 1419e6, "dirty_bytes": 2338 * 2**20}


@dataclass
class Row:
    """One figure: what the simulator gives, what was published or measured, and its role."""

    label: str
    predicted: float
    published: float | None
    role: str = PREDICTION
    note: str = ""

    @property
    def error(self) -> float | None:
        if self.published is None or not self.published:
            return None
        return (self.predicted - self.published) / self.published


@dataclass
class ModelCheck:
    """One validation: its inputs, a table of predicted vs published values and a verdict."""

    name: str
    criterion: str
    ok: bool = False
    rows: list[Row] = field(default_factory=list)
    verdict: str = ""
    inputs: list[str] = field(default_factory=list)

    def judge(self, extra: bool = True) -> None:
        """Pass when every judged prediction is within TOLERANCE (and ``extra`` holds)."""
        errors = [abs(r.error) for r in self.predictions() if r.error is not None]
        self.ok = extra and all(e <= TOLERANCE for e in errors)
        if errors:
            within = sum(1 for e in errors if e <= GOAL)
            self.verdict = (
                f"{len(errors)} predictions: worst {max(errors):.0%}, "
                f"{sum(1 for e in errors if e <= TOLERANCE)} within {TOLERANCE:.0%}, "
                f"{within} within {GOAL:.0%}. " + self.verdict
            )

    def predictions(self) -> list[Row]:
        return [r for r in self.rows if r.role == PREDICTION]


def _load_time(r: Results) -> float:
    """From the first request to the last image on disk (inspection steps excluded)."""
    phases = [
        p
        for c in r.operations[0].computers
        for p in c.phases
        if p.name in ("barrier", "restore", "wait", "download", "fetch")
    ]
    return max(p.end for p in phases) - min(p.start for p in phases)


def _calibrate(run: Callable[[float], float], target: float, guess: float) -> float:
    """The rate (bytes/s) at which the N = 1 run takes ``target`` seconds (fixed point on
    time ∝ 1/rate: three steps are within 0.1 %)."""
    rate = guess
    for _ in range(4):
        rate *= run(rate) / target
    return rate


def frisbee(counts: tuple[int, ...] = (1, 2, 5, 10, 20, 40, 60, 80)) -> ModelCheck:
    """Frisbee's flat multicast: nothing calibrated, every time predicted."""
    check = ModelCheck(
        "Frisbee multicast vs N (ATC'03)",
        f"N = 1 and 80 within {TOLERANCE:.0%} of the published times",
        inputs=[
            "disk: 642 MB written in 33 s by imageunzip without a network (ATC'03 Table 2)",
            "decompression: 642 MB in 21 s into a null sink (ATC'03 Table 2)",
            "sender cap 70 Mbit/s, 100 Mbit/s clients, 180 MB on the wire (ATC'03 §5)",
            "disks at a constant rate (Frisbee's 64 MB chunk cache absorbs per-slice variation)",
        ],
    )
    times = {}
    for n in counts:
        sc = synthetic(n, "MULTICAST-DIRECT", name=f"frisbee-{n}", **FRISBEE)
        times[n] = _load_time(simulate(sc))
        published = FRISBEE_PUBLISHED.get(n)
        check.rows.append(
            Row(f"multicast N={n}", times[n], published, PREDICTION if published else INFO)
        )
    spread = max(times.values()) / min(times.values()) - 1.0
    check.verdict = f"spread over N {spread:.1%} (published 33.8 → 33.6 s)"
    check.judge()
    return check


def _ezio_mcast(n: int, write: float, spread: str = "hdd") -> float:
    sc = synthetic(
        n,
        "MULTICAST-DIRECT",
        stored=EZIO_MCAST_STORED,
        write=f"{write / 1e6:.4f}MB/s",
        slice_rates=spread,
        name=f"ezio-mc-{n}",
        sim={"slice_blocks": FULL_DUPLEX_SLICE_BLOCKS},
        **EZIO,
    )
    return _load_time(simulate(sc))


def _ezio_bt(n: int, random_write: float) -> float:
    sc = synthetic(
        n,
        "TORRENT-CACHE",
        stored=EZIO["data"],
        write="142MB/s",
        random_write=f"{random_write / 1e6:.4f}MB/s",
        torrent="peer:0",
        name=f"ezio-bt-{n}",
        engine={"STARTDELAY": "NONE"},  # EZIO starts every peer at once
        **EZIO,
    )
    r = simulate(sc)
    phases = [p for c in r.operations[0].computers for p in c.phases if p.name == "download"]
    return max(p.end for p in phases) - min(p.start for p in phases)


def ezio_rates() -> tuple[float, float]:
    """(sustained write, random write) of EZIO's disks, calibrated on the N = 1 runs only."""
    write = _calibrate(lambda w: _ezio_mcast(1, w), EZIO_N1["multicast"], 128e6)
    random_write = _calibrate(lambda w: _ezio_bt(1, w), EZIO_N1["BT"], 80e6)
    return write, random_write


def ezio(counts: tuple[int, ...] = (1, 2, 4, 8, 11, 12, 13, 14, 16, 20, 24, 32)) -> ModelCheck:
    """EZIO: multicast and BitTorrent against N, and where BitTorrent overtakes."""
    write, random_write = ezio_rates()
    check = ModelCheck(
        "EZIO multicast and BitTorrent vs N (Appl. Sci. 2019, IEEE Access 2021)",
        f"multicast N=32 and BT N=32 within {TOLERANCE:.0%}; crossover N in "
        f"[{EZIO_CROSSOVER[0]}, {EZIO_CROSSOVER[1]}]",
        inputs=[
            f"multicast N=1 390 s → disks' sustained write {write / 1e6:.1f} MB/s (N = 1 fit)",
            f"BT N=1 675 s → disks' random write {random_write / 1e6:.1f} MB/s (N = 1 fit)",
            "receivers' write-rate spread: published, 25 × 1 TB drives of one model at "
            f"the same offset, first 50 GB (Krevat et al. 2011; {_hdd_summary()}; "
            "reports/published/hdd-spread.json)",
            "zone effect (outer/inner tracks ×1.86, same source) is common to every receiver "
            "writing the same offsets: it is inside the N = 1 time, not an N term",
            "udpcast as Clonezilla runs it: udp-sender without --max-bitrate, --fec or "
            "--slice-size (ocs-functions, drbl-ocs.conf); full duplex is detected, so slices "
            f"are {FULL_DUPLEX_SLICE_BLOCKS} blocks, never adapted, two in flight (senddata.c)",
            "receivers: udp-receiver | zstd -d | partclone, buffered writes (direct I/O only on "
            "NVMe): 16 GB RAM each (EZIO's Dell T1700) → Linux's default dirty limits (10 %/20 "
            "%) give GBs of page cache between the network and each disk",
        ],
    )
    crossover = None
    mc, bt = {}, {}
    for n in counts:
        mc[n], bt[n] = _ezio_mcast(n, write), _ezio_bt(n, random_write)
        if crossover is None and bt[n] < mc[n]:
            crossover = n
    for n in counts:
        if n == 1:
            check.rows.append(Row("multicast N=1", mc[n], EZIO_N1["multicast"], INPUT))
            check.rows.append(Row("BitTorrent N=1", bt[n], EZIO_N1["BT"], INPUT))
        elif n == 32:
            check.rows.append(Row("multicast N=32", mc[n], EZIO_MCAST_32, note="5.6 × 390 s"))
            check.rows.append(
                Row(
                    "multicast N=32, page cache",
                    EZIO_N1["multicast"] * slowest_of(n),
                    EZIO_MCAST_32,
                    INFO,
                    "each disk at its sustained rate, the group at the slowest drive of 32",
                )
            )
            check.rows.append(
                Row(
                    "multicast N=32, lab spread",
                    _ezio_mcast(n, write, "lab"),
                    EZIO_MCAST_32,
                    INFO,
                    "the lab's loop-disk per-slice spread instead (not EZIO's hardware)",
                )
            )
            check.rows.append(
                Row(
                    "BitTorrent N=32",
                    bt[n],
                    EZIO_MCAST_32 * (1 - EZIO_BT_32_SAVING),
                    note="45.289 % below multicast",
                )
            )
        else:
            check.rows.append(Row(f"multicast N={n}", mc[n], None, INFO))
            check.rows.append(Row(f"BitTorrent N={n}", bt[n], None, INFO))
    lo, hi = EZIO_CROSSOVER
    crossed = crossover is not None and lo <= crossover <= hi
    first = f"N={crossover}" if crossover is not None else f"no N ≤ {max(counts)}"
    check.verdict = (
        f"BitTorrent first faster at {first} (published {lo}–{hi}); "
        f"multicast N=32/N=1 = {mc[32] / mc[1]:.2f}× (published 5.6×)"
        if 32 in mc and 1 in mc
        else f"BitTorrent first faster at {first}"
    )
    check.verdict += ". " + _ezio_gap(mc.get(1, EZIO_N1["multicast"]))
    check.judge(crossed)
    return check


def _ezio_gap(t_one: float) -> str:
    """Why the multicast prediction misses, and what evidence would close it (the stall rate
    is computed from the published N = 32 time as a diagnostic; nothing uses it)."""
    slices = parse_size(EZIO_MCAST_STORED) / (FULL_DUPLEX_SLICE_BLOCKS * BLOCK_BYTES)
    q = stall_rate_needed(t_one, EZIO_MCAST_32, 32, slices)
    gap_ms = (EZIO_MCAST_32 - t_one) / slices * 1e3
    need = (
        f"one {RETRY_FLOOR_S:.0f}-s sender stall per receiver every {1 / q:,.0f} slices "
        f"(~{1 / q * FULL_DUPLEX_SLICE_BLOCKS * BLOCK_BYTES / 1e6:,.0f} MB of stream)"
        if q
        else "more than one stall per slice"
    )
    return (
        "Disk spread cannot explain 5.6×: same-model HDDs differ by a few per cent, and with "
        "GBs of page cache per receiver each disk runs at its sustained rate, so the slowest of "
        f"32 costs {slowest_of(32) - 1:.0%} (info row). On a LAN a retransmission round costs a "
        "round trip, so loss rounds add fractions of a millisecond, not the "
        f"{gap_ms:.1f} ms per slice the gap needs. The one mechanism in udpcast's source that is large enough is the sender's REQACK back-off (≥ 1 s per "
        "re-ask after the tenth) when a receiver's answer is lost — e.g. its socket buffer "
        f"overflowing while its pipeline stalls: 5.6× at N = 32 would need {need}, "
        "independently per receiver (diagnostic only, not an input). Measured here (udpcast "
        "20120424, 2 receivers, 0.3-s stalls injected into one receiver's pipe): a stall cost "
        "the session at most its own length, ≤ 0.35 s more with a socket buffer smaller than a "
        "slice — the 1-s floor was not reached (reports/published/lab-bench/udpcast-stalls.md)"
        "; and GBs of page cache keep a disk writing through such stalls. Evidence needed: "
        "udp-sender's log ('Timeout notAnswered' lines, re-xmits) and each receiver's UDP "
        "RcvbufErrors at N = 1 and N = 32 on EZIO's hardware; nothing is fitted to N = 32"
    )


def _hdd_summary() -> str:
    data = json.loads(HDD_SPREAD_PATH.read_text())
    rel = data["relative_at_offset"]
    return (
        f"drive-to-drive CV {data['sustained_cv']:.1%}, per-offset 1st–99th percentile "
        f"{rel[2]:.2f}–{rel[-3]:.2f} of the mean"
    )


def unicast(counts: tuple[int, ...] = (1, 2, 4, 8, 16, 32)) -> ModelCheck:
    """Unicast: the repository model against the NCSU WDS figure; EZIO's computed column."""
    check = ModelCheck(
        "Unicast vs N: the repository model",
        f"NCSU WDS per-client rate at N = 31 within {TOLERANCE:.0%} of the published range",
        inputs=[
            "EZIO unicast N=1 474 s → one SMB stream's server limit (N = 1 fit)",
            "WDS: 1 GbE server uplink and clients, SMB overhead 8 % (model default)",
        ],
    )

    def ezio_uc(n: int, stream: float) -> float:
        sc = synthetic(
            n,
            "UNICAST-DIRECT",
            stored="25GB",
            write="1GB/s",
            repo_hw={"smb_stream": f"{stream * 8 / 1e6:.3f}Mbit", "smb_cpus": 64},
            name=f"ezio-uc-{n}",
            **EZIO,
        )
        return _load_time(simulate(sc))

    stream = _calibrate(lambda s: ezio_uc(1, s), EZIO_N1["unicast"], 55e6)
    check.inputs[0] += f": {stream * 8 / 1e6:.0f} Mbit/s"
    for n in counts:
        role = INPUT if n == 1 else INFO
        note = "" if n == 1 else "EZIO's column is 474·N, computed, not measured"
        check.rows.append(Row(f"EZIO unicast N={n}", ezio_uc(n, stream), 474.0 * n, role, note))
    # NCSU WDS: 31 clients sharing a ~1 GbE server
    image = 1e9
    sc = synthetic(31, "UNICAST-CACHE", data="1GB", stored="1GB", name="wds-31")
    r = simulate(sc)
    fetch = [
        p.end - p.start for c in r.operations[0].computers for p in c.phases if p.name == "fetch"
    ]
    per_client = image / (sum(fetch) / len(fetch))
    lo, hi = WDS_PER_CLIENT
    nearest = min(max(per_client, lo), hi)
    check.rows.append(
        Row(
            "WDS N=31 MB/s per client",
            per_client / 1e6,
            nearest / 1e6,
            note=f"published {lo / 1e6:.1f}–{hi / 1e6:.1f} MB/s (nearest end shown)",
        )
    )
    check.verdict = (
        "EZIO's 474·N assumes a server that serves 52.7 MB/s in all; the model's server is "
        "limited per stream and by its NIC, so it predicts far less than 474·N for N ≥ 2 "
        "(EZIO's column is not a measurement: shown, not judged). WDS: NCSU publishes neither "
        "the server's disk, cores, RAM nor SMB version, so the model's server is its NIC (1 GbE "
        "less 8 % SMB); 2.5–3.2 MB/s × 31 is 62–79 % of it — some server limit the source does "
        "not name; setting smb_stream or read to match would fit a multi-N point, so it is not set"
    )
    check.judge()
    return check


def _lab_series(name: str, image_mib: int = 128) -> ModelCheck:
    from ogsim.lab.netns.bench import predict, untrusted
    from ogsim.lab.netns.calibration import LabHw, fit

    rows = json.loads((LAB_BENCH / f"{name}.json").read_text())
    bare = {"STARTDELAY": "NONE"}

    def residual(row: dict[str, Any], hw: LabHw) -> float:
        return predict(row, image_mib, hw, bare)

    lab = fit(rows, residual, LAB_HOST["write_rate"], LAB_HOST["dirty_bytes"])
    check = ModelCheck(
        f"netns lab, {name} (100 Mbit/s, 204 MiB data / 64 MiB stored)",
        f"every trusted N > 1 row within {TOLERANCE:.0%}",
        inputs=[
            "fitted on this series' N = 1 rows: " + ", ".join(lab.fitted_from),
            f"measured on the host: loop-disk write {LAB_HOST['write_rate'] / 1e6:.0f} MB/s, "
            f"dirty threshold {LAB_HOST['dirty_bytes'] / 2**20:.0f} MiB, {lab.cpus} cores",
        ],
    )
    for row in rows:
        sim = predict(row, image_mib, lab, bare)
        label = f"{row['method']} N={row['n']}"
        if row["n"] == 1:
            check.rows.append(Row(label, sim, row["T"], INPUT))
        elif untrusted(row):
            check.rows.append(Row(label, sim, row["T"], INFO, "untrusted lab row (CPU/I-O)"))
        else:
            check.rows.append(Row(label, sim, row["T"]))
    check.judge()
    return check


def lab() -> list[ModelCheck]:
    """The namespace lab's published series."""
    return [_lab_series(n) for n in ("five-methods", "multicast-opengnsys", "multicast-line-rate")]


def run_all() -> list[ModelCheck]:
    """Every validation."""
    return [frisbee(), ezio(), unicast(), *lab()]


def render_table(checks: list[ModelCheck]) -> str:
    """Plain-text tables: role, predicted vs published, error."""
    lines: list[str] = []
    for c in checks:
        lines.append(f"== {c.name} — {c.criterion}: {'PASS' if c.ok else 'MISS'}")
        for text in c.inputs:
            lines.append(f"   input: {text}")
        lines.append(
            f"   {'case':<28} {'role':<10} {'predicted':>10} {'published':>10} {'error':>7}"
        )
        for r in c.rows:
            pub = f"{r.published:>10.1f}" if r.published is not None else f"{'—':>10}"
            err = f"{r.error:>+7.0%}" if r.error is not None else f"{'':>7}"
            note = f"  {r.note}" if r.note else ""
            lines.append(f"   {r.label:<28} {r.role:<10} {r.predicted:>10.1f} {pub} {err}{note}")
        lines.append(f"   {c.verdict}")
        lines.append("")
    judged = [r for c in checks for r in c.predictions() if r.error is not None]
    good = [r for r in judged if abs(r.error or 0) <= TOLERANCE]
    lines.append(
        f"{len(good)} of {len(judged)} predictions within {TOLERANCE:.0%}; "
        f"{sum(1 for c in checks if c.ok)} of {len(checks)} checks pass"
    )
    return "\n".join(lines)
