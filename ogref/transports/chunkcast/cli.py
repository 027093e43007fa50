"""``python -m ogref.transports.chunkcast send|receive|keygen``: chunkcast's command line.

``send`` serves a chunked image of an image directory on an OpenGnSys session string (port,
group, rate cap, client count, max wait keep udp-sender's meaning: the first data waits for
that many receivers or that many seconds); ``receive`` writes the session's image onto a
partition or a file.  Both need the session key (``keygen`` makes one).  Prints one JSON object
(the transfer's statistics) and exits with the OpenGnSys error number.  Argument mapping only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from ogref.errors import OgError
from ogref.model.protocol import MulticastSession
from ogref.runtime.chunked import manifest
from ogref.runtime.imagefile import ImageStore
from ogref.transports.chunkcast import runtime
from ogref.transports.chunkcast.receiver import ReceiverConfig
from ogref.transports.chunkcast.sender import SenderConfig
from ogref.units import parse_rate, parse_size

app = typer.Typer(add_completion=False, no_args_is_help=True, help="chunkcast multicast")

_SESSION = typer.Option(..., "--session", help="port:duplex:group:rateM:nclients:maxwait")
_KEY = typer.Option(..., "--key-file", help="the session key (64 hex digits)")
_IFACE = typer.Option("0.0.0.0", "--interface-ip", help="this host's address on the session's net")
_TTL = typer.Option(16, "--ttl", help="multicast TTL (> 1 to cross the lab's router)")
_STATS = typer.Option(None, "--stats", help="also write the JSON statistics here")


def _run(fn: Callable[[], dict[str, Any]]) -> None:
    try:
        result = {"code": 0, **fn()}
    except OgError as exc:
        result = {"code": int(exc.code), "error": exc.code.name, "message": exc.message}
    print(json.dumps(result, default=runtime.jsonable))
    raise typer.Exit(int(result["code"]))


@app.command()
def keygen(path: Path = typer.Argument(..., help="file to write the new key to")) -> None:
    """Write a new random session key (mode 600)."""
    path.touch(mode=0o600)
    path.write_text(runtime.new_key() + "\n")


@app.command()
def send(
    directory: Path = typer.Argument(..., help="image directory (the repository)"),
    name: str = typer.Argument(..., help="chunked image name"),
    session: str = _SESSION,
    key_file: Path = _KEY,
    interface_ip: str = _IFACE,
    ttl: int = _TTL,
    rate: str = typer.Option("", "--rate", help="override the session's rate cap (e.g. 90Mbit)"),
    idle_end: float = typer.Option(10.0, "--idle-end", help="s without requests that end it"),
    start_timeout: float = typer.Option(300.0, "--start-timeout", help="s with no receiver"),
    stats: Path | None = _STATS,
    ready: Path | None = typer.Option(None, "--ready-file", help="written once listening"),
) -> None:
    """Serve a chunked image until nobody has asked for anything for --idle-end seconds."""

    def go() -> dict[str, Any]:
        s = MulticastSession.parse(session)
        cfg = SenderConfig(
            rate_bps=parse_rate(rate) if rate else s.rate_mbit * 1e6,
            idle_end_s=idle_end,
            start_timeout_s=start_timeout,
            min_receivers=s.nclients,
            max_wait_s=float(s.max_wait),
        )
        ep = runtime.Endpoint(s.address, s.port, interface_ip, ttl)
        key = runtime.load_key(key_file)
        res = runtime.send(ImageStore(directory), name, ep, key, cfg, stats_path=stats,
                           ready=ready)  # fmt: skip
        return res.stats

    _run(go)


@app.command()
def receive(
    target: Path = typer.Argument(..., help="partition (or file) to write the image onto"),
    session: str = _SESSION,
    key_file: Path = _KEY,
    interface_ip: str = _IFACE,
    ttl: int = _TTL,
    manifest_path: Path | None = typer.Option(
        None, "--manifest", help="the image's manifest (else fetched from the session)"
    ),
    resume: bool = typer.Option(False, "--resume", help="keep chunks the target already holds"),
    write_rate: str = typer.Option("", "--write-rate", help="throttle writes (e.g. 10MB/s)"),
    buffer: str = typer.Option("256MiB", "--buffer", help="held unwritten at most"),
    start_timeout: float = typer.Option(120.0, "--start-timeout"),
    receive_timeout: float = typer.Option(30.0, "--receive-timeout"),
    fallback_store: Path | None = typer.Option(
        None, "--fallback-store", help="chunk store to finish from by unicast"
    ),
    allow_fs_change: bool = typer.Option(False, "--allow-fs-change"),
    stats: Path | None = _STATS,
    ready: Path | None = typer.Option(None, "--ready-file", help="written once listening"),
) -> None:
    """Receive the session's image, verifying every chunk, and leave when complete."""

    def go() -> dict[str, Any]:
        s = MulticastSession.parse(session)
        opts = runtime.ReceiveOptions(
            start_timeout=start_timeout,
            receive_timeout=receive_timeout,
            resume=resume,
            write_rate=parse_rate(write_rate) / 8 if write_rate else 0.0,
            fallback_store=fallback_store,
            allow_fs_change=allow_fs_change,
            stats_path=stats,
            ready_path=ready,
            cfg=ReceiverConfig(buffer_bytes=parse_size(buffer)),
        )
        made = manifest.load(manifest_path) if manifest_path else None
        ep = runtime.Endpoint(s.address, s.port, interface_ip, ttl)
        res = runtime.receive(ep, runtime.load_key(key_file), target, local_manifest=made,
                              opts=opts)  # fmt: skip
        return res.stats

    _run(go)


def main() -> None:
    app()
