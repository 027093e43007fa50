"""UEFI classrooms on VMs (OVMF under TCG): network boot through Debian's signed shim and GRUB,
restore, GRUB on the EFI system partition, firmware boot entries set from the live client, the
restored Debian booting with Secure Boot enforced — and an unsigned boot loader refused.

Both run in CI.  ``test_the_mixed_uefi_classroom`` is ``scenarios/vm-uefi-mixed.yaml`` (2 BIOS,
1 UEFI, 1 UEFI + Secure Boot): every VM network-boots, restores three times (UNICAST-DIRECT,
MULTICAST-CACHE, TORRENT-CACHE with pc04's fallback to UNICAST-DIRECT), is post-configured (GRUB in
the MBR or shim + signed GRUB on the ESP and a firmware entry) and boots the restored OS by boot
once (BootNext) and boot target (BootOrder, survives a power cycle), which reports hostname,
firmware and Secure Boot state — the checks of the BIOS classroom (``test_the_4_vm_scenario``, now
``OGLAB_VM_FULL=1`` only) on BIOS and UEFI VMs at once.  ``test_secure_boot_refuses_an_unsigned_loader``
is the negative case on one Secure Boot VM: GRUB's unsigned image on its ESP (``hw.efi_loader:
unsigned``) is refused by the firmware and the console records a failure (6).  Times are in
docs/vm-lab-uefi.md.  Root + libvirt + ovmf/shim-signed/grub-efi-amd64-signed (skipped with the
reason otherwise).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ogsim.lab.libvirt import firmware
from tests.lab.test_libvirt import _cleaned, _lab_missing, _recorded

ROOT = Path(__file__).resolve().parents[2]


def _uefi_missing() -> str:
    base = _lab_missing()
    if base:
        return base
    lacking = firmware.missing({"uefi", "uefi-secureboot"})
    return "; ".join(lacking)


needs_uefi_lab = pytest.mark.skipif(bool(_uefi_missing()), reason=_uefi_missing() or "ok")

SCENARIO_UNSIGNED = """
name: vm-1pc-secureboot-unsigned
seed: 17
repositories:
  - name: repo
    address: 10.77.0.1
    images: [{name: testos, filesystem: EXT4, data: 144MiB, stored: 70MiB, os: Linux}]
classrooms:
  - name: aula-sb
    subnet: 10.77.0.0/24
    defaults:
      repository: repo
      cache: none
      hw: {firmware: uefi-secureboot, efi_loader: unsigned}
      disks:
        - number: 1
          size: 1GiB
          table: GPT
          partitions:
            - {number: 1, size: 64MiB, fs: FAT32}
            - {number: 2, size: 512MiB, fs: EXT4, os: Linux}
    computers: {count: 1, first_host: 11}
operations:
  - restore: {image: testos, disk: 1, partition: 2, method: UNICAST-DIRECT, to: all}
  - boot: {to: all, disk: 1, partition: 2}
backends: {libvirt: {}}
"""


@pytest.mark.root
@pytest.mark.libvirt
@pytest.mark.slow
@pytest.mark.timeout(1200)
@needs_uefi_lab
def test_secure_boot_refuses_an_unsigned_loader(tmp_path: Path) -> None:
    """One Secure Boot VM with GRUB's unsigned image on its ESP (``hw.efi_loader: unsigned``):
    the firmware refuses it at "boot once", the computer comes back to the live client, and the
    console records a failure (6), never a success.  The signed chain is the mixed classroom's."""
    import yaml

    from ogsim.lab.libvirt.backend import run
    from ogsim.scenario import build_scenario

    sc = build_scenario(yaml.safe_load(SCENARIO_UNSIGNED), default_name="vm-1pc-sb-unsigned")
    run_dir = tmp_path / "run"
    res = run(sc, None, run_dir)
    extra = res.metrics.extra
    assert extra["netboot"] == {"pc01": "grub"}  # shim → signed GRUB → the live client
    ops = {op.index: op for op in res.operations}
    (restored,) = ops[0].computers
    assert restored.status == "ok", restored.message
    texts = [line.text for line in restored.log]
    assert any("GRUB for UEFI installed on the ESP (partition 1)" in t for t in texts), texts
    assert not any("shim + Debian's signed GRUB" in t for t in texts), texts
    assert any("firmware boot entry" in t and "ogLab pc01" in t for t in texts), texts
    (refused,) = ops[1].computers  # the firmware refuses the unsigned GRUB: never a success
    assert refused.status == "failed" and refused.os_hostname is None, refused.message
    assert "did not report" in refused.message
    assert "refused the boot loader" in refused.message, refused.message
    assert any("BootNext" in line.text for line in refused.log), [x.text for x in refused.log]
    # … and the console's record of it is a failure (6), not the agent's "rebooting"
    console = [line.text for line in refused.log if line.text.startswith("console:")]
    assert console and console[-1].startswith("console: failed (6)"), console
    _cleaned(run_dir, extra["lab_id"])
    nvrams = [f for f in _recorded(run_dir, "file") if f.endswith(".nvram")]
    assert len(nvrams) == 1 and not any(Path(f).exists() for f in nvrams)


