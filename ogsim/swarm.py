"""BitTorrent swarm: tracker, rarest-first blocks, upload/download slots, OpenGnSys modes.

To stay cheap at 1,000+ peers the image is cut into ``swarm_blocks`` blocks (each a run
of whole pieces); a block is the unit a peer requests, verifies and re-serves, so store-and-
forward latency is one block per hop.  The tracker answers a join with up to ``neighbours``
random live peers plus the repository seeder (bttrack + btlaunchmany); connections are
symmetric; a peer starved of useful neighbours re-announces every 30 s.  Re-announcing is polling,
so it never keeps a run alive: the timer is a daemon (when nothing else is left to happen the
swarm has stalled and the run ends), and a peer whose last 30 s saw no block arrive anywhere in
the swarm stops until one does (so a transfer slowed to a crawl is not polled a billion times).  Each peer has
``upload_slots`` and ``download_slots``; a peer-to-peer block moves at
``min(uploader link / upload slots, downloader pipeline / download slots)`` (a peer that is
uploading too shares its disk between reads and writes: ``1/(1/w + 1/r)`` is left to writes); blocks from the
repository seeder are fluid flows sharing its uplink (and its disk's read rate) with every other repository
transfer.  With ``hw.disk.piece_cache`` set (opt-in) a peer's disk is modelled instead: every block is a fluid
flow and each peer's disk a link of its random-write rate, crossed by the blocks it receives (writes) and by
the blocks it uploads that are not among those it most recently wrote or read (``piece_cache`` bytes of
memory, LRU): out-of-order piece reads and writes cost the disk alike, cached uploads nothing.
Under packet loss a block moves at most as fast as one TCP connection can (Mathis et al. 1997:
``MSS·1.22 / (RTT·√p)``; RTT from both ends' delays, p the sum of both ends' loss).
Modes (``mode:time``): peer and seeder upload while downloading and keep seeding ``time`` s after
completion; leecher does not upload and exits 30 s after completion.  ctorrent has no timeout:
a swarm that loses every copy of a block stalls (reported as "did not finish").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from ogref.model import Image, TorrentMode, TorrentSession
from ogsim.disk import cache_write_rate
from ogsim.loop import Timer
from ogsim.network import Flow, Link
from ogsim.unicast import tcp_loss_cap

if TYPE_CHECKING:
    from ogsim.client import SimClient
    from ogsim.node import Source
    from ogsim.simulator import Simulation

REANNOUNCE_S = 30.0
LEECHER_EXIT_S = 30.0


class Peer:
    """A ctorrent process (or the repository seeder when ``client`` is None)."""

    # slots: the scans read these attributes for every neighbour of every block request
    __slots__ = (
        "alive",
        "cache",
        "cache_cap",
        "client",
        "completed_at",
        "disk",
        "down_used",
        "have",
        "incoming",
        "inflight",
        "mark",
        "name",
        "neighbours",
        "offline",
        "on_data",
        "on_ok",
        "outgoing",
        "pipe",
        "reannounce",
        "rotate",
        "seeder",
        "share",
        "spare",
        "stay",
        "swarm",
        "up_slots",
        "up_used",
        "upload",
        "want",
    )

    def __init__(self, swarm: Swarm, client: SimClient | None, upload: bool) -> None:
        self.swarm = swarm
        self.client = client
        self.name = client.name if client else f"seeder@{swarm.source.name}"
        self.have = 0
        self.inflight = 0
        self.up_used = 0
        self.down_used = 0
        self.upload = upload
        self.alive = True
        self.offline = False
        self.neighbours: list[Peer] = []
        self.outgoing: dict[Transfer, None] = {}
        self.incoming: dict[Transfer, None] = {}
        self.completed_at = -1.0
        self.reannounce: Timer | None = None
        self.on_data: Callable[[], None] = lambda: None
        self.on_ok: Callable[[float], None] = lambda n: None
        self.rotate = 0
        self.stay = 0.0
        self.mark = -1  # the swarm's progress when this peer's re-announce was set
        self.seeder = client is None
        # upload slots: read once (the hot loops compare against them per neighbour)
        self.up_slots = swarm.source.seeder_slots if self.seeder else swarm.params.upload_slots
        # derived state the scans filter on (kept by the swarm at every change of what they
        # depend on; Swarm.check() recomputes them):
        # ``spare``: the blocks this peer holds when it has a free upload slot, else 0
        self.spare = 0
        # ``want``: the blocks it needs and has not requested while it waits for an uploader
        # (in ``swarm.waiting``, alive and online), else 0
        self.want = 0
        # rates, computed once: the upload share of one slot, and the download pipeline's
        # rate per slot (idle, uploading too) for the disk's slowdown it was computed at
        self.share = (
            client.hw.link_rate * swarm.params.torrent_efficiency / self.up_slots
            if client is not None
            else 0.0
        )
        self.pipe = (-1.0, 0.0, 0.0)
        # the disk model (``hw.disk.piece_cache`` set): the peer's disk, a link its block
        # writes and uncached block reads share (None: not modelled), and the blocks held in
        # memory, least recently used first, and how many fit
        self.disk: Link | None = None
        self.cache: OrderedDict[int, None] | None = None
        self.cache_cap = 0
        if client is not None and client.hw.piece_cache_bytes is not None:
            self.disk = swarm.sim.net.link(f"{self.name} disk", 0.0)
            self.cache = OrderedDict()
            self.cache_cap = int(client.hw.piece_cache_bytes // swarm.block_size)

    def usable(self) -> bool:
        if not self.alive or self.offline or not self.upload:
            return False
        if self.seeder:
            return self.swarm.source.up and self.swarm.source.seeder_alive
        return True

    # the client's job interface
    def refresh(self) -> None:
        """The client's link went down or came back (or its disk changed)."""
        c = self.client
        if c is None:
            return
        if not c.link_up and not self.offline:
            self.offline = True
            self.want = 0
            self.swarm.abort_transfers(self)
        elif c.link_up and self.offline:
            self.offline = False
            self.swarm._rewant(self)
            self.swarm._progressed()
            self.swarm.kick(self)

    def cancel(self) -> None:
        """The client crashed: leave the swarm at once."""
        self.swarm.leave(self)

    @property
    def moved(self) -> float:
        return bin(self.have).count("1") * self.swarm.block_size


