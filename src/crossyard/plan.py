"""The planner: recipes x platforms → a DAG of jobs with input keys. Pure: no processes, no
files; the caller hands in resolved source digests and probed toolchains.

A job's input key is known once its dependencies' outputs are: `Job.input_key(dep_outputs)`.
Keying on dependency *outputs* (not their keys) means a dependency rebuilt to the same bytes
does not rebuild its dependents.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .build_options import OPTIONS, DockerfileOptions, GoOptions
from .builders import BuildInput, output_inside, script_for
from .builders.dockerfile import CONTEXT_FORMAT, DockerfileBuilder
from .buildkit.endpoints import TOOLCHAIN as BUILDKIT
from .buildkit.endpoints import BuildKitInfo
from .engine import EngineInfo
from .errors import ConfigurationError, suggest
from .hashing import sha256_json
from .jobspec import InputFile, JobPaths, JobSpec, ToolchainRequirement
from .platforms import Platform
from .recipes import Recipe
from .records import BuildRecord
from .toolchains import ToolchainTarget

# Bump when what a job's environment looks like changes (env vars, flags the builders add).
BUILD_ENV_VERSION = 1
# Kinds whose jobs run on a Docker engine instead of a toolchain (their specs carry a `docker` build).
ENGINE_KINDS = ("dockerfile",)
# What builds a `dockerfile` recipe, as its `toolchains` names them, by default in this order:
# BuildKit where a buildkitd builds the platform, else the Docker engine's legacy builder.
LEGACY = "docker"
DOCKERFILE_BUILDERS = (BUILDKIT, LEGACY)
BUILD_KINDS = ("go", "c", "rust", *ENGINE_KINDS)


@dataclass(frozen=True, kw_only=True)
class Job:
    id: str  # "hello-go@linux/riscv64"
    recipe: Recipe
    platform: Platform
    toolchain: ToolchainTarget
    deps: tuple[str, ...]  # job ids
    source_digest: str
    source_date_epoch: int
    material: Mapping[str, Any]  # everything in the key except dependency outputs
    engine: EngineInfo | None = None  # the Docker engine a legacy `dockerfile` job was planned for

    @property
    def strategy(self) -> str:
        return self.toolchain.strategy

    @property
    def identity(self) -> str:
        """The toolchain identity the key holds and an executor must match."""
        return self.toolchain.identity_text

    def spec(self, input_key: str, deps: Sequence[BuildRecord]) -> JobSpec:
        """The portable job, once the dependencies' outputs (`deps`, one per `self.deps`) are known."""
        recipe, platform = self.recipe, self.platform
        inputs = tuple(InputFile(recipe=d.recipe, name=f.name, digest=f.digest, mode=f.mode)
                       for d in deps for f in d.outputs)
        files = {d.recipe: tuple(sorted(f.name for f in d.outputs)) for d in deps}
        options = recipe.options_for(platform)
        tool = self.toolchain
        common: dict[str, Any] = {
            "id": self.id, "input_key": input_key, "platform": platform, "source": self.source_digest,
            "inputs": inputs, "source_date_epoch": self.source_date_epoch,
        }
        if recipe.kind in ENGINE_KINDS:
            # BuildKit's frontend sets TARGETPLATFORM and the rest itself; the legacy builder
            # is handed them for the engine it was planned on.
            build = DockerfileBuilder().build(name=recipe.name, version=recipe.version, commit=recipe.commit,
                                              options=options, platform=platform,
                                              engine=self.engine.platform if self.engine else None,
                                              deps=files, source_date_epoch=self.source_date_epoch)
            return JobSpec(**common, docker=build, toolchain=ToolchainRequirement(
                name=tool.name, identity=self.identity, strategy=tool.strategy))
        script = script_for(recipe.kind, BuildInput(
            name=recipe.name, version=recipe.version, platform=platform, options=options, toolchain=tool,
            source_date_epoch=self.source_date_epoch, deps=files, commit=recipe.commit,
            generate=recipe.generate,
        ))
        return JobSpec(
            **common, steps=script.steps, env=script.env, outputs=script.outputs,
            toolchain=ToolchainRequirement(
                name=tool.name, identity=self.identity, strategy=tool.strategy,
                root=tool.root.name if tool.root is not None else None, env=dict(tool.env),
            ),
        )

    def input_key(self, dep_outputs: Mapping[str, Mapping[str, str]]) -> str:
        """sha256 over the canonical JSON of the material and each dependency's output digests."""
        deps = {job_id: dict(sorted(dep_outputs[job_id].items())) for job_id in self.deps}
        return sha256_json({**self.material, "dependencies": deps})


