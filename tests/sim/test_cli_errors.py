"""Bad command lines and bad scenarios (issue 11 §1, §3): a one-line message and a documented exit
status, never a traceback or a hang; internal errors are told apart (70, traceback in a log file).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from ogref.cli import app as ogref_app
from ogsim.cli import ExitCode
from ogsim.cli import app as ogsim_app

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "scenarios" / "seed-35pc-torrent-cache.yaml"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Internal-error logs go to the test's directory."""
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    yield state


def invoke(app: Any, args: list[str], seconds: int = 60) -> Result:
    """Run a CLI in-process; a hang fails the test instead of blocking the suite."""

    def hung(*_: Any) -> None:
        raise TimeoutError(f"{args} still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        res = runner.invoke(app, args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output, res.output
    return res


def scenario(tmp_path: Path, mutate: Any, name: str = "bad.yaml") -> Path:
    """The seed mutated, images at 5 % on the simulator (a run takes a fraction of a second)."""
    data = yaml.safe_load(SEED.read_text(encoding="utf-8"))
    data["backends"]["sim"] = {"scale": 0.05}
    mutate(data)
    f = tmp_path / name
    f.write_text(yaml.safe_dump(data), encoding="utf-8")
    return f


# --------------------------------------------------------------------------- ogref plan


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--method", "FOO"], "--method: unknown method 'FOO'"),
        (["--method", "TORRENT-DIRECT"], "--method: TORRENT-DIRECT does not exist"),
        (["--partition", "-1"], "--partition:"),
        (["--disk", "0"], "--disk:"),
        (["--mode", "foo"], "unknown mode 'foo'"),
        (["--mode", "clone"], "unknown mode 'clone'"),
        (["--to", "pc10-pc01"], "empty range 'pc10-pc01'"),
        (["--disk", "abc"], "--disk"),  # click's own usage error: OG_ERR_FORMAT too
    ],
)
def test_ogref_plan_bad_options_are_og_err_format(args: list[str], says: str) -> None:
    res = invoke(ogref_app, ["plan", str(SEED), *args])
    assert res.exit_code == 1, res.output
    assert says in " ".join(res.output.split()), res.output


def test_ogref_plan_a_repository_address_that_is_not_an_ip(tmp_path: Path) -> None:
    f = scenario(tmp_path, lambda d: d["repositories"][0].update(address="not-an-ip"))
    res = invoke(ogref_app, ["plan", str(f)])
    assert res.exit_code == 1 and "repositories.0.address" in res.output


