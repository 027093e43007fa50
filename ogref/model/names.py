"""Names that leave ogLab's hands: computer host names and Windows (NetBIOS) computer names.

A computer's name becomes its ``/etc/hostname``, a run-directory path, a libvirt domain name and
a DHCP host name, so it must be an RFC 1123 host label: 1–63 letters, digits and hyphens, not
starting or ending with a hyphen (a Linux ``/etc/hostname`` may hold dotted labels).  The name post-configuration writes into a Windows SYSTEM hive
follows the NetBIOS rules: 1–15 characters, none of ``\\ / : * ? " < > |`` and no control
characters.  These functions check and return the name; they never rewrite one into another
(a name that is not valid is refused, naming the rule it breaks).
"""

from __future__ import annotations

import re

from ogref.errors import FormatError, OutOfLimitError

HOST_LABEL_MAX = 63
NETBIOS_MAX = 15
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_NETBIOS_FORBIDDEN = set('\\/:*?"<>|')


def check_host_label(name: str) -> str:
    """``name`` if it is an RFC 1123 host label, else FormatError (OG_ERR_FORMAT) saying why."""
    if not isinstance(name, str) or not name:
        raise FormatError(f"computer name {name!r} is empty or not text")
    if len(name) > HOST_LABEL_MAX:
        raise FormatError(
            f"computer name {name[:20]!r}… is {len(name)} characters long "
            f"(a host name has at most {HOST_LABEL_MAX})"
        )
    if not _HOST_LABEL.fullmatch(name):
        raise FormatError(
            f"computer name {name!r} is not a host name: use letters, digits and '-' "
            "(not first or last)"
        )
    return name


def check_host_name(name: str) -> str:
    """``name`` if it is a host name (labels joined by dots, at most 253 characters)."""
    if not isinstance(name, str) or not name or len(name) > 253:
        raise FormatError(f"host name {name!r} is empty or longer than 253 characters")
    for label in name.split("."):
        check_host_label(label)
    return name


def check_netbios_name(name: str) -> str:
    """``name`` if it is a valid Windows computer name, else OutOfLimitError (OG_ERR_OUTOFLIMIT)."""
    if not name:
        raise OutOfLimitError("the Windows computer name is empty")
    if len(name) > NETBIOS_MAX:
        raise OutOfLimitError(
            f"Windows computer name {name!r} is longer than {NETBIOS_MAX} characters"
        )
    bad = sorted({c for c in name if c in _NETBIOS_FORBIDDEN or ord(c) < 32 or ord(c) == 127})
    if bad:
        raise OutOfLimitError(
            f"Windows computer name {name!r} holds characters Windows refuses: {''.join(bad)!r}"
        )
    if name.strip(".") == "" or name != name.strip():
        raise OutOfLimitError(f"Windows computer name {name!r} is not a name")
    return name
