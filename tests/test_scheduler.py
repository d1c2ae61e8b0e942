"""The scheduler's own rules, with an in-process executor standing in for a compiler.

The executor is the scheduler's plug-in point (`crossyard.executors.Executor`): this fake one
writes a text file per job (not ELF, so the platform check passes it) and records what it was
asked to run. The store, the planner and the source resolver are the real ones.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crossyard.build_options import COptions
from crossyard.errors import BuildError
from crossyard.executors import Outputs
from crossyard.hashing import sha256_file
from crossyard.jobspec import Inputs, JobSpec
from crossyard.plan import BuildGraph, Job, plan
from crossyard.platforms import ARM64, RISCV64, Platform
from crossyard.recipes import Recipe, Source
from crossyard.scheduler import Scheduler, SilentReporter
from crossyard.sources import SourceResolver
from crossyard.store import Store
from crossyard.toolchains import ToolchainTarget

WAIT_S = 5.0  # upper bound for a thread handshake; the tests take milliseconds


class FakeExecutor:
    """Builds `<label>.txt` instantly, or fails, or holds the job until released or cancelled."""

    name = "fake"
    node = "fake:test"

    def __init__(self, *, fail: tuple[str, ...] = (), hold: bool = False,
                 on_start: object = None) -> None:
        self.fail = set(fail)
        self.hold = hold
        self.on_start = on_start
        self.started: list[str] = []
        self.specs: list[JobSpec] = []
        self.running = 0
        self.most_running = 0
        self.cancelled = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()

    def refuses(self, spec: JobSpec) -> str | None:
        return None

    @contextlib.contextmanager
    def run(self, spec: JobSpec, inputs: Inputs, log: Path) -> Iterator[Outputs]:
        with self._lock:
            self.started.append(spec.id)
            self.specs.append(spec)
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            if callable(self.on_start):
                self.on_start(spec.id)
            if self.hold:
                self.release.wait(WAIT_S)
                if self.cancelled.is_set():
                    raise BuildError(f"{spec.id}: cancelled")
            if spec.id in self.fail:
                raise BuildError(f"{spec.id}: the compiler said no")
            out = log.parent / f"{spec.id.replace('/', '-')}.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(f"built {spec.id}\n")
            yield Outputs(files={"out.txt": out}, digests={"out.txt": sha256_file(out)}, node=self.node)
        finally:
            with self._lock:
                self.running -= 1

    def cancel(self) -> None:
        self.cancelled.set()
        self.release.set()


def _toolchains(kind: str, platform: Platform) -> list[ToolchainTarget]:
    return [ToolchainTarget(name="gcc", kind="c", platform=platform, strategy="cross", available=True,
                            version="12.2", identity="gcc 12.2.0")]


def graph_of(root: Path, *recipes: tuple[str, tuple[str, ...]],
             platforms: tuple[Platform, ...] = (RISCV64, ARM64)) -> BuildGraph:
    """A plan over recipes given as (name, depends), each with a one-file source of its own."""
    made = []
    for name, depends in recipes:
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "main.c").write_text(f"int main(void) {{ return 0; }} /* {name} */\n")
        made.append(Recipe(name=name, kind="c", file=root / "recipes" / f"{name}.toml", depends=depends,
                           platforms=platforms, strategies=("cross",), source=Source(path=root / name),
                           options=COptions(sources=("main.c",))))
    return plan(made, platforms=None, toolchains=_toolchains,
                source_digests={name: f"sha256:{name}" for name, _ in recipes}, source_epochs={},
                workspace_root=root)


def scheduler(root: Path, executor: FakeExecutor, *, jobs: int = 4) -> Scheduler:
    return Scheduler(store=Store(root / "store"), resolver=SourceResolver(root / "cache"), executors=[executor],
                     logs_dir=root / "logs", jobs=jobs)


def test_dependents_of_a_failed_job_are_skipped_and_independent_jobs_still_run(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, ("lib", ()), ("app", ("lib",)), ("other", ()))
    executor = FakeExecutor(fail=("lib@linux/riscv64",))
    report = scheduler(tmp_path, executor).run(graph)
    status = {r.id: r.status for r in report.records}
    assert status == {
        "lib@linux/riscv64": "failed", "lib@linux/arm64": "built",
        "app@linux/riscv64": "skipped", "app@linux/arm64": "built",
        "other@linux/riscv64": "built", "other@linux/arm64": "built",
    }
    assert "app@linux/riscv64" not in executor.started
    skipped = next(r for r in report.records if r.id == "app@linux/riscv64")
    assert skipped.error == "dependency lib@linux/riscv64 failed"
    failed = next(r for r in report.records if r.id == "lib@linux/riscv64")
    assert failed.error is not None and "the compiler said no" in failed.error
    assert not report.ok


def test_cached_jobs_never_reach_the_executor(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, ("lib", ()), ("app", ("lib",)))
    first = FakeExecutor()
    assert scheduler(tmp_path, first).run(graph).ok
    assert sorted(first.started) == sorted(graph.order)

    again = FakeExecutor()
    report = scheduler(tmp_path, again).run(graph)
    assert again.started == []
    assert {r.status for r in report.records} == {"cached"} and len(report.records) == 4

    # A changed source misses the cache for its own jobs and their dependents only.
    changed = plan([graph.jobs["lib@linux/arm64"].recipe, graph.jobs["app@linux/arm64"].recipe],
                   platforms=None, toolchains=_toolchains,
                   source_digests={"lib": "sha256:lib-changed", "app": "sha256:app"}, source_epochs={},
                   workspace_root=tmp_path)
    third = FakeExecutor()
    report = scheduler(tmp_path, third).run(changed)
    assert sorted(third.started) == ["lib@linux/arm64", "lib@linux/riscv64"]
    # app's key covers lib's output digests, not lib's source: the same bytes came out, so the
    # app jobs are still cached.
    assert {r.id: r.status for r in report.records if r.recipe == "app"} == {
        "app@linux/riscv64": "cached", "app@linux/arm64": "cached"}


def test_jobs_respect_the_job_count_limit(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, *((f"r{i}", ()) for i in range(4)))  # 8 independent jobs
    both_running = threading.Event()
    executor = FakeExecutor()

    def on_start(label: str) -> None:
        # Hold each job until a second one runs beside it (or briefly, if none can), so that
        # jobs overlap whenever the limit allows it.
        if executor.running >= 2:
            both_running.set()
        both_running.wait(0.2)

    executor.on_start = on_start
    report = scheduler(tmp_path, executor, jobs=2).run(graph)
    assert report.ok and len(executor.started) == 8
    assert executor.most_running == 2

    one_at_a_time = FakeExecutor(on_start=lambda label: time.sleep(0.01))
    assert scheduler(tmp_path / "serial", one_at_a_time, jobs=1).run(graph).ok
    assert one_at_a_time.most_running == 1


class SubmittedReporter(SilentReporter):
    """Tells when the scheduler has handed `total` jobs to its pool."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.all_submitted = threading.Event()
        self._count = 0

    def job_started(self, job: Job) -> None:
        self._count += 1
        if self._count == self.total:
            self.all_submitted.set()


