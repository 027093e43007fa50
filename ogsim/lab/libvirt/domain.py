"""The lab's VMs: transient libvirt domains of type ``qemu`` (TCG) with a virtio NIC on the lab
network, a blank virtio disk, network-first boot (disk second, so iPXE's ``exit`` boots the
disk), and the serial console written to a file in the run directory.

KVM is used only when ``kvm_works()`` says so: ``/dev/kvm`` exists *and* is not PVM (PVM hosts
advertise ``<domain type='kvm'>`` but run no stock guest).  Disks are sparse raw files recorded
in the manifest as files.  Every domain is recorded (with its generated UUID) before it is created.
"""

from __future__ import annotations

import functools
import os
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

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

    def xml(self) -> str:
        kind = "kvm" if self.kvm else "qemu"
        tcg = "" if self.kvm else "<tcg><tb-cache unit='MiB'>32</tb-cache></tcg>"
        return f"""<domain type='{kind}'>
  <name>{escape(self.name)}</name>
  <uuid>{self.uuid}</uuid>
  <memory unit='MiB'>{self.memory_mib}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/><boot dev='hd'/></os>
  <features><acpi/>{tcg}</features>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='unsafe'/>
      <source file='{escape(str(self.disk))}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'>
      <source network='{escape(self.network)}'/>
      <mac address='{self.mac}'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'><source path='{escape(str(self.serial))}'/><target port='0'/></serial>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
"""


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
