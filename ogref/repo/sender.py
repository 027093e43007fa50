"""udpcast ``udp-sender`` with OpenGnSys's ``sendFileMcast`` options, one per multicast port.

Defaults as OpenGnSys: ``--retries-until-drop 65``, FEC ``8x8/128``, ``--ttl 16``, the session's
duplex mode, max bitrate, min receivers (``--min-receivers`` is udpcast's name for OpenGnSys's
``--min-clients``) and max wait; plus ``--rexmit-hello-interval 500``, which fixes udpcast's
rendezvous race measured on this machine.  ``Senders`` starts at most one sender per port — a
second request for the same image and port is answered "running", for another image "busy" —
and reaps finished ones.  A start is answered only once the sender listens on its control port
(``portbase + 1``), so a receiver started on that answer cannot say hello to nobody (a
receiver whose first connect request is lost never connects when it cannot hear the sender's
announcements, as across subnets).  It parses no network requests (that is
:mod:`ogref.repo.control`).
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ogref.errors import MulticastSendFileError, NotFoundError
from ogref.model.protocol import Duplex, MulticastSession
from ogref.runtime.chunked import transfer
from ogref.runtime.imagefile import ImageStore


@dataclass(frozen=True)
class SenderOptions:
    """Repository-wide sender settings."""

    interface: str = "eth0"
    fec: str = "8x8/128"
    ttl: int = 16
    retries_until_drop: int = 65
    rexmit_hello_ms: int = 500
    timeout: float = 3600.0
    ready_timeout: float = 5.0


def sender_argv(
    session: MulticastSession, file: Path | None, opts: SenderOptions, log: Path
) -> list[str]:
    """The ``udp-sender`` command line of ``sendFileMcast`` for ``session`` (``file`` None:
    the stream comes on stdin, as a MASTER's partclone stream does)."""
    argv = [
        "udp-sender",
        "--nokbd",
        "--retries-until-drop",
        str(opts.retries_until_drop),
        "--portbase",
        str(session.port),
    ]
    if session.duplex is Duplex.BROADCAST:
        argv.append("--broadcast")
    else:
        argv += [f"--{session.duplex}", "--mcast-data-address", session.address]
    argv += ["--interface", opts.interface]
    if opts.fec and opts.fec != "none":
        argv += ["--fec", opts.fec]
    argv += [
        "--max-bitrate",
        f"{session.rate_mbit}m",
        "--ttl",
        str(opts.ttl),
        "--min-receivers",
        str(session.nclients),
        "--max-wait",
        str(session.max_wait),
        "--rexmit-hello-interval",
        str(opts.rexmit_hello_ms),
        "--log",
        str(log),
    ]
    if file is not None:
        argv += ["--file", str(file)]
    return argv


def udp_port_bound(port: int, tables: tuple[Path, ...]) -> bool:
    """Whether a UDP socket listed in ``tables`` (``/proc/<pid>/net/udp``, ``udp6``) is bound
    to ``port``."""
    want = f":{port:04X}"
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        if any(line.split()[1].endswith(want) for line in lines if len(line.split()) > 1):
            return True
    return False


def wait_until_listening(
    proc: subprocess.Popen[bytes],
    port: int,
    timeout: float,
    *,
    bound: Callable[[int], bool] | None = None,
) -> bool:
    """Wait (at most ``timeout`` s) until ``port`` is bound in ``proc``'s network namespace
    (read from ``/proc/<pid>/net``, so the caller may live elsewhere); False if ``proc``
    exited or the time ran out."""
    if bound is None:
        net = Path(f"/proc/{proc.pid}/net")
        tables = (net / "udp", net / "udp6")

        def bound(p: int) -> bool:
            return udp_port_bound(p, tables)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bound(port):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


@dataclass
class Running:
    """A sender process and what it sends."""

    image: str
    session: MulticastSession
    proc: subprocess.Popen[bytes]
    started: float
    requests: list[str] = field(default_factory=list)


class Senders:
    """The multicast senders of one repository."""

    def __init__(
        self,
        store: ImageStore,
        log_dir: Path,
        opts: SenderOptions | None = None,
        pid_file: Path | None = None,
    ) -> None:
        self.store = store
        self.log_dir = log_dir
        self.opts = opts or SenderOptions()
        self.pid_file = pid_file
        self.running: dict[int, Running] = {}
        self.history: list[dict[str, object]] = []
        self._lock = threading.Lock()

    def _reap(self) -> None:
        for port, r in list(self.running.items()):
            code = r.proc.poll()
            if code is not None:
                self.history.append(
                    {
                        "image": r.image,
                        "port": port,
                        "code": code,
                        "seconds": round(time.monotonic() - r.started, 3),
                        "clients": len(set(r.requests)),
                    }
                )
                del self.running[port]

    def start(self, image: str, session: MulticastSession, client: str = "") -> str:
        """Start the sender of ``image`` on ``session``'s port unless it runs: started/running."""
        files = self.store.files(image)
        source = files.img
        if not files.img.is_file():
            # a chunked image: its pack of every chunk (made once per manifest version)
            pack = transfer.ensure_pack(self.store, image)
            if pack is None:
                raise NotFoundError(f"image {image} not in the repository")
            source = pack
        with self._lock:
            self._reap()
            current = self.running.get(session.port)
            if current is not None:
                if current.image != image:
                    raise MulticastSendFileError(
                        f"port {session.port} is busy sending {current.image}"
                    )
                current.requests.append(client)
                return "running"
            self.log_dir.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            log = self.log_dir / f"ogAdmRepoMcast.{stamp}.{session.port}"
            argv = sender_argv(session, source, self.opts, log)
            out = open(f"{log}.out", "wb")  # noqa: SIM115 - owned by the child
            proc = subprocess.Popen(
                ["timeout", str(int(self.opts.timeout)), *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            out.close()
            if self.pid_file is not None:
                with self.pid_file.open("a") as f:
                    f.write(f"{proc.pid}\n")
            self.running[session.port] = Running(image, session, proc, time.monotonic(), [client])
            if not wait_until_listening(proc, session.port + 1, self.opts.ready_timeout):
                code = proc.poll()
                if code is not None:
                    self._reap()
                    raise MulticastSendFileError(
                        f"udp-sender exited {code} before listening: see {log}.out"
                    )
            return "started"

    def status(self) -> dict[str, object]:
        """Running senders and finished ones with their exit codes."""
        with self._lock:
            self._reap()
            return {
                "running": [
                    {"port": p, "image": r.image, "session": str(r.session)}
                    for p, r in self.running.items()
                ],
                "finished": list(self.history),
            }

    def stop_all(self) -> None:
        """Stop every sender (service shutdown)."""
        with self._lock:
            for r in self.running.values():
                if r.proc.poll() is None:
                    r.proc.terminate()
            for r in self.running.values():
                try:
                    r.proc.wait(5)
                except subprocess.TimeoutExpired:
                    r.proc.kill()
                    r.proc.wait()
