"""Fuzz of scenario files and command lines (issue 11 §1): whatever the input, ``ogsim run --backend
sim``, ``ogsim sweep`` and ``ogref plan`` end with a message and a documented exit status — never a
traceback, never a hang.

Mutations come from :mod:`tests.unit.fuzzing` (the seed scenario with values of other types, odd
units, dropped/misspelt/duplicated keys, deep nesting, broken bytes).  Hypothesis runs
derandomized with a fixed number of examples (150 files, 80 and 50 command lines; the seed's
images at 5 % so that a valid mutant simulates quickly): the run is the same every time and
bounded in time.  Every CLI call runs in-process under an alarm (a hang fails the example).  Exit
status 70 — an internal error — is documented but is a bug, so the fuzz refuses it too.  A few
runs go through the real entry points in a subprocess.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from typer.testing import CliRunner

from ogref.cli import app as ogref_app
from ogref.errors import OgErr
from ogsim.cli import app as ogsim_app

from . import fuzzing

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()

OGSIM_RUN = {0, 1, 4}  # ok, expectations failed, usage or scenario error (3: no lab backend here)
OGSIM_SWEEP = {0, 4}
OGREF_PLAN = {int(c) for c in OgErr} - {70}  # OpenGnSys numbers; 70 would be an internal error
SECONDS = 20  # a single call taking longer is a hang


def fuzz_settings(examples: int) -> settings:
    return settings(
        derandomize=True,
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
        ],
    )


@pytest.fixture(autouse=True)
def _logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Internal-error logs go to a private directory, which must stay empty."""
    with tempfile.TemporaryDirectory() as state:
        monkeypatch.setenv("XDG_STATE_HOME", state)
        yield Path(state)
        assert not list(Path(state).rglob("*.log")), "an internal error was logged"


def call(app: Any, args: list[str], allowed: set[int]) -> None:
    """Run one CLI call in-process and check how it ended."""

    def hung(*_: Any) -> None:
        raise TimeoutError(f"hang: {args} still running after {SECONDS} s")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(SECONDS)
    try:
        res = runner.invoke(app, args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise AssertionError(f"{args}: uncaught {res.exception!r}") from res.exception
    assert fuzzing.one_line_error(res.output), f"{args}: traceback in the output\n{res.output}"
    assert res.exit_code in allowed, f"{args}: exit status {res.exit_code}\n{res.output}"
    if res.exit_code in (1, 4) and "results:" not in res.output:
        assert res.output.strip(), f"{args}: failed without a message"


@fuzz_settings(150)
@given(raw=fuzzing.scenarios, run=fuzzing.run_args, plan=fuzzing.plan_args)
def test_fuzz_scenario_files(raw: bytes, run: list[str], plan: list[str]) -> None:
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "scenario.yaml"
        f.write_bytes(raw)
        call(ogsim_app, ["run", str(f), "--out", str(Path(d) / "out"), *run], OGSIM_RUN)
        call(ogref_app, ["plan", str(f), *plan], OGREF_PLAN)


@fuzz_settings(80)
@given(plan=fuzzing.plan_args)
def test_fuzz_ogref_plan_options(plan: list[str]) -> None:
    call(ogref_app, ["plan", str(fuzzing.SEED), *plan], OGREF_PLAN)


@fuzz_settings(40)
@given(args=fuzzing.sweep_args)
def test_fuzz_sweep_options(args: list[str]) -> None:
    # in this process (no Dask cluster to start), so that the alarm can stop a hang
    with tempfile.TemporaryDirectory() as d:
        call(ogsim_app, ["sweep", "--out", d, "--cluster", "inprocess", *args], OGSIM_SWEEP)


# --------------------------------------------------------------------------- real entry points


def _entry(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_STATE_HOME=str(tmp_path / "state"))
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_entry_points_end_with_a_message_and_a_status(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(fuzzing.render(fuzzing.mutate([("set", ("seed",), {"a": [1]})]), "none", 0))
    done = _entry(
        f"import sys; sys.argv=['ogsim','run',{str(bad)!r}]\nfrom ogsim.cli import main; main()",
        tmp_path,
    )
    assert done.returncode == 4 and "seed" in done.stderr and "Traceback" not in done.stderr
    done = _entry(
        f"import sys; sys.argv=['ogref','plan',{str(fuzzing.SEED)!r},'--disk','0']\n"
        "from ogref.cli import main; main()",
        tmp_path,
    )
    assert done.returncode == 1 and "--disk" in done.stderr and "Traceback" not in done.stderr


def test_entry_point_internal_error_is_70_with_the_traceback_in_a_log(tmp_path: Path) -> None:
    code = (
        f"import sys; sys.argv=['ogsim','run',{str(fuzzing.SEED)!r}]\n"
        "import ogsim.cli as cli\n"
        "def boom(*a, **k): raise ZeroDivisionError('injected')\n"
        "cli.run_scenario = boom\n"
        "cli.main()\n"
    )
    done = _entry(code, tmp_path)
    assert done.returncode == 70 and "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if "internal error" in x]
    (log,) = list((tmp_path / "state" / "oglab").glob("ogsim-*.log"))
    assert str(log) in line and "ZeroDivisionError: injected" in log.read_text()
