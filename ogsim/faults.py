"""Faults on the simulator: the scenario's fault vocabulary turned into model changes.

link_loss and slow_disk change a computer's link or disk (and restore it after ``for``);
link_down silences a computer (or a repository uplink); client_crash powers a computer off;
seeder_death stops torrent seeders; repository_restart takes a repository's services down for
its outage: multicast senders die, SMB flows and the seeder stall.  What a fault *means* for an
operation (timeouts, codes) is decided by the transports and the decision core, not here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ogsim.scenario import (
    ClientCrashFault,
    FaultSpec,
    LinkDownFault,
    LinkLossFault,
    RepositoryRestartFault,
    SeederDeathFault,
    SlowDiskFault,
)

if TYPE_CHECKING:
    from ogsim.simulator import Simulation


def apply_fault(sim: Simulation, fault: FaultSpec) -> None:
    """Apply one fault now."""
    body = getattr(fault, fault.kind)
    sim.log_event(f"fault: {fault.kind} {body.model_dump(exclude_none=True, by_alias=True)}")
    if isinstance(body, LinkLossFault):
        _link_loss(sim, body)
    elif isinstance(body, LinkDownFault):
        _link_down(sim, body)
    elif isinstance(body, ClientCrashFault):
        for name in body.target:
            sim.clients[name].crash()
    elif isinstance(body, SeederDeathFault):
        _seeder_death(sim, body)
    elif isinstance(body, SlowDiskFault):
        _slow_disk(sim, body)
    elif isinstance(body, RepositoryRestartFault):
        _repo_restart(sim, body)


def _link_loss(sim: Simulation, f: LinkLossFault) -> None:
    for name in f.target:
        if name in sim.sources:
            src = sim.sources[name]
            old = src.loss
            src.loss = f.loss
            _refresh_all(sim)
            if f.duration is not None:
                sim.loop.after(f.duration, _restore_source_loss, sim, name, old)
            continue
        c = sim.clients[name]
        old_c = c.loss
        c.loss = f.loss
        c.changed()
        if f.duration is not None:
            sim.loop.after(f.duration, _restore_loss, sim, name, old_c)


def _restore_loss(sim: Simulation, name: str, loss: float) -> None:
    c = sim.clients[name]
    c.loss = loss
    c.changed()


def _restore_source_loss(sim: Simulation, name: str, loss: float) -> None:
    sim.sources[name].loss = loss
    _refresh_all(sim)


def _refresh_all(sim: Simulation) -> None:
    for c in sim.clients.values():
        c.changed()


def _link_down(sim: Simulation, f: LinkDownFault) -> None:
    for name in f.target:
        if name in sim.sources:
            sim.net.set_link(sim.sources[name].uplink, up=False)
            if f.duration is not None:
                uplink = sim.sources[name].uplink
                sim.loop.after(f.duration, lambda lk=uplink: sim.net.set_link(lk, up=True))
            continue
        c = sim.clients[name]
        c.link_up = False
        c.changed()
        if f.duration is not None:
            sim.loop.after(f.duration, _link_up, sim, name)


def _link_up(sim: Simulation, name: str) -> None:
    c = sim.clients[name]
    if c.alive:
        c.link_up = True
        c.changed()


def _seeder_death(sim: Simulation, f: SeederDeathFault) -> None:
    for name in f.target:
        if name in sim.sources:
            for (src, _), swarm in sim.swarms.items():
                if src == name:
                    swarm.seeder_death()
            sim.sources[name].seeder_alive = False
        else:
            for swarm in sim.swarms.values():
                for p in swarm.peers:
                    if p.client is not None and p.client.name == name and p.alive:
                        p.upload = False
                        swarm.abort_transfers(p, incoming=False)


def _slow_disk(sim: Simulation, f: SlowDiskFault) -> None:
    for name in f.target:
        c = sim.clients[name]
        c.disk.slowdown = f.factor
        c.changed()
        if f.duration is not None:
            sim.loop.after(f.duration, _disk_back, sim, name)
    _refresh_sessions(sim)


def _disk_back(sim: Simulation, name: str) -> None:
    c = sim.clients[name]
    c.disk.slowdown = 1.0
    c.changed()
    _refresh_sessions(sim)


def _refresh_sessions(sim: Simulation) -> None:
    for s in sim.sessions.values():
        s.refresh()


def _repo_restart(sim: Simulation, f: RepositoryRestartFault) -> None:
    src = sim.sources[f.repository]
    outage = f.outage if f.outage is not None else src.restart_s
    src.up = False
    sim.net.set_link(src.uplink, up=False)
    for (name, _, _), s in list(sim.sessions.items()):
        if name == f.repository:
            s.source_down()

    def back() -> None:
        src.up = True
        sim.net.set_link(src.uplink, up=True)
        for (name, _), swarm in sim.swarms.items():
            if name == f.repository:
                for p in swarm.peers:
                    if p.alive:
                        swarm.kick(p)

    sim.loop.after(outage, back)
