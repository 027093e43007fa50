#!/usr/bin/env python3
"""Build the libvirt lab's test image: a tiny real Linux (busybox userland, the Debian cloud
kernel, a small initramfs that mounts ``root=UUID=…``), imaged with ogref's own create-image into
a repository directory.

The system boots from its own disk with GRUB (installed by configureOs after a restore), reads
``/etc/hostname`` (written by configureOs), brings ``eth0`` up with DHCP, prints
``TESTOS: BOOTED hostname=<name>`` on the serial console and reports ``{"hostname", "status":
"LNX", "firmware": "bios"|"uefi", "secure_boot": 0|1}`` (UEFI: ``/sys/firmware/efi`` exists;
Secure Boot: the kernel logged "Secure boot enabled") to ``http://<dhcp-server>:<port>/api/os`` (its stand-in for OGAgent).  A deterministic
pseudo-random payload file pads the image to ``--payload`` MiB so transfers are measurable.

Cached under ``--cache`` (default ``/var/cache/oglab``) in ``testos-<key>/repo/<name>.img`` (plus
ogref's sidecars), ``key`` hashing every input; reused when complete.  Needs root (loop device,
mkfs, mount) and the project's venv Python (it imports ogref).  Prints a JSON object.  It boots
nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
import build_live  # noqa: E402
import cpio  # noqa: E402

FS_UUID = "0a1b2c3d-4e5f-4a6b-8c7d-0123456789ab"
OS_MODULES = ("virtio_pci", "virtio_blk", "virtio_net")
REPORT_PORT = 8781

INITRD_INIT = r"""#!/bin/busybox sh
# test OS initramfs: load virtio, mount root=UUID=…, switch_root
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /newroot
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_pci virtio_blk; do modprobe $m; done
root=$(sed -n 's/.*root=\([^ ]*\).*/\1/p' /proc/cmdline)
n=0
while :; do
  dev=$(findfs "$root" 2>/dev/null) && [ -b "$dev" ] && break
  n=$((n+1)); [ $n -ge 50 ] && { echo "TESTOS: root $root not found"; exec sh; }
  sleep 0.1
done
mount -t ext4 -o ro "$dev" /newroot || exec sh
umount /sys /proc
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/init
"""

OS_INIT = r"""#!/bin/sh
# test OS init: hostname from /etc/hostname, DHCP, report to the server, idle
PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -o remount,rw /
mount -t tmpfs run /run
hostname -F /etc/hostname
mkdir -p /run/oglab
for m in virtio_pci virtio_net; do modprobe $m; done
ip link set lo up; ip link set eth0 up
udhcpc -i eth0 -s /etc/udhcpc.script -t 5 -T 1 -n -q >/dev/null 2>&1
. /run/oglab/net.env 2>/dev/null
root=$(awk '$2=="/"{print $1}' /etc/fstab)
fw=bios; [ -d /sys/firmware/efi ] && fw=uefi
sb=0; dmesg | grep -q "Secure boot enabled" && sb=1
echo "TESTOS: BOOTED hostname=$(hostname) ip=$ip fstab_root=$root firmware=$fw secure_boot=$sb uptime=$(cut -d' ' -f1 /proc/uptime)s"
body="{\"hostname\": \"$(hostname)\", \"status\": \"LNX\", \"ip\": \"$ip\", \"fstab_root\": \"$root\", \"firmware\": \"$fw\", \"secure_boot\": $sb}"
for i in 1 2 3 4 5; do
  wget -q -O /dev/null --header 'Content-Type: application/json' --post-data "$body" \
    "http://$serverid:__PORT__/api/os" && { echo "TESTOS: REPORTED"; break; }
  sleep 1
