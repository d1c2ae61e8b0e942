"""Run a build graph: ready jobs in parallel, each looked up in the store by its input key first.

A job becomes ready when its dependencies are done; only then is its input key known (it covers
their output digests), and its `JobSpec` made (it names their outputs by digest). A cached key
costs one index lookup; a miss goes where `placement.Placer` puts it (a member of the run, with
the toolchain as it exists there), to the first of that node's executors that does not refuse
the spec; its outputs are checked (digests, ELF machine, smoke test) and imported into the
store. A failed job's dependents are skipped; independent jobs still run, and the build exits 1
at the end with every failure. A job whose node was lost (`NodeLost`) runs again on another
node, up to `MAX_RETRIES` times, nothing of the lost attempt kept; a build that failed is not
retried. Every job's outcome is one `BuildRecord`.

Images (`images.assemble`) are jobs of the run too, placed where the store is
(`placement.ASSEMBLY_KIND`): each is assembled as soon as the jobs whose outputs it takes (and the
images it starts from) are done, while unrelated jobs still build; one whose input failed is
skipped, as before.

What a job produces decides how it is stored, not its recipe kind: files become an artifact; a
`docker save` archive (a legacy Dockerfile job) or an OCI archive (a BuildKit one) becomes the
job's per-platform image manifest, digests checked, recorded under the job's ref and input key
like an artifact, its one output `image`; BuildKit's are marked reproducible.
"""

from __future__ import annotations

import contextlib
import queue
import shutil
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from .annotations import (
    ANNOTATION_DOCKER_IMAGE_ID,
    ANNOTATION_FINISHED,
    ANNOTATION_INPUT_KEY,
    ANNOTATION_NODE,
    ANNOTATION_PLATFORM,
    ANNOTATION_RECIPE,
    ANNOTATION_REPRODUCIBLE,
    ANNOTATION_SOURCE_DIGEST,
    ANNOTATION_STARTED,
    ANNOTATION_STRATEGY,
    ANNOTATION_TOOLCHAIN,
)
from .build_options import DockerfileOptions
from .buildkit.endpoints import TOOLCHAIN as BUILDKIT
from .checks import SmokeTests, check_elf
from .errors import BuildError, CrossyardError, NodeLost
from .executors import Executor, Outputs, ReportsProgress, SolvesTogether
from .executors.docker import FACT_IMAGE_ID, IMAGE_OUTPUT
from .images.assemble import Assembler, BuiltImage
from .images.assembly_plan import ImageJob
from .images.base_images import BaseResolver
from .jobspec import JobSpec
from .nodes import Member, implicit_local
from .oci import media
from .oci.docker_archive import import_docker_archive
from .oci.image import rfc3339
from .oci.layout import Descriptor
from .placement import ASSEMBLY_KIND, MAX_RETRIES, Assignment, Durations, Placer, Task, samples_of
from .plan import BuildGraph, Job
from .platforms import Platform
from .records import BuildRecord
from .sources import ResolvedSource, SourceResolver
from .store import Store
from .toolchains import ToolchainTarget

TICK_S = 2.0  # while a job waits for a busy node, how often placement is looked at again
# How often the main thread wakes while jobs run, to act on a Ctrl-C or SIGTERM that came in.
SIGNAL_POLL_S = 0.2


def utc_now() -> str:
    return rfc3339(int(time.time()))


def run_annotations(node: str, began: str) -> dict[str, str]:
    """Where and when a job ran (RFC 3339, UTC), for the store's index entry and provenance."""
    return {ANNOTATION_NODE: node, ANNOTATION_STARTED: began, ANNOTATION_FINISHED: utc_now()}


@dataclass(frozen=True, kw_only=True)
class BuildReport:
    records: tuple[BuildRecord, ...]  # one per job, in the graph's order
    seconds: float
    warnings: tuple[str, ...] = ()  # nodes left out of the run, and why
    images: tuple[BuiltImage, ...] = ()  # in the order they were given
    image_error: str | None = None  # the first assembly that failed (its image is skipped)

    def count(self, status: str) -> int:
        return sum(1 for r in self.records if r.status == status)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.records)


