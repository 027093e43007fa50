"""The repository's control API: what OpenGnSys's ``ogAdmRepoAux`` on TCP 2009 does, signed.

OpenGnSys clients probe the sender's UDP port with nmap and send an unauthenticated
``START_MULTICAST`` line; here a client POSTs ``/multicast/start`` with the image and session,
signed with the lab key (HMAC, see :mod:`ogref.transports.signing`), and the answer says whether
the sender was started or already runs.  ``/multicast/status`` lists senders.  Run it as
``python -m ogref.repo.control --images DIR --listen IP:PORT --key-file K``.  It serves files to
nobody: images travel by SMB, multicast and BitTorrent.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from socketserver import ThreadingMixIn  # noqa: F401 - documents the threading server
from typing import Any

from ogref.model.protocol import MulticastSession
from ogref.repo.sender import SenderOptions, Senders
from ogref.runtime.imagefile import ImageStore
from ogref.transports.signing import make_handler, read_key

CONTROL_PORT = 2009


def routes(senders: Senders) -> dict[str, Any]:
    """The API's routes."""

    def start(body: dict[str, Any]) -> dict[str, Any]:
        session = MulticastSession.parse(str(body["session"]))
        state = senders.start(str(body["image"]), session, str(body.get("client", "")))
        return {"state": state, "port": session.port}

    def status(_body: dict[str, Any]) -> dict[str, Any]:
        return senders.status()

    return {"/multicast/start": start, "/multicast/status": status}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ogref.repo.control")
    p.add_argument("--images", required=True, type=Path)
    p.add_argument("--listen", required=True, help="IP:PORT")
    p.add_argument("--key-file", required=True, type=Path)
    p.add_argument("--log-dir", type=Path, default=Path("/tmp"))
    p.add_argument("--interface", default="eth0")
    p.add_argument("--fec", default="8x8/128")
    p.add_argument("--pid-file", type=Path, help="append each sender's PID here")
    a = p.parse_args(argv)
    host, port = a.listen.rsplit(":", 1)
    senders = Senders(
        ImageStore(a.images), a.log_dir, SenderOptions(interface=a.interface, fec=a.fec), a.pid_file
    )
    server = ThreadingHTTPServer(
        (host, int(port)), make_handler(read_key(a.key_file), routes(senders))
    )
    server.daemon_threads = True

    def stop(_sig: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"control API on {a.listen}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        senders.stop_all()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
