"""Nox sessions behind the Makefile: lint, types, tests (unit + sim; root-only tests skip as a user),
and the opt-in lab sessions.  `make test` runs the same checks in the project's .venv."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "types", "tests"]
nox.options.default_venv_backend = "venv"


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "ogref", "ogsim", "tests", "noxfile.py")
    session.run("ruff", "format", "--check", "ogref", "ogsim", "tests", "noxfile.py")


@nox.session
def types(session: nox.Session) -> None:
    session.install("-e", ".[sim,dev,service]")
    session.run("mypy")


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[sim,dev,service]")
    session.run("pytest", "-q", "-m", "not root", *session.posargs)


@nox.session
def lab(session: nox.Session) -> None:
    """Root-only tests (imaging on loop devices, namespaces): run as root."""
    session.install("-e", ".[sim,dev,lab,service]")
    session.run("pytest", "-q", "-m", "root", *session.posargs)