@dataclass(frozen=True, kw_only=True)
class _Attempt:
    record: BuildRecord
    lost: bool = False  # the node went away (NodeLost): the job may run again elsewhere
    image: BuiltImage | None = None  # an assembly's outcome (`record` is then a placeholder)
    image_error: str | None = None  # why that assembly failed (the image is skipped)


ASSEMBLER_IDENTITY = "crossyard image assembly"


def _one(run: Callable[..., _Attempt], *args: Any) -> list[_Attempt]:
    return [run(*args)]


@contextlib.contextmanager
def _run(executor: Executor, specs: Sequence[JobSpec], inputs: StoreInputs, log: Path) -> Iterator[list[Outputs]]:
    if len(specs) == 1:
        with executor.run(specs[0], inputs, log) as outputs:
            yield [outputs]
    else:
        assert isinstance(executor, SolvesTogether)
        with executor.run_together(specs, inputs, log) as several:
            yield several


def solve_groups(graph: BuildGraph) -> dict[str, tuple[str, ...]]:
    """Jobs that may share one BuildKit solve, by job: a `dockerfile` recipe's platforms planned
    for BuildKit whose build context does not depend on the platform (no dependencies, or
    theirs through a named context). Whether they do share one is the executor's to say, once
    their specs exist (`SolvesTogether.can_join`)."""
    by_recipe: dict[str, list[str]] = {}
    for job in graph.jobs.values():
        options = job.recipe.options_for(job.platform) if job.recipe.kind == "dockerfile" else None
        if not isinstance(options, DockerfileOptions) or job.toolchain.name != BUILDKIT:
            continue
        if job.deps and options.artifacts != "named-context":
            continue
        by_recipe.setdefault(job.recipe.name, []).append(job.id)
    return {job_id: tuple(ids) for ids in by_recipe.values() if len(ids) > 1 for job_id in ids}


def image_id(recipe: str) -> str:
    return f"image:{recipe}"


def _filed_under(job: ImageJob) -> Platform:
    """The one platform an image's assembly is filed under (it makes them all)."""
    return job.platforms[0] if job.platforms else Platform.host()


def image_task(job: ImageJob, graph: BuildGraph, images: Collection[str] = ()) -> Task:
    """An image as a job of the run: it needs every platform's build of each recipe whose files it
    takes (a Dockerfile recipe's own builds) that the run makes, and the images it starts from
    among `images` (recipe names; one that is not is the assembler's to refuse)."""
    takes = (job.recipe.name,) if job.from_dockerfile else job.spec.artifact_recipes
    deps = [f"{name}@{p.oci}" for p in job.platforms for name in takes if f"{name}@{p.oci}" in graph.jobs]
    platform = _filed_under(job)
    planned = ToolchainTarget(name="assembler", kind=ASSEMBLY_KIND, platform=platform, strategy="cross",
                              available=True, identity=ASSEMBLER_IDENTITY, command="crossyard")
    return Task(id=image_id(job.recipe.name), recipe=job.recipe.name, kind=ASSEMBLY_KIND, platform=platform,
                identity=ASSEMBLER_IDENTITY, strategies=("cross",),
                deps=(*deps, *(image_id(a) for a in job.after if a in images)), planned=planned)


class StoreInputs:
    """A job's inputs on this machine: sources resolved for this run, dependency files from the
    store (`jobspec.Inputs`)."""

    def __init__(self, store: Store, sources: Mapping[str, ResolvedSource]) -> None:
        self.store = store
        self.sources = sources

    def source(self, digest: str) -> ResolvedSource:
        return self.sources[digest]

    def file(self, digest: str) -> Path:
        return self.store.layout.blob_path(digest)


class Reporter(Protocol):
    def start(self, total: int) -> None: ...
    def job_started(self, job: Job, node: str) -> None:
        """`job` was handed to `node`'s executor (again, after its node was lost)."""
        ...

    def job_finished(self, record: BuildRecord) -> None: ...
    def stop(self) -> None: ...


class SilentReporter:
    def start(self, total: int) -> None: ...
    def job_started(self, job: Job, node: str) -> None: ...
    def job_finished(self, record: BuildRecord) -> None: ...
    def stop(self) -> None: ...


