"""The ``netns`` backend: one scenario run with the real engine in a classroom of namespaces.

``run(scenario, seed, out_dir)`` builds the lab (switch, repository, server, one namespace per
client, a router when classrooms sit in other subnets), shapes the links from the scenario's
``hw:``, makes the scaled images with the runtime's createImage, starts smbd, opentracker, the
seeder, the repository control API, the server and one agent per client, submits the scenario's
operations to the server at their times, injects the faults it can (client crash, link loss,
link down), verifies every restored partition (fsck clean and file-tree hash equal to the
source's) and writes ``results.json`` in the common schema.  Everything it creates is in the
run directory's manifest and destroyed on every exit path; ``destroy(run_dir)`` cleans a run that
was killed.

Create / clone / boot go through the server like restores (every decision is the core's or the
console's; the backend only prepares, waits and verifies):

- **create**: before the agents start, the source computer's partition is filled as a reference
  system (:func:`ogsim.lab.netns.ops.prepare_reference`: a minimal Linux tree plus data); the
  agent runs the runtime's createImage — real partclone + compressor, staged write and atomic
  publish, sidecars and ``.torrent`` — into its CACHE or into the repository share mounted
  read-write as the *writer* account (smbnetfs).  A created REPO image becomes the reference of
  later restores of that name (its tree hash, read from the source partition); opentracker
  reloads its whitelist, and the seeder re-seeds a replaced image when its ``.torrent``'s
  info-hash changes.
- **clone** (MULTICAST): the MASTER's agent pipes ``partclone | compressor`` into udp-sender; the
  targets receive from the MASTER with the core's restore-from-MASTER session; each cloned
  partition is verified against the MASTER's tree hash, and its stream MD5 against the MASTER's.
  A UNICAST clone is refused by the server (no unicast partition transport).
- **boot** (emulated: a namespace has no OS to start): the agent checks what configureOs left
  (hostname, fstab root UUID, active flag) and reports "OS started" through the server's OS
  port, as the VM lab's booted OS does; then the backend sends the console's reboot: "boot
  once" must come back to the live client (OPG), "boot target" must boot and report again.
  Nothing of the image is executed and no boot loader is installed — the results say so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any, Literal

import yaml

from ogref.console import scope_label
from ogref.core.events import RESTORE_STAGES
from ogref.model import ClientStatus, Filesystem, Image
from ogref.model.policy import McastProtocol
from ogref.model.protocol import MulticastSession
from ogref.repo.control import CONTROL_PORT
from ogref.repo.tracker import TRACKER_PORT, announce_url, tracker_argv, write_whitelist
from ogref.runtime.chunked.transfer import make_pack_torrent
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.loopdev import partition_path
from ogref.service.keys import save_private_key
from ogref.service.main import OS_PORT, SERVICE_PORT
from ogref.site import CloneSpec, CreateSpec, SiteSpec
from ogsim.lab import cgroup
from ogsim.lab.capabilities import (
    CAPABILITIES,
    HostCapabilities,
    HostCapabilityError,
    probe,
    require,
)
from ogsim.lab.clock import Anchor, ScenarioClock, anchor_faults
from ogsim.lab.console import Console, ConsoleError, computer_result
from ogsim.lab.manifest import Manifest
from ogsim.lab.netns import ops as labops
from ogsim.lab.netns import processes, samba, shaping
from ogsim.lab.netns.cpu import CpuMonitor
from ogsim.lab.netns.disks import ClientDisk, build_disk
from ogsim.lab.netns.images import (
    SourceImage,
    lab_piece,
    make_differential,
    make_source,
    seed_cache,
)
from ogsim.lab.netns.topology import Host, Topology
from ogsim.lab.netns.tree import hash_partition
from ogsim.progress import ComputerEvent, Emit, OperationEvent, StageEvent, nothing, operation_text
from ogsim.results import (
    ComputerResult,
    HostRecord,
    LogLine,
    Metrics,
    OperationResult,
    Phase,
    Results,
)
from ogsim.scenario import Scenario

DEFAULT_SCALE = 0.001
RUNNABLE = ("restore", "deploy", "update_cache", "create", "clone", "boot")
RESTORES = ("restore", "deploy", "update_cache")
VERIFY_THREADS = 2
BOOT_NOTE = (
    "boot emulated: the agent checks what configureOs left (hostname, fstab root, active flag) "
    "and reports the OS; nothing is executed, no boot loader installed (GRUB off in netns)"
)


@dataclass
class LabOptions:
    """Knobs of a lab run (defaults suit the test suite)."""

    scale: float | None = None
    heartbeat_timeout: float = 10.0
    command_timeout: float = 900.0
    torrent_stall: float = 60.0
    operation_timeout: float = 1200.0
    verify: bool = True
    multicast_router: Literal["auto", "smcroute", "relay"] = "auto"
    caps: HostCapabilities | None = None  # default: probed
    emit: Emit = nothing  # told the lab's stages and each computer's progress while it runs
    ogserver_port: int | None = None  # also serve ogServer's REST API on the server's address
    course: Path | None = None  # a course exercise's directory, shown by the service's console
    every_image: bool = False  # make every image of the repository, not only those restored
    cpu_trace: float | None = None  # keep the run cgroup's CPU seconds every this many seconds


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
    console: Console | None = None
    store: ImageStore | None = None
    whitelist: Path | None = None
    tracker: subprocess.Popen[bytes] | None = None
    seeder: subprocess.Popen[bytes] | None = None
    references: dict[str, SourceImage] = field(default_factory=dict)  # "pc:disk:part" → tree
    caps: HostCapabilities = field(default_factory=probe)
    mrelay: bool = False


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


def multicast_groups(scenario: Scenario) -> list[str]:
    """Every multicast address the scenario's sessions may use (classrooms' and commands')."""
    groups = {str(room.multicast.address) for room in scenario.site.classrooms}
    for op in scenario.site.operations:
        text = getattr(getattr(op, op.kind), "multicast", None)
        if text:
            groups.add(MulticastSession.parse(text).address)
    return sorted(groups)


