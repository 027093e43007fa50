"""Repository-side services as the product runs them: the multicast sender behind an
authenticated control API, the BitTorrent seeder, and the tracker's configuration.

Samba itself is configured by the lab (it is a system daemon, not ogref code).  Nothing here runs
on a client or decides a method.
"""
