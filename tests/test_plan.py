"""The planner is pure: these tests hand it probed-toolchain values directly."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from crossyard.build_options import OPTIONS, COptions, DockerfileOptions
from crossyard.buildkit.endpoints import BuildKitInfo
from crossyard.engine import EngineInfo
from crossyard.errors import ConfigurationError
from crossyard.plan import plan
from crossyard.platforms import AMD64, ARM64, RISCV64, Platform
from crossyard.recipes import Recipe, Source
from crossyard.records import BuildRecord
from crossyard.toolchains import ToolchainTarget

ROOT = Path("/ws")


def recipe(name: str, *, depends: tuple[str, ...] = (), kind: str = "c", platforms=(RISCV64, ARM64),
           strategies=("cross", "native", "emulated")) -> Recipe:
    return Recipe(name=name, kind=kind, file=ROOT / "recipes" / f"{name}.toml", depends=depends,
                  platforms=platforms, strategies=strategies, source=Source(path=ROOT / name),
                  options=COptions(sources=("main.c",)) if kind == "c" else OPTIONS[kind]())


def toolchains(kind: str, platform: Platform) -> list[ToolchainTarget]:
    return [
        ToolchainTarget(name="gcc", kind="c", platform=platform, strategy="cross", available=kind == "c",
                        version=f"12.2.0; {platform.gnu_triplet}", identity=f"gcc 12.2.0 {platform.gnu_triplet}",
                        reason="" if kind == "c" else "missing", fix="apt-get install gcc"),
        ToolchainTarget(name="rust", kind="rust", platform=platform, strategy="cross", available=False,
                        reason="no std", fix=f"rustup target add {platform.rust_triple}"),
    ]


def make(recipes: list[Recipe], **kwargs: object):
    digests = {r.name: f"sha256:{r.name}" for r in recipes}
    return plan(recipes, platforms=kwargs.pop("platforms", None), toolchains=toolchains,  # type: ignore[arg-type]
                source_digests=digests, source_epochs={}, workspace_root=ROOT, **kwargs)  # type: ignore[arg-type]


def test_jobs_in_dependency_order_with_keys() -> None:
    graph = make([recipe("app", depends=("lib",)), recipe("lib")])
    assert list(graph.order) == ["lib@linux/riscv64", "lib@linux/arm64", "app@linux/riscv64", "app@linux/arm64"]
    app = graph.jobs["app@linux/riscv64"]
    assert app.deps == ("lib@linux/riscv64",)
    key1 = app.input_key({"lib@linux/riscv64": {"lib.a": "sha256:1"}})
    key2 = app.input_key({"lib@linux/riscv64": {"lib.a": "sha256:2"}})
    assert key1 != key2 and key1.startswith("sha256:")
    assert key1 == app.input_key({"lib@linux/riscv64": {"lib.a": "sha256:1"}})


def test_keys_differ_by_platform_and_source() -> None:
    graph = make([recipe("lib")])
    riscv, arm = graph.jobs["lib@linux/riscv64"], graph.jobs["lib@linux/arm64"]
    assert riscv.input_key({}) != arm.input_key({})
    other = plan([recipe("lib")], platforms=None, toolchains=toolchains, source_digests={"lib": "sha256:changed"},
                 source_epochs={}, workspace_root=ROOT)
    assert other.jobs["lib@linux/riscv64"].input_key({}) != riscv.input_key({})


def test_platform_filter() -> None:
    graph = make([recipe("lib")], platforms=[ARM64])
    assert list(graph.order) == ["lib@linux/arm64"]


def test_cycle_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match=r"dependency cycle: a -> b -> c -> a"):
        make([recipe("a", depends=("b",)), recipe("b", depends=("c",)), recipe("c", depends=("a",))])


def test_missing_dependency_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match=r"`depends` names `libgret`.*did you mean `libgreet`"):
        make([recipe("app", depends=("libgret",)), recipe("libgreet")])


def test_no_toolchain_names_the_fix() -> None:
    with pytest.raises(ConfigurationError) as info:
        make([recipe("svc", kind="rust")])
    text = str(info.value)
    assert "no toolchain can build `svc` (rust) for linux/riscv64" in text
    assert "rustup target add riscv64gc-unknown-linux-gnu" in text


def test_strategy_preference_is_respected() -> None:
    with pytest.raises(ConfigurationError, match="only as `cross`"):
        make([recipe("lib", strategies=("native",))])


def test_a_recipe_naming_toolchains_gets_only_those() -> None:
    """`toolchains = [...]`: the first candidate (gcc) is passed over for the one named, and the
    definition's name stays out of the key (its identity is in it)."""
    def two(kind: str, platform: Platform) -> list[ToolchainTarget]:
        return [ToolchainTarget(name=name, kind="c", platform=platform, strategy="cross", available=True,
                                identity=f"gcc {release} {platform.gnu_triplet}")
                for name, release in (("gcc", "12.2.0"), ("gcc-root", "14.2.0"))]

    def planned(pick: tuple[str, ...]):
        named = replace(recipe("lib"), toolchains=pick)
        return plan([named], platforms=[ARM64], toolchains=two, source_digests={"lib": "sha256:s"},
                    source_epochs={}, workspace_root=ROOT).jobs["lib@linux/arm64"]

    assert planned(()).toolchain.name == "gcc"
    job = planned(("gcc-root",))
    assert job.toolchain.name == "gcc-root" and job.material["toolchain"] == "gcc 14.2.0 aarch64-linux-gnu"
    with pytest.raises(ConfigurationError) as info:
        planned(("gcc-rot",))
    assert str(info.value) == (
        "/ws/recipes/lib.toml: `toolchains` names gcc-rot, which no toolchain definition of kind `c` "
        "is called (did you mean `gcc-root`?); there are gcc, gcc-root: fix the name or add the definition under toolchains/")


