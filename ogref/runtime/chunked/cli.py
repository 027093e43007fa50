"""``ogref image``: create, restore, verify, convert, describe, delete, edit and mount images in
either format (``partclone`` — the OpenGnSys file, the default — or ``chunked``) in an image
directory; collect unreferenced chunks (``gc``) and report the directory's usage.

Prints one JSON object and exits with the OpenGnSys error number (``usage`` on a terminal: a
table).  Argument mapping only: the
work is :mod:`ogref.runtime.create`/:mod:`~ogref.runtime.restore`'s and this package's.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ogref.errors import FormatError, ImageFileError, OgError
from ogref.model.image import Compressor
from ogref.runtime import imagefile
from ogref.runtime.chunked import browse, chunk, convert, garbage, image, usage
from ogref.runtime.chunked.create import create_chunked
from ogref.runtime.chunked.edit import Addition, edit_chunked
from ogref.runtime.chunked.restore import restore_chunked
from ogref.runtime.create import create_image
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.restore import restore_image
from ogref.units import format_size

app = typer.Typer(add_completion=False, no_args_is_help=True, help="images in either format")


class Format(StrEnum):
    """The two image formats."""

    PARTCLONE = "partclone"
    CHUNKED = "chunked"


_DIR = typer.Option(Path("/opt/opengnsys/images"), "--dir", help="image directory")
_LOCKS = typer.Option(Path("/var/lock"), "--lock-dir", help="partition locks")
_WORKERS = typer.Option(0, "--workers", help="threads (default: the CPUs usable)")


def _run(fn: Callable[[], dict[str, Any]]) -> None:
    try:
        result = {"code": 0, **fn()}
    except OgError as exc:
        result = {"code": int(exc.code), "error": exc.code.name, "message": exc.message}
    print(json.dumps(result, default=str))
    raise typer.Exit(int(result["code"]))


@app.command()
def create(
    device: str = typer.Argument(..., help="partition to image"),
    name: str = typer.Argument(..., help="image name in --dir"),
    fmt: Format = typer.Option(Format.PARTCLONE, "--format"),
    level: int = typer.Option(chunk.DEFAULT_LEVEL, "--level", help="zstd level"),
    diff_of: str = typer.Option("", "--diff-of", help="chunked: base image (differential)"),
    pack: bool = typer.Option(
        True,
        "--pack/--no-pack",
        help="chunked: also write NAME.pack and NAME.pack.torrent (MULTICAST, TORRENT)",
    ),
    tracker: str = typer.Option("", "--tracker", help="announce URL of the .torrent"),
    directory: Path = _DIR,
    lock_dir: Path = _LOCKS,
    workers: int = _WORKERS,
) -> None:
    """Image DEVICE as NAME (partclone: reduced, .torrent; chunked: only new chunks stored)."""

    def work() -> dict[str, Any]:
        store = ImageStore(directory)
        if fmt is Format.PARTCLONE:
            if diff_of:
                raise FormatError("--diff-of needs --format chunked")
            made = create_image(
                device, store, name, level=level, lock_dir=lock_dir, tracker=tracker
            )
            return {
                "format": fmt.value,
                "bytes": made.image.stored_size,
                "md5": made.image.checksum,
            }
        done = create_chunked(
            device, store, name, level=level, lock_dir=lock_dir, workers=workers,
            diff_of=diff_of, pack=pack, tracker=tracker,
        )  # fmt: skip
        return {
            "diff_of": diff_of or None,
            "diff_bytes": done.diff_bytes,
            "format": fmt.value,
            "manifest": str(done.path),
            "digest": done.manifest.digest,
            "chunks": done.stats.chunks,
            "new_chunks": done.stats.new_chunks,
            "new_bytes": done.stats.new_stored_bytes,
            "pack": str(done.pack) if done.pack else None,
            "pack_torrent": str(done.pack_torrent) if done.pack_torrent else None,
            "seconds": round(done.seconds, 3),
        }

    _run(work)


@app.command()
def restore(
    name: str = typer.Argument(...),
    device: str = typer.Argument(..., help="partition to write"),
    allow_fs_change: bool = typer.Option(False, "--allow-fs-change"),
    in_place: bool | None = typer.Option(
        None,
        "--in-place/--full",
        help="chunked: write only chunks the partition lacks (default for a differential image)",
    ),
    full_check: bool = typer.Option(
        False,
        "--full-check",
        help="in place: read and hash every used block even when the partition's record "
        "(its filesystem fingerprint unchanged since ogref wrote it) says what it holds",
    ),
    directory: Path = _DIR,
    lock_dir: Path = _LOCKS,
    workers: int = _WORKERS,
) -> None:
    """Restore NAME onto DEVICE (the chunked image when NAME has a manifest, else the .img)."""

    def work() -> dict[str, Any]:
        store = ImageStore(directory)
        if image.exists(store, name):
            done = restore_chunked(
                store, name, device, allow_fs_change=allow_fs_change, lock_dir=lock_dir,
                workers=workers, in_place=in_place, use_record=not full_check,
            )  # fmt: skip
            return {
                "format": Format.CHUNKED.value,
                "bytes": done.bytes_read,
                "written_bytes": done.written_bytes,
                "chunks_skipped": done.chunks_skipped,
                "by_record": done.by_record,
                "seconds": round(done.seconds, 3),
            }
        plain = restore_image(
            store, name, device, allow_fs_change=allow_fs_change, lock_dir=lock_dir
        )
        return {
            "format": Format.PARTCLONE.value,
            "bytes": plain.bytes_read,
            "seconds": round(plain.seconds, 3),
        }

    _run(work)


@app.command()
def verify(
    name: str = typer.Argument(...), directory: Path = _DIR, workers: int = _WORKERS
) -> None:
    """Re-hash every chunk of a chunked image (an .img: its whole-file MD5); 33 if any is bad."""

    def work() -> dict[str, Any]:
        store = ImageStore(directory)
        if image.exists(store, name):
            bad = image.verify(store, name, workers=workers)
            if bad:
                raise ImageFileError(f"{len(bad)} bad chunks: " + "; ".join(p for _, p in bad[:3]))
            return {"format": "chunked", "chunks": len(image.load(store, name).chunks)}
        files = imagefile.require_image(store, name)
        expected = imagefile.read_sum(files.full_sum)
        if expected and imagefile.md5_full(files.img) != expected:
            raise ImageFileError(f"{files.img}: whole-file MD5 differs from .full.sum")
        return {"format": "partclone", "md5_checked": bool(expected)}

    _run(work)


@app.command("convert")
def convert_cmd(
    name: str = typer.Argument(...),
    to: Format = typer.Option(..., "--to"),
    target: str = typer.Option("", "--as", help="name of the converted image (default: NAME)"),
    comp: str = typer.Option("zstd", "--comp", help="compressor of a partclone image"),
    directory: Path = _DIR,
    workers: int = _WORKERS,
) -> None:
    """Convert NAME between the OpenGnSys file and the chunked format (same filesystem data)."""

    def work() -> dict[str, Any]:
        store = ImageStore(directory)
        if to is Format.CHUNKED:
            done = convert.to_chunked(store, name, target=target, workers=workers)
            return {"format": to.value, "manifest": str(done.path), "chunks": done.stats.chunks}
        files = convert.to_partclone(store, name, target=target, comp=Compressor.parse(comp))
        return {"format": to.value, "image": str(files.img)}

    _run(work)


@app.command()
def info(name: str = typer.Argument(...), directory: Path = _DIR) -> None:
    """Describe chunked image NAME: filesystem, sizes, chunks, bytes it holds in the store."""

    def work() -> dict[str, Any]:
        store = ImageStore(directory)
        made = image.load(store, name)
        chunks = image.chunk_store(store)
        unique = {c.digest for c in made.chunks}
        return {
            "format": "chunked",
            "filesystem": str(made.filesystem),
            "data_size": made.header.device_size,
            "used_bytes": made.data_size,
            "chunks": len(made.chunks),
            "unique_chunks": len(unique),
            "stored_bytes": sum(chunks.size_on_disk(d) for d in unique),
            "digest": made.digest,
            "created": made.created,
            "host": made.host,
            "message": made.message,
        }

    _run(work)


@app.command()
def delete(
    name: str = typer.Argument(...),
    version: str = typer.Option("", "--version", help="'ant': only the previous version"),
    directory: Path = _DIR,
) -> None:
    """Delete NAME (every version, or --version ant); free the chunks no other image uses."""

    def work() -> dict[str, Any]:
        return dataclasses.asdict(garbage.delete(ImageStore(directory), name, version=version))

    _run(work)


@app.command()
def gc(directory: Path = _DIR) -> None:
    """Delete the chunks no manifest references (refused, 4, while an image is being written)."""
    _run(lambda: dataclasses.asdict(garbage.collect(ImageStore(directory))))


@app.command("usage")
def usage_cmd(
    directory: Path = _DIR,
    as_json: bool = typer.Option(False, "--json", help="JSON even on a terminal"),
) -> None:
    """Per image version: format, logical size, chunks, bytes owned alone and shared; totals
    and the dedup ratio (repository bytes / sum of the images' sizes)."""
    if as_json or not sys.stdout.isatty():
        _run(lambda: usage.report(ImageStore(directory)).to_dict())
        return
    try:
        report = usage.report(ImageStore(directory))
    except OgError as exc:
        Console(stderr=True).print(escape(str(exc)))
        raise typer.Exit(int(exc.code)) from None
    Console().print(usage_table(report, str(directory)))


def usage_table(report: usage.Usage, title: str) -> Table:
    """The usage report as a rich table with a totals line."""
    t = Table(title=escape(title), caption=escape(_totals(report)))
    for col in ("image", "version", "format", "fs", "logical", "chunks", "stored", "alone",
                "shared", "base"):  # fmt: skip
        t.add_column(col, justify="right" if col in ("logical", "chunks") else "left")
    for v in report.images:
        t.add_row(
            escape(v.name), v.version, v.format, v.filesystem, format_size(v.logical_bytes),
            str(v.chunks), format_size(v.stored_bytes), format_size(v.owned_bytes),
            format_size(v.shared_bytes), escape(v.base),
        )  # fmt: skip
    return t


def _totals(report: usage.Usage) -> str:
    ratio = report.dedup_ratio
    return (
        f"repository {format_size(report.repository_bytes)} (chunks "
        f"{format_size(report.chunk_store_bytes)}, of which unreferenced "
        f"{format_size(report.garbage_bytes)}; .img files {format_size(report.image_file_bytes)})"
        f" · images {format_size(report.images_bytes)} · dedup ratio "
        f"{'-' if ratio is None else f'{ratio:.3f}'}"
    )


@app.command()
def edit(
    name: str = typer.Argument(...),
    add: list[str] = typer.Option([], "--add", help="SRC:DEST — copy a host file or tree in"),
    remove: list[str] = typer.Option([], "--remove", help="PATH inside the image to delete"),
    message: str = typer.Option("", "--message", help="kept in the new version's manifest"),
    work_dir: Path | None = typer.Option(None, "--work-dir", help="scratch (a sparse file)"),
    directory: Path = _DIR,
    lock_dir: Path = _LOCKS,
    workers: int = _WORKERS,
) -> None:
    """A new version of chunked image NAME with PATHs removed and SRC:DESTs added (the
    previous one kept as .ant); only the chunks that changed are stored."""

    def work() -> dict[str, Any]:
        done = edit_chunked(
            ImageStore(directory), name, add=[Addition.parse(a) for a in add], remove=remove,
            message=message, work_dir=work_dir, lock_dir=lock_dir, workers=workers,
        )  # fmt: skip
        made = done.created
        return {
            "format": Format.CHUNKED.value,
            "manifest": str(made.path),
            "digest": made.manifest.digest,
            "previous": done.previous.digest,
            "chunks": made.stats.chunks,
            "new_chunks": made.stats.new_chunks,
            "new_bytes": made.stats.new_stored_bytes,
            "seconds": round(made.seconds, 3),
        }

    _run(work)


_STATE = typer.Option(browse.DEFAULT_STATE_DIR, "--state-dir", help="what mounts made")


@app.command("mount")
def mount_cmd(
    name: str = typer.Argument(...),
    target: Path = typer.Argument(..., help="an empty directory"),
    directory: Path = _DIR,
    state_dir: Path = _STATE,
) -> None:
    """Mount chunked image NAME read-only on TARGET to browse it (FUSE; no restore)."""

    def work() -> dict[str, Any]:
        done = browse.mount_image(ImageStore(directory), name, target, state_dir=state_dir)
        return {"mounted": done.target, "filesystem": done.filesystem, "loop": done.loop,
                "server_pid": done.pid}  # fmt: skip

    _run(work)


@app.command("umount")
def umount_cmd(target: Path = typer.Argument(...), state_dir: Path = _STATE) -> None:
    """Unmount what `ogref image mount` mounted on TARGET (and stop its FUSE server)."""

    def work() -> dict[str, Any]:
        done = browse.unmount_image(target, state_dir=state_dir)
        return {"unmounted": done.target, "image": done.image}

    _run(work)
