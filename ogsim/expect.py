"""Expectations: the scenario's ``expect:`` clauses checked against ``results.json``.

A small fixed vocabulary (all restored, all verified, fallback to a method, method used, final
code or status, a count, booted the restored OS under a hostname, makespan bounds), each giving a ``Check`` with what was expected, what
was found and the computers that differ — printed as a readable diff.  ``operation: N`` selects
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

    def diff(self) -> str:
        """A readable ``- expected / + actual`` block."""
        mark = "PASS" if self.ok else "FAIL"
        lines = [f"[{mark}] {self.name}"]
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
            if n not in last or last[n].status != "ok" or last[n].os_hostname != (b.hostname or n)
        ]
        actual = "; ".join(
            f"{n}: {last[n].status}, hostname {last[n].os_hostname!r}" if n in last else f"{n}: -"
            for n in wrong
        )
        return Check(
            f"{len(names)} computer(s) booted the restored OS{_where(b.operation)}",
            bool(names) and not wrong,
            f"hostname {b.hostname!r}" if b.hostname else "each under its own name",
            actual or ("as expected" if names else "no computer in that operation"),
            tuple(wrong),
        )
    makespan = results.metrics.makespan_s
    if kind == "makespan_below":
        assert e.makespan_below is not None
        return Check(
            f"makespan below {format_duration(e.makespan_below)}",
            makespan < e.makespan_below,
            f"< {e.makespan_below:.1f}s",
            f"{makespan:.1f}s",
        )
    assert e.makespan_above is not None
    return Check(
        f"makespan above {format_duration(e.makespan_above)}",
        makespan > e.makespan_above,
        f"> {e.makespan_above:.1f}s",
        f"{makespan:.1f}s",
    )


def render(checks: list[Check]) -> str:
    """All checks as text."""
    passed = sum(1 for c in checks if c.ok)
    body = "\n".join(c.diff() for c in checks)
    return f"{body}\nexpectations: {passed}/{len(checks)} passed"