def test_ogref_plan_markup_in_names_is_printed_not_interpreted(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["classrooms"][0]["name"] = "[/x] [bold]aula"
        d["operations"][0]["restore"]["to"] = "all"

    res = invoke(ogref_app, ["plan", str(scenario(tmp_path, mutate))])
    assert res.exit_code == 0 and "[/x] [bold]aula" in res.output


def test_ogref_plan_a_top_level_number_key(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(SEED.read_text(encoding="utf-8") + "1: one\n", encoding="utf-8")
    res = invoke(ogref_app, ["plan", str(f)])
    assert res.exit_code == 0 and "ignored here" in res.output


@pytest.mark.parametrize("content", ["yaml", "passwd"])
def test_ogref_engine_cfg_refuses_what_is_not_an_engine_cfg(content: str, tmp_path: Path) -> None:
    f = tmp_path / "engine.cfg"
    text = SEED.read_text() if content == "yaml" else "root:x:0:0:root:/root:/bin/bash\n"
    f.write_text(text, encoding="utf-8")
    res = invoke(ogref_app, ["engine-cfg", str(f)])
    assert res.exit_code == 1 and "not a KEY=value line" in " ".join(res.output.split())


def test_ogref_internal_error_exits_70_with_a_log(
    monkeypatch: pytest.MonkeyPatch, _state_home: Path
) -> None:
    def boom(*_: Any, **__: Any) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("ogref.cli.plan_restore", boom)
    res = invoke(ogref_app, ["plan", str(SEED)])
    assert res.exit_code == 70
    line = next(x for x in res.output.splitlines() if "internal error" in x)
    assert "ZeroDivisionError: a bug" in line
    logs = list((_state_home / "oglab").glob("ogref-*.log"))
    assert len(logs) == 1 and str(logs[0]) in line
    text = logs[0].read_text()
    assert "Traceback" in text and "ZeroDivisionError: a bug" in text and "boom" in text


def test_ogref_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_: Any, **__: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("ogref.cli.plan_restore", interrupted)
    assert invoke(ogref_app, ["plan", str(SEED)]).exit_code == 130


def test_ogref_help_documents_the_exit_codes() -> None:
    res = invoke(ogref_app, ["--help"])
    assert "Exit status" in res.output and "70" in res.output


# --------------------------------------------------------------------------- ogsim sweep


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--methods", "FOO"], "--methods: unknown method 'FOO'"),
        (["--loss", "150%"], "--loss: ratio out of [0, 1]"),
        (["--image", "12 parsecs"], "--image: unknown size unit 'parsecs'"),
        (["--n", "abc"], "--n: not a whole number"),
        (["--n", "0"], "--n: a computer count must be 1"),
        (["--n", "-5"], "--n: a computer count must be 1"),
        (["--n", ","], "--n: give at least one value"),
        (["--link", "0Gbit"], "--link: rate must be greater than 0"),
        (["--image", "0B"], "--image: an image size must be more than 0"),
        (["--jobs", "0"], "--jobs"),
    ],
)
def test_ogsim_sweep_bad_axes_are_usage_errors(args: list[str], says: str, tmp_path: Path) -> None:
    res = invoke(ogsim_app, ["sweep", "--out", str(tmp_path), *args])
    assert res.exit_code == ExitCode.USAGE_ERROR, res.output
    assert says in " ".join(res.output.split()), res.output
    assert not list(tmp_path.rglob("results.json"))  # nothing ran


def test_ogsim_sweep_a_byte_rate_link_stays_under_out(tmp_path: Path) -> None:
    res = invoke(
        ogsim_app,
        [
            *("sweep", "--n", "2", "--methods", "UNICAST-DIRECT", "--image", "64MiB"),
            *("--link", "12.5MB/s", "--jobs", "1", "--out", str(tmp_path)),
        ],
    )
    assert res.exit_code == 0, res.output
    (found,) = list(tmp_path.rglob("results.json"))
    assert found.parent.parent == tmp_path


# --------------------------------------------------------------------------- ogsim run


@pytest.mark.parametrize(
    ("where", "value", "path"),
    [
        (("classrooms", 0, "defaults", "hw", "link", "rate"), "0Gbit", "defaults.hw.link.rate"),
        (("repositories", 0, "hw", "uplink"), "0Gbit", "repositories.0.hw.uplink"),
        (("classrooms", 0, "defaults", "hw", "disk", "write"), "0MB/s", "hw.disk.write"),
    ],
)
def test_ogsim_run_zero_rates_are_refused_not_a_hang(
    where: tuple[Any, ...], value: str, path: str, tmp_path: Path
) -> None:
    def mutate(d: dict[str, Any]) -> None:
        node = d
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = value

    res = invoke(ogsim_app, ["run", str(scenario(tmp_path, mutate)), "--out", str(tmp_path)], 30)
    assert res.exit_code == ExitCode.USAGE_ERROR
    assert path in res.output and "greater than 0" in " ".join(res.output.split())


def test_ogsim_run_a_scenario_name_cannot_leave_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    f = scenario(tmp_path, lambda d: d.update(name="../../escaped"))
    res = invoke(ogsim_app, ["run", str(f), "-q"])
    assert res.exit_code == ExitCode.USAGE_ERROR and "name" in res.output
    assert not list(tmp_path.parent.rglob("escaped"))


def test_ogsim_run_a_file_stem_that_is_no_name_is_made_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    f = scenario(tmp_path, lambda d: d.update(name=None, expect=[]), name="my seed (copy).yaml")
    res = invoke(ogsim_app, ["run", str(f), "-q"])
    assert res.exit_code == ExitCode.OK, res.output
    assert (tmp_path / "out" / "my-seed-copy").is_dir()


