"""Report layout: ``reports/<scenario>/<backend>-<seed>/`` with figures, summary.md and
summary.html, and a scaling figure when several runs are given together.

The HTML is the Markdown summary rendered by markdown-it-py (CommonMark plus tables, raw HTML
in the text escaped, XHTML-style empty tags so the page is also well-formed XML) inside a Jinja2
page template.  Reads ``Results`` only; drawing is :mod:`ogsim.report.plots`' job.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment
from markdown_it import MarkdownIt
from markupsafe import Markup

from ogref.units import format_size
from ogsim.report import plots
from ogsim.results import Results


def _method_rows(results: Results) -> list[tuple[str, int, int, float, float]]:
    by: dict[str, list[tuple[bool, float]]] = {}
    for op in results.operations:
        for c in op.computers:
            key = c.method_used or f"({op.kind}: {c.status})"
            t = (c.finished - op.at) if c.finished is not None else float("nan")
            by.setdefault(key, []).append((c.status == "ok", t))
    rows = []
    for method, items in sorted(by.items()):
        times = sorted(t for ok, t in items if ok)
        med = times[len(times) // 2] if times else float("nan")
        rows.append(
            (
                method,
                len(items),
                sum(1 for ok, _ in items if ok),
                med,
                max(times) if times else float("nan"),
            )
        )
    return rows


def summary_markdown(results: Results, figures: dict[str, str]) -> str:
    """The Markdown summary of one run."""
    m = results.metrics
    lines = [
        f"# {results.scenario}",
        "",
        results.description,
        "",
        f"- backend **{results.backend}**, seed {results.seed}, scale {results.scale:g}",
        f"- makespan **{m.makespan_s:.1f} s**; {m.ok} ok, {m.failed} not ok; "
        f"{format_size(m.bytes_total)} moved",
        f"- {m.events} events, {m.wall_s:.2f} s wall, peak RSS {m.peak_rss_mb:.0f} MiB",
        "",
        "| method used | computers | ok | median done (s) | last done (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for method, n, ok, med, last in _method_rows(results):
        lines.append(f"| {method} | {n} | {ok} | {med:.1f} | {last:.1f} |")
    switched = [c for op in results.operations for c in op.computers if c.switched]
    failed = [c for op in results.operations for c in op.computers if c.status != "ok"]
    if switched:
        lines += ["", "## Automatic method switches", ""]
        lines += [f"- **{c.name}**: {'; '.join(c.fallback_reasons)}" for c in switched]
    if failed:
        lines += ["", "## Not ok", ""]
        lines += [f"- **{c.name}**: {c.status} (code {c.code}) {c.message}" for c in failed[:50]]
    lines += ["", "## Figures", ""]
    lines += [f"![{name}]({file})" for name, file in figures.items()]
    return "\n".join(lines) + "\n"


_MARKDOWN = MarkdownIt("commonmark", {"html": False, "xhtmlOut": True}).enable("table")
_PAGE = Environment(autoescape=True, keep_trailing_newline=True).from_string(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8" />
<title>{{ title }}</title>
<style>
body { font-family: sans-serif; max-width: 60em; margin: auto; }
td, th { padding: 2px 8px; }
img { max-width: 100%; }
</style>
</head>
<body>
{{ body }}</body>
</html>
"""
)


def summary_html(markdown: str, title: str) -> str:
    """The Markdown summary as a self-contained HTML page (lists, tables, figures)."""
    return _PAGE.render(title=title, body=Markup(_MARKDOWN.render(markdown)))


def build_one(results: Results, root: Path) -> Path:
    """Figures and summaries of one run; returns the run's report directory."""
    where = root / results.scenario / f"{results.backend}-{results.seed}"
    where.mkdir(parents=True, exist_ok=True)
    figures = {
        "timeline": plots.save(plots.plot_timeline(results), where / "timeline.svg").name,
        "completion CDF": plots.save(plots.plot_cdf(results), where / "cdf.svg").name,
        "link utilisation": plots.save(plots.plot_links(results), where / "links.svg").name,
    }
    md = summary_markdown(results, figures)
    (where / "summary.md").write_text(md, encoding="utf-8")
    (where / "summary.html").write_text(summary_html(md, results.scenario), encoding="utf-8")
    return where


def scaling_points(runs: list[Results]) -> list[tuple[str, int, float]]:
    """(method, computers, makespan) of each run's first operation, for :func:`draw_scaling`."""
    points = []
    for r in runs:
        for op in r.operations[:1]:
            methods = {c.method_requested for c in op.computers}
            method = methods.pop() if len(methods) == 1 else (op.method or "mixed")
            points.append((method or "?", len(op.computers), r.metrics.makespan_s))
    return points


def draw_scaling(points: list[tuple[str, int, float]], path: Path) -> Path:
    """The comparison figure (makespan against N, one curve per label) of several runs."""
    return plots.save(plots.plot_scaling(points, "makespan against N"), path)


def build_report(runs: list[Results], root: Path) -> list[Path]:
    """Reports for each run, plus ``reports/scaling/scaling.svg`` when several runs are given."""
    made = [build_one(r, root) for r in runs]
    if len(runs) > 1:
        made.append(draw_scaling(scaling_points(runs), root / "scaling" / "scaling.svg"))
    return made
