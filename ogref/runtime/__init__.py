"""The real runtime: executes the decision core's commands on block devices and files.

Loop devices, partition tables, the CACHE partition, image files with their sidecars, the
partclone/compressor pipelines, updateCache from a repository directory, post-configuration,
whole-disk procedures (partition table + partition restores) and a driver that runs a :class:`~ogref.core.deploy.DeploySession` against real devices.  It takes no
decisions of its own (fallbacks, cache admission and error codes belong to :mod:`ogref.core`);
network transports (SMB, multicast, torrent) belong to the netns lab.
"""
