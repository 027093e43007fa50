"""The client agent — our ogLive: takes commands from the server, runs the decision core through
the runtime executor with the network transports, reports its status and streams its tracking log.

One process per client.  ``--once REQUEST.json`` runs a single request and prints the result as
JSON (tests, debugging); otherwise it polls the server's signed API: ``/agent/heartbeat`` every
second with its status (OPG waiting, BSY busy), ``/agent/poll`` for the next command,
``/agent/log`` with tracking-log lines as they come, ``/agent/done`` with the per-computer
record; ``reboot`` / ``poweroff`` (outside any operation) flush the log, sync and restart or
stop the machine it runs on — only meaningful in a live client (the VM lab), never in a
namespace.  ``--grub`` lets configureOs install GRUB (a real disk; the namespace lab's loop
devices have no use for it).  Requests and results are plain JSON (:func:`request_to_json`,
:func:`request_from_json`); the engine.cfg policy travels as engine.cfg text.  It decides nothing the core does not.

Besides Restore / Deploy / updateCache it runs:

- ``create``: the runtime's createImage (:func:`ogref.runtime.create.create_image`: the core's
  create session, partclone + compressor into a staged file published atomically, sidecars and
  ``.torrent``) into the CACHE, or into the repository share mounted read-write with the
  *writer* account (``--smb-admin-cred``) through ``smbnetfs`` (FUSE; OpenGnSys mounts the
  repository over CIFS in admin mode — this kernel has no CIFS).  Its free space is the share's
  own (``smbclient du``), read when mounting.
- ``clone_source`` (the MASTER of a clone): ``partclone | compressor`` of its partition — or a
  cached image file — piped into ``udp-sender`` with OpenGnSys's ``sendFileMcast`` options
  (OpenGnSys's ``ogMcastSendPartition``); it tells the server ``/agent/ready`` (with the image's
  filesystem and size) once the sender listens, and reports the stream's MD5 when it ends.
- a restore whose source is a MASTER: the core's session, with the image the MASTER announced and
  ``udp-receiver`` from the MASTER's address (:class:`MasterExecutor`).
- ``boot``: with ``--emulate-boot`` (a namespace has no OS to start) it checks what configureOs
  left on the partition — ``/etc/hostname``, ``/etc/fstab``'s root on this partition's UUID, the
  active flag; Windows: the computer name in the SYSTEM hive — and, if that boots, reports it to
  the server's OS port (``--os-report``, the same ``POST /api/os`` a booted OS of the VM lab
  sends) and takes that status (LNX/WIN).  ``reboot`` then returns it to the live client (OPG),
  unless a boot target was set, which is "booted" again.  Nothing is executed from the image;
  GRUB is not installed in a namespace.
"""