class Scheduler:
    """Runs a graph on the run's members (this machine alone by default: `executors` with `jobs`
    slots); `placement.Placer` decides where and in which order, this class does the rest:
    cache lookups, specs, executors, the store, faults."""

    def __init__(
        self,
        *,
        store: Store,
        resolver: SourceResolver,
        executors: Sequence[Executor] = (),
        logs_dir: Path,
        jobs: int,
        reporter: Reporter | None = None,
        members: Sequence[Member] | None = None,
        warnings: Sequence[str] = (),
        durations: Durations | None = None,
        max_retries: int = MAX_RETRIES,
        tick: float = TICK_S,
    ) -> None:
        self.store = store
        self.resolver = resolver
        self.jobs = max(1, jobs)
        if members is None:
            members = (Member(node=implicit_local(self.jobs), slots=self.jobs, executors=tuple(executors)),)
        self.members = tuple(members)
        self.executors = tuple(e for m in self.members for e in m.executors)
        self.warnings = tuple(warnings)
        self.durations = durations
        self.max_retries = max_retries
        self.tick = tick
        self.logs_dir = logs_dir
        self.reporter = reporter or SilentReporter()
        step = getattr(self.reporter, "job_progress", None)  # optional: a job's step now
        for executor in self.executors:
            if step is not None and isinstance(executor, ReportsProgress):
                executor.progress = step
        self._store_lock = threading.Lock()
        self.smoke = SmokeTests()

    def run(self, graph: BuildGraph, *, images: Sequence[ImageJob] = (),
            assembler: Assembler | None = None) -> BuildReport:
        """Run `graph`'s jobs, and assemble `images` with `assembler` as their inputs are done."""
        if images and assembler is None:
            raise ValueError("images to assemble need an assembler")
        started = time.monotonic()
        records: dict[str, BuildRecord] = {}
        pending = dict(graph.jobs)
        names = {i.recipe.name for i in images}
        image_tasks = {image_id(i.recipe.name): (i, image_task(i, graph, names)) for i in images}
        waiting = dict(image_tasks)  # images whose inputs are not all done yet
        built: dict[str, BuiltImage] = {}  # by recipe
        image_errors: list[str] = []

        def assembled(attempt: _Attempt) -> None:
            assert attempt.image is not None
            built[attempt.image.recipe] = attempt.image
            if attempt.image_error is not None:
                image_errors.append(attempt.image_error)
        sources = {job.source_digest: self.resolver.resolve(job.recipe) for job in pending.values()}
        inputs = StoreInputs(self.store, sources)
        # One index read for the whole run: artifacts and Dockerfile job images, by input key.
        cached_keys = self.store.job_outputs() if pending else {}
        placer = Placer([*(Task.of(job) for job in graph.jobs.values()), *(t for _, t in image_tasks.values())],
                        self.members, self.durations, max_retries=self.max_retries)
        together = solve_groups(graph)
        # A job that may share a solve waits for its group's dependencies, so the group is ready
        # at once (as buildx builds every platform of an image in one go).
        gates = {job_id: tuple(d for other in together.get(job_id, (job_id,)) for d in graph.jobs[other].deps)
                 for job_id in graph.jobs}
        keys: dict[str, str] = {}  # job id → input key, once its dependencies are done
        classes: dict[str, str] = {}  # job id → the node class that built it (for durations)
        warnings = list(self.warnings)
        self.reporter.start(len(pending))
        # A future is one run of an executor: one job, or several solved together.
        running: dict[Future[list[_Attempt]], list[Assignment]] = {}
        finished: queue.SimpleQueue[Future[list[_Attempt]]] = queue.SimpleQueue()
        slots = sum(m.slots for m in self.members) or 1
        pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="job")
        closing = contextlib.ExitStack()
        resolver = closing.enter_context(assembler.resolver()) if assembler is not None else None
        try:
            while pending or running or placer.ready or waiting:
                progressed = True
                while progressed:
                    progressed = False
                    for job_id, job in list(pending.items()):
                        if not all(dep in records for dep in gates[job_id]):
                            continue
                        del pending[job_id]
                        progressed = True
                        failed_deps = [d for d in job.deps if not records[d].ok]
                        if failed_deps:
                            placer.settle(job_id)
                            records[job_id] = self._finish(BuildRecord(
                                recipe=job.recipe.name, platform=job.platform, status="skipped",
                                version=job.recipe.version, error=f"dependency {failed_deps[0]} failed",
                            ))
                            continue
                        key = job.input_key({d: records[d].digests for d in job.deps})
                        found = self._cached(key, cached_keys)
                        if found is not None:
                            placer.settle(job_id)
                            records[job_id] = self._finish(replace(
                                found, status="cached", recipe=job.recipe.name, platform=job.platform,
                                toolchain=job.identity, strategy=found.strategy or job.strategy,
                                source=job.source_digest, version=job.recipe.version,
                            ))
                            continue
                        keys[job_id] = key
                        placer.add_ready(job_id)
                    for task_id, (_, task) in list(waiting.items()):
                        if all(d in records or (d in image_tasks and image_tasks[d][0].recipe.name in built)
                               for d in task.deps):
                            del waiting[task_id]
                            placer.add_ready(task_id)
                unplaced = self._place(graph, placer, keys, records, inputs, pool, running, finished,
                                       images=image_tasks, assembly=(assembler, resolver, built),
                                       together=together)
                for task, why in unplaced:
                    if task.id in image_tasks:
                        # No member holds the store (SSH nodes only): assembled here all the same,
                        # in this thread, as it was after the build before images were jobs.
                        assert assembler is not None and resolver is not None
                        assembled(self._assemble(image_tasks[task.id][0], assembler, resolver, records, built))
                        continue
                    job = graph.jobs[task.id]
                    records[task.id] = self._finish(BuildRecord(
                        recipe=job.recipe.name, platform=job.platform, status="failed", input_key=keys[task.id],
                        toolchain=job.identity, strategy=job.strategy, source=job.source_digest,
                        version=job.recipe.version, attempts=placer.attempts.get(task.id, 0),
                        error=self._unplaceable(task.id, why),
                    ))
                if unplaced:
                    continue  # their dependents are decided now
                if not running:
                    break
                # Not concurrent.futures.wait: it takes every future's lock one by one, and a
                # Ctrl-C landing between two of those acquisitions leaves a lock held that the
                # worker needs to finish, so the shutdown below would wait forever. A queue's
                # get holds nothing when it is interrupted. It waits in short steps: a signal that
                # arrives just before a blocking wait starts interrupts nothing, and Python would
                # only raise KeyboardInterrupt once a job finished. While a job waits for a busy
                # node, placement is looked at again every `tick` (a late job's node may not be
                # worth waiting for any more).
                first = self._next(finished, placer)
                if first is None:
                    continue
                done = [first]
                while not finished.empty():
                    done.append(finished.get_nowait())
                for future in done:
                    for assignment, attempt in zip(running.pop(future), future.result(), strict=True):
                        task_id, member = assignment.task.id, assignment.member.name
                        if attempt.image is not None:
                            placer.done(task_id, member)
                            assembled(attempt)
                            continue
                        if attempt.lost:
                            if placer.lost(task_id, member):
                                continue  # queued again for another node; nothing of it was kept
                            record = replace(attempt.record, error=(
                                f"{attempt.record.error}\n  the node was lost {assignment.attempt} times "
                                f"(on {', '.join(placer.history[task_id])}); not retried again"))
                        else:
                            size = sum(max(0, f.size) for f in attempt.record.outputs)
                            placer.done(task_id, member, output_bytes=size)
                            record = attempt.record
                            classes[task_id] = assignment.member.node.node_class
                        records[task_id] = self._finish(replace(record, attempts=assignment.attempt))
        except BaseException:
            # Ctrl-C or SIGTERM: start none of the queued jobs, stop the running ones (they
            # clean up as failed ones do), then let the interruption through. Queued first: a
            # job cancelled while running frees its worker, which would otherwise take the next
            # queued job before the pool heard of the shutdown.
            pool.shutdown(wait=False, cancel_futures=True)
            for executor in self.executors:
                executor.cancel()
            self.smoke.cancel()  # smoke tests run in sessions of their own: Ctrl-C does not reach them
            pool.shutdown(wait=True)
            raise
        else:
            pool.shutdown(wait=True)
        finally:
            closing.close()
            self.reporter.stop()
        ordered = tuple(records[j] for j in graph.order if j in records)
        if self.durations is not None and classes:
            self.durations.learn(samples_of(ordered, classes))
            try:
                self.durations.save()
            except OSError as error:  # estimates are a cache: the build stands without them
                warnings.append(f"job durations not saved to {self.durations.path}: {error.strerror}")
        return BuildReport(records=ordered, seconds=time.monotonic() - started, warnings=tuple(warnings),
                           images=tuple(built[i.recipe.name] for i in images if i.recipe.name in built),
                           image_error=image_errors[0] if image_errors else None)

    def _place(self, graph: BuildGraph, placer: Placer, keys: Mapping[str, str],
               records: Mapping[str, BuildRecord], inputs: StoreInputs, pool: ThreadPoolExecutor,
               running: dict[Future[list[_Attempt]], list[Assignment]],
               finished: queue.SimpleQueue[Future[list[_Attempt]]], *,
               images: Mapping[str, tuple[ImageJob, Task]],
               assembly: tuple[Assembler | None, BaseResolver | None, Mapping[str, BuiltImage]],
               together: Mapping[str, tuple[str, ...]],
               ) -> list[tuple[Task, str]]:
        """Start what the placer says may start; the jobs that no member can run."""
        unplaced: list[tuple[Task, str]] = []
        again = True
        while again:  # a member's executors refusing a job sends it back to the placer
            again = False
            now = time.monotonic()
            assignments, cannot = placer.assign(now)
            unplaced += cannot
            started = {a.task.id: a for a in assignments}
            joined: set[str] = set()
            for assignment in assignments:
                if assignment.task.id in joined:
                    continue
                if assignment.task.id in images:
                    assembler, resolver, built = assembly
                    assert assembler is not None and resolver is not None  # `run` made sure
                    image = images[assignment.task.id][0]
                    future = pool.submit(_one, self._assemble, image, assembler, resolver, dict(records),
                                         dict(built))
                    running[future] = [assignment]
                    future.add_done_callback(finished.put)
                    continue
                job = graph.jobs[assignment.task.id]
                # The toolchain as it is on that node (native there, say): same identity, same key.
                placed = replace(job, toolchain=assignment.toolchain)
                spec = placed.spec(keys[job.id], [records[d] for d in job.deps])
                try:
                    executor = self._executor(spec, assignment.member)
                except BuildError as error:
                    placer.refuse(job.id, assignment.member.name, str(error).partition(": ")[2])
                    started.pop(job.id)  # back in the queue: no longer started there
                    again = True
                    continue
                group = [(assignment, job, placed, spec)]
                if isinstance(executor, SolvesTogether):
                    group += self._joining(graph, placer, keys, records, executor, group[0], together, started,
                                           joined, now)
                future = pool.submit(self._build, [(j, p, s) for _, j, p, s in group], inputs, executor)
                running[future] = [a for a, _, _, _ in group]
                for _, member_job, _, _ in group:
                    self.reporter.job_started(member_job, executor.node)
                future.add_done_callback(finished.put)
        return unplaced

    def _joining(self, graph: BuildGraph, placer: Placer, keys: Mapping[str, str],
                 records: Mapping[str, BuildRecord], executor: SolvesTogether,
                 first: tuple[Assignment, Job, Job, JobSpec], together: Mapping[str, tuple[str, ...]],
                 started: Mapping[str, Assignment], joined: set[str], now: float,
                 ) -> list[tuple[Assignment, Job, Job, JobSpec]]:
        """The jobs of `first`'s group that run in its executor's run: ready ones its member can
        run, and ones `assign` just started on that member, that the executor takes with it."""
        assignment, job, _, spec = first
        member = assignment.member.name
        out = []
        for other_id in together.get(job.id, ()):
            if other_id == job.id or other_id in joined or other_id not in keys:
                continue
            other = graph.jobs[other_id]
            already = started.get(other_id)
            if already is not None:
                if already.member.name != member:
                    continue
                toolchain = already.toolchain
            elif other_id in placer.ready:
                found = placer.toolchain_on(other_id, member)
                if found is None:
                    continue
                toolchain = found
            else:
                continue
            placed = replace(other, toolchain=toolchain)
            other_spec = placed.spec(keys[other_id], [records[d] for d in other.deps])
            if not executor.can_join(spec, other_spec):
                continue
            joined_as = already or placer.join(other_id, member, now)
            if joined_as is None:
                continue
            if already is not None:
                placer.ride(other_id, member)
            joined.add(other_id)
            out.append((joined_as, other, placed, other_spec))
        return out

    def _assemble(self, image: ImageJob, assembler: Assembler, resolver: BaseResolver,
                  records: Mapping[str, BuildRecord], built: Mapping[str, BuiltImage]) -> _Attempt:
        """Assemble one image from what its inputs' jobs stored. Under the store's lock: it
        writes the store's index as storing a job's outputs does (other jobs keep building)."""
        placeholder = BuildRecord(recipe=image.recipe.name, platform=_filed_under(image), status="skipped")
        by_job = {(r.recipe, r.platform.oci): r for r in records.values()}
        try:
            with self._store_lock:
                made = assembler.one(image, resolver, records={k: r for k, r in by_job.items() if r.ok},
                                     unavailable={k for k, r in by_job.items() if not r.ok}, done=built)
        except CrossyardError as error:
            return _Attempt(record=placeholder, image_error=str(error), image=BuiltImage(
                recipe=image.recipe.name, name=image.name, version=image.version, status="skipped",
                reproducible=not image.from_dockerfile, error=str(error)))
        return _Attempt(record=placeholder, image=made)

    def _unplaceable(self, job_id: str, why: str) -> str:
        if len(self.members) == 1 and self.members[0].node.implicit:
            # This machine alone, as before nodes: its executors' reasons are the whole story.
            return f"{job_id}: {why.partition(': ')[2]}"
        return f"{job_id}: no node can run it ({why})"

    def _next(self, finished: queue.SimpleQueue[Future[list[_Attempt]]], placer: Placer,
              ) -> Future[list[_Attempt]] | None:
        """The next finished job, or None when placement is due to be looked at again."""
        deadline = time.monotonic() + self.tick
        while True:
            try:
                return finished.get(timeout=SIGNAL_POLL_S)
            except queue.Empty:
                if placer.ready and time.monotonic() >= deadline:
                    return None

    def _finish(self, record: BuildRecord) -> BuildRecord:
        self.reporter.job_finished(record)
        return record

    def _cached(self, key: str, cached_keys: Mapping[str, Descriptor]) -> BuildRecord | None:
        """The stored outputs of `key`, hashed, not just found: a corrupt blob would otherwise
        pass as cached (and --locked with it) until a push fails on it. A miss rebuilds the
        job, which replaces the blob."""
        descriptor = cached_keys.get(key)
        if descriptor is None:
            return None
        if descriptor.artifact_type == media.ARTIFACT_TYPE:
            return self.store.find(key, index=cached_keys, verify=True)
        return self.store.find_job_image(key, index=cached_keys)

    def log_path(self, job: Job, key: str) -> Path:
        return self.logs_dir / job.recipe.name / f"{job.platform.slug}-{key.removeprefix('sha256:')[:12]}.log"

    def _executor(self, spec: JobSpec, member: Member | None = None) -> Executor:
        """The first of the member's executors (this machine's by default) that takes `spec`."""
        reasons = []
        for executor in (member or self.members[0]).executors:
            refused = executor.refuses(spec)
            if refused is None:
                return executor
            reasons.append(f"{executor.node}: {refused}")
        raise BuildError(f"{spec.id}: no executor can run it ({'; '.join(reasons) or 'none configured'})")

    def _build(self, group: Sequence[tuple[Job, Job, JobSpec]], inputs: StoreInputs,
               executor: Executor) -> list[_Attempt]:
        """Run one attempt of each `job` as `placed` (its toolchain on the chosen node), in one
        run of `executor` (several: `SolvesTogether`); each job's log is the run's log."""
        started = time.monotonic()
        logs = [self.log_path(job, spec.input_key) for job, _, spec in group]
        bases = [BuildRecord(
            recipe=job.recipe.name, platform=job.platform, status="failed", input_key=spec.input_key,
            toolchain=job.identity, strategy=placed.strategy, source=job.source_digest,
            version=job.recipe.version, log=log, reproducible=spec.produces != "docker-image", node=executor.node,
        ) for (job, placed, spec), log in zip(group, logs, strict=True)]
        stored: list[BuildRecord] = []
        error: CrossyardError | None = None
        try:
            began = utc_now()
            with _run(executor, [spec for _, _, spec in group], inputs, logs[0]) as outputs:
                for i, ((job, placed, spec), out) in enumerate(zip(group, outputs, strict=True)):
                    bases[i] = replace(bases[i], node=out.node)
                    stored.append(self._store_outputs(job, placed, spec, out, began))
        except CrossyardError as failed:
            # NodeLost: what the node made and was not stored is gone with it, those jobs run
            # again elsewhere (lost while cleaning up: the outputs were stored already).
            error = failed
        finally:
            for log in logs[1:]:  # jobs run together: each finds the run's log where it looks
                with contextlib.suppress(OSError):
                    shutil.copyfile(logs[0], log)
        seconds = time.monotonic() - started
        attempts = [_Attempt(record=replace(
            base, status="built", outputs=done.outputs, manifest=done.manifest, started=done.started,
            finished=done.finished, seconds=seconds,
        )) for base, done in zip(bases[:len(stored)], stored, strict=True)]
        return attempts + [_Attempt(record=replace(base, error=str(error), seconds=seconds),
                                    lost=isinstance(error, NodeLost)) for base in bases[len(stored):]]

    def _store_outputs(self, job: Job, placed: Job, spec: JobSpec, outputs: Outputs, began: str) -> BuildRecord:
        # On the index entry, not the manifest: what differs between two builds of the same bytes
        # (where, when) and the source digest provenance names, without changing a digest.
        run = {**run_annotations(outputs.node, began), ANNOTATION_SOURCE_DIGEST: job.source_digest}
        if spec.produces == "docker-image":
            image_id = outputs.facts[FACT_IMAGE_ID]
            imported = import_docker_archive(
                self.store.layout, outputs.files[IMAGE_OUTPUT], image_id=image_id, platform=job.platform,
                annotations={
                    ANNOTATION_RECIPE: job.recipe.name,
                    ANNOTATION_PLATFORM: job.platform.oci,
                    ANNOTATION_INPUT_KEY: spec.input_key,
                    ANNOTATION_TOOLCHAIN: job.identity,
                    ANNOTATION_STRATEGY: placed.strategy,
                    ANNOTATION_DOCKER_IMAGE_ID: image_id,
                    # Only as reproducible as its Dockerfile: the engine stamps times.
                    ANNOTATION_REPRODUCIBLE: "false",
                },
            )
            with self._store_lock:
                return self.store.put_job_image(recipe=job.recipe.name, platform=job.platform,
                                                input_key=spec.input_key, manifest=imported.manifest, run=run)
        if spec.produces == "oci-image":
            # imported here: grpc loads for BuildKit jobs only
            from .executors.buildkit import import_job_image

            with self._store_lock:  # blobs straight into the store, as `put_job_image` then records
                manifest = import_job_image(outputs, self.store.layout, recipe=job.recipe.name, spec=spec)
                # How it ran goes beside where and when, not into the manifest (see import_job_image).
                return self.store.put_job_image(recipe=job.recipe.name, platform=job.platform,
                                                input_key=spec.input_key, manifest=manifest,
                                                run={**run, ANNOTATION_STRATEGY: placed.strategy})
        check_elf(job.id, outputs.files, job.platform)
        if job.recipe.test is not None:
            self.smoke.run(job.id, outputs.files, job.recipe.test, job.platform, job.toolchain.sysroot)
        with self._store_lock:
            return self.store.put_artifact(
                recipe=job.recipe.name, platform=job.platform, input_key=spec.input_key, files=outputs.files,
                digests=outputs.digests,
                annotations={ANNOTATION_TOOLCHAIN: job.identity, ANNOTATION_STRATEGY: placed.strategy},
                run=run,
            )
