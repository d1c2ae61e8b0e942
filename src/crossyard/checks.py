"""Checks every artifact passes before it enters the store: the ELF header names the job's
platform, and the recipe's smoke test prints what it expects (under qemu-user when foreign)
within its `[test] timeout`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

from .elf import mismatch
from .errors import BuildError, ConfigurationError
from .platforms import Platform
from .recipes import Test
from .toolchains import qemu_command


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


class SmokeTests:
    """Runs recipes' smoke tests, each in a session (process group) of its own: when the test
    ends, times out or the build is cancelled, the whole group is killed, so a test that forks
    (a daemon, a child that sleeps; under qemu-user each is another qemu) leaves nothing running.
    `cancel` is safe to call from another thread while tests run."""

    def __init__(self) -> None:
        self._running: set[int] = set()  # process group ids
        self._lock = threading.Lock()
        self._cancelled = False

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            groups = list(self._running)
        for group in groups:
            _kill_group(group)

    def run(self, label: str, files: Mapping[str, Path], test: Test, platform: Platform, sysroot: str) -> str:
        """Run the test; return its output. A wrong exit status or output is a `BuildError`."""
        name, *args = test.run
        path = files.get(name)
        if path is None:
            raise BuildError(f"{label}: [test] run names `{name}`, but the outputs are {', '.join(sorted(files))}")
        argv = smoke_argv(path, tuple(args), platform, sysroot)
        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "TZ": "UTC", **dict(test.env)}
        shown = " ".join(test.run)
        # Under qemu-user a test that hangs gets one more try: qemu emulates vfork as fork, and a
        # fork while another thread holds one of qemu's locks leaves the child waiting on it for
        # ever (a Go program that starts a process, e.g. buildkitd probing binfmt on every start,
        # hangs so in about 1 run of 30 here). A native hang is the program's: no second try.
        tries = 1 if platform == Platform.host() else 2
        for _ in range(tries):
            timed_out, returncode, out, output = self._once(label, argv, env, test.timeout)
            if not timed_out:
                break
        if timed_out:
            again = f" (tried {tries} times under qemu-user)" if tries > 1 else ""
            raise BuildError(f"{label}: smoke test `{shown}` did not finish in {test.timeout}s "
                             f"([test] timeout){again}; it was stopped with every process it started",
                             tail=output[-2000:])
        if returncode != 0:
            raise BuildError(f"{label}: smoke test `{shown}` exited with status {returncode}",
                             tail=output[-2000:])
        if test.expect is not None and test.expect not in out:
            raise BuildError(f"{label}: smoke test `{shown}` printed no `{test.expect}`", tail=output[-2000:])
        return out

    def _once(self, label: str, argv: list[str], env: dict[str, str], timeout: int) -> tuple[bool, int, str, str]:
        """One run: (timed out, exit status, stdout, stdout + stderr)."""
        # Output goes to files, not pipes: a child that outlives the test would hold a pipe open
        # and keep a reader waiting after the test itself is done.
        with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
            with self._lock:
                if self._cancelled:
                    raise BuildError(f"{label}: cancelled")
                process = subprocess.Popen(argv, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                                           env=env, start_new_session=True)
                self._running.add(process.pid)
            timed_out = False
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(process.pid)  # what the test started ends with it
                process.wait()
                with self._lock:
                    self._running.discard(process.pid)
            stdout.seek(0)
            stderr.seek(0)
            out = stdout.read().decode(errors="replace")
            output = out + stderr.read().decode(errors="replace")
        if self._cancelled:
            raise BuildError(f"{label}: cancelled")
        return timed_out, process.returncode, out, output


def _kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)
