"""Dockerfile: what to hand a Docker engine for one platform. Pure: no engine, no files.

The job builds `[dockerfile] file` (default `Dockerfile`, relative to the context) in the
`[dockerfile] context` directory of the recipe's source (default its root). Each dependency's
artifact for the job's platform is placed in the context at `artifacts/<recipe>/<file>`, so a
`FROM scratch` + `COPY artifacts/hello-go/hello-go /hello-go` picks up a cross-built binary. The
build args buildx would set (TARGETPLATFORM, TARGETOS, TARGETARCH, TARGETVARIANT, BUILDPLATFORM,
BUILDOS, BUILDARCH) and SOURCE_DATE_EPOCH are passed; a recipe cannot override them.

Such an image is only as reproducible as its Dockerfile: crossyard fixes the context (sorted,
mtimes at SOURCE_DATE_EPOCH, uid/gid 0), but the engine stamps creation times into the config
and whatever `RUN` does is up to the Dockerfile.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Final

from ..errors import ConfigurationError
from ..jobspec import DockerBuild, Placement
from ..platforms import Platform

# Bump when what a `dockerfile` job hands the engine (context layout, modes, build args) or how
# it stores the result changes for the same inputs: it is part of every such job's input key.
CONTEXT_FORMAT: Final = 2
ARTIFACTS_DIR: Final = "artifacts"
DEFAULT_DOCKERFILE: Final = "Dockerfile"
RESERVED_ARGS: Final = (
    "TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
    "BUILDPLATFORM", "BUILDOS", "BUILDARCH", "SOURCE_DATE_EPOCH",
)


def _relative(value: Any, *, key: str, where: Path) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{where}: [dockerfile] `{key}` must be a non-empty string, got {value!r}")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts:
        raise ConfigurationError(
            f"{where}: [dockerfile] `{key}` = {value!r} must be a relative path inside the recipe's source "
            "(no leading `/`, no `..`)"
        )
    return path.as_posix()


def check_options(options: Mapping[str, Any], *, where: Path) -> None:
    """What can be refused before any engine is asked (called by the planner)."""
    if "context" in options:
        _relative(options["context"], key="context", where=where)
    if "file" in options:
        _relative(options["file"], key="file", where=where)
    if "target" in options and (not isinstance(options["target"], str) or not options["target"]):
        raise ConfigurationError(f"{where}: [dockerfile] `target` must be a stage name (a string)")
    args = options.get("build_args", {})
    if not isinstance(args, Mapping):
        raise ConfigurationError(f"{where}: [dockerfile] `build_args` must be a table of NAME = \"value\"")
    for name, value in args.items():
        if name in RESERVED_ARGS:
            raise ConfigurationError(
                f"{where}: [dockerfile] build_args sets `{name}`, which crossyard sets for each platform; "
                "remove it (declare `ARG " + name + "` in the Dockerfile to use it)"
            )
        if not isinstance(value, str | int | float | bool):
            raise ConfigurationError(f"{where}: [dockerfile] build_args `{name}` must be a string, got {value!r}")


def platform_args(platform: Platform, engine: Platform) -> dict[str, str]:
    """The build args buildx sets; TARGETPLATFORM is the OCI spelling without a variant."""
    return {
        "TARGETPLATFORM": platform.oci,
        "TARGETOS": platform.os,
        "TARGETARCH": platform.architecture,
        "TARGETVARIANT": "",
        "BUILDPLATFORM": engine.oci,
        "BUILDOS": engine.os,
        "BUILDARCH": engine.architecture,
    }


def _arg_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class DockerfileBuilder:
    def build(
        self,
        *,
        options: Mapping[str, Any],
        platform: Platform,
        engine: Platform,
        deps: Mapping[str, tuple[str, ...]],
        source_date_epoch: int,
        where: Path,
    ) -> DockerBuild:
        check_options(options, where=where)
        args = {str(k): _arg_text(v) for k, v in options.get("build_args", {}).items()}
        args.update(platform_args(platform, engine))
        args["SOURCE_DATE_EPOCH"] = str(source_date_epoch)
        placements = tuple(
            Placement(recipe=recipe, file=name, dest=f"{ARTIFACTS_DIR}/{recipe}/{name}")
            for recipe in sorted(deps)
            for name in sorted(deps[recipe])
        )
        return DockerBuild(
            context=_relative(options.get("context", "."), key="context", where=where),
            dockerfile=_relative(options.get("file", DEFAULT_DOCKERFILE), key="file", where=where),
            build_args=dict(sorted(args.items())),
            target=options.get("target"),
            placements=placements,
        )
