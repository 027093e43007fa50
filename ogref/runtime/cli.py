"""The OpenGnSys-style imaging commands on real devices: create-image, restore-image,
update-cache and deploy-image, with OpenGnSys's argument order, session strings and exit codes,
and the whole-disk procedures create-disk and restore-disk (:mod:`ogref.runtime.diskimage`).

``register(app)`` adds them to the main ``ogref`` app; ``app`` runs them alone.  Each shows a
progress bar (or prints one JSON object with ``--json``) and exits with the OpenGnSys error number.
Rendering and argument mapping only: the decisions are the core's, the work the executor's.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from ogref.core.deploy import DeployRequest, Operation
from ogref.core.events import Finish, Source
from ogref.errors import FormatError, NotFoundError, OgErr, OgError
from ogref.model.image import Compressor
from ogref.model.method import Method, Transport
from ogref.model.policy import EngineConfig
from ogref.model.protocol import MulticastSession, TorrentSession
from ogref.runtime import diskimage
from ogref.runtime.cachefs import DEFAULT_ROOT, CachePartition, find_cache
from ogref.runtime.create import create_image
from ogref.runtime.executor import DEFAULT_REPO, Executor, Machine
from ogref.runtime.imagefile import ImageStore
from ogref.runtime.loopdev import partition_path

app = typer.Typer(add_completion=False, no_args_is_help=True, help="imaging on real block devices")
_err = Console(stderr=True)

DISK_HELP = "disk number=device, repeatable (default 1=/dev/sda)"


@dataclass
class _Ctx:
    machine: Machine
    policy: EngineConfig
    as_json: bool
    log: list[str] = field(default_factory=list)


def _machine(
    disk: list[str], repo_dir: Path, cache_root: Path, lock_dir: Path, hostname: str, grub: bool
) -> Machine:
    disks: dict[int, str] = {}
    for item in disk or ["1=/dev/sda"]:
        num, sep, dev = item.partition("=")
        if not sep or not num.isdigit() or not dev:
            raise FormatError(f"--disk expects N=DEVICE, got {item!r}")
        disks[int(num)] = dev
    return Machine(disks, repo_dir, cache_root, lock_dir, hostname or socket.gethostname(), grub)


def _own_ips() -> set[str]:
    try:
        return set(socket.gethostbyname_ex(socket.gethostname())[2])
    except OSError:
        return set()


def _repo_mode(arg: str) -> Source:
    """OpenGnSys's first argument: CACHE or the client's own IP → CACHE; REPO or an IP → REPO."""
    word = arg.strip().upper()
    if word == "CACHE" or arg in _own_ips():
        return Source.CACHE
    if word == "REPO":
        return Source.REPO
    try:
        ipaddress.ip_address(arg)
    except ValueError:
        raise NotFoundError(f"unknown repository {arg!r} (REPO, CACHE or an IP address)") from None
    return Source.REPO  # this runtime reads the repository mounted at --repo-dir


def _sessions(method: Method, opts: str) -> dict[str, Any]:
    if method.transport is Transport.MULTICAST:
        return {"multicast": MulticastSession.parse(opts)} if opts else {}
    if method.transport is Transport.TORRENT and opts:
        return {"torrent": TorrentSession.parse(opts)}
    return {}


@contextmanager
def _progress(as_json: bool, what: str) -> Iterator[Callable[[int, int], None] | None]:
    if as_json:
        yield None
        return
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=_err,
        transient=True,
    ) as bar:
        task = bar.add_task(what, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        yield update


def _report(ctx: _Ctx, result: dict[str, Any]) -> None:
    code = int(result.get("code", 0))
    if ctx.as_json:
        print(json.dumps({**result, "log": ctx.log}, default=str))
    else:
        colour = "green" if code == 0 else "bold red"
        _err.print(
            f"[{colour}]{'OK' if code == 0 else f'error {code}'}[/{colour}] "
            f"{result.get('message', '')}"
        )
    raise typer.Exit(code)


def _fail(ctx: _Ctx, exc: OgError) -> None:
    _report(ctx, {"code": int(exc.code), "error": exc.code.name, "message": exc.message})


def _finish_dict(fin: Finish) -> dict[str, Any]:
    return {
        "code": int(fin.code),
        "error": fin.code.name,
        "message": fin.message,
        "method": str(fin.method_used) if fin.method_used else None,
        "reasons": list(fin.reasons),
    }


def _run_session(ctx: _Ctx, request: DeployRequest, what: str) -> None:
    def log(text: str) -> None:
        ctx.log.append(text)
        if not ctx.as_json:
            _err.print(f"[dim]{text}[/dim]")

    with _progress(ctx.as_json, what) as progress:
        ex = Executor(ctx.machine, log=log, progress=progress)
        fin = ex.run(request, ctx.policy)
    _report(ctx, {**_finish_dict(fin), "notes": ex.notes})


def _ctx(
    disk: list[str],
    repo_dir: Path,
    cache_root: Path,
    lock_dir: Path,
    engine_cfg: Path | None,
    hostname: str,
    grub: bool,
    as_json: bool,
) -> _Ctx:
    policy = EngineConfig.from_file(engine_cfg) if engine_cfg else EngineConfig()
    return _Ctx(_machine(disk, repo_dir, cache_root, lock_dir, hostname, grub), policy, as_json)


# Options shared by every command (typer needs them spelled out per command).
_DISK = typer.Option([], "--disk", help=DISK_HELP)
_REPO = typer.Option(DEFAULT_REPO, "--repo-dir", help="mounted repository directory")
_CACHE = typer.Option(DEFAULT_ROOT, "--cache-root", help="CACHE mount point")
_LOCKS = typer.Option(Path("/var/lock"), "--lock-dir", help="partition locks")
_CFG = typer.Option(None, "--engine-cfg", help="engine.cfg to read (default: ogLab defaults)")
_HOST = typer.Option("", "--hostname", help="name configureOs writes (default: this host)")
_GRUB = typer.Option(True, "--grub/--no-grub", help="install GRUB in configureOs when possible")
_JSON = typer.Option(False, "--json", help="print one JSON result instead of a progress bar")


def create_image_cmd(
    disk_no: int = typer.Argument(..., metavar="DISK"),
    part: int = typer.Argument(..., metavar="PART"),
    repo: str = typer.Argument(..., metavar="REPO|CACHE|ip"),
    image: str = typer.Argument(..., metavar="/IMAGE"),
    comp: str = typer.Option("", "--comp", help="lzop, gzip, zstd (default: IMGCOMP)"),
    reduce: bool | None = typer.Option(None, "--reduce/--no-reduce", help="default: IMGREDUCE"),
    tracker: str = typer.Option("", "--tracker", help="announce URL written in the .torrent"),
    disk: list[str] = _DISK,
    repo_dir: Path = _REPO,
    cache_root: Path = _CACHE,
    lock_dir: Path = _LOCKS,
    engine_cfg: Path | None = _CFG,
    hostname: str = _HOST,
    as_json: bool = _JSON,
) -> None:
    """createImage DISK PART REPO|CACHE|ip /IMAGE: image a partition into REPO or CACHE."""
    ctx = _ctx(disk, repo_dir, cache_root, lock_dir, engine_cfg, hostname, True, as_json)
    cache: CachePartition | None = None
    try:
        m = ctx.machine
        if _repo_mode(repo) is Source.CACHE:
            number = find_cache(m.device(1))
            if number is None:
                raise _no_cache()
            cache = CachePartition(partition_path(m.device(1), number), m.cache_root)
            cache.mount()
            store = cache.store
        else:
            store = ImageStore(m.repository)
        with _progress(as_json, f"create {image}") as progress:
            done = create_image(
                m.partition(disk_no, part),
                store,
                image,
                comp=Compressor.parse(comp) if comp else ctx.policy.img_comp,
                reduce=ctx.policy.img_reduce if reduce is None else reduce,
                host=m.hostname,
                tracker=tracker,
                lock_dir=m.lock_dir,
                progress=progress,
            )
    except OgError as exc:
        _fail(ctx, exc)
        return
    finally:
        if cache is not None:
            cache.unmount()
    _report(
        ctx,
        {
            "code": 0,
            "message": f"image {done.image.name} created ({done.image.stored_size} bytes)",
            "info": str(done.info),
            "checksum": done.image.checksum,
            "seconds": round(done.seconds, 3),
            "reduced": done.reduced,
            "torrent": done.torrent,
            "notes": list(done.notes),
        },
    )


def _no_cache() -> OgError:
    from ogref.errors import CacheMissingError

    return CacheMissingError("this client has no CACHE partition")


@contextmanager
def _store(m: Machine, repo: str) -> Iterator[tuple[ImageStore, Source]]:
    """The image directory OpenGnSys's REPO|CACHE|ip argument names (the CACHE mounted)."""
    if _repo_mode(repo) is not Source.CACHE:
        yield ImageStore(m.repository), Source.REPO
        return
    number = find_cache(m.device(1))
    if number is None:
        raise _no_cache()
    cache = CachePartition(partition_path(m.device(1), number), m.cache_root)
    cache.mount()
    try:
        yield cache.store, Source.CACHE
    finally:
        cache.unmount()


