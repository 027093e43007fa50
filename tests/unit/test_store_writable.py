"""The repository write test (createImage's) survives a share's first write failing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ogref.errors import NotWriteError
from ogref.runtime.imagefile import ImageStore


def test_a_first_failed_write_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Path.write_bytes
    failures = iter([OSError(5, "Input/output error")])

    def flaky(self: Path, data: bytes) -> int:
        exc = next(failures, None)
        if exc is not None:
            raise exc
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", flaky)
    ImageStore(tmp_path).check_writable(pause=0)  # the second attempt writes


def test_a_store_that_never_takes_a_write_is_14(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(self: Path, data: bytes) -> int:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(Path, "write_bytes", never)
    with pytest.raises(NotWriteError, match="Read-only"):
        ImageStore(tmp_path).check_writable(pause=0)
