"""The libvirt connection and its daemons.

``ensure_daemons`` starts ``virtlogd`` and ``libvirtd`` (no systemd on these machines) when no
libvirtd answers on the local socket, and records in the manifest only the processes it started.
``open_connection`` opens a URI: ``qemu:///system`` by default; ``qemu+ssh://user@host/system``
puts the classroom on another host (that host then runs the VMs, the network and — because the
boot, repository and server services bind to the lab bridge — needs them reachable; see the
backend's docstring).  The libvirt kinds ``libvirt_domain`` and ``libvirt_network`` get their
manifest destroyers here.  It defines no network or domain XML.
"""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from ogsim.lab.manifest import Manifest, Resource, destroyer, stop_process

DEFAULT_URI = "qemu:///system"
LIBVIRT_SOCK = Path("/run/libvirt/libvirt-sock")


class LibvirtUnavailableError(RuntimeError):
    """libvirt-python, libvirtd or qemu is missing (the backend is not available here)."""


def libvirt_module() -> Any:
    """``import libvirt`` with a clear error, and libvirt's stderr error printer silenced."""
    try:
        import libvirt
    except ImportError as exc:
        raise LibvirtUnavailableError("libvirt-python is missing: pip install '.[vm]'") from exc
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


def is_local(uri: str) -> bool:
    """Whether the URI names this host's system daemon."""
    return "://" in uri and uri.split("://", 1)[1].startswith("/")


def _daemon_running(pidfile: Path) -> bool:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return False
    return Path(f"/proc/{pid}").exists()


def ensure_daemons(manifest: Manifest, timeout: float = 15.0) -> list[str]:
    """Start virtlogd/libvirtd if none runs; return the names started (and recorded)."""
    started: list[str] = []
    for name in ("virtlogd", "libvirtd"):
        if _daemon_running(Path(f"/run/{name}.pid")):
            continue
        if name == "libvirtd" and LIBVIRT_SOCK.exists() and _socket_answers():
            continue
        exe = f"/usr/sbin/{name}"
        if not os.path.exists(exe):
            raise LibvirtUnavailableError(f"{exe} missing: apt-get install libvirt-daemon-system")
        # -d daemonises: the recorded PID is the daemon's own, read back from its pidfile
        manifest.record("daemon_pending", name)
        subprocess.run([exe, "-d"], check=True, capture_output=True)
        pid = _wait_pidfile(Path(f"/run/{name}.pid"), timeout)
        manifest.record_process(name, pid, kind="libvirt_daemon")
        started.append(name)
    deadline = time.monotonic() + timeout
    while not (LIBVIRT_SOCK.exists() and _socket_answers()):
        if time.monotonic() > deadline:
            raise LibvirtUnavailableError("libvirtd did not open its socket")
        time.sleep(0.1)
    return started


def _wait_pidfile(pidfile: Path, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(OSError, ValueError):
            pid = int(pidfile.read_text().strip())
            if Path(f"/proc/{pid}").exists():
                return pid
        time.sleep(0.05)
    raise LibvirtUnavailableError(f"{pidfile} did not appear")


def _socket_answers() -> bool:
    import socket

    s = socket.socket(socket.AF_UNIX)
    try:
        s.settimeout(1)
        s.connect(str(LIBVIRT_SOCK))
        return True
    except OSError:
        return False
    finally:
        s.close()


def open_connection(uri: str = DEFAULT_URI) -> Any:
    """Open ``uri`` (a ``virConnect``)."""
    libvirt = libvirt_module()
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise LibvirtUnavailableError(f"cannot open {uri}: {exc}") from exc


@destroyer("daemon_pending")
def _pending(_res: Resource) -> None:
    """Marks a daemon about to start; the 'libvirt_daemon' record that follows stops it."""


def others_use_libvirtd(uri: str = DEFAULT_URI) -> bool:
    """Whether libvirtd still runs domains or networks (ours are destroyed before the daemons:
    the manifest destroys in reverse order), i.e. another lab run or user relies on it.  Defined
    but inactive objects (Debian's ``default`` network) do not count."""
    if not (LIBVIRT_SOCK.exists() and _socket_answers()):
        return False
    libvirt = libvirt_module()
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError:
        return False
    try:
        return bool(
            conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
            or conn.listAllNetworks(libvirt.VIR_CONNECT_LIST_NETWORKS_ACTIVE)
        )
    finally:
        conn.close()


@destroyer("libvirt_daemon")
def _stop_daemon(res: Resource) -> None:
    """Stop a daemon this run started — unless someone else now uses libvirtd: then libvirtd
    (and virtlogd, which it needs) are left running rather than pulled from under them."""
    if res.name == "libvirtd" and others_use_libvirtd():
        return
    if res.name == "virtlogd" and _daemon_running(Path("/run/libvirtd.pid")):
        return
    stop_process(res)


def _lookup_destroy(res: Resource, kind: str) -> None:
    libvirt = libvirt_module()
    conn = libvirt.open(res.extra.get("uri", DEFAULT_URI))
    try:
        try:
            obj = (conn.lookupByName if kind == "domain" else conn.networkLookupByName)(res.name)
        except libvirt.libvirtError:
            return  # gone already
        if res.extra.get("uuid") and obj.UUIDString() != res.extra["uuid"]:
            return  # same name, not ours
        with suppress(libvirt.libvirtError):
            obj.destroy()
        with suppress(libvirt.libvirtError):
            if kind == "domain":  # a persistent one (never ours today) with its NVRAM
                obj.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            else:
                obj.undefine()
    finally:
        conn.close()


@destroyer("libvirt_domain")
def _destroy_domain(res: Resource) -> None:
    _lookup_destroy(res, "domain")


@destroyer("libvirt_network")
def _destroy_network(res: Resource) -> None:
    _lookup_destroy(res, "network")