@pytest.mark.root
@pytest.mark.libvirt
@pytest.mark.slow
@pytest.mark.timeout(2400)
@needs_uefi_lab
def test_the_mixed_uefi_classroom(tmp_path: Path) -> None:
    """scenarios/vm-uefi-mixed.yaml: 2 BIOS, 1 UEFI, 1 UEFI + Secure Boot — every VM network-
    boots, restores three times (UNICAST-DIRECT, MULTICAST-CACHE, TORRENT-CACHE with pc04's
    fallback), is post-configured and boots the restored OS (boot once, boot target), which
    reports its hostname, firmware and Secure Boot state; nothing is left (NVRAM included)."""
    from ogsim.expect import evaluate
    from ogsim.lab.libvirt.backend import run
    from ogsim.scenario import load_scenario

    sc = load_scenario(ROOT / "scenarios" / "vm-uefi-mixed.yaml")
    run_dir = tmp_path / "run"
    res = run(sc, None, run_dir)
    checks = evaluate(res, sc.spec.expect)
    assert all(c.ok for c in checks), "\n".join(c.diff() for c in checks)
    extra = res.metrics.extra
    assert extra["netboot"] == {
        "pc01": "ipxe",
        "pc02": "ipxe",
        "pc03": "ipxe-efi",
        "pc04": "grub",
    }
    assert all(extra["boot_s"][n] is not None for n in extra["netboot"])  # OPG, each
    assert [op.index for op in res.operations] == [0, 1, 2, 3, 4]  # the scenario's only
    ops = {op.index: op for op in res.operations}
    uefi = {"pc03", "pc04"}
    for pc in ops[0].computers:  # post-configured: hostname, GRUB in the MBR or on the ESP
        texts = [line.text for line in pc.log]
        assert any(f"/etc/hostname = {pc.name}" in t for t in texts), texts
        if pc.name in uefi:
            assert any("GRUB for UEFI installed on the ESP (partition 1)" in t for t in texts)
            assert any("firmware boot entry" in t and "ogLab " + pc.name in t for t in texts)
        else:
            assert any("GRUB installed" in t for t in texts), texts
    signed = {c.name: c for c in ops[0].computers}["pc04"]
    assert any("shim + Debian's signed GRUB" in line.text for line in signed.log)
    for pc in ops[3].computers:  # boot once: BootNext on UEFI; the console's verdict is ok
        texts = [line.text for line in pc.log]
        assert pc.name not in uefi or any("BootNext" in t for t in texts), texts
        assert any(t.startswith("console: ok (0)") for t in texts), texts
    for pc in ops[4].computers:  # boot target: BootOrder on UEFI, and it survives a reset
        texts = [line.text for line in pc.log]
        assert pc.status == "ok" and "after reboot" in pc.message, pc.message
        assert pc.name not in uefi or any("BootOrder 0" in t for t in texts), texts
    _cleaned(run_dir, extra["lab_id"])
    nvrams = [f for f in _recorded(run_dir, "file") if f.endswith(".nvram")]
    assert len(nvrams) == 2 and not any(Path(f).exists() for f in nvrams)
