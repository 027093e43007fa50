"""Published hard-disk write-rate spread: the heterogeneity input for anchors whose clients had HDDs.

A slice-synchronised multicast session (:mod:`ogsim.udpcast`) writes the same offsets on every
receiver at once, so what slows a group of N is how much the receivers' drives differ *at the
same offset*, not how much one drive's rate falls from its outer to its inner tracks (that zone
effect is common to every receiver and is already in a single-receiver time).  The figures are
Krevat, Tucek & Ganger, "Disks Are Like Snowflakes: No Two Are Alike" (HotOS XIII, 2011; CMU-PDL-
11-102): sequential bandwidth every 128 MB across whole drives, several trials per drive, for
sets of drives of one make and model; their data is republished with D. M. Jones, *Evidence-based
Software Engineering* (github.com/Derek-Jones/ESEUR-code-data, ``benchmark/2008disks.csv.xz``,
commit 1a49d102).  The 2008 set (25 drives of one model, 1 TB, 95–115 MB/s on their outer
tracks) is the published set closest to EZIO's HDD clients (EZIO does not name its drives):
:func:`derive` reduces it to

* the per-offset spread: each drive's rate at an offset over the drives' mean (harmonic) at that
  offset, over the first 50 GB (where a 50 GB image lands), pooled — the distribution a
  receiver's slice rate is drawn from (``hw.disk.slice_rates: hdd``);
* the per-drive sustained rates over those 50 GB (CV 3.3 %, 94.8–114.5 MB/s) and the outer/inner
  zone ratio (1.86), printed for the docs; :func:`slowest_of` turns the sustained rates into the
  slowdown of a group that waits only for its slowest drive (each receiver's page cache
  smoothing its disk).

The reduced figures are stored in ``reports/published/hdd-spread.json``; :func:`hdd_slice_rates`
reads them.  No simulation here; the derivation needs the decompressed CSV
(``python -m ogsim.hdd 2008disks.csv``).
"""

from __future__ import annotations

import csv
import functools
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

HDD_SPREAD_PATH = (
    Path(__file__).resolve().parent.parent / "reports" / "published" / "hdd-spread.json"
)
IMAGE_SPAN_MB = 50_000  # EZIO's 50 GB image: the first 50 GB of each drive
QUANTILES = 200  # the pooled spread is stored as this many equiprobable values
NOISE_TRIAL = "2"  # the 2008 set's trial 2 is a failed run (rates near 0; Jones drops it too)


def _harmonic(xs: list[float]) -> float:
    return len(xs) / sum(1.0 / x for x in xs)


def derive(rows: list[dict[str, str]], span_mb: float = IMAGE_SPAN_MB) -> dict[str, object]:
    """Reduce the per-128 MB bandwidth rows (disk, trial, offset MB, bandwidth MB/s) to the
    per-offset relative spread, the per-drive sustained rates and the zone ratio."""
    per: dict[tuple[str, float], list[float]] = defaultdict(list)
    for r in rows:
        if r["trial"] == NOISE_TRIAL:
            continue
        per[(r["disk"], float(r["offset"]))].append(float(r["bandwidth"]))
    bw = {k: statistics.fmean(v) for k, v in per.items()}
    drives = sorted({d for d, _ in bw})
    top = max(o for _, o in bw)
    at: dict[float, dict[str, float]] = defaultdict(dict)
    for (d, o), b in bw.items():
        at[o][d] = b
    rel: list[float] = []
    for o, by_drive in sorted(at.items()):
        if o <= span_mb and len(by_drive) == len(drives):
            mean = _harmonic(list(by_drive.values()))
            rel.extend(b / mean for b in by_drive.values())
    sustained = {
        d: _harmonic([b for (dd, o), b in bw.items() if dd == d and o <= span_mb]) for d in drives
    }
    outer = {
        d: statistics.fmean([b for (dd, o), b in bw.items() if dd == d and o <= 0.05 * top])
        for d in drives
    }
    inner = {
        d: statistics.fmean([b for (dd, o), b in bw.items() if dd == d and o >= 0.95 * top])
        for d in drives
    }
    rates = list(sustained.values())
    rel.sort()
    quantiles = [rel[int((i + 0.5) * len(rel) / QUANTILES)] for i in range(QUANTILES)]
    return {
        "drives": len(drives),
        "span_mb": span_mb,
        "samples": len(rel),
        "relative_at_offset": [round(x, 5) for x in quantiles],
        "sustained_mb_s": {d: round(v, 2) for d, v in sustained.items()},
        "sustained_cv": round(statistics.stdev(rates) / statistics.fmean(rates), 4),
        "zone_ratio_outer_inner": round(statistics.median(outer[d] / inner[d] for d in drives), 3),
    }


@functools.lru_cache(maxsize=1)
def hdd_slice_rates() -> tuple[float, ...]:
    """The published HDD per-offset spread (relative rates; only their spread is used)."""
    data = json.loads(HDD_SPREAD_PATH.read_text())
    return tuple(float(x) for x in data["relative_at_offset"])


@functools.lru_cache(maxsize=1)
def hdd_sustained_rates() -> tuple[float, ...]:
    """The published drives' sustained rates (MB/s) over the image's span."""
    data = json.loads(HDD_SPREAD_PATH.read_text())
    return tuple(float(v) for v in data["sustained_mb_s"].values())


def slowest_of(n: int, rates: tuple[float, ...] | None = None) -> float:
    """Expected time of the slowest of ``n`` drives (drawn with replacement from ``rates``) over
    one drive's expected time: the session's slowdown when every receiver's page cache smooths
    its disk to its sustained rate and the group waits only for the slowest disk overall."""
    xs = sorted(1.0 / r for r in (rates or hdd_sustained_rates()))
    m = len(xs)
    expected_max = sum(t * ((k / m) ** n - ((k - 1) / m) ** n) for k, t in enumerate(xs, 1))
    return expected_max / (sum(xs) / m)


def main(argv: list[str] | None = None) -> int:
    """``python -m ogsim.hdd 2008disks.csv``: derive the published spread (JSON on stdout)."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m ogsim.hdd DISKS.csv", file=sys.stderr)
        return 4
    with open(args[0], newline="") as f:
        print(json.dumps(derive(list(csv.DictReader(f))), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
