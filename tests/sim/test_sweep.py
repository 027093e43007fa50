"""``ogsim sweep``: the multicast session rate is an option (default: ogref's classroom session
rate, as the seed's), and a sweep draws its comparison figure next to its results; ``ogsim
report`` takes directories of results.json files too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ogref.model import MulticastSession
from ogref.site import load_site
from ogsim.cli import ExitCode, app
from ogsim.sweep import DEFAULT_MCAST_RATE, Grid

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
TINY = ("--n", "2", "--image", "64MiB", "--cluster", "inprocess")


def sweep(tmp_path: Path, *args: str) -> list[dict]:
    res = runner.invoke(app, ["sweep", *TINY, "--out", str(tmp_path), *args])
    assert res.exit_code == 0, res.output
    return [json.loads(p.read_text()) for p in sorted(tmp_path.rglob("results.json"))]


def test_default_mcast_rate_is_the_classroom_session_rate_of_ogref_and_the_seed() -> None:
    seed = load_site(ROOT / "labs" / "seed-aula-35.yaml")
    assert f"{MulticastSession().rate_mbit}M" == DEFAULT_MCAST_RATE
    assert {room.multicast.rate_mbit for room in seed.classrooms} == {MulticastSession().rate_mbit}
    assert Grid.parse("2", "MULTICAST-DIRECT", "0%", "1GiB", "1Gbit").mcast_mbit == 70


def test_mcast_rate_sets_the_multicast_session(tmp_path: Path) -> None:
    slow = sweep(tmp_path / "slow", "--methods", "MULTICAST-DIRECT", "--mcast-rate", "20Mbit")
    fast = sweep(tmp_path / "fast", "--methods", "MULTICAST-DIRECT", "--mcast-rate", "400M")
    (s,), (f,) = slow, fast
    assert s["metrics"]["makespan_s"] >= 64 * 2**20 * 8 / 20e6  # 64 MiB at 20 Mbit/s
    assert f["metrics"]["makespan_s"] < s["metrics"]["makespan_s"] / 4


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("1000M", "--mcast-rate: "),
        ("0M", "--mcast-rate: "),
        ("70.5M", "--mcast-rate: "),
        ("fast", "--mcast-rate: not a rate"),
    ],
)
def test_bad_mcast_rate_is_a_usage_error(value: str, says: str, tmp_path: Path) -> None:
    res = runner.invoke(app, ["sweep", *TINY, "--out", str(tmp_path), "--mcast-rate", value])
    assert res.exit_code == ExitCode.USAGE_ERROR, res.output
    assert says in " ".join(res.output.split())
    assert not list(tmp_path.rglob("results.json"))


def test_sweep_draws_a_comparison_figure_into_its_output_dir(tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [
            "sweep",
            "--n",
            "1,2",
            "--methods",
            "UNICAST-DIRECT,MULTICAST-DIRECT",
            "--image",
            "64MiB",
            "--cluster",
            "inprocess",
            "--out",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    figure = tmp_path / "scaling.svg"
    assert figure.is_file() and "<svg" in figure.read_text()
    assert "UNICAST-DIRECT" in figure.read_text() and "MULTICAST-DIRECT" in figure.read_text()
    assert "scaling.svg" in res.output


def test_report_takes_a_directory_of_results(tmp_path: Path) -> None:
    sweep(tmp_path / "runs", "--methods", "UNICAST-DIRECT,TORRENT-CACHE")
    res = runner.invoke(app, ["report", str(tmp_path / "runs"), "--dir", str(tmp_path / "rep")])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "rep").rglob("summary.md"))) == 2
    assert (tmp_path / "rep" / "scaling" / "scaling.svg").is_file()


def test_report_of_a_directory_without_results_is_a_usage_error(tmp_path: Path) -> None:
    res = runner.invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == ExitCode.USAGE_ERROR
    assert "no results.json" in res.output
