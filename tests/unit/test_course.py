"""Course exercises: every ``scenarios/course/*.yaml`` loads as an exercise; a bad one names the
file, the YAML path and the reason; ``ogsim course`` lists, refuses unknown names, libvirt
(naming what it lacks) and netns without root; the console's view of an exercise's checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ogref.errors import ConfigError
from ogref.service.web.course import view
from ogsim.cli import app
from ogsim.course import (
    COURSE_DIR,
    exercise_document,
    exercise_files,
    find_exercise,
    load_exercise,
)

runner = CliRunner()
FILES = exercise_files()
GOOD = COURSE_DIR / "different-filesystem.yaml"


def test_the_seeds_examples_are_all_there() -> None:
    stems = {f.stem for f in FILES}
    assert {
        "seed-35pc-torrent-cache",
        "deploy-wizard-two-phase",
        "multicast-cache-fallback",
        "windows-second-partition",
        "different-filesystem",
    } <= stems


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_every_exercise_loads(path: Path) -> None:
    sc = load_exercise(path)
    ex = sc.spec.exercise
    assert ex is not None
    for text in (ex.title, ex.task):
        assert text.es.strip() and text.en.strip() and text.es != text.en
    doc = exercise_document(sc, "sim", 20.0)
    assert len(doc["expectations"]) == len(sc.spec.expect) > 0  # every one is shown, pending
    assert doc["classrooms"] and doc["steps"] == len(sc.spec.operations) > 0
    # makespans are meaningless in a course (the student's thinking time counts)
    assert not [e for e in sc.spec.expect if e.kind.startswith("makespan")]


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_every_reference_solution_meets_its_expectations(path: Path) -> None:
    """The exercise's operations, simulated, pass its checks (what ogsim course warns about)."""
    from ogsim.expect import evaluate
    from ogsim.simulator import simulate

    sc = load_exercise(path)
    checks = evaluate(simulate(sc), sc.spec.expect)
    assert checks and all(c.ok for c in checks if c.applicable), [c.diff() for c in checks]


def _bad(tmp_path: Path, change: object) -> ConfigError:
    data = yaml.safe_load(GOOD.read_text())
    change(data)  # type: ignore[operator]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(ConfigError) as info:
        load_exercise(path)
    assert info.value.source == str(path)
    return info.value


def test_a_misspelt_key_in_the_exercise_is_named(tmp_path: Path) -> None:
    exc = _bad(tmp_path, lambda d: d["exercise"].update(taks=d["exercise"]["task"]))
    assert exc.path == "exercise.taks"
    assert "unknown key" in exc.reason


def test_a_missing_translation_is_named(tmp_path: Path) -> None:
    exc = _bad(tmp_path, lambda d: d["exercise"]["task"].pop("en"))
    assert exc.path == "exercise.task.en"
    assert "required" in exc.reason.lower()


def test_a_scenario_without_an_exercise_block_is_not_an_exercise(tmp_path: Path) -> None:
    exc = _bad(tmp_path, lambda d: d.pop("exercise"))
    assert exc.path == "exercise" and "exercise:" in exc.reason


def test_an_exercise_without_expectations_is_refused(tmp_path: Path) -> None:
    exc = _bad(tmp_path, lambda d: d.update(expect=[]))
    assert exc.path == "expect"


def test_an_expectation_on_an_unknown_computer_is_named(tmp_path: Path) -> None:
    exc = _bad(tmp_path, lambda d: d["expect"][1]["code"].update(computers=["pc99"]))
    assert exc.path == "expect.1.code.computers" and "pc99" in exc.reason


def test_exercises_are_found_by_name_prefix_or_file() -> None:
    assert find_exercise("seed-35pc").stem == "seed-35pc-torrent-cache"
    assert find_exercise(str(GOOD)) == GOOD
    with pytest.raises(LookupError, match=r"no exercise 'nope'.*different-filesystem"):
        find_exercise("nope")


