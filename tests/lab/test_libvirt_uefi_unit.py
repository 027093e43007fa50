"""UEFI classrooms in the VM lab, the pure parts: OVMF domain XML, the NVRAM file the lab owns,
dnsmasq's boot-file choice, the GRUB scripts, efibootmgr parsing, the scenario's ``hw.firmware``,
the ``booted`` expectation on firmware / Secure Boot and the simulator's boot time per firmware.
No VM is started (the VM tests are in test_libvirt_uefi.py); runs everywhere in well under a
second.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from ogref.runtime import efiboot
from ogsim.lab.libvirt import bootserver, firmware
from ogsim.lab.libvirt.domain import VmSpec
from ogsim.lab.libvirt.network import HostEntry, LabNetwork
from ogsim.lab.manifest import Manifest

OVMF_PRESENT = firmware.ovmf("uefi-secureboot").vars_template.exists()


def _vm(tmp_path: Path, fw: str, **kw: object) -> ET.Element:
    vm = VmSpec(
        "d", "52:54:00:77:00:01", "n", tmp_path / "d", tmp_path / "s", firmware=fw,
        nvram=tmp_path / "d.nvram", **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    return ET.fromstring(vm.xml())


def test_bios_domain_is_unchanged(tmp_path: Path) -> None:
    root = _vm(tmp_path, "bios")
    assert root.find("./os/loader") is None and root.find("./os/nvram") is None
    assert root.find("./os/type").get("machine") == "pc"  # type: ignore[union-attr]
    assert [b.get("dev") for b in root.findall("./os/boot")] == ["network", "hd"]
    assert root.findtext("on_reboot") == "restart"


def test_uefi_domain_has_ovmf_its_own_nvram_and_network_first_only_at_first(
    tmp_path: Path,
) -> None:
    root = _vm(tmp_path, "uefi")
    loader = root.find("./os/loader")
    assert loader is not None and loader.text == "/usr/share/OVMF/OVMF_CODE_4M.fd"
    assert loader.get("secure") == "no" and root.find("./features/smm") is None
    nvram = root.find("./os/nvram")
    assert nvram is not None and nvram.text == str(tmp_path / "d.nvram")
    assert nvram.get("template") == "/usr/share/OVMF/OVMF_VARS_4M.fd"
    assert root.find("./os/type").get("machine") == "q35"  # type: ignore[union-attr]
    assert [b.get("dev") for b in root.findall("./os/boot")] == ["network"]
    assert root.findtext("on_reboot") == "destroy"  # the classroom restarts it from its NVRAM
    assert root.find("./devices/serial/source").get("append") == "on"  # type: ignore[union-attr]
    later = _vm(tmp_path, "uefi", net_first=False)
    assert later.findall("./os/boot") == []  # the NVRAM's BootOrder / BootNext rule
    # … and libvirt's default bootindex on the disk is removed (else OVMF rebuilds BootOrder)
    q = "{http://libvirt.org/schemas/domain/qemu/1.0}"
    prop = later.find(f"./{q}override/{q}device/{q}frontend/{q}property")
    assert prop is not None and (prop.get("name"), prop.get("type")) == ("bootindex", "remove")
    assert root.find(f"./{q}override") is None
    assert _vm(tmp_path, "uefi", nic_rom=False).find("./devices/interface/rom") is not None


def test_secure_boot_domain_uses_the_ms_keys_and_smm(tmp_path: Path) -> None:
    root = _vm(tmp_path, "uefi-secureboot")
    loader = root.find("./os/loader")
    assert loader is not None and loader.get("secure") == "yes"
    assert loader.text == "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
    assert root.find("./os/nvram").get("template").endswith("OVMF_VARS_4M.ms.fd")  # type: ignore[union-attr]
    assert root.find("./features/smm").get("state") == "on"  # type: ignore[union-attr]


def test_a_uefi_vm_without_nvram_and_an_unknown_firmware_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="NVRAM"):
        VmSpec("d", "m", "n", tmp_path / "d", tmp_path / "s", firmware="uefi").xml()
    with pytest.raises(ValueError, match="not one of"):
        firmware.check("coreboot")


@pytest.mark.skipif(not OVMF_PRESENT, reason="Debian's ovmf package is not installed")
def test_the_nvram_file_is_recorded_before_it_exists_and_destroyed_with_the_lab(
    tmp_path: Path,
) -> None:
    m = Manifest(tmp_path)
    path = firmware.make_nvram(m, "uefi-secureboot", tmp_path / "pc04.nvram")
    recorded = (tmp_path / "manifest.jsonl").read_text()
    assert str(path) in recorded and '"kind": "file"' in recorded
    assert path.read_bytes() == firmware.ovmf("uefi-secureboot").vars_template.read_bytes()
    assert m.destroy() == [] and not path.exists()


def test_netboot_chain_per_firmware() -> None:
    assert firmware.netboot("bios", "grub") == "ipxe"
    assert firmware.netboot("uefi", "ipxe-efi") == "ipxe-efi"
    assert firmware.netboot("uefi-secureboot", "ipxe-efi") == "grub"  # shim is the only way
    with pytest.raises(ValueError):
        firmware.netboot("uefi", "pxelinux")


def test_dnsmasq_picks_the_boot_file_by_architecture_and_mac(tmp_path: Path) -> None:
    net = LabNetwork(
        "oglab-x", "oglabbr9", IPv4Network("10.77.90.0/24"), "http://10.77.90.1:8780/boot.ipxe"
    )
    net.hosts.append(HostEntry("52:54:00:77:5a:01", IPv4Address("10.77.90.11"), "pc01"))
    assert "bootp" in net.xml() and net.efi_options() == []  # a BIOS classroom: as before
    net.tftp_root = tmp_path / "tftp"
    net.shim_macs = ["52:54:00:77:5a:04"]
    xml = net.xml()
    root = ET.fromstring(xml)
    assert root.find("./ip/dhcp/bootp") is None
    assert root.find("./ip/tftp").get("root") == str(tmp_path / "tftp")  # type: ignore[union-attr]
    opts = net.efi_options()
    assert "dhcp-boot=tag:ipxe,http://10.77.90.1:8780/boot.ipxe" in opts
    assert "dhcp-boot=tag:!ipxe,tag:efi64,tag:!shim,snponly.efi" in opts
    assert "dhcp-boot=tag:!ipxe,tag:efi64,tag:shim,shimx64.efi" in opts
    assert "dhcp-mac=set:shim,52:54:00:77:5a:04" in opts
    assert all(o in xml for o in opts)


def test_grub_scripts_follow_the_boot_choice(tmp_path: Path) -> None:
    kernel, base, over = (tmp_path / n for n in ("vmlinuz", "base.zst", "over.gz"))
    for f in (kernel, base, over):
        f.write_bytes(b"x")
    srv = bootserver.BootServer("10.77.0.1", 8780, bootserver.BootConfig(kernel, [base, over]))
    tree = firmware.tftp_tree(tmp_path / "tftp", [kernel, base, over])
    srv.tftp_root = tree
    for prefix in firmware.GRUB_NET_PREFIXES:
        assert (
            "source /grub/oglab-${net_default_mac}.cfg" in (tree / prefix / "grub.cfg").read_text()
        )
    assert (tree / "files" / "vmlinuz").exists()
    mac = "52:54:00:77:00:04"
    srv.write_grub(mac)
    live = (tree / "grub" / f"oglab-{mac}.cfg").read_text()
    assert "linux /files/vmlinuz" in live and "initrd /files/base.zst /files/over.gz" in live
    assert f"oglab.config=http://10.77.0.1:8780/config/{mac}" in live
    srv.set_mode(mac, "disk")
    assert (tree / "grub" / f"oglab-{mac}.cfg").read_text().rstrip().endswith("exit")


def test_ipxe_names_the_initrds_for_the_efi_stub(tmp_path: Path) -> None:
    kernel, base = tmp_path / "vmlinuz", tmp_path / "base.zst"
    srv = bootserver.BootServer("10.77.0.1", 8780, bootserver.BootConfig(kernel, [base]))
    script = srv._answer("52:54:00:77:00:01")
    assert "initrd=base.zst" in script.splitlines()[1]


EFIBOOTMGR = """BootCurrent: 0001
BootNext: 0004
Timeout: 0 seconds
BootOrder: 0001,0002,0004,0003
Boot0001* UEFI PXEv4 (MAC:525400770004)\tPciRoot(0x0)/Pci(0x1,0x0)/Pci(0x0,0x0)/MAC(525400770004,1)/IPv4(0.0.0.00.0.0.0,0,0)
Boot0002* UEFI PXEv6 (MAC:525400770004)\tPciRoot(0x0)/Pci(0x1,0x0)/Pci(0x0,0x0)/MAC(525400770004,1)/IPv6([::]:<->[::]:,0,0)
Boot0003* EFI Internal Shell\tFvVol(7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1)/FvFile(7c04a583-9e3e-4f1c-ad65-e05268d0b4d1)
Boot0004* ogLab pc04\tHD(1,GPT,5c0f,0x800,0x20000)/File(\\EFI\\debian\\shimx64.efi)
"""


def test_efibootmgr_output_is_parsed() -> None:
    e = efiboot.parse_efibootmgr(EFIBOOTMGR)
    assert (e.current, e.next, e.order) == ("0001", "0004", ["0001", "0002", "0004", "0003"])
    assert e.entries["0004"][0] == "ogLab pc04" and "shimx64.efi" in e.entries["0004"][1]
    assert e.numbers(r"PXE|MAC\(") == ["0001", "0002"]
    assert e.numbers(r"^ogLab pc04\b") == ["0004"]
    assert e.numbers(r"^ogLab pc0\b") == []


def test_secure_boot_variable(tmp_path: Path) -> None:
    var = tmp_path / efiboot.SECURE_BOOT_VAR
    assert not efiboot.secure_boot(tmp_path)
    var.write_bytes(b"\x06\x00\x00\x00\x01")
    assert efiboot.secure_boot(tmp_path)
    var.write_bytes(b"\x06\x00\x00\x00\x00")
    assert not efiboot.secure_boot(tmp_path)


SCENARIO = """
name: fw
repositories: [{name: repo, address: 10.0.1.1, images: [{name: img, data: 1GiB}]}]
classrooms:
  - name: a
    subnet: 10.0.1.0/24
    defaults: {repository: repo, disks: [{partitions: [{number: 1, size: 20GiB, fs: EXT4}]}]}
    computers: {count: 3, overrides: {pc02: {hw: {firmware: uefi}}, pc03: {hw: {firmware: FW}}}}
