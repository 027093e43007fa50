"""``python -m ogref.transports.chunkcast``: see :mod:`.cli`."""

from ogref.transports.chunkcast.cli import main

main()
