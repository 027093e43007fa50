"""The network-namespace lab: the real engine, real Samba, udpcast and BitTorrent moving real
images onto loop disks of a classroom of namespaces on one host.

Entry points: :func:`ogsim.lab.netns.backend.run` (a scenario → ``results.json``),
:func:`ogsim.lab.netns.backend.destroy` (clean a killed run from its manifest), and
``python -m ogsim.lab.netns.bench`` (benchmark and calibration).  Needs root.
"""

from ogsim.lab.netns.backend import LabOptions, destroy, run

__all__ = ["LabOptions", "destroy", "run"]
