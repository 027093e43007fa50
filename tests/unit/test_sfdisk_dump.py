"""Reading an ``sfdisk --dump`` (the MBR table of a whole-disk procedure, logical partitions too)."""

from __future__ import annotations

import pytest

from ogref.errors import ImageFileError
from ogref.runtime.diskimage import dump_entries

DUMP = """label: dos
label-id: 0xcc96ac2d
device: /dev/loop0
unit: sectors
sector-size: 512

/dev/loop0p1 : start=        2048, size=      131072, type=83, bootable
/dev/loop0p2 : start=      133120, size=      260096, type=5
/dev/loop0p5 : start=      135168, size=       98304, type=83
/dev/sda6 : start=      235520, size=       98304, type=ca
"""


def test_dump_lists_primary_extended_and_logical_partitions() -> None:
    assert dump_entries(DUMP) == [
        (1, 2048, 131072, "83"),
        (2, 133120, 260096, "5"),
        (5, 135168, 98304, "83"),
        (6, 235520, 98304, "ca"),
    ]
    with pytest.raises(ImageFileError):
        dump_entries("/dev/loop0p1 : start=2048, type=83\n")
