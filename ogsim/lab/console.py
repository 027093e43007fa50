"""The labs' console: the calls a lab makes to the console service it started (``ogref
serve``), over the service's UNIX socket with the administrator's API token — register a
computer, submit a site operation, read an operation's records and the computers' status,
reboot, halt.  A thin client of ``/api/v1``; the service decides everything.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httpx

from ogsim.results import ComputerResult, LogLine, Phase, Status

Json = dict[str, Any]
STATUSES = ("ok", "failed", "crashed", "refused", "not_started")


def computer_result(
    rec: Json, of: Callable[[float | None], float], status: str | None = None
) -> ComputerResult:
    """One computer's record of an operation, as the service gives it
    (``GET /api/v1/operations/N``), as the results file holds it: ``of`` turns the service's
    wall-clock times into scenario seconds; ``status`` overrides the record's (a lab that
    crashed the computer says so).  A status the results file does not know is "failed" once
    the record is final, else "not_started"."""
    if status is None:
        status = str(rec.get("status", "not_started"))
        if status not in STATUSES:
            status = "failed" if rec.get("final") else "not_started"
    return ComputerResult(
        name=rec["name"],
        classroom=rec.get("classroom", ""),
        group=rec.get("group", ""),
        method_requested=rec.get("requested"),
        method_used=rec.get("method_used"),
        switched=bool(rec.get("switched")),
        fallback_reasons=list(rec.get("reasons", [])) if rec.get("switched") else [],
        phases=[
            Phase(
                name=p["name"],
                start=of(p["start"]),
                end=of(p["end"]),
                bytes=float(p.get("bytes", 0)),
                detail=p.get("detail", ""),
            )
            for p in rec.get("phases", [])
        ],
        bytes_moved=float(rec.get("bytes_moved", 0)),
        checksum_verified=rec.get("checksum_verified"),
        status=cast(Status, status),
        code=rec.get("code"),
        message=rec.get("message", ""),
        started=of(rec.get("started") or rec.get("sent")),
        finished=of(rec["finished"]) if rec.get("finished") else None,
        os_hostname=rec.get("os_hostname"),
        log=[LogLine(t=of(line["t"]), text=line["text"]) for line in rec.get("log", [])],
    )


class ConsoleError(RuntimeError):
    """The service refused a console call, or could not be reached."""


class Console:
    """The console service at ``socket`` (a UNIX socket), as its administrator."""

    def __init__(self, socket: Path, token: str, timeout: float = 60.0) -> None:
        self.http = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(socket)),
            base_url="http://console",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def _call(
        self, method: str, path: str, body: Json | None = None, timeout: float | None = None
    ) -> Json:
        try:
            kw: dict[str, Any] = {"json": body} if body is not None else {}
            if timeout is not None:
                kw["timeout"] = timeout
            reply = self.http.request(method, f"/api/v1{path}", **kw)
        except httpx.HTTPError as exc:
            raise ConsoleError(f"{method} {path}: {exc}") from None
        if reply.status_code >= 400:
            try:
                detail = reply.json().get("detail", reply.text)
            except ValueError:
                detail = reply.text
            raise ConsoleError(f"{method} {path}: {reply.status_code} {detail}")
        out = reply.json()
        return out if isinstance(out, dict) else {"value": out}

    def register(self, name: str) -> bytes:
        """A new key pair for ``name``; its private key (PEM), shown once."""
        return str(self._call("POST", f"/computers/{name}/credential")["private_key_pem"]).encode()

    def server_public(self) -> str:
        return str(self._call("GET", "/server-key")["public_key"])

    def submit(self, index: int) -> Json:
        """Run the site's operation ``index``: ``{"op", "computers"}`` (``"refused"`` too when
        the console refused it with an OpenGnSys code)."""
        return self._call("POST", "/operations", {"index": index})

    def status(self, op: int | str) -> Json:
        return self._call("GET", f"/operations/{op}")

    def operations(self) -> list[Json]:
        """Every operation the service holds, oldest first, with its per-computer records (ids
        count up from 1 in the fresh database of a lab or a course)."""
        out = []
        op = 1
        while True:
            try:
                out.append(self.status(op))
            except ConsoleError as exc:
                if " 404 " in str(exc):
                    return out
                raise
            op += 1

    def clients(self) -> list[Json]:
        return list(self._call("GET", "/computers")["clients"])

    def log(self, name: str) -> list[Json]:
        """``name``'s whole tracking log (lines with ``t`` and ``text``)."""
        lines: list[Json] = []
        after = 0
        while True:
            got = self._call("GET", f"/computers/{name}/log?after={after}&limit=5000")["lines"]
            lines += got
            if len(got) < 5000:
                return lines
            after = int(got[-1]["id"])

    def reboot(self, names: list[str], kind: str = "reboot") -> Json:
        return self._call("POST", "/computers/control", {"names": names, "kind": kind})

    def halt(self, timeout: float = 5.0) -> None:
        self._call("POST", "/halt", timeout=timeout)

    def close(self) -> None:
        self.http.close()
