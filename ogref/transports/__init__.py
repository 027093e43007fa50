"""Client-side transfers of the live client over a real network: SMB unicast (pysmb), udpcast
multicast receive, BitTorrent (libtorrent), and restores fed from a network stream; plus the
signed HTTP requests the agent, the server and the repository's control API exchange.

:class:`~ogref.transports.executor.NetworkExecutor` plugs them into the runtime's executor.  No
decision is taken here (the core decides); no repository-side service runs here (``ogref.repo``).
"""
