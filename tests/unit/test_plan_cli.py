"""The ``ogref plan`` and ``ogref methods`` commands as a newcomer meets them (issue #11 §5):
JSON errors on stdout, scenario files read without noise, the summary line, status colours."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import ogref.cli
from ogref.cli import app
from ogref.model import ClientStatus

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "labs" / "seed-aula-35.yaml"
SEED_SCENARIO = ROOT / "scenarios" / "seed-35pc-torrent-cache.yaml"
runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "code", "name", "needle"),
    [
        (["--method", "FOO"], 1, "OG_ERR_FORMAT", "FOO"),
        (["--image", "no-such-image"], 2, "OG_ERR_NOTFOUND", "no-such-image"),
        (["--mode", "clone"], 1, "OG_ERR_FORMAT", "clone"),
    ],
)
def test_plan_json_refusal_prints_a_json_error_on_stdout(
    args: list[str], code: int, name: str, needle: str
) -> None:
    result = runner.invoke(app, ["plan", str(SEED), "--json", *args])
    assert result.exit_code == code, result.output
    data = json.loads(result.stdout)
    assert data["error"]["code"] == code
    assert data["error"]["name"] == name
    assert needle in data["error"]["message"]


def test_plan_json_error_for_an_unreadable_engine_cfg(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["plan", str(SEED), "--json", "--engine-cfg", str(tmp_path / "missing.cfg")]
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["name"] == "OG_ERR_FORMAT"


def test_plan_of_a_scenario_file_does_not_warn_about_scenario_keys() -> None:
    result = runner.invoke(app, ["plan", str(SEED_SCENARIO)])
    assert result.exit_code == 0, result.output
    assert "not a site key" not in result.stderr


def test_plan_still_warns_about_keys_that_are_neither_site_nor_scenario_keys(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(SEED_SCENARIO.read_text() + "\nfautls: []\n")
    result = runner.invoke(app, ["plan", str(site)])
    assert result.exit_code == 0, result.output
    warning = next(line for line in result.stderr.splitlines() if "ignored here" in line)
    assert warning.endswith("ignored here: fautls")


def test_ogref_scenario_keys_are_ogsims_scenario_fields_beyond_the_site() -> None:
    from ogref.site import SCENARIO_KEYS, SiteSpec
    from ogsim.scenario import ScenarioSpec  # the test may import ogsim; ogref may not

    assert set(ScenarioSpec.model_fields) - set(SiteSpec.model_fields) == SCENARIO_KEYS


def test_deploy_summary_counts_failures_apart_from_methods() -> None:
    result = runner.invoke(app, ["plan", str(SEED), "--mode", "deploy"])
    assert result.exit_code in (15, 16)
    assert "33 by TORRENT-CACHE, 2 failed" in " ".join(result.stdout.split())
    assert "FAILED" not in result.stdout


def test_deploy_json_summary_has_methods_only_and_a_failed_count() -> None:
    result = runner.invoke(app, ["plan", str(SEED), "--mode", "deploy", "--json"])
    data = json.loads(result.stdout)
    assert data["summary"] == {"TORRENT-CACHE": 33}
    assert data["failed"] == 2


def test_methods_renders_each_status_in_its_colour_and_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    console = Console(record=True, width=80, force_terminal=True, color_system="truecolor")
    monkeypatch.setattr(ogref.cli, "out", console)
    result = runner.invoke(app, ["methods"])
    assert result.exit_code == 0, result.output
    ansi = console.export_text(clear=False, styles=True).splitlines()
    plain = console.export_text().splitlines()
    assert len(ansi) == len(plain)
    escapes = set()
    for status in ClientStatus:
        i = next(i for i, line in enumerate(plain) if line.split()[:1] == [status.value])
        assert status.colour in plain[i]  # the name, for terminals without colour
        assert "\x1b[38;2;" in ansi[i], (status, ansi[i])  # drawn in a foreground colour
        escapes.add(ansi[i][ansi[i].index("\x1b[38;2;") :].split("m")[0])
    assert "\x1b[38;2;128;0;0" in escapes  # maroon is maroon, not only the text "maroon"
    assert len(escapes) >= 7  # statuses with different colours look different
