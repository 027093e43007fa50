"""configureOs on a restored NTFS: the computer name written into a real (minimal) SYSTEM hive.

There is no Windows hive in the project: :mod:`.regf` writes an empty one that hivex accepts,
hivex itself adds a SYSTEM-like skeleton, and the test reads the result back with ``hivexget``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ogref.errors import OutOfLimitError
from ogref.model.storage import Filesystem, TableKind
from ogref.runtime import filesystem, postconf
from ogref.runtime.disk import PartSpec
from ogref.runtime.mount import Mount
from ogref.units import MIB
from ogsim.lab.regf import write_minimal_hive, write_system_hive

from .conftest import MakeDisk, need

pytestmark = [pytest.mark.root, pytest.mark.imaging]

VALUES = (
    ("Control\\ComputerName\\ComputerName", "ComputerName"),
    ("Services\\Tcpip\\Parameters", "Hostname"),
    ("Services\\Tcpip\\Parameters", "NV Hostname"),
)


def _hive(path: Path, current: int = 1) -> None:
    write_system_hive(path, current=current)


def _get(hive: Path, key: str, value: str) -> str:
    done = subprocess.run(
        ["hivexget", str(hive), key, value], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def hivex() -> None:
    need("hivexregedit", "hivexget")


def test_minimal_hive_is_valid_and_grows(tmp_path: Path, hivex: None) -> None:
    hive = tmp_path / "SYSTEM"
    _hive(hive, current=2)
    assert _get(hive, "\\ControlSet002\\Services\\Tcpip\\Parameters", "Domain") == "aula.local"
    assert postconf.current_control_set(hive) == "ControlSet002"
    write_minimal_hive(tmp_path / "EMPTY")
    assert postconf.current_control_set(tmp_path / "EMPTY") == "ControlSet001"


def test_configure_os_sets_the_windows_computer_name(
    make_disk: MakeDisk, tmp_path: Path, hivex: None
) -> None:
    need("mkfs.ntfs", "ntfs-3g", "ntfsresize")
    loop = make_disk(192 * MIB, TableKind.MSDOS, [PartSpec(128 * MIB, Filesystem.NTFS)])
    node = loop.partition(1)
    filesystem.make(node, Filesystem.NTFS, "windows")
    with Mount(node, Filesystem.NTFS) as root:
        config = root / "Windows" / "System32" / "config"
        config.mkdir(parents=True)
        _hive(config / "SYSTEM")
    report = postconf.configure_os(loop.device, 1, "aula1-pc07", grub=False)
    assert report.filesystem is Filesystem.NTFS
    assert any("aula1-pc07 (ControlSet001)" in n for n in report.notes), report.notes
    with Mount(node, Filesystem.NTFS, readonly=True) as root:
        hive = root / "Windows" / "System32" / "config" / "SYSTEM"
        for key, value in VALUES:
            assert _get(hive, f"\\ControlSet001\\{key}", value) == "aula1-pc07"
        # other values of the same keys are kept
        assert _get(hive, "\\ControlSet001\\Services\\Tcpip\\Parameters", "Domain") == "aula.local"
    # OpenGnSys's default name and its 15-character limit (OG_ERR_OUTOFLIMIT, 19)
    postconf.configure_os(loop.device, 1, "", grub=False)
    with Mount(node, Filesystem.NTFS, readonly=True) as root:
        hive = root / "Windows" / "System32" / "config" / "SYSTEM"
        assert (
            _get(hive, "\\ControlSet001\\Control\\ComputerName\\ComputerName", "ComputerName")
            == "pc"
        )
    with pytest.raises(OutOfLimitError) as err:
        postconf.configure_os(loop.device, 1, "a-name-far-too-long", grub=False)
    assert int(err.value.code) == 19


def test_configure_os_without_a_hive_says_so(make_disk: MakeDisk, hivex: None) -> None:
    need("mkfs.ntfs", "ntfs-3g", "ntfsresize")
    loop = make_disk(128 * MIB, TableKind.MSDOS, [PartSpec(96 * MIB, Filesystem.NTFS)])
    filesystem.make(loop.partition(1), Filesystem.NTFS, "data")
    report = postconf.configure_os(loop.device, 1, "pc01", grub=False)
    assert "no Windows SYSTEM hive: computer name not set" in report.notes