def _multicast_router(opts: LabOptions, caps: HostCapabilities) -> str:
    """``smcroute``, ``relay`` or ``none``: the option's, or (``auto``) kernel routing where the
    host has it, else the relay, else none (then no session of the scenario crosses subnets:
    :func:`~ogsim.lab.capabilities.require` refused it otherwise)."""
    if opts.multicast_router != "auto":
        return opts.multicast_router
    if caps.has("multicast_routing"):
        return "smcroute"
    return "relay" if caps.has("multicast_relay") else "none"


def lab_scale(scenario: Scenario, override: float | None = None) -> float:
    """The share of its images' bytes ``scenario`` moves on this lab: ``override`` (the
    ``--scale`` option), else the scenario's ``backends.netns.scale``, else the default."""
    netns = scenario.spec.backends.netns
    return override or (netns.scale if netns else DEFAULT_SCALE)


def build(scenario: Scenario, run_dir: Path, manifest: Manifest, opts: LabOptions) -> Lab:
    """Build the whole lab for ``scenario`` (the caller owns the manifest)."""
    scale = lab_scale(scenario, opts.scale)
    topo = Topology(manifest)
    cgroup.create(manifest, f"oglab-{topo.prefix}")  # every program of the run starts in it
    topo.build_switch()
    repo_spec = scenario.site.repositories[0]
    repo_net = _subnet_of(scenario, repo_spec.address)
    emit = opts.emit
    hosts = len(scenario.site.computers) + 2
    emit(StageEvent("network", "namespaces, bridges, veths", 0, hosts))
    repo = topo.add_host("repo", f"{repo_spec.address}/{repo_net.prefixlen}", mcast_router=True)
    used = {pc.address for pc in scenario.site.computers} | {IPv4Address(repo_spec.address)}
    srv_ip = _free_address(repo_net, used)
    server = topo.add_host("srv", f"{srv_ip}/{repo_net.prefixlen}")
    lab = Lab(manifest, run_dir, topo, repo, server, caps=opts.caps or probe())
    for i, pc in enumerate(scenario.site.computers):
        lab.clients[pc.name] = topo.add_host(pc.name, pc.ip)
        emit(StageEvent("network", "namespaces, bridges, veths", i + 3, hosts))
    subnets = list(topo.bridges)
    if len(subnets) > 1:
        topo.add_router(subnets, run_dir)
        for h in [repo, server, *lab.clients.values()]:
            topo.route_between(h, subnets)
        between = ", ".join(map(str, subnets))
        if not scenario.spec.network.router.multicast:
            lab.notes.append(
                f"router between {between}: unicast only (network.router.multicast: false)"
            )
        elif (how := _multicast_router(opts, lab.caps)) == "smcroute":
            topo.start_mrouting(multicast_groups(scenario), run_dir)
            lab.notes.append(f"router between {between} with smcrouted (multicast routing)")
        elif how == "none":
            lab.notes.append(
                f"router between {between}: unicast only (this kernel can neither route nor "
                "relay multicast; no session of this scenario crosses subnets)"
            )
        else:
            topo.start_mrelay(multicast_groups(scenario))
            lab.mrelay = True
            lab.notes.append(
                f"router between {between}: multicast relayed by nftables netdev dup "
                "(no kernel multicast routing; TTL not decremented)"
            )
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
        shaping.shape(topo, host, hw.link_rate * 8, hw.delay_s, netem=lab.caps.has("netem"))
        if hw.loss > 0:
            lab.loss.set_loss(host, hw.loss)
    # repository: share, images, services
    share = run_dir / "repo" / "images"
    share.mkdir(parents=True, exist_ok=True)
    emit(StageEvent("services", "smbd"))
    accounts = samba.start_smbd(manifest, repo, share, run_dir / "smb")
    wanted = {getattr(op, op.kind).image for op in scenario.site.operations if op.kind in RESTORES}
    if opts.every_image:  # a course: the student may pick any image of the catalogue
        wanted |= {img.name for img in scenario.site.repositories[0].images}
    catalogue = {img.name: img for img in scenario.site.repositories[0].images}
    for pc in scenario.site.computers:  # chunked images the caches hold are made too
        if pc.cache is not None:
            wanted |= {c.name for c in pc.cache.images if c.chunked and c.name in catalogue}
    for name in list(wanted):  # and the bases of chunked differential images
        img = catalogue.get(name)
        if img is not None and img.chunked and img.base in catalogue:
            wanted.add(img.base)
    store = ImageStore(share)
    lab.store = store
    work = run_dir / "work"
    work.mkdir(exist_ok=True)
    for i, img in enumerate(scenario.site.repositories[0].images):
        if img.name not in wanted:
            continue
        data = max(8 << 20, int(img.data_size * scale))
        stored = max(1 << 20, int(img.stored_size * scale))
        how = "chunked" if img.chunked else f"partclone + {img.compressor}"
        emit(StageEvent("images", f"{img.name} ({how})", i, len(wanted)))
        base = lab.sources.get(img.base) if img.chunked and img.base else None
        if base is not None:
            lab.sources[img.name] = make_differential(
                manifest,
                store,
                img.name,
                base,
                max(64 * 1024, int(img.added_size * scale)),
                work,
                scenario.spec.seed + 100 + i,
            )
            continue
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
            piece=lab_piece(scale, img.torrent_piece),
            windows=img.filesystem is Filesystem.NTFS,
            chunked=img.chunked,
            also_chunked=scenario.site.policy.mcast_protocol is McastProtocol.CHUNKCAST,
        )
    for name, src in lab.sources.items():  # a chunked image's pack and its .torrent
        if src.image.chunked:
            img = catalogue[name]
            make_pack_torrent(
                store, name, announce_url(repo.address), lab_piece(scale, img.torrent_piece)
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
    lab.tracker, lab.whitelist = tracker, whitelist
    lab.seeder = _start_seeder(lab)
    site_file = run_dir / "site.yaml"
    _site_yaml(scenario, site_file)
    console_sock = run_dir / "console.sock"
    manifest.record("file", str(console_sock))
    state = run_dir / "service"
    token_file, public_file = run_dir / "admin.token", run_dir / "server.pub"
    srv = processes.start(
        manifest,
        server,
        "service",
        [
            _python(),
            "-m",
            "ogref.service.main",
            "--state",
            str(state),
            "--site",
            str(site_file),
            "--listen",
            f"{server.address}:{SERVICE_PORT}",
            "--listen",
            f"{server.address}:{OS_PORT}",
            "--console",
            str(console_sock),
            "--admin-token-file",
            str(token_file),
            "--server-public-file",
            str(public_file),
            "--heartbeat-timeout",
            str(_heartbeat_timeout(scenario, opts)),
            "--command-timeout",
            str(opts.command_timeout),
            *(
                ["--ogserver-listen", f"{server.address}:{opts.ogserver_port}"]
                if opts.ogserver_port
                else []
            ),
            *(["--course", str(opts.course)] if opts.course is not None else []),
        ],
        logs / "service.log",
    )
    if not processes.wait_port(server, SERVICE_PORT, proc=srv, timeout=60):
        raise RuntimeError(f"the console service did not start (see {logs}/service.log)")
    lab.console = Console(console_sock, token_file.read_text().strip())
    server_public = public_file.read_text().strip()
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
            "--server-public",
            server_public,
            "--log-dir",
            str(logs / "mcast"),
            "--fec",
            scenario.site.repositories[0].multicast_fec,
        ],
        logs / "control.log",
    )
    for host, port, proc in ((repo, TRACKER_PORT, tracker), (repo, CONTROL_PORT, control)):
        if not processes.wait_port(host, port, proc=proc):
            raise RuntimeError(f"service on {host.name}:{port} did not start (see {logs})")
    # clients: disks and agents
    emit(StageEvent("agents", "disks and live clients", 0, len(scenario.site.computers)))
    for n, pc in enumerate(scenario.site.computers):
        emit(StageEvent("agents", "disks and live clients", n, len(scenario.site.computers)))
        cdir = run_dir / "clients" / pc.name
        cdir.mkdir(parents=True, exist_ok=True)
        held = [
            c.name
            for c in (pc.cache.images if pc.cache else ())
            if c.chunked and c.complete and c.name in lab.sources
        ]

        def seed(images_dir: Path, held: list[str] = held) -> None:
            for name in held:  # the chunked images the scenario says the cache holds
                seed_cache(images_dir, store, name)

        disk = build_disk(manifest, pc, scale, work, cdir / "cache-setup", before_fill=seed)
        lab.disks[pc.name] = disk
        _prepare_references(lab, scenario, pc.name, scale, work)
        key = cdir / "agent.pem"  # registered with the service: its own credential
        save_private_key(key, lab.console.register(pc.name))
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
                str(key),
                "--control",
                f"http://{repo.address}:{CONTROL_PORT}",
                "--service",
                f"http://{server.address}:{SERVICE_PORT}",
                "--server-public",
                server_public,
                "--work",
                str(cdir),
                "--torrent-stall",
                str(opts.torrent_stall),
                "--smb-admin-cred",
                str(accounts.writer_file),
                "--emulate-boot",
                "--os-report",
                f"http://{server.address}:{OS_PORT}/api/os",
            ],
            cdir / "agent.out",
        )
    lab.notes.append(f"scale {scale:g}")
    return lab


