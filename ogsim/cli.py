"""The ``ogsim`` command line: run, report, sweep, validate, demo, course, validate-models, schema.

Exit codes (``ExitCode``): 0 ok, 1 expectations failed (or, in a scenario without expectations,
a computer did not end ok), 2 interrupted, 3 backend not available, 4 usage or scenario error,
5 this host lacks a capability the scenario needs on that backend (refused before anything is
built; ``ogsim host`` lists them), 70 internal error — a bug: one line on screen, the traceback in
a log file (:mod:`ogref.exits`).  Terminal output uses rich; figures are drawn by :mod:`ogsim.report`
(matplotlib, imported lazily).  This module parses arguments and prints; it models nothing.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ogref.errors import ConfigError, OgError
from ogref.exits import EX_SOFTWARE, GuardedGroup
from ogref.units import format_duration, format_size
from ogsim.expect import Check, evaluate
from ogsim.progress import Emit, JsonView, LineView, LiveView, nothing
from ogsim.results import OperationResult, Results
from ogsim.scenario import SCENARIO_NAME, Scenario, load_scenario
from ogsim.sweep import DEFAULT_MCAST_RATE

EXIT_CODES = (
    "Exit status: 0 ok; 1 expectations failed (without expectations: a computer did not end ok); "
    "2 interrupted; 3 backend not available; 4 usage or scenario error; "
    "5 this host lacks a capability the scenario needs (see ogsim host); "
    f"{EX_SOFTWARE} internal error (a bug: the traceback is written to a log file under "
    "~/.local/state/oglab/)."
)


class _Group(GuardedGroup):
    program = "ogsim"
    usage_status = 4  # ExitCode.USAGE_ERROR (defined below)
    interrupted_status = 2  # ExitCode.INTERRUPTED

    def known(self, exc: Exception) -> int | None:
        if isinstance(exc, OgError):  # an input problem found late (still a scenario error)
            err.print(f"[bold red]scenario error[/] {escape(exc.message)}")
            return int(ExitCode.USAGE_ERROR)
        if isinstance(exc, OSError) and exc.filename is not None:
            err.print(
                f"[bold red]error[/] {escape(str(exc.filename))}: {escape(exc.strerror or '')}"
            )
            return int(ExitCode.USAGE_ERROR)
        return None


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    help="ogLab simulator: run deployment scenarios, report, sweep, validate.",
    epilog=EXIT_CODES,
)
out = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, soft_wrap=True)  # messages stay one line each

SEED_SCENARIO = (
    Path(__file__).resolve().parent.parent / "scenarios" / "seed-35pc-torrent-cache.yaml"
)


class ExitCode(IntEnum):
    """Process exit status of ``ogsim`` (70 is sysexits' EX_SOFTWARE)."""

    OK = 0
    EXPECTATIONS_FAILED = 1
    INTERRUPTED = 2
    BACKEND_ERROR = 3
    USAGE_ERROR = 4
    HOST_UNSUPPORTED = 5
    INTERNAL_ERROR = EX_SOFTWARE


def _load(path: Path) -> Scenario:
    try:
        return load_scenario(path)
    except ConfigError as exc:
        where = f"{exc.source}: {exc.path or '-'}: {exc.reason}"
        err.print(f"[bold red]scenario error[/] {escape(where)}")
        raise typer.Exit(ExitCode.USAGE_ERROR) from None
    except OgError as exc:
        err.print(f"[bold red]scenario error[/] {escape(f'{path}: {exc.message}')}")
        raise typer.Exit(ExitCode.USAGE_ERROR) from None


def run_scenario(
    scenario: Scenario,
    backend: str,
    seed: int | None,
    out_dir: Path | None = None,
    emit: Emit = nothing,
) -> Results:
    """Run a scenario on a backend (``sim``; ``netns`` as root, its lab under ``out_dir``);
    ``emit`` is told the run's progress as it happens (:mod:`ogsim.progress`)."""
    if backend == "netns":
        import os

        if os.geteuid() != 0:
            raise BackendUnavailableError(backend, "the netns lab needs root")
        from ogsim.lab.netns import LabOptions
        from ogsim.lab.netns import run as run_netns

        used = scenario.spec.seed if seed is None else seed
        return run_netns(
            scenario,
            seed,
            out_dir or Path("out") / scenario.name / f"netns-{used}",
            LabOptions(emit=emit),
        )
    if backend == "libvirt":
        import os

        if os.geteuid() != 0:
            raise BackendUnavailableError(backend, "the libvirt lab needs root")
        from ogsim.lab.libvirt.backend import run as run_libvirt
        from ogsim.lab.libvirt.connection import LibvirtUnavailableError

        used = scenario.spec.seed if seed is None else seed
        try:
            return run_libvirt(
                scenario,
                seed,
                out_dir or Path("out") / scenario.name / f"libvirt-{used}",
                emit=emit,
            )
        except (LibvirtUnavailableError, ValueError) as exc:  # no libvirt, or beyond its scale
            raise BackendUnavailableError(backend, str(exc)) from None
    if backend != "sim":
        raise BackendUnavailableError(backend)
    from ogsim.simulator import simulate

    return simulate(scenario, seed, emit)


class BackendUnavailableError(RuntimeError):
    """The requested backend is not implemented yet."""

    def __init__(self, backend: str, reason: str = "") -> None:
        super().__init__(reason or f"backend {backend!r} is not available yet (only 'sim' is)")
        self.backend = backend


_STATUS_STYLES = {"ok": "green", "failed": "red", "crashed": "magenta", "refused": "yellow"}
_NAMES_PER_NOTE = 12  # a thousand-PC simulation lists the first few computers of each reason
_RIGHT = frozenset({"fetch", "restore", "done at", "moved"})
_DROPPED_FIRST = ("fetch", "restore", "moved", "done at")  # when the terminal is too narrow


def _operation_table(scenario: str, op: OperationResult, limit: int, width: int) -> Table:
    """One operation's computers, one row each, never cutting a name, a method or a number: on
    a narrow terminal the fetch, restore, moved and done-at columns go (results.json has them),
    and if that is not enough, long cells fold onto a second line.  The requested method has a
    column only when it is not the operation's (that is in the title)."""
    rows: list[dict[str, str]] = []
    for c in op.computers[:limit]:
        fetch = sum(p.end - p.start for p in c.phases if p.name == "fetch")
        restore = sum(p.end - p.start for p in c.phases if p.name == "restore")
        rows.append(
            {
                "computer": c.name,
                "requested": c.method_requested or "-",
                "used": c.method_used or "-",
                "status": c.status if c.code in (None, 0) else f"{c.status} {c.code}",
                "fetch": f"{fetch:.0f}s" if fetch else "-",
                "restore": f"{restore:.0f}s" if restore else "-",
                "done at": f"{c.finished:.0f}s" if c.finished is not None else "-",
                "moved": format_size(c.bytes_moved),
            }
        )
    asked = any((c.method_requested or None) != (op.method or None) for c in op.computers)
    columns = [k for k in (rows[0] if rows else {"computer": ""}) if k != "requested" or asked]

    def natural(cols: list[str]) -> int:  # borders, padding and the widest cell of each column
        return 1 + sum(3 + max(cell_len(r.get(k, "")) for r in [{k: k}, *rows]) for k in cols)

    for drop in _DROPPED_FIRST:
        if natural(columns) <= width:
            break
        columns.remove(drop)
    table = Table(
        title=escape(
            f"{scenario} — operation {op.index}: "
            + " ".join(x for x in (op.kind.replace("_", " "), op.image, op.method) if x)
            + f" → {op.scope or 'all'} ({len(op.computers)} computers)"
        ),
        title_justify="left",
    )
    fits = natural(columns) <= width
    for col in columns:
        table.add_column(
            col, no_wrap=fits, overflow="fold", justify="right" if col in _RIGHT else "left"
        )
    for c, row in zip(op.computers, rows, strict=False):
        cells = {k: escape(v) for k, v in row.items()}
        if c.switched:
            cells["used"] = f"[yellow]{cells['used']}[/]"
        if style := _STATUS_STYLES.get(c.status):
            cells["status"] = f"[{style}]{cells['status']}[/]"
        table.add_row(*(cells[k] for k in columns))
    hidden = [k for k in _DROPPED_FIRST if k not in columns]
    notes = [f"… {len(op.computers) - limit} more computers"] if len(op.computers) > limit else []
    if hidden:
        notes.append(f"{', '.join(hidden)}: not shown at this width")
    if notes:
        table.caption = escape("; ".join(notes) + " — see results.json")
    return table


def _notes(op: OperationResult) -> list[str]:
    """The fallbacks and failures of an operation, computers with the same story on one line:
    ``pc07, pc19: TORRENT-CACHE → UNICAST-DIRECT: <reason>``, ``pc05: error 16: <message>``."""
    groups: dict[str, list[str]] = {}
    for c in op.computers:
        stories = []
        if c.switched or c.fallback_reasons:
            why = "; ".join(c.fallback_reasons) or "switched"
            stories.append(f"{c.method_requested or '-'} → {c.method_used or '-'}: {why}")
        if c.status != "ok":
            code = c.status if c.code is None else f"error {c.code}"
            stories.append(f"{code}: {c.message}" if c.message else code)
        for story in stories:
            groups.setdefault(story, []).append(c.name)
    lines = []
    for story, names in groups.items():
        shown = ", ".join(names[:_NAMES_PER_NOTE])
        more = f" and {len(names) - _NAMES_PER_NOTE} more" if len(names) > _NAMES_PER_NOTE else ""
        lines.append(f"{shown}{more}: {story}")
    return lines


def print_results(
    results: Results,
    checks: list[Check] | None = None,
    limit: int = 40,
    console: Console | None = None,
) -> None:
    """A rich table of per-computer outcomes, the fallbacks and failures under it (grouped by
    reason), then the checks.  Names, methods and numbers are never cut: the table fits an
    80-column terminal because the reasons are listed below it, not in a column."""
    con = console or out
    for op in results.operations:
        con.print(_operation_table(results.scenario, op, limit, con.width))
        for line in _notes(op):
            con.print(escape(line), highlight=False)
    m = results.metrics
    con.print(
        f"makespan [bold]{format_duration(round(m.makespan_s, 1))}[/] · {m.ok} ok / "
        f"{m.failed} not ok · {m.events} events in {m.wall_s:.2f}s wall "
        f"({m.events_per_s:,.0f} ev/s) · seed {results.seed}"
    )
    for chk in checks or []:
        if not chk.applicable:
            con.print(f"[dim]SKIP[/] {escape(chk.name)}: {escape(str(chk.actual))}")
            continue
        con.print(("[green]PASS[/] " if chk.ok else "[red]FAIL[/] ") + escape(chk.name))
        if not chk.ok:
            con.print(
                f"  [red]- expected:[/] {escape(str(chk.expected))}\n"
                f"  [green]+ actual:  [/] {escape(str(chk.actual))}"
            )
            if chk.offenders:
                con.print("    " + escape(", ".join(chk.offenders[:12])))


@app.command(epilog=EXIT_CODES)
def destroy(
    run_dir: Annotated[Path, typer.Argument(help="a lab run's output directory")],
) -> None:
    """Destroy what a lab run left (namespaces, links, nft tables, loop devices, mounts,
    processes and their cgroup, VMs, networks, files) from its manifest.  What could not be
    destroyed stays in the manifest: run it again to retry."""
    from ogsim.lab import destroy as destroy_lab

    try:
        errors = destroy_lab(run_dir)
    except FileNotFoundError as exc:
        out.print(str(exc))
        return
    for e in errors:
        err.print(f"[yellow]{escape(str(e))}[/]")
    out.print(f"destroyed {run_dir}" + (f" with {len(errors)} errors" if errors else ""))
    if errors:
        raise typer.Exit(ExitCode.BACKEND_ERROR)


@app.command(epilog=EXIT_CODES)
def run(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML file")],
    backend: Annotated[str, typer.Option(help="sim | netns | libvirt")] = "sim",
    seed: Annotated[int | None, typer.Option(help="override the scenario's seed")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="output directory")] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="no live view and no final table")
    ] = False,
    json_events: Annotated[
        bool,
        typer.Option(
            "--json-events", help="stream the run's progress as JSON lines on stdout (no table)"
        ),
    ] = False,
) -> None:
    """Run a scenario, write results.json and check its expectations.

    While it runs: a live view of the lab's stages and of each computer (status colour, stage,
    bytes, rate, ETA) on a terminal; one plain line per change on stderr otherwise (a pipe, CI,
    or --quiet); JSON lines on stdout with --json-events."""
    if backend not in ("sim", "netns", "libvirt"):
        err.print(f"[red]unknown backend {backend!r}[/] (sim, netns, libvirt)")
        raise typer.Exit(ExitCode.USAGE_ERROR)
    sc = _load(scenario)
    from ogsim.lab.capabilities import HostCapabilityError

    live = not quiet and not json_events and sys.stdout.isatty() and not os.environ.get("CI")
    try:
        if json_events:
            results = run_scenario(sc, backend, seed, out_dir, JsonView(sys.stdout))
        elif live:
            with LiveView(out) as view:
                results = run_scenario(sc, backend, seed, out_dir, view)
        else:
            results = run_scenario(sc, backend, seed, out_dir, LineView(sys.stderr))
    except BackendUnavailableError as exc:
        err.print(f"[bold yellow]{escape(str(exc))}[/]")
        raise typer.Exit(ExitCode.BACKEND_ERROR) from None
    except HostCapabilityError as exc:
        for reason in exc.refusals:
            err.print(f"[bold yellow]refused[/] {reason}", soft_wrap=True)
        raise typer.Exit(ExitCode.HOST_UNSUPPORTED) from None
    target = out_dir or Path("out") / sc.name / f"{backend}-{results.seed}"
    path = results.write(target / "results.json")
    checks = evaluate(results, sc.spec.expect)
    if not quiet and not json_events:
        print_results(results, checks)
    (err if json_events else out).print(f"results: {escape(str(path))}")
    raise typer.Exit(_outcome(results, checks))


