"""The host probe on this machine's real kernel, and a refused run from the command line.

The probe *tries* each feature in a throwaway namespace; here its answers are checked against
independent evidence (``/proc`` and the kernel's own config), and the probe must leave nothing.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ogsim.lab.capabilities import ASSUME_MISSING_ENV, probe

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]


def _kernel_config() -> dict[str, str]:
    try:
        text = gzip.decompress(Path("/proc/config.gz").read_bytes()).decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            out[line[2:].split()[0]] = "n"
    return out


def _state() -> tuple[str, str]:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return netns, "\n".join(sorted(line.split(":")[1] for line in links.splitlines()))


def test_probe_agrees_with_the_kernel_and_leaves_nothing() -> None:
    from ogsim.lab import capabilities

    before = _state()
    capabilities._probe_cached.cache_clear()
    caps = probe()
    assert _state() == before, "the probe left a namespace or a link behind"
    # multicast routing: the probe opens an MRT_INIT socket; /proc lists the VIF table only
    # when the kernel has it
    assert caps.present["multicast_routing"] == Path("/proc/net/ip_mr_vif").exists()
    config = _kernel_config()
    if not config:
        pytest.skip("no /proc/config.gz: the rest has nothing independent to compare with")
    for cap, option in (
        ("netem", "CONFIG_NET_SCH_NETEM"),
        ("tbf", "CONFIG_NET_SCH_TBF"),
        ("multicast_relay", "CONFIG_NFT_DUP_NETDEV"),
        ("igmp_snooping", "CONFIG_BRIDGE_IGMP_SNOOPING"),
    ):
        if config.get(option) in ("y", "n"):  # a module ("m") may or may not be loadable
            assert caps.present[cap] == (config[option] == "y"), (cap, option)


def test_a_scenario_the_host_cannot_run_is_refused_before_anything_exists(
    tmp_path: Path,
) -> None:
    before = _state()
    out = tmp_path / "out"
    env = {**os.environ, ASSUME_MISSING_ENV: "multicast_routing,multicast_relay"}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ogsim"), "run", str(ROOT / "scenarios/s14-multicast-two-subnets.yaml"),
         "--backend", "netns", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=90, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 5, done.stdout + done.stderr
    text = " ".join(done.stderr.split())
    assert "refused" in text and "CONFIG_IP_MROUTE" in text and "CONFIG_NFT_DUP_NETDEV" in text
    assert "Traceback" not in done.stderr
    assert not out.exists(), "a refused run created its output directory"
    assert _state() == before
