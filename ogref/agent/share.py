"""The repository share mounted read-write as the *writer* account (``smbnetfs``, FUSE) for a
createImage into REPO, with its free space as the share reports it.  It creates no image."""

import contextlib
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ogref.errors import (
    RepositoryError,
)
from ogref.runtime.imagefile import ImageStore
from ogref.transports.smb import SmbCredentials

Json = dict[str, Any]


def _share_free(creds: SmbCredentials, auth: Path) -> int:
    """Free bytes of the share, as its server reports them (``smbclient … -c du``)."""
    done = subprocess.run(
        ["smbclient", f"//{creds.server}/{creds.share}", "-A", str(auth), "-c", "du"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    m = re.search(r"(\d+) blocks of size (\d+)\. (\d+) blocks available", done.stdout)
    if done.returncode or m is None:
        raise RepositoryError(
            f"//{creds.server}/{creds.share}: cannot read its free space "
            f"({(done.stderr or done.stdout).strip()[-200:]})"
        )
    return int(m.group(2)) * int(m.group(3))


@contextlib.contextmanager
def admin_share(creds: SmbCredentials, work: Path) -> Iterator[ImageStore]:
    """The repository share mounted read-write (``smbnetfs``, FUSE) as the writer account.

    The mount lives in this process's mount namespace and is always unmounted; the helper
    runs in the foreground, in this process group (a killed agent takes it along)."""
    base = Path(tempfile.mkdtemp(prefix="admin-share-", dir=work))
    base.chmod(0o700)
    auth = base / "auth"
    conf = base / "smbnetfs.conf"
    auth.write_text(f"username = {creds.user}\npassword = {creds.password}\n")
    conf.write_text(f'auth "{creds.server}" "{creds.user}" "{creds.password}"\n')
    auth.chmod(0o600)
    conf.chmod(0o600)
    mnt = base / "mnt"
    mnt.mkdir()
    proc: subprocess.Popen[bytes] | None = None
    try:
        free = _share_free(creds, auth)
        opts = f"config={conf},smb_query_browsers=false,free_space_size={free // 4096}"
        with open(base / "smbnetfs.log", "wb") as log:
            proc = subprocess.Popen(
                ["smbnetfs", str(mnt), "-f", "-o", opts], stdout=log, stderr=subprocess.STDOUT
            )
        root = mnt / creds.server / creds.share
        deadline = time.monotonic() + 15
        while not root.is_dir():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RepositoryError(
                    f"cannot mount //{creds.server}/{creds.share} read-write "
                    f"(smbnetfs: {(base / 'smbnetfs.log').read_text(errors='replace')[-200:]})"
                )
            time.sleep(0.1)
        yield ImageStore(root)
    finally:
        if proc is not None:
            subprocess.run(["fusermount", "-u", str(mnt)], capture_output=True, check=False)
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(base, ignore_errors=True)