def _outcome(results: Results, checks: list[Check]) -> ExitCode:
    """1 when an expectation failed, or — with none to check — when a computer did not end ok."""
    if checks:
        return ExitCode.EXPECTATIONS_FAILED if any(not c.ok for c in checks) else ExitCode.OK
    if results.metrics.failed:
        err.print(
            f"{results.metrics.failed} computers did not end ok (the scenario expects nothing)"
        )
        return ExitCode.EXPECTATIONS_FAILED
    return ExitCode.OK


@app.command(epilog=EXIT_CODES)
def serve(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML file (its site is served)")],
    backend: Annotated[str, typer.Option(help="sim (the only one served)")] = "sim",
    speed: Annotated[
        float, typer.Option(help="wall-clock time runs this many times faster", min=0.001)
    ] = 10.0,
    listen: Annotated[
        str, typer.Option(help="IP:PORT of the API (port 0: a free one)")
    ] = "127.0.0.1:0",
    out_dir: Annotated[Path | None, typer.Option("--out", help="output directory")] = None,
    seed: Annotated[int | None, typer.Option(help="override the scenario's seed")] = None,
    run_operations: Annotated[
        bool,
        typer.Option(
            "--run-operations",
            help="submit the scenario's operations at their "
            "times (scaled), and stop once they have ended",
        ),
    ] = False,
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="stop once every operation submitted has ended")
    ] = False,
    ogserver_listen: Annotated[
        str,
        typer.Option(
            help="IP:PORT where OpenGnSys's ogServer REST API is also spoken, for ogCLI/ogCp "
            "(docs/opengnsys-compat.md)"
        ),
    ] = "",
) -> None:
    """Serve a simulated classroom behind the real console service (API under /api/v1), in
    wall-clock time SPEED times faster; write results.json when it stops (Ctrl-C, SIGTERM,
    --until-idle, --run-operations).  See docs/ogsim-serve.md for what is simulated."""
    if backend != "sim":
        err.print(f"[bold yellow]ogsim serve runs the sim backend only, not {escape(backend)!r}[/]")
        raise typer.Exit(ExitCode.BACKEND_ERROR)
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        err.print(f"[bold red]usage error[/] --listen {escape(listen)}: not IP:PORT")
        raise typer.Exit(ExitCode.USAGE_ERROR)
    sc = _load(scenario)
    from ogsim.serve import ServeOptions
    from ogsim.serve import serve as run_serve

    opts = ServeOptions(
        out=out_dir or Path("out") / sc.name / "serve",
        speed=speed,
        host=host,
        port=int(port),
        seed=seed,
        run_operations=run_operations,
        until_idle=until_idle,
        ogserver_listen=ogserver_listen,
    )
    run_serve(sc, opts, lambda text: print(text, flush=True))
    _signalled.clear()  # Ctrl-C / SIGTERM is how a serve ends: its results are written


