"""The console's commands, planned: Restore, the Deploy wizard, updateCache, clone from a MASTER,
boot once / boot target, the Restore form's image list, and each command's jobs for the
command queue (:mod:`ogref.command_queue`).

For a scope (classroom, group or computers) it builds one :class:`DeployRequest` per computer —
with the classroom's multicast session (nclients = computers of the scope in that classroom) and
torrent session — refuses computers bound to another repository than the image's, and runs each
request through the decision core with the :class:`ModelOracle` to give the per-computer plan:
the method actually used and why.  It plans only; executing is the runtime's and the labs' job.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from ogref.command_queue import Job
from ogref.core.deploy import DeployRequest, DeploySession, Operation
from ogref.core.driver import ModelOracle, drive
from ogref.core.events import Command, Finish, MethodSwitched, Source
from ogref.errors import FormatError, NotOsError, OgErr, RepositoryError
from ogref.model import (
    ClientStatus,
    Computer,
    EngineConfig,
    Filesystem,
    Image,
    Method,
    MulticastSession,
    Repository,
    TorrentSession,
    Transport,
)
from ogref.site import CloneSpec, RestoreSpec, Scope, Site


class RepositoryMismatchError(RepositoryError):
    """A computer is bound to another repository than the image's (OG_ERR_REPO)."""


@dataclass(frozen=True)
class ComputerPlan:
    """What one computer will do, and why."""

    computer: str
    classroom: str
    requested: Method
    used: Method | None
    code: OgErr
    message: str
    reasons: tuple[str, ...]
    commands: tuple[Command, ...]
    request: DeployRequest

    @property
    def ok(self) -> bool:
        return self.code == OgErr.OK

    @property
    def switched(self) -> bool:
        return any(isinstance(c, MethodSwitched) for c in self.commands)

    @property
    def log(self) -> tuple[str, ...]:
        """The tracking-log lines the plan implies."""
        from ogref.core.events import Log

        return tuple(c.text for c in self.commands if isinstance(c, Log))


@dataclass(frozen=True)
class RestorePlan:
    """A planned console command over its scope."""

    operation: Operation
    image: Image
    method: Method
    computers: tuple[ComputerPlan, ...]

    def by_method(self) -> Counter[str]:
        """How many computers end up on each method; a failed computer used none (``failed``)."""
        return Counter(str(p.used) for p in self.computers if p.ok and p.used)

    @property
    def failed(self) -> tuple[ComputerPlan, ...]:
        """The computers the command fails on."""
        return tuple(p for p in self.computers if not p.ok)

    @property
    def switched(self) -> tuple[ComputerPlan, ...]:
        return tuple(p for p in self.computers if p.switched)


_OPERATIONS = {
    "restore": Operation.RESTORE_COMMAND,
    "deploy": Operation.DEPLOY_WIZARD,
    "update_cache": Operation.UPDATE_CACHE,
}


def operation_for(kind: str) -> Operation:
    """The core operation for a site operation kind (restore, deploy, update_cache)."""
    try:
        return _OPERATIONS[kind]
    except KeyError:
        raise FormatError(
            f"unknown mode {kind!r}: use {', '.join(_OPERATIONS)} (clone, create and boot are "
            "not Restore commands)"
        ) from None


def check_repository(image: Image, computers: tuple[Computer, ...]) -> None:
    """Refuse computers bound to another repository than the image's, naming both."""
    wrong = [c for c in computers if c.repository != image.repository]
    if wrong:
        listed = ", ".join(f"{c.name} (bound to {c.repository!r})" for c in wrong[:10])
        more = f" and {len(wrong) - 10} more" if len(wrong) > 10 else ""
        raise RepositoryMismatchError(
            f"image {image.name!r} belongs to repository {image.repository!r}, but {listed}{more} "
            "use another repository; a computer can only restore images of its own repository "
            "(its binding is re-read at boot)"
        )


