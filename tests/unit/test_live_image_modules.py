"""The VM lab's live client carries every third-party module the agent imports.

``labs/live/build_live.py`` copies a list of packages from the venv into the live image; a module
the agent starts importing later (the chunked images' zstandard, blake3, pyfastcdc did) made the
live client stop at ``ModuleNotFoundError`` and every VM test time out.  This checks the list
against what ``python -m ogref.agent`` really imports, without building the image.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# from Debian packages in the image (python3-parted, python3-libtorrent), not from the venv
FROM_DEBIAN = {"parted", "_ped", "libtorrent"}


def _build_live() -> object:
    spec = importlib.util.spec_from_file_location("build_live", ROOT / "labs/live/build_live.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BLOCKER = """
import importlib.abc, sys, sysconfig
allowed = set(sys.argv[1].split(","))
site = sysconfig.get_paths()["purelib"]


class OnlyTheImage(importlib.abc.MetaPathFinder):
    # a module from the venv that the live image does not carry cannot be found, as there
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in allowed or top in sys.stdlib_module_names or top.startswith(("ogref", "ogsim")):
            return None
        for finder in sys.meta_path[1:]:
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if (spec.origin or "").startswith(site):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None
        return None


sys.meta_path.insert(0, OnlyTheImage())
import ogref.agent.live
"""


def test_the_live_image_carries_what_the_agent_imports() -> None:
    patterns = _build_live().VENV_MODULES  # type: ignore[attr-defined]
    listed = {p.split("*")[0].removesuffix(".py").rstrip("_") or p for p in patterns}
    listed |= {p.split("*")[0].removesuffix(".py") for p in patterns}
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER, ",".join(sorted(listed | FROM_DEBIAN))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, (
        "the agent imports a module the live image lacks: add it to VENV_MODULES in "
        f"labs/live/build_live.py\n{done.stderr[-800:]}"
    )