def test_cancel_stops_running_jobs_and_starts_no_queued_one(tmp_path: Path) -> None:
    # Python's own Ctrl-C handler, even where the runner inherited SIGINT ignored (`nohup … &`).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    graph = graph_of(tmp_path, *((f"r{i}", ()) for i in range(3)), platforms=(RISCV64,))
    reporter = SubmittedReporter(3)

    def interrupt(label: str) -> None:
        # Once all three jobs are handed over (one running, two queued behind `jobs=1`), the
        # running one interrupts the build the way Ctrl-C does: SIGINT to the process, delivered
        # to the main thread. It then holds until the scheduler cancels it.
        reporter.all_submitted.wait(WAIT_S)
        os.kill(os.getpid(), signal.SIGINT)

    executor = FakeExecutor(hold=True, on_start=interrupt)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        Scheduler(store=Store(tmp_path / "store"), resolver=SourceResolver(tmp_path / "cache"),
                  executors=[executor], logs_dir=tmp_path / "logs", jobs=1, reporter=reporter).run(graph)
    assert executor.cancelled.is_set()
    assert executor.started == ["r0@linux/riscv64"]  # the other two were queued and never started
    assert executor.running == 0  # the running one ended before run() returned
    assert time.monotonic() - started < WAIT_S  # ended by the cancel, not by the hold timing out
