"""How the ``ogref`` and ``ogsim`` command lines end: usage errors, interrupts and internal errors.

:class:`GuardedGroup` is the typer command group both CLIs use.  A command-line usage error
(unknown option, a value of the wrong type) exits with the CLI's usage status instead of click's 2;
an exception the CLI knows (``known``, e.g. an ``OgError``) is printed as one line and exits with
the status ``known`` gives; anything else is an *internal error* — a bug: one line on screen naming
a log file that holds the traceback, and exit status 70 (``EX_SOFTWARE``, sysexits.h).  Log files go
to ``$XDG_STATE_HOME/oglab/`` (``~/.local/state/oglab/``), or the temporary directory when that
cannot be written.  This module decides no exit status of a command's own outcome.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, ClassVar

import typer
from typer.core import TyperGroup

EX_SOFTWARE = 70


def _click_exception(name: str) -> type[Exception]:
    """One of click's exception classes (typer vendors click from 0.2x on)."""
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            cls: type[Exception] = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        return cls
    raise ImportError(f"click's {name} not found")  # pragma: no cover


_CLICK_EXCEPTION = _click_exception("ClickException")  # shown by click with its own status
_USAGE_ERROR = _click_exception("UsageError")


def log_dir() -> Path:
    """Where internal-error logs go: ``$XDG_STATE_HOME/oglab`` or ``~/.local/state/oglab``."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "oglab"


def write_log(program: str, exc: BaseException) -> Path | None:
    """Write ``exc``'s traceback to a new log file; its path (None if nothing could be written)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    text = (
        f"{program} internal error, {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n"
        f"command line: {' '.join(sys.argv)}\n\n"
        + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    )
    fallback = Path(tempfile.gettempdir()) / f"oglab-{os.getuid()}"
    for where in (log_dir(), fallback):
        try:
            where.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = where / f"{program}-{stamp}-{os.getpid()}.log"
            with path.open("x", encoding="utf-8") as f:
                f.write(text)
        except OSError:
            continue
        return path
    return None


def internal_error(program: str, exc: BaseException) -> int:
    """Report an unexpected exception: one line on stderr, the traceback in a log file; 70."""
    where = write_log(program, exc)
    what = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    log = f"traceback in {where}" if where else "no log file could be written"
    sys.stderr.write(f"{program}: internal error (a bug, please report it): {what}; {log}\n")
    return EX_SOFTWARE


class GuardedGroup(TyperGroup):
    """A typer group whose commands never end in a traceback (see the module doc).

    Subclasses set ``program``, ``usage_status`` and ``interrupted_status`` (None keeps typer's
    130) and override :meth:`known` for the exceptions they turn into a message and a status.
    """

    program: ClassVar[str] = "oglab"
    usage_status: ClassVar[int] = 2
    interrupted_status: ClassVar[int | None] = None

    def known(self, exc: Exception) -> int | None:
        """Print ``exc`` and return its exit status, or None if it is an internal error."""
        return None

    def _usage(self, exc: Exception) -> None:
        if isinstance(exc, _USAGE_ERROR):
            exc.exit_code = self.usage_status  # type: ignore[attr-defined]

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except _USAGE_ERROR as exc:
            self._usage(exc)
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except _CLICK_EXCEPTION as exc:
            self._usage(exc)
            raise
        except KeyboardInterrupt:
            if self.interrupted_status is None:
                raise
            raise typer.Exit(self.interrupted_status) from None
        except Exception as exc:
            status = self.known(exc)
            if status is None:
                status = internal_error(self.program, exc)
            raise typer.Exit(status) from None
