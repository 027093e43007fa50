#!/usr/bin/env python3
"""Build the live client (our ogLive) for the libvirt lab: a kernel and a base initramfs, from
the Debian packages installed on this host.

The base initramfs holds busybox, Debian's Python 3.11 (``/usr/bin/python3``, so
python3-libtorrent works), partclone, zstd/lzop, udpcast, parted, e2fsprogs, ntfs-3g, dosfstools, mtools,
cifs-utils, GRUB for i386-pc and x86_64-efi (with Debian's signed shim and GRUB), efibootmgr, the
virtio/cifs/fuse/vfat/efivarfs kernel modules, and pydantic, pyyaml and pysmb
(+ pyasn1, tqdm) copied from the project's venv (pyparted and libtorrent come from Debian).  Files are taken per package (``dpkg -L``) plus the shared-library
closure (``ldd``), minus docs/locales/tests.  Its ``/init`` mounts the pseudo filesystems, loads
the modules, mounts efivarfs when booted by UEFI, brings ``eth0`` up with DHCP (the DHCP host name becomes the hostname), prints
``LIVECLIENT: READY`` on the serial console and runs ``/opt/oglab/live-start`` when a second
initramfs (the per-run one carrying the ogref code and the agent) provides it.

Reproducible: sorted cpio with fixed mtimes, zstd without timestamps.  Cached under
``--cache`` (default ``/var/cache/oglab``) in ``live-<key>/`` where ``key`` hashes every input
(package versions, kernel, venv package versions, this script); an existing complete build is
reused.  Prints a JSON object with the paths.  It does not boot anything and does not carry
ogref itself (that changes every commit; see ``ogsim.lab.libvirt.liveimage``).

Usage: ``build_live.py [--cache DIR] [--site-packages DIR] [--force]``.  Needs root only for
nothing; needs the packages in tools/debian-packages.txt.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import cpio  # noqa: E402

PACKAGES = (
    "busybox-static",
    "python3-minimal",
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "python3-libtorrent",
    "python3-parted",
    "partclone",
    "zstd",
    "lzop",
    "gzip",
    "udpcast",
    "parted",
    "e2fsprogs",
    "ntfs-3g",
    "dosfstools",
    # mtools: the ESP read and written without mounting it (whole-disk restore's boot entry,
    # Windows' boot manager on the ESP: ogref.runtime.efiboot / winefi)
    "mtools",
    "cifs-utils",
    "util-linux",
    "mount",
    "grub-pc-bin",
    "grub2-common",
    "grub-common",
    # UEFI: GRUB for x86_64-efi, Debian's signed shim and GRUB (grub-install --uefi-secure-boot
    # puts them on the ESP), efibootmgr for the firmware's boot entries
    "grub-efi-amd64-bin",
    "grub-efi-amd64-signed",
    "shim-signed",
    "efibootmgr",
)
# from the venv: what ogref imports that Debian 12 lacks (pydantic 2) or ships in other versions
# (pyparted comes from Debian: the venv's build, made for another interpreter, crashes here)
VENV_MODULES = (
    "pydantic",
    "pydantic_core",
    "typing_extensions.py",
    "annotated_types",
    "typing_inspection",
    "yaml",
    "_yaml",
    "smb",
    "nmb",
    "pyasn1",
    "tqdm",
    "tenacity",
    # the agent's link to the console service: HTTP and Ed25519 signatures
    "httpx",
    "httpcore",
    "h11",
    "anyio",
    "idna",
    "certifi",
    "cryptography",
    "cffi",
    "_cffi_backend*",
    "pycparser",
    "jwt",
    # chunked images (the CACHE's chunk store, chunkcast): zstd frames, BLAKE3 names, FastCDC
    "zstandard",
    "blake3",
    "pyfastcdc",
)
# cifs with SMB3 allocates cmac(aes), ccm/gcm and sha512 (ENOENT from mount when they are missing)
KERNEL_MODULES = (
    "virtio_pci",
    "virtio_net",
    "virtio_blk",
    "cifs",
    "fuse",
    "cmac",
    "ccm",
    "gcm",
    "sha512_generic",
    "ecb",
    "ctr",
    "gf128mul",
    # the EFI system partition and the firmware's variables
    "vfat",
    "nls_cp437",
    "nls_iso8859_1",
    "nls_utf8",
    "nls_ascii",
    "efivarfs",
)
EXCLUDE = re.compile(
    r"^/usr/share/(doc|man|info|locale|lintian|bug|bash-completion|zsh|menu|pixmaps|applications)/"
    r"|^/usr/lib/python3\.11/(test|idlelib|tkinter|turtledemo|lib2to3|ensurepip|pydoc_data"
    r"|config-3\.11-x86_64-linux-gnu)/"
    r"|/__pycache__/|\.pyc$"
    r"|^/usr/lib/grub/x86_64-efi-signed/(gcd|grubnet)"
    r"|^/usr/s?bin/(pzstd|grub-(mkrescue|fstest|render-label|file|syslinux2cfg|mount|mkstandalone"
    r"|mknetdir|mkfont|mkpasswd-pbkdf2|mklayout|glue-efi|menulst2cfg|script-check|kbdcomp"
    r"|mkrelpath|mkconfig|ofpathname|sparc64-setup|macbless|mkdevicemap))$"
)
SOURCE_DATE_EPOCH = 1700000000

INIT = r"""#!/bin/busybox sh
# ogLab live client /init (built by labs/live/build_live.py)
/bin/busybox mkdir -p /proc /sys /dev /run /tmp /var/lock /mnt
/bin/busybox --install -s /usr/bin 2>/dev/null
# the kernel's request_module() runs /sbin/modprobe: let it load cifs' crypto on demand
[ -e /usr/sbin/modprobe ] || ln -s /usr/bin/busybox /usr/sbin/modprobe
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
echo 0 > /proc/sys/kernel/printk 2>/dev/null
if [ -d /sys/firmware/efi ]; then
  modprobe efivarfs 2>/dev/null
  mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null
