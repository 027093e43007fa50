"""ogref — the reference imaging engine of ogLab.

It reproduces how OpenGnSys creates, restores and deploys filesystem images: one domain model
(:mod:`ogref.model`), one sans-I/O decision core (:mod:`ogref.core`), the console's Restore planning
(:mod:`ogref.console`) and a real runtime that executes the core's commands on block devices.

This package never imports :mod:`ogsim` nor any plotting library.
"""

__version__ = "0.1.0"