def test_ogsim_run_failures_without_expectations_exit_1(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["expect"] = []
        d["classrooms"][0]["defaults"]["disks"] = []  # nothing to restore to: error 3

    res = invoke(ogsim_app, ["run", str(scenario(tmp_path, mutate)), "--out", str(tmp_path)])
    assert res.exit_code == ExitCode.EXPECTATIONS_FAILED, res.output
    codes = {
        c["code"]
        for c in json.loads((tmp_path / "results.json").read_text())["operations"][0]["computers"]
    }
    assert codes == {3}


def test_ogsim_run_without_expectations_and_all_ok_exits_0(tmp_path: Path) -> None:
    f = scenario(tmp_path, lambda d: d.update(expect=[]))
    res = invoke(ogsim_app, ["run", str(f), "--out", str(tmp_path), "-q"])
    assert res.exit_code == ExitCode.OK, res.output


def test_ogsim_click_usage_errors_are_4_not_2(tmp_path: Path) -> None:
    res = invoke(ogsim_app, ["run", str(SEED), "--seed", "abc"])
    assert res.exit_code == ExitCode.USAGE_ERROR
    res = invoke(ogsim_app, ["no-such-command"])
    assert res.exit_code == ExitCode.USAGE_ERROR


def test_ogsim_internal_error_exits_70_with_a_log(
    monkeypatch: pytest.MonkeyPatch, _state_home: Path
) -> None:
    def boom(*_: Any, **__: Any) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr("ogsim.cli.run_scenario", boom)
    res = invoke(ogsim_app, ["run", str(SEED)])
    assert res.exit_code == ExitCode.INTERNAL_ERROR == 70
    (line,) = [x for x in res.output.splitlines() if "internal error" in x]
    (log,) = list((_state_home / "oglab").glob("ogsim-*.log"))
    assert str(log) in line and "KeyError" in line
    assert "Traceback" in log.read_text()


def test_ogsim_internal_error_log_falls_back_to_tmp(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocked))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)

    def boom(*_: Any, **__: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("ogsim.cli.run_scenario", boom)
    res = invoke(ogsim_app, ["run", str(SEED)])
    assert res.exit_code == 70
    assert list((tmp_path / "tmp").glob("oglab-*/ogsim-*.log"))


def test_ogsim_interrupt_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_: Any, **__: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("ogsim.cli.run_scenario", interrupted)
    res = invoke(ogsim_app, ["run", str(SEED)])
    assert res.exit_code == ExitCode.INTERRUPTED


def test_ogsim_help_documents_the_exit_codes() -> None:
    res = invoke(ogsim_app, ["--help"])
    text = " ".join(res.output.split())
    for code in ("0 ok", "1 expectations failed", "2 interrupted", "3 backend", "4 usage", "70"):
        assert code in text, code
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 5, 70]


def test_ogsim_report_refuses_a_bad_results_file(tmp_path: Path) -> None:
    bad = tmp_path / "results.json"
    bad.write_text("{not json", encoding="utf-8")
    res = invoke(ogsim_app, ["report", str(bad), "--dir", str(tmp_path / "r")])
    assert res.exit_code == ExitCode.USAGE_ERROR
    assert "not a results.json" in " ".join(res.output.split())
    res = invoke(ogsim_app, ["report", str(tmp_path / "missing.json")])
    assert res.exit_code == ExitCode.USAGE_ERROR


def test_ogsim_report_keeps_under_its_directory(tmp_path: Path) -> None:
    from ogsim.simulator import simulate
    from ogsim.synthetic import synthetic

    results = simulate(synthetic(2, "UNICAST-DIRECT", data="16MiB", name="small"))
    evil = json.loads(results.model_dump_json())
    evil["scenario"] = "../../escaped"
    f = tmp_path / "evil.json"
    f.write_text(json.dumps(evil))
    res = invoke(ogsim_app, ["report", str(f), "--dir", str(tmp_path / "reports")])
    assert res.exit_code == ExitCode.USAGE_ERROR
    assert not list(tmp_path.parent.rglob("escaped"))