def test_course_list_and_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    listed = runner.invoke(app, ["course", "--list"])
    assert listed.exit_code == 0
    for f in FILES:
        assert f.stem in listed.output
    unknown = runner.invoke(app, ["course", "nope"])
    assert unknown.exit_code == 4 and "no exercise 'nope'" in unknown.output
    lab = runner.invoke(app, ["course", "seed-35pc", "--backend", "libvirt"])
    assert lab.exit_code == 3
    assert "Missing:" in lab.output and "live clients (OPG)" in lab.output
    # netns: a bad --listen is refused before anything is built; without root, refused too
    bad = runner.invoke(app, ["course", "deploy-wizard-small", "--backend", "netns",
                              "--listen", "nowhere"])  # fmt: skip
    assert bad.exit_code == 4 and "not IP:PORT" in bad.output
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    user = runner.invoke(app, ["course", "deploy-wizard-small", "--backend", "netns"])
    assert user.exit_code == 3 and "needs root" in user.output


def test_the_console_view_of_checks(tmp_path: Path) -> None:
    assert view(None) == {"exercise": None}
    assert view(tmp_path)["exercise"] is None  # no exercise.json
    doc = exercise_document(load_exercise(GOOD), "sim", 20.0)
    (tmp_path / "exercise.json").write_text(json.dumps(doc))
    v = view(tmp_path)
    assert v["verdict"] == "pending"
    assert [r["state"] for r in v["rows"]] == ["pending"] * len(doc["expectations"])
    checks = {"passed": False, "operations": 1, "steps": 1, "report": "report/x", "checks": [
        {"name": "all restored", "ok": True, "applicable": True, "expected": "", "actual": ""},
        {"name": "code 0", "ok": False, "applicable": True, "expected": "0", "actual": "20"},
        {"name": "makespan", "ok": True, "applicable": False, "expected": "", "actual": "why"},
    ]}  # fmt: skip
    (tmp_path / "checks.json").write_text(json.dumps(checks))
    v = view(tmp_path)
    assert v["verdict"] == "failed"
    assert [r["state"] for r in v["rows"]] == ["holds", "fails", "skip"]
    (tmp_path / "checks.json").write_text(json.dumps({**checks, "steps": 2}))
    assert view(tmp_path)["verdict"] == "partial"  # one of the exercise's two operations done
    (tmp_path / "checks.json").write_text(json.dumps({**checks, "passed": True}))
    assert view(tmp_path)["verdict"] == "passed"


def test_a_netns_course_refuses_an_out_dir_with_a_killed_runs_leftovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a killed run left is not this course's to destroy: refused, nothing touched."""
    from ogsim.lab.manifest import Manifest

    left = tmp_path / "left-by-a-killed-run"
    left.write_text("x")
    Manifest(tmp_path / "out" / "lab").record("file", str(left))
    monkeypatch.setattr("os.geteuid", lambda: 0)
    got = runner.invoke(app, ["course", "deploy-wizard-small", "--backend", "netns",
                              "--out", str(tmp_path / "out")])  # fmt: skip
    assert got.exit_code == 3, got.output
    assert "ogsim destroy" in got.output and left.exists()
    assert Manifest(tmp_path / "out" / "lab").pending()


def test_a_netns_courses_records_in_the_results_terms(tmp_path: Path) -> None:
    """An operation read back from the lab's service: the student's image, method and scope,
    an unfinished computer recorded as not started, an ended one with its code."""
    import time

    from ogsim.lab.netns.course import LabCourse, LabCourseOptions

    sc = load_exercise(COURSE_DIR / "deploy-wizard-small.yaml")
    course = LabCourse(sc, LabCourseOptions(out=tmp_path, user="u", password="p"))
    now = time.time()
    op = {"op": 2, "kind": "deploy", "done": False, "records": [
        {"name": "pc01", "status": "busy", "final": False, "sent": now},
        {"name": "pc03", "status": "failed", "final": True, "code": 15, "sent": now,
         "finished": now + 1, "message": "no CACHE"}]}  # fmt: skip
    asked = {"deploy": {"image": "ubuntu", "method": "UNICAST-CACHE", "to": {"classroom": "aula1"}}}
    got = course._operation(op, 1, asked)
    assert (got.index, got.image, got.method, got.scope) == (1, "ubuntu", "UNICAST-CACHE", "aula1")
    by = {c.name: c for c in got.computers}
    assert by["pc01"].status == "not_started" and by["pc01"].finished is None
    assert by["pc03"].status == "failed" and by["pc03"].code == 15
