"""chunkcast in the engine: the thin hook between OpenGnSys's MULTICAST and this protocol.

Selected by ``MCASTPROTOCOL=CHUNKCAST`` (engine.cfg, or a site file's ``engine:``; default
``UDPCAST``, OpenGnSys's behaviour unchanged).  With it, a MULTICAST-DIRECT restore of an image
that the repository also holds as a chunked image (``NAME.manifest.json``, e.g. after
``ogref image convert NAME --to chunked``) goes by chunkcast; an image without a manifest goes by
udpcast as before (logged).  MULTICAST-CACHE (updateCache into the CACHE) of a chunked image goes
by chunkcast too (:func:`fetch_to_cache`): the receiver puts each verified chunk's frame into the
CACHE's chunk store and asks only for the chunks the store lacks; the core's restore from the
CACHE follows as for any chunked updateCache.  MULTICAST-CACHE of a non-chunked image stays on
udpcast (the CACHE keeps its ``.img``, which chunks cannot rebuild).

- repository side (:class:`ChunkcastSenders`, used by :mod:`ogref.repo.control` when a client
  asks for ``"protocol": "chunkcast"``): one ``python -m ogref.transports.chunkcast send`` per
  session port, with a fresh random session key; the key is returned to each client whose
  capability token the control API accepted (the token names the computer, image and session);
- client side (:func:`request_session`, :func:`restore_direct`): ask the control API for the
  session (and its key), read the manifest from the repository share (SMB, authenticated),
  receive onto the partition with restoreImage's checks and safeguards;
- clone from a MASTER (:func:`cut_partition`, :func:`serve`, :func:`receive_clone`): the MASTER
  cuts its partition into a scratch chunk store (or serves a chunked image of its CACHE) in its
  own process and hands its fresh session key to the service with its "ready"; the targets get
  it in their commands and take the manifest from the session.

The session string's fields keep their meaning: port (data; requests on port + 1), group, rate
cap, ``nclients`` and ``maxwait`` (the first data waits for that many receivers or that many
seconds after the first request); MCASTERRORSESSION and MCASTWAIT are the receiver's start and
silence timeouts.  It decides nothing the core has not decided.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ogref.errors import MulticastSendFileError, NotFoundError
from ogref.model.protocol import MulticastSession
from ogref.runtime.chunked import image, manifest
from ogref.runtime.chunked.store import ChunkStore
from ogref.runtime.imagefile import ImageStore
from ogref.transports.chunkcast import runtime
from ogref.transports.chunkcast.sender import SenderConfig

PROTOCOL = "chunkcast"


@dataclass
class _Session:
    image: str
    session: MulticastSession
    key: str
    proc: subprocess.Popen[bytes]
    started: float
    clients: list[str] = field(default_factory=list)


class ChunkcastSenders:
    """The chunkcast senders of one repository (beside :class:`ogref.repo.sender.Senders`)."""

    def __init__(self, store: ImageStore, log_dir: Path, *, interface_ip: str = "0.0.0.0",
                 idle_end_s: float = 10.0, pid_file: Path | None = None) -> None:  # fmt: skip
        self.store = store
        self.pid_file = pid_file
        self.log_dir = log_dir
        self.interface_ip = interface_ip
        self.idle_end_s = idle_end_s
        self.running: dict[int, _Session] = {}
        self._lock = threading.Lock()

    def start(self, name: str, session: MulticastSession, client: str = "") -> tuple[str, str]:
        """Start (or join) the sender of chunked image ``name`` on ``session``'s port:
        (``started``/``running``, the session key in hex)."""
        if not image.exists(self.store, name):
            raise NotFoundError(f"image {name} has no chunked version in the repository")
        with self._lock:
            for port, s in list(self.running.items()):
                if s.proc.poll() is not None:
                    del self.running[port]
            current = self.running.get(session.port)
            if current is not None:
                if current.image != name:
                    raise MulticastSendFileError(
                        f"port {session.port} is busy sending {current.image}"
                    )
                current.clients.append(client)
                return "running", current.key
            self.log_dir.mkdir(parents=True, exist_ok=True)
            stamp = f"{time.strftime('%Y%m%d-%H%M%S')}.{session.port}"
            key = runtime.new_key()
            key_file = self.log_dir / f"chunkcast.{stamp}.key"
            key_file.touch(mode=0o600)
            key_file.write_text(key + "\n")
            ready = self.log_dir / f"chunkcast.{stamp}.ready"
            argv = [sys.executable, "-m", "ogref.transports.chunkcast", "send", str(self.store.root),
                    name, "--session", str(session), "--key-file", str(key_file),
                    "--interface-ip", self.interface_ip, "--idle-end", str(self.idle_end_s),
                    "--ready-file", str(ready),
                    "--stats", str(self.log_dir / f"chunkcast.{stamp}.json")]  # fmt: skip
            out = open(self.log_dir / f"chunkcast.{stamp}.out", "wb")  # noqa: SIM115 - the child's
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
            out.close()
            if self.pid_file is not None:  # the lab kills what it started by these PIDs
                with self.pid_file.open("a") as f:
                    f.write(f"{proc.pid}\n")
            self.running[session.port] = _Session(name, session, key, proc, time.monotonic(),
                                                  [client])  # fmt: skip
            deadline = time.monotonic() + 10
            while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if proc.poll() is not None:
                del self.running[session.port]
                raise MulticastSendFileError(f"chunkcast sender exited {proc.returncode}")
            return "started", key

    def stop_all(self) -> None:
        with self._lock:
            for s in self.running.values():
                if s.proc.poll() is None:
                    s.proc.terminate()
            for s in self.running.values():
                try:
                    s.proc.wait(5)
                except subprocess.TimeoutExpired:
                    s.proc.kill()
                    s.proc.wait()


def request_session(base_url: str, token: str | None, name: str, session: MulticastSession,
                    timeout: float = 30.0) -> bytes:  # fmt: skip
    """Ask the repository's control API for the chunkcast session of ``name``: its key."""
    import httpx

    from ogref.transports.repository import ControlError

    if not token:
        raise ControlError("no capability token for the repository in this command")
    try:
        reply = httpx.post(
            f"{base_url.rstrip('/')}/api/v1/multicast/start",
            json={"image": name, "session": str(session), "protocol": PROTOCOL},
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise ControlError(f"repository control API unreachable: {exc}") from None
    if reply.status_code != 200:
        raise ControlError(f"repository refused the chunkcast session: {reply.text[:300]}")
    return bytes.fromhex(str(reply.json()["key"]))


def restore_direct(
    *,
    key: bytes,
    manifest_bytes: bytes,
    session: MulticastSession,
    device: str,
    interface_ip: str,
    start_timeout: float,
    receive_timeout: float,
    lock_dir: Path,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """MULTICAST-DIRECT by chunkcast: the image's chunks onto partition ``device`` (checked as
    restoreImage checks it, wiped if anything fails); the receiver's statistics."""
    made = manifest.Manifest.from_json(manifest_bytes, "repository manifest")
    ep = runtime.Endpoint(session.address, session.port, interface_ip)
    opts = runtime.ReceiveOptions(start_timeout=float(start_timeout),
                                  receive_timeout=float(receive_timeout), lock_dir=lock_dir)  # fmt: skip
    res = runtime.receive(ep, key, Path(device), local_manifest=made, opts=opts)
    st = res.stats
    log(f"chunkcast: {st['written_bytes']} bytes written in {res.elapsed:.1f} s, "
        f"{st['duplicate_bytes']} duplicate, {st['forged']} forged and {st['bad_objects']} bad "
        f"dropped")  # fmt: skip
    return st


def fetch_to_cache(
    *,
    key: bytes,
    made: manifest.Manifest,
    session: MulticastSession,
    store: ChunkStore,
    interface_ip: str,
    start_timeout: float,
    receive_timeout: float,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """MULTICAST-CACHE by chunkcast: the chunks of image ``made`` that the CACHE's chunk
    ``store`` lacks, each checked against the manifest before it is stored; the receiver's
    statistics (``stored_objects``: chunks put into the store).  Installing the manifest is the
    caller's (after it has checked that nothing is missing)."""
    ep = runtime.Endpoint(session.address, session.port, interface_ip)
    opts = runtime.ReceiveOptions(start_timeout=float(start_timeout),
                                  receive_timeout=float(receive_timeout))  # fmt: skip
    res = runtime.receive(ep, key, store, local_manifest=made, opts=opts)
    st = res.stats
    log(f"chunkcast: {st['stored_objects']} chunks ({st['written_bytes']} bytes) stored in the "
        f"CACHE in {res.elapsed:.1f} s, {st['resumed_objects']} already there, "
        f"{st['duplicate_bytes']} duplicate, {st['forged']} forged and {st['bad_objects']} bad "
        f"dropped")  # fmt: skip
    return st


# ---------------------------------------------------------------------- clone from a MASTER


def sender_config(session: MulticastSession, idle_end_s: float = 10.0) -> SenderConfig:
    """A MASTER's sender knobs from OpenGnSys's session string (as ``chunkcast send`` maps
    them); it ends as soon as the session's client count has completed (its targets: the
    MASTER is then free for what comes next), else when idle."""
    return SenderConfig(rate_bps=session.rate_mbit * 1e6, idle_end_s=idle_end_s,
                        min_receivers=session.nclients, max_wait_s=float(session.max_wait),
                        done_end=session.nclients)  # fmt: skip


def cut_partition(device: str, scratch: Path, name: str, lock_dir: Path) -> manifest.Manifest:
    """A MASTER's partition cut into a chunked image ``name`` of the scratch directory
    ``scratch`` (partclone's used blocks; unmounted and locked while it is read, not checked:
    a clone streams the partition as it is)."""
    from ogref.runtime.chunked.create import create_chunked

    return create_chunked(
        device, ImageStore(scratch), name, lock_dir=lock_dir, check=False
    ).manifest


def serve(
    images: ImageStore,
    name: str,
    session: MulticastSession,
    key: bytes,
    *,
    interface_ip: str,
    on_ready: Callable[[], None],
    idle_end_s: float = 10.0,
    stats_path: Path | None = None,
) -> dict[str, Any]:
    """Serve chunked image ``name`` of ``images`` on ``session`` in this process (a MASTER):
    ``on_ready`` is called once the sender listens for requests; returns when the session ends
    (the sender's statistics; 56 if it could not send)."""
    ep = runtime.Endpoint(session.address, session.port, interface_ip)
    ready = Path(images.root) / f".chunkcast.{session.port}.ready"
    ready.unlink(missing_ok=True)
    done: list[runtime.SendResult] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            done.append(runtime.send(images, name, ep, key, sender_config(session, idle_end_s),
                                     stats_path=stats_path, ready=ready))  # fmt: skip
        except BaseException as exc:  # handed to the caller
            failed.append(exc)

    worker = threading.Thread(target=run, name="chunkcast-master", daemon=True)
    worker.start()
    while not ready.exists() and worker.is_alive():
        time.sleep(0.02)
    if ready.exists():
        on_ready()
    worker.join()
    ready.unlink(missing_ok=True)
    if failed:
        raise failed[0]
    return done[0].stats


def receive_clone(
    *,
    key: bytes,
    session: MulticastSession,
    device: str,
    interface_ip: str,
    start_timeout: float,
    receive_timeout: float,
    allow_fs_change: bool,
    lock_dir: Path,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """A clone target's side: the MASTER's chunks onto partition ``device``, the manifest
    fetched from the session (its digest is the authenticated announce's), restoreImage's
    checks and safeguards; the receiver's statistics and ``image`` (the manifest's digest)."""
    ep = runtime.Endpoint(session.address, session.port, interface_ip)
    opts = runtime.ReceiveOptions(start_timeout=float(start_timeout),
                                  receive_timeout=float(receive_timeout), lock_dir=lock_dir,
                                  allow_fs_change=allow_fs_change)  # fmt: skip
    res = runtime.receive(ep, key, Path(device), opts=opts)
    st = res.stats
    log(f"chunkcast: {st['written_bytes']} bytes written in {res.elapsed:.1f} s, "
        f"{st['duplicate_bytes']} duplicate, {st['forged']} forged and {st['bad_objects']} bad "
        f"dropped")  # fmt: skip
    return st