def build_requests(
    site: Site, spec: RestoreSpec, operation: Operation
) -> list[tuple[Computer, DeployRequest]]:
    """One DeployRequest per computer of the scope, with the classroom session strings."""
    method = Method.parse(spec.method)
    computers = site.scope(spec.to)
    if not computers:
        raise FormatError("the command's scope holds no computer")
    image = site.find_image(spec.image)
    check_repository(image, computers)
    given = MulticastSession.parse(spec.multicast) if spec.multicast else None

    def session_of(pc: Computer) -> MulticastSession:
        return given or site.classroom(pc.classroom).multicast

    # one udp-sender per (address, port): classrooms that share them share one session, whose
    # nclients is every computer of the scope in it (the console counts the scope)
    per_session = Counter((s.address, s.port) for s in map(session_of, computers))
    out = []
    for pc in computers:
        room = site.classroom(pc.classroom)
        mcast: MulticastSession | None = None
        if method.transport is Transport.MULTICAST:
            base = session_of(pc)
            mcast = base if given else base.for_clients(per_session[(base.address, base.port)])
        torrent = TorrentSession.parse(spec.torrent) if spec.torrent else room.torrent
        out.append(
            (
                pc,
                DeployRequest(
                    operation=operation,
                    image=image.name,
                    method=method,
                    disk=spec.disk,
                    partition=spec.partition,
                    multicast=mcast,
                    torrent=torrent,
                    allow_fs_change=spec.allow_fs_change,
                    postconf=spec.postconf,
                ),
            )
        )
    return out


def plan_one(
    computer: Computer,
    request: DeployRequest,
    repository: Repository,
    policy: EngineConfig,
    master_images: dict[str, Image] | None = None,
) -> ComputerPlan:
    """Run one request through the decision core against the model."""
    session = DeploySession(request, policy)
    oracle = ModelOracle(computer, repository, master_images=dict(master_images or {}))
    commands = drive(session, oracle)
    result = session.result
    assert isinstance(result, Finish)
    return ComputerPlan(
        computer=computer.name,
        classroom=computer.classroom,
        requested=request.method,
        used=result.method_used,
        code=result.code,
        message=result.message,
        reasons=result.reasons,
        commands=tuple(commands),
        request=request,
    )


def plan_restore(
    site: Site, spec: RestoreSpec, operation: Operation = Operation.RESTORE_COMMAND
) -> RestorePlan:
    """Plan the console's Restore command (or the Deploy wizard / updateCache) over its scope."""
    pairs = build_requests(site, spec, operation)
    image = site.find_image(spec.image)
    repo = site.repository(image.repository)
    plans = tuple(plan_one(pc, req, repo, site.policy) for pc, req in pairs)
    return RestorePlan(operation, image, Method.parse(spec.method), plans)


def plan_to_dict(result: RestorePlan) -> dict[str, Any]:
    """A JSON-ready view of a plan (``summary``: computers per method used, failures apart)."""
    return {
        "operation": str(result.operation),
        "image": result.image.name,
        "method": str(result.method),
        "summary": dict(result.by_method()),
        "failed": len(result.failed),
        "computers": [
            {
                "computer": p.computer,
                "classroom": p.classroom,
                "requested": str(p.requested),
                "used": str(p.used) if p.used else None,
                "switched": p.switched,
                "code": int(p.code),
                "message": p.message,
                "reasons": list(p.reasons),
                "log": list(p.log),
            }
            for p in result.computers
        ],
    }


# --------------------------------------------------------------------------- Restore form


def images_for_partition(
    site: Site, computer: str, disk: int, partition: int
) -> tuple[tuple[Image, ...], tuple[Image, ...]]:
    """The Restore form's two lists for one partition: same filesystem, and different filesystem.

    Only images of the computer's own repository are offered (seed §5.1).  Restoring one of the
    second list needs the partition type changed first (without formatting).
    """
    pc = site.computer(computer)
    part = pc.disks.partition(disk, partition)
    if part is None:
        raise FormatError(f"{computer} has no partition {disk}:{partition}")
    repo = site.repository(pc.repository)
    same = tuple(i for i in repo.images if i.filesystem == part.filesystem)
    other = tuple(i for i in repo.images if i.filesystem != part.filesystem)
    return same, other


# --------------------------------------------------------------------------- clone from MASTER


