"""TEMPORARY stand-in for the live client agent (``ogref/agent.py``, being built for the netns
lab): runs inside the VM's live client until that agent lands, then goes away.

It reports the status (OPG waiting, BSY busy) and the tracking log to the stand-in server, polls
it for commands and runs them: ``setup`` (partition the blank disk: OS partition, optional CACHE),
``restore`` (mount the repository share over SMB and drive the real runtime's
:class:`~ogref.runtime.executor.Executor` — the decision core chooses and switches methods),
``reboot`` and ``poweroff``.  Standard library plus ogref only (it runs on Debian's python3 in the
initramfs).  It decides nothing about imaging.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import traceback
import urllib.request
from pathlib import Path
from typing import Any

REPO_MOUNT = Path("/opt/opengnsys/images")
DISK = "/dev/vda"


class Agent:
    """One live client talking to the stand-in server at ``url``."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url.rstrip("/")
        self.name = name

    def post(self, path: str, body: dict[str, Any]) -> Any:
        data = json.dumps({"name": self.name, **body}).encode()
        req = urllib.request.Request(
            self.url + path, data, {"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def status(self, code: str) -> None:
        self.post("/api/status", {"status": code})

    def log(self, text: str) -> None:
        print(f"AGENT: {text}", flush=True)
        with contextlib.suppress(OSError):
            self.post("/api/log", {"text": text})

    def next_command(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/api/command?name={self.name}", timeout=40) as r:
            return json.loads(r.read() or b"{}")

    # ------------------------------------------------------------------ commands

    def setup(self, cmd: dict[str, Any]) -> dict[str, Any]:
        from ogref.model.storage import Filesystem, TableKind
        from ogref.runtime import cachefs, disk, filesystem
        from ogref.runtime.loopdev import partition_path

        os_size = int(cmd["os_size"])
        disk.write_table(DISK, TableKind.MSDOS, [disk.PartSpec(os_size, Filesystem.EXT4)])
        filesystem.make(partition_path(DISK, 1), Filesystem.EXT4)
        self.log(f"disk {DISK}: partition 1 ({os_size >> 20} MiB, EXT4)")
        if int(cmd.get("cache_size", 0)):
            cachefs.init_cache(DISK, int(cmd["cache_size"]))
            self.log(f"disk {DISK}: CACHE partition 4 ({int(cmd['cache_size']) >> 20} MiB)")
        else:
            self.log(f"disk {DISK}: no CACHE partition")
        return {"code": 0, "message": "disk set up"}

    def mount_repo(self, share: str) -> None:
        if os.path.ismount(REPO_MOUNT):
            return
        REPO_MOUNT.mkdir(parents=True, exist_ok=True)
        subprocess.run(["modprobe", "cifs"], check=False, capture_output=True)
        r = subprocess.run(
            ["mount.cifs", share, str(REPO_MOUNT), "-o", "guest,ro,vers=3.0"],
            capture_output=True,
            text=True,
            check=False,
        )
        if r.returncode:
            raise RuntimeError(f"mount.cifs {share}: {r.stderr.strip() or r.returncode}")
        self.log(f"repository {share} mounted on {REPO_MOUNT}")

    def restore(self, cmd: dict[str, Any]) -> dict[str, Any]:
        from ogref.core.deploy import DeployRequest, Operation
        from ogref.model.method import Method
        from ogref.model.policy import EngineConfig
        from ogref.model.protocol import MulticastSession, TorrentSession
        from ogref.runtime.executor import Executor, Machine

        self.mount_repo(cmd["share"])
        method = Method.parse(cmd["method"])
        request = DeployRequest(
            Operation(cmd.get("operation", "restore")),
            cmd["image"],
            method,
            int(cmd.get("disk", 1)),
            int(cmd.get("partition", 1)),
            multicast=MulticastSession.parse(cmd["multicast"]) if cmd.get("multicast") else None,
            torrent=TorrentSession.parse(cmd.get("torrent") or "peer:60"),
        )
        policy = EngineConfig.from_text(cmd.get("engine_cfg", ""))
        machine = Machine({1: DISK}, repository=REPO_MOUNT, hostname=socket.gethostname())
        started = time.monotonic()
        finish = Executor(machine, log=self.log).run(request, policy)
        return {
            "code": int(finish.code),
            "message": finish.message,
            "method_used": str(finish.method_used) if finish.method_used else None,
            "reasons": list(finish.reasons),
            "seconds": round(time.monotonic() - started, 2),
        }

    def run(self) -> None:
        self.status("OPG")
        self.log("live client ready")
        while True:
            try:
                cmd = self.next_command()
            except OSError:
                time.sleep(1)
                continue
            kind = cmd.get("kind")
            if not kind:
                continue
            if kind in ("reboot", "poweroff"):
                self.log(f"{kind} requested")
                self.post("/api/result", {"id": cmd["id"], "code": 0, "message": kind})
                os.sync()
                subprocess.run([kind, "-f"], check=False)
                return
            self.status("BSY")
            try:
                result = self.setup(cmd) if kind == "setup" else self.restore(cmd)
            except Exception as exc:
                traceback.print_exc()
                result = {
                    "code": getattr(exc, "code", 1),
                    "message": f"{type(exc).__name__}: {exc}",
                }
            self.log(f"{kind} finished: code {result['code']} {result['message']}")
            self.post("/api/result", {"id": cmd["id"], **result})
            self.status("OPG")


def _cmdline_arg(key: str) -> str:
    for item in Path("/proc/cmdline").read_text().split():
        if item.startswith(key + "="):
            return item.split("=", 1)[1]
    return ""


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else _cmdline_arg("oglab.server")
    Agent(url, socket.gethostname()).run()


if __name__ == "__main__":
    main()
