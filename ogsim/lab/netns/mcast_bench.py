"""``python -m ogsim.lab.netns.mcast_bench``: ``make bench-lab``'s multicast section — chunkcast
against stock udpcast (``udp-sender``/``udp-receiver``) and Debian's UFTP, side by side in one
run, on the same image, links and loss (issue 15).

One lab (:class:`~ogsim.lab.netns.multicast_lab.MulticastLab`: 100 Mbit/s links, the session
capped at 90 Mbit/s as OpenGnSys's default session string) runs, for each tool, the same rows:

- ``base`` for each N: every receiver starts before the sender; T(N) is the last receiver's
  completion, counted from the sender's launch (process start-up included), and T(N)/T(1);
- ``slow``: N receivers, one of which writes at ¼ of the others' write rate (chunkcast:
  ``--write-rate``; udpcast: ``udp-receiver --pipe 'pv -L'``; UFTP has no write hook, so its slow
  receiver has a link of ¼ the rate instead) — the *others'* time against ``base``;
- ``loss``: N receivers, 1 % of frames dropped each way on every receiver's port (nftables);
- ``loss+slow``: both; the others' time, the makespan and the mean over all receivers;
- ``late``: N − 1 receivers, one more joining when the first has half the image; each
  receiver's time after it joined and its duplicate bytes (chunkcast's own count; udpcast and
  UFTP refuse or miss a late receiver).

The image is synthetic (:mod:`ogsim.lab.chunkimage`): udpcast and UFTP send its chunk frames as
one file (the same bytes chunkcast sends), chunkcast restores it (decompressed, hashed, written
at its offsets).  The host's CPU idle share is sampled in every run; a CPU-bound run is marked.
Writes ``mcast.json`` and ``mcast.md`` in ``--out``.  Needs root, udpcast, uftp and pv.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ogref.model.protocol import MulticastSession
from ogref.repo.sender import SenderOptions, sender_argv
from ogref.transports.chunkcast import runtime
from ogref.transports.chunkcast.objects import ImageObjects
from ogref.transports.multicast import ReceiverConfig, receiver_argv
from ogsim.chunkcast import CastImage, CastParams, CastReceiver, predict_rows, simulate, skewed
from ogsim.lab.chunkimage import ChunkImage, make
from ogsim.lab.manifest import Manifest
from ogsim.lab.netns.cpu import CpuMonitor
from ogsim.lab.netns.multicast_lab import GROUP, MulticastLab
from ogsim.lab.netns.shaping import shape
from ogsim.lab.netns.topology import Host

TOOLS = ("chunkcast", "udpcast", "uftp")
RATE_MBIT = 90
LINK_BPS = 100e6
UFTP_PUB = "239.194.8.2"
UFTP_PRIV = "239.194.8.3"


@dataclass
class Row:
    tool: str
    scenario: str
    n: int
    round: int = 0
    times: list[float | None] = field(default_factory=list)  # per receiver, from sender launch
    # chunkcast: when each receiver had every chunk written and synced (from the sender's
    # launch; its process exits 0.05-0.4 s later on a loaded host); the others: ``times``
    done: list[float | None] = field(default_factory=list)
    joined: list[float] = field(default_factory=list)  # when each receiver started
    slow: int = -1  # index of the slow receiver
    late: int = -1  # index of the late joiner
    duplicate_bytes: list[int | None] = field(default_factory=list)
    heard: list[float | None] = field(default_factory=list)  # chunkcast: first announce heard
    frame_bytes: int = 0
    sender_startup_s: float | None = None  # chunkcast: launch to first announce (measured)
    announce_s: float = 0.0  # launch to the session's first announce (chunkcast: measured)
    cpu: dict[str, float | bool] = field(default_factory=dict)
    note: str = ""

    def others(self) -> list[float | None]:
        return [t for i, t in enumerate(self.times) if i not in (self.slow, self.late)]

    @property
    def others_time(self) -> float | None:
        ts = self.others()
        return None if not ts or any(t is None for t in ts) else max(t for t in ts if t)

    @property
    def makespan(self) -> float | None:
        return None if any(t is None for t in self.times) else max(t for t in self.times if t)

    @property
    def mean(self) -> float | None:
        if any(t is None for t in self.times):
            return None
        return sum(t for t in self.times if t) / len(self.times)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "others_time": self.others_time, "makespan": self.makespan,
                "mean": self.mean}  # fmt: skip


@dataclass
class Bench:
    lab: MulticastLab
    img: ChunkImage
    key: Path
    out: Path
    port: int = 9080
    rows: list[Row] = field(default_factory=list)
    round: int = 0
    mon: CpuMonitor = field(default_factory=CpuMonitor)

    def _clock(self) -> float:
        """The run's clock starts (the sender's launch): CPU sampling starts with it, so the
        receivers' own start-up before it is not counted."""
        self.mon.start()
        return time.monotonic()

    def _next_port(self) -> int:
        self.port = 9080 + (self.port - 9080 + 2) % 18
        return self.port

    # ------------------------------------------------------------------ one run

    def run(
        self,
        tool: str,
        scenario: str,
        n: int,
        *,
        slow_rate: float = 0.0,
        late: bool = False,
        loss: float = 0.0,
    ) -> Row:
        hosts = self.lab.clients[:n]
        assert self.lab.loss is not None
        for h in hosts:
            self.lab.loss.set_loss(h, loss)
        slow = 1 if slow_rate else -1
        if slow >= 0 and tool == "uftp":  # no write hook: a link of a quarter of the rate
            shape(self.lab.topo, hosts[slow], LINK_BPS / 4)
        row = Row(tool, scenario, n, self.round, slow=slow, late=n - 1 if late else -1,
                  frame_bytes=self.img.flat.stat().st_size)  # fmt: skip
        run_dir = self.out / "runs" / f"{tool}-{scenario}-{n}-{self.round}"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        self.mon = CpuMonitor(cgroup=self.lab.manifest.cgroup)
        try:
            getattr(self, f"_{tool}")(row, hosts, run_dir, slow_rate)
        finally:
            self.mon.stop()
            for h in hosts:
                self.lab.loss.set_loss(h, 0)
            if slow >= 0 and tool == "uftp":
                shape(self.lab.topo, hosts[slow], LINK_BPS)
        row.cpu = self.mon.summary()
        self.rows.append(row)
        print(json.dumps(row.as_dict()), flush=True)
        return row

    def _watch(
        self,
        row: Row,
        procs: list[subprocess.Popen[bytes] | None],
        t0: float,
        *,
        done: Callable[[int], bool] | None = None,
        late_start: Callable[[], subprocess.Popen[bytes] | None] | None = None,
        late_when: Callable[[float], bool] | None = None,
        limit: float = 600.0,
    ) -> None:
        """Poll until every receiver ended (or ``done`` says so); times from ``t0``."""
        row.times = [None] * len(procs)
        while time.monotonic() - t0 < limit:
            now = time.monotonic() - t0
            if late_start is not None and late_when is not None and late_when(now):
                procs[row.late] = late_start()
                row.joined[row.late] = now
                late_start = None
            for i, p in enumerate(procs):
                if row.times[i] is not None or p is None:
                    continue
                finished = done(i) if done is not None else p.poll() is not None
                if finished and (done is not None or p.returncode == 0):
                    row.times[i] = now
                elif p.poll() is not None and done is None:
                    row.times[i] = None
                    procs[i] = None  # failed: no time
            if all(t is not None or p is None for t, p in zip(row.times, procs, strict=True)) and (
                late_start is None
            ):
                return
            time.sleep(0.01)

    # ------------------------------------------------------------------ chunkcast

    def _chunkcast(self, row: Row, hosts: list[Host], run_dir: Path, slow_rate: float) -> None:
        lab, img = self.lab, self.img
        session = lab.session(self._next_port(), RATE_MBIT, 1, 1)
        targets = [run_dir / f"{h.name}.disk" for h in hosts]

        def start(i: int) -> subprocess.Popen[bytes]:
            extra = ["--manifest", str(img.manifest_path),
                     "--ready-file", str(run_dir / f"{hosts[i].name}.ready")]  # fmt: skip
            if i == row.slow:
                extra += ["--write-rate", f"{slow_rate * 8:.0f}bit/s", "--buffer", "16MiB"]
            argv = lab.chunkcast_receive(hosts[i], targets[i], session, self.key,
                                         run_dir / f"{hosts[i].name}.json", *extra)  # fmt: skip
            return lab.start(hosts[i], f"cc-{row.scenario}-{i}", argv,
                             out=run_dir / f"{hosts[i].name}.out")  # fmt: skip

        early = [i for i in range(len(hosts)) if i != row.late]
        procs: list[subprocess.Popen[bytes] | None] = [None] * len(hosts)
        row.joined = [0.0] * len(hosts)
        for i in early:
            procs[i] = start(i)
        # listening before the sender starts, as the udp-receivers are (Python starts slower:
        # wait for each to say so rather than a fixed second)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
            (run_dir / f"{hosts[i].name}.ready").exists() for i in early
        ):
            time.sleep(0.02)
        time.sleep(0.2)
        t0, launched_wall = self._clock(), time.time()
        sender = lab.start(lab.repo, f"cc-send-{row.scenario}", lab.chunkcast_send(
            img.directory, img.name, session, self.key, run_dir / "send.json",
            "--idle-end", "2"), out=run_dir / "send.out")  # fmt: skip
        half = img.manifest.data_size / 2
        self._watch(row, procs, t0,
                    late_start=(lambda: start(row.late)) if row.late >= 0 else None,
                    late_when=lambda _now: _written(targets[0]) >= half)  # fmt: skip
        sender.wait(60)
        send_doc = json.loads((run_dir / "send.json").read_text()) if (
            run_dir / "send.json").exists() else {}  # fmt: skip
        if send_doc.get("announced_wall"):  # its start-up: imports, manifest, chunk store
            row.announce_s = max(0.0, send_doc["announced_wall"] - launched_wall)
        for i, h in enumerate(hosts):
            stats = run_dir / f"{h.name}.json"
            doc = json.loads(stats.read_text()) if stats.exists() else {}
            row.duplicate_bytes.append(doc.get("duplicate_bytes"))
            ok = row.times[i] is not None and doc.get("done_wall")
            row.done.append(doc["done_wall"] - launched_wall if ok else row.times[i])
            row.heard.append(doc["joined_wall"] - launched_wall if doc.get("joined_wall") else None)
            if i == 0 and "joined_wall" in doc:  # it listened before the sender's launch
                row.sender_startup_s = max(0.0, doc["joined_wall"] - launched_wall)
            if row.times[i] is not None and targets[i].read_bytes() != img.device.read_bytes():
                row.note += f" {h.name}: WRONG BYTES"
                row.times[i] = row.done[i] = None
            elif row.times[i] is None:  # failed: say why (the receiver's JSON line)
                out = (run_dir / f"{h.name}.out").read_text(errors="replace").strip()
                last = out.splitlines()[-1] if out else ""
                row.note += f" chunkcast {h.name} failed: {last[-160:]}"

    # ------------------------------------------------------------------ udpcast

    def _udpcast(self, row: Row, hosts: list[Host], run_dir: Path, slow_rate: float) -> None:
        lab, img = self.lab, self.img
        port = self._next_port()
        n_start = len(hosts) - (1 if row.late >= 0 else 0)
        s = MulticastSession.parse(f"{port}:full-duplex:{GROUP}:{RATE_MBIT}M:{n_start}:10")
        targets = [run_dir / f"{h.name}.img" for h in hosts]

        def start(i: int) -> subprocess.Popen[bytes]:
            start_timeout = 8 if i == row.late else 30  # a late one is refused: do not linger
            cfg = ReceiverConfig("eth0", hosts[i].ip, lab.repo.address, start_timeout, 20)
            argv = receiver_argv(cfg, s, targets[i])
            if i == row.slow:  # the same disk behind a decompressor: compressed bytes/s
                ratio = img.flat.stat().st_size / img.manifest.data_size
                argv += ["--pipe", f"pv -q -L {int(slow_rate * ratio)}"]
            return lab.start(hosts[i], f"udp-{row.scenario}-{i}", argv,
                             out=run_dir / f"{hosts[i].name}.out")  # fmt: skip

        procs: list[subprocess.Popen[bytes] | None] = [None] * len(hosts)
        row.joined = [0.0] * len(hosts)
        for i in range(len(hosts)):
            if i != row.late:
                procs[i] = start(i)
        time.sleep(1.0)
        t0 = self._clock()
        argv = sender_argv(s, img.flat, SenderOptions(fec="none"), run_dir / "sender.log")
        sender = lab.start(lab.repo, f"udp-send-{row.scenario}", argv, out=run_dir / "send.out")
        t1 = self._t1("udpcast")
        self._watch(row, procs, t0,
                    late_start=(lambda: start(row.late)) if row.late >= 0 else None,
                    late_when=lambda now: now >= t1 / 2)  # fmt: skip
        sender.wait(120)
        flat = img.flat.read_bytes()
        for i, h in enumerate(hosts):
            row.duplicate_bytes.append(None)
            if row.times[i] is not None and targets[i].read_bytes() != flat:
                row.note += f" {h.name}: WRONG BYTES"
                row.times[i] = None
        if row.late >= 0 and row.times[row.late] is None:
            row.note += " late receiver refused (udp-sender takes no receiver once started)"

    # ------------------------------------------------------------------ UFTP

    def _uftp(self, row: Row, hosts: list[Host], run_dir: Path, slow_rate: float) -> None:
        lab, img = self.lab, self.img
        del slow_rate  # UFTP's slow receiver is a slow link (see run())
        port = str(1044 + self._next_port() - 9080)
        dests = [run_dir / f"{h.name}.dest" for h in hosts]

        def start(i: int) -> subprocess.Popen[bytes]:
            dests[i].mkdir()
            tmp = run_dir / f"{hosts[i].name}.tmp"
            tmp.mkdir()
            argv = ["uftpd", "-d", "-p", port, "-D", str(dests[i]), "-T", str(tmp),
                    "-M", UFTP_PUB, "-I", hosts[i].address, "-x", "1",
                    "-L", str(run_dir / f"{hosts[i].name}.log")]  # fmt: skip
            return lab.start(hosts[i], f"uftpd-{row.scenario}-{i}", argv,
                             out=run_dir / f"{hosts[i].name}.out")  # fmt: skip

        procs: list[subprocess.Popen[bytes] | None] = [None] * len(hosts)
        row.joined = [0.0] * len(hosts)
        for i in range(len(hosts)):
            if i != row.late:
                procs[i] = start(i)
        time.sleep(1.0)
        size = img.flat.stat().st_size
        name = img.flat.name

        def done(i: int) -> bool:
            f = dests[i] / name
            return f.exists() and f.stat().st_size == size

        t0 = self._clock()
        argv = ["uftp", "-R", str(RATE_MBIT * 1000), "-M", UFTP_PUB, "-P", UFTP_PRIV, "-p", port,
                "-I", lab.repo.address, "-t", "16", "-x", "1", "-C", "none", "-Y", "none",
                "-L", str(run_dir / "send.log"), str(img.flat)]  # fmt: skip
        sender = lab.start(lab.repo, f"uftp-send-{row.scenario}", argv, out=run_dir / "send.out")
        t1 = self._t1("uftp")
        late_start = (lambda: start(row.late)) if row.late >= 0 else None
        late_when = lambda now: now >= t1 / 2  # noqa: E731
        deadline = time.monotonic() + 600
        row.times = [None] * len(hosts)
        while time.monotonic() < deadline:
            now = time.monotonic() - t0
            if late_start is not None and late_when(now):
                procs[row.late] = late_start()
                row.joined[row.late] = now
                late_start = None
            for i in range(len(hosts)):
                if row.times[i] is None and procs[i] is not None and done(i):
                    row.times[i] = now
            if sender.poll() is not None and late_start is None:
                break
            time.sleep(0.01)
        sender.wait(60)
        for i in range(len(hosts)):
            if row.times[i] is None and procs[i] is not None and done(i):
                row.times[i] = time.monotonic() - t0
            p = procs[i]
            if p is not None and p.poll() is None:
                p.terminate()  # a daemon: ours, by PID
                p.wait(10)
            row.duplicate_bytes.append(None)
        flat = img.flat.read_bytes()
        for i, d in enumerate(dests):
            f = d / name
            if row.times[i] is not None and f.read_bytes() != flat:
                row.note += f" {hosts[i].name}: WRONG BYTES"
                row.times[i] = None
        if row.late >= 0 and row.times[row.late] is None:
            row.note += " late receiver missed the session (UFTP announces once)"

    def _t1(self, tool: str) -> float:
        for r in self.rows:
            if r.tool == tool and r.scenario == "base" and r.n == 1 and r.makespan:
                return r.makespan
        return 10.0


