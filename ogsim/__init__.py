"""ogsim: the discrete-event deployment simulator of ogLab and its scenario/results/report tooling.

Simulation time is **seconds** (floats); sizes are bytes and rates bytes per second inside the
simulator (scenario files write rates in bits, parsed by :mod:`ogref.units`).  ogsim drives the
sans-I/O decision core of :mod:`ogref.core`; it never decides a fallback, a cache action or an
error code itself.  ogsim imports ogref, never the reverse.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
