"""tools/install-deps.sh removes the policy-rc.d it created on every exit, and only that one.

apt-get, dpkg-query and id are stubs put first on PATH; the policy file is moved into a temporary
directory with OGLAB_POLICY_RC, so nothing here touches /usr/sbin or installs anything.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "install-deps.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(0o755)


def _run(tmp_path: Path, install_status: int) -> tuple[subprocess.CompletedProcess[str], Path]:
    # never run a script that would write the real /usr/sbin/policy-rc.d
    assert "OGLAB_POLICY_RC" in SCRIPT.read_text(), "the policy file path is not overridable"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    _stub(bin_dir, "id", "echo 0")  # "root"
    _stub(bin_dir, "dpkg-query", "exit 1")  # every package missing
    _stub(bin_dir, "apt-get", f'[ "$1" = update ] && exit 0; exit {install_status}')
    policy = tmp_path / "policy-rc.d"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "OGLAB_POLICY_RC": str(policy),
    }
    done = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return done, policy


def test_policy_file_is_removed_when_apt_get_fails(tmp_path: Path) -> None:
    done, policy = _run(tmp_path, install_status=100)
    assert done.returncode != 0, done.stdout + done.stderr
    assert "deps: installing" in done.stdout
    assert not policy.exists()


def test_policy_file_is_removed_after_success(tmp_path: Path) -> None:
    done, policy = _run(tmp_path, install_status=0)
    assert done.returncode == 0 and "deps: done" in done.stdout, done.stderr
    assert not policy.exists()


def test_a_policy_file_it_did_not_create_is_kept(tmp_path: Path) -> None:
    policy = tmp_path / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 0\n# the admin's own\n", encoding="utf-8")
    done, _ = _run(tmp_path, install_status=100)
    assert done.returncode != 0
    assert policy.read_text(encoding="utf-8").endswith("# the admin's own\n")


def test_the_environment_variable_is_for_tests_only() -> None:
    """Without OGLAB_POLICY_RC the script still guards the real path."""
    text = SCRIPT.read_text(encoding="utf-8")
    assert "${OGLAB_POLICY_RC:-/usr/sbin/policy-rc.d}" in text
