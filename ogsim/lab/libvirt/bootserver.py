"""The lab's PXE/HTTP boot server: iPXE scripts, the live client's kernel and initramfs files,
and the per-MAC boot choice (what OpenGnSys keeps in ``menu.lst/01-<MAC>``).

The DHCP boot file is ``http://<bridge-ip>:<port>/boot.ipxe``; that script chains to
``/pxe/<mac>``, which answers by the MAC's mode: ``live`` boots the live client (kernel plus every
registered initramfs, in order), ``disk`` exits iPXE so the BIOS boots the VM's own disk (boot
target), ``disk-once`` does that once and falls back to ``live`` (boot once).  ``/grub/<mac>``
With a TFTP directory (UEFI VMs booting through shim and Debian's signed network GRUB, which
reads TFTP only) each MAC's choice is also written there as ``grub/oglab-<mac>.cfg``, which the
shared ``grub.cfg`` sources: the live client's files from the same TFTP directory, or ``exit`` to
the firmware's next boot entry.  The live client's
kernel command line names ``/config/<mac>``: that computer's parameters (JSON: name, server,
repository, lab key, SMB account), answered only to the address the lab's DHCP gives that MAC —
what OpenGnSys hands a PXE-booted ogLive.  Every answer is logged with its time.  A threaded HTTP server in the backend's process, bound to the bridge
address only; it serves nothing else and runs no command.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

MODES = ("live", "disk", "disk-once")


@dataclass(frozen=True)
class PxeEvent:
    """One iPXE request: when, which MAC, what it was told to boot."""

    t: float
    mac: str
    mode: str


@dataclass
class BootConfig:
    """What the live client boots: kernel, initramfs files (served by name) and kernel args."""

    kernel: Path
    initrds: list[Path]
    cmdline: str = "console=ttyS0 panic=-1 quiet"
    files: dict[str, Path] = field(default_factory=dict)


class BootServer:
    """Serve iPXE scripts and boot files on ``host:port``; start with :meth:`start`."""

    def __init__(self, host: str, port: int, config: BootConfig) -> None:
        self.host = host
        self.port = port
        self.config = config
        self.modes: dict[str, str] = {}
        self.client_configs: dict[str, tuple[str, bytes]] = {}
        self.events: list[PxeEvent] = []
        self.t0 = time.monotonic()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # the shim → signed GRUB chain reads TFTP only (Debian's signed network GRUB has no
        # HTTP): each MAC's choice is also written as a GRUB script in this TFTP directory
        self.tftp_root: Path | None = None
        self.listeners: list[Callable[[PxeEvent], None]] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def set_mode(self, mac: str, mode: str) -> None:
        """Set the next boot of ``mac`` (``live``, ``disk``, ``disk-once``)."""
        if mode not in MODES:
            raise ValueError(f"boot mode {mode!r} is not one of {MODES}")
        with self._lock:
            self.modes[mac.lower()] = mode
        self.write_grub(mac)

    def grub_script(self, mac: str) -> str:
        """The GRUB script for ``mac`` (its files from the TFTP directory's ``files/``):
        the live client, or ``exit`` to the firmware's next boot entry.  TFTP cannot tell
        when it was read, so ``disk-once`` is ``disk`` here (UEFI's boot once is BootNext)."""
        mac = mac.lower()
        if self.mode(mac) != "live":
            return "echo oglab: booting the local disk\nexit\n"
        args = f"{self.config.cmdline} oglab.config={self.url}/config/{mac}"
        initrds = " ".join(f"/files/{p.name}" for p in self.config.initrds)
        return (
            "echo oglab: live client over TFTP\n"
            f"linux /files/{self.config.kernel.name} {args}\ninitrd {initrds}\nboot\n"
        )

    def write_grub(self, mac: str) -> None:
        """(Re)write ``grub/oglab-<mac>.cfg`` in the TFTP directory, if there is one."""
        if self.tftp_root is None:
            return
        path = self.tftp_root / "grub" / f"oglab-{mac.lower()}.cfg"
        path.write_text(self.grub_script(mac))
        path.chmod(0o644)

    def set_client_config(self, mac: str, ip: str, config: bytes) -> None:
        """Serve ``config`` as ``/config/<mac>``, to ``ip`` only."""
        with self._lock:
            self.client_configs[mac.lower()] = (ip, config)

    def client_config(self, mac: str, peer: str) -> bytes | None:
        with self._lock:
            ip, data = self.client_configs.get(mac.lower(), ("", b""))
        return data if ip and ip == peer else None

    def mode(self, mac: str) -> str:
        with self._lock:
            return self.modes.get(mac.lower(), "live")

    def _answer(self, mac: str) -> str:
        with self._lock:
            mode = self.modes.get(mac, "live")
            if mode == "disk-once":
                self.modes[mac] = "live"
            ev = PxeEvent(round(time.monotonic() - self.t0, 3), mac, mode)
            self.events.append(ev)
        for fn in self.listeners:
            fn(ev)
        args = f"{self.config.cmdline} oglab.config={self.url}/config/{mac}"
        if mode == "live":
            # initrd=<name>: iPXE's EFI build hands its images to the kernel's EFI stub by name
            # (the BIOS boot protocol ignores the arguments)
            names = " ".join(f"initrd={p.name}" for p in self.config.initrds)
            lines = [f"kernel {self.url}/files/{self.config.kernel.name} {args} {names}"]
            lines += [f"initrd {self.url}/files/{p.name}" for p in self.config.initrds]
            return "#!ipxe\n" + "\n".join(lines) + "\nboot\n"
        return "#!ipxe\necho oglab: booting the local disk\nexit\n"

    def _file(self, name: str) -> Path | None:
        known = {p.name: p for p in (self.config.kernel, *self.config.initrds)}
        known.update(self.config.files)
        return known.get(name)

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _send(self, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/boot.ipxe":
                    self._send(f"#!ipxe\nchain {server.url}/pxe/${{mac}}\n".encode())
                elif path.startswith("/pxe/"):
                    mac = unquote(path.removeprefix("/pxe/")).lower().replace("-", ":")
                    self._send(server._answer(mac).encode())
                elif path.startswith("/config/"):
                    mac = unquote(path.removeprefix("/config/")).lower()
                    data = server.client_config(mac, self.client_address[0])
                    if data is None:
                        self.send_error(403)
                    else:
                        self._send(data, "application/json")
                elif path.startswith("/files/") and (f := server._file(path[7:])) is not None:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(f.stat().st_size))
                    self.end_headers()
                    with f.open("rb") as src:
                        shutil.copyfileobj(src, self.wfile, 1024 * 1024)
                else:
                    self.send_error(404)

        self._httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
