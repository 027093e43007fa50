"""Scenario schema: stored JSON schema up to date, bad scenarios name file, YAML path, reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ogref.errors import ConfigError
from ogsim.scenario import SCHEMA_PATH, build_scenario, load_scenario, schema_text

SEED = Path(__file__).resolve().parents[2] / "scenarios" / "seed-35pc-torrent-cache.yaml"


def test_stored_schema_is_up_to_date() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), "run `ogsim schema`"


def _seed() -> dict:
    return yaml.safe_load(SEED.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("mutate", "path", "reason"),
    [
        (
            lambda d: d["classrooms"][0]["defaults"]["hw"]["link"].update(rate="fast"),
            "classrooms.0.defaults.hw.link.rate",
            "not a rate",
        ),
        (
            lambda d: d["classrooms"][0]["defaults"]["hw"].update(disks=1),
            "classrooms.0.defaults.hw.disks",
            "unknown key",
        ),
        (
            lambda d: d.update(faults=[{"at": "10s", "client_crash": {"target": "pc99"}}]),
            "faults.0.client_crash.target",
            "unknown computer",
        ),
        (
            lambda d: d.update(expect=[{"makespan_below": "soon"}]),
            "expect.0.makespan_below",
            "duration",
        ),
        (lambda d: d.update(faults=[{"at": "1s"}]), "faults.0", "exactly one"),
        (
            lambda d: d["repositories"][0]["hw"].update(uplink="1 parsec"),
            "repositories.0.hw.uplink",
            "rate",
        ),
    ],
)
def test_bad_scenario_names_file_path_and_reason(mutate, path: str, reason: str) -> None:
    data = _seed()
    mutate(data)
    with pytest.raises(ConfigError) as info:
        build_scenario(data, source="bad.yaml")
    err = info.value
    assert err.source == "bad.yaml"
    assert err.path == path
    assert reason in err.reason


def test_seed_scenario_loads_with_resolved_hardware() -> None:
    sc = load_scenario(SEED)
    assert sc.name == "seed-35pc-torrent-cache"
    assert len(sc.hosts) == 35
    assert sc.hosts["pc01"].link_rate == pytest.approx(125e6)
    assert sc.hosts["pc01"].write_rate == pytest.approx(110e6)
