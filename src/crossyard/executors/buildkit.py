"""Run a `dockerfile` job spec on a buildkitd: the context prepared here as for the legacy
builder (`context.prepare_context`), solved by BuildKit's dockerfile frontend for the job's one
platform (crossyard's model: one job per recipe x platform; the image index is assembled from
the jobs' manifests), SOURCE_DATE_EPOCH and rewrite-timestamp making the bytes reproducible.
The output is the OCI archive buildkitd exported through the session; the scheduler imports it
into the store, checking every digest.

Progress goes to the job's log, one line per step: `#<vertex> <name> <state>`, log chunks as
they come.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
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
from .context import prepare_context
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
        build = spec.docker
        refused = self.refuses(spec)
        if build is None or refused is not None:
            raise BuildError(f"{spec.id}: {refused}")
        jobdir = Path(tempfile.mkdtemp(prefix="crossyard-buildkit-", dir=self.temp_root))
        try:
            context = prepare_context(spec, inputs, jobdir)
            dockerfile = context / build.dockerfile
            solve = DockerfileSolve(
                context=context, dockerfile_dir=dockerfile.parent, dockerfile=dockerfile.name,
                platforms=(spec.platform,), build_args=build.build_args, target=build.target,
                source_date_epoch=spec.source_date_epoch,
            )
            archive = jobdir / "image.tar"
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("w") as out:
                out.write(f"# {spec.id} on buildkitd at {self.endpoint.address} ({self.identity})\n")
                response = self._solve(spec, solve, archive, out)
            yield Outputs(files={IMAGE_OUTPUT: archive}, digests={IMAGE_OUTPUT: sha256_file(archive)},
                          node=self.node, facts={FACT_EXPORTED: response.get(DIGEST_KEY, "")})
        finally:
            shutil.rmtree(jobdir, ignore_errors=True)

    def _solve(self, spec: JobSpec, solve: DockerfileSolve, archive: Path, out: TextIO) -> dict[str, str]:
        with self._lock:
            if self._cancelled:
                raise BuildError(f"{spec.id}: cancelled")
            client = Client(self.endpoint.address, self.api, tls=self.endpoint.tls)
            self._clients.add(client)
        writing = threading.Lock()  # the Status thread writes while the solve runs

        def progress(step: Step) -> None:
            with writing:
                out.write(_line(step))
                out.flush()
            if self.progress is not None and step.state != "log":
                self.progress(spec.id, f"{step.name} {step.state}")

        try:
            with client:
                info = client.info()
                identity = " ".join(p for p in ("buildkit", info.version, info.revision) if p)
                if identity != spec.toolchain.identity:
                    raise BuildError(f"{spec.id}: buildkitd at {self.endpoint.address} is {identity}, but the "
                                     f"plan was made for {spec.toolchain.identity}; run the build again")
                return solve_to_archive(client, solve, archive, progress=progress)
        except BuildKitError as error:
            with writing:
                out.write(f"{error}\n")
                out.flush()
            if self._cancelled:
                raise BuildError(f"{spec.id}: cancelled") from None
            if "UNAVAILABLE" in str(error):
                raise NodeLost(f"{spec.id}: {error}") from None
            raise BuildError(f"{spec.id}: the BuildKit solve failed; log {out.name}:\n"
                             f"{tail(Path(out.name), LOG_TAIL_LINES)}") from None
        finally:
            with self._lock:
                self._clients.discard(client)


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
