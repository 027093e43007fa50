"""``ogref image`` without devices: a chunked image cut from a synthetic partclone stream is
described, verified (a flipped byte in a chunk is 33), converted to an OpenGnSys file and back
(same bitmap, same chunks); errors exit with their OpenGnSys numbers."""

from __future__ import annotations

import io
import json
import random
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ogref.runtime.chunked import image
from ogref.runtime.chunked.create import chunk_stream
from ogref.runtime.chunked.manifest import Chunking
from ogref.runtime.imagefile import ImageStore

from .test_chunked_format import BS, USED, partclone_stream

runner = CliRunner()
SMALL = Chunking(64, 256, 1024)  # FastCDC's smallest sizes: several chunks from 4.5 KiB


def _run(*args: str) -> tuple[int, dict[str, object]]:
    from ogref.runtime.chunked.cli import app

    done = runner.invoke(app, list(args))
    return done.exit_code, json.loads(done.stdout)


@pytest.fixture
def repo(tmp_path: Path) -> ImageStore:
    """A directory holding chunked image 'base' cut from a checksummed partclone stream."""
    store = ImageStore(tmp_path / "images")
    store.root.mkdir()
    data = random.Random(4).randbytes(len(USED) * BS)
    made, _ = chunk_stream(
        io.BytesIO(partclone_stream(data, True)), image.chunk_store(store), None,
        chunking=SMALL, level=3, host="pc01",
    )  # fmt: skip
    image.publish(store, "base", made)
    return store


def test_info_and_verify(repo: ImageStore) -> None:
    code, out = _run("info", "base", "--dir", str(repo.root))
    assert code == 0 and out["filesystem"] == "EXT4" and out["used_bytes"] == len(USED) * BS
    assert int(str(out["chunks"])) > 1
    assert _run("verify", "base", "--dir", str(repo.root))[0] == 0
    made = image.load(repo, "base")
    path = image.chunk_store(repo).path(made.chunks[0].digest)
    frame = bytearray(path.read_bytes())
    frame[-5] ^= 1
    path.write_bytes(bytes(frame))
    code, out = _run("verify", "base", "--dir", str(repo.root))
    assert code == 33 and made.chunks[0].digest in str(out["message"])


@pytest.mark.skipif(shutil.which("zstd") is None, reason="the zstd command is missing")
def test_convert_to_partclone_and_back(repo: ImageStore) -> None:
    d = str(repo.root)
    assert _run("convert", "base", "--to", "partclone", "--as", "og", "--dir", d)[0] == 0
    files = repo.files("og")
    assert files.full_sum.is_file() and files.info.read_text().startswith("PARTCLONE:ZSTD:EXT4:")
    assert _run("convert", "og", "--to", "chunked", "--as", "again", "--dir", d)[0] == 0
    first, again = image.load(repo, "base"), image.load(repo, "again")
    assert again.bitmap == first.bitmap and again.header == first.header
    # the same used blocks (the conversion back re-cut them with the default chunk sizes)
    store = image.chunk_store(repo)
    assert b"".join(store.read(c.digest, c.size) for c in again.chunks) == b"".join(
        store.read(c.digest, c.size) for c in first.chunks
    )


def test_errors_exit_with_their_numbers(repo: ImageStore, tmp_path: Path) -> None:
    d = str(repo.root)
    assert _run("info", "nothing", "--dir", d)[0] == 2
    assert (
        _run("create", str(tmp_path / "no-such-dev"), "x", "--format", "chunked", "--dir", d)[0]
        == 3
    )
    code, out = _run("create", "/dev/null", "x", "--diff-of", "base", "--dir", d)
    assert code == 1 and "--format chunked" in str(out["message"])
    image.manifest_path(repo, "base").write_text("{}")
    assert _run("verify", "base", "--dir", d)[0] == 33
