"""Samba ``smbd`` in the repository namespace serving the ``ogimages`` share.

Two accounts with passwords generated per lab (no default password anywhere): ``opengnsys``
(clients, read-only, OpenGnSys's user mode) and ``ogadmin`` (write access, used only to store a
new image — OpenGnSys's admin mode).  Samba accounts must map to Unix users, so they map to the
existing ``nobody`` (in the share's ``read list``) and ``root`` (``write list``) through a
username map; nothing is added to ``/etc/passwd``.  Files are accessed as root (``force user``),
so the run directory may sit under a private temporary directory.  All of Samba's state lives in the run directory; the on-demand RPC helpers are
off (no ``samba-dcerpcd`` escaping to PID 1).  The process is recorded in the manifest.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ogsim.lab.cgroup import joined
from ogsim.lab.manifest import Manifest
from ogsim.lab.netns.topology import Host, TopologyError, sh

READER = "opengnsys"
WRITER = "ogadmin"


@dataclass(frozen=True)
class SambaAccounts:
    """The generated credentials and where clients find them (root-only files)."""

    reader_password: str
    writer_password: str
    reader_file: Path
    writer_file: Path


def _conf(base: Path, share: Path, ip: str) -> str:
    return f"""[global]
  workgroup = OGLAB
  server role = standalone server
  security = user
  map to guest = Never
  username map = {base}/users.map
  pid directory = {base}/run
  lock directory = {base}/lock
  state directory = {base}/state
  cache directory = {base}/cache
  private dir = {base}/private
  ncalrpc dir = {base}/ncalrpc
  binddns dir = {base}/private/bind-dns
  passdb backend = tdbsam:{base}/private/passdb.tdb
  log file = {base}/log.%m
  log level = 1
  smb ports = 445
  disable netbios = yes
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
  rpc start on demand helpers = no
  server min protocol = SMB2_02
  server signing = mandatory
  bind interfaces only = yes
  interfaces = {ip}
[ogimages]
  path = {share}
  read only = no
  read list = nobody
  write list = root
  valid users = nobody root
  force user = root
  locking = no
  create mask = 0644
"""


def start_smbd(manifest: Manifest, repo: Host, share: Path, base: Path) -> SambaAccounts:
    """Configure and start smbd for ``share`` in ``repo``'s namespace; wait until it listens."""
    for d in ("run", "lock", "state", "cache", "private", "ncalrpc"):
        (base / d).mkdir(parents=True, exist_ok=True)
    (base / "private").chmod(0o700)
    (base / "users.map").write_text(f"nobody = {READER}\nroot = {WRITER}\n")
    conf = base / "smb.conf"
    conf.write_text(_conf(base, share, repo.ip))
    accounts = SambaAccounts(
        secrets.token_urlsafe(18),
        secrets.token_urlsafe(18),
        base / "reader.cred",
        base / "writer.cred",
    )
    for unix, pw in (("nobody", accounts.reader_password), ("root", accounts.writer_password)):
        subprocess.run(
            ["smbpasswd", "-c", str(conf), "-s", "-a", unix],
            input=f"{pw}\n{pw}\n",
            text=True,
            capture_output=True,
            check=True,
            timeout=30,
        )
    for path, user, pw in (
        (accounts.reader_file, READER, accounts.reader_password),
        (accounts.writer_file, WRITER, accounts.writer_password),
    ):
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(f"{user}\n{pw}\n")
    log = open(base / "smbd.out", "wb")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        joined(
            repo.exec_argv(
                ["smbd", "--foreground", "--no-process-group", "--debug-stdout", "-s", str(conf)]
            ),
            manifest.cgroup,
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    manifest.record_process("smbd", proc, netns=repo.netns)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if f"{repo.address}:445" in sh(["ip", "netns", "exec", repo.netns, "ss", "-ltnH"]):
            return accounts
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise TopologyError(f"smbd did not start (exit {proc.poll()}): see {base}/smbd.out")