@dataclass(frozen=True, kw_only=True)
class BuildGraph:
    jobs: Mapping[str, Job]  # in topological order
    order: tuple[str, ...]

    def dependents(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {job_id: [] for job_id in self.order}
        for job in self.jobs.values():
            for dep in job.deps:
                out[dep].append(job.id)
        return out


def job_id(recipe: str, platform: Platform) -> str:
    return f"{recipe}@{platform.oci}"


def _check_dependencies(recipes: Mapping[str, Recipe]) -> list[str]:
    """Missing dependencies and cycles are errors; returns the recipe names in build order."""
    for recipe in recipes.values():
        for dep in recipe.depends:
            if dep not in recipes:
                raise ConfigurationError(
                    f"{recipe.file}: `depends` names `{dep}`, which is not a recipe{suggest(dep, recipes)}; "
                    f"known recipes: {', '.join(sorted(recipes))}"
                )
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "active":
            cycle = [*trail[trail.index(name):], name]
            raise ConfigurationError(
                f"{recipes[name].file}: dependency cycle: {' -> '.join(cycle)}; remove one of these `depends`"
            )
        state[name] = "active"
        for dep in recipes[name].depends:
            visit(dep, [*trail, name])
        state[name] = "done"
        order.append(name)

    for name in sorted(recipes):
        visit(name, [])
    return order


def plan(
    recipes: Sequence[Recipe],
    *,
    platforms: Sequence[Platform] | None,
    toolchains: Callable[[str, Platform], Sequence[ToolchainTarget]],
    source_digests: Mapping[str, str],
    source_epochs: Mapping[str, int | None],
    workspace_root: Path,
    default_epoch: int = 0,
    can_run: Callable[[Platform], bool] = lambda _p: True,
    engine: Callable[[], EngineInfo] | None = None,
    buildkit: Callable[[], Sequence[BuildKitInfo]] | None = None,
) -> BuildGraph:
    """Jobs for every recipe x (its platforms ∩ `platforms`), in dependency order.

    `toolchains(kind, platform)` returns the probed candidates for a kind and platform, best
    first; `can_run(platform)` says whether a smoke test could run that platform's binaries;
    `engine()` probes the Docker engine legacy `dockerfile` jobs run on, `buildkit()` the
    buildkitds (BUILDKIT_HOST, `buildkit` nodes) BuildKit ones do (each called once, if needed).
    """
    by_name = {r.name: r for r in recipes}
    probed: list[EngineInfo] = []

    def engine_info() -> EngineInfo:
        if not probed:
            if engine is None:
                raise ConfigurationError("`dockerfile` recipes need a Docker engine, and none was given")
            probed.append(engine())
        return probed[0]

    daemons: list[Sequence[BuildKitInfo]] = []

    def buildkit_infos() -> Sequence[BuildKitInfo]:
        if not daemons:
            daemons.append(buildkit() if buildkit is not None else ())
        return daemons[0]

    order = _check_dependencies(by_name)
    wanted = {p.oci for p in platforms} if platforms else None
    jobs: dict[str, Job] = {}
    for name in order:
        recipe = by_name[name]
        if recipe.kind not in BUILD_KINDS:
            continue  # image kinds are assembled from the artifacts, not planned as jobs
        for platform in recipe.platforms:
            if wanted is not None and platform.oci not in wanted:
                continue
            info = None
            # The toolchain's part of the key: what it is (`go1.24.4`), not where or how it runs.
            identity: str | dict[str, str]
            if recipe.kind in ENGINE_KINDS:
                _no_test(recipe)
                found = _buildkit_target(recipe, platform, buildkit_infos)
                if found is not None:
                    toolchain, daemon = found
                    builder = daemon.identity
                else:
                    info = engine_info()
                    toolchain = _engine_target(recipe, platform, info, can_run)
                    builder = info.identity
                identity = {**builder, "target": platform.oci, "context_format": str(CONTEXT_FORMAT)}
            else:
                toolchain = _choose(recipe, platform, toolchains(recipe.kind, platform))
                identity = toolchain.identity
            if recipe.test is not None and not can_run(platform):
                raise ConfigurationError(
                    f"{recipe.file}: the smoke test of `{recipe.name}` for {platform} needs qemu-user: "
                    f"`{platform.qemu_binary}` is not installed; run `apt-get install -y qemu-user-static`"
                )
            deps = []
            for dep in recipe.depends:
                dep_recipe = by_name[dep]
                if dep_recipe.kind not in BUILD_KINDS:
                    continue
                if platform not in dep_recipe.platforms:
                    raise ConfigurationError(
                        f"{recipe.file}: `{recipe.name}` is built for {platform} and depends on `{dep}`, "
                        f"which is not ({dep_recipe.file} lists {', '.join(p.oci for p in dep_recipe.platforms)}); "
                        f"add {platform} to its `platforms`"
                    )
                dep_id = job_id(dep, platform)
                if dep_id not in jobs:
                    raise ConfigurationError(
                        f"{recipe.file}: `{recipe.name}` for {platform} needs `{dep}` for {platform}, "
                        "which was filtered out; do not restrict `--platform` below what dependencies need"
                    )
                deps.append(dep_id)
            epoch = recipe.source_date_epoch
            if epoch is None:
                epoch = source_epochs.get(name)
            if epoch is None:
                epoch = default_epoch
            if recipe.kind not in ENGINE_KINDS:
                _check_script(recipe, platform, toolchain, epoch)
            material = {
                "crossyard_build_env": BUILD_ENV_VERSION,
                "recipe": recipe.normalized(platform, workspace_root),
                "source": source_digests[name],
                "toolchain": identity,
                "platform": platform.oci,
                "source_date_epoch": epoch,
            }
            options = recipe.options_for(platform) if recipe.kind in OPTIONS else None
            if isinstance(options, GoOptions) and options.gopath and toolchain.gopath:
                # The Go packages the toolchain's root provides are inputs of a GOPATH build.
                material["toolchain_gopath"] = toolchain.gopath_digest
            if isinstance(options, GoOptions) and options.cgo and toolchain.root_packages:
                # cgo links the root's C libraries: their versions are inputs too
                material["toolchain_root_packages"] = toolchain.root_packages
            jid = job_id(name, platform)
            jobs[jid] = Job(
                id=jid,
                recipe=recipe,
                platform=platform,
                toolchain=toolchain,
                deps=tuple(deps),
                source_digest=source_digests[name],
                source_date_epoch=epoch,
                material=material,
                engine=info,
            )
    return BuildGraph(jobs=jobs, order=tuple(jobs))


# Where a job's directories could be, to check the paths a builder derives from options.
_PLAN_PATHS = JobPaths(root="/job", src="/job/src", out="/job/out", deps="/job/deps", cache="/job/cache",
                       home="/job/home")


def _check_script(recipe: Recipe, platform: Platform, toolchain: ToolchainTarget, epoch: int) -> None:
    """Builders are pure, so options a builder refuses, or a [test] that runs a file the build
    does not produce, fail here (exit 2, before anything runs) rather than as a failed job."""
    try:
        script = script_for(recipe.kind, BuildInput(
            name=recipe.name, version=recipe.version, platform=platform, options=recipe.options_for(platform),
            toolchain=toolchain, source_date_epoch=epoch, commit=recipe.commit, generate=recipe.generate,
        ))
    except ValueError as error:
        raise ConfigurationError(f"{recipe.file}: [{recipe.kind}]: {error}") from None
    for name, template in script.outputs.items():
        # The recipe's names are checked at load; this holds every builder to it (a name or a
        # path derived from options, like rust's target/<triple>/<profile>/<bin>).
        path = _PLAN_PATHS.fill(template)
        if not output_inside(name, path, _PLAN_PATHS.root):
            raise ConfigurationError(
                f"{recipe.file}: [{recipe.kind}]: output `{name}` ({path}) is not a plain file name "
                "inside the job's directory; fix the option that names it"
            )
    if recipe.test is not None and recipe.test.run[0] not in script.outputs:
        raise ConfigurationError(
            f"{recipe.file}: [test] run names `{recipe.test.run[0]}`, but `{recipe.name}` outputs "
            f"{', '.join(f'`{name}`' for name in sorted(script.outputs))}; run one of those"
        )


def _choose(recipe: Recipe, platform: Platform, candidates: Sequence[ToolchainTarget]) -> ToolchainTarget:
    if recipe.toolchains:
        unknown = set(recipe.toolchains) - {c.name for c in candidates}
        if unknown:
            raise ConfigurationError(
                f"{recipe.file}: `toolchains` names {', '.join(sorted(unknown))}, which no toolchain "
                f"definition of kind `{recipe.kind}` is called"
                f"{suggest(min(unknown), [c.name for c in candidates])}; there are "
                f"{', '.join(c.name for c in candidates) or 'none'}: fix the name or add the definition "
                "under toolchains/"
            )
        candidates = [c for c in candidates if c.name in recipe.toolchains]
    for strategy in recipe.strategies:
        for candidate in candidates:
            if candidate.available and candidate.strategy == strategy:
                return candidate
    lines = [
        f"{recipe.file}: no toolchain can build `{recipe.name}` ({recipe.kind}) for {platform} "
        f"with strategies {', '.join(recipe.strategies)}:"
    ]
    for candidate in candidates:
        if candidate.available:
            lines.append(f"  {candidate.name}: works, but only as `{candidate.strategy}`")
        else:
            lines.append(f"  {candidate.name} ({candidate.strategy}): {candidate.reason}; fix: {candidate.fix}")
    if not candidates:
        lines.append(f"  no toolchain definition builds kind `{recipe.kind}`; add one under toolchains/")
    raise ConfigurationError("\n".join(lines))


def _buildkit_target(recipe: Recipe, platform: Platform, daemons: Callable[[], Sequence[BuildKitInfo]],
                     ) -> tuple[ToolchainTarget, BuildKitInfo] | None:
    """The buildkitd a `dockerfile` job is planned for (native first), or None for the legacy
    builder: the recipe's `toolchains` say which may build it (`docker`: legacy only)."""
    allowed = recipe.toolchains or DOCKERFILE_BUILDERS
    for name in allowed:
        if name not in DOCKERFILE_BUILDERS:
            raise ConfigurationError(
                f"{recipe.file}: `toolchains` names `{name}`{suggest(name, DOCKERFILE_BUILDERS)}; a `dockerfile` "
                f"recipe is built by `{BUILDKIT}` (buildkitd) or `{LEGACY}` (the Docker engine's legacy builder)"
            )
    options = recipe.options_for(platform)
    named = isinstance(options, DockerfileOptions) and options.artifacts == "named-context"
    if named:  # the legacy builder has no named contexts
        allowed = tuple(a for a in allowed if a != LEGACY)
    if BUILDKIT not in allowed:
        return None
    found = sorted(((d, s) for d in daemons() if (s := d.strategy(platform)) is not None),
                   key=lambda pair: pair[1] != "native")
    accepted = [(d, s) for d, s in found if s in recipe.strategies]
    if accepted:
        daemon, strategy = accepted[0]
        native = daemon.native.oci if daemon.native else "?"
        return ToolchainTarget(
            name=BUILDKIT, kind=recipe.kind, platform=platform, strategy=strategy, available=True,
            command=daemon.address, version=f"{daemon.version} on {native}", identity=daemon.identity_text,
        ), daemon
    if LEGACY in allowed:
        return None
    if found:
        why = (f"the buildkitds that build it do so only as {', '.join(sorted({s for _, s in found}))}, which its "
               f"`strategies` ({', '.join(recipe.strategies)}) exclude")
    elif daemons():
        why = "no buildkitd configured builds it (ListWorkers lists " + "; ".join(
            f"{d.address}: {', '.join(p.oci for p in d.platforms)}" for d in daemons()) + ")"
    else:
        why = "no buildkitd is configured"
    because, otherwise = (('`artifacts = "named-context"`', 'use `artifacts = "context"` with "docker" allowed')
                          if named else ('`toolchains = ["buildkit"]`', 'allow "docker" in `toolchains`'))
    raise ConfigurationError(
        f"{recipe.file}: `{recipe.name}` for {platform} must be built by BuildKit ({because}), "
        f"but {why}; set BUILDKIT_HOST=unix:///PATH/buildkitd.sock or declare a [[nodes]] entry with "
        f"transport = \"buildkit\", or {otherwise}"
    )


def _no_test(recipe: Recipe) -> None:
    if recipe.test is not None:
        raise ConfigurationError(
            f"{recipe.file}: a `{recipe.kind}` recipe builds an image, which [test] cannot run; "
            "remove [test] (test the binary in the recipe it depends on)"
        )


def _engine_target(recipe: Recipe, platform: Platform, info: EngineInfo,
                   can_run: Callable[[Platform], bool]) -> ToolchainTarget:
    """The engine as the job's "toolchain": native on an engine of that arch, else emulated."""
    strategy = "native" if info.platform == platform else "emulated"
    if strategy not in recipe.strategies:
        raise ConfigurationError(
            f"{recipe.file}: `{recipe.name}` for {platform} would be built on the Docker engine at "
            f"{info.host} ({info.platform}) under qemu (strategy `emulated`), which its `strategies` "
            f"({', '.join(recipe.strategies)}) exclude; add `emulated` or point DOCKER_HOST at a {platform} engine"
        )
    if strategy == "emulated" and info.local and not can_run(platform):
        raise ConfigurationError(
            f"{recipe.file}: `{recipe.name}` for {platform} runs on the local Docker engine ({info.platform}) "
            f"under qemu-user, and `{platform.qemu_binary}` is not installed; run "
            "`apt-get install -y qemu-user-static binfmt-support` (binfmt handlers with the F flag)"
        )
    return ToolchainTarget(
        name=LEGACY, kind=recipe.kind, platform=platform, strategy=strategy, available=True,
        command=info.host, version=f"{info.version} on {info.platform.oci}", identity=info.identity_text,
    )
