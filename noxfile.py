"""Sessions users run: pipeline (the main job), tests, lint, typecheck, build (per platform)."""

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
def pipeline(session: nox.Session) -> None:
    """The main job on this machine: build the example catalog for riscv64 and arm64 (cached),
    check every artifact (ELF machine, smoke test under qemu-user), record crossyard.lock."""
    session.install("-e", ".")
    session.run("crossyard", "toolchains")
    session.run("crossyard", "build", *session.posargs)
    session.run("crossyard", "store", "ls")


@nox.session
@nox.parametrize("platform", PLATFORMS)
def build(session: nox.Session, platform: str) -> None:
    """Build the catalog for one platform: nox -s "build(platform='linux/riscv64')"."""
    session.install("-e", ".")
    session.run("crossyard", "build", "--platform", platform, *session.posargs)
