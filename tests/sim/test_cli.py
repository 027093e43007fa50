"""The ogsim CLI: exit codes, results.json, reports."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ogsim.cli import ExitCode, app
from ogsim.results import RESULTS_SCHEMA_PATH, Results, results_schema_text

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "scenarios" / "seed-35pc-torrent-cache.yaml"
runner = CliRunner()


def test_run_writes_results_json_and_passes(tmp_path: Path) -> None:
    res = runner.invoke(app, ["run", str(SEED), "--out", str(tmp_path), "-q"])
    assert res.exit_code == ExitCode.OK, res.output
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["schema_version"] == 1 and data["backend"] == "sim"
    results = Results.read(tmp_path / "results.json")
    pc35 = next(c for c in results.operations[0].computers if c.name == "pc35")
    assert pc35.method_requested == "TORRENT-CACHE" and pc35.method_used == "UNICAST-DIRECT"
    assert pc35.phases and pc35.log and pc35.code == 0


def test_libvirt_refuses_a_classroom_beyond_its_scale(tmp_path: Path) -> None:
    """35 VMs do not fit the VM lab (or, as non-root, it is unavailable): a backend error."""
    res = runner.invoke(app, ["run", str(SEED), "--backend", "libvirt", "--out", str(tmp_path)])
    assert res.exit_code == ExitCode.BACKEND_ERROR
    assert "at most" in res.output or "needs root" in res.output


def test_bad_scenario_is_a_usage_error_naming_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SEED.read_text().replace("rate: 1Gbit", "rate: 1 lightyear"))
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == ExitCode.USAGE_ERROR
    assert "classrooms.0.defaults.hw.link.rate" in res.output


def test_failed_expectation_exits_1_with_a_diff(tmp_path: Path) -> None:
    sc = tmp_path / "tight.yaml"
    sc.write_text(SEED.read_text().replace("makespan_below: 30min", "makespan_below: 1min"))
    res = runner.invoke(app, ["run", str(sc), "--out", str(tmp_path)])
    assert res.exit_code == ExitCode.EXPECTATIONS_FAILED
    assert "FAIL" in res.output and "expected" in res.output


def test_report_draws_figures_and_summaries(tmp_path: Path) -> None:
    runner.invoke(app, ["run", str(SEED), "--out", str(tmp_path / "run"), "-q"])
    res = runner.invoke(
        app, ["report", str(tmp_path / "run" / "results.json"), "--dir", str(tmp_path / "reports")]
    )
    assert res.exit_code == 0, res.output
    where = tmp_path / "reports" / "seed-35pc-torrent-cache" / "sim-35"
    for name in ("timeline.svg", "cdf.svg", "links.svg", "summary.md", "summary.html"):
        assert (where / name).stat().st_size > 0
    md = (where / "summary.md").read_text()
    assert "| TORRENT-CACHE | 33 | 33 |" in md and "pc35" in md


def test_results_schema_is_up_to_date() -> None:
    assert RESULTS_SCHEMA_PATH.read_text() == results_schema_text(), "run `ogsim schema`"
