"""The BitTorrent tracker: opentracker, with the whitelist of the repository's torrents.

Why opentracker: it is a maintained, small C tracker (erdgeist, git 2021+ in Debian 12), used in
production by large public trackers, and it was measured to work here (§2.5 of the netns
feasibility report).  OpenGnSys's ``bttrack`` (BitTornado) is Python 2 and unmaintained.  The
Debian build is compiled with an access whitelist, which suits a repository: only its own images'
infohashes are served (``-w``), like OpenGnSys's ``--allowed_dir``.  This module writes the
whitelist and builds the command line; the lab starts and stops the process.
"""

from __future__ import annotations

from pathlib import Path

from ogref.runtime.imagefile import ImageStore

TRACKER_PORT = 6969


def infohashes(store: ImageStore) -> list[str]:
    """The v1 infohashes (and truncated v2 ones, for hybrid torrents) of every ``.torrent``."""
    import libtorrent as lt

    out: list[str] = []
    found = [*store.root.rglob("*.img.torrent"), *store.root.rglob("*.pack.torrent")]
    for t in sorted(found):  # .img files, and chunked images' packs
        ti = lt.torrent_info(str(t))
        hashes = ti.info_hashes()
        if hashes.has_v1():
            out.append(str(hashes.v1))
        if hashes.has_v2():
            out.append(str(hashes.v2)[:40])
    return out


def write_whitelist(store: ImageStore, path: Path) -> list[str]:
    """Write the whitelist file; the hashes written."""
    hashes = infohashes(store)
    path.write_text("".join(h + "\n" for h in hashes))
    return hashes


def tracker_argv(ip: str, whitelist: Path, port: int = TRACKER_PORT) -> list[str]:
    """``opentracker`` bound to ``ip`` (TCP and UDP ``port``) with the whitelist."""
    return ["opentracker", "-i", ip, "-p", str(port), "-P", str(port), "-w", str(whitelist)]


def announce_url(ip: str, port: int = TRACKER_PORT) -> str:
    """The tracker URL written into new ``.torrent`` files."""
    return f"http://{ip}:{port}/announce"
