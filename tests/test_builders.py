"""Builders turn typed options into argv and env; pure, so these tests call them directly."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossyard.build_options import GoOptions
from crossyard.builders import BuildInput, builder_for, script_for
from crossyard.builders.dockerfile import DockerfileBuilder
from crossyard.jobspec import JobPaths
from crossyard.platforms import AMD64, RISCV64
from crossyard.recipes import Recipe, load_recipe
from crossyard.toolchains import ToolchainTarget

PATHS = JobPaths(root="/job", src="/job/src", out="/job/out", deps="/job/deps", cache="/job/cache", home="/job/home")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def script_of(recipe: Recipe, command: str = "/usr/bin/tool") -> tuple[tuple[str, ...], dict[str, str]]:
    """The (only) step's argv and env of `recipe` for riscv64."""
    toolchain = ToolchainTarget(name="t", kind=recipe.kind, platform=RISCV64, strategy="cross", available=True,
                                command=command, identity="t 1.0")
    script = builder_for(recipe.kind).script(BuildInput(
        name=recipe.name, version=recipe.version, platform=RISCV64, options=recipe.options_for(RISCV64),
        toolchain=toolchain, paths=PATHS, source_date_epoch=1767225600, commit=recipe.commit,
    ))
    return script.steps[0].argv, dict(script.steps[0].env)


def load(tmp_path: Path, text: str) -> Recipe:
    (tmp_path / "r.toml").write_text(text)
    return load_recipe(tmp_path / "r.toml")


def test_go_stamps_the_git_commit(tmp_path: Path) -> None:
    recipe = load(tmp_path, f'name = "kube"\nkind = "go"\nversion = "1.31.0"\n'
                  f'[source]\ngit = "https://example.com/k.git"\ncommit = "{COMMIT}"\n'
                  '[go]\nldflags = ["-X v.gitCommit={commit}", "-X v.gitVersion=v{version}", "-s"]\n'
                  'tags = ["netgo", "osusergo"]\nenv = { STAMP = "{name}@{platform}" }\n')
    argv, env = script_of(recipe)
    assert f"-ldflags=-buildid= -X v.gitCommit={COMMIT} -X v.gitVersion=v1.31.0 -s" in argv
    assert "-tags=netgo,osusergo" in argv
    assert env["STAMP"] == "kube@linux/riscv64" and env["CGO_ENABLED"] == "0"