def create_disk_cmd(
    disk_no: int = typer.Argument(..., metavar="DISK"),
    repo: str = typer.Argument(..., metavar="REPO|CACHE|ip"),
    name: str = typer.Argument(..., metavar="/NAME"),
    comp: str = typer.Option("", "--comp", help="lzop, gzip, zstd (default: IMGCOMP)"),
    reduce: bool | None = typer.Option(None, "--reduce/--no-reduce", help="default: IMGREDUCE"),
    tracker: str = typer.Option("", "--tracker", help="announce URL written in the .torrent"),
    disk: list[str] = _DISK,
    repo_dir: Path = _REPO,
    cache_root: Path = _CACHE,
    lock_dir: Path = _LOCKS,
    engine_cfg: Path | None = _CFG,
    hostname: str = _HOST,
    as_json: bool = _JSON,
) -> None:
    """Whole disk: table (NAME.mbr + NAME.sfdisk, or NAME.gpt) + NAME-pN images + procedure."""
    ctx = _ctx(disk, repo_dir, cache_root, lock_dir, engine_cfg, hostname, True, as_json)
    try:
        m = ctx.machine
        with _store(m, repo) as (store, _), _progress(as_json, f"create-disk {name}") as bar:
            done = diskimage.create_disk(
                m.device(disk_no),
                store,
                name,
                comp=Compressor.parse(comp) if comp else ctx.policy.img_comp,
                reduce=ctx.policy.img_reduce if reduce is None else reduce,
                host=m.hostname,
                tracker=tracker,
                lock_dir=m.lock_dir,
                progress=bar,
            )
    except OgError as exc:
        _fail(ctx, exc)
        return
    _report(
        ctx,
        {
            "code": 0,
            "message": f"disk {disk_no} saved as {name} ({len(done.procedure.steps)} steps)",
            "procedure": done.procedure.to_data(),
            "notes": done.notes,
        },
    )