def _heartbeat_timeout(scenario: Scenario, opts: LabOptions) -> float:
    """How long the server waits for a silent agent before calling it lost: the option's, or
    longer than the scenario's longest link outage (a computer whose cable is out for 90 s is not
    dead: it reports its own result — a timeout, 57 — when the link is back)."""
    outages = [
        float(f.link_down.duration or 0.0) for f in scenario.spec.faults if f.link_down is not None
    ]
    return max([opts.heartbeat_timeout, *(d + 15.0 for d in outages)])


def _start_seeder(lab: Lab) -> subprocess.Popen[bytes]:
    assert lab.store is not None
    return processes.start(
        lab.manifest,
        lab.repo,
        "seeder",
        [
            _python(),
            "-m",
            "ogref.repo.seeder",
            "--images",
            str(lab.store.root),
            "--listen",
            lab.repo.address,
            "--status",
            str(lab.run_dir / "seeder.json"),
        ],
        lab.run_dir / "logs" / "seeder.log",
    )


def _prepare_references(lab: Lab, scenario: Scenario, name: str, scale: float, work: Path) -> None:
    """Fill ``name``'s partitions that a create images or a clone sends (reference systems)."""
    wanted: set[tuple[int, int]] = set()
    for i, op in enumerate(scenario.site.operations):
        body = getattr(op, op.kind)
        if isinstance(body, CreateSpec) and body.computer == name:
            wanted.add((body.disk, body.partition))
        if isinstance(body, CloneSpec) and body.master == name and not body.from_cache:
            wanted.add((body.disk, body.partition))
        del i
    pc = scenario.site.computer(name)
    disk = lab.disks[name]
    for d, n in sorted(wanted):
        part = pc.disks.partition(d, n)
        fs = disk.partitions.get(n) if d == 1 else None
        if (
            part is None
            or fs is None
            or fs in (Filesystem.EMPTY, Filesystem.CACHE, Filesystem.SWAP)
        ):
            continue
        node = partition_path(disk.device, n)
        size = int(filesystem_size(node))
        data = min(int((part.used or part.size // 2) * scale), int(size * 0.6))
        tree, files = labops.prepare_reference(
            lab.manifest, node, fs, max(1 << 20, data), scenario.spec.seed + n, work
        )
        lab.references[f"{name}:{d}:{n}"] = SourceImage(
            Image(f"{name}-d{d}p{n}", fs, size, size), tree, files, 0.0
        )
        lab.notes.append(
            f"{name} {d}:{n}: reference system prepared ({fs}, {data} bytes of data, {files} files)"
        )


def filesystem_size(node: str) -> int:
    from ogref.runtime import filesystem

    return filesystem.device_size(node)


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
    if kind == "seeder_death":
        if lab.seeder is not None:
            processes.kill_group(lab.seeder)
        return "the repository's seeder stopped (process killed)"
    raise ValueError(f"fault {kind} is not emulated by the netns lab")  # refused up front


# --------------------------------------------------------------------------- running


def _computer(rec: dict[str, Any], clock: ScenarioClock, crashed: set[str]) -> ComputerResult:
    crash = rec["name"] in crashed and rec.get("status") != "ok"
    return computer_result(rec, clock.of, "crashed" if crash else None)


def _verify(
    lab: Lab, res: ComputerResult, src: SourceImage | None, partition: int, clock: ScenarioClock
) -> None:
    disk = lab.disks[res.name]
    if src is None:
        return
    node = partition_path(disk.device, partition)
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
            start=clock.of(start),
            end=clock.of(time.time()),
            detail="; ".join(detail),
        )
    )
    res.checksum_verified = bool(ok and res.checksum_verified is not False)
    if not ok:
        res.status = "failed"
        res.message = f"verification failed: {'; '.join(detail)}"


def _verify_all(
    lab: Lab,
    scenario: Scenario,
    ops: list[OperationResult],
    expected: dict[int, SourceImage | None],
    clock: ScenarioClock,
) -> None:
    """Verify every computer a restore, deploy or clone left ok, a few at a time: each check is
    an fsck and a mount (other programs) and a tree hash (this one), so two threads keep both of
    a small host's CPUs busy where one left the second idle (35 NTFS partitions: measured in the
    lab's timing notes)."""
    jobs = []
    for op_res in ops:
        spec_op = scenario.site.operations[op_res.index]
        if spec_op.kind not in ("restore", "deploy", "clone"):
            continue
        partition = getattr(spec_op, spec_op.kind).partition
        for c in op_res.computers:
            if c.status == "ok":
                jobs.append((c, expected.get(op_res.index), partition))
    with ThreadPoolExecutor(max_workers=VERIFY_THREADS) as pool:
        done = [pool.submit(_verify, lab, c, src, part, clock) for c, src, part in jobs]
        for future in done:
            future.result()


def _refused(
    scenario: Scenario,
    index: int,
    kind: str,
    body: Any,
    at: float,
    clock: ScenarioClock,
    why: str,
    code: int | None = None,
) -> OperationResult:
    """The server refused the operation: each computer of its scope is recorded refused."""
    to = getattr(body, "to", None)
    names = [body.computer] if isinstance(body, CreateSpec) else []
    if to is not None:
        with contextlib.suppress(Exception):
            names = [pc.name for pc in scenario.site.scope(to)]
    recs = [
        ComputerResult(
            name=n,
            classroom=scenario.site.computer(n).classroom,
            status="refused",
            code=code,
            message=why,
            started=clock.of(at),
            finished=clock.of(at),
        )
        for n in names
    ]
    return OperationResult(index=index, kind=kind, at=clock.of(at), computers=recs)


def _after_create(lab: Lab, spec: CreateSpec, rec: ComputerResult, raw: dict[str, Any]) -> str:
    """A created REPO image becomes what later restores of its name must reproduce."""
    if rec.status != "ok" or spec.target != "REPO":
        return ""
    made = raw.get("image") or {}
    node = partition_path(lab.disks[spec.computer].device, spec.partition)
    tree, files, fs = labops.partition_tree(lab.manifest, node, lab.run_dir / "work")
    replaced = spec.image in lab.sources
    image = Image(
        spec.image,
        fs,
        int(made.get("data_size", 0)),
        int(made.get("stored_size", 0)),
        checksum=str(made.get("checksum", "")),
    )
    lab.sources[spec.image] = SourceImage(
        image, tree, files, rec.phases[0].end - rec.phases[0].start if rec.phases else 0.0
    )
    text = f"created {spec.image}: reference tree of {spec.computer} {spec.disk}:{spec.partition} ({files} files)"
    if made.get("torrent") and lab.store is not None and lab.whitelist and lab.tracker:
        labops.refresh_tracker(lab.store, lab.whitelist, lab.tracker.pid)
        text += "; tracker whitelist reloaded"
        if replaced:
            text += "; the seeder re-seeds it on its next scan (new info-hash)"
    return text


def _clients(lab: Lab) -> dict[str, dict[str, Any]]:
    assert lab.console is not None
    return {c["name"]: c for c in lab.console.clients()}


def _after_boot(lab: Lab, spec: Any, recs: list[ComputerResult], clock: ScenarioClock) -> None:
    """The console's reboot after a boot: boot once → live client; boot target → the OS again."""
    assert lab.console is not None
    clients = _clients(lab)
    for r in recs:
        reps = clients[r.name]["os"]
        if r.status == "ok" and reps:
            r.os_hostname = str(reps[-1]["hostname"])  # what the server's OS port received
            r.log.append(
                LogLine(
                    t=clock.of(float(reps[-1]["t"])),
                    text=f"OS started: hostname {reps[-1]['hostname']} ({reps[-1]['status']})",
                )
            )
        elif r.status == "ok":
            r.status, r.message = (
                "failed",
                "the agent said booted but no OS report reached the server",
            )
    ok = [r for r in recs if r.status == "ok"]
    if not ok:
        return
    start = time.time()
    lab.console.reboot([r.name for r in ok])
    want = "the boot target again" if spec.permanent else f"the live client ({ClientStatus.OPG})"
    pending = {r.name for r in ok}
    deadline = time.monotonic() + 30
    while pending and time.monotonic() < deadline:
        time.sleep(0.3)
        clients = _clients(lab)
        for n in list(pending):
            c = clients[n]
            since = [status for t, status in c.get("history", []) if t >= start]
            if spec.permanent:  # the OS reported again after the reboot
                done = any(float(rep["t"]) >= start for rep in c["os"])
            else:  # back in the live client (a next command may have moved it on since)
                done = str(ClientStatus.OPG) in since
            if done:
                pending.discard(n)
    clients = _clients(lab)
    for r in ok:
        c = clients[r.name]
        r.log.append(LogLine(t=clock.of(start), text=f"reboot sent to {r.name}: expecting {want}"))
        if r.name in pending:
            r.phases.append(Phase(name="reboot", start=clock.of(start), end=clock.now()))
            r.status = "failed"
            r.message = f"after the reboot command: expected {want}, status {c['status']}"
            continue
        # when it got there (not when the lab looked: a next command may have started since)
        if spec.permanent:
            report = next(rep for rep in c["os"] if float(rep["t"]) >= start)
            reached, when = str(report["status"]), float(report["t"])
            r.os_hostname = str(report["hostname"])
        else:
            when, reached = next(
                (t, s) for t, s in c.get("history", []) if t >= start and s == "OPG"
            )
        r.phases.append(
            Phase(
                name="reboot",
                start=clock.of(start),
                end=clock.of(when),
                detail=f"emulated: to {want}",
            )
        )
        r.message += f"; after reboot: {reached} ({ClientStatus(reached).colour})"
        r.finished = clock.of(when)


@dataclass
class _Running:
    """An operation submitted to the server and not yet collected."""

    index: int
    kind: str
    spec: Any
    op_id: str
    at: float  # when it was submitted, in scenario time
    deadline: float  # monotonic
    records: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class _Faults:
    """The scenario's faults, their anchors, and what has been done with them."""

    anchors: list[Anchor]
    fired: set[int] = field(default_factory=set)
    dropped: set[int] = field(default_factory=set)
    reverts: list[tuple[float, float, str, Any]] = field(default_factory=list)  # wall, τ end
    crashed: set[str] = field(default_factory=set)

    def left(self) -> list[Anchor]:
        return [a for a in self.anchors if a.fault not in self.fired | self.dropped]


LATE = "struck late"
"""What a fault's event says when its anchored transfer had ended before the lab saw it get there
(the lab sees progress only in its agents' reports): the run did not test what the scenario
says, and the library's test fails on it."""

MIN_WINDOW_S = 3.0
"""The shortest window (lab seconds, :meth:`Anchor.window_s`) a mid-transfer fault may have at a
scenario's lab scale.  A busy agent reports every 0.25 s, but with a classroom of agents on two
loaded cores the lab saw a point up to 1.6 s after it was passed (s18: 84 % of pc01's download)."""


def fault_anchors(scenario: Scenario) -> list[Anchor]:
    """Where each fault strikes on a lab: anchored on the simulator's prediction of the
    scenario (:mod:`ogsim.lab.clock`)."""
    from ogsim.simulator import simulate

    out: list[Anchor] = []
    for i, f in enumerate(scenario.spec.faults):
        body = getattr(f, f.kind)
        targets = list(getattr(body, "target", None) or [getattr(body, "repository", "repo")])
        # the prediction this fault is placed on: the scenario with the faults before it only
        # (its own effect, and later ones, must not move where it strikes)
        before = [g for g in scenario.spec.faults if g.at < f.at]
        spec = scenario.spec.model_copy(update={"faults": before})
        predicted = simulate(dataclasses.replace(scenario, spec=spec))
        (anchor,) = anchor_faults(predicted, [targets], [f.at])
        out.append(dataclasses.replace(anchor, fault=i))
    return out


def _anchor_due(
    a: Anchor, running: dict[int, _Running], done: set[int], clients: dict[str, Any], now: float
) -> str:
    """``fire`` when anchor ``a`` is reached, ``late`` when its computer is already past the
    anchored transfer (it still fires: before the computer ends), ``drop`` when it never will
    be, else ``wait``."""
    if a.kind == "idle":
        return "fire" if now >= a.at else "wait"
    assert a.op is not None and a.computer is not None
    if a.op in done:
        return "drop"
    r = running.get(a.op)
    if r is None:
        return "wait"
    rec = r.records.get(a.computer, {})
    if rec.get("final"):
        return "drop"
    if "sent" not in rec:
        return "wait"
    if a.kind == "start":
        return "fire"
    act = clients.get(a.computer, {}).get("activity") or {}
    if act.get("id") != f"{r.op_id}/{a.computer}":
        return "wait"
    stage = str(act.get("stage", ""))
    order = {name: i for i, name in enumerate(RESTORE_STAGES)}
    if order.get(stage, -1) > order.get(a.stage, 99):
        return "late"  # past the transfer, but before the computer ends
    if a.kind == "after" or stage != a.stage:
        return "wait"
    total = float(act.get("total") or 0)
    return "fire" if total and float(act.get("done") or 0) / total >= a.fraction else "wait"


def execute(
    lab: Lab, scenario: Scenario, opts: LabOptions
) -> tuple[
    list[OperationResult], list[LogLine], ScenarioClock, CpuMonitor, dict[int, SourceImage | None]
]:
    """Submit the operations at their scenario times (idle gaps skipped; the server's command
    queue runs them concurrently where its rules allow), inject the faults at their anchors,
    collect the records."""
    assert lab.console is not None
    console = lab.console
    # wait for every agent to say hello
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(c["status"] != "OFF" for c in console.clients()):
            break
        time.sleep(0.3)
    events: list[LogLine] = []
    faults = _Faults(fault_anchors(scenario))
    scale = lab_scale(scenario, opts.scale)
    for a in faults.anchors:
        f = scenario.spec.faults[a.fault]
        events.append(LogLine(t=0.0, text=f"fault {a.fault} ({f.kind}) strikes {a.describe()}"))
        window = a.window_s(scale)
        if window is not None and window < MIN_WINDOW_S:
            events.append(
                LogLine(t=0.0, text=f"fault {a.fault}: about {window:g} s of {a.computer}'s "
                        f"{a.stage} are left after its anchor at this scale (the agents' "
                        "reports can lag by a second or more): it may strike late; a larger "
                        "backends.netns.scale widens it")
            )  # fmt: skip
    todo = sorted(enumerate(scenario.site.operations), key=lambda io: (io[1].at, io[0]))
    running: dict[int, _Running] = {}
    results: dict[int, OperationResult] = {}
    expected: dict[int, SourceImage | None] = {}
    cpu = CpuMonitor(
        cgroup=lab.manifest.cgroup if opts.cpu_trace else None, trace_s=opts.cpu_trace
    ).start()
    clock = ScenarioClock()
    opts.emit(StageEvent("run", t=0.0))
    told: dict[str, tuple[Any, ...]] = {}

    def fire(a: Anchor, late: bool = False) -> None:
        f = scenario.spec.faults[a.fault]
        body = getattr(f, f.kind)
        if f.kind == "client_crash":
            faults.crashed.update(body.target)
        text = _apply_fault(lab, f.kind, body, scenario)
        when = a.describe()
        if late:  # the scenario meant it during the transfer: say it came after
            when += f"; {LATE}: {a.computer} had already ended its {a.stage}"
        events.append(LogLine(t=clock.now(), text=f"fault {a.fault}: {text} ({when})"))
        duration = getattr(body, "duration", None)
        if f.kind in ("link_loss", "link_down") and duration:
            faults.reverts.append((time.time() + duration, clock.now() + duration, f.kind, body))
        faults.fired.add(a.fault)

    def revert(item: tuple[float, float, str, Any]) -> None:
        faults.reverts.remove(item)
        _, _, kind, body = item
        assert lab.loss is not None
        for name in body.target:
            host = lab.clients.get(name, lab.repo)
            if kind == "link_loss":
                lab.loss.set_loss(host, 0.0)
            else:
                lab.loss.set_down(host, False)
        events.append(LogLine(t=clock.now(), text=f"{kind} on {', '.join(body.target)} over"))

    try:
        while todo or running or faults.reverts:
            now = clock.now()
            # submit what is due, in scenario order
            while todo and todo[0][1].at <= now:
                index, op = todo.pop(0)
                spec = getattr(op, op.kind)
                if isinstance(spec, CloneSpec):  # the MASTER's partition as it is now
                    expected[index] = (
                        lab.sources.get(spec.from_cache)
                        if spec.from_cache
                        else _master_tree(lab, spec)
                    )
                sub = _submit(lab, scenario, index, op.kind, spec, clock, events, opts.emit)
                if isinstance(sub, OperationResult):
                    results[index] = sub
                else:
                    running[index] = _Running(
                        index,
                        op.kind,
                        spec,
                        sub,
                        now,
                        time.monotonic() + opts.operation_timeout,
                    )
            # poll the running operations and the clients' activity
            clients = _clients(lab) if running else {}
            for index, r in list(running.items()):
                status = console.status(r.op_id)
                r.records = {rec["name"]: rec for rec in status.get("records", [])}
                _tell(opts.emit, r, clients, clock, told)
                if status["done"] or time.monotonic() > r.deadline:
                    del running[index]
                    if r.kind in ("restore", "deploy"):
                        # the version it read: every create of the image submitted before it
                        # had ended when it started (the command queue's rule), and those are
                        # collected first (in submission order)
                        expected[index] = lab.sources.get(r.spec.image)
                    results[index] = _collect(lab, r, status, clock, faults.crashed, events)
                    _tell(opts.emit, r, _clients(lab), clock, told)
                    res = results[index]
                    ok = sum(1 for c in res.computers if c.status == "ok")
                    opts.emit(
                        OperationEvent(
                            index,
                            f"{operation_text(r.kind, r.spec, len(res.computers))}: {ok} ok",
                            "ended",
                            len(res.computers),
                            clock.now(),
                        )
                    )
            # faults: at their anchors; the end of their durations
            for a in faults.left():
                due = _anchor_due(a, running, set(results), clients, now)
                if due in ("fire", "late"):
                    fire(a, late=due == "late")
                elif due == "drop":
                    faults.dropped.add(a.fault)
                    events.append(
                        LogLine(t=now, text=f"fault {a.fault} not applied: {a.describe()} "
                                "never came (that part ended first)")
                    )  # fmt: skip
            for item in [r for r in faults.reverts if r[0] <= time.time()]:
                revert(item)
            # idle: skip to the next thing due in scenario time
            if not running:
                nexts = [op.at for _, op in todo[:1]]
                nexts += [a.at for a in faults.left() if a.kind == "idle"]
                if nexts and min(nexts) > now:
                    target = min(nexts)
                    for item in [r for r in faults.reverts if r[1] <= target]:
                        revert(item)  # a duration that ended during the gap ends now
                    if not faults.reverts:
                        skip = clock.skip_to(target, "idle: nothing running")
                        if skip is not None:
                            events.append(
                                LogLine(
                                    t=skip.end,
                                    text=f"idle from {skip.start:g} s to {skip.end:g} s "
                                    "(scenario time) skipped",
                                )
                            )
                        continue
            if not todo and not running and not faults.reverts:
                break
            time.sleep(0.1)
        for a in faults.left():
            events.append(
                LogLine(t=clock.now(), text=f"fault {a.fault} not applied: the run ended")
            )
    finally:
        cpu.stop()
    return [results[i] for i in sorted(results)], events, clock, cpu, expected


def _tell(
    emit: Emit,
    r: _Running,
    clients: dict[str, Any],
    clock: ScenarioClock,
    told: dict[str, tuple[Any, ...]],
) -> None:
    """Each computer of ``r`` whose status, stage or bytes changed, as the agents report them."""
    if emit is nothing:
        return
    for name, rec in r.records.items():
        c = clients.get(name, {})
        act = c.get("activity") or {}
        mine = act.get("id") == f"{r.op_id}/{name}"
        final = bool(rec.get("final"))
        stage = "" if final else str(act.get("stage", "")) if mine else ""
        if not final and not stage and "sent" not in rec:
            stage = "queued"
        done = float(act.get("done") or 0) if mine else 0.0
        total = float(act.get("total") or 0) if mine else 0.0
        status = str(c.get("status", "OFF"))
        method = str(rec.get("method_used") or rec.get("requested") or "")
        # stages passed between two polls (the agent's trail of this command): told once each,
        # with their last bytes, so a stage shorter than a poll still shows
        source = act if mine else rec if final else {}
        trail = [t for t in source.get("trail") or [] if isinstance(t, dict)]
        if trail:
            passed = trail if final else trail[:-1]  # the last one is the current stage
            seen = told.get(f"{name}/trail", ())
            for t in passed[len(seen) :]:
                done_t, total_t = float(t.get("done") or 0), float(t.get("total") or 0)
                stage_t = str(t.get("stage", ""))
                emit(ComputerEvent(name, status, stage_t, done_t, total_t, method, t=clock.now()))
            told[f"{name}/trail"] = tuple(str(t.get("stage", "")) for t in passed)
        note = ""
        if rec.get("switched") and rec.get("reasons"):
            note = f"switched to {rec.get('method_used')}: {rec['reasons'][0]}"
        if final:
            note = str(rec.get("message", ""))
        key = (str(c.get("status", "")), stage, done, final, note)
        if told.get(name) == key:
            continue
        told[name] = key
        code = rec.get("code") if final else None
        emit(
            ComputerEvent(name, status, stage, done, total, method, note, code, final, clock.now())
        )


def _submit(
    lab: Lab,
    scenario: Scenario,
    index: int,
    kind: str,
    spec: Any,
    clock: ScenarioClock,
    events: list[LogLine],
    emit: Emit = nothing,
) -> str | OperationResult:
    """Submit operation ``index`` to the server: its id, or the refused operation's record."""
    assert lab.console is not None
    at = time.time()
    if kind not in RUNNABLE:
        events.append(LogLine(t=clock.of(at), text=f"operation {index} ({kind}) not run by netns"))
        return OperationResult(index=index, kind=kind, at=clock.of(at))
    try:
        sub = lab.console.submit(index)
    except ConsoleError as exc:
        why = str(exc)
        events.append(LogLine(t=clock.of(at), text=f"operation {index} ({kind}) refused: {why}"))
        return _refused(scenario, index, kind, spec, at, clock, why)
    if "refused" in sub:
        why, code = str(sub["refused"]["message"]), int(sub["refused"]["code"])
        events.append(
            LogLine(t=clock.of(at), text=f"operation {index} ({kind}) refused ({code}): {why}")
        )
        emit(OperationEvent(index, f"{kind}: {why} ({code})", "refused", t=clock.of(at)))
        return _refused(scenario, index, kind, spec, at, clock, why, code)
    events.append(
        LogLine(
            t=clock.of(at),
            text=f"operation {index} ({kind}) submitted to {len(sub['computers'])} computers",
        )
    )
    n = len(sub["computers"])
    emit(OperationEvent(index, operation_text(kind, spec, n), computers=n, t=clock.of(at)))
    return str(sub["op"])


def _collect(
    lab: Lab,
    r: _Running,
    status: dict[str, Any],
    clock: ScenarioClock,
    crashed: set[str],
    events: list[LogLine],
) -> OperationResult:
    """An ended operation's records in the results' terms (and what its end implies)."""
    raw = status.get("records", [])
    records = [_computer(rec, clock, crashed) for rec in raw]
    spec = r.spec
    image = getattr(spec, "image", None)
    method = str(spec.method) if r.kind in RESTORES else None
    if isinstance(spec, CreateSpec) and records:
        text = _after_create(lab, spec, records[0], raw[0])
        if text:
            events.append(LogLine(t=clock.now(), text=text))
    elif isinstance(spec, CloneSpec):
        source = status.get("source") or {}
        image = str((source.get("image") or {}).get("name", "")) or None
        method = f"{spec.method}-DIRECT"
        md5 = source.get("stream_md5", "")
        events.append(
            LogLine(
                t=clock.of(source.get("finished") or time.time()),
                text=f"MASTER {spec.master}: code {source.get('code')}: "
                f"{source.get('message', '')}",
            )
        )
        for rec, rr in zip(records, raw, strict=True):
            if rr.get("stream_md5"):
                rec.checksum_verified = bool(md5) and rr["stream_md5"] == md5
    elif r.kind == "boot":
        _after_boot(lab, spec, records, clock)
    finished = [c.finished for c in records if c.finished is not None]
    return OperationResult(
        index=r.index,
        kind=r.kind,
        at=r.at,
        image=image,
        method=method,
        scope=scope_label(spec.to) if hasattr(spec, "to") else str(getattr(spec, "computer", "")),
        computers=records,
        makespan=round(max(finished) - r.at, 3) if finished else None,
    )


def _master_tree(lab: Lab, spec: CloneSpec) -> SourceImage:
    """What a clone must reproduce: the MASTER's partition as it is now (read-only hash)."""
    node = partition_path(lab.disks[spec.master].device, spec.partition)
    tree, files, fs = labops.partition_tree(lab.manifest, node, lab.run_dir / "work")
    return SourceImage(
        Image(f"{spec.master}-d{spec.disk}p{spec.partition}", fs, 1, 1), tree, files, 0.0
    )


def _halt(lab: Lab) -> None:
    if lab.console is not None:
        with contextlib.suppress(Exception):
            lab.console.halt(timeout=5)
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
    caps = opts.caps or probe()
    verdict = require(scenario, "netns", caps)  # refused here, before anything is created
    forced = {"smcroute": "multicast_routing", "relay": "multicast_relay"}.get(
        opts.multicast_router
    )
    if forced and not caps.has(forced):
        cap = CAPABILITIES[forced]
        raise HostCapabilityError(
            [f"multicast_router={opts.multicast_router} asked for, but this kernel has no "
             f"{cap.what} ({cap.kernel_option})"]
        )  # fmt: skip
    opts = dataclasses.replace(opts, caps=caps)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_dir = out_dir / "lab"
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(run_dir)
    wall0 = time.time()
    with manifest.owned():
        lab = build(scenario, run_dir, manifest, opts)
        setup_s = time.time() - wall0
        lab.notes.extend(verdict.notes)
        tx0 = _tx_bytes(lab.repo)
        ops, events, clock, cpu, expected = execute(lab, scenario, opts)
        repo_tx = _tx_bytes(lab.repo) - tx0
        _halt(lab)
        if lab.mrelay:
            lab.notes.append(f"multicast relay: {lab.topo.relayed()} frames duplicated")
        if opts.verify:
            _verify_all(lab, scenario, ops, expected, clock)
        kinds = {scenario.site.operations[o.index].kind for o in ops}
        if "boot" in kinds:
            lab.notes.append(BOOT_NOTE)
        if "create" in kinds:
            lab.notes.append(
                "create: real partclone + compressor through the runtime's createImage (staged, "
                "published atomically) into the share mounted read-write as the writer account "
                "(smbnetfs, FUSE); reference partitions are synthetic (a Linux tree + data)"
            )
        if "clone" in kinds and scenario.site.policy.mcast_protocol is McastProtocol.CHUNKCAST:
            lab.notes.append(
                "clone: the MASTER's partition cut into chunks and served by chunkcast "
                "(MCASTPROTOCOL=CHUNKCAST), each chunk hashed by the targets; verified by tree hash"
            )
        elif "clone" in kinds:
            lab.notes.append(
                "clone: the MASTER's partclone | compressor stream sent by its own udp-sender, "
                "received by udp-receiver from the MASTER; verified by tree hash and stream MD5"
            )
        for i, text in enumerate(lab.notes):
            events.insert(i, LogLine(t=0.0, text=text))
        seeder = run_dir / "seeder.json"
        seeded = seeder.read_text() if seeder.exists() else "{}"
        _write_client_logs(lab, scenario, out_dir / "client-logs")
    every = [c for op in ops for c in op.computers]
    makespan = max((c.finished or 0.0 for c in every), default=0.0)
    import json

    results = Results(
        scenario=scenario.name,
        description=scenario.spec.description,
        backend="netns",
        seed=scenario.spec.seed if seed is None else seed,
        scale=lab_scale(scenario, opts.scale),
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
                **(
                    {
                        "cpu_trace": [
                            [clock.of(t), round(c, 6), *(round(x, 4) for x in rest)]
                            for t, c, *rest in cpu.trace
                        ]
                    }
                    if opts.cpu_trace
                    else {}
                ),
                "images": {n: _image_record(s) for n, s in lab.sources.items()},
                "repo_tx_bytes": repo_tx,
                "seeder_uploaded": json.loads(seeded),
                "time": clock.record(),
                "notes": lab.notes,
                "verified": sum(
                    1
                    for c in every
                    if any(p.name == "verify" and "equal" in p.detail for p in c.phases)
                ),
            },
        ),
        events=events,
        host=HostRecord(
            **caps.record(),
            notes=[
                *verdict.notes,
                *(n for n in lab.notes if n.startswith(("router between", "multicast relay"))),
            ],
        ),
    )
    results.write(out_dir / "results.json")
    return results


