"""Run a `dockerfile` job spec on a Docker engine: assemble the context, build, `docker save`.

The context is a copy of the source (excluded files dropped, modes normalized) with the
dependencies' artifacts under `artifacts/<recipe>/`. It is sent as a tar made here rather than by
the SDK: entries sorted, mtimes at SOURCE_DATE_EPOCH, uid/gid 0, no owner names, `.dockerignore`
honoured; so a `COPY` gives the same layer bytes wherever the job runs. The engine keeps nothing:
the built image is saved to the job directory and removed from the engine when the caller is done.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from ..engine import DockerEngine, docker_host
from ..errors import BuildError
from ..hashing import sha256_file
from ..jobspec import Inputs, JobSpec
from ..oci.layer import LayerEntry, add_entry
from . import Outputs
from .context import prepare_context

# The one output of a Dockerfile job: the `docker save` archive of the built image.
IMAGE_OUTPUT = "image"
# Outputs.facts key: the engine's image ID (the sha256 of the image config).
FACT_IMAGE_ID = "docker.image-id"


def _dockerignore(context: Path) -> list[str]:
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text(errors="replace").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def write_context(context: Path, dockerfile: str, out: Path, *, epoch: int) -> None:
    """A deterministic tar of `context` (what `.dockerignore` leaves, plus the Dockerfile)."""
    from docker.utils.build import exclude_paths

    names = sorted(exclude_paths(str(context), _dockerignore(context), dockerfile=dockerfile))
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tar:
        for name in names:
            path = context / name
            if path.is_symlink():
                entry = LayerEntry(path=name, symlink=os.readlink(path))
            elif path.is_dir():
                entry = LayerEntry(path=name, mode=0o755)
            elif path.is_file():
                entry = LayerEntry(path=name, source=path,
                                   mode=0o755 if os.access(path, os.X_OK) else 0o644)
            else:
                continue
            add_entry(tar, entry, mtime=epoch)


class EngineExecutor:
    """Builds `dockerfile` job specs on the Docker engine DOCKER_HOST names, one connection per job."""

    name = "docker"

    def __init__(self, *, connect: Callable[[], DockerEngine] = DockerEngine.from_env,
                 temp_root: Path | None = None) -> None:
        self.connect = connect
        self.temp_root = temp_root
        self.node = f"docker:{docker_host()}"
        self._engines: set[DockerEngine] = set()
        self._lock = threading.Lock()
        self._cancelled = False

    def refuses(self, spec: JobSpec) -> str | None:
        if spec.docker is None:
            return "runs only Dockerfile builds"
        if spec.produces != "docker-image":
            return f"a Dockerfile job planned for `{spec.toolchain.name}` is not the legacy builder's"
        if spec.docker.named_context is not None:
            return "the legacy builder has no named contexts (`artifacts = \"named-context\"`)"
        return None

    def cancel(self) -> None:
        """Close every engine connection: a build in progress then fails as a lost engine."""
        with self._lock:
            self._cancelled = True
            engines = list(self._engines)
        for engine in engines:
            with contextlib.suppress(Exception):
                engine.close()

    @contextlib.contextmanager
    def run(self, spec: JobSpec, inputs: Inputs, log: Path) -> Iterator[Outputs]:
        build = spec.docker
        if build is None:
            raise BuildError(f"{spec.id}: not a Dockerfile build")
        with self._lock:
            if self._cancelled:
                raise BuildError(f"{spec.id}: cancelled")
        jobdir = Path(tempfile.mkdtemp(prefix="crossyard-docker-", dir=self.temp_root))
        image_id: str | None = None
        with self.connect() as engine:
            with self._lock:
                self._engines.add(engine)
            try:
                info = engine.info()
                if info.identity_text != spec.toolchain.identity:
                    raise BuildError(
                        f"{spec.id}: the Docker engine at {info.host} is {info.identity_text}, but the "
                        f"plan was made for {spec.toolchain.identity}; run the build again"
                    )
                context = prepare_context(spec, inputs, jobdir)
                context_tar = jobdir / "context.tar"
                write_context(context, build.dockerfile, context_tar, epoch=spec.source_date_epoch)
                with context_tar.open("rb") as handle:
                    image_id = engine.build(
                        label=spec.id, context=handle, dockerfile=build.dockerfile,
                        platform=spec.platform, build_args=build.build_args, target=build.target, log=log,
                    )
                archive = jobdir / "image.tar"
                engine.save(image_id, archive)
                yield Outputs(files={IMAGE_OUTPUT: archive}, digests={IMAGE_OUTPUT: sha256_file(archive)},
                              node=f"docker:{info.host}", facts={FACT_IMAGE_ID: image_id})
            finally:
                with self._lock:
                    self._engines.discard(engine)
                if image_id is not None:
                    engine.remove(image_id)
                shutil.rmtree(jobdir, ignore_errors=True)
