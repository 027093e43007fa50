"""chunkcast: ogLab's receiver-driven multicast of chunked images (docs/chunkcast.md).

A sender multicasts the chunks receivers ask for; receivers join at any moment, ask for what they
lack (suppressed against the sender's announced queue), verify every chunk against the
authenticated manifest before writing it, write out of order and leave when complete.  The
protocol is in :mod:`.wire`, :mod:`.sender` and :mod:`.receiver` (no I/O); :mod:`.runtime` puts
it on UDP sockets and disks; ``python -m ogref.transports.chunkcast`` is its command line.
udpcast (:mod:`ogref.transports.multicast`) stays OpenGnSys's default multicast.
"""
