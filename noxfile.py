"""Sessions users run: tests, lint, typecheck, build (per platform)."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

PLATFORMS = ["linux/riscv64", "linux/arm64", "linux/amd64"]


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, integration tests included (they start real servers)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session
@nox.parametrize("platform", PLATFORMS)
def build(session: nox.Session, platform: str) -> None:
    """Build the catalog for one platform: nox -s "build(platform='linux/riscv64')"."""
    session.install("-e", ".")
    session.run("crossyard", "build", "--platform", platform, *session.posargs)
