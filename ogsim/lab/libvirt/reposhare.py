"""TEMPORARY stand-in for the repository's Samba share (``ogref/repo``, being built for the
netns lab) — the libvirt lab's UNICAST transport until that service lands.

Starts ``smbd`` in the foreground with a private configuration: bound to the lab bridge address
only, SMB2+, one read-only guest share ``ogimages`` over the repository directory, every state
directory inside the run directory.  The process is recorded in the manifest right after it
starts (PID + start time).  It creates no image and touches no system Samba configuration.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from ogsim.lab.manifest import Manifest

SHARE = "ogimages"


def start_share(manifest: Manifest, run_dir: Path, host_ip: str, repo: Path) -> str:
    """Serve ``repo`` as ``//host_ip/ogimages``; return that UNC path."""
    base = run_dir / "samba"
    for d in ("lock", "state", "cache", "pid", "private", "log"):
        (base / d).mkdir(parents=True, exist_ok=True)
    conf = base / "smb.conf"
    conf.write_text(
        f"""[global]
  interfaces = {host_ip}
  bind interfaces only = yes
  smb ports = 445
  disable netbios = yes
  server min protocol = SMB2
  map to guest = Bad User
  guest account = nobody
  load printers = no
  printcap name = /dev/null
  lock directory = {base}/lock
  state directory = {base}/state
  cache directory = {base}/cache
  pid directory = {base}/pid
  private dir = {base}/private
  ncalrpc dir = {base}/private/ncalrpc
  log file = {base}/log/smbd.log
  max log size = 1000

[{SHARE}]
  path = {repo}
  read only = yes
  guest ok = yes
  guest only = yes
"""
    )
    proc = subprocess.Popen(
        ["/usr/sbin/smbd", "--foreground", f"--configfile={conf}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # no --no-process-group: smbd calls setsid() itself, so when it stops and signals its
        # process group it does not signal ours
    )
    manifest.record_process("smbd", proc)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((host_ip, 445)) == 0:
                return f"//{host_ip}/{SHARE}"
        if proc.poll() is not None:
            raise RuntimeError(f"smbd exited with {proc.returncode}: see {base}/log/smbd.log")
        time.sleep(0.2)
    raise RuntimeError("smbd did not listen on 445")
