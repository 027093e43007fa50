"""Hardware of a scenario: the ``hw:`` mappings of computers and repositories, and the router.

``ogref.site`` carries ``hw:`` through defaults → group → computer inheritance without reading it;
this module validates each layer (so an error names the YAML path where it was written) and
resolves the merged mapping into plain values in SI base units: bytes, bytes/s, seconds.
It models nothing over time; the simulator's models read these values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ogref.units import Duration, PositiveRate, Ratio, Size


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LinkHw(_Strict):
    """A computer's access link (full duplex: the same rate up and down)."""

    rate: PositiveRate | None = Field(default=None, description="link rate, e.g. 1Gbit")
    delay: Duration | None = Field(default=None, description="one-way delay, e.g. 0.2ms")
    loss: Ratio | None = Field(default=None, description="packet loss, e.g. 0.1%")


class DiskHw(_Strict):
    """A computer's disk: sequential and random write rates, read rate, and write stalls."""

    write: PositiveRate | None = Field(default=None, description="sequential write, e.g. 120MB/s")
    read: PositiveRate | None = Field(default=None, description="sequential read, e.g. 150MB/s")
    random_write: PositiveRate | None = Field(
        default=None, description="out-of-order writes (torrent pieces), e.g. 80MB/s"
    )
    piece_cache: Size | None = Field(
        default=None,
        description="set: a torrent peer's disk is one resource its piece writes and the piece "
        "reads of its uploads share (both out of order, at the random_write rate), except "
        "uploads of the pieces it most recently wrote or read, held in this much memory (its "
        "torrent client's cache and the kernel's page cache), e.g. 8GB; 0: every upload reads "
        "the disk; unset: uploads do not touch the disk model, a peer that uploads writes at "
        "1/(1/w + 1/r) with the sequential read rate",
    )
    stall: Ratio | None = Field(
        default=None, description="fraction of time the disk is in a slow spell (flush, remap)"
    )
    stall_factor: float | None = Field(
        default=None, ge=1.0, description="how many times slower the disk is during a slow spell"
    )
    slice_rates: list[float] | Literal["lab", "hdd"] | None = Field(
        default=None,
        description="per-slice write rates measured on this kind of disk, any one unit (only "
        "their spread is used; `python -m ogsim.udpcast FILE` measures them), `lab` for the "
        "lab host's published measurement, or `hdd` for the published spread of 1 TB "
        "drives of one model at the same offset (Krevat et al. 2011; ogsim/hdd.py): "
        "receivers of a multicast session then write each slice at a rate drawn from them, "
        "and the session waits for the slowest; unset: a constant rate",
    )
    dirty: Size | None = Field(
        default=None,
        description="written data the kernel may hold in memory before writing it back "
        "(dirty_background); a restore straight from the network ends with partclone's sync of "
        "up to this much, e.g. 400MiB; 0 (default): writes reach the disk as they are made",
    )


class ChunkHw(_Strict):
    """What moving and restoring a chunked image costs a computer beyond its bytes (measured
    on the lab host by ``python -m ogsim.lab.netns.chunk_costs``; all default to nothing)."""

    setup: Duration | None = Field(
        default=None,
        description="fixed time of a chunked UNICAST update: the fetch workers' SMB "
        "connections, the manifest, installing it",
    )
    request: Duration | None = Field(
        default=None,
        description="per chunk fetched: request latency (open, read, close) the update's "
        "parallel workers do not hide",
    )
    cpu: Duration | None = Field(
        default=None,
        description="per chunk fetched: CPU time of the client and the server (pysmb/smbd, "
        "the chunk's hash check, its file); on a one-host lab (shared_cpus) shared by every "
        "computer",
    )
    list: Duration | None = Field(
        default=None,
        description="per chunk-store directory the cache inspection lists (the stored sizes of "
        "the chunks the CACHE lacks, one SMB listing per directory)",
    )
    syncfs: Duration | None = Field(
        default=None,
        description="fixed time of the syncfs that ends an update (its bytes are written at "
        "the disk's write rate)",
    )
    restore: PositiveRate | None = Field(
        default=None,
        description="used bytes per second of one in-place restore from the CACHE (read back "
        "and hashed, chunks decompressed, re-hashed and written), measured alone, its final "
        "fsync excepted (that is disk.dirty at the disk's write rate); unset: from the disk "
        "and decompression rates",
    )
    restore_cpu: float | None = Field(
        default=None,
        gt=0,
        description="cores one such restore keeps busy (on a one-host lab, N restores share "
        "shared_cpus cores), e.g. 1.4",
    )
    inspect_cpu: float | None = Field(
        default=None,
        gt=0,
        description="cores an inspection step of a chunked operation keeps busy on the host as "
        "a whole (agent, server, service; on a one-host lab, shared with the other computers' "
        "CPU work on shared_cpus cores); unset: one",
    )
    report: Duration | None = Field(
        default=None,
        description="from a chunked operation's last step to the computer's end (the agent's "
        "final report, the service's record of it); a CPU step at report_cpu cores",
    )
    report_cpu: float | None = Field(
        default=None, gt=0, description="cores the report step keeps busy; unset: one"
    )
    fetch_cpu: float | None = Field(
        default=None,
        gt=0,
        description="cores a chunked UNICAST update keeps busy on the host as a whole; with it "
        "the update's CPU work (cpu per chunk) runs from the update's start, alongside its "
        "setup and wire, at most this many cores; unset: one core, after the setup",
    )


