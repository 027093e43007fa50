"""Lab harnesses: the real engine in network namespaces (``netns``) and in PXE-booted VMs
(``libvirt``).  Everything a lab creates is recorded in its :mod:`manifest` and destroyed from it."""