# -- dockerfile recipes: planned against a probed engine (a value: no engine needed here) ---------


def engine_info(version: str = "20.10.24", platform: Platform = AMD64, *, local: bool = True) -> EngineInfo:
    return EngineInfo(host="unix:///run/docker.sock", version=version, api_version="1.41", platform=platform,
                      local=local)


def dockerfile_recipe(name: str = "web", *, options: DockerfileOptions | None = None, **kwargs: object) -> Recipe:
    return Recipe(name=name, kind="dockerfile", file=ROOT / "recipes" / f"{name}.toml", source=Source(path=ROOT / name),
                  platforms=(RISCV64, ARM64), options=options or DockerfileOptions(), **kwargs)  # type: ignore[arg-type]


def make_docker(recipes: list[Recipe], engine: EngineInfo | None = None, **kwargs: object):
    digests = {r.name: f"sha256:{r.name}" for r in recipes}
    return plan(recipes, platforms=None, toolchains=toolchains, source_digests=digests, source_epochs={},  # type: ignore[arg-type]
                workspace_root=ROOT, engine=lambda: engine or engine_info(), **kwargs)  # type: ignore[arg-type]


def test_dockerfile_jobs_run_on_the_engine_after_their_dependencies() -> None:
    graph = make_docker([dockerfile_recipe(depends=("app",)), recipe("app")])
    web = graph.jobs["web@linux/riscv64"]
    assert web.deps == ("app@linux/riscv64",)
    assert web.strategy == "emulated"  # an amd64 engine builds riscv64 under qemu
    assert web.toolchain.identity_text == "docker 20.10.24 (linux/amd64)"
    native = make_docker([dockerfile_recipe()], engine_info(platform=ARM64))
    assert native.jobs["web@linux/arm64"].strategy == "native"


def test_dockerfile_key_covers_engine_build_args_and_dependency_outputs() -> None:
    base = make_docker([dockerfile_recipe(depends=("app",)), recipe("app")]).jobs["web@linux/riscv64"]
    deps = {"app@linux/riscv64": {"app": "sha256:1"}}
    key = base.input_key(deps)
    assert key != base.input_key({"app@linux/riscv64": {"app": "sha256:2"}})
    other_engine = make_docker([dockerfile_recipe(depends=("app",)), recipe("app")], engine_info("24.0.7"))
    assert other_engine.jobs["web@linux/riscv64"].input_key(deps) != key
    args = make_docker([dockerfile_recipe(depends=("app",), options=DockerfileOptions(build_args=(("X", "1"),))),
                       recipe("app")])
    assert args.jobs["web@linux/riscv64"].input_key(deps) != key
    # Where the engine is does not matter, only what it is.
    moved = EngineInfo(host="ssh://builder@edge-1", version="20.10.24", api_version="1.41", platform=AMD64, local=False)
    assert make_docker([dockerfile_recipe(depends=("app",)), recipe("app")], moved).jobs[
        "web@linux/riscv64"].input_key(deps) == key


def test_engine_is_probed_only_for_dockerfile_recipes() -> None:
    def refuse() -> EngineInfo:
        raise AssertionError("probed")

    digests = {"lib": "sha256:lib"}
    plan([recipe("lib")], platforms=None, toolchains=toolchains, source_digests=digests, source_epochs={},
         workspace_root=ROOT, engine=refuse)


def test_dockerfile_strategies_must_allow_the_engine() -> None:
    """(Mistakes in [dockerfile] options are refused when the recipe loads: test_recipes.py.)"""
    message = r"under qemu \(strategy `emulated`\), which its `strategies` \(native\)"
    with pytest.raises(ConfigurationError, match=message) as info:
        make_docker([dockerfile_recipe(strategies=("native",))])
    assert str(ROOT / "recipes" / "web.toml") in str(info.value)


