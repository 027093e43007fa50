"""The images the lab boots and restores: the cached live client (``labs/live/build_live.py``),
the per-run overlay initramfs with the ogref code and the agent, and the cached test OS image
(``labs/live/build_testos.py``).

The overlay is a second cpio that the kernel unpacks over the base one: ``/opt/oglab/ogref``
(this checkout's code, whose ``ogref.agent`` is the live client's agent), the start-up launcher
(:mod:`ogsim.lab.libvirt.livestart`: parameters from the kernel command line and the boot
server) and ``/opt/oglab/live-start`` which the base ``/init`` runs.  It carries no secret.
It is rebuilt every run (about a second) so the VMs always run the code under test; the base
image is rebuilt only when its inputs change.  Builds only; boots nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
LABS = ROOT / "labs" / "live"
DEFAULT_CACHE = Path("/var/cache/oglab")
SYSTEM_PYTHON = "/usr/bin/python3"

LIVE_START = """#!/bin/sh
# ogLab live-start: this computer's parameters (oglab.config= on the kernel command line), then
# the agent (ogref.agent), as a PXE-booted ogLive does
export PYTHONPATH=/opt/oglab PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/python3 -u /opt/oglab/oglab_livestart.py
"""


@dataclass(frozen=True)
class LiveImage:
    """The live client's boot files."""

    kernel: Path
    base: Path
    overlay: Path
    info: dict[str, Any]


def _json_of(argv: list[str]) -> dict[str, Any]:
    r = subprocess.run(argv, capture_output=True, text=True, check=False)
    if r.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed: {r.stderr.strip()[-2000:]}")
    return json.loads(r.stdout)


def build_overlay(out: Path) -> Path:
    """The per-run cpio: ogref, the agent, live-start.  Written to ``out``."""
    sys.path.insert(0, str(LABS))
    import cpio  # type: ignore[import-not-found]

    with tempfile.TemporaryDirectory(prefix="oglab-overlay-") as tmp:
        root = Path(tmp)
        dest = root / "opt/oglab"
        dest.mkdir(parents=True)
        shutil.copytree(
            ROOT / "ogref",
            dest / "ogref",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        shutil.copy2(Path(__file__).with_name("livestart.py"), dest / "oglab_livestart.py")
        start = dest / "live-start"
        start.write_text(LIVE_START)
        start.chmod(0o755)
        for p in [root, *root.rglob("*")]:
            if not p.is_symlink():
                p.chmod(0o755 if p.is_dir() or p == start else 0o644)
        with out.open("wb") as f:
            proc = subprocess.Popen(["gzip", "-6n"], stdin=subprocess.PIPE, stdout=f)
            assert proc.stdin is not None
            cpio.write_tree(root, proc.stdin, 0)
            proc.stdin.close()
            proc.wait()
    out.chmod(0o644)
    return out


def live_image(run_dir: Path, cache: Path = DEFAULT_CACHE) -> LiveImage:
    """Build (or reuse) the base live client and build this run's overlay."""
    info = _json_of([SYSTEM_PYTHON, str(LABS / "build_live.py"), "--cache", str(cache)])
    overlay = build_overlay(run_dir / "oglab-overlay.cpio.gz")
    return LiveImage(Path(info["kernel"]), Path(info["initrd"]), overlay, info)


def test_os(
    cache: Path = DEFAULT_CACHE, name: str = "testos", payload_mib: int = 56
) -> dict[str, Any]:
    """Build (or reuse) the test OS image; returns its description (``repo``, ``image``…)."""
    argv = [sys.executable, str(LABS / "build_testos.py"), "--cache", str(cache)]
    return _json_of([*argv, "--name", name, "--payload", str(payload_mib)])
