"""Run a build graph: ready jobs in parallel, each looked up in the store by its input key first.

A job becomes ready when its dependencies are done; only then is its input key known (it covers
their output digests). A cached key costs one index lookup; a miss is built by the executor,
checked (ELF machine, smoke test) and imported into the store. A failed job's dependents are
skipped; independent jobs still run, and the build exits 1 at the end with every failure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from .builders import BuildInput, BuildScript, JobPaths, builder_for
from .checks import check_elf, smoke_test
from .errors import BuildError, CrossyardError
from .executors import Executor
from .executors.local import ExecRequest
from .oci.layout import Descriptor
from .plan import BuildGraph, Job
from .sources import SourceResolver
from .store import Store, StoredArtifact


@dataclass(frozen=True, kw_only=True)
class JobResult:
    job_id: str
    recipe: str
    platform: str
    status: str  # built | cached | failed | skipped
    input_key: str | None = None
    outputs: Mapping[str, str] = field(default_factory=dict)  # file name → digest
    toolchain: str = ""
    strategy: str = ""
    seconds: float = 0.0
    log: Path | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class BuildReport:
    results: tuple[JobResult, ...]
    seconds: float

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def ok(self) -> bool:
        return not any(r.status in ("failed", "skipped") for r in self.results)


class Reporter(Protocol):
    def start(self, total: int) -> None: ...
    def job_started(self, job: Job) -> None: ...
    def job_finished(self, result: JobResult) -> None: ...
    def stop(self) -> None: ...


class SilentReporter:
    def start(self, total: int) -> None: ...
    def job_started(self, job: Job) -> None: ...
    def job_finished(self, result: JobResult) -> None: ...
    def stop(self) -> None: ...


class Scheduler:
    def __init__(
        self,
        *,
        store: Store,
        resolver: SourceResolver,
        executor: Executor,
        logs_dir: Path,
        toolchain_cache: Path,
        jobs: int,
        reporter: Reporter | None = None,
    ) -> None:
        self.store = store
        self.resolver = resolver
        self.executor = executor
        self.logs_dir = logs_dir
        self.toolchain_cache = toolchain_cache
        self.jobs = max(1, jobs)
        self.reporter = reporter or SilentReporter()
        self._store_lock = threading.Lock()

    def run(self, graph: BuildGraph) -> BuildReport:
        started = time.monotonic()
        results: dict[str, JobResult] = {}
        artifacts: dict[str, StoredArtifact] = {}
        pending = dict(graph.jobs)
        cached_keys = self.store.cached_keys()  # one index read for the whole run
        self.reporter.start(len(pending))
        running: dict[Future[tuple[JobResult, StoredArtifact | None]], str] = {}
        try:
            with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="job") as pool:
                while pending or running:
                    progressed = True
                    while progressed:
                        progressed = False
                        for job_id, job in list(pending.items()):
                            if not all(dep in results for dep in job.deps):
                                continue
                            del pending[job_id]
                            progressed = True
                            failed_deps = [d for d in job.deps if results[d].status in ("failed", "skipped")]
                            if failed_deps:
                                results[job_id] = self._finish(JobResult(
                                    job_id=job_id, recipe=job.recipe.name, platform=job.platform.oci,
                                    status="skipped", error=f"dependency {failed_deps[0]} failed",
                                ))
                                continue
                            key = job.input_key({d: results[d].outputs for d in job.deps})
                            artifact = self._cached(key, cached_keys)
                            if artifact is not None:
                                artifacts[job_id] = artifact
                                results[job_id] = self._finish(JobResult(
                                    job_id=job_id, recipe=job.recipe.name, platform=job.platform.oci,
                                    status="cached", input_key=key, outputs=artifact.digests,
                                    toolchain=job.toolchain.identity_text, strategy=job.strategy,
                                ))
                                continue
                            self.reporter.job_started(job)
                            dep_files = {
                                graph.jobs[d].recipe.name: {
                                    f.name: self.store.file_path(f) for f in artifacts[d].files
                                }
                                for d in job.deps
                            }
                            running[pool.submit(self._build, job, key, dep_files)] = job_id
                    if not running:
                        break
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        job_id = running.pop(future)
                        result, artifact = future.result()
                        if artifact is not None:
                            artifacts[job_id] = artifact
                        results[job_id] = self._finish(result)
        finally:
            self.reporter.stop()
        ordered = tuple(results[j] for j in graph.order if j in results)
        return BuildReport(results=ordered, seconds=time.monotonic() - started)

    def _finish(self, result: JobResult) -> JobResult:
        self.reporter.job_finished(result)
        return result

    def _cached(self, key: str, cached_keys: Mapping[str, Descriptor]) -> StoredArtifact | None:
        return self.store.find(key, index=cached_keys) if key in cached_keys else None

    def log_path(self, job: Job, key: str) -> Path:
        return self.logs_dir / job.recipe.name / f"{job.platform.slug}-{key.removeprefix('sha256:')[:12]}.log"

    def _build(self, job: Job, key: str, dep_files: Mapping[str, Mapping[str, Path]]) -> tuple[JobResult, StoredArtifact | None]:
        started = time.monotonic()
        log = self.log_path(job, key)
        base = JobResult(
            job_id=job.id, recipe=job.recipe.name, platform=job.platform.oci, status="failed", input_key=key,
            toolchain=job.toolchain.identity_text, strategy=job.strategy, log=log,
        )
        try:
            source = self.resolver.resolve(job.recipe)
            builder = builder_for(job.recipe.kind)
            options = job.recipe.options_for(job.platform)
            deps = {name: tuple(sorted(files)) for name, files in dep_files.items()}

            def script(paths: JobPaths) -> BuildScript:
                return builder.script(BuildInput(
                    name=job.recipe.name, version=job.recipe.version, platform=job.platform,
                    options=options, toolchain=job.toolchain, paths=paths,
                    source_date_epoch=job.source_date_epoch, deps=deps,
                ))

            request = ExecRequest(
                label=job.id, source=source, deps=dep_files, root=job.toolchain.root,
                cache_dir=self.toolchain_cache / job.toolchain.name, env=job.toolchain.env,
                source_date_epoch=job.source_date_epoch, script=script, log=log,
            )
            with self.executor.run(request) as outputs:
                check_elf(job.id, outputs, job.platform)
                if job.recipe.test is not None:
                    smoke_test(job.id, outputs, job.recipe.test, job.platform, job.toolchain.sysroot)
                with self._store_lock:
                    artifact = self.store.put_artifact(
                        recipe=job.recipe.name, platform=job.platform, input_key=key, files=outputs,
                        annotations={"dev.crossyard.toolchain": job.toolchain.identity_text,
                                     "dev.crossyard.strategy": job.strategy},
                    )
        except CrossyardError as error:
            return replace(base, error=str(error), seconds=time.monotonic() - started), None
        except ValueError as error:  # a builder refusing its options
            failure = BuildError(f"{job.id}: {error}")
            return replace(base, error=str(failure), seconds=time.monotonic() - started), None
        return (
            replace(base, status="built", outputs=artifact.digests, seconds=time.monotonic() - started),
            artifact,
        )