operations: [{boot: {to: all}}]
"""


def test_scenario_firmware_is_validated_and_sets_the_boot_time() -> None:
    import yaml

    from ogsim.hardware import FIRMWARE_BOOT_RATIO, firmware_boot_s
    from ogsim.scenario import build_scenario

    sc = build_scenario(yaml.safe_load(SCENARIO.replace("FW", "uefi-secureboot")))
    assert sc.site.hw["pc02"]["firmware"] == "uefi"
    hosts = sc.hosts
    assert hosts["pc01"].firmware == "bios" and hosts["pc03"].firmware == "uefi-secureboot"
    assert hosts["pc02"].boot_s == firmware_boot_s("uefi")
    assert hosts["pc03"].boot_s == round(40.0 * FIRMWARE_BOOT_RATIO["uefi-secureboot"], 3)
    with pytest.raises(Exception, match="firmware"):
        build_scenario(yaml.safe_load(SCENARIO.replace("FW", "openfirmware")))


def test_booted_expectation_checks_firmware_and_secure_boot() -> None:
    from ogsim.expect import evaluate
    from ogsim.results import ComputerResult, OperationResult, Results
    from ogsim.scenario import ExpectSpec

    rec = ComputerResult(
        name="pc04", status="ok", os_hostname="pc04", os_firmware="uefi", os_secure_boot=False
    )
    res = Results(scenario="s", backend="libvirt", seed=1)
    res.operations = [OperationResult(index=0, kind="boot-once", at=0.0, computers=[rec])]
    want = ExpectSpec.model_validate({"booted": {"operation": 0, "secure_boot": True}})
    (check,) = evaluate(res, [want])
    assert not check.ok and "Secure Boot False" in check.actual
    rec.os_secure_boot = True
    assert evaluate(res, [want])[0].ok
    fw = ExpectSpec.model_validate({"booted": {"operation": 0, "firmware": "bios"}})
    assert not evaluate(res, [fw])[0].ok
