"""The lab's VMs: transient libvirt domains of type ``qemu`` (TCG) with a virtio NIC on the lab
network, a blank virtio disk, network-first boot (disk second, so iPXE's ``exit`` boots the
disk), and the serial console written to a file in the run directory.

KVM is used only when ``kvm_works()`` says so: ``/dev/kvm`` exists *and* is not PVM (PVM hosts
advertise ``<domain type='kvm'>`` but run no stock guest).  Disks are sparse raw files recorded
in the manifest as files.  Every domain is recorded (with its generated UUID) before it is created.
UEFI VMs (``firmware``: ``uefi``, ``uefi-secureboot``; :mod:`ogsim.lab.libvirt.firmware`) are
q35 machines with OVMF and their own NVRAM file (made and recorded by the classroom); Secure
Boot adds SMM.  The domain XML is built with ``xml.etree.ElementTree``, so no name or path can add attributes or
elements to it.
"""

from __future__ import annotations

import functools
import os
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from ogsim.lab.libvirt import firmware
from ogsim.lab.libvirt.xmltree import QEMU_NS, element, to_xml
from ogsim.lab.manifest import Manifest


@functools.cache
def kvm_works() -> bool:
    """KVM only on a real VMX/SVM host: never on PVM (``kvm_pvm`` loaded or PVM in the config)."""
    if not os.path.exists("/dev/kvm"):
        return False
    if Path("/sys/module/kvm_pvm").exists():
        return False
    try:
        release = os.uname().release
        config = Path(f"/boot/config-{release}").read_text()
        if "CONFIG_KVM_PVM=y" in config:
            return False
    except OSError:
        pass
    modules = Path("/proc/modules").read_text() if Path("/proc/modules").exists() else ""
    return "kvm_intel" in modules or "kvm_amd" in modules


@dataclass
class VmSpec:
    """One VM."""

    name: str
    mac: str
    network: str
    disk: Path
    serial: Path
    memory_mib: int = 512
    disk_bytes: int = 1024**3
    uuid: str = field(default_factory=lambda: str(uuidlib.uuid4()))
    kvm: bool = False
    firmware: str = "bios"
    nvram: Path | None = None
    # UEFI: QEMU's boot order (fw_cfg) names the NIC first — the factory setting of a new
    # machine; False once the NVRAM's BootOrder/BootNext must rule (see firmware.py)
    net_first: bool = True
    nic_rom: bool = True

    def xml(self) -> str:
        """The libvirt domain XML."""
        uefi = firmware.is_uefi(self.firmware)
        root = ET.Element("domain", type="kvm" if self.kvm else "qemu")
        element(root, "name", self.name)
        element(root, "uuid", self.uuid)
        element(root, "memory", str(self.memory_mib), unit="MiB")
        element(root, "vcpu", "1")
        os_ = element(root, "os")
        element(os_, "type", "hvm", arch="x86_64", machine="q35" if uefi else "pc")
        if uefi:
            # OVMF rewrites BootOrder from QEMU's boot order at every boot (and drops disk
            # entries it does not name): only the first power-on names the NIC, so that the new
            # NVRAM has network boot first; after that the NVRAM's BootOrder/BootNext rule
            if self.net_first:
                element(os_, "boot", dev="network")
            fw = firmware.ovmf(self.firmware)
            if self.nvram is None:
                raise ValueError(f"{self.name}: a UEFI VM needs its NVRAM file")
            element(
                os_,
                "loader",
                str(fw.code),
                readonly="yes",
                type="pflash",
                secure="yes" if fw.secure else "no",
            )
            element(os_, "nvram", str(self.nvram), template=str(fw.vars_template))
        else:
            element(os_, "boot", dev="network")
            element(os_, "boot", dev="hd")
        features = element(root, "features")
        element(features, "acpi")
        if uefi and firmware.ovmf(self.firmware).secure:
            element(features, "smm", state="on")
        if not self.kvm:
            element(element(features, "tcg"), "tb-cache", "32", unit="MiB")
        element(root, "on_poweroff", "destroy")
        # a UEFI VM's reboot ends the domain: the classroom starts it again without QEMU's boot
        # order (the NVRAM's rules), as a real machine's reboot keeps only its NVRAM
        element(root, "on_reboot", "destroy" if uefi else "restart")
        element(root, "on_crash", "destroy")
        devices = element(root, "devices")
        disk = element(devices, "disk", type="file", device="disk")
        element(disk, "driver", name="qemu", type="raw", cache="unsafe")
        element(disk, "source", file=str(self.disk))
        element(disk, "target", dev="vda", bus="virtio")
        nic = element(devices, "interface", type="network")
        element(nic, "source", network=self.network)
        element(nic, "mac", address=self.mac)
        element(nic, "model", type="virtio")
        if not self.nic_rom:
            element(nic, "rom", enabled="no")
        serial = element(devices, "serial", type="file")
        # a UEFI VM that reboots is a new QEMU process writing the same console: appended to
        extra = {"append": "on"} if uefi else {}
        element(serial, "source", path=str(self.serial), **extra)
        element(serial, "target", port="0")
        element(element(devices, "video"), "model", type="none")
        element(devices, "memballoon", model="none")
        if uefi and not self.net_first:
            # with no <boot> at all libvirt still gives the disk bootindex=1, and OVMF would
            # rebuild BootOrder from that at every boot (dropping the network entries): the
            # property is removed, so QEMU has no boot order and the NVRAM rules
            override = element(root, f"{{{QEMU_NS}}}override")
            dev = element(override, f"{{{QEMU_NS}}}device", alias="virtio-disk0")
            front = element(dev, f"{{{QEMU_NS}}}frontend")
            element(front, f"{{{QEMU_NS}}}property", name="bootindex", type="remove")
        return to_xml(root)


def mac_for(index: int, subnet_octet: int) -> str:
    """A locally administered MAC in QEMU's range, unique per lab subnet and VM index."""
    return f"52:54:00:77:{subnet_octet:02x}:{index:02x}"


def make_disk(manifest: Manifest, path: Path, size: int) -> None:
    """Record, then create a blank sparse disk file."""
    manifest.record("file", str(path))
    with path.open("wb") as f:
        f.truncate(size)


def start(conn: Any, manifest: Manifest, vm: VmSpec, uri: str) -> Any:
    """Record, then create (and start) the transient domain."""
    manifest.record("libvirt_domain", vm.name, extra={"uri": uri, "uuid": vm.uuid})
    return conn.createXML(vm.xml(), 0)
