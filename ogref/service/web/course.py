"""The course page (``/ui/course``): the exercise a trainer started with ``ogsim course`` — its
task in Spanish or English, its classroom, and which of its expectations hold once the student's
operations have ended — and the run's report (``/ui/course/report/…``: the summary and figures
``ogsim report`` draws).

The service is told the exercise when it starts (``ogref serve --course DIR``): ``DIR`` holds
``exercise.json`` (texts and the expectations' names, written before the service starts) and,
once an operation has ended, ``checks.json`` (each expectation evaluated by ogsim's expectation
code, and where the report is).  This module only reads and shows them: ogref never imports
ogsim, and nothing is evaluated here.  Without ``--course`` the page says there is no exercise.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from ogref.service.users import Action
from ogref.service.web import i18n

# the page's own words (the exercise's texts come in both languages from its YAML)
WORDS = {
    "en": {
        "exercise": "Exercise",
        "task": "Task",
        "classroom": "Classroom",
        "expectations": "Expected outcome",
        "pending": "pending",
        "holds": "holds",
        "fails": "does not hold",
        "skip": "not measurable here",
        "expected": "expected",
        "actual": "actual",
        "computers": "computers",
        "waiting": "Do the exercise's operations in the console; the expectations are checked "
        "when every operation submitted has ended.",
        "progress": "{done} of {steps} operation(s) ended",
        "passed": "Exercise passed",
        "failed": "Exercise not passed",
        "partial": "The exercise has more operations to do",
        "report": "Report of this run (figures and summary)",
        "none": "No exercise is running in this console (start one with ogsim course).",
        "hints": "Hints",
        "open_room": "Open the classroom",
    },
    "es": {
        "exercise": "Ejercicio",
        "task": "Tarea",
        "classroom": "Aula",
        "expectations": "Resultado esperado",
        "pending": "pendiente",
        "holds": "se cumple",
        "fails": "no se cumple",
        "skip": "no medible aquí",
        "expected": "esperado",
        "actual": "obtenido",
        "computers": "equipos",
        "waiting": "Realice las operaciones del ejercicio en la consola; lo esperado se comprueba "
        "cuando han terminado todas las operaciones enviadas.",
        "progress": "{done} de {steps} operación(es) terminada(s)",
        "passed": "Ejercicio superado",
        "failed": "Ejercicio no superado",
        "partial": "Quedan operaciones del ejercicio por hacer",
        "report": "Informe de esta ejecución (gráficas y resumen)",
        "none": "No hay ningún ejercicio en marcha en esta consola (se inicia con ogsim course).",
        "hints": "Pistas",
        "open_room": "Abrir el aula",
    },
}
REPORT_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}\.(html|svg|md|png)$")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def view(course: Path | None) -> dict[str, Any]:
    """The exercise and its checks as the templates show them (``exercise`` None: no course)."""
    if course is None:
        return {"exercise": None}
    exercise = _read(course / "exercise.json")
    if exercise is None:
        return {"exercise": None}
    checks = _read(course / "checks.json")
    rows: list[dict[str, Any]]
    if checks is None:
        rows = [{"name": n, "state": "pending"} for n in exercise.get("expectations", [])]
        verdict = "pending"
    else:
        rows = [
            {**c, "state": "skip" if not c.get("applicable", True) else
             "holds" if c.get("ok") else "fails"}
            for c in checks.get("checks", [])
        ]  # fmt: skip
        verdict = (
            "passed" if checks.get("passed")
            else "partial" if int(checks.get("operations", 0)) < int(checks.get("steps", 0))
            else "failed"
        )  # fmt: skip
    return {"exercise": exercise, "checks": checks, "rows": rows, "verdict": verdict}


def mount(app: FastAPI, engine: Any, hooks: Any) -> None:
    """Add ``/ui/course`` and its report to ``app`` (``hooks``: the pages' :class:`Hooks`)."""
    from ogref.service.web.pages import _env

    env = _env()

    def course_dir(request: Request) -> Path | None:
        d = getattr(request.app.state, "course", None)
        return Path(d) if d else None

    def render(request: Request, template: str, **ctx: Any) -> HTMLResponse:
        lang = i18n.pick(request.cookies.get("lang"), request.headers.get("accept-language"))
        env.install_gettext_translations(i18n.translations(lang), newstyle=True)  # type: ignore[attr-defined]
        html = env.get_template(template).render(request=request, lang=lang, w=WORDS[lang], **ctx)
        return HTMLResponse(html)

    def viewer(request: Request, exercise: dict[str, Any] | None) -> Any:
        try:
            who = hooks.caller(request)
        except HTTPException:
            return None
        if exercise is not None:
            rooms = {r for r in exercise.get("classrooms", []) if isinstance(r, str)}
            hooks.require(who, Action.VIEW, rooms)
        return who

    @app.get("/ui/course", include_in_schema=False)
    async def course_page(request: Request) -> Response:
        v = view(course_dir(request))
        who = viewer(request, v["exercise"])
        if who is None:
            return RedirectResponse("/login", 303)
        return render(request, "course.html", who=who, **v)

    @app.get("/ui/course/checks", include_in_schema=False)
    async def course_checks(request: Request) -> Response:
        v = view(course_dir(request))
        who = viewer(request, v["exercise"])
        if who is None:
            raise HTTPException(401, "log in first")
        return render(request, "_course_checks.html", who=who, **v)

    @app.get("/ui/course/report", include_in_schema=False)
    async def course_report_index(request: Request) -> Response:
        return await course_report("summary.html", request)

    @app.get("/ui/course/report/{name}", include_in_schema=False)
    async def course_report(name: str, request: Request) -> Response:
        d = course_dir(request)
        v = view(d)
        who = viewer(request, v["exercise"])
        if who is None:
            return RedirectResponse("/login", 303)
        checks = v.get("checks") or {}
        if d is None or not checks.get("report") or not REPORT_FILE.match(name):
            raise HTTPException(404, "no report yet: it is drawn when the operations have ended")
        where = (d / str(checks["report"])).resolve()
        path = (where / name).resolve()
        if not where.is_relative_to(d.resolve()) or path.parent != where or not path.is_file():
            raise HTTPException(404, f"no {name} in this run's report")
        media = {".svg": "image/svg+xml", ".md": "text/markdown; charset=utf-8"}.get(path.suffix)
        return FileResponse(path, media_type=media)
