"""The libvirt lab's XML, built with ElementTree: the same documents as the f-string templates it
replaced (compared canonically), and no name or path can add attributes or elements.

No libvirt is needed: only the XML text is built and parsed.
"""

from __future__ import annotations

from ipaddress import IPv4Network
from pathlib import Path
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

import pytest

from ogsim.lab.libvirt.domain import VmSpec, mac_for
from ogsim.lab.libvirt.network import HostEntry, LabNetwork


# the f-string templates as they were before the rewrite: the reference documents
def _old_domain_xml(vm: VmSpec) -> str:
    kind = "kvm" if vm.kvm else "qemu"
    tcg = "" if vm.kvm else "<tcg><tb-cache unit='MiB'>32</tb-cache></tcg>"
    return f"""<domain type='{kind}'>
  <name>{escape(vm.name)}</name>
  <uuid>{vm.uuid}</uuid>
  <memory unit='MiB'>{vm.memory_mib}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/><boot dev='hd'/></os>
  <features><acpi/>{tcg}</features>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' cache='unsafe'/>
      <source file='{escape(str(vm.disk))}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'>
      <source network='{escape(vm.network)}'/>
      <mac address='{vm.mac}'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'><source path='{escape(str(vm.serial))}'/><target port='0'/></serial>
    <video><model type='none'/></video>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def _old_network_xml(net: LabNetwork) -> str:
    hosts = "\n".join(
        f"      <host mac={quoteattr(h.mac)} name={quoteattr(h.name)} ip={quoteattr(str(h.ip))}/>"
        for h in net.hosts
    )
    n = net.subnet
    return f"""<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>
  <name>{net.name}</name>
  <uuid>{net.uuid}</uuid>
  <bridge name='{net.bridge}' stp='off' delay='0'/>
  <ip address='{net.host_ip}' netmask='{n.netmask}'>
    <dhcp>
      <range start='{n.network_address + 200}' end='{n.network_address + 250}'/>
{hosts}
      <bootp file={quoteattr(net.boot_url)}/>
    </dhcp>
  </ip>
  <ip family='ipv6' address='{net.v6_prefix}1' prefix='64'/>
  <dnsmasq:options>
    <dnsmasq:option value='dhcp-option=encap:175,176,1b'/>
  </dnsmasq:options>
</network>
"""


def _canonical(xml: str) -> str:
    return ET.canonicalize(xml, strip_text=True)


def _classroom(names: list[str]) -> tuple[LabNetwork, list[VmSpec]]:
    net = LabNetwork(
        "oglab-ab12", "oglabbr9", IPv4Network("10.77.90.0/24"), "http://10.77.90.1:8780/boot.ipxe"
    )
    vms = []
    for i, name in enumerate(names, start=1):
        mac = mac_for(i, 90)
        net.hosts.append(HostEntry(mac, net.address(i), name))
        vms.append(
            VmSpec(
                f"{net.name}-{name}"[:60],
                mac,
                net.name,
                Path(f"/run/oglab/vm/{name}.disk"),
                Path(f"/run/oglab/vm/{name}.serial"),
                memory_mib=768,
                kvm=i % 2 == 0,
            )
        )
    return net, vms


def test_a_normal_classroom_gives_the_same_xml_as_before() -> None:
    net, vms = _classroom(["pc01", "pc02", "pc03", "pc04"])
    assert _canonical(net.xml()) == _canonical(_old_network_xml(net))
    for vm in vms:
        assert _canonical(vm.xml()) == _canonical(_old_domain_xml(vm))


HOSTILE = 'pc01\' network=\'evil" ip="10.0.0.66"/><host name="x'


def test_a_hostile_name_cannot_add_attributes_or_elements() -> None:
    net, vms = _classroom([HOSTILE])
    root = ET.fromstring(net.xml())
    hosts = root.findall("./ip/dhcp/host")
    assert len(hosts) == 1
    assert set(hosts[0].attrib) == {"mac", "name", "ip"}
    assert hosts[0].get("name") == HOSTILE and hosts[0].get("ip") == "10.77.90.11"
    dom = ET.fromstring(vms[0].xml())
    sources = [e for e in dom.iter("source")]
    assert [sorted(e.attrib) for e in sources] == [["file"], ["network"], ["path"]]
    assert sources[0].get("file") == f"/run/oglab/vm/{HOSTILE}.disk"
    assert len(dom.findall("./devices/disk")) == 1 and dom.get("type") in ("kvm", "qemu")


def test_characters_xml_cannot_carry_are_refused() -> None:
    net, vms = _classroom(["pc\x0101"])
    with pytest.raises(ValueError):
        net.xml()
    with pytest.raises(ValueError):
        vms[0].xml()