def test_a_tarball_declares_its_upstream_commit(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    recipe = load(tmp_path, f'name = "kube"\nkind = "go"\n[source]\npath = "src"\ncommit = "{COMMIT}"\n'
                  '[go]\nldflags = ["-X v.gitCommit={commit}"]\n')
    argv, _ = script_of(recipe)
    assert f"-ldflags=-buildid= -X v.gitCommit={COMMIT}" in argv


def test_literal_braces_and_job_directories(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    recipe = load(tmp_path, 'name = "mk"\nkind = "c"\n[source]\npath = "src"\n[c]\nbuild = "make"\n'
                  'make_args = ["LIBS={deps}/add/libadd.a", "JSON={{\\"a\\": 1}}", "ARCH={architecture}"]\n'
                  'cflags = ["-DTRIPLET=\\"{gnu_triplet}\\""]\n')
    argv, _ = script_of(recipe, "riscv64-linux-gnu-gcc")
    assert argv[-3:] == ("LIBS=/job/deps/add/libadd.a", 'JSON={"a": 1}', "ARCH=riscv64")
    assert argv[4] == 'CFLAGS=-ffile-prefix-map=/job=/build -DTRIPLET="riscv64-linux-gnu"'


def test_rust_env_is_templated(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    recipe = load(tmp_path, 'name = "rs"\nkind = "rust"\nversion = "2.0"\n[source]\npath = "src"\n'
                  '[rust]\nenv = { APP_VERSION = "{version}", OUT = "{out}" }\n')
    _, env = script_of(recipe, "cargo")
    assert (env["APP_VERSION"], env["OUT"]) == ("2.0", "/job/out")


@pytest.mark.parametrize(("table", "static"), [("", False), ("static = true\n", True), ("static = false\n", False)])
def test_rust_static_links_glibc_in_and_keeps_the_path_remapping(tmp_path: Path, table: str, static: bool) -> None:
    (tmp_path / "src").mkdir()
    recipe = load(tmp_path, f'name = "rs"\nkind = "rust"\n[source]\npath = "src"\n[rust]\n{table}')
    _, env = script_of(recipe, "cargo")
    flags = env["RUSTFLAGS"].split()
    assert ("-Ctarget-feature=+crt-static" in flags) is static
    assert "--remap-path-prefix=/job/src=/build/rs" in flags  # cargo reads only one RUSTFLAGS


def test_dockerfile_build_args_are_templated(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    recipe = load(tmp_path, f'name = "web"\nkind = "dockerfile"\nversion = "3.1"\n'
                  f'[source]\npath = "src"\ncommit = "{COMMIT}"\n'
                  '[dockerfile]\nbuild_args = { REV = "{commit}", V = "{version}-{goarch}", N = 2 }\n')
    build = DockerfileBuilder().build(name=recipe.name, version=recipe.version, commit=recipe.commit,
                                      options=recipe.options_for(RISCV64), platform=RISCV64, engine=AMD64,
                                      deps={}, source_date_epoch=0)
    assert (build.build_args["REV"], build.build_args["V"], build.build_args["N"]) == (COMMIT, "3.1-riscv64", "2")


def test_a_builder_refuses_another_kinds_options() -> None:
    toolchain = ToolchainTarget(name="t", kind="c", platform=RISCV64, strategy="cross", available=True, command="cc",
                                identity="gcc 12.2.0 riscv64-linux-gnu")
    job = BuildInput(name="x", version="1", platform=RISCV64, options=GoOptions(), toolchain=toolchain, paths=PATHS,
                     source_date_epoch=0)
    with pytest.raises(TypeError, match="COptions expected, got GoOptions"):
        builder_for("c").script(job)


GOPATH_RECIPE = """\
name = "kubectl"
kind = "go"
[source]
path = "src"
[[generate]]
run = ["{toolchain}", "build", "-o", "{root}/bin/gen", "./vendor/k8s.io/gen"]
env = { GOOS = "", GOARCH = "" }
[[generate]]
run = ["{root}/bin/gen", "--out", "{src}/zz_{goarch}.go"]
dir = "pkg/generated"
[go]
gopath = true
import_path = "k8s.io/kubernetes"
package = "./cmd/kubectl"
"""


def test_gopath_mode_places_the_tree_then_generates_then_builds(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    recipe = load(tmp_path, GOPATH_RECIPE)
    toolchain = ToolchainTarget(name="go-k8s", kind="go", platform=RISCV64, strategy="cross", available=True,
                                command="go", identity="go1.24.4", gopath="/usr/share/gocode",
                                gopath_digest="sha256:" + "1" * 64)
    script = script_for("go", BuildInput(
        name=recipe.name, version=recipe.version, platform=RISCV64, options=recipe.options_for(RISCV64),
        toolchain=toolchain, paths=PATHS, source_date_epoch=1767225600, generate=recipe.generate,
    ))
    place = "/job/gopath/src/k8s.io/kubernetes"
    assert [(s.argv, s.cwd) for s in script.steps] == [
        (("mkdir", "-p", "/job/gopath/src/k8s.io"), "/job"),
        (("mv", "/job/src", place), "/job"),
        (("ln", "-s", place, "/job/src"), "/job"),
        (("go", "build", "-o", "/job/bin/gen", "./vendor/k8s.io/gen"), place),
        (("/job/bin/gen", "--out", "/job/src/zz_riscv64.go"), f"{place}/pkg/generated"),
        (("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-buildid=", "-o", "/job/out/kubectl",
          "./cmd/kubectl"), place),
    ]
    build, host_tool, runs_it = script.steps[5].env, script.steps[3].env, script.steps[4].env
    # GOPATH mode: the job's own GOPATH first, then the Go packages the toolchain's root provides
    assert build["GOPATH"] == "/job/gopath:/usr/share/gocode" and build["GO111MODULE"] == "off"
    assert "GOMODCACHE" not in build and "GOFLAGS" not in build
    assert (build["GOOS"], build["GOARCH"]) == ("linux", "riscv64")
    # the generator is built for the machine running the job: GOOS/GOARCH empty is Go's default
    assert (host_tool["GOOS"], host_tool["GOARCH"]) == ("", "") and host_tool["GOPATH"] == build["GOPATH"]
    assert runs_it == build


def test_gopath_dirs_place_each_project_of_the_tree_and_build_in_import_paths(tmp_path: Path) -> None:
    """Debian's docker.io tree holds buildkit/, engine/, cli/: each named one is moved to its
    import path in GOPATH (and linked back), the build runs in `import_path`'s."""
    (tmp_path / "src").mkdir()
    recipe = load(tmp_path, 'name = "buildkitd"\nkind = "go"\n[source]\npath = "src"\n[go]\ngopath = true\n'
                  'import_path = "github.com/moby/buildkit"\npackage = "./cmd/buildkitd"\n'
                  'gopath_dirs = { "github.com/moby/buildkit" = "buildkit", "github.com/docker/docker" = "engine" }\n')
    toolchain = ToolchainTarget(name="go-buildkit", kind="go", platform=RISCV64, strategy="cross", available=True,
                                command="go", identity="go1.24.4", gopath="/usr/share/gocode")
    script = script_for("go", BuildInput(
        name=recipe.name, version=recipe.version, platform=RISCV64, options=recipe.options_for(RISCV64),
        toolchain=toolchain, paths=PATHS, source_date_epoch=0,
    ))
    engine, buildkit = "/job/gopath/src/github.com/docker/docker", "/job/gopath/src/github.com/moby/buildkit"
    assert [(s.argv, s.cwd) for s in script.steps] == [
        (("mkdir", "-p", "/job/gopath/src/github.com/docker"), "/job"),
        (("mv", "/job/src/engine", engine), "/job"),
        (("ln", "-s", engine, "/job/src/engine"), "/job"),
        (("mkdir", "-p", "/job/gopath/src/github.com/moby"), "/job"),
        (("mv", "/job/src/buildkit", buildkit), "/job"),
        (("ln", "-s", buildkit, "/job/src/buildkit"), "/job"),
        (("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-buildid=", "-o", "/job/out/buildkitd",
          "./cmd/buildkitd"), buildkit),
    ]
    assert script.steps[-1].env["GOPATH"] == "/job/gopath:/usr/share/gocode"


def test_module_mode_without_generate_is_one_step(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    recipe = load(tmp_path, 'name = "x"\nkind = "go"\n[source]\npath = "src"\n')
    toolchain = ToolchainTarget(name="go", kind="go", platform=RISCV64, strategy="cross", available=True,
                                command="/usr/bin/go", identity="go1.19.8", gopath="/usr/share/gocode")
    script = script_for("go", BuildInput(name="x", version="1", platform=RISCV64, options=recipe.options_for(RISCV64),
                                         toolchain=toolchain, paths=PATHS, source_date_epoch=0))
    [step] = script.steps
    assert step.cwd == "/job/src" and step.env["GOPATH"] == "/job/home/go" and "GO111MODULE" not in step.env
