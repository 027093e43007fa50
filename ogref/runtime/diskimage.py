"""Whole disks as procedures: the partition table (``.mbr`` / ``.sfdisk`` / ``.gpt``) and images.

OpenGnSys restores a whole disk as a *procedure*: the partition table first, then several
partition restores.  :func:`save_table` writes ``<name>.mbr`` (the first 512 bytes: boot code and
MBR table, as ``ogSaveMbr``) and, on an MBR disk, ``<name>.sfdisk`` (``sfdisk --dump``: every
partition, the extended one and its logical partitions included, whose EBR chain lies outside
those 512 bytes) or, on GPT, ``<name>.gpt`` (``sgdisk -b``, as ``ogSaveGptTable``) beside the
images.  :func:`restore_table` puts them back: GPT by ``sgdisk -l`` then ``-e`` (the backup GPT
moves to the end of a larger disk) and the 446 bytes of boot code; MBR by feeding the dump to
``sfdisk`` (which writes the EBRs) and then the 512 saved bytes (boot code, disk signature and
primary entries exactly as saved), refused with 30 when a partition would end past the disk.
An OpenGnSys ``.mbr`` without a dump is written as 512 bytes; with an extended partition in it,
it is refused (its logical partitions cannot come back).  The ``boot`` step writes only the boot
code (``ogRestoreMbr`` of the boot loader).  A :class:`Procedure` is that list of steps, stored
as YAML (``<name>.procedure.yaml``) so an administrator can read and edit it; :func:`create_disk`
captures a disk into such a set (logical partitions imaged like primaries) and
:func:`run_procedure` executes one, all under the disk's lock.  A procedure that wrote a partition
table ends with the disk's UEFI boot (:func:`uefi_boot`): a GPT (or MBR) disk with an EFI system
partition gets its ESP back byte for byte (a FAT image like any other partition: the boot
loaders, ``grub.cfg``, a Windows ``BCD``), so the loader is found on it (mtools) and — on a live
client booted by UEFI — a firmware boot entry ``ogLab <hostname>`` is made for it with the network
entries kept first, as configureOs does after a partition restore (the firmware's NVRAM is the
computer's, not the disk's: a whole-disk restore onto another computer has no entry for it).
Not here: imaging one partition
(:mod:`~ogref.runtime.create`, :mod:`~ogref.runtime.restore`), cache decisions (the core),
network transports.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ogref.errors import (
    FormatError,
    ImageFileError,
    ImageSizePartitionError,
    NotFoundError,
    NotUefiError,
    PartitionError,
)
from ogref.model.image import Compressor
from ogref.model.storage import Filesystem, TableKind
from ogref.runtime import disk, efiboot, filesystem, fingerprint
from ogref.runtime.create import DEFAULT_LOCK_DIR, create_image
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.lock import LockFile, partition_lock_path
from ogref.runtime.loopdev import partition_path, wait_for_node
from ogref.runtime.mount import unmount_device
from ogref.runtime.proc import Progress, require, run
from ogref.runtime.restore import restore_image

SECTOR = 512
BOOT_CODE = 446
_MBR_SIGNATURE = b"\x55\xaa"
_PROTECTIVE_ID = 0xEE
PROCEDURE_SUFFIX = ".procedure.yaml"
_SKIP = (Filesystem.EMPTY, Filesystem.SWAP, Filesystem.CACHE)


# --------------------------------------------------------------------------- procedure


@dataclass(frozen=True)
class TableStep:
    """Restore the partition table saved as ``<name>.mbr`` / ``<name>.gpt``."""

    name: str


@dataclass(frozen=True)
class BootStep:
    """Restore only the boot code (the first 446 bytes of ``<name>.mbr``)."""

    name: str


@dataclass(frozen=True)
class RestoreStep:
    """Restore image ``image`` onto partition ``partition`` of the disk."""

    image: str
    partition: int


Step = TableStep | BootStep | RestoreStep


@dataclass(frozen=True)
class Procedure:
    """Steps run in order on one disk (OpenGnSys's *procedimiento* of a whole-disk restore)."""

    steps: tuple[Step, ...]

    def to_data(self) -> dict[str, Any]:
        out: list[dict[str, Any]] = []
        for step in self.steps:
            if isinstance(step, TableStep):
                out.append({"table": step.name})
            elif isinstance(step, BootStep):
                out.append({"boot": step.name})
            else:
                out.append({"restore": step.image, "partition": step.partition})
        return {"steps": out}

    def to_yaml(self) -> str:
        head = "# ogref whole-disk procedure: the steps run in order (ogref restore-disk)\n"
        return head + yaml.safe_dump(self.to_data(), sort_keys=False)

    @classmethod
    def parse(cls, data: Any, source: str = "procedure") -> Procedure:
        """Validate YAML data; FormatError (1) naming the step and the problem."""
        if not isinstance(data, dict) or set(data) != {"steps"}:
            raise FormatError(f"{source}: expected one key 'steps' (a list)")
        items = data["steps"]
        if not isinstance(items, list) or not items:
            raise FormatError(f"{source}: 'steps' must be a non-empty list")
        steps: list[Step] = []
        for i, item in enumerate(items):
            where = f"{source}:steps.{i}"
            if not isinstance(item, dict):
                raise FormatError(f"{where}: a step is a mapping")
            keys = set(item)
            if keys == {"table"} or keys == {"boot"}:
                (key,) = keys
                name = item[key]
                if not isinstance(name, str) or not name:
                    raise FormatError(f"{where}.{key}: a table name (string)")
                steps.append(TableStep(name) if key == "table" else BootStep(name))
            elif keys == {"restore", "partition"}:
                image, number = item["restore"], item["partition"]
                if not isinstance(image, str) or not image:
                    raise FormatError(f"{where}.restore: an image name (string)")
                if not isinstance(number, int) or isinstance(number, bool) or number < 1:
                    raise FormatError(f"{where}.partition: a partition number >= 1")
                steps.append(RestoreStep(image, number))
            else:
                raise FormatError(
                    f"{where}: unknown step {sorted(keys)} (table | boot | restore + partition)"
                )
        return cls(tuple(steps))

    @classmethod
    def load(cls, path: Path) -> Procedure:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise NotFoundError(f"procedure {path}: {exc.strerror}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise FormatError(f"{path}: not valid YAML: {exc}") from None
        return cls.parse(data, str(path))


def procedure_path(store: ImageStore, name: str) -> Path:
    """``<name>.procedure.yaml`` in the store (the name is checked like an image name)."""
    files = store.files(name)
    return files.root / f"{files.name}{PROCEDURE_SUFFIX}"


# --------------------------------------------------------------------------- tables


def table_paths(store: ImageStore, name: str) -> tuple[Path, Path]:
    """``(<name>.mbr, <name>.gpt)`` in the store."""
    files = store.files(name)
    base = files.root / files.name
    return Path(f"{base}.mbr"), Path(f"{base}.gpt")


def dump_path(store: ImageStore, name: str) -> Path:
    """``<name>.sfdisk``: the ``sfdisk --dump`` of an MBR disk (logical partitions included)."""
    return table_paths(store, name)[0].with_suffix(".sfdisk")


def dump_entries(text: str) -> list[tuple[int, int, int, str]]:
    """``(number, first sector, sector count, type)`` of each partition in an sfdisk dump."""
    out = []
    for line in text.splitlines():
        node, sep, rest = line.partition(" : ")
        number = re.search(r"(\d+)\s*$", node)
        if not sep or number is None:
            continue
        fields = dict(
            (k.strip(), v.strip()) for k, _, v in (f.partition("=") for f in rest.split(","))
        )
        try:
            out.append(
                (int(number[1]), int(fields["start"]), int(fields["size"]), fields.get("type", ""))
            )
        except (KeyError, ValueError):
            raise ImageFileError(f"not an sfdisk dump line: {line!r}") from None
    return out


def _mbr_entries(sector: bytes) -> list[tuple[int, int, int, int]]:
    """``(number, type id, first LBA, sector count)`` of the used primary entries."""
    out = []
    for i in range(4):
        entry = sector[BOOT_CODE + 16 * i : BOOT_CODE + 16 * (i + 1)]
        type_id = entry[4]
        first = int.from_bytes(entry[8:12], "little")
        count = int.from_bytes(entry[12:16], "little")
        if type_id:
            out.append((i + 1, type_id, first, count))
    return out


def _read_sector(device: str) -> bytes:
    with open(device, "rb") as f:
        data = f.read(SECTOR)
    if len(data) != SECTOR:
        raise PartitionError(f"{device}: cannot read its first sector")
    return data


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = Path(f"{path}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_table(device: str, store: ImageStore, name: str) -> TableKind:
    """Save the partition table of ``device``: ``<name>.mbr`` and ``<name>.sfdisk`` (MBR) or
    ``<name>.gpt`` (GPT); the other kind's file of the same name is removed (it would win)."""
    kind = disk.table_kind(device)
    sector = _read_sector(device)
    mbr, gpt = table_paths(store, name)
    dump = dump_path(store, name)
    mbr.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(mbr, sector)
    if kind is TableKind.GPT:
        tmp = Path(f"{gpt}.tmp{os.getpid()}")
        try:
            run(
                [require("sgdisk"), "-b", str(tmp), device],
                error=PartitionError,
                what=f"save the GPT of {device}",
            )
            os.replace(tmp, gpt)
        finally:
            tmp.unlink(missing_ok=True)
        dump.unlink(missing_ok=True)
    else:
        done = run(
            [require("sfdisk"), "--dump", device],
            error=PartitionError,
            what=f"save the MBR partitions of {device}",
        )
        _write_atomic(dump, done.stdout.encode("utf-8"))
        gpt.unlink(missing_ok=True)  # an older GPT of the same name would win at restore
    return kind


def _partition_nodes(device: str) -> list[str]:
    """The partition nodes the kernel currently shows for ``device``."""
    base = os.path.basename(device)
    try:
        names = sorted(n for n in os.listdir(f"/sys/block/{base}") if n.startswith(base))
    except OSError:
        return []
    return [f"/dev/{n}" for n in names]


def restore_table(device: str, store: ImageStore, name: str, *, boot_only: bool = False) -> str:
    """Write the saved table of ``name`` onto ``device`` (or only its boot code); what was done."""
    mbr, gpt = table_paths(store, name)
    if not mbr.is_file():
        raise NotFoundError(f"partition table {mbr} not found")
    sector = mbr.read_bytes()
    if len(sector) != SECTOR or sector[510:] != _MBR_SIGNATURE:
        raise ImageFileError(f"{mbr}: not a 512-byte MBR sector")
    for node in _partition_nodes(device):
        unmount_device(node)
    if boot_only:
        _write_head(device, sector[:BOOT_CODE])
        return f"boot code of {name} written to {device}"
    entries = _mbr_entries(sector)
    dump = dump_path(store, name)
    if gpt.is_file():
        sgdisk = require("sgdisk")
        run([sgdisk, "-l", str(gpt), device], error=PartitionError, what=f"load {gpt.name}")
        # a larger disk: move the backup header and table to its end
        run([sgdisk, "-e", device], error=PartitionError, what=f"relocate the GPT of {device}")
        _write_head(device, sector[:BOOT_CODE])
        kind = "GPT"
    else:
        if any(e[1] == _PROTECTIVE_ID for e in entries):
            raise NotFoundError(f"{mbr} is a GPT protective MBR but {gpt.name} is missing")
        script = dump.read_text(encoding="utf-8") if dump.is_file() else None
        if script is None and any(e[1] in disk.EXTENDED_IDS for e in entries):
            raise NotFoundError(
                f"{dump.name} not found: {mbr.name} holds an extended partition whose logical "
                "partitions (their EBRs) are not in its 512 bytes"
            )
        primaries = [(n, first, count) for n, _, first, count in entries]
        if script is None:
            _check_fits(device, name, primaries)
        else:
            listed = [(n, first, count) for n, first, count, _ in dump_entries(script)]
            if [e for e in listed if e[0] <= 4] != primaries:
                raise ImageFileError(f"{mbr.name} and {dump.name} list different partitions")
            _check_fits(device, name, listed)
        if script is not None:
            # sfdisk writes the primary entries and the EBR chain of the logical partitions
            run(
                [require("sfdisk"), "--quiet", "--no-reread", "--no-tell-kernel", device],
                error=PartitionError,
                what=f"write the partitions of {dump.name}",
                input_text=script,
            )
        # then the saved sector itself: boot code, disk signature, primary entries as saved
        _write_head(device, sector)
        kind = "MBR"
    disk.reread(device)
    for number, *_ in disk.partition_entries(device):
        wait_for_node(partition_path(device, number))
    return f"{kind} partition table {name} written to {device}"


def _check_fits(device: str, name: str, entries: list[tuple[int, int, int]]) -> None:
    """ImageSizePartitionError (30) when a partition ``(number, first, count)`` ends past the
    disk (checked before anything is written)."""
    sectors = filesystem.device_size(device) // SECTOR
    for number, first, count in entries:
        if first + count > sectors:
            raise ImageSizePartitionError(
                f"partition {number} of {name} ends at sector {first + count}, "
                f"{device} has {sectors}"
            )


def _write_head(device: str, data: bytes) -> None:
    fd = os.open(device, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.pwrite(fd, data, 0)
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- procedures


@dataclass
class DiskResult:
    """What a whole-disk create or restore did, step by step."""

    procedure: Procedure
    notes: list[str] = field(default_factory=list)


def disk_lock(lock_dir: Path, device: str) -> LockFile:
    """The whole-disk lock (``/var/lock/lock-dev-sda``, as OpenGnSys's ogLockDisk)."""
    return LockFile(partition_lock_path(lock_dir, device), f"disk {device}")


def create_disk(
    device: str,
    store: ImageStore,
    name: str,
    *,
    comp: Compressor = Compressor.ZSTD,
    reduce: bool = True,
    host: str = "",
    tracker: str = "",
    lock_dir: Path = DEFAULT_LOCK_DIR,
    progress: Progress | None = None,
) -> DiskResult:
    """Save the table and image every partition holding a filesystem (CACHE, swap, empty skipped).

    Images are named ``<name>-p<N>``; the procedure that restores them is written last, as
    ``<name>.procedure.yaml``, so a half-captured disk has no procedure.
    """
    name = store.files(name).name  # "/lab" → "lab"; refuses names that escape the store
    target = procedure_path(store, name)
    with disk_lock(lock_dir, device):
        kind = save_table(device, store, name)
        result = DiskResult(Procedure((TableStep(name),)))
        result.notes.append(f"{kind} partition table saved as {name}")
        steps: list[Step] = [TableStep(name)]
        for number, _size, part_name, type_id in disk.partition_entries(device):
            node = partition_path(device, number)
            fs = filesystem.detect(node)
            label = filesystem.probe(node).get("LABEL", "")
            if disk.is_extended(type_id):
                result.notes.append(f"partition {number} is extended: its table is in the dump")
                continue
            if disk.is_cache_entry(part_name, type_id, label) or fs in _SKIP:
                result.notes.append(f"partition {number} ({fs}) not imaged")
                continue
            image = f"{name}-p{number}"
            create_image(
                node,
                store,
                image,
                comp=comp,
                reduce=reduce,
                host=host,
                tracker=tracker,
                lock_dir=lock_dir,
                progress=progress,
            )
            steps.append(RestoreStep(image, number))
            result.notes.append(f"partition {number} ({fs}) imaged as {image}")
        procedure = Procedure(tuple(steps))
        _write_atomic(target, procedure.to_yaml().encode("utf-8"))
        result.procedure = procedure
        result.notes.append(f"procedure written to {target.name}")
    return result


def run_procedure(
    procedure: Procedure,
    store: ImageStore,
    device: str,
    *,
    lock_dir: Path = DEFAULT_LOCK_DIR,
    progress: Progress | None = None,
    on_step: Callable[[str], None] | None = None,
    hostname: str = "",
) -> DiskResult:
    """Run ``procedure`` on ``device``; the first failing step raises its OgError.

    Partition restores may change a partition's filesystem type: the procedure restores the
    whole disk, so what the old partitions held does not matter.  After a table step, the
    disk's UEFI boot (:func:`uefi_boot`; the entry is named after ``hostname``).
    """
    result = DiskResult(procedure)
    with ExitStack() as stack:
        stack.enter_context(disk_lock(lock_dir, device))
        for step in procedure.steps:
            if isinstance(step, (TableStep, BootStep)):
                if isinstance(step, TableStep):  # partitions may move: forget what they held
                    for node in _partition_nodes(device):
                        fingerprint.take(lock_dir, node)
                note = restore_table(device, store, step.name, boot_only=isinstance(step, BootStep))
            else:
                node = partition_path(device, step.partition)
                if not os.path.exists(node):
                    raise PartitionError(f"{device} has no partition {step.partition}")
                done = restore_image(
                    store,
                    step.image,
                    node,
                    allow_fs_change=True,
                    lock_dir=lock_dir,
                    progress=progress,
                )
                note = f"image {done.name} restored to {node} ({done.filesystem})"
            result.notes.append(note)
            if on_step is not None:
                on_step(note)
        if any(isinstance(step, TableStep) for step in procedure.steps):
            for note in uefi_boot(device, hostname):
                result.notes.append(note)
                if on_step is not None:
                    on_step(note)
    return result


def uefi_boot(device: str, hostname: str) -> list[str]:
    """After a whole-disk restore: the boot loader on ``device``'s EFI system partition and, on a
    live client booted by UEFI, a firmware boot entry for it named after ``hostname`` (an older
    one of that name replaced, the network entries first); what was done, as notes.  A disk
    without an ESP is a BIOS disk: nothing to do."""
    try:
        esp = efiboot.find_esp(device)
    except NotUefiError:
        return ["no EFI system partition: no UEFI boot entry (a BIOS disk)"]
    loader = efiboot.esp_loader(partition_path(device, esp))
    if not loader:
        return [f"EFI system partition {esp} holds no boot loader: no firmware boot entry"]
    notes = [f"EFI system partition {esp} restored with its boot loader {loader}"]
    if not efiboot.active():
        notes.append("the live client did not boot by UEFI: no firmware boot entry made")
        return notes
    label = efiboot.label_for(hostname)
    number, now = efiboot.add_entry(device, esp, loader, label)
    notes.append(
        f"firmware boot entry Boot{number} {label!r} for {loader}; "
        f"BootOrder {','.join(now.order)} (network first)"
    )
    return notes


def restore_disk(
    store: ImageStore,
    name: str,
    device: str,
    *,
    procedure: Path | None = None,
    lock_dir: Path = DEFAULT_LOCK_DIR,
    progress: Progress | None = None,
    on_step: Callable[[str], None] | None = None,
    hostname: str = "",
) -> DiskResult:
    """Run ``<name>.procedure.yaml`` of the store (or the file ``procedure``) on ``device``."""
    path = procedure or procedure_path(store, name)
    if not path.is_file():
        raise NotFoundError(f"procedure {path} not found (made by ogref create-disk)")
    return run_procedure(
        Procedure.load(path),
        store,
        device,
        lock_dir=lock_dir,
        progress=progress,
        on_step=on_step,
        hostname=hostname,
    )