fi
echo "LIVECLIENT: BOOTED $(cut -d' ' -f1 /proc/uptime)s"
for m in virtio_pci virtio_net virtio_blk; do modprobe $m; done
ip link set lo up
ip link set eth0 up
mkdir -p /run/oglab
n=0
until udhcpc -i eth0 -s /etc/udhcpc.script -t 5 -T 1 -n -q >/dev/null 2>&1; do
  n=$((n+1)); [ $n -ge 5 ] && break
done
. /run/oglab/net.env 2>/dev/null
echo "LIVECLIENT: READY ip=$ip hostname=$(hostname) uptime=$(cut -d' ' -f1 /proc/uptime)s"
if [ -x /opt/oglab/live-start ]; then
  /opt/oglab/live-start
  echo "LIVECLIENT: live-start exited $?"
fi
exec setsid cttyhack sh
"""

UDHCPC = r"""#!/bin/sh
# udhcpc hook: configure eth0 and remember the lease (ogGetHostname reads the DHCP host name)
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface" 2>/dev/null
    [ -n "$hostname" ] && hostname "$hostname"
    {
      echo "ip=$ip"; echo "mask=$mask"; echo "router=${router%% *}"
      echo "serverid=$serverid"; echo "siaddr=$siaddr"; echo "dhcp_hostname=$hostname"
    } > /run/oglab/net.env
    ;;
