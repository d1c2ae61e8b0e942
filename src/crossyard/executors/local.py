"""Run a job on this machine: a fresh temp directory, a clean environment, a log per job.

Toolchains that live in a Debian root (Rust from trixie, an emulated riscv64 Go) run inside it
with bubblewrap: the root read-only as `/`, the job directory at `/tmp/build`, the toolchain's
cache at `/tmp/cache`. Nothing of the caller's environment leaks in except what is listed here.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..builders import BuildScript, JobPaths, output_inside
from ..errors import BuildError
from ..sources import ResolvedSource, copy_tree
from ..toolchains import in_root

STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TAIL_LINES = 25
CANCEL_GRACE_S = 5.0  # after SIGTERM, how long a step's processes get before SIGKILL
SANDBOX_JOB = "/tmp/build"
SANDBOX_CACHE = "/tmp/cache"


@dataclass(frozen=True, kw_only=True)
class ExecRequest:
    """What the executor needs to run one job; no recipe, no store."""

    label: str  # for messages: "hello-go@linux/riscv64"
    source: ResolvedSource
    deps: Mapping[str, Mapping[str, Path]]  # recipe → file name → file on this machine
    root: Path | None  # toolchain root to run in, or None for the host
    cache_dir: Path  # persistent, per toolchain
    env: Mapping[str, str]  # toolchain env
    source_date_epoch: int
    script: Callable[[JobPaths], BuildScript]
    log: Path


def clean_env(*, paths: JobPaths, epoch: int, extra_path: str | None, extra: Mapping[str, str]) -> dict[str, str]:
    """The whole environment a build sees. Fixed locale, zone and time; a private HOME."""
    path = STANDARD_PATH if not extra_path else f"{extra_path}:{STANDARD_PATH}"
    return {
        "PATH": path,
        "HOME": paths.home,
        "TMPDIR": f"{paths.root}/tmp",
        "SOURCE_DATE_EPOCH": str(epoch),
        "TZ": "UTC",
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "USER": "crossyard",
        **extra,
    }


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class LocalExecutor:
    """Runs jobs in temp directories on this machine."""

    name = "local"

    def __init__(self, *, temp_root: Path | None = None) -> None:
        self.temp_root = temp_root
        self.node = f"local:{socket.gethostname()}"
        # Each step runs in its own session, so `cancel` can stop it and everything it started
        # (make → gcc, go → compile, bwrap → cargo) with one signal to the process group.
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._cancelled = False

    def cancel(self, grace: float = CANCEL_GRACE_S) -> None:
        """Stop every running step and refuse new ones: SIGTERM to each step's process group,
        SIGKILL to what is left after `grace` seconds. The jobs then fail and remove their
        directories as on any failure. Safe to call from the main thread while jobs run."""
        with self._lock:
            self._cancelled = True
            running = list(self._running)
        for process in running:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)

    @contextlib.contextmanager
    def run(self, request: ExecRequest) -> Iterator[dict[str, Path]]:
        """Build; yield output name → file (valid until the block ends, then all is removed)."""
        jobdir = Path(tempfile.mkdtemp(prefix="crossyard-job-", dir=self.temp_root))
        try:
            for sub in ("out", "deps", "home", "tmp"):
                (jobdir / sub).mkdir()
            copy_tree(request.source, jobdir / "src")
            for recipe, files in request.deps.items():
                target = jobdir / "deps" / recipe
                target.mkdir()
                for name, path in files.items():
                    shutil.copyfile(path, target / name)
                    os.chmod(target / name, 0o755 if os.access(path, os.X_OK) else 0o644)
            request.cache_dir.mkdir(parents=True, exist_ok=True)
            if request.root is None:
                seen = JobPaths(
                    root=str(jobdir), src=str(jobdir / "src"), out=str(jobdir / "out"),
                    deps=str(jobdir / "deps"), cache=str(request.cache_dir), home=str(jobdir / "home"),
                )
                binds: list[tuple[Path, str]] = []
            else:
                # Mount points go under the sandbox's /tmp tmpfs: the root itself is read-only.
                seen = JobPaths(root=SANDBOX_JOB, src=f"{SANDBOX_JOB}/src", out=f"{SANDBOX_JOB}/out",
                                deps=f"{SANDBOX_JOB}/deps", cache=SANDBOX_CACHE, home=f"{SANDBOX_JOB}/home")
                binds = [(jobdir, SANDBOX_JOB), (request.cache_dir, SANDBOX_CACHE)]
            script = request.script(seen)
            self._run_steps(request, script, seen, binds)
            yield {name: self._output(request, jobdir, seen, name, seen_path)
                   for name, seen_path in script.outputs.items()}
        finally:
            shutil.rmtree(jobdir, ignore_errors=True)

    @staticmethod
    def _output(request: ExecRequest, jobdir: Path, seen: JobPaths, name: str, seen_path: str) -> Path:
        """The file an output names, on this machine. It must be a regular file inside the job
        directory once symlinks are resolved: a build (or a symlink in its source) pointing an
        output at /etc/shadow or another job's tree must not carry that file into the store."""
        if not output_inside(name, seen_path, seen.root):
            raise BuildError(f"{request.label}: output `{name}` ({seen_path}) is outside the job directory")
        host_path = jobdir / posixpath.relpath(posixpath.normpath(seen_path), seen.root)
        resolved = host_path.resolve()
        if not resolved.is_relative_to(jobdir.resolve()):
            raise BuildError(
                f"{request.label}: output `{name}` ({seen_path}) is a symlink to {resolved}, outside the "
                "job directory; outputs must be files the build made",
                log=request.log, tail=tail(request.log),
            )
        if not resolved.is_file():
            raise BuildError(
                f"{request.label}: the build succeeded but did not produce `{name}` ({seen_path})",
                log=request.log, tail=tail(request.log),
            )
        return resolved

    def _run_steps(self, request: ExecRequest, script: BuildScript, seen: JobPaths,
                   binds: list[tuple[Path, str]]) -> None:
        request.log.parent.mkdir(parents=True, exist_ok=True)
        first = script.steps[0].argv[0] if script.steps else ""
        extra_path = os.path.dirname(first) if request.root is None and os.path.isabs(first) else None
        with request.log.open("w") as log:
            for step in script.steps:
                env = clean_env(paths=seen, epoch=request.source_date_epoch, extra_path=extra_path,
                                extra={**request.env, **script.env, **step.env})
                argv = in_root(request.root, step.argv, binds=binds, workdir=step.cwd)
                log.write(f"$ {' '.join(step.argv)}\n")
                log.flush()
                started = time.monotonic()
                with self._lock:  # so `cancel` either sees this step or it never starts
                    if self._cancelled:
                        raise BuildError(f"{request.label}: cancelled", log=request.log)
                    try:
                        process = subprocess.Popen(
                            argv, cwd=step.cwd if request.root is None else None, env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, umask=0o022,
                            start_new_session=True,
                        )
                    except OSError as error:
                        raise BuildError(f"{request.label}: cannot run `{step.argv[0]}`: {error.strerror}",
                                         log=request.log) from None
                    self._running.add(process)
                try:
                    returncode = process.wait()
                finally:
                    with self._lock:
                        self._running.discard(process)
                log.write(f"# exit {returncode} after {time.monotonic() - started:.1f}s\n")
                log.flush()
                if returncode != 0:
                    log.close()
                    if self._cancelled:
                        raise BuildError(f"{request.label}: cancelled", log=request.log)
                    raise BuildError(
                        f"{request.label}: `{' '.join(step.argv[:3])} …` exited with status {returncode}",
                        log=request.log, tail=tail(request.log),
                    )


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)
