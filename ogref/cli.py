"""The ``ogref`` command line: console planning and, when the runtime is installed, the
OpenGnSys-style imaging scripts (create-image, restore-image, update-cache, deploy-image).

Exit status is the OpenGnSys error number of the failure (0 on success), so scripts written for
OpenGnSys keep their meaning: a usage error (bad option, bad file) is 1, OG_ERR_FORMAT.  An
internal error (a bug) is 70 with the traceback in a log file (:mod:`ogref.exits`); an interrupt
is 130.  Rendering only: every decision comes from :mod:`ogref.console`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ogref.console import (
    RestorePlan,
    images_for_partition,
    operation_for,
    plan_restore,
    plan_to_dict,
)
from ogref.core.events import MethodSwitched
from ogref.errors import ConfigError, FormatError, OgErr, OgError
from ogref.exits import EX_SOFTWARE, GuardedGroup
from ogref.model import ALL_METHODS, ClientStatus, EngineConfig
from ogref.site import (
    RestoreSpec,
    Site,
    SiteSpec,
    build_site,
    read_yaml,
    site_part,
    unknown_keys,
    validation_error,
)

EXIT_CODES = (
    "Exit status: 0 success; otherwise the OpenGnSys error number of the failure "
    "(1 OG_ERR_FORMAT: usage error, bad option or bad file; 2 not found; 3 partition; …; "
    f"see `ogref/errors.py`); {EX_SOFTWARE} internal error (a bug: the traceback is written to a "
    "log file under ~/.local/state/oglab/); 130 interrupted."
)


class _Group(GuardedGroup):
    program = "ogref"
    usage_status = int(OgErr.FORMAT)

    def known(self, exc: Exception) -> int | None:
        if isinstance(exc, OgError):
            err.print(f"[bold red]error[/bold red] {escape(str(exc))}")
            return int(exc.code)
        return None


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    help="ogref — reference OpenGnSys-style imaging engine (plan, create, restore, deploy).",
    epilog=EXIT_CODES,
)
out = Console()
err = Console(stderr=True, soft_wrap=True)  # messages stay one line each


def _load_site(path: Path, preset: str | None = None) -> Site:
    data = read_yaml(path)
    if isinstance(data, dict) and preset is not None:
        data = {**data, "engine_preset": preset}  # the file's engine: keys still apply over it
    data, extra = site_part(data)
    unknown = unknown_keys(extra)  # a scenario file's faults/expect/backends… are expected here
    if unknown:
        err.print(
            f"[yellow]{escape(str(path))}: not a site or scenario key, ignored here: "
            f"{escape(', '.join(unknown))}[/yellow]"
        )
    return build_site(data, source=str(path))


def _fail(exc: OgError) -> typer.Exit:
    err.print(f"[bold red]error[/bold red] {escape(str(exc))}")
    return typer.Exit(int(exc.code))


def _restore_spec(fields: dict[str, Any], given: set[str], source: str) -> RestoreSpec:
    """The command to plan; a bad option value is a FormatError naming the option."""
    try:
        return RestoreSpec.model_validate(fields)
    except ValidationError as exc:
        conf = validation_error(exc, source)
        option = conf.path.split(".")[0]
        if option in given:
            raise FormatError(f"--{option}: {conf.reason}") from None
        raise conf from None


@app.command(epilog=EXIT_CODES)
def plan(
    site_file: Path = typer.Argument(..., help="site or scenario YAML (repositories, classrooms…)"),
    image: str | None = typer.Option(
        None, help="image to restore (default: the file's first command)"
    ),
    method: str | None = typer.Option(None, help="UNICAST[-CACHE|-DIRECT], MULTICAST[-…], TORRENT"),
    disk: int | None = typer.Option(None, help="target disk"),
    partition: int | None = typer.Option(None, help="target partition"),
    to: str | None = typer.Option(None, help="scope: all, pc01-pc10, or a classroom name"),
    mode: str = typer.Option(
        "", help="restore (console Restore, switches methods), deploy (wizard), update_cache"
    ),
    engine_cfg: Path | None = typer.Option(None, help="an engine.cfg to use instead of the file's"),
    engine_preset: str | None = typer.Option(
        None,
        "--engine-preset",
        help="oglab, opengnsys-1.1.1d, or opengnsys-1.1.1d-strict (predict a stock 1.1.1d "
        "installation bug for bug); replaces the file's engine_preset",
    ),
    as_json: bool = typer.Option(False, "--json", help="print the plan as JSON"),
    show_log: bool = typer.Option(False, "--log", help="print each switched computer's log"),
) -> None:
    """Print the per-computer plan of a Restore command: the method used and why."""
    try:
        base = EngineConfig.preset(engine_preset) if engine_preset else None  # checks the name
        site = _load_site(site_file, engine_preset)
        if engine_cfg is not None:
            site = Site(
                site.repositories,
                EngineConfig.from_file(engine_cfg, base=base),
                site.org_units,
                site.hw,
                site.repository_hw,
                site.operations,
            )
        first = next(
            (op for op in site.operations if op.kind in ("restore", "deploy", "update_cache")), None
        )
        base = getattr(first, first.kind) if first else None
        kind = mode or (first.kind if first else "restore")
        operation = operation_for(kind)
        fields: dict[str, Any] = dict(base.model_dump(exclude_unset=True)) if base else {}
        for key, value in (
            ("image", image),
            ("method", method),
            ("disk", disk),
            ("partition", partition),
            ("to", to),
        ):
            if value is not None:
                fields[key] = value
        if "image" not in fields:
            raise ConfigError(
                "no image given (use --image or an operation in the file)", source=str(site_file)
            )
        given = {
            k
            for k, v in (
                ("image", image),
                ("method", method),
                ("disk", disk),
                ("partition", partition),
                ("to", to),
            )
            if v is not None
        }
        spec = _restore_spec(fields, given, str(site_file))
        result = plan_restore(site, spec, operation)
    except OgError as exc:
        if as_json:  # a script reading stdout gets an answer too, with the same exit status
            print(json.dumps(error_to_dict(exc), indent=2))
        raise _fail(exc) from None
    if as_json:
        print(json.dumps(plan_to_dict(result), indent=2))
    else:
        render_plan(result, site, spec.to)
        if show_log:
            for p in result.computers:
                if p.switched or not p.ok:
                    out.rule(f"{p.computer} tracking log")
                    for line in p.log:
                        out.print(f"  {line}", markup=False)
    if not all(p.ok for p in result.computers):
        raise typer.Exit(int(next(p.code for p in result.computers if not p.ok)))


def error_to_dict(exc: OgError) -> dict[str, Any]:
    """A JSON-ready view of a refusal: ``{"error": {"code", "name", "message"}}``."""
    return {
        "error": {
            "code": int(exc.code),
            "name": f"OG_ERR_{exc.code.name}",
            "message": exc.message,
        }
    }


def render_plan(result: RestorePlan, site: Site, scope: Any) -> None:
    """The plan as a rich table, with a summary line."""
    t = Table(
        title=escape(f"{result.operation}: {result.image.name} by {result.method}"),
        show_lines=False,
    )
    t.add_column("computer")
    t.add_column("classroom")
    t.add_column("method used")
    t.add_column("result")
    t.add_column("why", overflow="fold")
    for p in result.computers:
        used = str(p.used) if p.used else "-"
        style = "yellow" if p.switched else ("red" if not p.ok else "")
        why = "; ".join(p.reasons) if p.reasons else p.message
        res = "ok" if p.ok else f"error {int(p.code)} ({OgErr(p.code).name})"
        t.add_row(*map(escape, (p.computer, p.classroom, used, res, why)), style=style)
    out.print(t)
    parts = [f"{n} by {m}" for m, n in sorted(result.by_method().items())]
    if result.failed:
        parts.append(f"{len(result.failed)} failed")
    summary = ", ".join(parts)
    out.print(f"[bold]{len(result.computers)} computers:[/bold] {escape(summary)}")
    for p in result.switched:
        first = next(c for c in p.commands if isinstance(c, MethodSwitched))
        out.print(
            escape(f"  {p.computer}: {first.requested} → {first.used} (error {int(first.code)})")
        )


@app.command(epilog=EXIT_CODES)
def images(
    site_file: Path,
    computer: str,
    disk: int = typer.Argument(1),
    partition: int = typer.Argument(1),
) -> None:
    """The Restore form's image lists for a partition: same filesystem / different filesystem."""
    try:
        site = _load_site(site_file)
        same, other = images_for_partition(site, computer, disk, partition)
    except OgError as exc:
        raise _fail(exc) from None
    t = Table(title=escape(f"{computer} {disk}:{partition}"))
    t.add_column("same filesystem")
    t.add_column("different filesystem (change partition type first)")
    for i in range(max(len(same), len(other))):
        a = f"{same[i].name} ({same[i].filesystem})" if i < len(same) else ""
        b = f"{other[i].name} ({other[i].filesystem})" if i < len(other) else ""
        t.add_row(escape(a), escape(b))
    out.print(t)