COURSE_CREDENTIALS = ("profe", "curso-oglab")  # the course's administrator (a lab machine)


@app.command(epilog=EXIT_CODES)
def course(
    exercise: Annotated[
        str | None,
        typer.Argument(
            help="exercise: a name (or its unique prefix) in scenarios/course/, or a file"
        ),
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="list the exercises and exit")] = False,
    backend: Annotated[str, typer.Option(help="sim | netns | libvirt")] = "sim",
    speed: Annotated[
        float, typer.Option(help="sim: wall-clock time runs this many times faster", min=0.001)
    ] = 20.0,
    listen: Annotated[
        str, typer.Option(help="IP:PORT of the console (port 0: a free one)")
    ] = "127.0.0.1:0",
    out_dir: Annotated[Path | None, typer.Option("--out", help="output directory")] = None,
    user: Annotated[str, typer.Option(help="the console user made for the course")] = (
        COURSE_CREDENTIALS[0]
    ),
    password: Annotated[str, typer.Option(help="… and its password")] = COURSE_CREDENTIALS[1],
    until_done: Annotated[
        bool, typer.Option("--until-done", help="stop after the first evaluation (scripts)")
    ] = False,
    scale: Annotated[
        float | None,
        typer.Option(
            help="netns: images and disks made at this scale (default: the exercise's "
            "backends.netns.scale, else 0.001)",
            min=1e-6,
            max=1.0,
        ),
    ] = None,
) -> None:
    """A course exercise: start its classroom and the web console, print the URL and the
    credentials; when the student's operations have ended, the console's Exercise page shows
    which expectations hold (docs/course.md).  Ctrl-C or SIGTERM ends it (results.json is
    written; a netns lab is destroyed).  On netns (root) the classroom is a namespace lab with
    the real agents, and --listen is where a relay to its service listens."""
    from ogsim.course import COURSE_DIR, exercise_files, find_exercise, load_exercise

    if list_:
        table = Table(title=escape(f"course exercises ({COURSE_DIR})"), title_justify="left")
        for col in ("exercise", "computers", "steps", "title"):
            table.add_column(col)
        for f in exercise_files():
            sc = _load_exercise(f, load_exercise)
            assert sc.spec.exercise is not None
            table.add_row(escape(f.stem), str(len(sc.site.computers)),
                          str(len(sc.spec.operations)), escape(sc.spec.exercise.title.en))  # fmt: skip
        out.print(table)
        return
    if exercise is None:
        err.print("[bold red]usage error[/] name an exercise (ogsim course --list shows them)")
        raise typer.Exit(ExitCode.USAGE_ERROR)
    if backend not in ("sim", "netns", "libvirt"):
        err.print(f"[red]unknown backend {escape(backend)!r}[/] (sim, netns, libvirt)")
        raise typer.Exit(ExitCode.USAGE_ERROR)
    try:
        path = find_exercise(exercise)
    except LookupError as exc:
        err.print(f"[bold red]usage error[/] {escape(str(exc))}")
        raise typer.Exit(ExitCode.USAGE_ERROR) from None
    sc = _load_exercise(path, load_exercise)
    if backend == "libvirt":
        err.print(f"[bold yellow]{escape(COURSE_LIBVIRT_MISSING)}[/]")
        raise typer.Exit(ExitCode.BACKEND_ERROR)
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        err.print(f"[bold red]usage error[/] --listen {escape(listen)}: not IP:PORT")
        raise typer.Exit(ExitCode.USAGE_ERROR)
    where = (out_dir or Path("out") / sc.name / "course").resolve()
    if backend == "netns":
        _course_on_netns(sc, where, host, int(port), user, password, until_done, scale)
        return
    from ogsim.course import run_course
    from ogsim.serve import ServeOptions

    opts = ServeOptions(out=where, speed=speed, host=host, port=int(port), until_idle=until_done,
                        course=where / "course")  # fmt: skip
    run_course(sc, opts, user, password, lambda text: print(text, flush=True))
    _signalled.clear()  # Ctrl-C / SIGTERM is how a course ends: its results are written


