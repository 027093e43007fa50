"""What the service's credentials cost on this machine: one agent request signed and checked,
one answer signed and checked, one repository token issued and checked (µs), one argon2id
password verification (ms).

Prints medians over a few rounds of many repetitions each, wall-clock and CPU time (the latter
is what other load on the machine changes least).  A measurement, not a test: it
asserts nothing.  ``python -m ogref.bench.auth [--json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from ogref.service.keys import (
    check_request_headers,
    check_token,
    issue_token,
    new_computer_key,
    private_key_from_pem,
    public_raw,
    sign_answer,
    sign_request,
    verify_answer,
)
from ogref.service.users import hash_password, verify_password


def _median_seconds(
    fn: Callable[[], object], repeat: int, clock: Callable[[], float], rounds: int = 5
) -> float:
    fn()  # warm-up
    per_call = []
    for _ in range(rounds):
        t0 = clock()
        for _ in range(repeat):
            fn()
        per_call.append((clock() - t0) / repeat)
    return statistics.median(per_call)


def measure() -> dict[str, float]:
    """The costs: ``*_us`` in microseconds, ``*_ms`` in milliseconds; wall-clock, and
    ``*_cpu_*`` the CPU time of the process (all its threads: argon2 runs 4 lanes)."""
    pem, pub = new_computer_key()
    key = private_key_from_pem(pem)
    server = private_key_from_pem(new_computer_key()[0])
    server_pub = public_raw(server)
    body = json.dumps({"name": "pc01", "status": "idle", "lines": ["x" * 80] * 10}).encode()
    path = "/api/v1/agent/poll"
    seq = iter(range(1, 10**9))

    def request() -> None:
        n = next(seq)
        headers = sign_request(key, "pc01", "POST", path, n, body)
        check_request_headers("POST", path, headers, pub, n - 1).verify(body)

    headers = sign_request(key, "pc01", "POST", path, 1, body)
    pending = check_request_headers("POST", path, headers, pub, 0)

    def answer() -> None:
        verify_answer(
            server_pub, headers, 200, body, sign_answer(server, pending.request, 200, body)
        )

    claims = {"computer": "pc01", "image": "win10", "op": "mcast-send"}

    def token() -> None:
        check_token(server_pub, issue_token(server, claims, ttl=60))

    stored = hash_password("correct horse battery staple")

    def password() -> None:
        verify_password(stored, "correct horse battery staple")

    cases: list[tuple[str, Callable[[], None], int, float]] = [
        ("request_sign_verify", request, 2000, 1e6),
        ("answer_sign_verify", answer, 2000, 1e6),
        ("token_issue_check", token, 1000, 1e6),
        ("argon2_verify", password, 10, 1e3),
    ]
    costs = {}
    for name, fn, repeat, scale in cases:
        unit = "us" if scale == 1e6 else "ms"
        costs[f"{name}_{unit}"] = _median_seconds(fn, repeat, time.perf_counter) * scale
        costs[f"{name}_cpu_{unit}"] = _median_seconds(fn, repeat, time.process_time) * scale
    return costs


def main() -> None:
    """Print the costs."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    costs = measure()
    if p.parse_args().json:
        print(json.dumps(costs))
        return
    for name, value in costs.items():
        unit = name.rsplit("_", 1)[1].replace("us", "µs")
        print(f"{name.rsplit('_', 1)[0]:<28} {value:9.1f} {unit}")


if __name__ == "__main__":
    main()
