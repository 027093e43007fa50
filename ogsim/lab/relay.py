"""A TCP relay on the host to a lab service's UNIX console socket: the labs' service listens only
inside the lab (its namespace's or bridge's addresses) and on a UNIX socket in the run
directory; a browser on the host opens ``http://127.0.0.1:PORT`` and each connection is piped,
byte for byte, to that socket (HTTP, htmx and the server-sent events alike).  One thread per
direction per connection; everything is closed by :meth:`Relay.close`.  Used by ``ogsim course
--backend netns`` and by the netns browser tests.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path


class Relay:
    """``host:port`` (127.0.0.1, a free port when 0) → the UNIX socket ``target``."""

    def __init__(self, target: Path, port: int = 0, host: str = "127.0.0.1") -> None:
        self.target = str(target)
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.server.bind((host, port))
        except OSError:
            self.server.close()
            raise
        self.server.listen(64)
        self.port = int(self.server.getsockname()[1])
        self.url = f"http://{host}:{self.port}"
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:  # closed
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:  # the service is gone: the browser sees the connection close
                for s in (client, upstream):
                    s.close()
                continue
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._open |= {client, upstream}
            ended = [0]  # directions of this connection that have ended
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b, ended), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, ended: list[int]) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
        with self._lock:
            ended[0] += 1
            if ended[0] < 2 or self._closed:
                return
            self._open -= {src, dst}  # both directions done: a long course does not pile up
        src.close()
        dst.close()

    def close(self) -> None:
        """Stop listening and close every connection (again: nothing)."""
        with self._lock:
            self._closed = True
            open_, self._open = self._open, set()
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        for s in open_:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
