"""The repository's BitTorrent seeder: seeds every ``.torrent`` of the images directory, as
OpenGnSys's ``btlaunchmany`` does, rescanning for new images — and for re-created ones: a
``.torrent`` whose info-hash changed is dropped and seeded anew (its upload count carries on).

Files are added in seed mode (no re-hash: the repository's copy is the reference), all upload
slots open, TCP only.  A refused or failed announce is retried within seconds (backing off to
30 s), not after libtorrent's minutes.  Run it as
``python -m ogref.repo.seeder --images DIR --listen IP``; it stops on SIGTERM.  It writes a small
JSON status file (bytes uploaded per image) when asked with ``--status``; it never downloads.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from ogref import logs
from ogref.transports.torrent import PORT, lt_session

log = logging.getLogger("ogref.repo")

RETRY_MAX_S = 30
"""Longest wait before the seeder announces again after a tracker error (2 s, 4 s, … 30 s)."""


def main(argv: list[str] | None = None) -> int:
    import libtorrent as lt

    p = argparse.ArgumentParser(prog="python -m ogref.repo.seeder")
    p.add_argument("--images", required=True, type=Path)
    p.add_argument("--listen", required=True)
    p.add_argument("--port", type=int, default=PORT)
    p.add_argument("--status", type=Path)
    a = p.parse_args(argv)
    logs.configure()
    stop = False

    def on_term(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    ses = lt_session(a.listen, a.port, seed=True)
    handles: dict[Path, Any] = {}
    hashes: dict[Path, str] = {}
    uploaded_before: dict[Path, int] = {}  # by earlier versions of the same image
    last_scan = 0.0
    log.info("seeder on %s:%s", a.listen, a.port)
    while not stop:
        now = time.monotonic()
        if now - last_scan > 2:
            last_scan = now
            found = [*a.images.rglob("*.img.torrent"), *a.images.rglob("*.pack.torrent")]
            for t in sorted(found):  # .img, and chunked images' packs
                img = Path(str(t)[: -len(".torrent")])
                if not img.is_file() or Path(f"{img}.lock").exists():
                    continue
                try:
                    ti = lt.torrent_info(str(t))
                except RuntimeError:
                    continue  # being rewritten: next scan
                infohash = str(ti.info_hashes().v1)
                if hashes.get(t) == infohash:
                    continue
                if t in handles:  # the image was re-created: stop seeding the old version
                    old = handles.pop(t)
                    uploaded_before[t] = uploaded_before.get(t, 0) + int(
                        old.status().all_time_upload
                    )
                    ses.remove_torrent(old)
                    log.info("re-created: %s %s → %s", t.name, hashes[t][:12], infohash[:12])
                hashes[t] = infohash
                atp = lt.add_torrent_params()
                atp.ti = ti
                atp.save_path = str(img.parent)
                atp.flags |= lt.torrent_flags.seed_mode
                handles[t] = ses.add_torrent(atp)
            if a.status:
                status = {
                    str(t): uploaded_before.get(t, 0) + int(h.status().all_time_upload)
                    for t, h in handles.items()
                }
                a.status.write_text(json.dumps(status))
        for alert in ses.pop_alerts():
            if isinstance(alert, lt.tracker_error_alert):
                # refused or unreachable (say a created image's .torrent seen before the tracker
                # reloaded its whitelist): libtorrent would wait minutes, and the clients only
                # learn of the repository from the tracker, so they would stall — retry soon
                retry = min(RETRY_MAX_S, 2 * max(1, int(alert.times_in_row)))
                alert.handle.force_reannounce(retry)
                log.warning("tracker: %s; announcing again in %d s", alert.message(), retry)
        time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
