"""Run a build graph: ready jobs in parallel, each looked up in the store by its input key first.

A job becomes ready when its dependencies are done; only then is its input key known (it covers
their output digests), and its `JobSpec` made (it names their outputs by digest). A cached key
costs one index lookup; a miss goes to the first executor that does not refuse the spec, its
outputs are checked (digests, ELF machine, smoke test) and imported into the store. A failed
job's dependents are skipped; independent jobs still run, and the build exits 1 at the end with
every failure. Every job's outcome is one `BuildRecord`.

What a job produces decides how it is stored, not its recipe kind: files become an artifact; a
`docker save` archive (a Dockerfile job) becomes the job's per-platform image manifest, digests
checked, recorded under the job's ref and input key like an artifact, its one output `image`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

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
from .checks import SmokeTests, check_elf
from .errors import BuildError, CrossyardError
from .executors import Executor, Outputs
from .executors.docker import FACT_IMAGE_ID, IMAGE_OUTPUT
from .jobspec import JobSpec
from .oci import media
from .oci.docker_archive import import_docker_archive
from .oci.image import rfc3339
from .oci.layout import Descriptor
from .plan import BuildGraph, Job
from .records import BuildRecord
from .sources import ResolvedSource, SourceResolver
from .store import Store

# How often the main thread wakes while jobs run, to act on a Ctrl-C or SIGTERM that came in.
SIGNAL_POLL_S = 0.2


def _next(finished: queue.SimpleQueue[Future[BuildRecord]]) -> Future[BuildRecord]:
    while True:
        try:
            return finished.get(timeout=SIGNAL_POLL_S)
        except queue.Empty:
            continue


def utc_now() -> str:
    return rfc3339(int(time.time()))


def run_annotations(node: str, began: str) -> dict[str, str]:
    """Where and when a job ran (RFC 3339, UTC), for the store's index entry and provenance."""
    return {ANNOTATION_NODE: node, ANNOTATION_STARTED: began, ANNOTATION_FINISHED: utc_now()}


@dataclass(frozen=True, kw_only=True)
class BuildReport:
    records: tuple[BuildRecord, ...]  # one per job, in the graph's order
    seconds: float

    def count(self, status: str) -> int:
        return sum(1 for r in self.records if r.status == status)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.records)


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
    def job_started(self, job: Job) -> None: ...
    def job_finished(self, record: BuildRecord) -> None: ...
    def stop(self) -> None: ...


class SilentReporter:
    def start(self, total: int) -> None: ...
    def job_started(self, job: Job) -> None: ...
    def job_finished(self, record: BuildRecord) -> None: ...
    def stop(self) -> None: ...


