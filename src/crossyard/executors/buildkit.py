"""Run `dockerfile` job specs on a buildkitd: the context prepared here as for the legacy
builder (`context.prepare_context`), solved by BuildKit's dockerfile frontend, SOURCE_DATE_EPOCH
and rewrite-timestamp making the bytes reproducible. crossyard's model is one job per recipe x
platform, and the image index is assembled from the jobs' manifests; jobs of one recipe for
several platforms that the scheduler places on one buildkitd are solved together
(`run_together`), as buildx builds a multi-platform image, when nothing in their build context
depends on the platform (no dependencies, or theirs in a named context per platform). The output
is the OCI archive buildkitd exported through the session; the scheduler imports each job's
platform from it into the store, checking every digest.

Progress goes to the job's log, one line per step: `#<vertex> <name> <state>`, log chunks as
they come.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from ..annotations import (
    ANNOTATION_INPUT_KEY,
    ANNOTATION_PLATFORM,
    ANNOTATION_RECIPE,
    ANNOTATION_REPRODUCIBLE,
    ANNOTATION_TOOLCHAIN,
)
from ..buildkit.client import Api, BuildKitError, Client
from ..buildkit.dockerfile import (
    DIGEST_KEY,
    DockerfileSolve,
    Step,
    import_platform_image,
    solve_to_archive,
)
from ..buildkit.endpoints import TOOLCHAIN, Endpoint
from ..errors import BuildError, NodeLost
from ..executors.local import tail
from ..hashing import sha256_file
from ..jobspec import Inputs, JobSpec
from ..oci.layout import Descriptor, OciLayout
from ..platforms import Platform
from . import Outputs
from .context import prepare_context, prepare_named_context
from .docker import IMAGE_OUTPUT

# Outputs.facts key: the digest buildkitd said it exported (import_archive holds the archive to it).
FACT_EXPORTED = "buildkit.exported"
LOG_TAIL_LINES = 20


class BuildKitExecutor:
    """Builds `dockerfile` job specs planned for BuildKit on one buildkitd, a connection per job."""

    name = "buildkit"

    def __init__(self, endpoint: Endpoint, api: Api, *, identity: str, platforms: Sequence[Platform],
                 temp_root: Path | None = None) -> None:
        self.endpoint = endpoint
        self.api = api
        self.identity = identity  # as probed: a daemon since replaced by another build is refused
        self.platforms = tuple(platforms)
        self.temp_root = temp_root
        self.node = f"buildkit:{endpoint.address}"
        self.progress: Callable[[str, str], None] | None = None  # job id, its step now (live view)
        self._clients: set[Client] = set()
        self._lock = threading.Lock()
        self._cancelled = False

    def refuses(self, spec: JobSpec) -> str | None:
        if spec.docker is None:
            return "runs only Dockerfile builds"
        if spec.toolchain.name != TOOLCHAIN:
            return f"the job is planned for `{spec.toolchain.name}`, not BuildKit"
        if spec.toolchain.identity != self.identity:
            return f"it is {self.identity}, the plan keyed {spec.toolchain.identity}"
        if spec.platform not in self.platforms:
            return f"its workers build {', '.join(p.oci for p in self.platforms)}, not {spec.platform}"
        return None

    def can_join(self, first: JobSpec, other: JobSpec) -> bool:
        return self.refuses(other) is None and solvable_together(first, other)

    def cancel(self) -> None:
        """Close every connection: a solve in progress then fails."""
        with self._lock:
            self._cancelled = True
            clients = list(self._clients)
        for client in clients:
            with contextlib.suppress(Exception):
                client.close()

    @contextlib.contextmanager
    def run(self, spec: JobSpec, inputs: Inputs, log: Path) -> Iterator[Outputs]:
        with self.run_together((spec,), inputs, log) as [outputs]:
            yield outputs

    @contextlib.contextmanager
    def run_together(self, specs: Sequence[JobSpec], inputs: Inputs, log: Path) -> Iterator[list[Outputs]]:
        """Jobs of one recipe for several platforms (`solvable_together`) in one solve, as buildx
        builds a multi-platform image: one upload of the context, steps that do not depend on the
        platform run once, one export (an index). Each job's outputs are that one archive; its
        platform's manifest is what `import_job_image` takes from it."""
        for spec in specs:
            refused = self.refuses(spec)
            if refused is not None:
                raise BuildError(f"{spec.id}: {refused}")
            if not solvable_together(specs[0], spec):
                raise BuildError(f"{spec.id}: cannot be solved with {specs[0].id}: their builds differ "
                                 "beyond the platform")
        first = specs[0]
        build = first.docker
        assert build is not None  # refuses() made sure
        jobdir = Path(tempfile.mkdtemp(prefix="crossyard-buildkit-", dir=self.temp_root))
        try:
            context = prepare_context(first, inputs, jobdir)
            named = {  # each platform's own files, where the Dockerfile takes them from a named context
                (s.docker.named_context, s.platform): prepare_named_context(s, inputs, jobdir / "named" / s.platform.slug)
                for s in specs if s.docker is not None and s.docker.named_context is not None}
            dockerfile = context / build.dockerfile
            solve = DockerfileSolve(
                context=context, dockerfile_dir=dockerfile.parent, dockerfile=dockerfile.name,
                platforms=tuple(s.platform for s in specs), build_args=build.build_args, target=build.target,
                source_date_epoch=first.source_date_epoch, named_contexts=named,
            )
            archive = jobdir / "image.tar"
            ref = uuid.uuid4().hex  # the log names it: buildkitd's build history finds the solve by it
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("w") as out:
                out.write(f"# {', '.join(s.id for s in specs)} on buildkitd at {self.endpoint.address} "
                          f"({self.identity}), solve {ref}\n")
                response = self._solve(specs, solve, archive, out, ref)
            digest = sha256_file(archive)
            yield [Outputs(files={IMAGE_OUTPUT: archive}, digests={IMAGE_OUTPUT: digest}, node=self.node,
                           facts={FACT_EXPORTED: response.get(DIGEST_KEY, "")})
                   for _ in specs]
        finally:
            shutil.rmtree(jobdir, ignore_errors=True)

    def _solve(self, specs: Sequence[JobSpec], solve: DockerfileSolve, archive: Path, out: TextIO,
               ref: str) -> dict[str, str]:
        label = ", ".join(s.id for s in specs)
        with self._lock:
            if self._cancelled:
                raise BuildError(f"{label}: cancelled")
            client = Client(self.endpoint.address, self.api, tls=self.endpoint.tls)
            self._clients.add(client)
        writing = threading.Lock()  # the Status thread writes while the solve runs

        def progress(step: Step) -> None:
            with writing:
                out.write(_line(step))
                out.flush()
            if self.progress is not None and step.state != "log":
                for spec in specs:
                    self.progress(spec.id, f"{step.name} {step.state}")

        planned = specs[0].toolchain.identity
        try:
            with client:
                info = client.info()
                identity = " ".join(p for p in ("buildkit", info.version, info.revision) if p)
                if identity != planned:
                    raise BuildError(f"{label}: buildkitd at {self.endpoint.address} is {identity}, but the "
                                     f"plan was made for {planned}; run the build again")
                return solve_to_archive(client, solve, archive, progress=progress, ref=ref)
        except BuildKitError as error:
            with writing:
                out.write(f"{error}\n")
                out.flush()
            if self._cancelled:
                raise BuildError(f"{label}: cancelled") from None
            if "UNAVAILABLE" in str(error):
                raise NodeLost(f"{label}: {error}") from None
            raise BuildError(f"{label}: the BuildKit solve failed; log {out.name}:\n"
                             f"{tail(Path(out.name), LOG_TAIL_LINES)}") from None
        finally:
            with self._lock:
                self._clients.discard(client)