class Transfer:
    """One block moving from ``up`` to ``down``."""

    __slots__ = ("block", "disk", "down", "flow", "timer", "up")

    def __init__(self, up: Peer, down: Peer, block: int) -> None:
        self.up = up
        self.down = down
        self.block = block
        self.disk = False  # read from ``up``'s disk (the disk model, not in its memory)
        self.timer: Timer | None = None
        self.flow: Flow | None = None


class Swarm:
    """All peers sharing one image file (``<image>.img.torrent``)."""

    def __init__(self, sim: Simulation, source: Source, image: Image) -> None:
        self.sim = sim
        self.source = source
        self.image = image
        self.params = sim.scenario.sim
        blocks_by_piece = max(1, -(-image.stored_size // image.torrent_piece))
        wanted = self.params.swarm_blocks
        if wanted is None:  # finer for small swarms, coarser for huge ones: cost ~ N × blocks
            wanted = max(64, min(1024, 65536 // max(1, len(sim.clients))))
        self.nblocks = max(1, min(wanted, blocks_by_piece))
        self.block_size = image.stored_size / self.nblocks
        self.full = (1 << self.nblocks) - 1
        self.avail = [0] * self.nblocks
        self.peers: list[Peer] = []
        self.waiting: dict[Peer, None] = {}  # ordered: deterministic service order
        self.seed = Peer(self, None, upload=True)
        self.seed.have = self.seed.spare = self.full
        for b in range(self.nblocks):
            self.avail[b] += 1
        self.transfers = 0
        self.progress = 0  # blocks arrived (and peers joined): what a re-announce could find
        self.dormant: dict[Peer, None] = {}  # starved peers waiting for progress to re-announce

    # ------------------------------------------------------------------ membership

    def join(
        self,
        client: SimClient,
        session: TorrentSession,
        on_data: Callable[[], None],
        on_ok: Callable[[float], None],
    ) -> Peer:
        """A client's ctorrent starts: announce to the tracker and connect."""
        peer = Peer(self, client, upload=session.mode is not TorrentMode.LEECHER)
        peer.on_data = on_data
        peer.on_ok = on_ok
        peer.stay = (
            LEECHER_EXIT_S if session.mode is TorrentMode.LEECHER else float(session.seed_time)
        )
        self._announce(peer)
        self.peers.append(peer)
        self._progressed()
        self.kick(peer)
        return peer

    def _announce(self, peer: Peer) -> None:
        nb = peer.neighbours
        # a neighbour list holds each peer once (connections are made in pairs, the seeder
        # is added once), so this counts the distinct neighbours but the seeder
        seeded = self.seed in nb
        want = self.params.neighbours - (len(nb) - seeded)
        if want <= 0 and seeded:  # the tracker's answer adds nothing (and draws nothing)
            return
        rng = self.sim.rng
        known = set(nb)
        peers = self.peers
        if len(peers) <= 3 * want:  # small swarm: pick among every live peer
            pool = [p for p in peers if p.alive and p is not peer and p not in known]
            picked = rng.sample(pool, min(max(want, 0), len(pool)))
        else:  # large swarm: random probes, like a tracker's random numwant answer
            picked = []
            for _ in range(3 * want):
                if len(picked) >= want:
                    break
                p = peers[rng.randrange(len(peers))]
                if p.alive and p is not peer and p not in known:
                    known.add(p)
                    picked.append(p)
        for p in picked:
            peer.neighbours.append(p)
            p.neighbours.append(peer)
        if self.seed not in peer.neighbours:
            peer.neighbours.append(self.seed)

    def leave(self, peer: Peer) -> None:
        """A peer exits (seeding time over, crash): its copies vanish from the swarm."""
        if not peer.alive:
            return
        peer.alive = False
        self.abort_transfers(peer)
        self.waiting.pop(peer, None)
        peer.want = 0
        self.dormant.pop(peer, None)
        m = peer.have
        while m:
            low = m & -m
            self.avail[low.bit_length() - 1] -= 1
            m ^= low
        if peer.reannounce is not None:
            peer.reannounce.cancel()

    def seeder_death(self) -> None:
        """The repository seeder stops."""
        self.source.seeder_alive = False
        self.abort_transfers(self.seed, incoming=False)
        m = self.seed.have
        while m:
            low = m & -m
            self.avail[low.bit_length() - 1] -= 1
            m ^= low
        self.seed.have = self.seed.spare = 0

    def abort_transfers(self, peer: Peer, incoming: bool = True) -> None:
        """Cancel the blocks ``peer`` sends (and receives); the other ends retry elsewhere."""
        others: dict[Peer, None] = {}
        for x in list(peer.outgoing):
            self._cancel(x)
            others[x.down] = None
        if incoming:
            for x in list(peer.incoming):
                self._cancel(x)
                others[x.up] = None
        for p in others:
            if p.alive:
                self.kick(p)

    def _cancel(self, x: Transfer) -> None:
        if x.timer is not None:
            x.timer.cancel()
        if x.flow is not None:
            self.sim.net.stop(x.flow)
        self._release(x)

    def _release(self, x: Transfer) -> None:
        up, down = x.up, x.down
        x.timer = x.flow = None  # no cycle left (transfer ↔ timer/flow): freed by refcount
        up.outgoing.pop(x, None)
        down.incoming.pop(x, None)
        up.up_used -= 1
        if up.up_used < up.up_slots:
            up.spare = up.have
        down.down_used -= 1
        down.inflight &= ~(1 << x.block)
        if down.want or down in self.waiting:  # the block is wanted again while it waits
            self._rewant(down)

    def _rewant(self, peer: Peer) -> None:
        """Recompute ``peer.want`` from what it depends on."""
        if peer.alive and not peer.offline and peer in self.waiting:
            peer.want = self.full & ~peer.have & ~peer.inflight
        else:
            peer.want = 0

    def check(self) -> None:
        """Assert that every peer's derived ``spare`` and ``want`` match the state they
        summarise, and that a waiting peer has a free download slot and something to request
        (the scans rely on both; the tests call this after every event of a run)."""
        slots = self.params.download_slots
        for p in [*self.peers, self.seed]:
            assert p.spare == (p.have if p.up_used < p.up_slots else 0), p.name
            need = self.full & ~p.have & ~p.inflight
            eligible = p.alive and not p.offline and p in self.waiting
            assert p.want == (need if eligible else 0), p.name
            if eligible:
                assert p.down_used < slots and need, p.name
        # no peer with a free upload slot holds a block a waiting neighbour wants: it offered
        # to them when it got the slot or the block, and each waiting peer scanned its
        # neighbours when it began to wait (the short scans rely on this)
        for p in self.peers:
            if p.cache is not None:  # the disk model: memory holds blocks the peer has
                assert len(p.cache) <= p.cache_cap, p.name
                assert all(p.have >> b & 1 for b in p.cache), p.name
        for u in self.peers:
            if u.spare and u.usable():
                for w in u.neighbours:
                    assert not w.want & u.have, (u.name, w.name)

    # ------------------------------------------------------------------ scheduling

    def kick(self, peer: Peer) -> None:
        """Let ``peer`` fill its download slots and serve waiting neighbours."""
        if peer.client is not None and peer.have != self.full:
            self._fill(peer)
        self._offer(peer)

    def _fill(self, down: Peer, freed: Peer | None = None) -> None:
        """Start blocks into ``down``'s free download slots from its neighbours, scanning them
        from where its last request went; ``down`` waits when none can serve.

        ``freed``: the uploader whose block to ``down`` just arrived.  When ``down`` was already
        waiting, every other neighbour either has been unable to serve it since its last scan or
        has offered to it since (``_offer`` runs whenever a peer frees a slot, gets a block or
        comes back), so only ``freed`` and the repository seeder (whose availability changes
        with the server, outside the swarm) can serve now: the scan looks at those two, in the
        same rotated order, and picks what the full scan would.

        The full scan tests one bitmask per neighbour, its ``spare`` blocks: it stops, in the
        rotated order, exactly at the neighbours with a free upload slot and a block ``down``
        needs, the ones the per-neighbour tests kept; ``usable()`` is then asked of those
        only."""
        if not down.alive or down.offline:
            return
        slots = self.params.download_slots
        nb = down.neighbours
        n = len(nb)
        full = self.full
        few: list[Peer] | None = None
        at: list[tuple[int, Peer]] | None = None
        if freed is not None and down in self.waiting:
            few = [freed] if freed is self.seed else [freed, self.seed]
        while down.down_used < slots:
            need = full & ~down.have & ~down.inflight
            if not need:
                self.waiting.pop(down, None)
                down.want = 0
                return
            started = False
            rot = down.rotate
            # scan the neighbours from where the last request went
            if few is None:
                i = rot
                for up in nb[rot:] + nb[:rot] if rot else nb:
                    i += 1
                    if up.spare & need and up.usable():
                        down.rotate = i % n
                        self._start(up, down, self._rarest(up.have & need))
                        started = True
                        break
            else:
                if at is None:  # their places among the neighbours, looked up once
                    at = [(nb.index(few[0]), few[0])]
                    if len(few) == 2:
                        at.append((nb.index(few[1]), few[1]))
                if len(at) == 2 and (at[1][0] - rot) % n < (at[0][0] - rot) % n:
                    at.reverse()  # the rotated order
                for k, up in at:
                    if up.up_used >= up.up_slots:
                        continue
                    cand = up.have & need
                    if cand and up.usable():
                        down.rotate = (k + 1) % n
                        self._start(up, down, self._rarest(cand))
                        started = True
                        break
            if not started:
                self.waiting[down] = None
                down.want = need
                if down.down_used == 0 and down.reannounce is None:
                    self._schedule_reannounce(down, self.progress)
                return
        self.waiting.pop(down, None)
        down.want = 0

    def _schedule_reannounce(self, peer: Peer, mark: int) -> None:
        self.dormant.pop(peer, None)
        peer.mark = mark
        peer.reannounce = self.sim.loop.after(REANNOUNCE_S, self._reannounce, peer, daemon=True)

    def _reannounce(self, peer: Peer) -> None:
        peer.reannounce = None
        if peer.alive and peer.have != self.full:
            if peer.mark == self.progress:  # nothing arrived anywhere: polling cannot help now
                self.dormant[peer] = None
                return
            known = len(peer.neighbours)
            self._announce(peer)
            if peer.want and len(peer.neighbours) == known:
                # it waits and the tracker's answer added nobody: no neighbour with a free
                # upload slot holds a block it wants, and it holds none a waiting neighbour
                # wants (``check``), so of the full scan and its offer only the repository
                # seeder could do anything (its availability follows the server): the short
                # scan looks at the seeder alone and picks what the full scan would
                self._fill(peer, self.seed)
            else:
                self.kick(peer)

    def _progressed(self) -> None:
        """A block arrived or a peer joined or came back: dormant peers re-announce again."""
        self.progress += 1
        if self.dormant:
            for peer in list(self.dormant):
                if peer.alive and peer.reannounce is None and peer.have != self.full:
                    self._schedule_reannounce(peer, self.progress - 1)
            self.dormant.clear()

    def _offer(self, up: Peer) -> None:
        """``up`` has a free upload slot (it freed one, got a block or came back): it serves the
        peers waiting among its neighbours (the repository seeder: among every waiting peer),
        in order, directly (no re-scan of their neighbours).

        For a peer the scan tests one bitmask per neighbour, its ``want``: it serves the
        neighbours that wait (alive, online) and need a block ``up`` holds, exactly the ones the
        per-neighbour tests served.  The others are left alone, as those tests did: a waiting
        peer always has a free download slot and something to request (``check``), so none of
        them was ever dropped from ``waiting`` without being served."""
        waiting = self.waiting
        if not waiting or up.up_used >= up.up_slots or not up.usable():
            return
        have = up.have
        slots = self.params.download_slots
        full = self.full
        served: list[Peer] = []  # popped from ``waiting`` after the loop (it iterates it)
        if up.seeder:
            for w in waiting:
                if up.up_used >= up.up_slots:
                    break
                if not w.alive or w.offline:
                    continue
                while w.down_used < slots and up.up_used < up.up_slots:
                    cand = have & ~w.have & ~w.inflight
                    if not cand:
                        break
                    self._start(up, w, self._rarest(cand))
                if w.down_used >= slots or not (full & ~w.have & ~w.inflight):
                    served.append(w)
        else:
            for w in up.neighbours:
                if not w.want & have:
                    continue
                while w.down_used < slots:
                    cand = have & ~w.have & ~w.inflight
                    if not cand:
                        break
                    self._start(up, w, self._rarest(cand))
                    if up.up_used >= up.up_slots:
                        break
                if w.down_used >= slots or not (full & ~w.have & ~w.inflight):
                    served.append(w)
                if up.up_used >= up.up_slots:
                    break
        for w in served:
            waiting.pop(w, None)
            w.want = 0

    def _rarest(self, cand: int) -> int:
        avail = self.avail
        best = -1
        best_n = 1 << 30
        ties = 0
        rng = self.sim.rng
        m = cand
        while m:
            low = m & -m
            b = low.bit_length() - 1
            m ^= low
            a = avail[b]
            if a < best_n:
                best, best_n, ties = b, a, 1
            elif a == best_n:
                ties += 1
                if rng.random() * ties < 1.0:
                    best = b
        return best

    def _pipe(self, c: SimClient) -> tuple[float, float, float]:
        """``c``'s download pipeline per download slot, idle and uploading too, at its disk's
        current slowdown (``Peer.pipe``)."""
        eff = self.params.torrent_efficiency
        slots = self.params.download_slots
        disk = cache_write_rate(c.disk, random=True)
        # an uploading peer's disk also reads the blocks it uploads; with upload ≈ download
        # the write rate left is 1 / (1/w + 1/r)
        busy = 1.0 / (1.0 / disk + 1.0 / c.disk.read)
        link = c.hw.link_rate
        return c.disk.slowdown, min(link, disk) * eff / slots, min(link, busy) * eff / slots

    def _rate(self, up: Peer, down: Peer) -> float:
        c = down.client
        assert c is not None
        pipe = down.pipe
        if pipe[0] != c.disk.slowdown:  # first block, or a slow-disk fault came or went
            pipe = down.pipe = self._pipe(c)
        per_down = pipe[2] if down.up_used > 0 else pipe[1]
        u = up.client
        if u is None:
            loss = c.loss + self.source.loss
            if loss > 0:  # one TCP connection under random loss (Mathis et al.)
                rtt = 2 * (c.hw.delay_s + self.source.delay_to(c))
                eff = self.params.torrent_efficiency
                return min(per_down, tcp_loss_cap(rtt, loss) * eff)
            return per_down
        rate = min(per_down, up.share)
        loss = c.loss + u.loss
        if loss > 0:
            eff = self.params.torrent_efficiency
            return min(rate, tcp_loss_cap(2 * (c.hw.delay_s + u.hw.delay_s), loss) * eff)
        return rate

    def _start(self, up: Peer, down: Peer, block: int) -> None:
        x = Transfer(up, down, block)
        up.up_used += 1
        if up.up_used >= up.up_slots:
            up.spare = 0
        down.down_used += 1
        bit = 1 << block
        down.inflight |= bit
        down.want &= ~bit  # requested now (0 stays 0: a peer that does not wait wants nothing)
        up.outgoing[x] = None
        down.incoming[x] = None
        self.transfers += 1
        if down.disk is not None:
            self._start_flow(x)
            return
        rate = self._rate(up, down)
        if up.seeder:
            assert down.client is not None
            links = self.source.path_to(down.client)
            x.flow = Flow(
                self.block_size,
                links,
                rate,
                lambda f: self._done(x),
                label="seed",
                wire=1.0 / self.params.torrent_efficiency,
            )
            self.sim.net.start(x.flow)
        elif rate > 0:
            x.timer = self.sim.loop.after(self.block_size / rate, self._done, x)
        # else: nothing moves on a 0 rate (refused at load): the block never arrives

    def _start_flow(self, x: Transfer) -> None:
        """The disk model: ``x`` is a fluid flow across ``down``'s disk, the seeder's uplink
        and disk (from the seeder) or ``up``'s disk (a block not in its memory), capped by the
        links' slot shares (and TCP's loss limit)."""
        up, down = x.up, x.down
        c = down.client
        assert c is not None and down.disk is not None
        self._sync_disk(down)
        eff = self.params.torrent_efficiency
        links: tuple[Link, ...] = (down.disk,)
        cap = c.hw.link_rate * eff / self.params.download_slots
        loss = c.loss
        if up.seeder:
            links = self.source.path_to(c) + links
            loss += self.source.loss
            rtt = 2 * (c.hw.delay_s + self.source.delay_to(c))
        else:
            u = up.client
            assert u is not None
            cap = min(cap, up.share)
            loss += u.loss
            rtt = 2 * (c.hw.delay_s + u.hw.delay_s)
            if up.cache is not None and up.disk is not None:
                if x.block in up.cache:
                    up.cache.move_to_end(x.block)
                else:
                    x.disk = True
                    self._sync_disk(up)
                    links += (up.disk,)
                    self._cache(up, x.block)
        if loss > 0:  # one TCP connection under random loss (Mathis et al.)
            cap = min(cap, tcp_loss_cap(rtt, loss) * eff)
        x.flow = Flow(
            self.block_size,
            links,
            cap,
            lambda f: self._done(x),
            label="seed" if up.seeder else "peer",
            wire=1.0 / eff,  # on the disks too: their capacity is set in wire bytes
        )
        self.sim.net.start(x.flow)

    def _sync_disk(self, peer: Peer) -> None:
        """Set ``peer``'s disk link to its random-write rate at the disk's current slowdown
        (``Peer.pipe[0]`` records the slowdown it was set at)."""
        c = peer.client
        assert c is not None and peer.disk is not None
        if peer.pipe[0] != c.disk.slowdown:
            peer.pipe = (c.disk.slowdown, 0.0, 0.0)
            rate = cache_write_rate(c.disk, random=True) / self.params.torrent_efficiency
            self.sim.net.set_link(peer.disk, capacity=rate)

    def _cache(self, peer: Peer, block: int) -> None:
        """``peer`` wrote or read ``block``: the most recent in its memory."""
        cache = peer.cache
        assert cache is not None
        if peer.cache_cap > 0:
            cache[block] = None
            cache.move_to_end(block)
            if len(cache) > peer.cache_cap:
                cache.popitem(last=False)

    def _done(self, x: Transfer) -> None:
        down, up = x.down, x.up
        # an uploader that had a free slot already has offered to every waiting neighbour
        # since (nothing it holds is wanted by them): the slot freed now changes nothing for them
        was_full = up.up_used >= up.up_slots
        self._release(x)
        bit = 1 << x.block
        if down.alive and not down.have & bit:
            down.have |= bit
            if down.up_used < down.up_slots:
                down.spare = down.have
            down.want &= ~bit  # it had been requested (kept out of ``want`` since) and is here
            self.avail[x.block] += 1
            if down.cache is not None:
                self._cache(down, x.block)
            self._progressed()
        if down.alive and down.have == self.full and down.completed_at < 0:
            self._complete(down)
        if down.alive:
            if down.client is not None and down.have != self.full:
                self._fill(down, up)
            self._offer(down)
        if up.alive and (was_full or up.seeder):
            self._offer(up)

    def _complete(self, peer: Peer) -> None:
        peer.completed_at = self.sim.loop.now
        self.waiting.pop(peer, None)
        peer.want = 0
        peer.on_data()
        self.sim.loop.after(peer.stay, self._exit, peer)

    def _exit(self, peer: Peer) -> None:
        if peer.alive:
            self.leave(peer)
            peer.on_ok(float(self.image.stored_size))