def _tx_bytes(host: Host) -> int:
    """Bytes ``host`` has sent on its ``eth0`` (every protocol: the bytes on the wire)."""
    done = subprocess.run(
        host.exec_argv(["cat", "/sys/class/net/eth0/statistics/tx_bytes"]),
        capture_output=True,
        text=True,
        check=False,
    )
    return int(done.stdout.strip() or 0)


def _image_record(s: SourceImage) -> dict[str, Any]:
    out: dict[str, Any] = {"stored": s.image.stored_size, "data": s.image.data_size}
    out["files"] = s.files
    if s.image.chunked:
        out["format"] = "chunked"
        out["used"] = s.image.used_size
        if s.image.base:
            out |= {"base": s.image.base, "added": s.image.added_size}
            out |= {"changed": s.changed[0], "changed_compressed": s.changed[1]}
    return out


def _write_client_logs(lab: Lab, scenario: Scenario, where: Path) -> None:
    """Each computer's tracking log, as the service keeps it, in ``<ip>.log`` (OpenGnSys's
    per-client log files)."""
    if lab.console is None:
        return
    where.mkdir(parents=True, exist_ok=True)
    for pc in scenario.site.computers:
        try:
            lines = lab.console.log(pc.name)
        except ConsoleError:
            continue
        text = "".join(
            f"{time.strftime('%H:%M:%S', time.localtime(float(x['t'])))} {x['text']}\n"
            for x in lines
        )
        (where / f"{pc.address}.log").write_text(text)


def destroy(run_dir: Path) -> list[str]:
    """Destroy what a (killed) run left, from its manifest; the errors."""
    from ogsim.lab import destroy as destroy_run

    return destroy_run(run_dir)
