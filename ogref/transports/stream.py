"""A restore fed from the network: bytes arrive from SMB or from ``udp-receiver`` and go through
decompress → ``partclone.restore`` onto the partition, hashed and counted on the way.

The safeguards are the runtime's own (:func:`ogref.runtime.restore.restore_stream`: lock and
unmount, every stage's exit status, size and whole-stream MD5 against the image's, ``ntfsfix``,
wipe on failure); this module only adapts a network source to it.  It takes no decision about
which source to use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ogref.model.image import Image
from ogref.runtime.restore import restore_stream

Source = Callable[[Callable[[bytes], Any], Any], int]
"""A stream source: called with (write, md5); writes every byte, returns how many."""


@dataclass(frozen=True)
class StreamRestored:
    """What a streamed restore did."""

    bytes_read: int
    checksum: str


def restore_from(
    source: Source, image: Image, device: str, *, lock_dir: Path, what: str
) -> StreamRestored:
    """Restore ``image`` onto ``device`` reading it from ``source``."""
    md5 = hashlib.md5()
    moved = 0

    def feed(stream: IO[bytes]) -> None:
        nonlocal moved
        moved = source(stream.write, md5)

    digest, n = restore_stream(
        feed,
        lambda: (md5.hexdigest(), moved),
        image.compressor,
        image.filesystem,
        device,
        expected_md5=image.checksum,
        expected_size=image.stored_size,
        lock_dir=lock_dir,
        what=what,
        pipeline_error_is_corrupt=False,  # a broken transfer is reported as the transfer's
    )
    return StreamRestored(n, digest)
