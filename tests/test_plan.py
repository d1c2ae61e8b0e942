"""The planner is pure: these tests hand it probed-toolchain values directly."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossyard.errors import ConfigurationError
from crossyard.plan import plan
from crossyard.platforms import ARM64, RISCV64, Platform
from crossyard.recipes import Recipe, Source
from crossyard.toolchains import ToolchainTarget

ROOT = Path("/ws")


def recipe(name: str, *, depends: tuple[str, ...] = (), kind: str = "c", platforms=(RISCV64, ARM64),
           strategies=("cross", "native", "emulated")) -> Recipe:
    return Recipe(name=name, kind=kind, file=ROOT / "recipes" / f"{name}.toml", depends=depends,
                  platforms=platforms, strategies=strategies, source=Source(path=ROOT / name))


def toolchains(kind: str, platform: Platform) -> list[ToolchainTarget]:
    return [
        ToolchainTarget(name="gcc", kind="c", platform=platform, strategy="cross", available=kind == "c",
                        version="12.2", reason="" if kind == "c" else "missing", fix="apt-get install gcc"),
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
