"""The repository's control API as a live client calls it: "start the multicast sender of this
image on this session", with the capability token the console service put in the command
(:mod:`ogref.repo.control` checks it).  One small HTTP client; it decides nothing.
"""

from __future__ import annotations

import httpx

from ogref.model.protocol import MulticastSession


class ControlError(RuntimeError):
    """The repository did not start (or confirm) the sender: unreachable, refused, or no
    such image."""


class RepositoryControl:
    """The control API at ``base_url`` (``http://repo:2009``), with this command's ``token``."""

    def __init__(self, base_url: str, token: str | None, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def start(self, image: str, session: MulticastSession) -> str:
        """Have the sender of ``image`` run on ``session``'s port: ``started`` or ``running``."""
        if not self.token:
            raise ControlError("no capability token for the repository in this command")
        try:
            reply = httpx.post(
                f"{self.base_url}/api/v1/multicast/start",
                json={"image": image, "session": str(session)},
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise ControlError(f"repository control API unreachable: {exc}") from None
        if reply.status_code != 200:
            try:
                detail = reply.json().get("detail", reply.text)
            except ValueError:
                detail = reply.text
            raise ControlError(f"repository refused ({reply.status_code}): {detail}")
        return str(reply.json().get("state", ""))
