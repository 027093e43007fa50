"""The sans-I/O decision core: the deploy and create sessions and their decision tables.

Drivers (the real runtime, the simulator, the labs and the console planner) feed events in and
execute the commands that come out.  Nothing here touches a disk, a socket or a clock.
"""

from ogref.core.deploy import DeployRequest, DeploySession, Operation, ProtocolViolationError
from ogref.core.events import FailureKind, Source

__all__ = [
    "DeployRequest",
    "DeploySession",
    "FailureKind",
    "Operation",
    "ProtocolViolationError",
    "Source",
]