COURSE_LIBVIRT_MISSING = (
    "ogsim course --backend libvirt is not built yet: the VM lab (ogsim.lab.libvirt.backend."
    "LibvirtRun.run) brings the classroom up, runs the scenario's own operations and tears it "
    "down in one call.  Missing: a step that brings the VMs up to their live clients (OPG) and "
    "returns without running operations; the --course option passed to its service "
    "(ogsim.lab.libvirt.services, through Classroom); and boot once / boot target from the "
    "console (the lab drives them itself, through its boot server).  The host-side listener "
    "exists (ogsim.lab.relay, as on netns).  Use --backend netns (root) or --backend sim, or "
    "ogsim run EXERCISE.yaml --backend libvirt to check the reference solution on VMs."
)


def _course_on_netns(
    sc: Scenario,
    where: Path,
    host: str,
    port: int,
    user: str,
    password: str,
    until_done: bool,
    scale: float | None,
) -> None:
    """``ogsim course --backend netns`` (:mod:`ogsim.lab.netns.course`)."""
    import os

    if os.geteuid() != 0:
        err.print("[bold yellow]backend unavailable[/] netns: the netns lab needs root")
        raise typer.Exit(ExitCode.BACKEND_ERROR)
    from ogsim.lab.capabilities import HostCapabilityError
    from ogsim.lab.netns.course import LabCourseOptions, run_lab_course

    opts = LabCourseOptions(out=where, user=user, password=password, port=port, host=host,
                            scale=scale, until_done=until_done)  # fmt: skip
    try:
        run_lab_course(sc, opts, lambda text: print(text, flush=True))
    except HostCapabilityError as exc:
        for reason in exc.refusals:
            err.print(f"[bold yellow]refused[/] {escape(reason)}", soft_wrap=True)
        raise typer.Exit(ExitCode.HOST_UNSUPPORTED) from None
    except (RuntimeError, OSError) as exc:  # LabCourseError, the lab not built, a port in use
        err.print(f"[bold red]lab error[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(ExitCode.BACKEND_ERROR) from None
    _signalled.clear()  # Ctrl-C / SIGTERM is how a course ends: its results are written


def _load_exercise(path: Path, loader: Callable[[Path], Scenario]) -> Scenario:
    try:
        return loader(path)
    except ConfigError as exc:
        where = f"{exc.source}: {exc.path or '-'}: {exc.reason}"
        err.print(f"[bold red]exercise error[/] {escape(where)}")
        raise typer.Exit(ExitCode.USAGE_ERROR) from None
    except OgError as exc:
        err.print(f"[bold red]exercise error[/] {escape(f'{path}: {exc.message}')}")
        raise typer.Exit(ExitCode.USAGE_ERROR) from None


@app.command(epilog=EXIT_CODES)
def host(
    scenario: Annotated[
        Path | None, typer.Argument(help="also say whether this scenario can run here")
    ] = None,
    backend: Annotated[str, typer.Option(help="netns | libvirt")] = "netns",
) -> None:
    """What this host's kernel lets the labs do (probed), and what a scenario needs from it."""
    from ogsim.lab.capabilities import check, probe, report

    caps = probe()
    table = Table(title=f"host capabilities (kernel {caps.kernel})", title_justify="left")
    for col in ("capability", "here", "kernel option", "how to check"):
        table.add_column(col)
    for cap, present in report():
        table.add_row(
            cap.what, "[green]yes[/]" if present else "[red]no[/]", cap.kernel_option, cap.check
        )
    out.print(table)
    if scenario is None:
        return
    verdict = check(_load(scenario), backend, caps)
    for note in verdict.notes:
        out.print(f"[dim]approximated[/] {note}", soft_wrap=True)
    for reason in verdict.refusals:
        out.print(f"[bold yellow]refused[/] {reason}", soft_wrap=True)
    if verdict.refusals:
        raise typer.Exit(ExitCode.HOST_UNSUPPORTED)
    out.print(f"[green]ok[/] {scenario} can run on {backend} here")


@app.command(epilog=EXIT_CODES)
def validate(scenario: Annotated[Path, typer.Argument(help="scenario YAML file")]) -> None:
    """Check a scenario against the schema (nothing is run)."""
    sc = _load(scenario)
    ops = len(sc.spec.operations)
    out.print(
        "[green]ok[/] "
        + escape(
            f"{scenario}: scenario {sc.name!r}, {len(sc.site.computers)} "
            f"computers, {ops} operations, {len(sc.spec.faults)} faults, "
            f"{len(sc.spec.expect)} expectations"
        )
    )


def _results_files(paths: list[Path]) -> list[Path]:
    """The results.json files named, and every one under a directory named (sorted)."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            under = sorted(p.rglob("results.json"))
            if not under:
                err.print(f"[bold red]usage error[/] {escape(f'{p}: no results.json under it')}")
                raise typer.Exit(ExitCode.USAGE_ERROR)
            found += under
        else:
            found.append(p)
    return found


@app.command(epilog=EXIT_CODES)
def report(
    results: Annotated[
        list[Path], typer.Argument(help="results.json files, or directories holding them")
    ],
    reports_dir: Annotated[Path, typer.Option("--dir", help="reports root")] = Path("reports"),
) -> None:
    """Draw figures and a Markdown/HTML summary of each run into reports/<scenario>/…, and a
    comparison figure (makespan against N per method) of several runs; a directory stands for
    every results.json under it (a sweep's output, out/)."""
    from ogsim.report.build import build_report

    loaded = []
    for p in _results_files(results):
        try:
            one = Results.read(p)
        except ValueError as exc:  # not JSON, or not a results.json
            first = str(exc).strip().splitlines()[0][:200]
            err.print(f"[bold red]usage error[/] {escape(f'{p}: not a results.json: {first}')}")
            raise typer.Exit(ExitCode.USAGE_ERROR) from None
        if not re.fullmatch(SCENARIO_NAME, one.scenario):  # it names a directory under --dir
            err.print(
                f"[bold red]usage error[/] {escape(f'{p}: bad scenario name {one.scenario!r}')}"
            )
            raise typer.Exit(ExitCode.USAGE_ERROR)
        loaded.append(one)
    for where in build_report(loaded, reports_dir):
        out.print(f"report: {escape(str(where))}")


@app.command(epilog=EXIT_CODES)
def demo(
    reports_dir: Annotated[Path, typer.Option("--dir", help="reports root")] = Path("reports"),
) -> None:
    """The seed's 35-PC TORRENT-CACHE example on the simulator: table + report."""
    from ogsim.report.build import build_report

    sc = _load(SEED_SCENARIO)
    results = run_scenario(sc, "sim", None)
    path = results.write(Path("out") / sc.name / f"sim-{results.seed}" / "results.json")
    checks = evaluate(results, sc.spec.expect)
    print_results(results, checks)
    for where in build_report([results], reports_dir):
        out.print(f"report: {where}")
    out.print(f"results: {path}")
    raise typer.Exit(_outcome(results, checks))


@app.command("validate-models", epilog=EXIT_CODES)
def validate_models() -> None:
    """Predicted vs published: Frisbee multicast, EZIO crossover, unicast slope."""
    from ogsim.validation import render_table, run_all

    checks = run_all()
    out.print(render_table(checks))
    if any(not c.ok for c in checks):
        raise typer.Exit(ExitCode.EXPECTATIONS_FAILED)


@app.command(epilog=EXIT_CODES)
def sweep(
    computers: Annotated[
        str, typer.Option("--n", help="computer counts, e.g. 10,35,100")
    ] = "10,35,100",
    methods: Annotated[
        str, typer.Option(help="methods")
    ] = "UNICAST-DIRECT,MULTICAST-DIRECT,TORRENT-CACHE",
    loss: Annotated[str, typer.Option(help="loss values")] = "0%",
    image: Annotated[str, typer.Option(help="stored image sizes")] = "10GiB",
    link: Annotated[str, typer.Option(help="client link rates")] = "1Gbit",
    mcast_rate: Annotated[
        str,
        typer.Option(
            "--mcast-rate",
            help="every classroom's multicast session rate, 1-999 whole Mbit/s "
            "(default: ogref's classroom session, as the seed's)",
        ),
    ] = DEFAULT_MCAST_RATE,
    jobs: Annotated[
        int, typer.Option(help="worker processes of the local Dask cluster", min=1, max=64)
    ] = 2,
    seeds: Annotated[str, typer.Option(help="seeds per point, e.g. 1,2,3 (spread)")] = "1",
    cluster: Annotated[
        str | None,
        typer.Option(
            help="a Dask scheduler's address (tcp://host:8786) to run on; default: a local "
            "cluster of --jobs processes; 'inprocess': no cluster, this process"
        ),
    ] = None,
    retries: Annotated[int, typer.Option(help="re-runs of a point that raised", min=0)] = 2,
    out_dir: Annotated[Path, typer.Option("--out")] = Path("out/sweep"),
) -> None:
    """Run a grid of generated scenarios on a Dask cluster; write one results.json per point,
    the table of every point (sweep.parquet, sweep.csv) and the comparison figure (makespan
    against N per method: scaling.svg) into --out."""
    from ogsim.report.build import draw_scaling
    from ogsim.sweep import Grid, run_grid
    from ogsim.sweep_cluster import write_table

    try:
        grid = Grid.parse(computers, methods, loss, image, link, mcast_rate, seeds)
    except OgError as exc:
        err.print(f"[bold red]usage error[/] {escape(exc.message)}")
        raise typer.Exit(ExitCode.USAGE_ERROR) from None
    try:
        rows = run_grid(grid, jobs, out_dir, cluster, retries=retries)
    except OSError as exc:  # no scheduler at that address
        err.print(f"[bold red]cluster not available[/] {escape(str(exc))}")
        raise typer.Exit(ExitCode.BACKEND_ERROR) from None
    parquet, text = write_table(rows, out_dir)
    table = Table(title=escape(f"sweep ({len(rows)} points) → {out_dir}"))
    for col in ("N", "method", "loss", "image", "link", "seed", "makespan", "ok"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            *map(escape, (str(r.n), r.method, r.loss, r.image, r.link, str(r.seed))),
            f"{r.makespan:.0f}s",
            str(r.ok),
        )
    out.print(table)
    varying = [
        axis
        for axis, values in (("loss", grid.loss), ("image", grid.image), ("link", grid.link))
        if len(values) > 1
    ]
    points = [
        (" ".join([r.method, *(f"{a} {getattr(r, a)}" for a in varying)]), r.n, r.makespan)
        for r in rows
    ]
    figure = draw_scaling(points, out_dir / "scaling.svg")
    out.print(f"table: {escape(str(parquet))}, {escape(str(text))}")
    out.print(f"figure: {escape(str(figure))}")


@app.command(epilog=EXIT_CODES)
def compare(
    preset: Annotated[
        str, typer.Option(help="what to cover: standard (the published report) or tiny")
    ] = "standard",
    jobs: Annotated[
        int, typer.Option(help="worker processes of the local Dask cluster", min=1, max=64)
    ] = 2,
    cluster: Annotated[
        str | None,
        typer.Option(help="a Dask scheduler's address; default a local cluster; 'inprocess'"),
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out")] = Path("out/compare"),
) -> None:
    """The researcher's figure set: T(N) per method with the spread over seeds, where P2P
    overtakes multicast, where the CACHE pays off for a second deploy, and the sensitivity to
    link rate, image size, loss and a slow receiver (compare.md, compare.svg, the table)."""
    from ogsim.compare import PRESETS
    from ogsim.compare import compare as run_compare

    if preset not in PRESETS:
        err.print(f"[bold red]usage error[/] --preset: one of {', '.join(sorted(PRESETS))}")
        raise typer.Exit(ExitCode.USAGE_ERROR)
    try:
        md = run_compare(preset, out_dir, jobs=jobs, cluster=cluster)
    except OSError as exc:
        err.print(f"[bold red]cluster not available[/] {escape(str(exc))}")
        raise typer.Exit(ExitCode.BACKEND_ERROR) from None
    out.print(f"report: {escape(str(md))}")


@app.command(epilog=EXIT_CODES)
def schema(
    check: Annotated[bool, typer.Option(help="fail if the stored schema is out of date")] = False,
) -> None:
    """Regenerate ogsim/scenario.schema.json and ogsim/results.schema.json (or check them)."""
    from ogsim.results import RESULTS_SCHEMA_PATH, results_schema_text
    from ogsim.scenario import SCHEMA_PATH, schema_text

    for path, text in ((SCHEMA_PATH, schema_text()), (RESULTS_SCHEMA_PATH, results_schema_text())):
        if check:
            current = path.read_text(encoding="utf-8") if path.exists() else ""
            if current != text:
                err.print(f"[red]{path.name} is out of date: run `ogsim schema`[/]")
                raise typer.Exit(ExitCode.EXPECTATIONS_FAILED)
            out.print(f"{path.name} up to date")
        else:
            path.write_text(text, encoding="utf-8")
            out.print(f"wrote {path}")


_signalled: list[int] = []


def _interrupted(signum: int, _frame: object) -> None:
    _signalled.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    """Console-script entry point (errors and exit statuses: :class:`_Group`).  Ctrl-C, SIGTERM
    and SIGHUP (a CI timeout, a closed terminal) unwind the run, so a lab destroys what it made
    (its cleanup holds further signals), and the exit status is 2 (click would say 1)."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupted)
    try:
        app()
    except KeyboardInterrupt:
        raise SystemExit(ExitCode.INTERRUPTED) from None
    except SystemExit:
        if _signalled:
            raise SystemExit(ExitCode.INTERRUPTED) from None
        raise


if __name__ == "__main__":
    main()