class ComputerHwLayer(_Strict):
    """One layer (defaults, group or computer) of a computer's ``hw:`` mapping; all optional."""

    link: LinkHw | None = None
    disk: DiskHw | None = None
    decompress: PositiveRate | None = Field(
        default=None, description="decompression rate of the CPU"
    )
    inspect: Duration | None = Field(default=None, description="time of each inspection step")
    chunks: ChunkHw | None = None
    format_cache: Duration | None = None
    postconf: Duration | None = Field(default=None, description="configureOs time")
    boot: Duration | None = Field(default=None, description="time to boot an installed OS")
    firmware: Literal["bios", "uefi", "uefi-secureboot"] | None = Field(
        default=None,
        description="the computer's firmware: bios (default), uefi, or uefi-secureboot (UEFI "
        "with Secure Boot enforced, Microsoft keys); the VM lab boots OVMF for UEFI",
    )
    efi_loader: Literal["signed", "unsigned"] | None = Field(
        default=None,
        description="on UEFI, the boot loader configureOs installs on the EFI system partition: "
        "signed (default: Debian's shim + signed GRUB) or unsigned (GRUB's own image, which "
        "Secure Boot refuses)",
    )


class RepositoryHw(_Strict):
    """A repository's ``hw:`` mapping."""

    uplink: PositiveRate = Field(default=1e9, description="server uplink, e.g. 1Gbit")
    read: PositiveRate = Field(default=8 * 800e6, description="repository disk read rate")
    page_cache: Size = Field(
        default=0,
        description="memory the repository's kernel can cache images in: a unicast stream of an "
        "image that fits is read from memory (the image is warm), one that does not fit crosses "
        "the disk (read rate, shared by every stream); 0 (default): every stream reads the disk",
    )
    smb_stream: PositiveRate | None = Field(
        default=None,
        description="what one SMB stream can carry on the server's CPU (one smbd process per "
        "client, one core: signing, encryption, copies), e.g. 420Mbit; unset: unlimited",
    )
    smb_cpus: int = Field(
        default=1, ge=1, description="server cores SMB streams share (with smb_stream set)"
    )
    smb_overhead: Ratio = Field(default=0.08, description="SMB/TCP protocol overhead on unicast")
    seeder_slots: int = Field(default=8, ge=1, description="upload slots of the repository seeder")
    restart: Duration = Field(default=60.0, description="outage of a repository restart fault")
    mcast_start: Duration = Field(
        default=0.0,
        description="from a multicast session's start trigger to its first data "
        "(udp-sender start-up, rendezvous hellos) and its closing acknowledgements",
    )
    torrent_start: Duration = Field(
        default=0.0,
        description="from a peer's start to its first piece (tracker announce, handshakes, "
        "unchoke) plus its final hash check",
    )


class RouterHw(_Strict):
    """The router between subnets (used when a computer is not in its repository's subnet)."""

    rate: PositiveRate = Field(
        default=10e9, description="routed capacity shared by all cross-subnet flows"
    )
    delay: Duration = 0.0005
    multicast: bool = Field(default=True, description="routes multicast (OpenGnSys >= 1.1)")


class NetworkSpec(_Strict):
    """Scenario-level network: the router between subnets."""

    router: RouterHw = Field(default_factory=RouterHw)


@dataclass(frozen=True)
class HostHw:
    """Resolved hardware of one computer: every ``*_rate`` is in bytes per second, ``*_s`` in seconds."""

    link_rate: float = 1e9 / 8
    delay_s: float = 0.0002
    loss: float = 0.0
    write_rate: float = 120e6
    read_rate: float = 150e6
    random_write_rate: float = 100e6
    piece_cache_bytes: float | None = None  # None: the swarm's disk model is off (DiskHw)
    stall: float = 0.0
    stall_factor: float = 1.0
    dirty_bytes: float = 0.0
    slice_rates: tuple[float, ...] = ()  # relative to the sustained write rate; () = constant
    decompress_rate: float = 400e6
    inspect_s: float = 1.0
    format_cache_s: float = 5.0
    postconf_s: float = 20.0
    boot_s: float = 40.0
    firmware: str = "bios"
    chunk_setup_s: float = 0.0
    chunk_request_s: float = 0.0
    chunk_cpu_s: float = 0.0
    chunk_list_s: float = 0.0
    chunk_syncfs_s: float = 0.0
    chunk_restore_rate: float = 0.0  # 0: from the disk and decompression rates
    chunk_restore_cpu: float = 0.0  # cores one chunked restore keeps busy (0: unknown)
    chunk_inspect_cpu: float = 0.0  # cores a chunked operation's inspection keeps busy (0: one)
    chunk_fetch_cpu: float = 0.0  # cores a chunked update keeps busy (0: one, after the setup)
    chunk_report_s: float = 0.0  # a chunked operation's last step to the computer's end
    chunk_report_cpu: float = 0.0  # cores that keeps busy (0: one)


