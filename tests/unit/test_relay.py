"""The host-side relay to a lab service's UNIX socket (ogsim.lab.relay): bytes go both ways, a
long-lived connection streams, finished connections are let go, close() stops it all."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ogsim.lab.relay import Relay


@pytest.fixture
def echo(tmp_path: Path) -> Iterator[Path]:
    """A UNIX-socket server that answers each line with the line upper-cased."""
    path = tmp_path / "svc.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data.upper())

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield path
    server.close()


def _recv(s: socket.socket, n: int) -> bytes:
    got = b""
    while len(got) < n:
        chunk = s.recv(n - len(got))
        if not chunk:
            break
        got += chunk
    return got


def test_the_relay_pipes_both_ways_and_lets_connections_go(echo: Path) -> None:
    relay = Relay(echo)
    try:
        assert relay.url == f"http://127.0.0.1:{relay.port}" and relay.port > 0
        big = b"x" * 300_000  # more than one recv: streamed, not one message
        with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as c:
            c.sendall(b"hello\n")
            assert _recv(c, 6) == b"HELLO\n"
            c.sendall(big)
            assert _recv(c, len(big)) == big.upper()
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as c:
                c.sendall(b"a")
                assert _recv(c, 1) == b"A"
        deadline = time.monotonic() + 5
        while relay._open and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not relay._open  # ended connections are not kept
    finally:
        relay.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", relay.port), timeout=2).close()


def test_the_relay_closes_a_connection_when_the_service_is_gone(tmp_path: Path) -> None:
    relay = Relay(tmp_path / "nobody.sock")
    try:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as c:
            c.settimeout(5)
            assert c.recv(1) == b""  # closed at once, not left hanging
    finally:
        relay.close()


def test_a_port_in_use_is_an_error(echo: Path) -> None:
    first = Relay(echo)
    try:
        with pytest.raises(OSError):
            Relay(echo, port=first.port)
    finally:
        first.close()
