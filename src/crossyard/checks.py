"""Checks every artifact passes before it enters the store: the ELF header names the job's
platform, and the recipe's smoke test prints what it expects (under qemu-user when foreign)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from .elf import mismatch
from .errors import BuildError, ConfigurationError
from .platforms import Platform
from .recipes import Test
from .toolchains import qemu_command

SMOKE_TIMEOUT = 120


def check_elf(label: str, files: Mapping[str, Path], platform: Platform) -> None:
    problems = [p for p in (mismatch(path, platform) for path in files.values()) if p]
    if problems:
        raise BuildError(f"{label}: built for the wrong platform: " + "; ".join(problems))


def smoke_argv(path: Path, args: tuple[str, ...], platform: Platform, sysroot: str) -> list[str]:
    if platform == Platform.host():
        return [str(path), *args]
    qemu = qemu_command(platform)
    if qemu is None:
        raise ConfigurationError(
            f"cannot smoke-test {platform} binaries: `{platform.qemu_binary}` is not installed; "
            "run `apt-get install -y qemu-user-static`"
        )
    return [qemu, "-L", sysroot, str(path), *args]


def smoke_test(label: str, files: Mapping[str, Path], test: Test, platform: Platform, sysroot: str) -> str:
    """Run the test; return its output. A wrong exit status or output is a `BuildError`."""
    name, *args = test.run
    path = files.get(name)
    if path is None:
        raise BuildError(f"{label}: [test] run names `{name}`, but the outputs are {', '.join(sorted(files))}")
    argv = smoke_argv(path, tuple(args), platform, sysroot)
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "TZ": "UTC", **dict(test.env)}
    try:
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=SMOKE_TIMEOUT,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise BuildError(f"{label}: smoke test `{' '.join(test.run)}` did not finish in {SMOKE_TIMEOUT}s") from None
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise BuildError(f"{label}: smoke test `{' '.join(test.run)}` exited with status {result.returncode}",
                         tail=output[-2000:])
    if test.expect is not None and test.expect not in result.stdout:
        raise BuildError(
            f"{label}: smoke test `{' '.join(test.run)}` printed no `{test.expect}`", tail=output[-2000:]
        )
    return result.stdout
