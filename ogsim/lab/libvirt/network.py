"""The lab's isolated libvirt network: a bridge with only VM taps on it, DHCP with a static
address and host name per VM, IPv6 router advertisements (iPXE stops waiting for IPv6 autoconf)
and the iPXE no-pxedhcp option; the DHCP boot file is an HTTP URL on the host's bridge address,
so iPXE fetches its script, kernel and initramfs over HTTP.  With UEFI VMs in the classroom
(``tftp_root`` set) dnsmasq also serves TFTP and picks the boot file by client architecture
(:meth:`LabNetwork.efi_options`).

No ``<forward>`` element: libvirt makes it isolated (no NAT, no routing; it adds REJECT rules for
traffic leaving the bridge).  Never libvirt's ``default`` network, never a real interface.  The
network is recorded in the manifest (with the UUID generated here) before it is created.  The XML
is built with ``xml.etree.ElementTree``: a host name cannot add attributes or elements.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from ogsim.lab.libvirt.xmltree import DNSMASQ_NS, element, to_xml
from ogsim.lab.manifest import Manifest

SUBNETS = [IPv4Network(f"10.77.{i}.0/24") for i in range(0, 250, 10)]


@dataclass(frozen=True)
class HostEntry:
    """One VM's DHCP reservation."""

    mac: str
    ip: IPv4Address
    name: str


@dataclass
class LabNetwork:
    """An isolated network: ``name``, ``bridge``, ``subnet`` (the host side takes ``.1``)."""

    name: str
    bridge: str
    subnet: IPv4Network
    boot_url: str = ""
    hosts: list[HostEntry] = field(default_factory=list)
    tftp_root: Path | None = None
    shim_macs: list[str] = field(default_factory=list)
    uuid: str = field(default_factory=lambda: str(uuidlib.uuid4()))

    @property
    def host_ip(self) -> IPv4Address:
        return self.subnet.network_address + 1

    def address(self, index: int) -> IPv4Address:
        """The address of the ``index``-th VM (1-based): .11, .12, …"""
        return self.subnet.network_address + 10 + index

    @property
    def v6_prefix(self) -> str:
        return f"fd77:{self.subnet.network_address.packed[2]:x}::"

    def xml(self) -> str:
        """The libvirt network XML."""
        net = self.subnet
        root = ET.Element("network")
        element(root, "name", self.name)
        element(root, "uuid", self.uuid)
        element(root, "bridge", name=self.bridge, stp="off", delay="0")
        ip = element(root, "ip", address=str(self.host_ip), netmask=str(net.netmask))
        dhcp = element(ip, "dhcp")
        element(
            dhcp,
            "range",
            start=str(net.network_address + 200),
            end=str(net.network_address + 250),
        )
        for h in self.hosts:
            element(dhcp, "host", mac=h.mac, name=h.name, ip=str(h.ip))
        if self.tftp_root is None:
            element(dhcp, "bootp", file=self.boot_url)
        else:
            element(ip, "tftp", root=str(self.tftp_root))
        element(root, "ip", family="ipv6", address=f"{self.v6_prefix}1", prefix="64")
        options = element(root, f"{{{DNSMASQ_NS}}}options")
        for value in ["dhcp-option=encap:175,176,1b", *self.efi_options()]:
            element(options, f"{{{DNSMASQ_NS}}}option", value=value)
        return to_xml(root)

    def efi_options(self) -> list[str]:
        """dnsmasq's boot-file choice when UEFI VMs share the network: iPXE (the BIOS ROM or
        the EFI build once loaded: user class ``iPXE``) gets the HTTP script; a UEFI firmware's
        PXE client (architecture 7 or 9) gets iPXE's EFI build over TFTP, or shim on a VM that
        boots through shim and GRUB — every Secure Boot VM — (tagged by MAC).  Tags exclude each other, so dnsmasq's order does not matter."""
        if self.tftp_root is None:
            return []
        out = [
            "dhcp-userclass=set:ipxe,iPXE",
            "dhcp-match=set:efi64,option:client-arch,7",
            "dhcp-match=set:efi64,option:client-arch,9",
        ]
        out += [f"dhcp-mac=set:shim,{mac}" for mac in self.shim_macs]
        out += [
            f"dhcp-boot=tag:ipxe,{self.boot_url}",
            f"dhcp-boot=tag:!ipxe,tag:!efi64,{self.boot_url}",
            "dhcp-boot=tag:!ipxe,tag:efi64,tag:!shim,snponly.efi",
            "dhcp-boot=tag:!ipxe,tag:efi64,tag:shim,shimx64.efi",
        ]
        return out


def free_subnet(conn: Any, preferred: IPv4Network | None = None) -> tuple[IPv4Network, str]:
    """A 10.77.x.0/24 and bridge name that no libvirt network and no host interface uses
    (``preferred`` first — the scenario's classroom subnet — when it is one of them)."""
    import socket

    used_ips: set[str] = set()
    used_bridges = {name for _i, name in socket.if_nameindex()}
    for net in conn.listAllNetworks():
        xml = net.XMLDesc()
        used_ips |= {s.split("'")[0] for s in xml.split("address='")[1:]}
        used_bridges |= {s.split("'")[0] for s in xml.split("bridge name='")[1:]}
    with open("/proc/net/fib_trie", encoding="ascii") as f:
        trie = f.read()
    order = sorted(enumerate(SUBNETS), key=lambda item: item[1] != preferred)
    for i, subnet in order:
        bridge = f"oglabbr{i}"
        host = str(subnet.network_address + 1)
        prefix = ".".join(host.split(".")[:3]) + "."
        if host in used_ips or bridge in used_bridges or prefix in trie:
            continue
        return subnet, bridge
    raise RuntimeError("no free 10.77.x.0/24 subnet for the lab network")


def create_network(conn: Any, manifest: Manifest, net: LabNetwork, uri: str) -> Any:
    """Record, then create the (transient) network; return the virNetwork."""
    manifest.record("libvirt_network", net.name, extra={"uri": uri, "uuid": net.uuid})
    return conn.networkCreateXML(net.xml())
