"""Run a build graph: ready jobs in parallel, each looked up in the store by its input key first.

A job becomes ready when its dependencies are done; only then is its input key known (it covers
their output digests). A cached key costs one index lookup; a miss is built by the executor,
checked (ELF machine, smoke test) and imported into the store. A failed job's dependents are
skipped; independent jobs still run, and the build exits 1 at the end with every failure.

Jobs of an engine kind (`dockerfile`) run on a Docker engine instead (`EngineExecutor`): the
built image is saved, imported into the store as the job's per-platform image manifest (digests
checked) and recorded under the job's ref and input key like an artifact, its one output `image`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
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
    ANNOTATION_STARTED,
    ANNOTATION_STRATEGY,
    ANNOTATION_TOOLCHAIN,
)
from .builders import BuildInput, BuildScript, JobPaths, builder_for
from .builders.dockerfile import DockerfileBuilder
from .checks import SmokeTests, check_elf
from .engine import DockerEngine
from .errors import BuildError, CrossyardError, IntegrityError
from .executors import Executor
from .executors.docker import EngineExecutor, EngineRequest
from .executors.local import ExecRequest
from .oci import media
from .oci.docker_archive import import_docker_archive
from .oci.image import rfc3339
from .oci.layout import Descriptor
from .plan import ENGINE_KINDS, BuildGraph, Job
from .sources import SourceResolver
from .store import ArtifactFile, Store, StoredArtifact


def utc_now() -> str:
    return rfc3339(int(time.time()))


def run_annotations(node: str, began: str) -> dict[str, str]:
    """Where and when a job ran (RFC 3339, UTC), for the store's index entry and provenance."""
    return {ANNOTATION_NODE: node, ANNOTATION_STARTED: began, ANNOTATION_FINISHED: utc_now()}


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
    reproducible: bool = True  # false for `dockerfile` jobs: only as reproducible as the Dockerfile


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
        engine: Callable[[], DockerEngine] = DockerEngine.from_env,
    ) -> None:
        self.store = store
        self.resolver = resolver
        self.executor = executor
        self.logs_dir = logs_dir
        self.toolchain_cache = toolchain_cache
        self.jobs = max(1, jobs)
        self.reporter = reporter or SilentReporter()
        self.engine = engine  # one connection per engine job, made only when one runs
        self._store_lock = threading.Lock()
        self.smoke = SmokeTests()

    def run(self, graph: BuildGraph) -> BuildReport:
        started = time.monotonic()
        results: dict[str, JobResult] = {}
        artifacts: dict[str, StoredArtifact] = {}
        pending = dict(graph.jobs)
        cached_keys = self.store.cached_keys()  # one index read for the whole run
        if any(job.recipe.kind in ENGINE_KINDS for job in pending.values()):
            cached_keys = {**cached_keys, **self._job_images()}
        self.reporter.start(len(pending))
        running: dict[Future[tuple[JobResult, StoredArtifact | None]], str] = {}
        finished: queue.SimpleQueue[Future[tuple[JobResult, StoredArtifact | None]]] = queue.SimpleQueue()
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="job")
        try:
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
                        artifact = (self._cached_image(key, cached_keys) if job.recipe.kind in ENGINE_KINDS
                                    else self._cached(key, cached_keys))
                        if artifact is not None:
                            artifacts[job_id] = artifact
                            results[job_id] = self._finish(JobResult(
                                job_id=job_id, recipe=job.recipe.name, platform=job.platform.oci,
                                status="cached", input_key=key, outputs=artifact.digests,
                                toolchain=job.toolchain.identity_text, strategy=job.strategy,
                                reproducible=job.recipe.kind not in ENGINE_KINDS,
                            ))
                            continue
                        self.reporter.job_started(job)
                        dep_files = {
                            graph.jobs[d].recipe.name: {
                                f.name: self.store.file_path(f) for f in artifacts[d].files
                            }
                            for d in job.deps
                        }
                        if job.recipe.kind in ENGINE_KINDS:
                            dep_modes = {graph.jobs[d].recipe.name: {f.name: f.mode for f in artifacts[d].files}
                                         for d in job.deps}
                            future = pool.submit(self._build_on_engine, job, key, dep_files, dep_modes)
                        else:
                            future = pool.submit(self._build, job, key, dep_files)
                        running[future] = job_id
                        future.add_done_callback(finished.put)
                if not running:
                    break
                # Not concurrent.futures.wait: it takes every future's lock one by one, and a
                # Ctrl-C landing between two of those acquisitions leaves a lock held that the
                # worker needs to finish, so the shutdown below would wait forever. A queue's
                # get holds nothing when it is interrupted.
                done = [finished.get()]
                while not finished.empty():
                    done.append(finished.get_nowait())
                for future in done:
                    job_id = running.pop(future)
                    result, artifact = future.result()
                    if artifact is not None:
                        artifacts[job_id] = artifact
                    results[job_id] = self._finish(result)
        except BaseException:
            # Ctrl-C or SIGTERM: stop the running jobs (they clean up as failed ones do) and
            # start none of the queued ones, then let the interruption through.
            self.executor.cancel()
            self.smoke.cancel()  # smoke tests run in sessions of their own: Ctrl-C does not reach them
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        else:
            pool.shutdown(wait=True)
        finally:
            self.reporter.stop()
        ordered = tuple(results[j] for j in graph.order if j in results)
        return BuildReport(results=ordered, seconds=time.monotonic() - started)

    def _finish(self, result: JobResult) -> JobResult:
        self.reporter.job_finished(result)
        return result

    def _cached(self, key: str, cached_keys: Mapping[str, Descriptor]) -> StoredArtifact | None:
        # Hashed, not just found: a corrupt blob would otherwise pass as cached (and --locked
        # with it) until a push fails on it. A miss rebuilds the job, which replaces the blob.
        return self.store.find(key, index=cached_keys, verify=True) if key in cached_keys else None

    def _job_images(self) -> dict[str, Descriptor]:
        """Input key → index entry of every job image (`dockerfile` jobs' per-platform manifests)."""
        out: dict[str, Descriptor] = {}
        for descriptor in self.store.layout.manifests() if self.store.layout.index_path.exists() else []:
            key = (descriptor.annotations or {}).get(ANNOTATION_INPUT_KEY)
            if key and descriptor.media_type == media.MANIFEST and descriptor.artifact_type is None:
                out[key] = descriptor
        return out

    def _cached_image(self, key: str, cached_keys: Mapping[str, Descriptor]) -> StoredArtifact | None:
        descriptor = cached_keys.get(key)
        if descriptor is None or descriptor.media_type != media.MANIFEST or descriptor.artifact_type is not None:
            return None
        layout = self.store.layout
        try:
            manifest = layout.read_json(descriptor.digest)  # hashed as it is read
        except IntegrityError:
            return None
        blobs = [manifest["config"], *manifest.get("layers", [])]
        if not all(layout.check_blob(d["digest"], int(d["size"])) is None for d in blobs):
            return None  # missing or corrupt: build it again
        notes = descriptor.annotations or {}
        return StoredArtifact(
            recipe=notes.get(ANNOTATION_RECIPE, ""), platform=notes.get(ANNOTATION_PLATFORM, ""),
            input_key=key, manifest=descriptor,
            files=(ArtifactFile(name="image", digest=descriptor.digest, size=descriptor.size, mode=0o644),),
        )

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
            began = utc_now()
            with self.executor.run(request) as outputs:
                check_elf(job.id, outputs, job.platform)
                if job.recipe.test is not None:
                    self.smoke.run(job.id, outputs, job.recipe.test, job.platform, job.toolchain.sysroot)
                with self._store_lock:
                    artifact = self.store.put_artifact(
                        recipe=job.recipe.name, platform=job.platform, input_key=key, files=outputs,
                        annotations={ANNOTATION_TOOLCHAIN: job.toolchain.identity_text,
                                     ANNOTATION_STRATEGY: job.strategy},
                        run=run_annotations(self.executor.node, began),
                    )
        except CrossyardError as error:
            return replace(base, error=str(error), seconds=time.monotonic() - started), None
        return (
            replace(base, status="built", outputs=artifact.digests, seconds=time.monotonic() - started),
            artifact,
        )

    def _build_on_engine(
        self, job: Job, key: str, dep_files: Mapping[str, Mapping[str, Path]],
        dep_modes: Mapping[str, Mapping[str, int]],
    ) -> tuple[JobResult, StoredArtifact | None]:
        started = time.monotonic()
        log = self.log_path(job, key)
        base = JobResult(
            job_id=job.id, recipe=job.recipe.name, platform=job.platform.oci, status="failed", input_key=key,
            toolchain=job.toolchain.identity_text, strategy=job.strategy, log=log, reproducible=False,
        )
        try:
            source = self.resolver.resolve(job.recipe)
            with self.engine() as engine:
                info = engine.info()
                planned_for = job.toolchain.version
                if f"{info.version} on {info.platform.oci}" != planned_for:
                    raise BuildError(
                        f"{job.id}: the Docker engine at {info.host} is docker {info.version} on "
                        f"{info.platform.oci}, but the plan was made for {planned_for}; run the build again"
                    )
                build = DockerfileBuilder().build(
                    options=job.recipe.options_for(job.platform), platform=job.platform, engine=info.platform,
                    deps={name: tuple(sorted(files)) for name, files in dep_files.items()},
                    source_date_epoch=job.source_date_epoch, where=job.recipe.file,
                )
                request = EngineRequest(label=job.id, where=job.recipe.file, source=source, deps=dep_files,
                                        modes=dep_modes, build=build, log=log)
                began = utc_now()
                with EngineExecutor(engine).run(request) as output:
                    imported = import_docker_archive(
                        self.store.layout, output.archive, image_id=output.image_id, platform=job.platform,
                        annotations={
                            ANNOTATION_RECIPE: job.recipe.name,
                            ANNOTATION_PLATFORM: job.platform.oci,
                            ANNOTATION_INPUT_KEY: key,
                            ANNOTATION_TOOLCHAIN: job.toolchain.identity_text,
                            ANNOTATION_STRATEGY: job.strategy,
                            ANNOTATION_DOCKER_IMAGE_ID: output.image_id,
                            # Only as reproducible as its Dockerfile: the engine stamps times.
                            ANNOTATION_REPRODUCIBLE: "false",
                        },
                    )
                    with self._store_lock:
                        artifact = self.store.put_job_image(
                            recipe=job.recipe.name, platform=job.platform, input_key=key, manifest=imported.manifest,
                            run=run_annotations(f"docker:{info.host}", began),
                        )
        except CrossyardError as error:
            return replace(base, error=str(error), seconds=time.monotonic() - started), None
        return (
            replace(base, status="built", outputs=artifact.digests, seconds=time.monotonic() - started),
            artifact,
        )