done
exec sh -c 'while :; do sleep 3600; done'
"""

GRUB_CFG = f"""set timeout=0
set default=0
menuentry "ogLab test OS" {{
  search --no-floppy --fs-uuid --set=root {FS_UUID}
  linux /boot/vmlinuz root=UUID={FS_UUID} console=ttyS0 panic=-1 quiet
  initrd /boot/initrd.img
}}
"""


def sh(*argv: str, **kw: object) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw).stdout  # type: ignore[call-overload, no-any-return]


def copy_modules(root: Path, kver: str) -> None:
    for mod in OS_MODULES:
        for line in sh("modprobe", "-S", kver, "--show-depends", mod).splitlines():
            parts = line.split()
            if parts and parts[0] == "insmod":
                dst = root / parts[1].lstrip("/")
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(parts[1], dst)
    for f in ("modules.builtin", "modules.order"):
        dst = root / f"lib/modules/{kver}/{f}"
        shutil.copy2(f"/lib/modules/{kver}/{f}", dst)
    subprocess.run(["depmod", "-b", str(root), kver], check=True)


def busybox_root(root: Path) -> None:
    for d in ("bin", "sbin", "etc", "proc", "sys", "dev", "run", "tmp", "root", "boot", "newroot"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", root / "bin/busybox")
    (root / "bin/sh").symlink_to("busybox")


def make_initrd(kver: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        busybox_root(root)
        copy_modules(root, kver)
        (root / "init").write_text(INITRD_INIT)
        (root / "init").chmod(0o755)
        with out.open("wb") as f:
            raw = Path(tmp + ".cpio")
            with raw.open("wb") as r:
                cpio.write_tree(root, r, build_live.SOURCE_DATE_EPOCH)
            f.write(
                subprocess.run(
                    ["gzip", "-9n", "-c", str(raw)], check=True, capture_output=True
                ).stdout
            )
            raw.unlink()


def make_rootfs(root: Path, kver: str, payload_mib: int, seed: int) -> None:
    busybox_root(root)
    for applet in (
        "init",
        "hostname",
        "mount",
        "udhcpc",
        "ip",
        "modprobe",
        "wget",
        "sleep",
        "awk",
        "cut",
        "dmesg",
        "grep",
    ):
        (root / "sbin" / applet).symlink_to("../bin/busybox")
    copy_modules(root, kver)
    (root / "sbin/init").unlink()
    (root / "sbin/init").write_text(OS_INIT.replace("__PORT__", str(REPORT_PORT)))
    (root / "sbin/init").chmod(0o755)
    (root / "etc/udhcpc.script").write_text(build_live.UDHCPC)
    (root / "etc/udhcpc.script").chmod(0o755)
    (root / "etc/hostname").write_text("template\n")
    (root / "etc/fstab").write_text(
        "/dev/sda1\t/\text4\tdefaults\t0\t1\n/dev/sda5\tnone\tswap\tsw\t0\t0\n"
    )
    (root / "etc/udev/rules.d").mkdir(parents=True)
    (root / "etc/udev/rules.d/70-persistent-net.rules").write_text("# from the reference PC\n")
    shutil.copy2(f"/boot/vmlinuz-{kver}", root / "boot/vmlinuz")
    make_initrd(kver, root / "boot/initrd.img")
    (root / "boot/grub").mkdir()
    (root / "boot/grub/grub.cfg").write_text(GRUB_CFG)
    rng = random.Random(seed)
    (root / "var/lib").mkdir(parents=True)
    with (root / "var/lib/oglab-payload.bin").open("wb") as f:
        for _ in range(payload_mib):
            f.write(rng.randbytes(1024 * 1024))


def build(cache: Path, name: str, payload_mib: int, force: bool = False) -> dict[str, object]:
    kver = build_live.kernel_version()
    inputs = {
        "kernel": kver,
        "busybox": build_live.package_versions().get("busybox-static"),
        "payload_mib": payload_mib,
        "name": name,
        "script": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "create": hashlib.sha256((ROOT / "ogref/runtime/create.py").read_bytes()).hexdigest(),
    }
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    out = cache / f"testos-{key}"
    info_path = out / "testos.json"
    if info_path.exists() and not force:
        info = json.loads(info_path.read_text())
        info["cached"] = True
        return info  # type: ignore[no-any-return]

    from ogref.model.storage import Filesystem, TableKind
    from ogref.runtime import disk, filesystem
    from ogref.runtime.create import create_image
    from ogref.runtime.imagefile import ImageStore
    from ogref.runtime.loopdev import LoopDisk

    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="oglab-testos-", dir=cache) as tmp:
        staged = Path(tmp) / "out"
        repo = staged / "repo"
        repo.mkdir(parents=True)
        size = (payload_mib + 96) * 1024**2
        with LoopDisk(Path(tmp) / "disk.raw", size + 4 * 1024**2) as loop:
            dev = loop.device
            disk.write_table(dev, TableKind.MSDOS, [disk.PartSpec(0, Filesystem.EXT4)])
            node = loop.partition(1)
            sh(
                "mkfs.ext4",
                "-q",
                "-F",
                "-U",
                FS_UUID,
                "-L",
                "oglab-testos",
                "-E",
                f"hash_seed={FS_UUID}",
                "-O",
                "^metadata_csum_seed",
                node,
                env={**os.environ, "E2FSPROGS_FAKE_TIME": str(build_live.SOURCE_DATE_EPOCH)},
            )
            mnt = Path(tmp) / "mnt"
            mnt.mkdir()
            sh("mount", node, str(mnt))
            try:
                make_rootfs(mnt, kver, payload_mib, seed=6)
            finally:
                sh("umount", str(mnt))
            assert filesystem.detect(node) is Filesystem.EXT4
            result = create_image(
                node, ImageStore(repo), name, host="oglab-reference", torrent=True
            )
        info = {
            "key": key,
            "dir": str(out),
            "repo": str(out / "repo"),
            "image": name,
            "filesystem_uuid": FS_UUID,
            "data_size": result.image.data_size,
            "stored_size": result.image.stored_size,
            "checksum": result.image.checksum,
            "used_bytes": result.used_bytes,
            "torrent": result.torrent,
            "inputs": inputs,
        }
        (staged / "testos.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
        for p in [staged, *staged.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        if out.exists():
            shutil.rmtree(out)
        staged.rename(out)
    info["cached"] = False
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--cache", type=Path, default=Path(os.environ.get("OGLAB_CACHE", "/var/cache/oglab"))
    )
    ap.add_argument("--name", default="testos")
    ap.add_argument("--payload", type=int, default=56, help="payload MiB (incompressible)")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    print(
        json.dumps(build(args.cache, args.name, args.payload, args.force), indent=1, sort_keys=True)
    )


if __name__ == "__main__":
    main()
