"""``python -m ogref``: the ``ogref`` command line (:mod:`ogref.cli`)."""

from ogref.cli import main

main()
