"""Shared test plumbing.

`require_tool` is how a test says it needs a real program. Locally a missing tool skips the test
with the install hint; with CI=true it fails, because CI must never pass by skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crossyard.platforms import Platform
from crossyard.toolchains import roots_dir

# fixtures several files share, each in its own module
pytest_plugins = ["helpers.buildkit_fixtures"]

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, reason: str) -> None:
    """Skip locally, fail in CI, when `condition` does not hold."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and a required tool is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str, hint: str = "") -> str:
    path = shutil.which(name)
    require(path is not None, f"`{name}` not found on PATH{'; ' + hint if hint else ''}")
    assert path is not None
    return path


def binfmt_registered(qemu_arch: str) -> bool:
    entry = Path("/proc/sys/fs/binfmt_misc") / f"qemu-{qemu_arch}"
    try:
        return entry.read_text().startswith("enabled")
    except OSError:
        return False


def require_emulated_roots(roots: tuple[str, ...], platform: Platform, *, prepare: str) -> None:
    """What an emulated build in toolchain roots needs: the roots (`prepare` makes them),
    bubblewrap, and `platform`'s qemu-user with its binfmt entry."""
    for name in roots:
        require((roots_dir() / name / "usr").is_dir(), f"the {name} root is missing: run {prepare}")
    require_tool("bwrap", "apt-get install bubblewrap")
    require_tool(platform.qemu_binary, "apt-get install qemu-user-static")
    require(binfmt_registered(platform.qemu_arch),
            f"binfmt has no qemu-{platform.qemu_arch} entry: run .ci/install.d/10-binfmt.sh")


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `crossyard` entry point in a subprocess (exit codes and stderr as users see them)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "crossyard.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=1800,
    )


def build_summary(ws: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """`crossyard -C ws build --json ARGS`, which must succeed; its JSON summary."""
    result = run_cli("-C", str(ws), "build", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


@pytest.fixture
def cli():
    return run_cli
