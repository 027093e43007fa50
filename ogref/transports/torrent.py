"""TORRENT into the CACHE with libtorrent, as ``ogTorrentStart`` does with ctorrent.

The ``.torrent`` (copied from the repository with the image's sidecars) names the tracker.  A
``<img>.torrent.bf`` marker exists while a download is unfinished, so an interrupted transfer
resumes (libtorrent re-checks the pieces already on disk).  The ``mode:time`` session decides
what happens after completion: ``peer`` and ``seeder`` keep seeding ``time`` seconds; ``leecher``
does not upload and stops at once.  uTP, DHT, LSD, UPnP and NAT-PMP are off (uTP over veth was
measured 2–3× slower; the lab is one LAN with a tracker).  No hashing of the result is skipped:
the caller verifies the whole-file MD5.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ogref.errors import UpdateCacheError
from ogref.model.protocol import TorrentMode, TorrentSession

PORT = 6881

REPOSITORY_REQUEST_QUEUE = 8
"""Blocks (16 KiB) one peer may have requested from the repository at a time.

libtorrent's default (2000) let each peer queue 5–15 MB at the repository: pieces requested
there are not asked of other peers, so the repository sent the same pieces to several peers
(1.9–2.1 copies of the image at N = 4) while the peers' uplinks idled.  A short queue, which the
seeder advertises in its handshake (``reqq``), keeps the repository's upload on pieces the swarm
does not have yet: 1.16–1.24 copies, fetch T(4)/T(1) 1.85 → 1.20 (docs/deviations.md #22).
128 KiB in flight still covers a LAN's bandwidth-delay product at 1 Gbit/s up to 1 ms RTT.
"""


class TorrentError(UpdateCacheError):
    """The swarm could not deliver the image (tracker unreachable, stalled, timed out)."""

    def __init__(self, message: str, *, joined: bool = True) -> None:
        super().__init__(message)
        self.joined = joined


def lt_session(listen_ip: str, port: int = PORT, *, seed: bool = False) -> Any:
    """A libtorrent session for one LAN host (TCP only, no discovery but the tracker)."""
    import libtorrent as lt

    settings = {
        "listen_interfaces": f"{listen_ip}:{port}",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "announce_to_all_trackers": True,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification,
        "user_agent": "ogref/0.1",
        "unchoke_slots_limit": -1 if seed else 8,
    }
    if seed:
        settings["max_allowed_in_request_queue"] = REPOSITORY_REQUEST_QUEUE
    return lt.session(settings)  # type: ignore[call-overload]


@dataclass(frozen=True)
class TorrentDone:
    """How a torrent transfer went."""

    downloaded: int
    uploaded: int
    seconds: float
    seeded: float
    resumed: bool


def fetch(
    torrent_file: Path,
    save_dir: Path,
    session: TorrentSession,
    listen_ip: str,
    *,
    timeout: float = 3600.0,
    stall: float = 120.0,
    log: Callable[[str], None] = lambda _t: None,
    progress: Callable[[int, int], None] | None = None,
) -> TorrentDone:
    """Download the torrent's file into ``save_dir`` and seed per ``session``."""
    import libtorrent as lt

    ti = lt.torrent_info(str(torrent_file))
    marker = Path(f"{torrent_file}.bf")
    target = save_dir / ti.files().file_path(0)
    resumed = marker.exists() and target.exists()
    marker.touch()
    ses = lt_session(listen_ip)
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = str(save_dir)
    h = ses.add_torrent(atp)
    if session.mode is TorrentMode.LEECHER:
        h.set_upload_limit(1)
    start = time.monotonic()
    last_done, last_change = -1, start
    seeded = 0.0
    seen: dict[str, tuple[int, int]] = {}
    try:
        while True:
            st = h.status()
            if st.errc.value():
                raise TorrentError(f"libtorrent: {st.errc.message()}")
            done = int(st.total_wanted_done)
            if progress is not None:
                progress(done, int(st.total_wanted))
            if st.is_seeding:
                break
            now = time.monotonic()
            if done != last_done:
                last_done, last_change = done, now
            if now - last_change > stall:
                joined = st.num_peers > 0 or done > 0
                raise TorrentError(
                    f"torrent stalled at {done} of {st.total_wanted} bytes for {stall:.0f} s "
                    f"({st.num_peers} peers; tracker: {st.current_tracker or 'none'})",
                    joined=joined,
                )
            if now - start > timeout:
                raise TorrentError(f"torrent timed out after {timeout:.0f} s at {done} bytes")
            for p in h.get_peer_info():  # per-source totals, kept after a peer disconnects
                d, u = seen.get(p.ip[0], (0, 0))
                seen[p.ip[0]] = (max(d, int(p.total_download)), max(u, int(p.total_upload)))
            for a in ses.pop_alerts():
                if isinstance(a, lt.tracker_error_alert):
                    log(f"tracker: {a.message()}")
            time.sleep(0.2)
        elapsed = time.monotonic() - start
        marker.unlink(missing_ok=True)
        log(f"torrent download complete in {elapsed:.1f} s ({st.num_peers} peers)")
        sources = sorted(((ip, d, u) for ip, (d, u) in seen.items()), key=lambda x: -x[1])
        if sources:
            log(
                "torrent peers (address down/up MB): "
                + ", ".join(f"{ip} {d / 1e6:.1f}/{u / 1e6:.1f}" for ip, d, u in sources)
            )
        if session.mode is not TorrentMode.LEECHER and session.seed_time > 0:
            log(f"seeding {session.seed_time} s ({session.mode})")
            t0 = time.monotonic()
            while time.monotonic() - t0 < session.seed_time:
                time.sleep(0.5)
            seeded = time.monotonic() - t0
        st = h.status()
        return TorrentDone(
            int(st.all_time_download), int(st.all_time_upload), elapsed, seeded, resumed
        )
    finally:
        ses.remove_torrent(h)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if any(isinstance(a, lt.torrent_removed_alert) for a in ses.pop_alerts()):
                break
            time.sleep(0.05)
        del ses