def restore_disk_cmd(
    repo: str = typer.Argument(..., metavar="REPO|CACHE|ip"),
    name: str = typer.Argument(..., metavar="NAME"),
    disk_no: int = typer.Argument(..., metavar="DISK"),
    procedure: Path | None = typer.Option(
        None, "--procedure", help="run this procedure YAML instead of NAME.procedure.yaml"
    ),
    disk: list[str] = _DISK,
    repo_dir: Path = _REPO,
    cache_root: Path = _CACHE,
    lock_dir: Path = _LOCKS,
    engine_cfg: Path | None = _CFG,
    hostname: str = typer.Option(
        "", "--hostname", help="UEFI: the firmware boot entry's name (default: this host)"
    ),
    as_json: bool = _JSON,
) -> None:
    """Whole disk: run NAME.procedure.yaml — partition table, then each partition's restore;
    on UEFI a firmware boot entry for the loader on the restored ESP."""
    ctx = _ctx(disk, repo_dir, cache_root, lock_dir, engine_cfg, hostname, True, as_json)
    try:
        m = ctx.machine
        device = m.device(disk_no)
        if _repo_mode(repo) is Source.CACHE and disk_no == 1:
            from ogref.errors import CacheError

            raise CacheError("restore-disk from the CACHE would overwrite the CACHE's own disk")

        def step(text: str) -> None:
            ctx.log.append(text)
            if not as_json:
                _err.print(f"[dim]{text}[/dim]")

        with _store(m, repo) as (store, _), _progress(as_json, f"restore-disk {name}") as bar:
            done = diskimage.restore_disk(
                store,
                name,
                device,
                procedure=procedure,
                lock_dir=m.lock_dir,
                progress=bar,
                on_step=step,
                hostname=m.hostname,
            )
    except OgError as exc:
        _fail(ctx, exc)
        return
    _report(
        ctx,
        {
            "code": 0,
            "message": f"{name} restored to disk {disk_no} ({len(done.procedure.steps)} steps)",
            "procedure": done.procedure.to_data(),
            "notes": done.notes,
        },
    )


def restore_image_cmd(
    repo: str = typer.Argument(..., metavar="REPO|CACHE|ip"),
    image: str = typer.Argument(..., metavar="IMAGE"),
    disk_no: int = typer.Argument(..., metavar="DISK"),
    part: int = typer.Argument(..., metavar="PART"),
    proto: str = typer.Argument("UNICAST", metavar="[PROTO]"),
    opts: str = typer.Argument("", metavar="[OPTS]"),
    allow_fs_change: bool = typer.Option(False, "--allow-fs-change"),
    disk: list[str] = _DISK,
    repo_dir: Path = _REPO,
    cache_root: Path = _CACHE,
    lock_dir: Path = _LOCKS,
    engine_cfg: Path | None = _CFG,
    as_json: bool = _JSON,
) -> None:
    """restoreImage REPO|CACHE|ip IMAGE DISK PART [PROTO [OPTS]]: restore, no cache logic."""
    ctx = _ctx(disk, repo_dir, cache_root, lock_dir, engine_cfg, "", True, as_json)
    try:
        method = Method.parse(proto)
        request = DeployRequest(
            Operation.RESTORE_IMAGE,
            image,
            method,
            disk_no,
            part,
            source=_repo_mode(repo),
            allow_fs_change=allow_fs_change,
            postconf=False,
            **_sessions(method, opts),
        )
        _run_session(ctx, request, f"restore {image}")
    except OgError as exc:
        _fail(ctx, exc)