@app.command("engine-cfg", epilog=EXIT_CODES)
def engine_cfg_cmd(path: Path) -> None:
    """Validate an engine.cfg and print the values ogref will use."""
    try:
        cfg = EngineConfig.from_file(path)
    except OgError as exc:
        raise _fail(exc) from None
    t = Table(title=escape(str(path)))
    t.add_column("key")
    t.add_column("value")
    for line in cfg.to_text().splitlines():
        k, _, v = line.partition("=")
        t.add_row(escape(k), escape(v))
    out.print(t)


# How each console colour (ClientStatus.colour, OpenGnSys's icon colours) is drawn on a terminal.
_STATUS_STYLES = {
    "grey": "#808080",
    "pale blue": "#87cefa",
    "yellow": "#ffd700",
    "red": "#e00000",
    "blue": "#1e64ff",
    "maroon": "#800000",
    "orange": "#ff8c00",
    "grey (50%)": "#b4b4b4",
}


@app.command(epilog=EXIT_CODES)
def methods() -> None:
    """The five Restore methods and the status colours (drawn in colour, and named for
    terminals without colour)."""
    for m in ALL_METHODS:
        out.print(str(m))
    for s in ClientStatus:
        style = _STATUS_STYLES.get(s.colour, "")
        out.print(
            f"[{style}]{s.value:5} ■ {escape(s.colour):10}[/] {escape(s.meaning)}"
            if style
            else f"{s.value:5} ■ {escape(s.colour):10} {escape(s.meaning)}",
            highlight=False,
        )


@app.command(epilog=EXIT_CODES)
def schema() -> None:
    """Print the JSON schema of site files (for editors)."""
    print(json.dumps(SiteSpec.model_json_schema(), indent=1))


def _mount_runtime() -> None:
    """Add the imaging commands when the runtime package is present."""
    import importlib

    try:
        runtime_cli = importlib.import_module("ogref.runtime.cli")
    except ImportError:
        return
    register = getattr(runtime_cli, "register", None)
    if callable(register):
        register(app)
    elif hasattr(runtime_cli, "app"):
        app.add_typer(runtime_cli.app, name="image", help="imaging on real block devices")


def _mount_service() -> None:
    """Add ``serve`` and ``site import|export`` (the console service, :mod:`ogref.service`)."""
    from ogref.service.main import serve, site_app

    if any(c.callback is serve for c in app.registered_commands):
        return
    app.command(epilog=EXIT_CODES)(serve)
    app.add_typer(site_app, name="site")


def main() -> None:
    """Console-script entry point (errors and exit statuses: :class:`_Group`)."""
    _mount_service()
    _mount_runtime()
    app()
