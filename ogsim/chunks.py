"""How many chunks and chunk-store directories a chunked image's bytes stand for, in the simulator.

The scenario gives a chunked image's sizes in bytes (stored, used, added); the costs the lab
measures are per chunk fetched and per directory listed (``hw.chunks``, ``ogsim.hardware``).
A chunk holds the format's average of used bytes (FastCDC's 128 KiB) and is stored compressed
at the image's ratio; chunk names are uniform hashes, so K chunks fall in the expected number of
distinct 256 first-two-hex-digit directories.  It models no time (``ogsim.client`` does).
"""

from __future__ import annotations

from ogref.model.image import Image

AVERAGE_CHUNK = 128 * 1024  # used bytes per chunk: the format's FastCDC average (Chunking)
DIRECTORIES = 256  # chunk-store sub-directories: the first two hex digits of a chunk's name


def stored_chunk(image: Image) -> float:
    """Mean stored (compressed) bytes of one of ``image``'s chunks."""
    used = image.restored_size or image.stored_size
    return AVERAGE_CHUNK * min(1.0, image.stored_size / used) if used else 1.0


def chunk_count(image: Image, stored_bytes: float) -> int:
    """Chunks of ``image`` that ``stored_bytes`` of it stand for (at least one if any)."""
    if stored_bytes <= 0:
        return 0
    return max(1, round(stored_bytes / stored_chunk(image)))


def directories(chunks: int) -> float:
    """Expected distinct chunk-store directories ``chunks`` chunks live in."""
    return DIRECTORIES * (1.0 - (1.0 - 1.0 / DIRECTORIES) ** chunks)
