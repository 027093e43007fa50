"""MULTICAST receive with udpcast's ``udp-receiver``: into the CACHE file, or as the source of a
streamed restore (MULTICAST-DIRECT).

The command line follows OpenGnSys's ``ogMcastSyntax``: ``--portbase``, ``--mcast-rdv-address``
set to the repository when it is in another subnet, ``--start-timeout`` (MCASTERRORSESSION) and
``--receive-timeout`` (MCASTWAIT); plus ``--nokbd``, the interface and — an ogLab fix
(docs/deviations.md) — the sender's ``--ttl``: with udpcast's default TTL 1 a receiver rendezvous
by broadcast and never hears the sender's hellos on 224.0.0.1, so one that starts before the
sender never connects.  Before receiving, the
client asks the repository's control API to start the sender (no port probing).  The receiver's
exit status is always checked; a timeout wraps it so a lost session cannot hang the client.
``udp-receiver`` exits 0 with nothing received when its rendezvous (unicast to the repository
across subnets) worked but the multicast data never arrived — a session that did not reach this
computer, reported as such (60), not as a truncated image; and one that fails without ever
having been accepted by the sender (a session already running takes no late receiver) is a
join failure too (60).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Interface, ip_address
from pathlib import Path
from typing import Any

from ogref.errors import MulticastReceiveFileError, ProtocolJoinMasterError
from ogref.model.protocol import MulticastSession
from ogref.transports.repository import RepositoryControl

_CHUNK = 1 << 20
NO_DATA = (
    "udp-receiver ended with no data: it reached the sender, but the session's multicast never "
    "reached this computer (is multicast routed to its subnet?)"
)


@dataclass(frozen=True)
class ReceiverConfig:
    """How this client receives: its interface and address, the repository's address."""

    interface: str
    client_ip: str  # with prefix, e.g. 10.0.1.11/24
    repo_ip: str
    start_timeout: int = 120
    receive_timeout: int = 30
    ttl: int = 16  # the sender's --ttl (OpenGnSys sendFileMcast)

    def same_subnet(self) -> bool:
        return ip_address(self.repo_ip) in IPv4Interface(self.client_ip).network


def receiver_argv(cfg: ReceiverConfig, session: MulticastSession, file: Path | None) -> list[str]:
    """``udp-receiver`` as ``ogMcastReceiverFile`` / ``ogMcastReceiverPartition`` run it."""
    argv = [
        "udp-receiver",
        "--nokbd",
        "--interface",
        cfg.interface,
        "--portbase",
        str(session.port),
    ]
    if not cfg.same_subnet():
        argv += ["--mcast-rdv-address", cfg.repo_ip]
    if cfg.ttl > 1:
        argv += ["--ttl", str(cfg.ttl)]
    if cfg.start_timeout:
        argv += ["--start-timeout", str(cfg.start_timeout)]
    if cfg.receive_timeout:
        argv += ["--receive-timeout", str(cfg.receive_timeout)]
    if file is not None:
        argv += ["--file", str(file)]
    return argv


def _failure(code: int, err: str) -> MulticastReceiveFileError | ProtocolJoinMasterError:
    """``udp-receiver`` failed: never having been accepted by the sender ("Connected as #N"
    never printed — a session already running, or none) is a join failure (60), anything
    later a receive failure."""
    tail = err.strip()[-300:]
    if "Connected as" not in err:
        return ProtocolJoinMasterError(
            f"udp-receiver never joined the session (exit {code}; a session already running "
            f"takes no late receiver): {tail}"
        )
    return MulticastReceiveFileError(f"udp-receiver exited {code}: {tail}")


def request_sender(
    control: RepositoryControl, image: str, session: MulticastSession, client: str = ""
) -> str:
    """Ask the repository to run (or confirm it runs) the sender of ``image`` for ``session``."""
    del client  # the capability token names the computer
    return control.start(image, session)


def _bound(cfg: ReceiverConfig) -> float:
    return float(cfg.start_timeout + cfg.receive_timeout + 3600)


def receive_file(
    cfg: ReceiverConfig,
    session: MulticastSession,
    dest: Path,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Receive into ``dest``; bytes received (MulticastReceiveFileError 57 on failure).
    ``progress`` is told the file's size every 0.2 s while ``udp-receiver`` writes it."""
    argv = receiver_argv(cfg, session, dest)
    errfile = tempfile.TemporaryFile(prefix="ogref-udp-receiver-")  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            ["timeout", str(int(_bound(cfg))), *argv], stdout=subprocess.DEVNULL, stderr=errfile
        )
    except OSError as exc:
        errfile.close()
        raise MulticastReceiveFileError(f"udp-receiver: {exc}") from None
    try:
        while True:
            try:
                code = proc.wait(0.2)
                break
            except subprocess.TimeoutExpired:
                if progress is not None and dest.exists():
                    progress(dest.stat().st_size)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        errfile.seek(0)
        err = errfile.read().decode("utf-8", "replace")
        errfile.close()
    if code:
        raise _failure(code, err)
    size = dest.stat().st_size if dest.exists() else 0
    if not size:
        raise ProtocolJoinMasterError(NO_DATA)
    if progress is not None:
        progress(size)
    return size


def receiver_source(
    cfg: ReceiverConfig, session: MulticastSession
) -> Callable[[Callable[[bytes], Any], Any], int]:
    """A stream source (see :mod:`ogref.transports.stream`) reading ``udp-receiver``'s stdout."""

    def source(write: Callable[[bytes], Any], md5: Any) -> int:
        errfile = tempfile.TemporaryFile(prefix="ogref-udp-receiver-")  # noqa: SIM115
        proc = subprocess.Popen(
            ["timeout", str(int(_bound(cfg))), *receiver_argv(cfg, session, None)],
            stdout=subprocess.PIPE,
            stderr=errfile,
        )
        assert proc.stdout is not None
        moved = 0
        try:
            while True:
                chunk = proc.stdout.read(_CHUNK)
                if not chunk:
                    break
                md5.update(chunk)
                write(chunk)
                moved += len(chunk)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        code = proc.wait()
        errfile.seek(0)
        err = errfile.read().decode("utf-8", "replace")
        errfile.close()
        if code:
            raise _failure(code, err)
        if not moved:
            raise ProtocolJoinMasterError(NO_DATA)
        return moved

    return source