def update_cache_cmd(
    repo: str = typer.Argument(..., metavar="REPO|ip"),
    image: str = typer.Argument(..., metavar="/IMAGE.img"),
    proto: str = typer.Argument("UNICAST", metavar="PROTO"),
    opts: str = typer.Argument("", metavar="[OPTS]"),
    disk: list[str] = _DISK,
    repo_dir: Path = _REPO,
    cache_root: Path = _CACHE,
    lock_dir: Path = _LOCKS,
    engine_cfg: Path | None = _CFG,
    as_json: bool = _JSON,
) -> None:
    """updateCache REPO|ip /IMAGE.img PROTO [OPTS]: bring an image into the CACHE only."""
    ctx = _ctx(disk, repo_dir, cache_root, lock_dir, engine_cfg, "", True, as_json)
    try:
        if _repo_mode(repo) is Source.CACHE:
            raise FormatError("updateCache copies from a repository: give REPO or its IP")
        method = Method.parse(proto)
        request = DeployRequest(Operation.UPDATE_CACHE, image, method, **_sessions(method, opts))
        _run_session(ctx, request, f"update-cache {image}")
    except OgError as exc:
        _fail(ctx, exc)


def deploy_image_cmd(
    repo: str = typer.Argument(..., metavar="REPO|CACHE|ip"),
    image: str = typer.Argument(..., metavar="IMAGE"),
    disk_no: int = typer.Argument(..., metavar="DISK"),
    part: int = typer.Argument(..., metavar="PART"),
    proto: str = typer.Argument("UNICAST", metavar="[PROTO]"),
    opts: str = typer.Argument("", metavar="[OPTS]"),
    wizard: bool = typer.Option(False, "--wizard", help="Deploy wizard: never switch methods"),
    allow_fs_change: bool = typer.Option(False, "--allow-fs-change"),
    disk: list[str] = _DISK,
    repo_dir: Path = _REPO,
    cache_root: Path = _CACHE,
    lock_dir: Path = _LOCKS,
    engine_cfg: Path | None = _CFG,
    hostname: str = _HOST,
    grub: bool = _GRUB,
    server: str = typer.Option(
        "", "--server", help="OpenGnSys server configureOs points OGAgent at (ogagent.cfg)"
    ),
    as_json: bool = _JSON,
) -> None:
    """deployImage REPO|CACHE|ip IMAGE DISK PART [PROTO [OPTS]]: updateCache + restore + configureOs."""
    ctx = _ctx(disk, repo_dir, cache_root, lock_dir, engine_cfg, hostname, grub, as_json)
    ctx.machine.server = server
    try:
        method = Method.parse(proto)
        source = _repo_mode(repo)
        # deployImage CACHE restores from the cache whatever the protocol, then configureOs
        op = (
            Operation.DEPLOY_WIZARD
            if wizard and source is Source.REPO
            else Operation.RESTORE_COMMAND
        )
        request = DeployRequest(
            op,
            image,
            method,
            disk_no,
            part,
            source=source,
            allow_fs_change=allow_fs_change,
            postconf=True,
            **_sessions(method, opts),
        )
        _run_session(ctx, request, f"deploy {image}")
    except OgError as exc:
        _fail(ctx, exc)


COMMANDS: dict[str, Callable[..., None]] = {
    "create-image": create_image_cmd,
    "restore-image": restore_image_cmd,
    "update-cache": update_cache_cmd,
    "deploy-image": deploy_image_cmd,
    "create-disk": create_disk_cmd,
    "restore-disk": restore_disk_cmd,
}


def register(target: typer.Typer) -> None:
    """Add the imaging commands to ``target`` (the main ``ogref`` app)."""
    for name, fn in COMMANDS.items():
        target.command(name)(fn)
    try:  # the chunked format needs the lab extra (pyfastcdc, blake3, zstandard)
        from ogref.runtime.chunked.cli import app as image_app
    except ImportError:
        return
    target.add_typer(image_app, name="image")


register(app)


def main() -> None:
    """Run the imaging commands alone (``python -m ogref.runtime.cli``)."""
    try:
        app()
    except OgError as exc:  # pragma: no cover - commands report their own
        _err.print(f"error {exc}")
        sys.exit(int(exc.code))


if __name__ == "__main__":
    main()

__all__ = ["COMMANDS", "OgErr", "app", "register"]
