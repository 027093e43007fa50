"""``ogsim compare``: the researcher's figure set from one small sweep (in process)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from ogsim import compare
from ogsim.cli import app
from ogsim.sweep import Row


def _row(n: int, method: str, t: float, extra: str = compare.BASE) -> Row:
    return Row(n, method, "0%", "1GiB", "1Gbit", 1, extra, t, n, 0, 1, "")


def test_crossover_is_the_first_n_where_p2p_is_faster() -> None:
    p = compare.Preset((1, 10, 100), ("MULTICAST-CACHE", "TORRENT-CACHE"), (1,), "1GiB",
                       "1Gbit", 10, (), (), (), "1MB/s")  # fmt: skip
    rows = [
        _row(1, "MULTICAST-CACHE", 10), _row(1, "TORRENT-CACHE", 20),
        _row(10, "MULTICAST-CACHE", 12), _row(10, "TORRENT-CACHE", 13),
        _row(100, "MULTICAST-CACHE", 30), _row(100, "TORRENT-CACHE", 14),
    ]  # fmt: skip
    assert compare.crossover(rows, p, "TORRENT-CACHE", "MULTICAST-CACHE") == 100
    assert compare.crossover(rows[:4], p, "TORRENT-CACHE", "MULTICAST-CACHE") is None


def test_tiny_preset_writes_the_report_figure_and_table(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["compare", "--preset", "tiny", "--cluster", "inprocess", "--out", str(tmp_path)]
    )
    assert res.exit_code == 0, res.output
    text = (tmp_path / "compare.md").read_text()
    for heading in ("## T(N)", "## Crossovers", "second deploy", "## Sensitivity at N = 4",
                    "one slow receiver", "packet loss", "client link rate", "image size"):  # fmt: skip
        assert heading in text
    assert "<svg" in (tmp_path / "compare.svg").read_text()
    assert (tmp_path / "sweep.parquet").stat().st_size > 0
    slow = next(line for line in text.splitlines() if line.startswith("| disk 30MB/s"))
    none = next(line for line in text.splitlines() if line.startswith("| none"))
    assert slow.split("|")[4] != none.split("|")[4]  # the straggler slows MULTICAST-CACHE