def resolve_host(mapping: dict[str, Any]) -> HostHw:
    """Resolve a merged (already validated) ``hw:`` mapping into a HostHw."""
    layer = ComputerHwLayer.model_validate(mapping)
    d = HostHw()
    link = layer.link or LinkHw()
    disk = layer.disk or DiskHw()
    write = disk.write / 8 if disk.write is not None else d.write_rate
    ck = layer.chunks or ChunkHw()
    return HostHw(
        link_rate=link.rate / 8 if link.rate is not None else d.link_rate,
        delay_s=link.delay if link.delay is not None else d.delay_s,
        loss=link.loss if link.loss is not None else d.loss,
        write_rate=write,
        read_rate=disk.read / 8 if disk.read is not None else max(write, d.read_rate),
        random_write_rate=disk.random_write / 8 if disk.random_write is not None else write * 0.8,
        piece_cache_bytes=float(disk.piece_cache) if disk.piece_cache is not None else None,
        stall=disk.stall if disk.stall is not None else d.stall,
        stall_factor=disk.stall_factor if disk.stall_factor is not None else d.stall_factor,
        dirty_bytes=float(disk.dirty) if disk.dirty is not None else d.dirty_bytes,
        slice_rates=_slice_rates(disk.slice_rates),
        decompress_rate=layer.decompress / 8 if layer.decompress is not None else d.decompress_rate,
        inspect_s=layer.inspect if layer.inspect is not None else d.inspect_s,
        format_cache_s=layer.format_cache if layer.format_cache is not None else d.format_cache_s,
        postconf_s=layer.postconf if layer.postconf is not None else d.postconf_s,
        boot_s=layer.boot if layer.boot is not None else firmware_boot_s(layer.firmware or "bios"),
        firmware=layer.firmware or "bios",
        chunk_setup_s=ck.setup or 0.0,
        chunk_request_s=ck.request or 0.0,
        chunk_cpu_s=ck.cpu or 0.0,
        chunk_list_s=ck.list or 0.0,
        chunk_syncfs_s=ck.syncfs or 0.0,
        chunk_restore_rate=ck.restore / 8 if ck.restore is not None else 0.0,
        chunk_restore_cpu=ck.restore_cpu or 0.0,
        chunk_inspect_cpu=ck.inspect_cpu or 0.0,
        chunk_fetch_cpu=ck.fetch_cpu or 0.0,
        chunk_report_s=ck.report or 0.0,
        chunk_report_cpu=ck.report_cpu or 0.0,
    )


def _slice_rates(value: list[float] | str | None) -> tuple[float, ...]:
    """A disk's per-slice write rates, relative to its sustained rate (``()``: constant)."""
    from ogsim.hdd import hdd_slice_rates
    from ogsim.udpcast import lab_slice_rates, normalised

    if value is None:
        return ()
    if value == "hdd":
        return normalised(hdd_slice_rates())
    if isinstance(value, str):  # "lab": the schema allows no other word
        return normalised(lab_slice_rates())
    return normalised(value)


# Time from a reboot to the restored OS's report, relative to a BIOS computer's, per firmware:
# measured in the VM lab (the same test OS, SeaBIOS vs OVMF vs OVMF with Secure Boot;
# docs/vm-lab-uefi.md).  The simulator's default BIOS boot (40 s, real hardware) is
# scaled by these; ``hw.boot`` still sets a computer's boot time outright.
# Measured 2026-12-04 (scenarios/vm-uefi-mixed.yaml, 4 VMs at once, 2 shared TCG cores): hard
# reset → OS report 31.7 s BIOS (mean of 2), 34.2 s UEFI, 42.0 s UEFI + Secure Boot.
FIRMWARE_BOOT_RATIO = {"bios": 1.0, "uefi": 1.08, "uefi-secureboot": 1.32}


def firmware_boot_s(firmware: str, bios_boot_s: float = HostHw.boot_s) -> float:
    """The default time to boot an installed OS on ``firmware``."""
    return round(bios_boot_s * FIRMWARE_BOOT_RATIO[firmware], 3)
