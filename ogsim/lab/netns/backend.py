"""The ``netns`` backend: one scenario run with the real engine in a classroom of namespaces.

``run(scenario, seed, out_dir)`` builds the lab (switch, repository, server, one namespace per
client, a router when classrooms sit in other subnets), shapes the links from the scenario's
``hw:``, makes the scaled images with the runtime's createImage, starts smbd, opentracker, the
seeder, the repository control API, the server and one agent per client, submits the scenario's
operations to the server at their times, injects the faults it can (client crash, link loss,
link down), verifies every restored partition (fsck clean and file-tree hash equal to the
source's) and writes ``results.json`` in the common schema.  Everything it creates is in the
run directory's manifest and destroyed on every exit path; ``destroy(run_dir)`` cleans a run that
was killed.  Create / clone / boot operations are refused (recorded as such) for now.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

import yaml

from ogref.model import Filesystem
from ogref.repo.control import CONTROL_PORT
from ogref.repo.tracker import TRACKER_PORT, announce_url, tracker_argv, write_whitelist
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.loopdev import partition_path
from ogref.server import SERVER_PORT
from ogref.site import SiteSpec
from ogref.transports.signing import SignedClient, new_key, read_key, write_key
from ogsim.lab.manifest import Manifest
from ogsim.lab.netns import processes, samba, shaping
from ogsim.lab.netns.cpu import CpuMonitor
from ogsim.lab.netns.disks import ClientDisk, build_disk
from ogsim.lab.netns.images import SourceImage, make_source
from ogsim.lab.netns.topology import Host, Topology
from ogsim.lab.netns.tree import hash_partition
from ogsim.results import ComputerResult, LogLine, Metrics, OperationResult, Phase, Results
from ogsim.scenario import Scenario

DEFAULT_SCALE = 0.001
RUNNABLE = ("restore", "deploy", "update_cache")


@dataclass
class LabOptions:
    """Knobs of a lab run (defaults suit the test suite)."""

    scale: float | None = None
    heartbeat_timeout: float = 10.0
    command_timeout: float = 900.0
    torrent_stall: float = 60.0
    operation_timeout: float = 1200.0
    verify: bool = True


@dataclass
class Lab:
    """A built lab: what the run needs to reach and stop."""

    manifest: Manifest
    run_dir: Path
    topo: Topology
    repo: Host
    server: Host
    clients: dict[str, Host] = field(default_factory=dict)
    disks: dict[str, ClientDisk] = field(default_factory=dict)
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    sources: dict[str, SourceImage] = field(default_factory=dict)
    loss: shaping.LossTable | None = None
    notes: list[str] = field(default_factory=list)
    console: SignedClient | None = None


def _python() -> str:
    return sys.executable


def _subnet_of(scenario: Scenario, address: str) -> IPv4Network:
    addr = IPv4Address(address)
    for room in scenario.site.classrooms:
        for pc in room.computers:
            if addr in pc.subnet:
                return pc.subnet
    return IPv4Interface(f"{address}/24").network


def _free_address(net: IPv4Network, used: set[IPv4Address]) -> IPv4Address:
    for a in net.hosts():
        if a not in used and a != net.broadcast_address - 1:
            return a
    raise RuntimeError(f"no free address in {net}")


def _site_yaml(scenario: Scenario, path: Path) -> None:
    src = Path(scenario.source)
    if src.is_file():
        data = yaml.safe_load(src.read_text())
    else:
        data = scenario.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    keys = set(SiteSpec.model_fields)
    path.write_text(yaml.safe_dump({k: v for k, v in data.items() if k in keys}))


def build(scenario: Scenario, run_dir: Path, manifest: Manifest, opts: LabOptions) -> Lab:
    """Build the whole lab for ``scenario`` (the caller owns the manifest)."""
    scale = opts.scale or (
        scenario.spec.backends.netns.scale if scenario.spec.backends.netns else DEFAULT_SCALE
    )
    topo = Topology(manifest)
    topo.build_switch()
    repo_spec = scenario.site.repositories[0]
    repo_net = _subnet_of(scenario, repo_spec.address)
    repo = topo.add_host("repo", f"{repo_spec.address}/{repo_net.prefixlen}", mcast_router=True)
    used = {pc.address for pc in scenario.site.computers} | {IPv4Address(repo_spec.address)}
    srv_ip = _free_address(repo_net, used)
    server = topo.add_host("srv", f"{srv_ip}/{repo_net.prefixlen}")
    lab = Lab(manifest, run_dir, topo, repo, server)
    for pc in scenario.site.computers:
        lab.clients[pc.name] = topo.add_host(pc.name, pc.ip)
    subnets = list(topo.bridges)
    if len(subnets) > 1:
        topo.add_router(subnets, run_dir)
        for h in [repo, server, *lab.clients.values()]:
            topo.route_between(h, subnets)
        groups = sorted({str(room.multicast.address) for room in scenario.site.classrooms})
        topo.start_mrouting(groups, repo_net, run_dir)
        lab.notes.append(f"router between {', '.join(map(str, subnets))} with smcrouted")
    # shaping
    lab.loss = shaping.LossTable(topo, manifest)
    repo_hw = scenario.repositories.get(repo_spec.name)
    if repo_hw is not None:
        note = shaping.shape(topo, repo, repo_hw.uplink)
        lab.notes.append(note)
    for name, host in lab.clients.items():
        hw = scenario.hosts.get(name)
        if hw is None:
            continue
        note = shaping.shape(topo, host, hw.link_rate * 8, hw.delay_s)
        if "NOT" in note:
            lab.notes.append(note)
        if hw.loss > 0:
            lab.loss.set_loss(host, hw.loss)
    # repository: share, images, services
    share = run_dir / "repo" / "images"
    share.mkdir(parents=True, exist_ok=True)
    key_file = run_dir / "lab.key"
    write_key(key_file, new_key())
    accounts = samba.start_smbd(manifest, repo, share, run_dir / "smb")
    wanted = {getattr(op, op.kind).image for op in scenario.site.operations if op.kind in RUNNABLE}
    store = ImageStore(share)
    work = run_dir / "work"
    work.mkdir(exist_ok=True)
    for i, img in enumerate(scenario.site.repositories[0].images):
        if img.name not in wanted:
            continue
        data = max(8 << 20, int(img.data_size * scale))
        stored = max(1 << 20, int(img.stored_size * scale))
        lab.sources[img.name] = make_source(
            manifest,
            store,
            img.name,
            img.filesystem,
            data,
            stored,
            work,
            announce_url(repo.address),
            scenario.spec.seed + i,
        )
    # opentracker drops privileges before reading its whitelist: it must sit in a directory
    # that "nobody" can traverse (the run directory may be private)
    tdir = Path(tempfile.mkdtemp(prefix=f"{topo.prefix}-tracker-"))
    manifest.record("file", str(tdir))
    tdir.chmod(0o755)
    whitelist = tdir / "whitelist"
    write_whitelist(store, whitelist)
    whitelist.chmod(0o644)
    logs = run_dir / "logs"
    tracker = processes.start(
        manifest,
        repo,
        "opentracker",
        tracker_argv(repo.address, whitelist),
        logs / "opentracker.log",
    )
    processes.start(
        manifest,
        repo,
        "seeder",
        [
            _python(),
            "-m",
            "ogref.repo.seeder",
            "--images",
            str(share),
            "--listen",
            repo.address,
            "--status",
            str(run_dir / "seeder.json"),
        ],
        logs / "seeder.log",
    )
    control = processes.start(
        manifest,
        repo,
        "control",
        [
            _python(),
            "-m",
            "ogref.repo.control",
            "--images",
            str(share),
            "--listen",
            f"{repo.address}:{CONTROL_PORT}",
            "--key-file",
            str(key_file),
            "--log-dir",
            str(logs / "mcast"),
            "--fec",
            scenario.site.repositories[0].multicast_fec,
        ],
        logs / "control.log",
    )
    site_file = run_dir / "site.yaml"
    _site_yaml(scenario, site_file)
    console_sock = run_dir / "console.sock"
    manifest.record("file", str(console_sock))
    srv = processes.start(
        manifest,
        server,
        "server",
        [
            _python(),
            "-m",
            "ogref.server",
            "--site",
            str(site_file),
            "--listen",
            f"{server.address}:{SERVER_PORT}",
            "--console",
            str(console_sock),
            "--key-file",
            str(key_file),
            "--log-dir",
            str(logs / "clients"),
            "--heartbeat-timeout",
            str(opts.heartbeat_timeout),
            "--command-timeout",
            str(opts.command_timeout),
        ],
        logs / "server.log",
    )
    for host, port, proc in (
        (repo, TRACKER_PORT, tracker),
        (repo, CONTROL_PORT, control),
        (server, SERVER_PORT, srv),
    ):
        if not processes.wait_port(host, port, proc=proc):
            raise RuntimeError(f"service on {host.name}:{port} did not start (see {logs})")
    lab.console = SignedClient(f"unix:{console_sock}", read_key(key_file))
    # clients: disks and agents
    for pc in scenario.site.computers:
        cdir = run_dir / "clients" / pc.name
        cdir.mkdir(parents=True, exist_ok=True)
        disk = build_disk(manifest, pc, scale, work, cdir / "cache-setup")
        lab.disks[pc.name] = disk
        lab.agents[pc.name] = processes.start(
            manifest,
            lab.clients[pc.name],
            f"agent-{pc.name}",
            [
                _python(),
                "-m",
                "ogref.agent",
                "--name",
                pc.name,
                "--ip",
                pc.ip,
                "--disk",
                f"1={disk.device}",
                "--repo-ip",
                repo.address,
                "--smb-cred",
                str(accounts.reader_file),
                "--key-file",
                str(key_file),
                "--control",
                f"http://{repo.address}:{CONTROL_PORT}",
                "--server",
                f"http://{server.address}:{SERVER_PORT}",
                "--work",
                str(cdir),
                "--torrent-stall",
                str(opts.torrent_stall),
            ],
            cdir / "agent.out",
        )
    lab.notes.append(f"scale {scale:g}")
    if not shaping.netem_available():
        lab.notes.append("no netem in this kernel: link delay not emulated, loss by nft")
    return lab


# --------------------------------------------------------------------------- faults


def _apply_fault(lab: Lab, kind: str, body: Any, scenario: Scenario) -> str:
    targets = list(getattr(body, "target", []) or [])
    if kind == "client_crash":
        for name in targets:
            processes.kill_group(lab.agents[name])
        return f"crashed {', '.join(targets)} (agent killed)"
    if kind == "link_loss":
        assert lab.loss is not None
        for name in targets:
            host = lab.clients.get(name, lab.repo)
            lab.loss.set_loss(host, body.loss)
        return f"loss {body.loss:.2%} on {', '.join(targets)}"
    if kind == "link_down":
        assert lab.loss is not None
        for name in targets:
            host = lab.clients.get(name, lab.repo)
            lab.loss.set_down(host, True)
        return f"link down on {', '.join(targets)}"
    return f"fault {kind} not emulated in the netns lab"


# --------------------------------------------------------------------------- running


def _rel(t: float | None, t0: float) -> float:
    return round(max(0.0, (t or t0) - t0), 3)


def _computer(rec: dict[str, Any], t0: float, crashed: set[str]) -> ComputerResult:
    status = rec.get("status", "not_started")
    if rec["name"] in crashed and status != "ok":
        status = "crashed"
    requested = rec.get("requested")
    used = rec.get("method_used")
    return ComputerResult(
        name=rec["name"],
        classroom=rec.get("classroom", ""),
        group=rec.get("group", ""),
        method_requested=requested,
        method_used=used,
        switched=bool(rec.get("switched")),
        fallback_reasons=list(rec.get("reasons", [])) if rec.get("switched") else [],
        phases=[
            Phase(
                name=p["name"],
                start=_rel(p["start"], t0),
                end=_rel(p["end"], t0),
                bytes=float(p.get("bytes", 0)),
                detail=p.get("detail", ""),
            )
            for p in rec.get("phases", [])
        ],
        bytes_moved=float(rec.get("bytes_moved", 0)),
        checksum_verified=rec.get("checksum_verified"),
        status=status,
        code=rec.get("code"),
        message=rec.get("message", ""),
        started=_rel(rec.get("started") or rec.get("sent"), t0),
        finished=_rel(rec["finished"], t0) if rec.get("finished") else None,
        log=[LogLine(t=_rel(line["t"], t0), text=line["text"]) for line in rec.get("log", [])],
    )


def _verify(lab: Lab, res: ComputerResult, op_spec: Any, t0: float) -> None:
    src = lab.sources.get(op_spec.image)
    disk = lab.disks[res.name]
    if src is None:
        return
    node = partition_path(disk.device, op_spec.partition)
    start = time.time()
    fs = src.image.filesystem
    fsck_ok = True
    detail = []
    from ogref.runtime import filesystem

    try:
        filesystem.check(node, fs)
        detail.append("fsck clean")
    except Exception as exc:
        fsck_ok = False
        detail.append(f"fsck FAILED: {exc}")
    tree_ok = False
    try:
        got, nfiles = hash_partition(
            lab.manifest,
            node,
            fs if fs is not Filesystem.EMPTY else Filesystem.EXT4,
            lab.run_dir / "work",
        )
        tree_ok = got == src.tree_hash and nfiles == src.files
        detail.append(f"file-tree hash {'equal' if tree_ok else 'DIFFERS'} ({nfiles} files)")
    except Exception as exc:
        detail.append(f"tree hash failed: {exc}")
    ok = fsck_ok and tree_ok
    res.phases.append(
        Phase(
            name="verify",
            start=_rel(start, t0),
            end=_rel(time.time(), t0),
            detail="; ".join(detail),
        )
    )
    res.checksum_verified = bool(ok and res.checksum_verified is not False)
    if not ok:
        res.status = "failed"
        res.message = f"verification failed: {'; '.join(detail)}"


def execute(
    lab: Lab, scenario: Scenario, opts: LabOptions
) -> tuple[list[OperationResult], list[LogLine], float, CpuMonitor]:
    """Submit the operations, inject the faults, collect the records."""
    assert lab.console is not None
    # wait for every agent to say hello
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        clients = lab.console.post("/console/clients")["clients"]
        if all(c["status"] != "OFF" for c in clients):
            break
        time.sleep(0.3)
    events: list[LogLine] = []
    faults = sorted(scenario.spec.faults, key=lambda f: f.at)
    crashed: set[str] = set()
    ops_out: list[OperationResult] = []
    cpu = CpuMonitor().start()
    t0 = time.time()
    pending_faults = list(faults)
    reverts: list[tuple[float, str, Any]] = []

    def tick() -> None:
        now = time.time() - t0
        while pending_faults and pending_faults[0].at <= now:
            f = pending_faults.pop(0)
            body = getattr(f, f.kind)
            if f.kind == "client_crash":
                crashed.update(body.target)
            text = _apply_fault(lab, f.kind, body, scenario)
            events.append(LogLine(t=round(now, 3), text=text))
            duration = getattr(body, "duration", None)
            if f.kind in ("link_loss", "link_down") and duration:
                reverts.append((f.at + duration, f.kind, body))
        for item in [r for r in reverts if r[0] <= now]:
            reverts.remove(item)
            _, kind, body = item
            assert lab.loss is not None
            for name in body.target:
                host = lab.clients.get(name, lab.repo)
                if kind == "link_loss":
                    lab.loss.set_loss(host, 0.0)
                else:
                    lab.loss.set_down(host, False)
            events.append(LogLine(t=round(now, 3), text=f"{kind} on {', '.join(body.target)} over"))

    try:
        for index, op in enumerate(scenario.site.operations):
            while time.time() - t0 < op.at:
                tick()
                time.sleep(0.1)
            spec = getattr(op, op.kind)
            at = time.time()
            if op.kind not in RUNNABLE:
                events.append(
                    LogLine(t=_rel(at, t0), text=f"operation {index} ({op.kind}) not run by netns")
                )
                ops_out.append(OperationResult(index=index, kind=op.kind, at=_rel(at, t0)))
                continue
            sub = lab.console.post("/console/submit", {"index": index})
            events.append(
                LogLine(
                    t=_rel(at, t0),
                    text=f"operation {index} ({op.kind}) "
                    f"submitted to {len(sub['computers'])} computers",
                )
            )
            limit = time.monotonic() + opts.operation_timeout
            status: dict[str, Any] = {}
            while time.monotonic() < limit:
                tick()
                status = lab.console.post("/console/status", {"op": sub["op"]})
                if status["done"]:
                    break
                time.sleep(0.5)
            records = [_computer(r, t0, crashed) for r in status.get("records", [])]
            finished = [r.finished for r in records if r.finished is not None]
            ops_out.append(
                OperationResult(
                    index=index,
                    kind=op.kind,
                    at=_rel(at, t0),
                    image=spec.image,
                    method=str(spec.method),
                    scope=str(spec.to),
                    computers=records,
                    makespan=round(max(finished) - _rel(at, t0), 3) if finished else None,
                )
            )
    finally:
        cpu.stop()
    return ops_out, events, t0, cpu


def _halt(lab: Lab) -> None:
    if lab.console is not None:
        with contextlib.suppress(Exception):
            lab.console.post("/console/halt", timeout=5)
    deadline = time.monotonic() + 10
    for proc in lab.agents.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            processes.kill_group(proc)


def run(
    scenario: Scenario, seed: int | None, out_dir: Path, opts: LabOptions | None = None
) -> Results:
    """Run ``scenario`` in a namespace lab under ``out_dir``; the results (also written)."""
    opts = opts or LabOptions()
    out_dir.mkdir(parents=True, exist_ok=True)
    run_dir = out_dir / "lab"
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(run_dir)
    wall0 = time.time()
    with manifest.owned():
        lab = build(scenario, run_dir, manifest, opts)
        setup_s = time.time() - wall0
        ops, events, t0, cpu = execute(lab, scenario, opts)
        _halt(lab)
        if opts.verify:
            for op_res in ops:
                spec_op = scenario.site.operations[op_res.index]
                spec = getattr(spec_op, spec_op.kind)
                if spec_op.kind not in ("restore", "deploy"):
                    continue
                for c in op_res.computers:
                    if c.status == "ok":
                        _verify(lab, c, spec, t0)
        for i, text in enumerate(lab.notes):
            events.insert(i, LogLine(t=0.0, text=text))
        seeder = run_dir / "seeder.json"
        seeded = seeder.read_text() if seeder.exists() else "{}"
        logs_dir = run_dir / "logs" / "clients"
        if logs_dir.exists():
            shutil.copytree(logs_dir, out_dir / "client-logs", dirs_exist_ok=True)
    every = [c for op in ops for c in op.computers]
    makespan = max((c.finished or 0.0 for c in every), default=0.0)
    import json

    results = Results(
        scenario=scenario.name,
        description=scenario.spec.description,
        backend="netns",
        seed=scenario.spec.seed if seed is None else seed,
        scale=opts.scale
        or (scenario.spec.backends.netns.scale if scenario.spec.backends.netns else DEFAULT_SCALE),
        operations=ops,
        metrics=Metrics(
            makespan_s=round(makespan, 3),
            computers=len(scenario.site.computers),
            ok=sum(1 for c in every if c.status == "ok"),
            failed=sum(1 for c in every if c.status != "ok"),
            bytes_total=sum(c.bytes_moved for c in every),
            wall_s=round(time.time() - wall0, 3),
            extra={
                "setup_s": round(setup_s, 3),
                **cpu.summary(),
                "images": {
                    n: {"stored": s.image.stored_size, "data": s.image.data_size, "files": s.files}
                    for n, s in lab.sources.items()
                },
                "seeder_uploaded": json.loads(seeded),
                "notes": lab.notes,
                "verified": sum(
                    1
                    for c in every
                    if any(p.name == "verify" and "equal" in p.detail for p in c.phases)
                ),
            },
        ),
        events=events,
    )
    results.write(out_dir / "results.json")
    return results


def destroy(run_dir: Path) -> list[str]:
    """Destroy what a (killed) run left, from its manifest; the errors."""
    for candidate in (run_dir, run_dir / "lab"):
        if (candidate / "manifest.jsonl").exists():
            return Manifest(candidate).destroy()
    return []
