"""The console's Exercise page and report route (``ogref serve --course DIR``) over a real app:
the task in both languages, pending then evaluated expectations, and a report route that serves
the plain files of the run's report directory and nothing else."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from ogref.service.main import Options, build
from ogsim.course import COURSE_DIR, exercise_document, load_exercise, write_json

EXERCISE = COURSE_DIR / "different-filesystem.yaml"


def _client(tmp_path: Path, course: Path | None) -> TestClient:
    password = tmp_path / "pw"
    password.write_text("secret-admin")
    _engine, app = build(Options(state=tmp_path / "state", site=EXERCISE, course=course,
                                 admin_password_file=password))  # fmt: skip
    client = TestClient(app)
    reply = client.post("/login", data={"user": "admin", "password": "secret-admin"},
                        follow_redirects=False)  # fmt: skip
    assert reply.status_code == 303, reply.text
    return client


def test_without_a_course_the_page_says_so(tmp_path: Path) -> None:
    client = _client(tmp_path, None)
    page = client.get("/ui/course")
    assert page.status_code == 200 and 'id="no-exercise"' in page.text
    assert client.get("/ui/course/report/summary.html").status_code == 404


def test_the_exercise_its_checks_and_its_report(tmp_path: Path) -> None:
    course = tmp_path / "course"
    course.mkdir()
    write_json(course / "exercise.json", exercise_document(load_exercise(EXERCISE), "sim", 20))
    client = _client(tmp_path, course)
    assert TestClient(client.app).get("/ui/course", follow_redirects=False).status_code == 303
    page = client.get("/ui/course")
    assert "Restore an image of a different filesystem" in page.text
    assert page.text.count('data-state="pending"') == 3
    es = client.get("/ui/course", headers={"Accept-Language": "es"}).text
    assert "Restaurar una imagen de distinto sistema" in es and "pendiente" in es
    assert client.get("/ui/course/report/summary.html").status_code == 404  # not drawn yet
    report = course / "report" / "different-filesystem" / "sim-1"
    report.mkdir(parents=True)
    (report / "summary.html").write_text("<h1>the summary</h1>")
    (report / "timeline.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    checks = {"passed": False, "operations": 1, "steps": 1,
              "report": "report/different-filesystem/sim-1", "checks": [
                  {"name": "all restored", "ok": False, "applicable": True,
                   "expected": "every computer ok", "actual": "8 not ok: failed×8",
                   "offenders": ["pc01 (failed 20: …)"]}]}  # fmt: skip
    write_json(course / "checks.json", checks)
    part = client.get("/ui/course/checks").text
    assert 'data-verdict="failed"' in part and 'data-state="fails"' in part
    assert "8 not ok: failed×8" in part and 'id="report-link"' in part
    assert client.get("/ui/course/report").text == "<h1>the summary</h1>"
    svg = client.get("/ui/course/report/timeline.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    for bad in ("..%2F..%2F..%2Fexercise.json", "..%2F..%2Fchecks.json", "nothing.html",
                "exercise.json"):  # fmt: skip
        assert client.get(f"/ui/course/report/{bad}").status_code == 404, bad
    # a checks.json pointing outside the course directory serves nothing
    write_json(course / "checks.json", {**checks, "report": "../state"})
    assert client.get("/ui/course/report/oglab.db").status_code == 404
    assert client.get("/ui/course/report/summary.html").status_code == 404
