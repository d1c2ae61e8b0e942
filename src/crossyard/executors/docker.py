"""Run a `dockerfile` job on a Docker engine: assemble the context, build, `docker save`.

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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..builders.dockerfile import DockerBuild
from ..engine import DockerEngine
from ..errors import ConfigurationError
from ..oci.layer import LayerEntry, add_entry
from ..sources import ResolvedSource, copy_tree


@dataclass(frozen=True, kw_only=True)
class EngineRequest:
    """What the engine executor needs for one job; no recipe, no store."""

    label: str  # "web@linux/riscv64"
    where: Path  # the recipe file, for messages
    source: ResolvedSource
    deps: Mapping[str, Mapping[str, Path]]  # recipe → file name → file on this machine
    modes: Mapping[str, Mapping[str, int]]  # recipe → file name → mode (store blobs are all 0644)
    build: DockerBuild
    log: Path


@dataclass(frozen=True, kw_only=True)
class EngineOutput:
    image_id: str  # the engine's image ID: the sha256 of the image config
    archive: Path  # `docker save` tarball, valid until the `run` block ends


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
    """Builds `dockerfile` jobs on one Docker engine."""

    name = "docker-engine"

    def __init__(self, engine: DockerEngine, *, temp_root: Path | None = None) -> None:
        self.engine = engine
        self.temp_root = temp_root

    @contextlib.contextmanager
    def run(self, request: EngineRequest) -> Iterator[EngineOutput]:
        build = request.build
        jobdir = Path(tempfile.mkdtemp(prefix="crossyard-docker-", dir=self.temp_root))
        image_id: str | None = None
        try:
            copy_tree(request.source, jobdir / "src")
            context = (jobdir / "src" / build.context).resolve()
            if not context.is_relative_to(jobdir / "src") or not context.is_dir():
                raise ConfigurationError(
                    f"{request.where}: [dockerfile] context `{build.context}` is not a directory of the "
                    "recipe's source; fix `context` (relative to [source])"
                )
            dockerfile = context / build.dockerfile
            if not dockerfile.is_file():
                raise ConfigurationError(
                    f"{request.where}: [dockerfile] file `{build.dockerfile}` not found in the context "
                    f"`{build.context}`; fix `file` (relative to the context)"
                )
            for placement in build.placements:
                target = context / placement.dest
                if target.exists():
                    raise ConfigurationError(
                        f"{request.where}: the source already has `{placement.dest}` where crossyard puts "
                        f"the `{placement.recipe}` artifact; rename it in the source"
                    )
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(request.deps[placement.recipe][placement.file], target)
                os.chmod(target, request.modes[placement.recipe][placement.file] & 0o755)
            context_tar = jobdir / "context.tar"
            write_context(context, build.dockerfile, context_tar, epoch=build.source_date_epoch)
            with context_tar.open("rb") as handle:
                image_id = self.engine.build(
                    label=request.label, context=handle, dockerfile=build.dockerfile,
                    platform=build.platform, build_args=build.build_args, target=build.target,
                    log=request.log,
                )
            archive = jobdir / "image.tar"
            self.engine.save(image_id, archive)
            yield EngineOutput(image_id=image_id, archive=archive)
        finally:
            if image_id is not None:
                self.engine.remove(image_id)
            shutil.rmtree(jobdir, ignore_errors=True)

