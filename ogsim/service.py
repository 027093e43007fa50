"""The console service as a child process on loopback, for runs without a lab: ``python -m
ogref.service.main`` over a fresh state directory, the scenario's site imported, an admin API
token and the key agents pin written next to it, TCP for agents and consoles, a UNIX socket for
our own console calls.  Stopped by the PID it was started with.

It only starts and stops the real service; what the service does is :mod:`ogref.service`.  No
root: loopback TCP and a socket file in the state directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import yaml

from ogref.site import SiteSpec
from ogsim.lab.console import Console
from ogsim.scenario import Scenario


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the service binds it a moment later)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def site_document(scenario: Scenario) -> dict[str, Any]:
    """The site part of a scenario (what ``ogref serve --site`` imports)."""
    src = Path(scenario.source)
    if src.is_file():
        data = yaml.safe_load(src.read_text(encoding="utf-8"))
    else:
        data = scenario.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    keys = set(SiteSpec.model_fields)
    return {k: v for k, v in data.items() if k in keys}


class ServiceProcess:
    """``ogref.service.main`` serving ``site`` on ``host:port`` (see the module docstring)."""

    def __init__(
        self,
        state: Path,
        site: dict[str, Any],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        heartbeat_timeout: float = 15.0,
        command_timeout: float = 3600.0,
        log: IO[str] | None = None,
        course: Path | None = None,
        ogserver_listen: str = "",
    ) -> None:
        self.state = state
        self.ogserver_listen = ogserver_listen  # IP:PORT of ogServer's REST API, if any
        self.host = host
        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        state.mkdir(parents=True, exist_ok=True)
        self.site_file = state / "site.yaml"
        self.site_file.write_text(yaml.safe_dump(site), encoding="utf-8")
        self.token_file = state / "admin.token"
        self.public_file = state / "server.pub"
        self.socket = state / "console.sock"
        self._own_log = log is None
        self.log_file = log or (state / "service.log").open("w", encoding="utf-8")
        argv = [
            sys.executable, "-m", "ogref.service.main",
            "--state", str(state),
            "--site", str(self.site_file),
            "--listen", f"{host}:{self.port}",
            "--console", str(self.socket),
            "--admin-token-file", str(self.token_file),
            "--server-public-file", str(self.public_file),
            "--heartbeat-timeout", str(heartbeat_timeout),
            "--command-timeout", str(command_timeout),
        ]  # fmt: skip
        if course is not None:
            argv += ["--course", str(course)]
        if ogserver_listen:
            argv += ["--ogserver-listen", ogserver_listen]
        env = {
            **os.environ,
            "PYTHONPATH": _source_root() + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        self.proc = subprocess.Popen(
            argv, stdout=self.log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self.console: Console | None = None

    def wait_ready(self, timeout: float = 60.0) -> Console:
        """Block until the service answers on its console socket; its admin console."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the service exited ({self.proc.returncode}): see its log")
            if self.socket.exists() and self.token_file.exists():
                console = Console(self.socket, self.token_file.read_text().strip(), timeout=30)
                try:
                    console.server_public()
                    self.console = console
                    return console
                except Exception:  # not listening yet
                    console.close()
            time.sleep(0.05)
        raise RuntimeError(f"the service did not start within {timeout:.0f} s")

    @property
    def admin_token(self) -> str:
        return self.token_file.read_text().strip()

    @property
    def server_public(self) -> str:
        return self.public_file.read_text().strip()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the service flushes what it buffers), SIGKILL if it lingers."""
        if self.console is not None:
            self.console.close()
            self.console = None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self._own_log:
            self.log_file.close()


def _source_root() -> str:
    """The directory holding ``ogref`` (the child imports the same code as we do)."""
    import ogref

    return str(Path(ogref.__file__).resolve().parent.parent)
