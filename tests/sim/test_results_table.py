"""The ``ogsim run`` / ``ogsim demo`` result table on an 80-column terminal: names and methods
whole, and the fallback reasons (the point of the demo) listed under the table, grouped."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from ogsim.cli import print_results
from ogsim.results import ComputerResult, OperationResult, Results
from ogsim.scenario import load_scenario
from ogsim.simulator import simulate

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "scenarios" / "seed-35pc-torrent-cache.yaml"


@pytest.fixture(scope="module")
def seed_results() -> Results:
    return simulate(load_scenario(SEED), None)


def render(results: Results, width: int = 80) -> str:
    console = Console(width=width, record=True, color_system=None)
    print_results(results, [], console=console)
    return console.export_text()


def test_seed_table_at_80_columns_keeps_names_methods_and_reasons(seed_results: Results) -> None:
    text = render(seed_results)
    assert all(len(line) <= 80 for line in text.splitlines())
    table_lines = [line for line in text.splitlines() if line.startswith("│")]
    for name in [f"pc{i:02}" for i in range(1, 36)]:
        assert any(f" {name} " in line for line in table_lines), name
    assert "…" not in "".join(table_lines)
    assert sum("TORRENT-CACHE" in line for line in table_lines) == 33
    assert sum("UNICAST-DIRECT" in line for line in table_lines) == 2
    flat = " ".join(text.split())
    for c in seed_results.operations[0].computers:
        for reason in c.fallback_reasons:
            assert " ".join(reason.split()) in flat, reason


def test_fallback_reasons_are_grouped_under_the_table(seed_results: Results) -> None:
    flat = " ".join(render(seed_results).split())
    switched = sorted(c.name for c in seed_results.operations[0].computers if c.switched)
    reasons = {c.fallback_reasons[0] for c in seed_results.operations[0].computers if c.switched}
    if len(reasons) == 1:  # one reason: one line naming every computer that took it
        assert f"{', '.join(switched)}: TORRENT-CACHE → UNICAST-DIRECT: " in flat
    else:
        for c in seed_results.operations[0].computers:
            if c.switched:
                assert f"{c.name}: TORRENT-CACHE → UNICAST-DIRECT: {c.fallback_reasons[0]}" in flat


def test_same_reason_groups_computers_and_failures_are_listed_with_their_code() -> None:
    def pc(name: str, **kw: object) -> ComputerResult:
        return ComputerResult.model_validate(
            {"name": name, "method_requested": "TORRENT-CACHE", **kw}
        )

    why = "the client has no CACHE partition (error 15)"
    op = OperationResult(
        index=0,
        kind="restore",
        at=0.0,
        image="win7-base",
        method="TORRENT-CACHE",
        computers=[
            pc(
                "pc07",
                method_used="UNICAST-DIRECT",
                switched=True,
                fallback_reasons=[why],
                status="ok",
                code=0,
            ),
            pc("pc08", method_used="TORRENT-CACHE", status="ok", code=0),
            pc(
                "pc19",
                method_used="UNICAST-DIRECT",
                switched=True,
                fallback_reasons=[why],
                status="ok",
                code=0,
            ),
            pc(
                "aula2-long-name-pc121",
                status="failed",
                code=16,
                message="the image does not fit in the CACHE",
            ),
        ],
    )
    text = render(Results(scenario="t", operations=[op]))
    flat = " ".join(text.split())
    assert f"pc07, pc19: TORRENT-CACHE → UNICAST-DIRECT: {why}" in flat
    assert "aula2-long-name-pc121: error 16: the image does not fit in the CACHE" in flat
    assert any(" aula2-long-name-pc121 " in line for line in text.splitlines())
