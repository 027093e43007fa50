"""Whole disks: partition table (.mbr / .sfdisk / .gpt) + partition images, by a procedure."""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ogref.errors import FormatError, ImageFileError, ImageSizePartitionError, NotFoundError
from ogref.model.image import Compressor
from ogref.model.storage import Filesystem, TableKind
from ogref.runtime import disk, diskimage, filesystem
from ogref.runtime.disk import PartSpec, partition_entries
from ogref.runtime.diskimage import Procedure, RestoreStep, TableStep
from ogref.runtime.imagefile import ImageStore
from ogref.units import MIB

from .conftest import MakeDisk, fat_fill, fat_hash, fill_partition, hash_partition, need

pytestmark = [pytest.mark.root, pytest.mark.imaging]

LAYOUT = [PartSpec(96 * MIB, Filesystem.EXT4, "linux"), PartSpec(64 * MIB, Filesystem.FAT32, "EFI")]


def _boot_code(device: str) -> bytes:
    """Write recognisable boot code (the 440 bytes before the disk signature)."""
    code = random.Random(5).randbytes(440)
    fd = os.open(device, os.O_WRONLY)
    try:
        os.pwrite(fd, code, 0)
    finally:
        os.close(fd)
    return code


def _head(device: str, n: int) -> bytes:
    with open(device, "rb") as f:
        return f.read(n)


def _source(make_disk: MakeDisk, tmp_path: Path, table: TableKind) -> tuple[str, str, str]:
    src = make_disk(256 * MIB, table, LAYOUT)
    linux = fill_partition(src.partition(1), Filesystem.EXT4)
    (tmp_path / "fatw").mkdir()
    efi = fat_fill(src.partition(2), tmp_path / "fatw")
    return src.device, linux, efi


def _gpt_guids(device: str) -> list[str]:
    """The disk GUID and each partition's type and unique GUID (``sgdisk -i``)."""
    out = [subprocess.run(["sgdisk", "-p", device], capture_output=True, text=True).stdout]
    for n in (1, 2):
        info = subprocess.run(["sgdisk", "-i", str(n), device], capture_output=True, text=True)
        out.append(info.stdout)
    lines = "\n".join(out).splitlines()
    return [ln for ln in lines if "GUID" in ln and "First usable" not in ln]


def _check_copy(src: str, dst: str, linux: str, efi: str, tmp_path: Path) -> None:
    assert partition_entries(dst) == partition_entries(src)
    node1, node2 = f"{dst}p1", f"{dst}p2"
    filesystem.check(node1, Filesystem.EXT4)
    assert hash_partition(node1, Filesystem.EXT4) == linux
    (tmp_path / "fatr").mkdir()
    assert fat_hash(node2, tmp_path / "fatr") == efi


def test_mbr_disk_ext4_and_fat_onto_a_blank_disk(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path
) -> None:
    need("sfdisk", "mkfs.vfat", "mcopy", "partclone.fat")
    src, linux, efi = _source(make_disk, tmp_path, TableKind.MSDOS)
    code = _boot_code(src)
    repo = ImageStore(tmp_path / "repo")
    made = diskimage.create_disk(
        src, repo, "lab", comp=Compressor.ZSTD, reduce=False, lock_dir=lock_dir
    )
    assert made.procedure == Procedure(
        (TableStep("lab"), RestoreStep("lab-p1", 1), RestoreStep("lab-p2", 2))
    )
    assert (repo.root / "lab.mbr").stat().st_size == 512
    assert not (repo.root / "lab.gpt").exists()
    saved = Procedure.load(repo.root / "lab.procedure.yaml")
    assert saved == made.procedure
    dst = make_disk(256 * MIB)  # blank: no table at all
    done = diskimage.restore_disk(repo, "lab", dst.device, lock_dir=lock_dir)
    assert len(done.notes) == 4
    assert done.notes[-1] == "no EFI system partition: no UEFI boot entry (a BIOS disk)"
    assert _head(dst.device, 512) == _head(src, 512)
    assert _head(dst.device, 440) == code
    _check_copy(src, dst.device, linux, efi, tmp_path)
    # the disk lock is released and no partition lock is left behind
    assert not any(lock_dir.iterdir())