class Scheduler:
    def __init__(
        self,
        *,
        store: Store,
        resolver: SourceResolver,
        executors: Sequence[Executor],
        logs_dir: Path,
        jobs: int,
        reporter: Reporter | None = None,
    ) -> None:
        self.store = store
        self.resolver = resolver
        self.executors = tuple(executors)
        self.logs_dir = logs_dir
        self.jobs = max(1, jobs)
        self.reporter = reporter or SilentReporter()
        self._store_lock = threading.Lock()
        self.smoke = SmokeTests()

    def run(self, graph: BuildGraph) -> BuildReport:
        started = time.monotonic()
        records: dict[str, BuildRecord] = {}
        pending = dict(graph.jobs)
        sources = {job.source_digest: self.resolver.resolve(job.recipe) for job in pending.values()}
        inputs = StoreInputs(self.store, sources)
        # One index read for the whole run: artifacts and Dockerfile job images, by input key.
        cached_keys = {**self.store.job_images(), **self.store.cached_keys()} if pending else {}
        self.reporter.start(len(pending))
        running: dict[Future[BuildRecord], str] = {}
        finished: queue.SimpleQueue[Future[BuildRecord]] = queue.SimpleQueue()
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="job")
        try:
            while pending or running:
                progressed = True
                while progressed:
                    progressed = False
                    for job_id, job in list(pending.items()):
                        if not all(dep in records for dep in job.deps):
                            continue
                        del pending[job_id]
                        progressed = True
                        failed_deps = [d for d in job.deps if not records[d].ok]
                        if failed_deps:
                            records[job_id] = self._finish(BuildRecord(
                                recipe=job.recipe.name, platform=job.platform, status="skipped",
                                version=job.recipe.version, error=f"dependency {failed_deps[0]} failed",
                            ))
                            continue
                        key = job.input_key({d: records[d].digests for d in job.deps})
                        found = self._cached(key, cached_keys)
                        if found is not None:
                            records[job_id] = self._finish(replace(
                                found, status="cached", recipe=job.recipe.name, platform=job.platform,
                                toolchain=job.identity, strategy=found.strategy or job.strategy,
                                source=job.source_digest, version=job.recipe.version,
                            ))
                            continue
                        self.reporter.job_started(job)
                        spec = job.spec(key, [records[d] for d in job.deps])
                        future = pool.submit(self._build, job, spec, inputs)
                        running[future] = job_id
                        future.add_done_callback(finished.put)
                if not running:
                    break
                # Not concurrent.futures.wait: it takes every future's lock one by one, and a
                # Ctrl-C landing between two of those acquisitions leaves a lock held that the
                # worker needs to finish, so the shutdown below would wait forever. A queue's
                # get holds nothing when it is interrupted. And with a timeout: a signal that
                # arrives just before the blocking wait starts interrupts nothing, and Python
                # would only run its handler (raise KeyboardInterrupt) once a job finished.
                done = [_next(finished)]
                while not finished.empty():
                    done.append(finished.get_nowait())
                for future in done:
                    records[running.pop(future)] = self._finish(future.result())
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
            self.reporter.stop()
        ordered = tuple(records[j] for j in graph.order if j in records)
        return BuildReport(records=ordered, seconds=time.monotonic() - started)

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

    def _executor(self, spec: JobSpec) -> Executor:
        reasons = []
        for executor in self.executors:
            refused = executor.refuses(spec)
            if refused is None:
                return executor
            reasons.append(f"{executor.node}: {refused}")
        raise BuildError(f"{spec.id}: no executor can run it ({'; '.join(reasons) or 'none configured'})")

    def _build(self, job: Job, spec: JobSpec, inputs: StoreInputs) -> BuildRecord:
        started = time.monotonic()
        log = self.log_path(job, spec.input_key)
        base = BuildRecord(
            recipe=job.recipe.name, platform=job.platform, status="failed", input_key=spec.input_key,
            toolchain=job.identity, strategy=job.strategy, source=job.source_digest,
            version=job.recipe.version, log=log, reproducible=spec.produces == "files",
        )
        try:
            executor = self._executor(spec)
            began = utc_now()
            with executor.run(spec, inputs, log) as outputs:
                base = replace(base, node=outputs.node)
                stored = self._store_outputs(job, spec, outputs, began)
        except CrossyardError as error:
            return replace(base, error=str(error), seconds=time.monotonic() - started)
        return replace(
            base, status="built", outputs=stored.outputs, manifest=stored.manifest, started=stored.started,
            finished=stored.finished, seconds=time.monotonic() - started,
        )

    def _store_outputs(self, job: Job, spec: JobSpec, outputs: Outputs, began: str) -> BuildRecord:
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
                    ANNOTATION_STRATEGY: job.strategy,
                    ANNOTATION_DOCKER_IMAGE_ID: image_id,
                    # Only as reproducible as its Dockerfile: the engine stamps times.
                    ANNOTATION_REPRODUCIBLE: "false",
                },
            )
            with self._store_lock:
                return self.store.put_job_image(recipe=job.recipe.name, platform=job.platform,
                                                input_key=spec.input_key, manifest=imported.manifest, run=run)
        check_elf(job.id, outputs.files, job.platform)
        if job.recipe.test is not None:
            self.smoke.run(job.id, outputs.files, job.recipe.test, job.platform, job.toolchain.sysroot)
        with self._store_lock:
            return self.store.put_artifact(
                recipe=job.recipe.name, platform=job.platform, input_key=spec.input_key, files=outputs.files,
                digests=outputs.digests,
                annotations={ANNOTATION_TOOLCHAIN: job.identity, ANNOTATION_STRATEGY: job.strategy},
                run=run,
            )