def _written(path: Path) -> int:
    try:
        return path.stat().st_blocks * 512
    except FileNotFoundError:
        return 0


# ---------------------------------------------------------------------- report


def _f(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _cpu_held_back(r: Row) -> bool:
    """Whether the run's own processes waited for a CPU (its cgroup's pressure) for more than
    a tenth of its time; without that measure, whether the host's idle share hit the floor."""
    if "cpu_waited" in r.cpu:
        return bool(r.cpu["cpu_waited"])
    return bool(r.cpu.get("cpu_bound"))


def from_announce(rows: list[Row]) -> list[Row]:
    """The rows with times counted from the session's first announce instead of the sender's
    launch, to when each receiver had the image on its target (chunkcast: written and synced,
    before its Python process exits; receivers listening before the announce count as joined
    at 0)."""
    out = []
    for r in rows:
        a = r.announce_s
        done = r.done if len(r.done) == len(r.times) else r.times
        out.append(replace(
            r, times=[None if t is None else t - a for t in done],
            joined=[max(0.0, j - a) for j in r.joined],
            heard=[None if h is None else h - a for h in r.heard],
            sender_startup_s=None if r.sender_startup_s is None else 0.0, announce_s=0.0))  # fmt: skip
    return out


def report(
    rows: list[Row], image: ChunkImage, load: tuple[float, float], launch: list[Row] | None = None
) -> str:
    """The tables of ``rows`` (times from the session's announce); ``launch``: the same rows
    from the sender's launch, for the start-up's own table."""

    def get(tool: str, scenario: str, n: int) -> Row | None:
        return next((r for r in rows if (r.tool, r.scenario, r.n) == (tool, scenario, n)), None)

    ns = sorted({r.n for r in rows if r.scenario == "base"})
    nmax = max(ns)
    lines = [
        "# make bench-lab: multicast section (chunkcast vs udpcast vs UFTP)",
        "",
        f"Image: {image.manifest.data_size / 2**20:.0f} MiB of used blocks, "
        f"{image.flat.stat().st_size / 2**20:.1f} MiB of zstd frames on the wire; 100 Mbit/s "
        f"links, session rate {RATE_MBIT} Mbit/s; load average {load[0]:.1f} → {load[1]:.1f}.",
        "Times in seconds from the session's first announce (chunkcast's sender announces once "
        "it has loaded; udp-sender and uftp at their launch) to the image on each receiver's "
        "target (udp-receiver's exit; the UFTP file at its full size; chunkcast's last chunk "
        "written and synced, its Python process exiting 0.05–0.4 s later): the table from the "
        "sender's launch to the processes' exit follows.  Medians over the rounds.  A run whose "
        "own processes waited for a CPU more than 10 % of its time (its cgroup's cpu.pressure) "
        "is marked *.",
        "",
        "| tool | "
        + " | ".join([*(f"T({n})" for n in ns), *(f"T({n})/T(1)" for n in ns[1:])])
        + " | lab CPU, cores used / waiting share (N = "
        + ", ".join(map(str, ns))
        + ") |",
        "|---|" + "---|" * (2 * len(ns)),
    ]
    for tool in TOOLS:
        base = [get(tool, "base", n) for n in ns]
        t1 = base[0].makespan if base[0] else None
        cells = [_f(b.makespan if b else None) + ("*" if b and _cpu_held_back(b) else "")
                 for b in base]  # fmt: skip
        ratios = [_f(b.makespan / t1 if b and b.makespan and t1 else None) for b in base[1:]]
        cpu = ", ".join(
            f"{_f(b.cpu.get('cpu_cores_used'))} / {_f(b.cpu.get('cpu_wait_share'))}" if b else "—"
            for b in base
        )
        lines.append(f"| {tool} | " + " | ".join(cells + ratios) + f" | {cpu} |")
    lines += [
        "",
        f"N = {nmax}: the others' time with one slow receiver (¼ write rate) against without it; "
        "the session with 1 % loss against without; both together (others, slowest, mean).",
        "",
        "| tool | base | slow: others (ratio) | slow: slowest | loss (ratio) | loss+slow: others "
        "| loss+slow: makespan | loss+slow: mean | mean vs udpcast |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    udp_ls = get("udpcast", "loss+slow", nmax)
    for tool in TOOLS:
        b, s = get(tool, "base", nmax), get(tool, "slow", nmax)
        lo, ls = get(tool, "loss", nmax), get(tool, "loss+slow", nmax)
        bt = b.makespan if b else None

        def ratio(x: float | None, y: float | None) -> str:
            return _f(x / y if x and y else None)

        lines.append(
            f"| {tool} | {_f(bt)} | {_f(s.others_time if s else None)} "
            f"({ratio(s.others_time if s else None, bt)}) | {_f(s.makespan if s else None)} | "
            f"{_f(lo.makespan if lo else None)} ({ratio(lo.makespan if lo else None, bt)}) | "
            f"{_f(ls.others_time if ls else None)} | {_f(ls.makespan if ls else None)} | "
            f"{_f(ls.mean if ls else None)} | "
            f"{ratio(ls.mean if ls else None, udp_ls.mean if udp_ls else None)} |"
        )
    if launch is not None:
        lines += _from_launch(launch, nmax)
    lines += ["", "Late join (one receiver starts when the first has half the image):", ""]
    lines += ["| tool | receiver | started at | heard the session at | done at | after starting "
              "| after hearing | duplicate bytes |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for tool in TOOLS:
        r = get(tool, "late", nmax)
        if r is None:
            continue
        for i, t in enumerate(r.times):
            j = r.joined[i] if i < len(r.joined) else 0.0
            dup = r.duplicate_bytes[i] if i < len(r.duplicate_bytes) else None
            h = r.heard[i] if i < len(r.heard) else None
            lines.append(f"| {tool} | {i}{' (late)' if i == r.late else ''} | {_f(j)} | {_f(h)} "
                         f"| {_f(t)} | {_f(t - j if t is not None else None)} | "
                         f"{_f(t - h if t is not None and h is not None else None)} | "
                         f"{'—' if dup is None else dup} |")  # fmt: skip
        total = sum(d for d in r.duplicate_bytes if d)
        lines.append(
            f"| {tool} | session total | | | | | | {total if tool == 'chunkcast' else '—'} |"
        )
    notes = [f"{r.tool} {r.scenario} N={r.n}:{r.note}" for r in rows if r.note]
    if notes:
        lines += ["", "Notes: " + "; ".join(notes)]
    return "\n".join(lines) + "\n"


def median_rows(rows: list[Row]) -> list[Row]:
    """One row per (tool, scenario, N): each receiver's median time over the rounds (a failed
    receiver in any round makes it failed), the first round's other fields."""
    out: dict[tuple[str, str, int], list[Row]] = {}
    for r in rows:
        out.setdefault((r.tool, r.scenario, r.n), []).append(r)
    merged = []
    for group in out.values():
        first = group[0]
        m = Row(first.tool, first.scenario, first.n, -1, slow=first.slow, late=first.late,
                frame_bytes=first.frame_bytes, cpu=first.cpu, note=first.note)  # fmt: skip
        ups = [g.sender_startup_s for g in group if g.sender_startup_s is not None]
        m.sender_startup_s = float(statistics.median(ups)) if ups else None
        m.announce_s = float(statistics.median(g.announce_s for g in group))
        for i in range(len(first.times)):
            ts = [g.times[i] if i < len(g.times) else None for g in group]
            m.times.append(None if any(t is None for t in ts) else
                           float(statistics.median(t for t in ts if t is not None)))  # fmt: skip
            js = [g.joined[i] for g in group if i < len(g.joined)]
            m.joined.append(float(statistics.median(js)) if js else 0.0)
            hs = [g.heard[i] for g in group if i < len(g.heard) and g.heard[i] is not None]
            m.heard.append(float(statistics.median(x for x in hs if x is not None)) if hs else None)
            ds = [g.duplicate_bytes[i] for g in group if i < len(g.duplicate_bytes)]
            known = [d for d in ds if d is not None]
            m.duplicate_bytes.append(int(statistics.median(known)) if known else None)
        m.cpu = {"cpu_bound": any(bool(g.cpu.get("cpu_bound")) for g in group),
                 "cpu_idle_mean": min(float(g.cpu.get("cpu_idle_mean", 1)) for g in group)}  # fmt: skip
        waits = [float(g.cpu["cpu_wait_share"]) for g in group if "cpu_wait_share" in g.cpu]
        if waits:  # the worst round's wait marks the median (any round held back counts)
            m.cpu["cpu_waited"] = any(bool(g.cpu.get("cpu_waited")) for g in group)
            m.cpu["cpu_wait_share"] = max(waits)
            m.cpu["cpu_cores_used"] = float(statistics.median(
                float(g.cpu["cpu_cores_used"]) for g in group if "cpu_cores_used" in g.cpu))  # fmt: skip
        merged.append(m)
    return merged


def sim_table(rows: list[Row], image: ChunkImage) -> tuple[str, list[dict[str, Any]]]:
    """The simulator's chunkcast model (:mod:`ogsim.chunkcast`) against the lab's rows."""
    objs = ImageObjects.of(image.manifest)
    cast = CastImage(len(objs.chunks), image.flat.stat().st_size, image.manifest.data_size)
    docs = [r.as_dict() for r in rows if r.tool == "chunkcast"]
    if not any(d["scenario"] == "base" and d["n"] == 1 and d["makespan"] for d in docs):
        return "", []
    preds = predict_rows(docs, cast, slow_data_rate(image))
    fitted = (
        (
            f"times from the session's announce, so no start-up; fitted on T(1) alone: "
            f"effective rate {preds[0]['rate_bps'] / 1e6:.1f} Mbit/s"
        )
        if preds
        else ""
    )
    lines = ["", f"Simulator (ogsim.chunkcast; {fitted}) against the lab, chunkcast:",
             "", "| scenario | N | receiver | lab s | sim s | sim/lab |", "|---|---|---|---|---|---|"]  # fmt: skip
    for p in preds:
        for i, (lab, sim) in enumerate(zip(p["lab"], p["sim"], strict=True)):
            err = sim / lab if lab else None
            lines.append(
                f"| {p['scenario']} | {p['n']} | {i} | {_f(lab)} | {_f(sim)} | {_f(err)} |"
            )
    return "\n".join(lines) + "\n", preds


def slow_data_rate(image: ChunkImage) -> float:
    """The slow receiver's disk: a quarter of the rate the session delivers data at (bytes of
    restored data per second), the same physical disk for every tool."""
    return RATE_MBIT * 1e6 / 8 * image.manifest.data_size / image.flat.stat().st_size / 4


def _from_launch(rows: list[Row], nmax: int) -> list[str]:
    """chunkcast's key ratios with its times counted from the sender's launch (its Python
    start-up — imports, manifest, chunk store — inside every time), beside the others'."""

    def get(tool: str, scenario: str, n: int) -> Row | None:
        return next((r for r in rows if (r.tool, r.scenario, r.n) == (tool, scenario, n)), None)

    def ratio(x: float | None, y: float | None) -> str:
        return _f(x / y if x and y else None)

    lines = ["", "The same, from the sender's launch to the receivers' exit (chunkcast: its "
             "sender's start-up and its receivers' exit included; the others: unchanged):", "",
             f"| tool | sender start-up | T(1) | T({nmax})/T(1) | slow: others (ratio) "
             f"| loss (ratio) | loss+slow: others |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for tool in TOOLS:
        one, b = get(tool, "base", 1), get(tool, "base", nmax)
        s, lo, ls = get(tool, "slow", nmax), get(tool, "loss", nmax), get(tool, "loss+slow", nmax)
        bt = b.makespan if b else None
        ups = [r.announce_s for r in rows if r.tool == tool]
        up = f"{min(ups):.2f}–{max(ups):.2f} s" if ups and max(ups) > 0 else "—"
        lines.append(
            f"| {tool} | {up} | {_f(one.makespan if one else None)} | "
            f"{ratio(bt, one.makespan if one else None)} | {_f(s.others_time if s else None)} "
            f"({ratio(s.others_time if s else None, bt)}) | {_f(lo.makespan if lo else None)} "
            f"({ratio(lo.makespan if lo else None, bt)}) | {_f(ls.others_time if ls else None)} |"
        )
    return lines


def scale_line() -> str:
    """The simulator's scale goal (issue 15: 1,000 receivers with skewed starts in ≤ 10 s),
    measured here: a 1 GiB image, 1 % loss each, starts spread over 30 s and over 120 s."""
    data = 1024 * 2**20
    image = CastImage(data // (128 * 1024), data * 6 // 10, data)
    cells = []
    for spread in (30.0, 120.0):
        recv = [CastReceiver(r.join_s, loss=0.01) for r in skewed(1000, spread)]
        res = simulate(image, recv, CastParams())
        cells.append(f"over {spread:.0f} s: {res.wall_s:.2f} s wall ({res.cpu_s:.2f} s CPU; "
                     f"sent {res.sent_bytes / image.frame_bytes:.2f}× the image)")  # fmt: skip
    return (
        "\nSimulator scale (ogsim.chunkcast.simulate, goal ≤ 10 s): 1,000 receivers, 1 GiB "
        "image, 1 % loss each, starts skewed " + "; ".join(cells) + ".\n"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ogsim.lab.netns.mcast_bench")
    p.add_argument("--n", default="1,2,4", help="receiver counts of the base rows")
    p.add_argument("--image-mib", type=int, default=48)
    p.add_argument("--tools", default=",".join(TOOLS))
    p.add_argument("--rounds", type=int, default=2, help="repeat everything; medians reported")
    p.add_argument("--out", type=Path, default=Path("reports/bench-lab-multicast"))
    p.add_argument("--report-only", action="store_true", help="redo the report of mcast.json")
    a = p.parse_args(argv)
    ns = [int(x) for x in a.n.split(",")]
    a.out.mkdir(parents=True, exist_ok=True)
    if a.report_only:
        doc = json.loads((a.out / "mcast.json").read_text())
        img = make(a.out / "image", "bench", a.image_mib * 2**20, seed=15)
        rows = [Row(**{k: v for k, v in d.items() if k in Row.__dataclass_fields__})
                for d in doc["rows"]]  # fmt: skip
        return _finish(rows, img, a.out, tuple(doc["load"]))
    for tool in ("udp-sender", "udp-receiver", "uftp", "uftpd", "pv", "zstd"):
        if shutil.which(tool) is None:
            print(f"mcast_bench: {tool} missing (tools/install-deps.sh installs it)")
            return 2
    if os.geteuid() != 0:
        print("mcast_bench: needs root (network namespaces)")
        return 2
    tools = a.tools.split(",")
    load0 = os.getloadavg()[0]
    img = make(a.out / "image", "bench", a.image_mib * 2**20, seed=15)
    key = a.out / "key"
    key.write_text(runtime.new_key())
    m = Manifest(a.out / "lab")
    slow = slow_data_rate(img)
    with m.owned():
        lab = MulticastLab.build(m, a.out / "run", max(ns), rate_bps=LINK_BPS)
        bench = Bench(lab, img, key, a.out)
        nmax = max(ns)
        for rnd in range(a.rounds):
            bench.round = rnd
            order = tools if rnd % 2 == 0 else tools[::-1]  # who goes first alternates
            # each tool's rows one after the other, so that the ratios a goal compares (slow,
            # loss against base) are measured minutes apart at most, not a whole round
            for tool in order:  # T(1) first: the late join's moment derives from it
                for n in ns:
                    bench.run(tool, "base", n)
                bench.run(tool, "slow", nmax, slow_rate=slow)
                bench.run(tool, "loss", nmax, loss=0.01)
                bench.run(tool, "loss+slow", nmax, slow_rate=slow, loss=0.01)
                bench.run(tool, "late", nmax, late=True)
    return _finish(bench.rows, img, a.out, (load0, os.getloadavg()[0]))


def _finish(rows: list[Row], img: ChunkImage, out: Path, load: tuple[float, float]) -> int:
    launch = median_rows(rows)
    med = median_rows(from_announce(rows))
    sim_text, preds = sim_table(med, img)
    scale = scale_line()
    doc = {"load": list(load), "rows": [r.as_dict() for r in rows],
           "medians": [r.as_dict() for r in med],
           "medians_from_launch": [r.as_dict() for r in launch], "sim": preds,
           "sim_scale": scale.strip()}  # fmt: skip
    (out / "mcast.json").write_text(json.dumps(doc, indent=1))
    text = report(med, img, load, launch) + sim_text + scale
    (out / "mcast.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