def test_dockerfile_on_a_local_engine_needs_qemu_for_foreign_platforms() -> None:
    with pytest.raises(ConfigurationError, match=r"`qemu-riscv64-static` is not installed"):
        make_docker([dockerfile_recipe()], can_run=lambda p: p == AMD64)
    # A remote engine's binfmt is its own business: not checked from here.
    make_docker([dockerfile_recipe()], engine_info(local=False), can_run=lambda p: p == AMD64)


# -- dockerfile recipes on BuildKit: planned against probed buildkitds (values) ------------------


def daemon(native: Platform = AMD64, *others: Platform, version: str = "v0.13.2") -> BuildKitInfo:
    return BuildKitInfo(address=f"unix:///run/bk-{native.architecture}.sock", version=version, revision="r1",
                        platforms=(native, *others))


def test_dockerfile_jobs_go_to_buildkit_when_a_daemon_builds_the_platform() -> None:
    recipes = [dockerfile_recipe(depends=("app",)), recipe("app")]
    graph = make_docker(recipes, buildkit=lambda: [daemon(AMD64, ARM64), daemon(RISCV64)])
    riscv, arm = graph.jobs["web@linux/riscv64"], graph.jobs["web@linux/arm64"]
    assert (riscv.toolchain.name, riscv.strategy, riscv.identity) == ("buildkit", "native", "buildkit v0.13.2 r1")
    assert (arm.strategy, arm.toolchain.command) == ("emulated", "unix:///run/bk-amd64.sock")
    spec = riscv.spec("sha256:k", [BuildRecord(recipe="app", platform=RISCV64, status="built")])
    assert spec.produces == "oci-image" and spec.toolchain.name == "buildkit"
    assert spec.docker is not None and "TARGETPLATFORM" not in spec.docker.build_args  # the frontend's
    assert spec.docker.build_args["SOURCE_DATE_EPOCH"] == "0"
    # A daemon of another build keys differently; its address and arch do not (native = emulated).
    deps = {"app@linux/riscv64": {"app": "sha256:1"}}
    moved = make_docker(recipes, buildkit=lambda: [daemon(AMD64, RISCV64, ARM64)]).jobs["web@linux/riscv64"]
    assert moved.strategy == "emulated" and moved.input_key(deps) == riscv.input_key(deps)
    newer = make_docker(recipes, buildkit=lambda: [daemon(AMD64, RISCV64, ARM64, version="v0.14.0")])
    assert newer.jobs["web@linux/riscv64"].input_key(deps) != riscv.input_key(deps)


def test_toolchains_choose_the_dockerfile_builder() -> None:
    legacy = make_docker([dockerfile_recipe(toolchains=("docker",))], buildkit=lambda: [daemon(AMD64, RISCV64, ARM64)])
    job = legacy.jobs["web@linux/riscv64"]
    assert job.toolchain.name == "docker" and job.spec("sha256:k", []).produces == "docker-image"
    kit = make_docker([dockerfile_recipe()], buildkit=lambda: [daemon(AMD64, RISCV64, ARM64)]).jobs["web@linux/riscv64"]
    assert kit.input_key({}) != job.input_key({})  # switching builders changes the key
    # Without a daemon for the platform: the legacy builder, unless BuildKit is required.
    assert make_docker([dockerfile_recipe()], buildkit=lambda: [daemon(AMD64, ARM64)]).jobs[
        "web@linux/riscv64"].toolchain.name == "docker"
    with pytest.raises(ConfigurationError, match=r"web.toml: `web` for linux/riscv64 must be built by BuildKit.*"
                                                 r"no buildkitd is configured"):
        make_docker([dockerfile_recipe(toolchains=("buildkit",))], buildkit=lambda: [])
    with pytest.raises(ConfigurationError, match=r"ListWorkers lists unix:///run/bk-amd64.sock: linux/amd64"):
        make_docker([dockerfile_recipe(toolchains=("buildkit",))], buildkit=lambda: [daemon(AMD64)])
    with pytest.raises(ConfigurationError, match=r"only as emulated, which its `strategies` \(native\) exclude"):
        make_docker([dockerfile_recipe(toolchains=("buildkit",), strategies=("native",))],
                    buildkit=lambda: [daemon(AMD64, RISCV64, ARM64)])
    with pytest.raises(ConfigurationError, match=r"`toolchains` names `buildkt` \(did you mean `buildkit`\?\)"):
        make_docker([dockerfile_recipe(toolchains=("buildkt",))], buildkit=lambda: [])


def test_an_output_outside_the_job_is_refused_whatever_made_it() -> None:
    """Loading refuses such names; the planner holds every builder to it too (a Recipe built in
    code skips loading)."""
    escaping = Recipe(name="app", kind="c", file=ROOT / "recipes" / "app.toml", platforms=(RISCV64,),
                      source=Source(path=ROOT / "app"), options=COptions(sources=("main.c",), output="../../x"))
    with pytest.raises(ConfigurationError, match=r"app.toml: \[c\]: output `../../x` .* inside the job's directory"):
        make([escaping])
