"""Units written as strings (``38GiB``, ``1Gbit``, ``90s``, ``1%``), parsed in this one place.

Sizes are integers of bytes, rates floats of bits per second, durations floats of seconds and
ratios floats in [0, 1].  Bare numbers mean those base units; numbers may carry an exponent
(``2e1s``, ``1.5e3MB``).  Anything else (``None``, a mapping, a list) is a FormatError, never a
TypeError.  ``PositiveRate`` is a rate where 0 makes no sense (a link, a disk).  The ``Size``/``Rate``/``Duration``/
``Ratio`` aliases are pydantic field types that parse on input and print canonical strings on output.
This module knows nothing about images, disks or networks.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

from ogref.errors import FormatError

# one number, exponent included (the capture group is added where it is used)
_NUM = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
# sizes beyond this many bytes are no disk's (and would overflow 64-bit fields downstream)
MAX_SIZE = 2**63 - 1
# durations beyond 31 years are no deployment's (and a clock that far loses sub-µs resolution)
MAX_DURATION = 1e9

_SIZE_UNITS: dict[str, int] = {
    "": 1, "b": 1, "byte": 1, "bytes": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "t": 1000**4, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}  # fmt: skip

_RATE_UNITS: dict[str, float] = {
    "": 1.0, "bps": 1.0, "bit": 1.0, "bit/s": 1.0, "b/s": 1.0,
    "kbit": 1e3, "kbps": 1e3, "kb/s": 1e3, "k": 1e3,
    "mbit": 1e6, "mbps": 1e6, "mb/s": 1e6, "m": 1e6,
    "gbit": 1e9, "gbps": 1e9, "gb/s": 1e9, "g": 1e9,
    "tbit": 1e12, "tbps": 1e12,
}  # fmt: skip
# byte rates (upper-case B), converted to bits
_BYTE_RATE_UNITS: dict[str, float] = {
    "B/s": 8.0, "kB/s": 8e3, "KB/s": 8e3, "MB/s": 8e6, "GB/s": 8e9,
    "KiB/s": 8 * 1024.0, "MiB/s": 8 * 1024.0**2, "GiB/s": 8 * 1024.0**3,
}  # fmt: skip

_DURATION_UNITS: dict[str, float] = {
    "": 1.0, "s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6,
    "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0,
}  # fmt: skip

_TOKEN = re.compile(r"\s*(" + _NUM + r")\s*([A-Za-z/%]*)")
_NUMBER_UNIT = re.compile(r"\s*(" + _NUM + r")\s*([A-Za-z/%]*)\s*")


def _text(value: object, what: str) -> str:
    """``value`` if it is a string, else a FormatError naming what was expected."""
    if not isinstance(value, str):
        raise FormatError(f"not a {what}: {value!r} (give a number or a string)")
    return value


def _float(value: int | float, what: str) -> float:
    """A bare number as a float (an int too large for a float is a FormatError)."""
    try:
        return float(value)
    except OverflowError:
        raise FormatError(f"{what} out of range: {value!r}") from None


def _split(value: object, what: str) -> tuple[float, str]:
    """``(number, unit)`` of a bare number (unit ``""``) or a ``<number><unit>`` string."""
    if isinstance(value, bool):
        raise FormatError(f"not a {what}: {value!r}")
    if isinstance(value, int | float):
        return _float(value, what), ""
    m = _NUMBER_UNIT.fullmatch(_text(value, what))
    if not m:
        raise FormatError(f"not a {what}: {value!r}")
    return float(m.group(1)), m.group(2)


def parse_size(value: str | int | float) -> int:
    """Parse a size (``38GiB``, ``642MB``, ``4096``) into bytes."""
    num, unit = _split(value, "size (e.g. 38GiB)")
    factor = _SIZE_UNITS.get(unit.lower())
    if factor is None or (unit.endswith("b") and unit != "B"):  # trailing b = bits: not a size
        raise FormatError(
            f"unknown size unit {unit!r} in {value!r} (use B, kB, MB, GB, KiB, MiB, GiB…)"
        )
    if num < 0 or math.isinf(num) or math.isnan(num):
        raise FormatError(f"size must be a finite non-negative number: {value!r}")
    if num * factor > MAX_SIZE:
        raise FormatError(f"size out of range (at most 8 EiB): {value!r}")
    return round(num * factor)


def parse_rate(value: str | int | float) -> float:
    """Parse a rate (``1Gbit``, ``100Mbps``, ``70M``, ``12.5MB/s``) into bits per second."""
    num, unit = _split(value, "rate (e.g. 1Gbit)")
    if unit in _BYTE_RATE_UNITS:
        factor = _BYTE_RATE_UNITS[unit]
    elif unit.lower() in _RATE_UNITS and not (unit.endswith("B/s") or unit.endswith("Bps")):
        factor = _RATE_UNITS[unit.lower()]
    else:
        raise FormatError(
            f"unknown rate unit {unit!r} in {value!r} (use bit, kbit, Mbit, Gbit, MB/s…)"
        )
    if num < 0 or math.isinf(num * factor) or math.isnan(num):
        raise FormatError(f"rate must be a finite non-negative number: {value!r}")
    return num * factor


def parse_positive_rate(value: str | int | float) -> float:
    """A rate that must be more than 0 (a link, a disk, a CPU: 0 would never finish anything)."""
    rate = parse_rate(value)
    if rate <= 0:
        raise FormatError(f"rate must be greater than 0: {value!r}")
    return rate


def parse_duration(value: str | int | float) -> float:
    """Parse a duration (``90s``, ``2min``, ``1h30min``, ``0.2ms``) into seconds."""
    if isinstance(value, bool):
        raise FormatError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        total = _float(value, "duration")
    else:
        text = _text(value, "duration (e.g. 90s, 2min)").strip()
        pos, total, seen = 0, 0.0, False
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise FormatError(f"not a duration (e.g. 90s, 2min): {value!r}")
            factor = _DURATION_UNITS.get(m.group(2).lower())
            if factor is None:
                raise FormatError(f"unknown duration unit {m.group(2)!r} in {value!r}")
            total += float(m.group(1)) * factor
            pos, seen = m.end(), True
        if not seen:
            raise FormatError(f"empty duration: {value!r}")
    if total < 0 or math.isinf(total) or math.isnan(total):
        raise FormatError(f"duration must be a finite non-negative number: {value!r}")
    if total > MAX_DURATION:
        raise FormatError(f"duration out of range (at most 10^9 s, 31 years): {value!r}")
    return total


def parse_ratio(value: str | int | float) -> float:
    """Parse a ratio (``1%``, ``0.5%``, ``0.01``) into a float in [0, 1]."""
    num, unit = _split(value, "ratio (e.g. 1%)")
    if unit == "%":
        ratio = num / 100.0
    elif unit == "":
        ratio = num
    else:
        raise FormatError(f"unknown ratio unit {unit!r} in {value!r} (use % or a fraction)")
    if not 0.0 <= ratio <= 1.0:
        raise FormatError(f"ratio out of [0, 1]: {value!r}")
    return ratio


def format_size(n: int | float) -> str:
    """Print bytes with the largest binary unit that keeps it readable (``38GiB``, ``1.5MiB``)."""
    n = float(n)
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= factor:
            v = n / factor
            return f"{v:.0f}{unit}" if v == int(v) else f"{v:.4g}{unit}"
    return f"{int(n)}B"


def format_rate(bps: float) -> str:
    """Print bits per second (``1Gbit``, ``100Mbit``, ``2.5Mbit``)."""
    for unit, factor in (("Tbit", 1e12), ("Gbit", 1e9), ("Mbit", 1e6), ("kbit", 1e3)):
        if abs(bps) >= factor:
            v = bps / factor
            return f"{v:.0f}{unit}" if v == int(v) else f"{v:.3g}{unit}"
    return f"{bps:g}bit"


def format_duration(seconds: float) -> str:
    """Print seconds (``90s``, ``12.5s``, ``2min``, ``0.2ms``)."""
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}min"
    return f"{seconds:g}s"


def format_ratio(r: float) -> str:
    """Print a ratio as a percentage (``1%``)."""
    return f"{r * 100:g}%"


Size = Annotated[int, BeforeValidator(parse_size), PlainSerializer(format_size, return_type=str)]
Rate = Annotated[float, BeforeValidator(parse_rate), PlainSerializer(format_rate, return_type=str)]
PositiveRate = Annotated[
    float, BeforeValidator(parse_positive_rate), PlainSerializer(format_rate, return_type=str)
]
Duration = Annotated[
    float, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]
Ratio = Annotated[
    float, BeforeValidator(parse_ratio), PlainSerializer(format_ratio, return_type=str)
]

KIB = 1024
MIB = 1024**2
GIB = 1024**3
