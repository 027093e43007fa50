"""Lab harnesses: the real engine in network namespaces (``netns``) and in PXE-booted VMs
(``libvirt``).  Everything a lab creates is recorded in its :mod:`manifest` and destroyed from it;
:func:`destroy` cleans any lab run's directory, whichever backend made it."""

from __future__ import annotations

from pathlib import Path


def destroy(run_dir: Path) -> list[str]:
    """Destroy what a lab run (netns or libvirt) left, from its manifest; the errors left (the
    manifest keeps what failed, so a later call retries it).  FileNotFoundError when the
    directory holds no manifest to destroy."""
    # every kind's destroyer registers itself when its module is imported
    from ogsim.lab import cgroup, manifest
    from ogsim.lab.libvirt import connection
    from ogsim.lab.netns import processes

    del cgroup, connection, processes
    for candidate in (run_dir, run_dir / "lab"):
        if (candidate / manifest.MANIFEST_NAME).exists():
            return manifest.Manifest(candidate).destroy()
    raise FileNotFoundError(f"{run_dir}: no {manifest.MANIFEST_NAME} (nothing left to destroy)")
