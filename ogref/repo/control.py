"""The repository's control API: what OpenGnSys's ``ogAdmRepoAux`` on TCP 2009 does — start the
multicast sender of an image — but only for a computer the console service sent to it.

OpenGnSys clients probe the sender's UDP port with nmap and send an unauthenticated
``START_MULTICAST`` line.  Here a client POSTs ``/api/v1/multicast/start`` with the image and the
session, and a *capability token* in ``Authorization: Bearer …``: issued by the service with the
command, signed with the service's key, naming that computer, image, session and operation, and
short-lived (:func:`ogref.service.keys.check_token`).  The repository keeps no database and no
shared secret: it checks the token with the service's public key.  The answer says whether the
sender was started or already runs; ``GET /api/v1/multicast`` lists senders (for the lab's logs).
Run it as ``python -m ogref.repo.control --images DIR --listen IP:PORT --server-public HEX``.  It
serves files to nobody: images travel by SMB, multicast and BitTorrent.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, Field

from ogref import logs
from ogref.errors import NotFoundError, OgError
from ogref.model.protocol import MulticastSession
from ogref.repo.sender import SenderOptions, Senders
from ogref.runtime.imagefile import ImageStore
from ogref.service.keys import AuthError, check_token, parse_public_key

if TYPE_CHECKING:  # chunkcast needs the lab extras (blake3, zstandard): imported when run
    from ogref.transports.chunkcast.engine import ChunkcastSenders

log = logging.getLogger("ogref.repo")

CONTROL_PORT = 2009


class StartIn(BaseModel):
    image: str = Field(min_length=1, max_length=255)
    session: str = Field(min_length=1, max_length=128)
    protocol: Literal["udpcast", "chunkcast"] = "udpcast"


def create_app(
    senders: Senders, server_public: bytes, chunkcast: ChunkcastSenders | None = None
) -> FastAPI:
    """The control API over ``senders``, trusting tokens signed by ``server_public``;
    ``chunkcast`` serves the sessions asked for with ``"protocol": "chunkcast"`` (the answer
    then carries the session key: docs/chunkcast.md)."""
    app = FastAPI(title="ogLab repository control", version="1")

    @app.post("/api/v1/multicast/start")
    def start(data: StartIn, authorization: Annotated[str, Header()] = "") -> dict[str, Any]:
        if not authorization.lower().startswith("bearer "):
            raise HTTPException(401, "a capability token from the console service is needed")
        try:
            claims = check_token(server_public, authorization[7:].strip())
        except AuthError as exc:
            raise HTTPException(401, str(exc)) from None
        if claims.get("image") != data.image or claims.get("session") != data.session:
            raise HTTPException(403, "the token is for another image or session")
        try:
            session = MulticastSession.parse(data.session)
            if data.protocol == "chunkcast":
                if chunkcast is None:
                    raise HTTPException(501, "this repository runs no chunkcast senders")
                state, key = chunkcast.start(data.image, session, str(claims.get("computer", "")))
                return {"state": state, "port": session.port, "key": key}
            state = senders.start(data.image, session, str(claims.get("computer", "")))
        except NotFoundError as exc:
            raise HTTPException(404, exc.message) from None
        except OgError as exc:
            raise HTTPException(409, exc.message) from None
        return {"state": state, "port": session.port}

    @app.get("/api/v1/multicast")
    def status() -> dict[str, Any]:
        return senders.status()

    return app


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    p = argparse.ArgumentParser(prog="python -m ogref.repo.control")
    p.add_argument("--images", required=True, type=Path)
    p.add_argument("--listen", required=True, help="IP:PORT")
    p.add_argument("--server-public", required=True, help="the console service's public key (hex)")
    p.add_argument("--log-dir", type=Path, default=Path("/tmp"))
    p.add_argument("--interface", default="eth0")
    p.add_argument("--fec", default="8x8/128")
    p.add_argument("--pid-file", type=Path, help="append each sender's PID here")
    a = p.parse_args(argv)
    logs.configure()
    host, port = a.listen.rsplit(":", 1)
    senders = Senders(
        ImageStore(a.images), a.log_dir, SenderOptions(interface=a.interface, fec=a.fec), a.pid_file
    )
    from ogref.transports.chunkcast.engine import ChunkcastSenders

    chunkcast = ChunkcastSenders(ImageStore(a.images), a.log_dir, interface_ip=host,
                                 pid_file=a.pid_file)  # fmt: skip
    app = create_app(senders, parse_public_key(a.server_public), chunkcast)
    log.info("control API on %s", a.listen)
    try:
        uvicorn.run(app, host=host, port=int(port), log_level="warning", lifespan="off")
    finally:
        senders.stop_all()
        chunkcast.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