def plan_clone(site: Site, spec: CloneSpec) -> RestorePlan:
    """Plan a remote partition clone from a MASTER's partition (or one of its cached images)."""
    master = site.computer(spec.master)
    targets = tuple(c for c in site.scope(spec.to) if c.name != master.name)
    if not targets:
        raise FormatError("clone: no target computer besides the MASTER")
    if spec.from_cache:
        if master.cache is None or master.cache.get(spec.from_cache) is None:
            raise FormatError(f"MASTER {master.name} has no {spec.from_cache!r} in its cache")
        image = site.find_image(spec.from_cache)
    else:
        part = master.disks.partition(spec.disk, spec.partition)
        if part is None:
            raise FormatError(f"MASTER {master.name} has no partition {spec.disk}:{spec.partition}")
        if part.filesystem is Filesystem.EMPTY:
            raise FormatError(
                f"MASTER {master.name} partition {spec.disk}:{spec.partition} is empty"
            )
        data = part.used or part.size
        image = Image(
            name=f"{master.name}-d{spec.disk}p{spec.partition}",
            filesystem=part.filesystem,
            data_size=data,
            stored_size=data,
            repository=master.repository,
            checksum="",
            os_name=part.os_name,
        )
    method = Method.parse(f"{spec.method}-DIRECT")
    room = site.classroom(master.classroom)
    mcast = (
        room.multicast.for_clients(len(targets))
        if method.transport is Transport.MULTICAST
        else None
    )
    masters = {image.name: image}
    repo = site.repository(master.repository)
    plans = []
    for pc in targets:
        req = DeployRequest(
            operation=Operation.RESTORE_IMAGE,
            image=image.name,
            method=method,
            disk=spec.disk,
            partition=spec.partition,
            source=Source.MASTER,
            multicast=mcast,
        )
        plans.append(plan_one(pc, req, repo, site.policy, masters))
    return RestorePlan(Operation.RESTORE_IMAGE, image, method, tuple(plans))


# --------------------------------------------------------------------------- boot


@dataclass(frozen=True)
class BootPlan:
    """Boot once ("Iniciar sesión") or a permanent boot target ("Netboot avanzado" + reboot).

    ``tracked_boots``: a Windows boot on a hardware profile that needs a reboot is tracked over up
    to three boots or until a user logs in, then the computer returns to PXE (seed §5.7).
    """

    computer: str
    disk: int
    partition: int
    status: ClientStatus
    permanent: bool
    tracked_boots: int
    steps: tuple[str, ...]


def plan_boot(
    computer: Computer, disk: int, partition: int, permanent: bool, os_family: str = ""
) -> BootPlan:
    """Plan booting the OS of ``disk:partition`` (after a restore, pass the image's family)."""
    part = computer.disks.partition(disk, partition)
    if part is None:
        raise FormatError(f"{computer.name} has no partition {disk}:{partition}")
    family = os_family or part.filesystem.family
    if family == "windows":
        status = ClientStatus.WIN
    elif family == "linux":
        status = ClientStatus.LNX
    else:
        raise NotOsError(
            f"{computer.name} {disk}:{partition} ({part.filesystem}) holds no OS to boot"
        )
    steps: list[str] = []
    tracked = 0
    if permanent:
        steps += [f"set boot target {disk}:{partition} (Netboot avanzado)", "reboot"]
    elif status is ClientStatus.WIN and computer.profile.windows_needs_reboot:
        tracked = 3
        steps += [
            f"boot {disk}:{partition} once; profile {computer.profile.name!r} needs a reboot",
            "track up to 3 Windows boots or until a user logs in, then back to PXE",
        ]
    else:
        steps += [f"boot {disk}:{partition} directly from the live client"]
    return BootPlan(computer.name, disk, partition, status, permanent, tracked, tuple(steps))


# --------------------------------------------------------------------------- command queue


def job(
    index: int,
    computer: str,
    request: DeployRequest | None = None,
    *,
    reads: str | None = None,
    writes: str | None = None,
) -> Job:
    """One computer's part of console command ``index`` for the :class:`CommandQueue`: the
    multicast (address, port) its request uses, the repository image it reads or creates."""
    session = None
    if request is not None and request.multicast is not None:
        session = (request.multicast.address, request.multicast.port)
    if request is not None and request.source is Source.REPO and reads is None:
        reads = request.image
    return Job(index, computer, reads=reads, writes=writes, session=session)


def scope_label(to: Scope | str) -> str:
    """A short text for a scope."""
    if isinstance(to, str):
        return to
    if to.computers:
        return ",".join(to.computers)
    return "/".join(x for x in (to.classroom, to.group) if x) or "all"
