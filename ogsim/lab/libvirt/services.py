"""The server and the repository services of a VM classroom, on the host side of its bridge.

The same programs, started the same way, as in the netns lab (``ogsim.lab.netns.backend``):
``smbd`` with the ``ogimages`` share and per-lab generated reader/writer passwords
(:func:`ogsim.lab.netns.samba.start_smbd`), ``opentracker`` with the repository's whitelist, the
libtorrent seeder, the console service (``ogref serve``: agents' signed API, the console socket,
OS-started reports) and the repository's control API (``udp-sender`` on the bridge, opened by
the service's capability tokens).  Everything binds to
the bridge address only.  The netns helpers want a named network namespace: here it is an alias
(``ip netns attach``) of this process's own namespace, where the bridge lives — recorded in the
manifest and removed (``ip netns del`` of an alias only unmounts it).  Every process is a
recorded process group.  The ``.torrent`` files of the run's repository copy are rewritten to
announce to this bridge's tracker.  It builds no image and runs nothing in the VMs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

from ogref.repo.control import CONTROL_PORT
from ogref.repo.tracker import TRACKER_PORT, announce_url, tracker_argv, write_whitelist
from ogref.runtime.chunked import inventory
from ogref.runtime.chunked.transfer import make_pack_torrent
from ogref.runtime.imagefile import ImageStore, make_torrent
from ogref.service.main import OS_PORT, SERVICE_PORT
from ogref.site import load_site
from ogsim.lab.console import Console
from ogsim.lab.manifest import Manifest
from ogsim.lab.netns import processes, samba
from ogsim.lab.netns.samba import SambaAccounts
from ogsim.lab.netns.topology import Host


@dataclass
class Services:
    """What the backend and the VMs need to reach the running services."""

    host: Host
    server_public: str  # the service's key, which the live clients pin
    accounts: SambaAccounts
    console: Console
    logs: Path

    @property
    def address(self) -> str:
        return self.host.address

    @property
    def server_url(self) -> str:
        return f"http://{self.address}:{SERVICE_PORT}"

    @property
    def control_url(self) -> str:
        return f"http://{self.address}:{CONTROL_PORT}"


def bridge_host(manifest: Manifest, name: str, bridge: str, subnet: IPv4Network) -> Host:
    """A netns-lab :class:`Host` for the bridge's host side (an alias of our own namespace)."""
    alias = f"oglabh-{name[-8:]}"  # the network's name ends in the run's unique suffix
    manifest.record("netns", alias)
    subprocess.run(["ip", "netns", "attach", alias, str(os.getpid())], check=True, timeout=30)
    return Host("host", alias, f"{subnet.network_address + 1}/{subnet.prefixlen}", bridge, bridge)


def announce_here(repo: Path, ip: str) -> list[str]:
    """Rewrite every image's ``.torrent`` to announce to the tracker on ``ip`` — a chunked
    image's ``.pack.torrent`` (its pack made if missing) as an ``.img``'s; the images."""
    store = ImageStore(repo)
    done = []
    for name in store.names():
        files = store.files(name)
        if files.img.exists() and files.torrent.exists():
            make_torrent(files, announce_url(ip), f"ogLab VM classroom image {name}")
            done.append(name)
    for name in inventory.names(store):
        if name not in done and make_pack_torrent(store, name, announce_url(ip)) is not None:
            done.append(name)
    return done


def _listening(
    host: Host, ip: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0
) -> bool:
    """``ip:port`` listens in ``host``'s namespace — that address: another lab's service on its
    own bridge listens on the same port of the same (root) namespace."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            host.exec_argv(["ss", "-ltnH"]),
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        if any(f" {ip}:{port} " in f" {line} " for line in out.splitlines()):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def start(
    manifest: Manifest,
    run_dir: Path,
    host: Host,
    repo: Path,
    site_file: Path,
    *,
    heartbeat_timeout: float = 90.0,
    command_timeout: float = 900.0,
) -> Services:
    """Start smbd, the tracker, the seeder, the control API and the server on ``host``."""
    py = sys.executable
    ip = host.address
    logs = run_dir / "logs"
    announce_here(repo, ip)
    accounts = samba.start_smbd(manifest, host, repo, run_dir / "smb")
    # opentracker reads its whitelist after dropping privileges: a directory "nobody" traverses
    tdir = Path(tempfile.mkdtemp(prefix="oglab-vm-tracker-"))
    manifest.record("file", str(tdir))
    tdir.chmod(0o755)
    whitelist = tdir / "whitelist"
    write_whitelist(ImageStore(repo), whitelist)
    whitelist.chmod(0o644)
    tracker = processes.start(
        manifest, host, "opentracker", tracker_argv(ip, whitelist), logs / "opentracker.log"
    )
    processes.start(
        manifest,
        host,
        "seeder",
        [
            py,
            "-m",
            "ogref.repo.seeder",
            "--images",
            str(repo),
            "--listen",
            ip,
            "--status",
            str(run_dir / "seeder.json"),
        ],
        logs / "seeder.log",
    )
    sock = run_dir / "console.sock"
    manifest.record("file", str(sock))
    token_file, public_file = run_dir / "admin.token", run_dir / "server.pub"
    service = processes.start(
        manifest,
        host,
        "service",
        [
            py,
            "-m",
            "ogref.service.main",
            "--state",
            str(run_dir / "service"),
            "--site",
            str(site_file),
            "--listen",
            f"{ip}:{SERVICE_PORT}",
            "--listen",
            f"{ip}:{OS_PORT}",
            "--console",
            str(sock),
            "--admin-token-file",
            str(token_file),
            "--server-public-file",
            str(public_file),
            "--heartbeat-timeout",
            str(heartbeat_timeout),
            "--command-timeout",
            str(command_timeout),
        ],
        logs / "service.log",
    )
    if not _listening(host, ip, SERVICE_PORT, service) or not public_file.exists():
        raise RuntimeError(f"the console service did not start (see {logs}/service.log)")
    server_public = public_file.read_text().strip()
    control = processes.start(
        manifest,
        host,
        "control",
        [
            py,
            "-m",
            "ogref.repo.control",
            "--images",
            str(repo),
            "--listen",
            f"{ip}:{CONTROL_PORT}",
            "--server-public",
            server_public,
            "--log-dir",
            str(logs / "mcast"),
            "--interface",
            host.bridge,
            "--fec",
            load_site(site_file).repositories[0].multicast_fec,
        ],
        logs / "control.log",
    )
    for port, proc in ((TRACKER_PORT, tracker), (CONTROL_PORT, control), (OS_PORT, service)):
        if not _listening(host, ip, port, proc):
            raise RuntimeError(f"service on {ip}:{port} did not start (see {logs})")
    deadline = time.monotonic() + 60
    while not sock.exists() and service.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    console = Console(sock, token_file.read_text().strip())
    return Services(host, server_public, accounts, console, logs)
