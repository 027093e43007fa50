"""A classroom of VMs on one libvirt connection: daemons, the isolated network, the boot server,
the server and repository services on the bridge (:mod:`ogsim.lab.libvirt.services`), the VMs'
disks, and their power.

``Classroom.up()`` builds everything (each piece recorded in the run's manifest before it is
created); each VM's disk is blank or made by the ``disk_builder`` the backend passes; each VM's
parameters (name, service and its public key, repository, the computer's own key, SMB account) are served by the boot server to
that VM's address only.  ``firmwares`` gives each VM its firmware (``bios`` by default; UEFI VMs
get an NVRAM file in the VM directory, recorded in the manifest, and the network a TFTP tree for
the firmware's PXE client: :mod:`ogsim.lab.libvirt.firmware`).  ``power_on`` sends the Wake-on-LAN magic packet on the bridge and starts
the domain (the stand-in for the wake-up); ``set_boot``/``reset`` drive "boot once" / "boot
target"; ``down()`` destroys the domains in parallel, stops the boot server and destroys the
manifest — services, processes, mounts, loop devices, files — (also from ``with Classroom(...)``
on any exit path).  What to run on the VMs is the backend's job.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path
from types import TracebackType
from typing import Any

from ogsim.lab.libvirt import bootserver, connection, domain, firmware, network, services, wol
from ogsim.lab.libvirt.liveimage import DEFAULT_CACHE, LiveImage, live_image
from ogsim.lab.manifest import Manifest
from ogsim.lab.netns import samba

VM_ROOT = Path("/var/lib/oglab/vm")
BOOT_PORT = 8780
# OVMF and iPXE's EFI build keep more below the kernel than SeaBIOS: with 512 MiB the live
# client's 160 MiB initramfs failed to unpack ("write error") under iPXE EFI
UEFI_MEMORY_MIB = 768
DiskBuilder = Callable[[str, Path], None]


@dataclass
class Seat:
    """One VM of the classroom."""

    name: str
    index: int
    mac: str = ""
    ip: str = ""
    vm: domain.VmSpec | None = None
    dom: Any = None
    powered_at: float = 0.0
    firmware: str = "bios"
    netboot: str = ""
    efi_signed: bool = True
    starts: int = 0  # domain starts (a UEFI VM's reboot starts it again)


@dataclass
class Classroom:
    """``names`` are the computers (and the VMs' DHCP host names)."""

    run_dir: Path
    names: list[str]
    uri: str = connection.DEFAULT_URI
    memory_mib: int = 512
    disk_bytes: int = 1024**3
    repo_dir: Path | None = None
    site_file: Path | None = None
    cache: Path = DEFAULT_CACHE
    log: Callable[[str], None] = field(default=lambda _t: None)
    disk_builder: DiskBuilder | None = None
    subnet: IPv4Network | None = None
    torrent_stall: float = 60.0
    firmwares: dict[str, str] = field(default_factory=dict)
    uefi_netboot: str = "ipxe-efi"

    def __post_init__(self) -> None:
        self.run_dir = self.run_dir.resolve()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.chmod(0o755)
        self.manifest = Manifest(self.run_dir)
        self.seats = {
            n: Seat(n, i + 1, firmware=firmware.check(self.firmwares.get(n, "bios")))
            for i, n in enumerate(self.names)
        }
        for seat in self.seats.values():
            seat.netboot = firmware.netboot(seat.firmware, self.uefi_netboot)
        self.conn: Any = None
        self.net: network.LabNetwork | None = None
        self.boot: bootserver.BootServer | None = None
        self.services: services.Services | None = None
        self.image: LiveImage | None = None
        self.timings: dict[str, float] = {}
        self.t0 = time.monotonic()
        self.kvm = domain.kvm_works()
        self._power_lock = threading.RLock()
        self._closing = threading.Event()
        self._watcher: threading.Thread | None = None
        # qemu runs as libvirt-qemu: disks and consoles live where it can reach them (a run dir
        # under a 0700 parent, e.g. pytest's, is not); consoles are copied back at down()
        self.lab_id = f"{self.run_dir.name[:40]}-{uuid.uuid4().hex[:8]}"  # unique per run
        self.vm_dir = VM_ROOT / self.lab_id

    @property
    def uefi(self) -> bool:
        """Some VM of the classroom boots UEFI."""
        return any(firmware.is_uefi(s.firmware) for s in self.seats.values())

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 3)

    # ------------------------------------------------------------------ up / down

    def up(self) -> Classroom:
        t = time.monotonic()
        self.image = live_image(self.run_dir, self.cache)
        self.timings["live_image_s"] = round(time.monotonic() - t, 2)
        if connection.is_local(self.uri):
            started = connection.ensure_daemons(self.manifest)
            if started:
                self.log(f"started {', '.join(started)}")
        self.conn = connection.open_connection(self.uri)
        subnet, bridge = network.free_subnet(self.conn, self.subnet)
        name = f"oglab-{self.lab_id}"
        self.net = network.LabNetwork(name, bridge, subnet)
        octet = subnet.network_address.packed[2]
        for seat in self.seats.values():
            seat.mac = domain.mac_for(seat.index, octet)
            seat.ip = str(self.net.address(seat.index))
            self.net.hosts.append(
                network.HostEntry(seat.mac, self.net.address(seat.index), seat.name)
            )
        host = str(self.net.host_ip)
        cfg = bootserver.BootConfig(self.image.kernel, [self.image.base, self.image.overlay])
        self.boot = bootserver.BootServer(host, BOOT_PORT, cfg)
        self.net.boot_url = f"{self.boot.url}/boot.ipxe"
        self.manifest.record("file", str(self.vm_dir))
        self.vm_dir.mkdir(parents=True)
        self.vm_dir.chmod(0o755)
        if self.uefi:
            t3 = time.monotonic()
            self.net.tftp_root = firmware.tftp_tree(
                self.vm_dir / "tftp",
                [self.image.kernel, *cfg.initrds],
            )
            self.boot.tftp_root = self.net.tftp_root
            for seat in self.seats.values():
                self.boot.write_grub(seat.mac)
            self.net.shim_macs = [s.mac for s in self.seats.values() if s.netboot == "grub"]
            self.timings["tftp_s"] = round(time.monotonic() - t3, 2)
        network.create_network(self.conn, self.manifest, self.net, self.uri)
        self.boot.start()
        if self.repo_dir is not None and self.site_file is not None:
            t1 = time.monotonic()
            where = services.bridge_host(self.manifest, name, bridge, subnet)
            self.services = services.start(
                self.manifest, self.run_dir, where, self.repo_dir, self.site_file
            )
            self.timings["services_s"] = round(time.monotonic() - t1, 2)
            for seat in self.seats.values():
                self.boot.set_client_config(seat.mac, seat.ip, self.client_config(seat))
        t2 = time.monotonic()
        for seat in self.seats.values():
            disk = self.vm_dir / f"{seat.name}.disk"
            if self.disk_builder is not None:
                self.disk_builder(seat.name, disk)
            else:
                domain.make_disk(self.manifest, disk, self.disk_bytes)
            seat.vm = domain.VmSpec(
                f"{name}-{seat.name}"[:60],
                seat.mac,
                self.net.name,
                disk,
                self.vm_dir / f"{seat.name}.serial",
                memory_mib=(
                    max(self.memory_mib, UEFI_MEMORY_MIB)
                    if firmware.is_uefi(seat.firmware)
                    else self.memory_mib
                ),
                disk_bytes=self.disk_bytes,
                kvm=self.kvm,
                firmware=seat.firmware,
                nic_rom=seat.netboot in ("ipxe", "ipxe-rom"),
                nvram=(
                    firmware.make_nvram(
                        self.manifest, seat.firmware, self.vm_dir / f"{seat.name}.nvram"
                    )
                    if firmware.is_uefi(seat.firmware)
                    else None
                ),
            )
        self.timings["disks_s"] = round(time.monotonic() - t2, 2)
        self.timings["up_s"] = round(time.monotonic() - t, 2)
        return self

    def client_config(self, seat: Seat) -> bytes:
        """What the live client of ``seat`` is told at boot (JSON; holds the lab's secrets)."""
        svc = self.services
        assert svc is not None and self.net is not None
        return json.dumps(
            {
                "name": seat.name,
                "ip": f"{seat.ip}/{self.net.subnet.prefixlen}",
                "disks": {"1": "/dev/vda"},
                "service": svc.server_url,
                "server_public": svc.server_public,
                "control": svc.control_url,
                "repo_ip": svc.address,
                # this computer's own credential, registered with the service now: served only
                # to the seat's address by the boot server (a PXE-time secret)
                "private_key_pem": svc.console.register(seat.name).decode(),
                "smb_user": samba.READER,
                "smb_password": svc.accounts.reader_password,
                "torrent_stall": self.torrent_stall,
                "efi_signed": seat.efi_signed,
            }
        ).encode()

    def down(self) -> list[str]:
        """Destroy the domains (in parallel), stop the services, destroy the manifest."""
        t = time.monotonic()
        self._closing.set()
        if self._watcher is not None:
            self._watcher.join(5)
        doms = [s.dom for s in self.seats.values() if s.dom is not None]

        def kill(dom: Any) -> None:
            with contextlib.suppress(Exception):  # gone already (powered off)
                dom.destroy()

        with ThreadPoolExecutor(max_workers=max(1, len(doms))) as pool:
            list(pool.map(kill, doms))
        if self.boot is not None:
            self.boot.stop()
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None
        for seat in self.seats.values():
            with contextlib.suppress(OSError):
                shutil.copyfile(
                    self.vm_dir / f"{seat.name}.serial", self.run_dir / f"{seat.name}.serial"
                )
        errors = self.manifest.destroy(log=self.log)
        self.timings["down_s"] = round(time.monotonic() - t, 2)
        return errors

    def __enter__(self) -> Classroom:
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()

    # ------------------------------------------------------------------ power

    def power_on(self, name: str) -> None:
        """Send the magic packet on the bridge, then start the domain (the wake-up)."""
        seat = self.seats[name]
        assert self.net is not None and seat.vm is not None
        wol.send(
            seat.mac, self.net.bridge, str(self.net.host_ip), str(self.net.subnet.broadcast_address)
        )
        seat.powered_at = self.now()
        self._start(seat)
        if firmware.is_uefi(seat.firmware) and self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, daemon=True)
            self._watcher.start()

    def _start(self, seat: Seat) -> None:
        """Start ``seat``'s domain: a new UEFI VM's first start names the NIC in QEMU's boot
        order (so its fresh NVRAM gets network boot first); later starts do not (its NVRAM's
        BootOrder and BootNext rule, as on a real machine)."""
        assert seat.vm is not None
        with self._power_lock:
            if firmware.is_uefi(seat.firmware):
                seat.vm.net_first = seat.starts == 0
                seat.vm.uuid = str(uuid.uuid4())
            seat.dom = domain.start(self.conn, self.manifest, seat.vm, self.uri)
            seat.starts += 1

    def _watch(self) -> None:
        """UEFI VMs end their domain when they reboot (``on_reboot`` destroy): start them again;
        a power-off (the kernel said "Power down") stays off."""
        while not self._closing.wait(0.5):
            for seat in self.seats.values():
                if firmware.is_uefi(seat.firmware):
                    with self._power_lock:
                        self._restart_if_rebooted(seat)

    def _restart_if_rebooted(self, seat: Seat) -> None:
        if seat.dom is None or self._closing.is_set():
            return
        try:
            if seat.dom.isActive():
                return
        except Exception:  # a transient domain that ended is gone from libvirt
            pass
        if "reboot: Power down" in self.serial(seat.name)[-4000:]:
            seat.dom = None
            return
        self.log(f"{seat.name}: rebooted (UEFI): starting it again from its NVRAM")
        with contextlib.suppress(Exception):
            self._start(seat)

    def reset(self, name: str) -> None:
        """Hard reset (the reboot after "boot target"); a UEFI VM is power-cycled instead, so
        that QEMU's boot order never overrides its NVRAM."""
        seat = self.seats[name]
        if not firmware.is_uefi(seat.firmware):
            seat.dom.reset(0)
            return
        with self._power_lock:
            with contextlib.suppress(Exception):
                seat.dom.destroy()
            self._start(seat)

    def set_boot(self, name: str, mode: str) -> None:
        assert self.boot is not None
        self.boot.set_mode(self.seats[name].mac, mode)

    def serial(self, name: str) -> str:
        p = self.vm_dir / f"{name}.serial"
        try:
            return p.read_text(errors="replace")
        except OSError:
            return ""

    def wait_serial(self, name: str, marker: str, timeout: float, after: int = 0) -> bool:
        """Wait for ``marker`` on the serial console (counting from byte ``after``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.serial(name)[after:]:
                return True
            time.sleep(0.25)
        return False
