"""Expectations that select a scenario operation (``operation: N``) and the ``booted`` kind:
indices mean the scenario's operations, and a booted OS must report the expected hostname."""

from __future__ import annotations

import pytest

from ogref.errors import ConfigError
from ogsim.expect import evaluate
from ogsim.results import ComputerResult, OperationResult, Results
from ogsim.scenario import ExpectSpec, build_scenario

SCENARIO = {
    "name": "sel",
    "repositories": [
        {
            "name": "repo",
            "address": "10.0.0.1",
            "images": [{"name": "img", "data": "1GiB", "stored": "500MiB"}],
        }
    ],
    "classrooms": [
        {
            "name": "a",
            "subnet": "10.0.0.0/24",
            "defaults": {"repository": "repo"},
            "computers": {"count": 2, "first_host": 11},
        }
    ],
    "operations": [
        {"restore": {"image": "img", "method": "TORRENT-CACHE", "to": "all"}},
        {"boot": {"to": "all"}},
    ],
}


def _results() -> Results:
    restore = OperationResult(
        index=0,
        kind="restore",
        at=0.0,
        computers=[
            ComputerResult(name="pc01", status="ok", method_used="TORRENT-CACHE"),
            ComputerResult(name="pc02", status="ok", method_used="UNICAST-DIRECT", switched=True),
        ],
    )
    boot = OperationResult(
        index=1,
        kind="boot-once",
        at=5.0,
        computers=[
            ComputerResult(name="pc01", status="ok", os_hostname="pc01"),
            ComputerResult(name="pc02", status="ok", os_hostname="template"),
        ],
    )
    return Results(scenario="sel", backend="libvirt", seed=1, operations=[restore, boot])


def _check(doc: dict[str, object]) -> bool:
    checks = evaluate(_results(), [ExpectSpec.model_validate(doc)])
    assert len(checks) == 1
    return checks[0].ok


def test_fallback_and_method_used_select_the_operation() -> None:
    # without an operation the last record (the boot) has no method: the restore is selected
    assert not _check({"fallback": {"computers": ["pc02"], "method": "UNICAST-DIRECT"}})
    assert _check({"fallback": {"computers": ["pc02"], "method": "UNICAST-DIRECT", "operation": 0}})
    assert _check({"method_used": {"method": "TORRENT-CACHE", "except": ["pc02"], "operation": 0}})
    assert not _check({"method_used": {"method": "TORRENT-CACHE", "operation": 0}})


def test_booted_wants_each_computers_own_name_by_default() -> None:
    assert _check({"booted": {"computers": ["pc01"], "operation": 1}})
    assert not _check({"booted": {"operation": 1}})  # pc02 reported "template"
    assert _check({"booted": {"computers": ["pc02"], "hostname": "template", "operation": 1}})
    assert not _check({"booted": {"computers": ["pc01"], "operation": 0}})  # no OS in a restore


def test_booted_diff_names_the_offenders() -> None:
    (check,) = evaluate(_results(), [ExpectSpec.model_validate({"booted": {"operation": 1}})])
    assert check.offenders == ("pc02",) and "'template'" in check.actual


def test_an_operation_index_must_exist_in_the_scenario() -> None:
    ok = {**SCENARIO, "expect": [{"booted": {"operation": 1}}]}
    build_scenario(ok, default_name="sel")
    bad = {**SCENARIO, "expect": [{"count": {"operation": 2, "equals": 1}}]}
    with pytest.raises(ConfigError, match="operation 2 does not exist"):
        build_scenario(bad, default_name="sel")
