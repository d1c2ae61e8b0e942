"""A `dockerfile` job's build context on this machine, the same for every builder: a copy of the
recipe's source with each dependency's artifact for the job's platform placed at
`artifacts/<recipe>/<file>` (or, for BuildKit's named context, in a directory of its own), every
path the recipe names checked to stay inside the source."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import BuildError, ConfigurationError
from ..jobspec import DockerBuild, Inputs, JobSpec
from ..sources import copy_tree


def prepare_context(spec: JobSpec, inputs: Inputs, jobdir: Path) -> Path:
    """The source copied to `jobdir/src`, the placements made; the context directory (the
    Dockerfile is `spec.docker.dockerfile` in it, checked to be a file there)."""
    build: DockerBuild | None = spec.docker
    if build is None:
        raise BuildError(f"{spec.id}: not a Dockerfile build")
    source = jobdir / "src"
    copy_tree(inputs.source(spec.source), source)
    context = (source / build.context).resolve()
    if not context.is_relative_to(source.resolve()) or not context.is_dir():
        raise ConfigurationError(
            f"{spec.id}: [dockerfile] context `{build.context}` is not a directory of the "
            "recipe's source; fix `context` (relative to [source])"
        )
    dockerfile = (context / build.dockerfile).resolve()
    if not dockerfile.is_relative_to(context) or not dockerfile.is_file():
        raise ConfigurationError(
            f"{spec.id}: [dockerfile] file `{build.dockerfile}` not found in the context "
            f"`{build.context}`; fix `file` (relative to the context)"
        )
    if build.named_context is None:
        _place(spec, inputs, context)
    return context


def prepare_named_context(spec: JobSpec, inputs: Inputs, directory: Path) -> Path:
    """`spec`'s named context (its dependencies' artifacts for its platform) made in `directory`."""
    directory.mkdir(parents=True)
    _place(spec, inputs, directory.resolve())
    return directory


def _place(spec: JobSpec, inputs: Inputs, context: Path) -> None:
    assert spec.docker is not None
    files = {(i.recipe, i.name): i for i in spec.inputs}
    for placement in spec.docker.placements:
        target = context / placement.dest
        if target.exists() or target.is_symlink():
            raise ConfigurationError(
                f"{spec.id}: the source already has `{placement.dest}` where crossyard puts "
                f"the `{placement.recipe}` artifact; rename it in the source"
            )
        existing = target.parent
        while not existing.exists():
            existing = existing.parent
        if not existing.resolve().is_relative_to(context):
            raise ConfigurationError(
                f"{spec.id}: `{placement.dest}` leads out of the context through a link in the source; "
                "remove the link"
            )
        item = files[(placement.recipe, placement.file)]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(inputs.file(item.digest), target)
        os.chmod(target, item.mode & 0o755)
