"""The libvirt lab: a classroom of PXE-booting VMs (TCG) on an isolated libvirt network that boot
the live client, restore an image with the real runtime and then boot the restored OS.

Modules: :mod:`.connection` (URI, daemons), :mod:`.network`, :mod:`.domain`, :mod:`.bootserver`
(iPXE scripts, kernel and initramfs over HTTP, per-MAC boot choice and parameters),
:mod:`.services` (the server and repository services on the bridge), :mod:`.livestart` (the live
client's start-up: parameters, then ``ogref.agent``), :mod:`.wol` (magic packet), :mod:`.liveimage`
(cached images), :mod:`.classroom`, :mod:`.backend` (``run`` and ``destroy``).
Importing this package does not import libvirt; the backend does, lazily.
"""
