"""Log output of the long-running processes — the console service, the repository's control
API, the live agents: the stdlib :mod:`logging` with a level and one of two formats, ``text``
(a human's terminal or a lab's per-process log file) and ``json`` (one object per line, for a
log collector).

``configure()`` is called once by each process's entry point; ``OGLAB_LOG_LEVEL`` and
``OGLAB_LOG_FORMAT`` set the defaults, so a lab can switch every process it starts to JSON lines
without new options.  It is not the tracking log: what a computer shows the administrator
(``ogEcho`` lines) is stored by the service and read through its API.

The JSON formatter is written here (a dozen lines) rather than taken from python-json-logger:
it needs four fixed fields and ``extra``, and one more dependency in every live image is not
worth that.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, Literal

Format = Literal["text", "json"]
# the attributes every LogRecord has: anything else on a record came from ``extra=``
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonLines(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, ``extra``
    fields, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "t": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = (
                    value if isinstance(value, str | int | float | bool | None) else str(value)
                )
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure(level: str | None = None, fmt: str | None = None) -> None:
    """Send the root logger to stderr at ``level`` in ``fmt`` (``text`` or ``json``)."""
    level = (level or os.environ.get("OGLAB_LOG_LEVEL") or "info").upper()
    fmt = (fmt or os.environ.get("OGLAB_LOG_FORMAT") or "text").lower()
    if level not in logging.getLevelNamesMapping():
        raise ValueError(f"unknown log level {level.lower()!r} (debug, info, warning, error)")
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r} (text or json)")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonLines()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