def solvable_together(first: JobSpec, other: JobSpec) -> bool:
    """Whether `other` can be built in `first`'s solve: another platform of the same build (one
    context, Dockerfile, build args, target, date and daemon identity), whose own files, if any,
    come through a named context (a build context is one for every platform of a solve)."""
    if first is other:
        return True
    a, b = first.docker, other.docker
    if a is None or b is None:
        return False
    if any(d.placements and d.named_context is None for d in (a, b)):
        return False  # artifacts/ in the build context: one platform's files per solve
    return (first.source == other.source and first.source_date_epoch == other.source_date_epoch
            and first.toolchain.identity == other.toolchain.identity
            and replace(a, placements=()) == replace(b, placements=()))


def import_job_image(outputs: Outputs, into: OciLayout, *, recipe: str, spec: JobSpec) -> Descriptor:
    """A BuildKit job's output imported into `into` (every blob checked against the digests
    buildkitd named): its platform's manifest, with the annotations crossyard's job images carry
    (what it is; how and where it ran goes on the index entry: native and emulated builds of one
    key give one manifest). The scheduler imports into the store, `repro check` into its own."""
    return import_platform_image(
        outputs.files[IMAGE_OUTPUT], into, platform=spec.platform,
        expected=outputs.facts.get(FACT_EXPORTED) or None, compressor=f"{spec.toolchain.identity} gzip",
        annotations={
            ANNOTATION_RECIPE: recipe,
            ANNOTATION_PLATFORM: spec.platform.oci,
            ANNOTATION_INPUT_KEY: spec.input_key,
            ANNOTATION_TOOLCHAIN: spec.toolchain.identity,
            # SOURCE_DATE_EPOCH and rewrite-timestamp: same inputs, same bytes
            ANNOTATION_REPRODUCIBLE: "true",
        })


def _line(step: Step) -> str:
    """One line of the job's log per step, as buildctl's plain progress names them."""
    short = step.vertex.removeprefix("sha256:")[:12]
    if step.state == "log":
        return step.text if step.text.endswith("\n") else step.text + "\n"
    text = f": {step.text}" if step.text else ""
    return f"#{short} {step.name} {step.state}{text}\n"
