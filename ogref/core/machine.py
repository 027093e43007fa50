"""The shared skeleton of the core's sessions: a transition table ``(state, event type) → handler``.

A subclass fills ``_handlers`` and its steps; this base dispatches events, refuses events that
are not expected in the current state (a driver bug) and emits the final ``Log`` + ``Finish``.
No rules and no I/O here.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from ogref.core.events import Command, Event, Finish, Log
from ogref.errors import OgErr
from ogref.model.method import Method


class ProtocolViolationError(RuntimeError):
    """A driver fed an event the session cannot take in its state (a driver bug)."""


class Machine:
    """Base of DeploySession and CreateSession."""

    state: StrEnum
    done_state: StrEnum

    def __init__(self) -> None:
        self.result: Finish | None = None
        self.reasons: list[str] = []
        self._handlers: dict[tuple[StrEnum, type[Event]], Callable[[Event], list[Command]]] = {}

    def start(self) -> list[Command]:
        """The first commands."""
        raise NotImplementedError

    @property
    def finished(self) -> bool:
        """Whether ``Finish`` has been emitted."""
        return self.result is not None

    def handle(self, event: Event) -> list[Command]:
        """Take one event; return the next commands."""
        handler = self._handlers.get((self.state, type(event)))
        if handler is None:
            raise ProtocolViolationError(
                f"{type(event).__name__} is not expected in state {self.state}"
            )
        return handler(event)

    def _method_used(self) -> Method | None:
        return None

    def _finish(self, code: OgErr, message: str) -> list[Command]:
        self.state = self.done_state
        self.result = Finish(code, message, self._method_used(), tuple(self.reasons))
        prefix = "OK: " if code == OgErr.OK else f"ERROR {int(code)}: "
        return [Log(prefix + message), self.result]
