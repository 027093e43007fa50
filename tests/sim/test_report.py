"""The run report's HTML: a well-formed page whose list items sit in lists, tables in tables."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ogsim.report import build
from ogsim.results import ComputerResult, OperationResult, Phase, Results


def _results() -> Results:
    ok = ComputerResult(
        name="pc01",
        method_used="UNICAST-DIRECT",
        switched=True,
        fallback_reasons=["no CACHE partition (error 15): TORRENT-CACHE → UNICAST-DIRECT"],
        status="ok",
        finished=40.0,
        phases=[Phase(name="restore", start=1.0, end=40.0)],
    )
    bad = ComputerResult(
        name="pc02", status="failed", code=5, message="restore <failed> & stopped", finished=9.0
    )
    return Results(
        scenario="report-test",
        description="A *small* run with <script>alert(1)</script> & friends.",
        operations=[OperationResult(index=0, kind="restore", at=0.0, computers=[ok, bad])],
    )


def test_summary_html_is_well_formed_with_lists_and_tables(tmp_path: Path) -> None:
    where = build.build_one(_results(), tmp_path)
    text = (where / "summary.html").read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    page = ET.fromstring(text.split("\n", 1)[1])  # the document after the doctype
    assert page.tag == "html"
    parents = {child: parent for parent in page.iter() for child in parent}
    items = list(page.iter("li"))
    assert len(items) == 3 + 1 + 1  # run facts, one switch, one failure
    assert all(parents[li].tag in ("ul", "ol") for li in items)
    for tag in ("tr",):
        for row in page.iter(tag):
            assert parents[row].tag in ("thead", "tbody")
            assert parents[parents[row]].tag == "table"
    assert [img.get("src") for img in page.iter("img")] == ["timeline.svg", "cdf.svg", "links.svg"]
    assert all(img.get("alt") for img in page.iter("img"))
    # text from results is escaped, never markup
    assert not list(page.iter("script"))
    assert "<script>alert(1)</script>" in "".join(page.itertext())
    assert "restore <failed> & stopped" in "".join(page.itertext())
    assert page.find("head/title") is not None and page.find("head/title").text == "report-test"  # type: ignore[union-attr]
