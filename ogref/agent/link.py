"""The agent's one channel to the service: a thread that keeps exchanging ``sync`` requests —
the agent's status, what it is doing, its tracking-log lines, finished commands' results, a
MASTER's "ready" — and receives its next command in the answer.

Every request is signed with the computer's own key and carries the next number of its replay
counter (:mod:`ogref.service.keys`); every answer must carry the service's signature over this
very request, or it is refused (a spoofed service cannot order a restore).  One request at a time,
from this thread only, so the counter always rises in the order the service sees.  An idle agent
waits at the service up to ``idle_wait`` seconds for a command (a long poll: a command submitted
for it starts at once); a busy one reports every ``busy_wait`` seconds, or at once when
:meth:`ServiceLink.nudge` is called (a new stage).  What could not be delivered (the network is
away) is kept and sent again, so a result reaches the service when the cable is back.

It runs no command: commands go to ``on_command``, in order.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ogref.service.keys import (
    AuthError,
    SeqCounter,
    load_private_key,
    parse_public_key,
    sign_request,
    verify_answer,
)

Json = dict[str, Any]
SYNC_PATH = "/api/v1/agent/sync"


@dataclass
class Outbox:
    """What waits to be told to the service (thread-safe)."""

    lines: list[Json] = field(default_factory=list)
    done: list[Json] = field(default_factory=list)
    ready: list[Json] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    carried: bool = False  # what the last take() gave is on its way, not yet acknowledged

    def take(self) -> tuple[list[Json], list[Json], list[Json]]:
        with self.lock:
            out = (self.lines, self.done, self.ready)
            self.lines, self.done, self.ready = [], [], []
            self.carried = any(out)
            return out

    def delivered(self) -> None:
        """The service has acknowledged what the last take() gave."""
        with self.lock:
            self.carried = False

    def give_back(self, lines: list[Json], done: list[Json], ready: list[Json]) -> None:
        with self.lock:
            self.lines = lines + self.lines
            self.done = done + self.done
            self.ready = ready + self.ready
            self.carried = False

    def empty(self) -> bool:
        with self.lock:
            return not (self.lines or self.done or self.ready or self.carried)


class ServiceLink:
    """The agent side of ``sync`` (see the module docstring)."""

    def __init__(
        self,
        base_url: str,
        computer: str,
        key_file: Path,
        server_public: str,
        seq_file: Path,
        *,
        state: Callable[[], Json],
        on_command: Callable[[Json], None],
        busy: Callable[[], bool],
        idle_wait: float = 2.0,
        busy_wait: float = 0.25,
        log: Callable[[str], None] = lambda _t: None,
        http: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.computer = computer
        self.key = load_private_key(key_file)
        self.server_public = parse_public_key(server_public)
        self.seq = SeqCounter(seq_file)
        self.state = state
        self.on_command = on_command
        self.busy = busy
        self.idle_wait = idle_wait
        self.busy_wait = busy_wait
        self.say = log
        self.outbox = Outbox()
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.exchanges = 0  # completed exchanges with the service
        self.http = http or httpx.Client(timeout=httpx.Timeout(10.0, read=15.0))
        self.thread = threading.Thread(target=self._run, name="service-link", daemon=True)

    # ------------------------------------------------------------------ the agent's side

    def start(self) -> None:
        self.thread.start()

    def nudge(self) -> None:
        """Report now (a new command, a new stage, a result)."""
        self.wake.set()

    def log(self, text: str) -> None:
        with self.outbox.lock:
            self.outbox.lines.append({"t": time.time(), "text": text})

    def done(self, command_id: str, result: Json) -> None:
        with self.outbox.lock:
            self.outbox.done.append({"id": command_id, "result": result})
        self.nudge()

    def ready(self, command_id: str, image: Json, chunkcast: Json | None = None) -> None:
        """A MASTER sends: the image it announces (and, by chunkcast, the session key the
        service hands its targets)."""
        entry: Json = {"id": command_id, "image": image}
        if chunkcast:
            entry["chunkcast"] = chunkcast
        with self.outbox.lock:
            self.outbox.ready.append(entry)
        self.nudge()

    def delivered(self, timeout: float = 60.0) -> bool:
        """Wait until what is queued now has reached the service: two more completed exchanges
        (one in flight when it was queued may not carry it; the next one does)."""
        target = self.exchanges + 2
        deadline = time.monotonic() + timeout
        while self.exchanges < target and time.monotonic() < deadline:
            self.nudge()
            time.sleep(0.05)
        return self.exchanges >= target

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued has been delivered — acknowledged by the service, not
        merely taken for an exchange still in flight (False: not within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while not self.outbox.empty() and time.monotonic() < deadline:
            self.nudge()
            time.sleep(0.05)
        return self.outbox.empty()

    def close(self) -> None:
        self.stop.set()
        self.wake.set()
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(20)
        self.http.close()

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        pause = 0.5
        while not self.stop.is_set():
            lines, done, ready = self.outbox.take()
            busy = self.busy()
            body = {
                **self.state(),
                "log": lines,
                "done": done,
                "ready": ready,
                "wait": 0.0 if busy or self.stop.is_set() else self.idle_wait,
            }
            try:
                answer = self._exchange(body)
            except (httpx.HTTPError, AuthError, ValueError) as exc:
                self.outbox.give_back(lines, done, ready)
                self.say(f"service unreachable or refused ({exc}); retrying in {pause:.1f} s")
                self.stop.wait(pause)
                pause = min(5.0, pause * 2)
                continue
            pause = 0.5
            self.outbox.delivered()
            self.exchanges += 1
            command = answer.get("command")
            if command:
                self.on_command(command)
                continue
            if busy:
                self.wake.wait(self.busy_wait)
                self.wake.clear()

    def _exchange(self, body: Json) -> Json:
        data = json.dumps(body).encode()
        for _ in range(3):
            seq = self.seq.next()
            headers = sign_request(self.key, self.computer, "POST", SYNC_PATH, seq, data)
            reply = self.http.post(
                self.base_url + SYNC_PATH,
                content=data,
                headers={**headers, "Content-Type": "application/json"},
            )
            verify_answer(
                self.server_public, headers, reply.status_code, reply.content, reply.headers
            )
            if reply.status_code == 409:  # our counter fell behind the service's: catch up
                self.seq.advance_past(int(reply.json()["last_seq"]))
                continue
            if reply.status_code != 200:
                raise ValueError(f"service answered {reply.status_code}: {reply.text[:200]}")
            out = reply.json()
            if not isinstance(out, dict):
                raise ValueError("service answered something that is not an object")
            return out
        raise ValueError("the replay counter could not catch up with the service")
