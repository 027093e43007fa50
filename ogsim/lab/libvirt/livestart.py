"""The live client's start-up inside a VM: fetch this computer's parameters, start the agent.

Runs on the VM's Debian ``/usr/bin/python3`` from the per-run overlay (standard library only).
Like a PXE-booted ogLive, it takes its parameters from the kernel command line: ``oglab.config=
URL`` names this computer's configuration on the lab's boot server (JSON: name, disk, the
service and the key it signs with, the repository's address and control API, this computer's
own private key and the SMB reader account).  It
writes the secrets to root-only files under ``/run/oglab`` and replaces itself with
``python3 -m ogref.agent`` — the same agent the netns lab runs.  It decides and runs nothing else.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

RUN = Path("/run/oglab")


def cmdline_arg(key: str, cmdline: str) -> str:
    """``key=value`` from a kernel command line ('' when absent)."""
    for item in cmdline.split():
        if item.startswith(key + "="):
            return item.split("=", 1)[1]
    return ""


def fetch(url: str, attempts: int = 30) -> dict[str, Any]:
    """The JSON at ``url``, retried while the network settles."""
    for i in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=20) as r:
                data: dict[str, Any] = json.loads(r.read())
                return data
        except (OSError, ValueError) as exc:
            print(f"LIVECLIENT: config {url}: {exc} (attempt {i + 1})", flush=True)
            time.sleep(2)
    raise SystemExit(f"no configuration at {url}")


def _secret(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def agent_argv(cfg: dict[str, Any], run: Path = RUN) -> list[str]:
    """The agent's command line for ``cfg`` (secrets written under ``run``)."""
    run.mkdir(parents=True, exist_ok=True)
    key = _secret(run / "agent.pem", str(cfg["private_key_pem"]))
    cred = _secret(run / "smb.cred", f"{cfg['smb_user']}\n{cfg['smb_password']}\n")
    argv = [
        "/usr/bin/python3",
        "-u",
        "-m",
        "ogref.agent",
        "--name",
        str(cfg["name"]),
        "--ip",
        str(cfg["ip"]),
        "--repo-ip",
        str(cfg["repo_ip"]),
        "--smb-cred",
        str(cred),
        "--key-file",
        str(key),
        "--control",
        str(cfg["control"]),
        "--service",
        str(cfg["service"]),
        "--server-public",
        str(cfg["server_public"]),
        "--work",
        str(run / "work"),
        "--torrent-stall",
        str(cfg.get("torrent_stall", 60)),
        "--grub",
    ]
    if cfg.get("efi_signed") is False:
        argv.append("--efi-unsigned")
    for number, device in sorted(dict(cfg.get("disks", {"1": "/dev/vda"})).items()):
        argv += ["--disk", f"{number}={device}"]
    return argv


def main() -> None:
    url = cmdline_arg("oglab.config", Path("/proc/cmdline").read_text())
    if not url:
        raise SystemExit("no oglab.config= on the kernel command line")
    cfg = fetch(url)
    argv = agent_argv(cfg)
    print(f"LIVECLIENT: AGENT {cfg['name']} service={cfg['service']}", flush=True)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