esac
exit 0
"""


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def kernel_version() -> str:
    found = sorted(Path("/boot").glob("vmlinuz-*-cloud-amd64"))
    if not found:
        raise SystemExit("no /boot/vmlinuz-*-cloud-amd64: apt-get install linux-image-cloud-amd64")
    return found[-1].name.removeprefix("vmlinuz-")


def package_versions() -> dict[str, str]:
    out = sh("dpkg-query", "-W", "-f=${Package} ${Version} ${db:Status-Abbrev}\n", *PACKAGES)
    versions = {}
    for line in out.splitlines():
        name, version, status = line.split(" ", 2)
        if not status.startswith("ii"):
            raise SystemExit(f"package {name} is not installed")
        versions[name] = version
    missing = set(PACKAGES) - set(versions)
    if missing:
        raise SystemExit(f"packages not installed: {' '.join(sorted(missing))}")
    return versions


def default_site_packages() -> Path:
    return HERE.parent.parent / ".venv/lib/python3.11/site-packages"


def venv_versions(site: Path) -> dict[str, str]:
    out = {}
    for d in sorted(site.glob("*.dist-info")):
        out[d.name] = ""
    return {k: v for k, v in out.items() if k.split("-")[0].lower().replace("_", "") in _wanted()}


def _wanted() -> set[str]:
    names = {"pydantic", "pydanticcore", "typingextensions", "annotatedtypes"}
    return names | {"typinginspection", "pyyaml", "pysmb", "pyasn1", "tqdm", "tenacity", "httpx",
                    "httpcore", "h11", "anyio", "idna", "certifi", "cryptography",
                    "cffi", "pycparser", "pyjwt", "zstandard", "blake3",
                    "pyfastcdc"}  # fmt: skip


def build_key(site: Path) -> tuple[str, dict[str, object]]:
    inputs: dict[str, object] = {
        "kernel": kernel_version(),
        "packages": package_versions(),
        "venv": sorted(venv_versions(site)),
        "modules": KERNEL_MODULES,
        "script": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "cpio": hashlib.sha256((HERE / "cpio.py").read_bytes()).hexdigest(),
    }
    blob = json.dumps(inputs, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16], inputs


def _dest(root: Path, path: str) -> Path:
    """Where a host path goes in the image (merged /usr: parents resolved, the leaf kept)."""
    p = Path(path)
    parent = Path(os.path.realpath(p.parent))
    return root / parent.relative_to("/") / p.name


def _copy(root: Path, path: str) -> Path | None:
    src = Path(path)
    if not src.exists() and not src.is_symlink():
        return None
    dst = _dest(root, path)
    if dst.exists() or dst.is_symlink():
        return dst
    if src.is_dir() and not src.is_symlink():
        dst.mkdir(parents=True, exist_ok=True)
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
        target = Path(os.path.realpath(src))
        if target.exists():
            _copy(root, str(target))
    else:
        shutil.copy2(src, dst)
    return dst


def _is_elf(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def copy_packages(root: Path) -> list[Path]:
    elves: list[Path] = []
    for pkg in PACKAGES:
        for line in sh("dpkg", "-L", pkg).splitlines():
            if not line.startswith("/") or EXCLUDE.search(
                line + ("/" if Path(line).is_dir() else "")
            ):
                continue
            src = Path(line)
            if src.is_dir() and not src.is_symlink():
                continue
            _copy(root, line)
            if not src.is_symlink() and not line.startswith("/usr/lib/grub/") and _is_elf(src):
                elves.append(src)
    return elves


def copy_libraries(root: Path, elves: list[Path]) -> int:
    """Copy the shared-library closure of ``elves`` (ldd resolves it transitively)."""
    libs: set[str] = {"/lib64/ld-linux-x86-64.so.2"}
    for elf in elves:
        r = subprocess.run(["ldd", str(elf)], capture_output=True, text=True, check=False)
        for m in re.finditer(r"(?:=>\s*)?(/\S+)\s+\(0x", r.stdout):
            libs.add(m.group(1))
    for lib in sorted(libs):
        _copy(root, lib)
    return len(libs)


def copy_venv(root: Path, site: Path) -> list[Path]:
    dest = root / "usr/lib/python3/dist-packages"
    dest.mkdir(parents=True, exist_ok=True)
    elves = []
    for pattern in VENV_MODULES:
        found = sorted(site.glob(pattern))
        src = found[0] if found else site / pattern
        name = src.name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elves += [p for p in (dest / name).rglob("*.so")]
        elif src.exists():
            shutil.copy2(src, dest / name)
            if name.endswith(".so"):
                elves.append(dest / name)
        else:
            raise SystemExit(f"{src} missing: install the project's lab extra into the venv")
    return elves


def copy_kernel_modules(root: Path, kver: str) -> None:
    for mod in KERNEL_MODULES:
        for line in sh("modprobe", "-S", kver, "--show-depends", mod).splitlines():
            parts = line.split()
            if parts and parts[0] == "insmod":
                _copy(root, parts[1])
    base = Path("/lib/modules") / kver
    for f in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
        _copy(root, str(base / f))
    subprocess.run(["depmod", "-b", str(root), kver], check=True)


def write_init(root: Path) -> None:
    for link, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib")):
        if not (root / link).exists():
            (root / link).symlink_to(target)
    if (root / "usr/lib64").exists() and not (root / "lib64").exists():
        (root / "lib64").symlink_to("usr/lib64")
    for d in ("proc", "sys", "dev", "run", "tmp", "mnt", "etc", "var/lock", "opt/oglab", "root"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "init").write_text(INIT)
    (root / "init").chmod(0o755)
    (root / "etc/udhcpc.script").write_text(UDHCPC)
    (root / "etc/udhcpc.script").chmod(0o755)
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"
    )
    (root / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (root / "etc/mtab").symlink_to("/proc/self/mounts")
    (root / "etc/hostname").write_text("oglive\n")


def compile_python(root: Path) -> None:
    """Byte-compile with unchecked hashes: deterministic and valid whatever the mtimes."""
    for tree in ("usr/lib/python3.11", "usr/lib/python3/dist-packages"):
        subprocess.run(
            [
                "/usr/bin/python3",
                "-m",
                "compileall",
                "-q",
                "-j",
                "0",
                "--invalidation-mode",
                "unchecked-hash",
                "-s",
                str(root),
                "-p",
                "/",
                str(root / tree),
            ],
            check=False,
        )


def build(cache: Path, site: Path, force: bool = False) -> dict[str, object]:
    key, inputs = build_key(site)
    out = cache / f"live-{key}"
    info_path = out / "live.json"
    if info_path.exists() and not force:
        info = json.loads(info_path.read_text())
        info["cached"] = True
        return info  # type: ignore[no-any-return]
    kver = str(inputs["kernel"])
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="oglab-live-", dir=cache) as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        elves = copy_packages(root)
        elves += copy_venv(root, site)
        nlibs = copy_libraries(root, elves)
        copy_kernel_modules(root, kver)
        write_init(root)
        compile_python(root)
        raw = Path(tmp) / "live-base.cpio"
        with raw.open("wb") as f:
            entries = cpio.write_tree(root, f, SOURCE_DATE_EPOCH)
        staged = Path(tmp) / "out"
        staged.mkdir()
        subprocess.run(
            [
                "zstd",
                "-q",
                "-T0",
                "-12",
                "--no-progress",
                str(raw),
                "-o",
                str(staged / "live-base.cpio.zst"),
            ],
            check=True,
        )
        shutil.copy2(f"/boot/vmlinuz-{kver}", staged / "vmlinuz")
        info = {
            "key": key,
            "dir": str(out),
            "kernel": str(out / "vmlinuz"),
            "initrd": str(out / "live-base.cpio.zst"),
            "kernel_version": kver,
            "entries": entries,
            "libraries": nlibs,
            "uncompressed_bytes": raw.stat().st_size,
            "initrd_bytes": (staged / "live-base.cpio.zst").stat().st_size,
            "inputs": inputs,
        }
        (staged / "live.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
        for f in staged.iterdir():
            f.chmod(0o644)
        if out.exists():
            shutil.rmtree(out)
        staged.rename(out)
        out.chmod(0o755)
    info["cached"] = False
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--cache", type=Path, default=Path(os.environ.get("OGLAB_CACHE", "/var/cache/oglab"))
    )
    ap.add_argument("--site-packages", type=Path, default=default_site_packages())
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    print(json.dumps(build(args.cache, args.site_packages, args.force), indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