def test_gpt_disk_with_an_esp_through_the_cli_onto_a_larger_disk(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GPT + EFI system partition: the table (types and GUIDs), the ESP's loader and content come
    back; on a live client booted by UEFI the firmware gets a boot entry for that loader."""
    need("sgdisk", "mkfs.vfat", "mcopy", "mdir", "partclone.fat")
    from ogref.runtime import efiboot
    from ogref.runtime.cli import app

    src, linux, efi = _source(make_disk, tmp_path, TableKind.GPT)
    subprocess.run(["sgdisk", "-t", "2:EF00", src], check=True, capture_output=True)
    disk.reread(src)
    guids = _gpt_guids(src)
    repo = tmp_path / "repo"
    common = ["--repo-dir", str(repo), "--lock-dir", str(lock_dir), "--json"]
    made = CliRunner().invoke(
        app, ["create-disk", "1", "REPO", "/lab", "--disk", f"1={src}", "--no-reduce", *common]
    )
    assert made.exit_code == 0, made.output
    out = json.loads(made.stdout.strip().splitlines()[-1])
    assert out["procedure"]["steps"][0] == {"table": "lab"}
    assert (repo / "lab.gpt").is_file() and (repo / "lab.mbr").is_file()
    dst = make_disk(320 * MIB)  # larger: the backup GPT must move to the new end
    done = CliRunner().invoke(
        app, ["restore-disk", "REPO", "lab", "1", "--disk", f"1={dst.device}", *common]
    )
    assert done.exit_code == 0, done.output
    _check_copy(src, dst.device, linux, efi, tmp_path)
    verify = subprocess.run(["sgdisk", "-v", dst.device], capture_output=True, text=True)
    assert verify.returncode == 0 and "No problems found" in verify.stdout, verify.stdout
    assert _gpt_guids(dst.device) == guids  # disk GUID, partition types and GUIDs
    assert efiboot.find_esp(dst.device) == 2
    notes = json.loads(done.stdout.strip().splitlines()[-1])["notes"]
    assert "EFI system partition 2 restored with its boot loader \\EFI\\BOOT\\BOOTX64.EFI" in notes
    assert notes[-1] == "the live client did not boot by UEFI: no firmware boot entry made"
    # on a UEFI live client: Debian's shim is preferred to the fallback loader, and the entry
    # is made for it on the ESP (efibootmgr itself is the live client's)
    made: list[tuple[str, int, str, str]] = []

    def add_entry(device: str, esp: int, loader: str, label: str) -> tuple[str, object]:
        made.append((device, esp, loader, label))
        return "0007", efiboot.BootEntries(order=["0001", "0007"])

    (tmp_path / "shim").mkdir()
    (tmp_path / "shim/shimx64.efi").write_bytes(b"MZ shim")
    esp = dst.partition(2)
    subprocess.run(["mmd", "-i", esp, "::/EFI/debian"], check=True, capture_output=True)
    subprocess.run(
        ["mcopy", "-i", esp, str(tmp_path / "shim/shimx64.efi"), "::/EFI/debian/"], check=True
    )
    monkeypatch.setattr(efiboot, "active", lambda: True)
    monkeypatch.setattr(efiboot, "add_entry", add_entry)
    notes = diskimage.uefi_boot(dst.device, "pc07")
    assert made == [(dst.device, 2, "\\EFI\\debian\\shimx64.efi", "ogLab pc07")]
    assert notes[-1].startswith("firmware boot entry Boot0007 'ogLab pc07'"), notes
    missing = CliRunner().invoke(
        app, ["restore-disk", "REPO", "nothere", "1", "--disk", f"1={dst.device}", *common]
    )
    assert missing.exit_code == 2


def test_table_too_big_for_the_disk_is_30_and_bad_procedures_are_refused(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path
) -> None:
    need("sfdisk")
    src = make_disk(256 * MIB, TableKind.MSDOS, [PartSpec(200 * MIB, Filesystem.EXT4)])
    repo = ImageStore(tmp_path / "repo")
    diskimage.save_table(src.device, repo, "big")
    small = make_disk(128 * MIB)
    with pytest.raises(ImageSizePartitionError):
        diskimage.restore_table(small.device, repo, "big")
    assert _head(small.device, 512) == bytes(512)  # nothing written
    with pytest.raises(NotFoundError):
        diskimage.restore_table(small.device, repo, "nothere")
    with pytest.raises(FormatError):
        repo.files("../escape")
    bad: object
    for bad in (
        {},
        {"steps": []},
        {"steps": [{"restore": "x"}]},
        {"steps": [{"restore": "x", "partition": 0}]},
        {"steps": [{"table": "t", "restore": "x"}]},
        {"steps": ["table"]},
    ):
        with pytest.raises(FormatError):
            Procedure.parse(bad)
    # a boot-only step rewrites the boot code and leaves the table alone
    code = _boot_code(src.device)
    diskimage.save_table(src.device, repo, "boot")
    _boot_code(small.device)
    before = _head(small.device, 512)[440:]
    diskimage.restore_table(small.device, repo, "boot", boot_only=True)
    assert _head(small.device, 446)[:440] == code
    assert _head(small.device, 512)[446:] == before[6:]


EXTENDED_LAYOUT = """label: dos
start=2048, size=32MiB, type=83
type=5
size=24MiB, type=83
size=24MiB, type=83
"""


def _dump(device: str) -> str:
    """``sfdisk --dump`` with the device name taken out (two disks compare equal)."""
    done = subprocess.run(["sfdisk", "--dump", device], capture_output=True, text=True, check=True)
    return done.stdout.replace(device, "DISK")


def test_mbr_disk_with_logical_partitions_onto_a_blank_disk(
    make_disk: MakeDisk, tmp_path: Path, lock_dir: Path
) -> None:
    need("sfdisk")
    src = make_disk(96 * MIB)
    subprocess.run(["sfdisk", "-q", src.device], input=EXTENDED_LAYOUT, text=True, check=True)
    disk.reread(src.device)
    hashes = {
        n: fill_partition(src.partition(n), Filesystem.EXT4, seed=n, random_mib=1)
        for n in (1, 5, 6)
    }
    code = _boot_code(src.device)
    repo = ImageStore(tmp_path / "repo")
    made = diskimage.create_disk(
        src.device, repo, "lab", comp=Compressor.ZSTD, reduce=False, lock_dir=lock_dir
    )
    assert made.procedure == Procedure(
        (
            TableStep("lab"),
            RestoreStep("lab-p1", 1),
            RestoreStep("lab-p5", 5),
            RestoreStep("lab-p6", 6),
        )
    )
    assert "partition 2 is extended: its table is in the dump" in made.notes
    assert (repo.root / "lab.mbr").stat().st_size == 512
    assert "type=5" in (repo.root / "lab.sfdisk").read_text()
    dst = make_disk(96 * MIB)  # blank: no table at all
    diskimage.restore_disk(repo, "lab", dst.device, lock_dir=lock_dir)
    assert _dump(dst.device) == _dump(src.device)  # same layout, EBR chain included
    assert _head(dst.device, 512) == _head(src.device, 512)
    assert _head(dst.device, 440) == code
    for n, want in hashes.items():
        filesystem.check(f"{dst.device}p{n}", Filesystem.EXT4)
        assert hash_partition(f"{dst.device}p{n}", Filesystem.EXT4) == want, n
    assert [p.number for p in disk.read_disk(dst.device).partitions] == [1, 5, 6]
    # an OpenGnSys set (.mbr only) with an extended partition cannot bring the logicals back
    (repo.root / "lab.sfdisk").unlink()
    with pytest.raises(NotFoundError, match=r"lab\.sfdisk not found"):
        diskimage.restore_table(dst.device, repo, "lab")
    # a dump that disagrees with the .mbr is refused before anything is written
    (repo.root / "lab.sfdisk").write_text(
        _dump(src.device).replace("start=        2048", "start=        4096")
    )
    with pytest.raises(ImageFileError):
        diskimage.restore_table(dst.device, repo, "lab")
