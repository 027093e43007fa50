"""Expectations: the scenario's ``expect:`` clauses checked against ``results.json``.

A small fixed vocabulary (all restored, all verified, fallback to a method, method used, final
code or status, a count, booted the restored OS under a hostname, makespan bounds, one operation
waiting for another or two running at once), each giving a
``Check`` with what was expected, what was found and the computers that differ — printed as a
readable diff.  A time bound is in scenario time unless it says ``clock: wall``; a backend that
cannot measure it reports it not applicable, with the reason.  ``operation: N`` selects
the scenario's operation N (``results.operations`` is indexed by the scenario on every backend);
without it a computer's last record counts.  Reads results only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ogref.units import format_duration
from ogsim.results import ComputerResult, Results
from ogsim.scenario import ExpectSpec


@dataclass(frozen=True)
class Check:
    """One evaluated expectation."""

    name: str
    ok: bool
    expected: str
    actual: str
    offenders: tuple[str, ...] = field(default=())
    applicable: bool = True  # False: this backend cannot measure it (``actual`` says why)

    @property
    def mark(self) -> str:
        return "SKIP" if not self.applicable else "PASS" if self.ok else "FAIL"

    def diff(self) -> str:
        """A readable ``- expected / + actual`` block."""
        if not self.applicable:
            return f"[SKIP] {self.name}: {self.actual}"
        lines = [f"[{self.mark}] {self.name}"]
        if not self.ok:
            lines.append(f"  - expected: {self.expected}")
            lines.append(f"  + actual:   {self.actual}")
            if self.offenders:
                shown = ", ".join(self.offenders[:12])
                more = f" (+{len(self.offenders) - 12} more)" if len(self.offenders) > 12 else ""
                lines.append(f"    computers: {shown}{more}")
        return "\n".join(lines)


def _summary(recs: list[ComputerResult], attr: str) -> str:
    counts: dict[str, int] = {}
    for r in recs:
        key = str(getattr(r, attr))
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k}×{v}" for k, v in sorted(counts.items()))


def evaluate(results: Results, expects: list[ExpectSpec]) -> list[Check]:
    """Evaluate every expectation that applies to this backend."""
    last = results.last_by_computer()
    every = [c for op in results.operations for c in op.computers]
    checks: list[Check] = []
    for e in expects:
        if e.backends is not None and results.backend not in e.backends:
            continue
        checks.append(_one(e, results, last, every))
    return checks


def _in_operation(results: Results, index: int | None) -> dict[str, ComputerResult] | None:
    """Each computer's record in the scenario's operation ``index`` (None: no index given)."""
    if index is None:
        return None
    return {c.name: c for op in results.operations if op.index == index for c in op.computers}


def _where(index: int | None) -> str:
    return "" if index is None else f" in operation {index}"


def _one(
    e: ExpectSpec, results: Results, last: dict[str, ComputerResult], every: list[ComputerResult]
) -> Check:
    kind = e.kind
    body = getattr(e, kind)
    picked = _in_operation(results, getattr(body, "operation", None))
    if picked is not None:
        last = picked
    if kind == "all_restored":
        bad = [c for c in every if c.status != "ok"]
        want = bool(e.all_restored)
        ok = (not bad) == want
        actual = "all ok" if not bad else f"{len(bad)} not ok: {_summary(bad, 'status')}"
        return Check(
            "all restored",
            ok,
            "every computer ok" if want else "some failure",
            actual,
            tuple(f"{c.name} ({c.status} {c.code}: {c.message})" for c in bad),
        )
    if kind == "all_verified":
        fetched = [c for c in every if c.checksum_verified is not None]
        bad = [c for c in fetched if not c.checksum_verified]
        ok = bool(fetched) and not bad
        return Check(
            "all cached copies verified",
            ok,
            "every cached copy verified",
            f"{len(fetched) - len(bad)}/{len(fetched)} verified",
            tuple(c.name for c in bad),
        )
    if kind == "fallback":
        f = e.fallback
        assert f is not None
        wrong = [
            n
            for n in f.computers
            if n not in last or not last[n].switched or last[n].method_used != f.method
        ]
        actual = (
            "; ".join(
                f"{n}: {'switched' if n in last and last[n].switched else 'not switched'} → "
                f"{last[n].method_used if n in last else '-'}"
                for n in wrong
            )
            or "as expected"
        )
        return Check(
            f"fallback of {len(f.computers)} computer(s) to {f.method}{_where(f.operation)}",
            not wrong,
            f"switched to {f.method}",
            actual,
            tuple(wrong),
        )
    if kind == "method_used":
        m = e.method_used
        assert m is not None
        names = m.computers if m.computers is not None else [n for n in last if n not in m.except_]
        recs = [last[n] for n in names if n in last]
        bad = [c for c in recs if c.method_used != m.method] + [
            ComputerResult(name=n) for n in names if n not in last
        ]
        return Check(
            f"method used {m.method} on {len(names)} computer(s){_where(m.operation)}",
            not bad,
            m.method,
            _summary(bad, "method_used") if bad else "as expected",
            tuple(c.name for c in bad),
        )
    if kind == "code":
        c = e.code
        assert c is not None
        wrong = [n for n in c.computers if n not in last or last[n].code != c.code]
        actual = "; ".join(f"{n}: {last[n].code if n in last else '-'}" for n in wrong)
        return Check(
            f"code {c.code} on {len(c.computers)} computer(s)",
            not wrong,
            str(c.code),
            actual or "as expected",
            tuple(wrong),
        )
    if kind == "status":
        s = e.status
        assert s is not None
        wrong = [n for n in s.computers if n not in last or last[n].status != s.status]
        actual = "; ".join(f"{n}: {last[n].status if n in last else '-'}" for n in wrong)
        return Check(
            f"status {s.status} on {len(s.computers)} computer(s)",
            not wrong,
            s.status,
            actual or "as expected",
            tuple(wrong),
        )
    if kind == "count":
        q = e.count
        assert q is not None
        pool = (
            every
            if q.operation is None
            else [c for op in results.operations if op.index == q.operation for c in op.computers]
        )
        hits = [
            c
            for c in pool
            if (q.status is None or c.status == q.status)
            and (q.method is None or c.method_used == q.method)
        ]
        what = " ".join(x for x in (q.status or "", q.method or "") if x) or "computers"
        return Check(
            f"count of {what} = {q.equals}", len(hits) == q.equals, str(q.equals), str(len(hits))
        )
    if kind == "booted":
        b = e.booted
        assert b is not None
        names = b.computers if b.computers is not None else sorted(last)
        wrong = [
            n
            for n in names
            if n not in last
            or last[n].status != "ok"
            or last[n].os_hostname != (b.hostname or n)
            or (b.secure_boot is not None and last[n].os_secure_boot is not b.secure_boot)
            or (b.firmware is not None and last[n].os_firmware != b.firmware)
        ]
        actual = "; ".join(
            f"{n}: {last[n].status}, hostname {last[n].os_hostname!r}"
            + (f", Secure Boot {last[n].os_secure_boot}" if b.secure_boot is not None else "")
            + (f", firmware {last[n].os_firmware}" if b.firmware is not None else "")
            if n in last
            else f"{n}: -"
            for n in wrong
        )
        wanted = f"hostname {b.hostname!r}" if b.hostname else "each under its own name"
        if b.secure_boot is not None:
            wanted += f", Secure Boot {'on' if b.secure_boot else 'off'}"
        if b.firmware is not None:
            wanted += f", firmware {b.firmware}"
        return Check(
            f"{len(names)} computer(s) booted the restored OS{_where(b.operation)}",
            bool(names) and not wrong,
            wanted,
            actual or ("as expected" if names else "no computer in that operation"),
            tuple(wrong),
        )
    if kind == "order":
        return _order(e, results)
    if kind == "concurrent":
        return _concurrent(e, results)
    return _makespan(e, results)


def _span(results: Results, index: int) -> tuple[float, float] | None:
    """When operation ``index`` ran: its first computer's start, its last computer's end
    (computers that never started — refused, not started — do not count)."""
    recs = [
        c
        for op in results.operations
        if op.index == index
        for c in op.computers
        if c.status not in ("refused", "not_started") and c.finished is not None
    ]
    if not recs:
        return None
    return min(c.started for c in recs), max(c.finished or c.started for c in recs)


def _order(e: ExpectSpec, results: Results) -> Check:
    o = e.order
    assert o is not None
    first, then = _span(results, o.first), _span(results, o.then)
    name = f"operation {o.then} started after operation {o.first} ended"
    if first is None or then is None:
        return Check(name, False, "both ran", "one of them ran on no computer")
    return Check(
        name, then[0] >= first[1], f"start ≥ {first[1]:.1f}s", f"started at {then[0]:.1f}s"
    )


def _concurrent(e: ExpectSpec, results: Results) -> Check:
    assert e.concurrent is not None
    spans = {i: _span(results, i) for i in e.concurrent}
    name = f"operations {', '.join(map(str, e.concurrent))} ran at the same time"
    missing = [i for i, sp in spans.items() if sp is None]
    if missing:
        return Check(name, False, "all ran", f"operation {missing[0]} ran on no computer")
    ranges = [sp for sp in spans.values() if sp is not None]
    latest_start = max(s for s, _ in ranges)
    earliest_end = min(end for _, end in ranges)
    actual = ", ".join(f"{i}: {sp[0]:.1f}–{sp[1]:.1f}s" for i, sp in spans.items() if sp)
    return Check(name, latest_start < earliest_end, "overlapping spans", actual)


def _makespan(e: ExpectSpec, results: Results) -> Check:
    """A time bound, in scenario time (``clock: scenario``, the default) or in the lab run's
    real seconds (``clock: wall``).  Scenario time is what the simulator computes, and what a lab
    reproduces only with full-size images: at a smaller scale its transfers are shorter than the
    scenario's and its fixed costs are not scaled, so the bound is reported not applicable there
    (never passed, never failed).  ``wall`` applies to lab backends only."""
    below = e.makespan_below is not None
    bound = e.makespan_below if below else e.makespan_above
    assert bound is not None
    word = "below" if below else "above"
    name = f"makespan {word} {format_duration(bound)}" + (" (wall)" if e.clock == "wall" else "")
    lab = results.backend != "sim"
    if e.clock == "wall":
        if not lab:
            return Check(name, True, "", "a wall-clock bound applies to lab runs only", (), False)
        measured = float((results.metrics.extra.get("time") or {}).get("wall_s", 0.0))
    else:
        if lab and results.scale < 1.0:
            why = (
                f"in scenario time: not measurable on {results.backend} at scale "
                f"{results.scale:g} (shorter transfers, unscaled fixed costs); the simulator "
                "checks it"
            )
            return Check(name, True, "", why, (), False)
        measured = results.metrics.makespan_s
    ok = measured < bound if below else measured > bound
    return Check(name, ok, f"{'<' if below else '>'} {bound:.1f}s", f"{measured:.1f}s")


def render(checks: list[Check]) -> str:
    """All checks as text."""
    counted = [c for c in checks if c.applicable]
    passed = sum(1 for c in counted if c.ok)
    body = "\n".join(c.diff() for c in checks)
    skipped = len(checks) - len(counted)
    tail = f", {skipped} not applicable here" if skipped else ""
    return f"{body}\nexpectations: {passed}/{len(counted)} passed{tail}"
