"""Dockerfile: what to hand a Docker engine for one platform. Pure: no engine, no files.

The job builds `[dockerfile] file` (default `Dockerfile`, relative to the context) in the
`[dockerfile] context` directory of the recipe's source (default its root). Each dependency's
artifact for the job's platform is placed in the context at `artifacts/<recipe>/<file>`, so a
`FROM scratch` + `COPY artifacts/hello-go/hello-go /hello-go` picks up a cross-built binary; with
`artifacts = "named-context"`, in BuildKit's named context `artifacts` for the job's platform
instead (`COPY --from=artifacts hello-go/hello-go /hello-go`), which lets one solve build several
platforms (a build context is one for all of them, a named context can be one per platform). The
build args buildx would set (TARGETPLATFORM, TARGETOS, TARGETARCH, TARGETVARIANT, BUILDPLATFORM,
BUILDOS, BUILDARCH) and SOURCE_DATE_EPOCH are passed to the legacy builder (BuildKit's frontend
sets the former itself); a recipe cannot override them. The recipe's
own build args are templates (`{version}`, `{commit}`…), checked when the recipe loads.

Such an image is only as reproducible as its Dockerfile: crossyard fixes the context (sorted,
mtimes at SOURCE_DATE_EPOCH, uid/gid 0), but the engine stamps creation times into the config
and whatever `RUN` does is up to the Dockerfile.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Final

from ..build_options import BuildOptions, DockerfileOptions, of_kind
from ..jobspec import DockerBuild, Placement
from ..platforms import Platform
from ..templates import expand, recipe_values

# Bump when what a `dockerfile` job hands the engine (context layout, modes, build args) or how
# it stores the result changes for the same inputs: it is part of every such job's input key.
CONTEXT_FORMAT: Final = 2
ARTIFACTS_DIR: Final = "artifacts"
NAMED_CONTEXT: Final = "artifacts"  # `artifacts = "named-context"`: BuildKit's `--build-context artifacts=…`


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


def _arg_text(value: str | int | float | bool, values: Mapping[str, str]) -> str:
    """A build arg's text: a string is a template, a TOML number or boolean its own spelling."""
    if isinstance(value, str):
        return expand(value, values)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class DockerfileBuilder:
    def build(
        self,
        *,
        name: str,
        version: str,
        commit: str | None,
        options: BuildOptions,
        platform: Platform,
        engine: Platform | None,
        deps: Mapping[str, tuple[str, ...]],
        source_date_epoch: int,
    ) -> DockerBuild:
        """What to hand the builder; `options` were checked when the recipe loaded. `engine`:
        the legacy builder's engine platform, for the build args buildx would set (None: BuildKit,
        whose frontend sets them itself)."""
        dockerfile = of_kind(options, DockerfileOptions)
        values = recipe_values(name=name, version=version, commit=commit, platform=platform,
                               source_date_epoch=source_date_epoch)
        args = {k: _arg_text(v, values) for k, v in dockerfile.build_args}
        if engine is not None:
            args.update(platform_args(platform, engine))
        args["SOURCE_DATE_EPOCH"] = str(source_date_epoch)
        named = dockerfile.artifacts == "named-context"
        placements = tuple(
            Placement(recipe=recipe, file=file, dest=f"{recipe}/{file}" if named else f"{ARTIFACTS_DIR}/{recipe}/{file}")
            for recipe in sorted(deps)
            for file in sorted(deps[recipe])
        )
        return DockerBuild(
            context=PurePosixPath(dockerfile.context).as_posix(),  # `./docker/` → `docker`
            dockerfile=PurePosixPath(dockerfile.file).as_posix(),
            build_args=dict(sorted(args.items())),
            target=dockerfile.target,
            placements=placements,
            named_context=NAMED_CONTEXT if named else None,
        )
