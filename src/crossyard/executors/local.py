"""Run a job on this machine: a fresh temp directory, a clean environment, a log per job.

Toolchains that live in a Debian root (Rust from trixie, an emulated riscv64 Go) run inside it
with bubblewrap: the root read-only as `/`, the job directory at `/tmp/build`, the toolchain's
cache at `/tmp/cache`. Nothing of the caller's environment leaks in except what is listed here.

`run` takes a `Variation` (repro check): another job directory, the source copied in reverse
order, another umask, zone, locale or user. The default is the plain run every build gets.
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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..builders import output_inside
from ..errors import BuildError
from ..hashing import sha256_file
from ..jobspec import CONTROL, Inputs, JobPaths, JobSpec, Step, Variation
from ..sources import copy_tree
from ..toolchains import in_root, roots_dir
from . import Outputs

STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TAIL_LINES = 25
CANCEL_GRACE_S = 5.0  # after SIGTERM, how long a step's processes get before SIGKILL
SANDBOX_JOB = "/tmp/build"
SANDBOX_CACHE = "/tmp/cache"


def clean_env(*, paths: JobPaths, epoch: int, extra_path: str | None, extra: Mapping[str, str],
              variation: Variation = CONTROL) -> dict[str, str]:
    """The whole environment a build sees. Fixed locale, zone and time (unless `variation` says
    otherwise); a private HOME."""
    path = STANDARD_PATH if not extra_path else f"{extra_path}:{STANDARD_PATH}"
    return {
        "PATH": path,
        "HOME": paths.home,
        "TMPDIR": f"{paths.root}/tmp",
        "SOURCE_DATE_EPOCH": str(epoch),
        "TZ": variation.tz,
        "LC_ALL": variation.locale,
        "LANG": variation.locale,
        "USER": "crossyard",
        **extra,
    }


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def job_view(jobdir: str, cache: str, *, rooted: bool,
             sandbox: str = SANDBOX_JOB) -> tuple[JobPaths, list[tuple[Path, str]]]:
    """The job's directories as its steps see them, and what bubblewrap binds where for a
    toolchain root (mount points under the sandbox's /tmp tmpfs: the root itself is read-only).
    `jobdir` and `cache` are paths on the machine that runs the job, this one or a node."""
    if not rooted:
        return JobPaths(root=jobdir, src=f"{jobdir}/src", out=f"{jobdir}/out", deps=f"{jobdir}/deps",
                        cache=cache, home=f"{jobdir}/home"), []
    seen = JobPaths(root=sandbox, src=f"{sandbox}/src", out=f"{sandbox}/out",
                    deps=f"{sandbox}/deps", cache=SANDBOX_CACHE, home=f"{sandbox}/home")
    return seen, [(Path(jobdir), sandbox), (Path(cache), SANDBOX_CACHE)]


@dataclass(frozen=True, kw_only=True)
class Command:
    """One step as a process to start: what the log shows, what runs, where, with what."""

    shown: tuple[str, ...]  # the step's argv, placeholders filled
    argv: list[str]  # wrapped in bubblewrap for a toolchain root
    cwd: str | None  # None: bubblewrap changes directory itself
    workdir: str  # the step's directory as the step sees it
    env: dict[str, str]  # the whole environment


def commands(spec: JobSpec, seen: JobPaths, root: Path | None,
             binds: list[tuple[Path, str]], variation: Variation = CONTROL) -> list[Command]:
    """The spec's steps with the job's paths put in, each in the clean environment."""
    steps = [Step(argv=tuple(seen.fill(a) for a in step.argv), cwd=seen.fill(step.cwd),
                  env={k: seen.fill(v) for k, v in step.env.items()}) for step in spec.steps]
    first = steps[0].argv[0] if steps else ""
    # A host toolchain named by absolute path (/usr/lib/go-1.19/bin/go) finds its siblings
    extra_path = posixpath.dirname(first) if root is None and posixpath.isabs(first) else None
    job_env = {k: seen.fill(v) for k, v in {**spec.toolchain.env, **spec.env}.items()}
    return [Command(shown=step.argv, argv=in_root(root, step.argv, binds=binds, workdir=step.cwd),
                    cwd=step.cwd if root is None else None, workdir=step.cwd,
                    env=clean_env(paths=seen, epoch=spec.source_date_epoch, extra_path=extra_path,
                                  extra={**job_env, **step.env}, variation=variation))
            for step in steps]


def output_path(spec: JobSpec, seen: JobPaths, name: str) -> tuple[str, str]:
    """Output `name` as the steps see it, and relative to the job directory. It must name a file
    inside that directory (lexically here; the executor checks again once symlinks are resolved)."""
    seen_path = seen.fill(spec.outputs[name])
    if not output_inside(name, seen_path, seen.root):
        raise BuildError(f"{spec.id}: output `{name}` ({seen_path}) is outside the job directory")
    return seen_path, posixpath.relpath(posixpath.normpath(seen_path), seen.root)


class LocalExecutor:
    """Runs jobs in temp directories on this machine, on the host or inside a toolchain root."""

    name = "local"

    def __init__(self, *, cache_root: Path, temp_root: Path | None = None, roots: Path | None = None) -> None:
        self.cache_root = cache_root  # <cache_root>/<toolchain>: GOCACHE and the like, kept
        self.temp_root = temp_root
        self.roots = roots or roots_dir()
        self.node = f"local:{socket.gethostname()}"
        # Each step runs in its own session, so `cancel` can stop it and everything it started
        # (make → gcc, go → compile, bwrap → cargo) with one signal to the process group.
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._cancelled = False

    def refuses(self, spec: JobSpec) -> str | None:
        if spec.docker is not None:
            return "a Dockerfile build needs a Docker engine"
        if spec.toolchain.root is not None and not (self.roots / spec.toolchain.root / "usr").is_dir():
            return (f"toolchain root {self.roots / spec.toolchain.root} is not prepared; run "
                    f"`crossyard toolchains prepare {spec.toolchain.name}`")
        return None

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
    def run(self, spec: JobSpec, inputs: Inputs, log: Path, *,
            variation: Variation = CONTROL) -> Iterator[Outputs]:
        """Build; yield the outputs (valid until the block ends, then all is removed)."""
        refused = self.refuses(spec)
        if refused is not None:
            raise BuildError(f"{spec.id}: {refused}")
        if variation.job_dir is not None:
            jobdir = Path(variation.job_dir)
            jobdir.mkdir(parents=True)  # not exist_ok: two jobs must never share a directory
        else:
            jobdir = Path(tempfile.mkdtemp(prefix="crossyard-job-", dir=self.temp_root))
        try:
            for sub in ("out", "deps", "home", "tmp"):
                (jobdir / sub).mkdir()
            copy_tree(inputs.source(spec.source), jobdir / "src", reverse=variation.reverse_order)
            for item in spec.inputs:
                target = jobdir / "deps" / item.recipe
                target.mkdir(exist_ok=True)
                shutil.copyfile(inputs.file(item.digest), target / item.name)
                os.chmod(target / item.name, 0o755 if item.mode & 0o111 else 0o644)
            cache_root = self.cache_root if variation.cache_dir is None else Path(variation.cache_dir)
            cache = cache_root / spec.toolchain.name
            cache.mkdir(parents=True, exist_ok=True)
            if variation.uid is not None:
                _chown_tree(jobdir, variation.uid, variation.gid)
                _chown_tree(cache, variation.uid, variation.gid)
            root = None if spec.toolchain.root is None else self.roots / spec.toolchain.root
            seen, binds = job_view(str(jobdir), str(cache), rooted=root is not None,
                                   sandbox=variation.sandbox_dir)
            self._run_steps(spec, commands(spec, seen, root, binds, variation), log, variation)
            files = {name: self._output(spec, jobdir, name, *output_path(spec, seen, name), log)
                     for name in spec.outputs}
            yield Outputs(files=files, digests={name: sha256_file(path) for name, path in files.items()},
                          node=self.node)
        finally:
            shutil.rmtree(jobdir, ignore_errors=True)

    @staticmethod
    def _output(spec: JobSpec, jobdir: Path, name: str, seen_path: str, relative: str, log: Path) -> Path:
        """The file an output names, on this machine. It must be a regular file inside the job
        directory once symlinks are resolved: a build (or a symlink in its source) pointing an
        output at /etc/shadow or another job's tree must not carry that file into the store."""
        resolved = (jobdir / relative).resolve()
        if not resolved.is_relative_to(jobdir.resolve()):
            raise BuildError(
                f"{spec.id}: output `{name}` ({seen_path}) is a symlink to {resolved}, "
                "outside the job directory; outputs must be files the build made",
                log=log, tail=tail(log),
            )
        if not resolved.is_file():
            raise BuildError(
                f"{spec.id}: the build succeeded but did not produce `{name}` ({seen_path})",
                log=log, tail=tail(log),
            )
        return resolved

    def _run_steps(self, spec: JobSpec, steps: list[Command], log_path: Path,
                   variation: Variation = CONTROL) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("w") as log:
            for step in steps:
                log.write(f"$ {' '.join(step.shown)}\n")
                log.flush()
                started = time.monotonic()
                with self._lock:  # so `cancel` either sees this step or it never starts
                    if self._cancelled:
                        raise BuildError(f"{spec.id}: cancelled", log=log_path)
                    try:
                        process = subprocess.Popen(
                            step.argv, cwd=step.cwd, env=step.env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            umask=variation.umask, start_new_session=True,
                            user=variation.uid, group=variation.gid,
                            extra_groups=None if variation.uid is None else [],
                        )
                    except OSError as error:
                        raise BuildError(f"{spec.id}: cannot run `{step.shown[0]}`: {error.strerror}",
                                         log=log_path) from None
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
                        raise BuildError(f"{spec.id}: cancelled", log=log_path)
                    raise BuildError(
                        f"{spec.id}: `{' '.join(step.shown[:3])} …` exited with status {returncode}",
                        log=log_path, tail=tail(log_path),
                    )


def _chown_tree(top: Path, uid: int, gid: int | None) -> None:
    """Hand `top` and everything under it to `uid`:`gid` (symlinks themselves, not targets)."""
    group = -1 if gid is None else gid
    os.chown(top, uid, group, follow_symlinks=False)
    for parent, dirs, files in os.walk(top):
        for name in (*dirs, *files):
            os.chown(os.path.join(parent, name), uid, group, follow_symlinks=False)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)
