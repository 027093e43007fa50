"""The client agent — our ogLive: takes commands from the server, runs the decision core through
the runtime executor with the network transports, reports its status and streams its tracking log.

One process per client.  ``--once REQUEST.json`` runs a single request and prints the result as
JSON (tests, debugging); otherwise it polls the server's signed API: ``/agent/heartbeat`` every
second with its status (OPG waiting, BSY busy), ``/agent/poll`` for the next command,
``/agent/log`` with tracking-log lines as they come, ``/agent/done`` with the per-computer
record; ``reboot`` / ``poweroff`` (outside any operation) flush the log, sync and restart or
stop the machine it runs on — only meaningful in a live client (the VM lab), never in a
namespace.  ``--grub`` lets configureOs install GRUB (a real disk; the namespace lab's loop
devices have no use for it).  Requests and results are plain JSON (:func:`request_to_json`,
:func:`request_from_json`); the engine.cfg policy travels as engine.cfg text.  It decides nothing the core does not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ogref.core.deploy import DeployRequest, Operation
from ogref.core.events import FetchToCache, Source, TransferFailed, TransferFinished
from ogref.errors import OgErr, OgError
from ogref.model import ClientStatus, EngineConfig, Method, MulticastSession, TorrentSession
from ogref.runtime.executor import Machine
from ogref.transports.executor import NetworkExecutor, NetworkSetup
from ogref.transports.signing import ApiError, SignedClient, read_key
from ogref.transports.smb import SmbCredentials

Json = dict[str, Any]


def request_to_json(req: DeployRequest) -> Json:
    """A DeployRequest as plain JSON."""
    return {
        "operation": str(req.operation),
        "image": req.image,
        "method": str(req.method),
        "disk": req.disk,
        "partition": req.partition,
        "source": str(req.source),
        "multicast": str(req.multicast) if req.multicast else None,
        "torrent": str(req.torrent),
        "allow_fs_change": req.allow_fs_change,
        "postconf": req.postconf,
    }


def request_from_json(d: Json) -> DeployRequest:
    """The inverse of :func:`request_to_json`."""
    return DeployRequest(
        operation=Operation(d["operation"]),
        image=d["image"],
        method=Method.parse(d["method"]),
        disk=int(d.get("disk", 1)),
        partition=int(d.get("partition", 1)),
        source=Source(d.get("source", "REPO")),
        multicast=MulticastSession.parse(d["multicast"]) if d.get("multicast") else None,
        torrent=TorrentSession.parse(d.get("torrent") or "peer:60"),
        allow_fs_change=bool(d.get("allow_fs_change", False)),
        postconf=bool(d.get("postconf", True)),
    )


class StartDelayExecutor(NetworkExecutor):
    """The network executor honouring the engine's ``STARTDELAY`` (random sleep before a
    multicast or torrent updateCache): the one policy the simulator also draws from."""

    sleep = staticmethod(time.sleep)

    def _fetch(self, cmd: FetchToCache) -> TransferFinished | TransferFailed:
        delay = self.policy.start_delay.draw(str(cmd.transport), random.randint)
        if delay > 0:
            t0 = self.net.clock()
            self.log(f"random start delay: {delay:.0f} s before the {cmd.transport} updateCache")
            self.sleep(delay)
            self._phase("wait", t0, detail="random start delay")
        return super()._fetch(cmd)


class Agent:
    """The live client of one computer."""

    def __init__(self, a: argparse.Namespace) -> None:
        self.name: str = a.name
        self.ip: str = a.ip
        self.work: Path = a.work
        self.disks = {int(k): v for k, v in (d.split("=", 1) for d in a.disk)}
        key = read_key(a.key_file)
        self.server = SignedClient(a.server, key) if a.server else None
        self.control = SignedClient(a.control, key)
        self.smb = SmbCredentials.from_file(a.repo_ip, a.smb_cred)
        self.status = ClientStatus.OPG
        self.pending: list[Json] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.torrent_stall: float = a.torrent_stall
        self.grub: bool = a.grub

    def log(self, text: str) -> None:
        """A tracking-log line: stdout (the screen) and the server."""
        line = {"t": time.time(), "text": text}
        print(f"[{self.name}] {text}", flush=True)
        with self.lock:
            self.pending.append(line)

    def execute(self, cmd: Json) -> Json:
        """Run one command to its end; the per-computer record."""
        req = request_from_json(cmd["request"])
        policy = EngineConfig.from_text(cmd.get("engine", ""), source="server")
        machine = Machine(
            disks=self.disks,
            repository=self.work / "repo-mirror",
            cache_root=self.work / "cache",
            lock_dir=self.work / "lock",
            hostname=self.name,
            grub=self.grub,
        )
        for d in (machine.repository, machine.cache_root, machine.lock_dir):
            d.mkdir(parents=True, exist_ok=True)
        net = NetworkSetup(
            self.smb,
            self.control,
            "eth0",
            self.ip,
            torrent_stall=self.torrent_stall,
            clock=time.time,
        )
        ex = StartDelayExecutor(machine, net, log=self.log)
        started = time.time()
        try:
            fin = ex.run(req, policy)
            out: Json = {
                "code": int(fin.code),
                "message": fin.message,
                "method_used": str(fin.method_used) if fin.method_used else None,
                "reasons": list(fin.reasons),
            }
        except OgError as exc:
            out = {
                "code": int(exc.code),
                "message": exc.message,
                "method_used": None,
                "reasons": [],
            }
        except Exception as exc:  # the agent survives and reports
            out = {
                "code": int(OgErr.GENERIC),
                "message": f"{type(exc).__name__}: {exc}",
                "method_used": None,
                "reasons": [],
            }
        self.log(f"finished: code {out['code']}: {out['message']}")
        out.update(
            requested=str(req.method),
            switched=bool(
                ex.commands and any(type(c).__name__ == "MethodSwitched" for c in ex.commands)
            ),
            bytes_moved=ex.bytes_moved,
            checksum_verified=ex.verified,
            phases=[asdict(p) for p in net.phases],
            started=started,
            finished=time.time(),
        )
        return out

    # ------------------------------------------------------------------ server mode

    def _flush_log(self) -> None:
        with self.lock:
            lines, self.pending = self.pending, []
        if lines and self.server is not None:
            try:
                self.server.post("/agent/log", {"name": self.name, "lines": lines})
            except ApiError:
                with self.lock:
                    self.pending = lines + self.pending

    def _heartbeat(self) -> None:
        assert self.server is not None
        while not self.stop.wait(1.0):
            with contextlib.suppress(ApiError):
                self.server.post(
                    "/agent/heartbeat",
                    {"name": self.name, "ip": self.ip, "status": str(self.status)},
                )
            self._flush_log()

    def _power(self, kind: str) -> None:
        """Restart or stop this machine (the live client's own reboot / poweroff)."""
        self.log(f"{kind} requested by the server")
        self.status = ClientStatus.OFF
        self._flush_log()
        with contextlib.suppress(ApiError):
            assert self.server is not None
            self.server.post(
                "/agent/heartbeat", {"name": self.name, "ip": self.ip, "status": "OFF"}
            )
        os.sync()
        subprocess.run([kind, "-f"], check=False)
        self.stop.set()

    def serve(self) -> int:
        """Poll the server for commands until told to stop (or killed)."""
        assert self.server is not None
        threading.Thread(target=self._heartbeat, daemon=True).start()
        self.log(f"ogLive ready ({self.ip}), status {self.status}")
        while not self.stop.is_set():
            try:
                answer = self.server.post(
                    "/agent/poll",
                    {"name": self.name, "ip": self.ip, "status": str(self.status)},
                    timeout=10,
                )
            except ApiError:
                time.sleep(0.5)
                continue
            cmd = answer.get("command")
            if not cmd:
                continue
            if cmd.get("kind") == "halt":
                self.status = ClientStatus.OFF
                self.stop.set()
                break
            if cmd.get("kind") in ("reboot", "poweroff"):
                self._power(str(cmd["kind"]))
                continue
            self.status = ClientStatus.BSY
            result = self.execute(cmd)
            self._flush_log()
            self.status = ClientStatus.OPG
            for _ in range(30):
                try:
                    self.server.post(
                        "/agent/done", {"name": self.name, "id": cmd["id"], "result": result}
                    )
                    break
                except ApiError:
                    time.sleep(1)
        self._flush_log()
        return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ogref.agent")
    p.add_argument("--name", required=True)
    p.add_argument("--ip", required=True, help="address with prefix, e.g. 10.0.1.11/24")
    p.add_argument("--disk", action="append", default=[], help="N=/dev/loopX")
    p.add_argument("--repo-ip", required=True)
    p.add_argument("--smb-cred", required=True, type=Path)
    p.add_argument("--key-file", required=True, type=Path)
    p.add_argument("--control", required=True, help="http://repo:2009")
    p.add_argument("--server", help="http://server:2008")
    p.add_argument("--work", required=True, type=Path)
    p.add_argument("--torrent-stall", type=float, default=120.0)
    p.add_argument("--grub", action="store_true", help="configureOs installs GRUB")
    p.add_argument("--once", type=Path, help="run this command JSON and print the result")
    a = p.parse_args(argv)
    a.work.mkdir(parents=True, exist_ok=True)
    agent = Agent(a)
    if a.once:
        cmd = json.loads(a.once.read_text())
        result = agent.execute(cmd)
        print("RESULT " + json.dumps(result), flush=True)
        return 0 if result["code"] == 0 else 1
    return agent.serve()


if __name__ == "__main__":
    sys.exit(main())
