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
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from crossyard.build_options import COptions
from crossyard.errors import BuildError, NodeLost
from crossyard.executors import Outputs
from crossyard.hashing import sha256_file
from crossyard.images.assemble import Assembler
from crossyard.images.assembly_plan import ImageJob, plan_images
from crossyard.jobspec import Inputs, JobSpec
from crossyard.nodes import Member, Node, NodeFacts, connect
from crossyard.placement import Durations, Sample
from crossyard.plan import BuildGraph, Job, plan
from crossyard.platforms import ARM64, RISCV64, Platform
from crossyard.recipes import Recipe, Source, parse_recipe
from crossyard.records import BuildRecord
from crossyard.scheduler import BuildReport, Scheduler, SilentReporter
from crossyard.sources import SourceResolver
from crossyard.store import Store
from crossyard.toolchains import ProbeCache, Prober, ToolchainTarget
from crossyard.workspace import Workspace

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
             platforms: tuple[Platform, ...] = (RISCV64, ARM64), strategies: tuple[str, ...] = ("cross",),
             toolchains: Callable[[str, Platform], list[ToolchainTarget]] | None = None) -> BuildGraph:
    """A plan over recipes given as (name, depends), each with a one-file source of its own."""
    made = []
    for name, depends in recipes:
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "main.c").write_text(f"int main(void) {{ return 0; }} /* {name} */\n")
        made.append(Recipe(name=name, kind="c", file=root / "recipes" / f"{name}.toml", depends=depends,
                           platforms=platforms, strategies=strategies, source=Source(path=root / name),
                           options=COptions(sources=("main.c",))))
    return plan(made, platforms=None, toolchains=toolchains or _toolchains,
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


class StartedReporter(SilentReporter):
    """Tells when the scheduler has handed `total` jobs to an executor, and on which node."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.all_started = threading.Event()
        self.nodes: list[tuple[str, str]] = []

    def job_started(self, job: Job, node: str) -> None:
        self.nodes.append((job.id, node))
        if len(self.nodes) == self.total:
            self.all_started.set()


def test_cancel_stops_running_jobs_and_starts_no_queued_one(tmp_path: Path) -> None:
    # Python's own Ctrl-C handler, even where the runner inherited SIGINT ignored (`nohup … &`).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    graph = graph_of(tmp_path, *((f"r{i}", ()) for i in range(3)), platforms=(RISCV64,))
    reporter = StartedReporter(1)

    def interrupt(label: str) -> None:
        # One job runs (`jobs=1`), the other two are ready and wait for its slot. The running one
        # interrupts the build the way Ctrl-C does: SIGINT to the process, delivered to the main
        # thread. It then holds until the scheduler cancels it.
        reporter.all_started.wait(WAIT_S)
        os.kill(os.getpid(), signal.SIGINT)

    executor = FakeExecutor(hold=True, on_start=interrupt)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        Scheduler(store=Store(tmp_path / "store"), resolver=SourceResolver(tmp_path / "cache"),
                  executors=[executor], logs_dir=tmp_path / "logs", jobs=1, reporter=reporter).run(graph)
    assert executor.cancelled.is_set()
    assert executor.started == ["r0@linux/riscv64"]  # the other two were queued and never started
    assert reporter.nodes == [("r0@linux/riscv64", "fake:test")]  # the reporter hears where it runs
    assert executor.running == 0  # the running one ended before run() returned
    assert time.monotonic() - started < WAIT_S  # ended by the cancel, not by the hold timing out


# -- nodes: placement, slots, faults -----------------------------------------------------------------
#
# Several nodes, each an in-process executor like the one above (the machines are what cannot exist
# here; the scheduler, placer, planner and store are the real ones). Outputs do not depend on the
# node, as with a real toolchain of one identity.

IDENTITY = "gcc 12.2.0"


class NodeExecutor(FakeExecutor):
    """A node's executor: loses the node (NodeLost, after writing part of an output) or fails the
    build (BuildError with a compiler's log tail) for the jobs named."""

    def __init__(self, node: str, *, lose: tuple[str, ...] = (), lose_all: bool = False,
                 lose_cleaning_up: bool = False, compiler_error: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.node = node
        self.lose_cleaning_up = lose_cleaning_up
        self.lose = set(lose)
        self.lose_all = lose_all
        self.compiler_error = set(compiler_error)

    @contextlib.contextmanager
    def run(self, spec: JobSpec, inputs: Inputs, log: Path) -> Iterator[Outputs]:
        if spec.id in self.compiler_error:
            with self._lock:
                self.started.append(spec.id)
            raise BuildError(f"{spec.id}: `gcc …` exited with status 1", log=log,
                             tail="main.c:1:10: error: expected ';' before '}' token")
        if self.lose_all or spec.id in self.lose:
            with self._lock:
                self.started.append(spec.id)
            partial = log.parent / f"{spec.id.replace('/', '-')}.txt"
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text("half a build\n")
            raise NodeLost(f"{spec.id}: lost {self.node}: connection reset by peer")
        with super().run(spec, inputs, log) as outputs:
            yield outputs
        if self.lose_cleaning_up:  # the outputs were fetched; removing the job directory failed
            raise NodeLost(f"{spec.id}: lost {self.node} while removing the job directory")


def member(name: str, executor: NodeExecutor, *, arch: Platform, transport: str = "ssh", slots: int = 1,
           tools: tuple[tuple[Platform, str, str], ...] = (), plan_machine: bool = False) -> Member:
    """A run's member; `tools` are (platform, strategy, identity) of C toolchains probed there."""
    node = Node(name=name, transport=transport, arch=arch, max_jobs=slots)
    facts = None if plan_machine else NodeFacts(
        uname_m=arch.uname_m, arch=arch, cores=slots, memory=2**32,
        toolchains=tuple(ToolchainTarget(name="gcc", kind="c", platform=p, strategy=strategy, available=True,
                                         identity=identity, command="gcc") for p, strategy, identity in tools))
    return Member(node=node, slots=slots, executors=(executor,), facts=facts)


def cross(*platforms: Platform) -> tuple[tuple[Platform, str, str], ...]:
    return tuple((p, "cross", IDENTITY) for p in platforms)


def run_on(root: Path, graph: BuildGraph, members: list[Member], warnings: tuple[str, ...] = ()) -> BuildReport:
    return Scheduler(store=Store(root / "store"), resolver=SourceResolver(root / "cache"), members=members,
                     logs_dir=root / "logs", jobs=1, warnings=warnings).run(graph)


def records_of(report: BuildReport) -> dict[str, BuildRecord]:
    return {r.id: r for r in report.records}


def test_a_native_job_goes_to_the_node_of_its_arch_with_the_plans_toolchain(tmp_path: Path) -> None:
    # Planned here as `emulated` (a riscv64 gcc under qemu: the only way this machine has); the
    # riscv64 board has the same compiler natively, so that is where it runs, natively, though
    # this machine is idle: until measured, native riscv64 takes 3x a cross build, emulated 5x.
    def emulated_here(kind: str, platform: Platform) -> list[ToolchainTarget]:
        return [ToolchainTarget(name="gcc-riscv64-root", kind="c", platform=platform, strategy="emulated",
                                available=True, identity=IDENTITY, command="gcc")]

    graph = graph_of(tmp_path, ("app", ()), platforms=(RISCV64,), strategies=("native", "emulated"),
                     toolchains=emulated_here)
    here, board, arm = NodeExecutor("local:here"), NodeExecutor("ssh:rv1"), NodeExecutor("ssh:arm1")
    report = run_on(tmp_path, graph, [
        member("here", here, arch=Platform.host(), transport="local", slots=4, plan_machine=True),
        member("arm1", arm, arch=ARM64, tools=(((ARM64, "native", IDENTITY)),)),
        member("rv1", board, arch=RISCV64, tools=((RISCV64, "native", IDENTITY),)),
    ])
    record = records_of(report)["app@linux/riscv64"]
    assert record.status == "built" and record.node == "ssh:rv1" and record.attempts == 1
    assert record.strategy == "native" and record.toolchain == IDENTITY
    assert [s.toolchain.strategy for s in board.specs] == ["native"]  # the spec is made for the node's gcc
    assert here.started == [] and arm.started == []


def test_each_node_runs_at_most_its_slots(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, *((f"r{i}", ()) for i in range(6)))  # 12 independent jobs
    three_running = threading.Event()
    one, two = NodeExecutor("ssh:one"), NodeExecutor("ssh:two")

    def on_start(label: str) -> None:
        # Hold each job until three run at once (or briefly), so slots fill whenever they may.
        if one.running + two.running >= 3:
            three_running.set()
        three_running.wait(0.3)

    one.on_start = two.on_start = on_start
    report = run_on(tmp_path, graph, [
        member("one", one, arch=ARM64, slots=1, tools=cross(RISCV64, ARM64)),
        member("two", two, arch=ARM64, slots=2, tools=cross(RISCV64, ARM64)),
    ])
    assert report.ok and len(one.started) + len(two.started) == 12
    assert (one.most_running, two.most_running) == (1, 2)
    assert three_running.is_set()


def test_a_job_whose_node_is_lost_runs_again_elsewhere_and_nothing_of_it_is_kept(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, ("lib", ()), ("app", ("lib",)), platforms=(RISCV64,))
    flaky, steady = NodeExecutor("ssh:flaky", lose=("lib@linux/riscv64",)), NodeExecutor("ssh:steady")
    report = run_on(tmp_path, graph, [
        member("flaky", flaky, arch=ARM64, tools=cross(RISCV64)),
        member("steady", steady, arch=ARM64, tools=cross(RISCV64)),
    ])
    records = records_of(report)
    lib = records["lib@linux/riscv64"]
    assert report.ok, [r.error for r in report.records]
    assert (lib.status, lib.node, lib.attempts) == ("built", "ssh:steady", 2)
    assert flaky.started == ["lib@linux/riscv64"]  # a lost node takes no more jobs this run
    assert records["app@linux/riscv64"].node == "ssh:steady" and records["app@linux/riscv64"].attempts == 1
    stored = Store(tmp_path / "store").find(lib.input_key, verify=True)
    assert stored is not None and stored.digests == lib.digests
    blob = Store(tmp_path / "store").layout.blob_path(lib.digests["out.txt"])
    assert blob.read_text() == "built lib@linux/riscv64\n"  # not the lost node's half build
    assert lib.to_json()["attempts"] == 2 and lib.to_json()["node"] == "ssh:steady"


def test_a_node_lost_after_its_outputs_were_stored_does_not_rebuild_the_job(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, ("lib", ()), platforms=(RISCV64,))
    late, other = NodeExecutor("ssh:late", lose_cleaning_up=True), NodeExecutor("ssh:other")
    report = run_on(tmp_path, graph, [member("late", late, arch=ARM64, tools=cross(RISCV64)),
                                      member("other", other, arch=ARM64, tools=cross(RISCV64))])
    (lib,) = report.records
    assert (lib.status, lib.node, lib.attempts) == ("built", "ssh:late", 1) and other.started == []


def test_a_lost_job_is_retried_a_bounded_number_of_times(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, ("lib", ()), platforms=(RISCV64,))
    executors = [NodeExecutor(f"ssh:n{i}", lose_all=True) for i in range(4)]
    report = run_on(tmp_path, graph, [member(f"n{i}", e, arch=ARM64, tools=cross(RISCV64))
                                      for i, e in enumerate(executors)])
    (lib,) = report.records
    assert (lib.status, lib.attempts) == ("failed", 3)  # the first run and MAX_RETRIES (2) more
    assert lib.error is not None and "the node was lost 3 times (on n0, n1, n2); not retried again" in lib.error
    assert executors[3].started == []


def test_a_compiler_failure_is_not_retried_and_keeps_its_log_tail(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, ("lib", ()), ("app", ("lib",)), platforms=(RISCV64,))
    first = NodeExecutor("ssh:first", compiler_error=("lib@linux/riscv64",))
    second = NodeExecutor("ssh:second")
    report = run_on(tmp_path, graph, [
        member("first", first, arch=ARM64, tools=cross(RISCV64)),
        member("second", second, arch=ARM64, tools=cross(RISCV64)),
    ])
    records = records_of(report)
    lib = records["lib@linux/riscv64"]
    assert (lib.status, lib.attempts, lib.node) == ("failed", 1, "ssh:first")
    assert lib.error is not None and "expected ';' before '}' token" in lib.error
    assert second.started == []
    assert records["app@linux/riscv64"].status == "skipped"


def test_with_no_node_of_the_plans_toolchain_the_record_says_which_disagree_and_why(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, ("lib", ()), platforms=(RISCV64,), strategies=("cross", "native"))
    rv, arm = NodeExecutor("ssh:rv1"), NodeExecutor("ssh:arm1")
    report = run_on(tmp_path, graph, [
        member("rv1", rv, arch=RISCV64, tools=((RISCV64, "native", "gcc 12.1.0"),)),
        member("arm1", arm, arch=ARM64, tools=((ARM64, "native", IDENTITY),)),
    ])
    (lib,) = report.records
    assert lib.status == "failed" and rv.started == arm.started == []
    assert lib.error == ("lib@linux/riscv64: no node can run it (rv1: it has gcc 12.1.0 for linux/riscv64, "
                         "the plan keyed gcc 12.2.0; arm1: it has no c toolchain for linux/riscv64)")


def test_the_critical_path_starts_first(tmp_path: Path) -> None:
    # a-short and b-short come first in the graph; z1 → z2 → z3 is the longest chain.
    graph = graph_of(tmp_path, ("a-short", ()), ("b-short", ()), ("z1", ()), ("z2", ("z1",)), ("z3", ("z2",)),
                     platforms=(RISCV64,))
    first = FakeExecutor()
    assert scheduler(tmp_path / "one", first, jobs=1).run(graph).ok
    assert first.started[0] == "z1@linux/riscv64"
    # learned durations decide: a b-short that took ten minutes outranks the chain of one-minute jobs
    learned = Durations(tmp_path / "durations.json")
    local_class = f"local/{Platform.host().architecture}"
    learned.learn([Sample(recipe=name, platform=RISCV64, strategy="cross", node_class=local_class, seconds=s)
                   for name, s in (("a-short", 5), ("b-short", 600), ("z1", 60), ("z2", 60), ("z3", 60))])
    second = FakeExecutor()
    Scheduler(store=Store(tmp_path / "two"), resolver=SourceResolver(tmp_path / "cache"), executors=[second],
              logs_dir=tmp_path / "logs", jobs=1, durations=learned).run(graph)
    assert second.started == ["b-short@linux/riscv64", "z1@linux/riscv64", "z2@linux/riscv64",
                              "z3@linux/riscv64", "a-short@linux/riscv64"]
    # and what this run measured is kept for the next one, per node class
    kept = Durations.load(tmp_path / "durations.json")
    assert set(kept.entries) == {Durations.key(n, RISCV64, "cross", local_class)
                                 for n in ("a-short", "b-short", "z1", "z2", "z3")}
    assert kept.entries[Durations.key("b-short", RISCV64, "cross", local_class)] < 600  # learned, moved


def test_an_unreachable_node_is_left_out_with_a_warning(tmp_path: Path) -> None:
    # A real probe of an engine socket where nothing listens.
    gone = Node(name="gone", transport="docker", arch=ARM64, address=f"unix://{tmp_path}/none.sock")
    here = Node(name="here", transport="local", arch=Platform.host(), max_jobs=2)
    workspace = Workspace(root=tmp_path)
    cluster = connect([here, gone], workspace=workspace,
                      toolchains=Prober([], cache=ProbeCache(None)), timeout=30)
    assert [m.name for m in cluster.members] == ["here"]
    (warning,) = cluster.warnings
    assert warning.startswith(f"node gone left out of this run: gone: the Docker engine at unix://{tmp_path}/none.sock")
    graph = graph_of(tmp_path, ("lib", ()), platforms=(RISCV64,))
    executor = FakeExecutor()
    local = replace(cluster.members[0], executors=(executor,))
    report = run_on(tmp_path, graph, [local], warnings=cluster.warnings)
    assert report.ok and report.warnings == cluster.warnings and executor.started == ["lib@linux/riscv64"]


def image_jobs(root: Path, graph: BuildGraph, *wrapped: str) -> list[ImageJob]:
    """An image (scratch base) of each of `wrapped`'s builds, planned as `crossyard build` does."""
    recipes = list({job.recipe.name: job.recipe for job in graph.jobs.values()}.values())
    for name in wrapped:
        recipes.append(parse_recipe({"name": f"{name}-image", "kind": "image", "version": "1.0", "image": {
            "name": f"example/{name}", "base": "scratch", "files": [{"artifact": name, "dest": f"/{name}"}],
        }}, file=root / "recipes" / f"{name}-image.toml", source_root=root))
    return [j for j in plan_images(recipes, platforms=[RISCV64, ARM64], epochs={}) if j.recipe.kind == "image"]


def test_an_image_is_assembled_as_soon_as_its_binaries_are_built_not_after_the_last_job(tmp_path: Path) -> None:
    """`app`'s image takes only `app`'s builds: it is in the store while the unrelated `slow`
    jobs still run (each holds its node until the image is there, or gives up after WAIT_S);
    when images were assembled after the last job, it would not be there until they ended."""
    graph = graph_of(tmp_path, ("app", ()), ("slow", ()))
    images = image_jobs(tmp_path, graph, "app")
    store = Store(tmp_path / "store")
    seen: dict[str, bool] = {}

    def on_start(job_id: str) -> None:
        if job_id.startswith("slow@"):
            deadline = time.monotonic() + WAIT_S
            while not store.images() and time.monotonic() < deadline:
                time.sleep(0.01)
            seen[job_id] = bool(store.images())

    executor = FakeExecutor(on_start=on_start)
    report = Scheduler(store=store, resolver=SourceResolver(tmp_path / "cache"), executors=[executor],
                       logs_dir=tmp_path / "logs", jobs=4).run(graph, images=images,
                                                               assembler=Assembler(store=store, workspace=tmp_path))
    assert report.ok and report.image_error is None
    [image] = report.images
    assert (image.ref, image.status) == ("example/app:1.0", "assembled")
    assert seen == {"slow@linux/riscv64": True, "slow@linux/arm64": True}
    records = {r.id: r for r in report.records}
    assert dict(image.inputs) == {p.oci: (records[f"app@{p.oci}"].input_key,) for p in (RISCV64, ARM64)}


def test_an_image_whose_binary_failed_is_skipped_and_the_rest_is_assembled(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, ("app", ()), ("tool", ()))
    images = image_jobs(tmp_path, graph, "app", "tool")
    store = Store(tmp_path / "store")
    report = Scheduler(store=store, resolver=SourceResolver(tmp_path / "cache"),
                       executors=[FakeExecutor(fail=("tool@linux/arm64",))], logs_dir=tmp_path / "logs",
                       jobs=4).run(graph, images=images, assembler=Assembler(store=store, workspace=tmp_path))
    status = {i.ref: (i.status, i.error) for i in report.images}
    assert status == {"example/app:1.0": ("assembled", None),
                      "example/tool:1.0": ("skipped", "tool@linux/arm64 did not build")}
    assert [i.ref for i in store.images()] == ["example/app:1.0"]


def test_an_image_on_another_images_base_waits_for_that_image(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, ("app", ()), ("tool", ()))
    base, top = image_jobs(tmp_path, graph, "app")[0], parse_recipe({
        "name": "top", "kind": "image", "version": "1.0", "image": {
            "name": "example/top", "base": "recipe:app-image", "files": [{"artifact": "tool", "dest": "/tool"}]}},
        file=tmp_path / "recipes" / "top.toml", source_root=tmp_path)
    recipes = [base.recipe, top, *{j.recipe.name: j.recipe for j in graph.jobs.values()}.values()]
    images = [j for j in plan_images(recipes, platforms=[RISCV64, ARM64], epochs={}) if j.recipe.kind == "image"]
    assert [j.recipe.name for j in images] == ["app-image", "top"] and images[1].after == ("app-image",)
    store = Store(tmp_path / "store")
    # `tool` builds first, `app` last: `top` has its files long before its base image exists.
    executor = FakeExecutor(on_start=lambda job_id: time.sleep(0.3) if job_id.startswith("app@") else None)
    report = Scheduler(store=store, resolver=SourceResolver(tmp_path / "cache"), executors=[executor],
                       logs_dir=tmp_path / "logs", jobs=4).run(graph, images=images,
                                                               assembler=Assembler(store=store, workspace=tmp_path))
    assert [(i.ref, i.status) for i in report.images] == [("example/app:1.0", "assembled"),
                                                          ("example/top:1.0", "assembled")]
    top_index = store.layout.read_json(report.images[1].index.digest if report.images[1].index else "")
    manifest = store.layout.read_json(top_index["manifests"][0]["digest"])
    assert len(manifest["layers"]) == 2  # the base's layer, then its own


def test_an_executor_that_reports_steps_is_given_the_reporters_job_progress(tmp_path: Path) -> None:
    """A BuildKit executor's `progress` goes to the reporter's optional `job_progress`; a
    reporter without one leaves it unset, and executors without `progress` are left alone."""
    from crossyard.buildkit.endpoints import Endpoint
    from crossyard.executors.buildkit import BuildKitExecutor
    from crossyard.report.live import LiveReporter

    def kit() -> BuildKitExecutor:
        return BuildKitExecutor(Endpoint(address="unix:///run/bk.sock", where="BUILDKIT_HOST"), api=None,  # type: ignore[arg-type]
                                identity="buildkit v0.13.2 r1", platforms=(RISCV64,))

    live, silent, other = kit(), kit(), FakeExecutor()
    reporter = LiveReporter()
    Scheduler(store=Store(tmp_path / "store"), resolver=SourceResolver(tmp_path / "cache"),
              executors=[live, other], logs_dir=tmp_path / "logs", jobs=1, reporter=reporter)
    assert live.progress == reporter.job_progress and not hasattr(other, "progress")
    Scheduler(store=Store(tmp_path / "store"), resolver=SourceResolver(tmp_path / "cache"),
              executors=[silent], logs_dir=tmp_path / "logs", jobs=1, reporter=SilentReporter())
    assert silent.progress is None
