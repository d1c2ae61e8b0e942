"""The toolchain identity: what a toolchain's version commands print, read into compiler, release
and target (`go1.24.4`, `gcc 12.2.0 riscv64-linux-gnu`, `rustc 1.85.1`), never the build host,
the strategy or the definition's name; and the input key, whose toolchain part it is.

The real-binary tests hold each identity against what the same compiler says by another route
(`go env GOVERSION`, `rustc -vV`'s `release:`, the last word of `gcc --version`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import REPO, binfmt_registered, require, require_tool, run_cli
from crossyard.errors import ConfigurationError
from crossyard.plan import plan
from crossyard.platforms import ARM64, RISCV64, Platform
from crossyard.recipes import Recipe, Source
from crossyard.toolchains import (
    ProbeCache,
    Prober,
    ToolchainTarget,
    in_root,
    load_definitions,
    normalize_identity,
    roots_dir,
)

HOST = Platform.host()


def probed(name: str, platform: Platform, directory: Path = REPO / "toolchains") -> ToolchainTarget:
    prober = Prober(load_definitions(directory), cache=ProbeCache(None))
    target = prober.probe(next(d for d in prober.definitions if d.name == name), platform)
    require(target.available, f"toolchain {name} for {platform}: {target.reason}; fix: {target.fix}")
    return target


def output(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def rust_release(argv_prefix: list[str]) -> str:
    """`release:` of `rustc -vV`: the same fact `rustc --version` gives, read another way."""
    verbose = output([*argv_prefix, "rustc", "-vV"])
    return next(line.split(": ", 1)[1] for line in verbose.splitlines() if line.startswith("release: "))


def root(name: str) -> Path:
    path = roots_dir() / name
    require((path / "usr").is_dir(), f"the {name} root is missing: run .ci/install.d/60-rust-root.sh or 61-go-roots.sh")
    return path


# -- each family, from the real binaries on this machine ------------------------------------------


@pytest.mark.integration
def test_go_identity_is_the_release_without_the_host() -> None:
    require_tool("go", "apt-get install golang-go")
    release = output(["go", "env", "GOVERSION"])
    for platform in (RISCV64, ARM64, HOST):
        target = probed("go", platform)
        assert target.identity == target.identity_text == release
        assert target.version == f"go version {release} {HOST.os}/{HOST.goarch}"  # what was read


@pytest.mark.integration
@pytest.mark.parametrize("platform", [RISCV64, ARM64, HOST], ids=lambda p: p.architecture)
def test_gcc_identity_is_release_and_target(platform: Platform) -> None:
    target = probed("gcc", platform)
    compiler = target.command
    release = output([compiler, "--version"]).splitlines()[0].rsplit(" ", 1)[1]
    assert target.identity == f"gcc {release} {platform.gnu_triplet}"
    assert target.strategy == ("native" if platform == HOST else "cross")


@pytest.mark.integration
def test_rustc_identity_from_the_trixie_root() -> None:
    trixie = root("rust-trixie")
    for platform in (RISCV64, ARM64):
        target = probed("rust-trixie", platform)
        assert target.identity == f"rustc {rust_release(in_root(trixie, []))}"
        assert "(" not in target.identity  # a release's commit and date are not part of it


# rustup on the host is optional (.ci/setup builds Rust in the trixie root): where a developer
# has it, its identity is read the same way. Not `require_tool`: CI has no rustup by design.
@pytest.mark.skipif(shutil.which("rustc") is None, reason="no host rustc (rustup is optional)")
def test_rustc_identity_from_rustup() -> None:
    assert probed("rust", HOST).identity == f"rustc {rust_release([])}"


@pytest.mark.integration
def test_zig_and_qemu_identities() -> None:
    require_tool("zig", "run .ci/install.d/55-zig.sh")
    assert probed("zig", RISCV64).identity == f"zig {output(['zig', 'version'])}"
    require_tool(RISCV64.qemu_binary, "apt-get install qemu-user-static")
    words = output([RISCV64.qemu_binary, "--version"]).split()
    assert probed("qemu-user", RISCV64).identity == f"qemu {words[words.index('version') + 1]}"


@pytest.mark.integration
def test_amd64_and_emulated_riscv64_trixie_go_are_one_identity() -> None:
    """Two builds of Debian's golang-1.24 — one run on this host, one a riscv64 binary under
    qemu — print different `go version` lines (the host is in them) and have one identity."""
    amd64, riscv64 = root("go-trixie-amd64"), root("go-trixie-riscv64")
    require(binfmt_registered("riscv64"), "binfmt has no qemu-riscv64 entry: run .ci/install.d/10-binfmt.sh")
    cross = probed("go-trixie", RISCV64)
    emulated = probed("go-emulated-riscv64", RISCV64)
    assert (cross.strategy, emulated.strategy) == ("cross", "emulated")
    assert cross.version.endswith(" linux/amd64") and emulated.version.endswith(" linux/riscv64")
    assert cross.identity == emulated.identity == output(in_root(amd64, ["go", "env", "GOVERSION"]))
    assert output(in_root(riscv64, ["go", "env", "GOVERSION"])) == emulated.identity


@pytest.mark.integration
def test_the_catalog_still_builds_go_with_the_host_go(tmp_path: Path) -> None:
    """go-trixie is there for whoever asks for it: the default choice stays the host's golang-go."""
    require_tool("go", "apt-get install golang-go")
    for name in ("recipes", "services", "toolchains"):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(REPO / "crossyard.toml", tmp_path)
    result = run_cli("-C", str(tmp_path), "plan", "hello-go", "--json")
    assert result.returncode == 0, result.stderr
    jobs = json.loads(result.stdout)["jobs"]
    assert {(j["platform"], j["strategy"], j["toolchain"]) for j in jobs} == {
        (p, "cross", output(["go", "env", "GOVERSION"])) for p in ("linux/riscv64", "linux/arm64")
    }


# -- what the readers accept and refuse ------------------------------------------------------------


@pytest.mark.parametrize(("family", "lines", "identity"), [
    ("go", ["go version go1.24.4 linux/amd64"], "go1.24.4"),
    ("go", ["go version go1.24.4 linux/riscv64"], "go1.24.4"),
    ("go", ["go version go1.21.0 X:loopvar darwin/arm64"], "go1.21.0 X:loopvar"),  # changes code
    ("go", ["go version devel go1.25-0a1b2c3 Tue Jun 3 10:00:00 2025 +0000 linux/amd64"],
     "devel go1.25-0a1b2c3 Tue Jun 3 10:00:00 2025 +0000"),
    ("go", ["go1.24.4"], "go1.24.4"),
    ("gcc", ["12.2.0", "riscv64-linux-gnu"], "gcc 12.2.0 riscv64-linux-gnu"),
    ("gcc", ["14.2.1", "x86_64-pc-linux-gnu"], "gcc 14.2.1 x86_64-pc-linux-gnu"),
    ("rustc", ["rustc 1.85.1 (4eb161250 2025-03-15) (built from a source tarball)",
               "cargo 1.85.1 (d73d2caf9 2024-12-31)"], "rustc 1.85.1"),
    ("rustc", ["rustc 1.63.0", "cargo 0.66.0"], "rustc 1.63.0 cargo 0.66.0"),
    ("rustc", ["rustc 1.88.0-nightly (0a1b2c3d4 2025-04-01)", "cargo 1.88.0-nightly (5e6f7a8b9 2025-03-30)"],
     "rustc 1.88.0-nightly (0a1b2c3d4 2025-04-01)"),  # nightlies share a number, not a compiler
    ("zig", ["0.14.0"], "zig 0.14.0"),
    ("zig", ["0.15.0-dev.123+0a1b2c3d4"], "zig 0.15.0-dev.123+0a1b2c3d4"),
    ("qemu", ["qemu-riscv64 version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"], "qemu 7.2.22"),
])
def test_version_output_reads_into_an_identity(family: str, lines: list[str], identity: str) -> None:
    assert normalize_identity(family, lines) == identity


@pytest.mark.parametrize(("family", "lines"), [
    ("go", ["/usr/lib/go-1.19"]),
    ("gcc", ["riscv64-linux-gnu-gcc (Debian 12.2.0-13) 12.2.0"]),  # `--version`: no target
    ("gcc", ["12.2.0", "the machine"]),
    ("rustc", ["cargo 1.85.1 (d73d2caf9 2024-12-31)"]),
    ("zig", ["unknown"]),
])
def test_output_of_another_kind_is_refused_saying_what_was_expected(family: str, lines: list[str]) -> None:
    with pytest.raises(ValueError, match="expected `"):
        normalize_identity(family, lines)


@pytest.mark.integration
def test_a_toolchain_whose_output_cannot_be_read_is_unusable_naming_its_file(tmp_path: Path) -> None:
    """`--version` under the gcc family: the C job has no toolchain, exit 2 names the definition."""
    require_tool(f"{RISCV64.gnu_triplet}-gcc", "apt-get install gcc-riscv64-linux-gnu")
    (tmp_path / "toolchains").mkdir()
    definitions = tmp_path / "toolchains" / "gcc.toml"
    definitions.write_text('[gcc]\nkind = "c"\ncommand = "{gnu_triplet}-gcc"\nversion = ["{command}", "--version"]\n'
                           '[zig]\nkind = "c"\ncommand = "zig-hidden-by-this-test"\nfamily = "zig"\n')
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "c.toml").write_text(
        'name = "c"\nkind = "c"\nplatforms = ["linux/riscv64"]\n[source]\npath = "../src"\n[c]\nsources = ["main.c"]\n')
    result = run_cli("-C", str(tmp_path), "plan", "--json")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (f"gcc (cross): {definitions}: [gcc] `version` printed 'riscv64-linux-gnu-gcc (Debian"
            in result.stderr), result.stderr
    assert "not gcc output (expected `{command} -dumpfullversion` then" in result.stderr
    assert f"fix: correct `version` or `family` of [gcc] in {definitions}" in result.stderr


@pytest.mark.parametrize(("table", "message"), [
    ('kind = "c"\ncommand = "clang"\nfamily = "clangg"\n', "`family` 'clangg'; set `family` to how"),
    ('kind = "c"\ncommand = "cc"\nfamily = "gc"\n', "`family` 'gc' (did you mean `gcc`?)"),
    ('kind = "c"\ncommand = "cc"\nfamily = ["gcc"]\n', "`family` ['gcc']"),
    ('kind = "fortran"\ncommand = "gfortran"\n', "kind `fortran` has no default `family`"),
])
def test_a_family_crossyard_cannot_read_is_a_configuration_error(tmp_path: Path, table: str, message: str) -> None:
    (tmp_path / "cc.toml").write_text(f"[cc]\n{table}")
    with pytest.raises(ConfigurationError) as info:
        load_definitions(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'cc.toml'}: toolchain [cc]: {message}")
    assert str(info.value).endswith("reads: go, gcc, rustc, zig, qemu")


def test_without_version_a_definition_runs_what_its_family_reads(tmp_path: Path) -> None:
    (tmp_path / "cc.toml").write_text('[cc]\nkind = "c"\ncommand = "{gnu_triplet}-gcc"\n')
    (definition,) = [d for d in load_definitions(tmp_path) if d.name == "cc"]
    assert definition.version == (("{command}", "-dumpfullversion"), ("{command}", "-dumpmachine"))


# -- the input key: the identity, not the strategy, host, name or root ------------------------------


def go_recipe(strategies: tuple[str, ...]) -> Recipe:
    return Recipe(name="tiny", kind="go", file=Path("/ws/recipes/tiny.toml"), platforms=(RISCV64,),
                  strategies=strategies, source=Source(path=Path("/ws/src")), source_date_epoch=1)


def key(recipe: Recipe, toolchain: ToolchainTarget) -> str:
    graph = plan([recipe], platforms=None, toolchains=lambda _kind, _platform: [toolchain],
                 source_digests={"tiny": "sha256:src"}, source_epochs={}, workspace_root=Path("/ws"))
    job = graph.jobs["tiny@linux/riscv64"]
    assert job.toolchain is toolchain and job.material["toolchain"] == toolchain.identity
    return job.input_key({})


def test_the_key_is_the_same_whatever_the_strategy_host_or_definition() -> None:
    cross = ToolchainTarget(name="go-trixie", kind="go", platform=RISCV64, strategy="cross", available=True,
                            command="go", version="go version go1.24.4 linux/amd64", identity="go1.24.4",
                            root=Path("/roots/go-trixie-amd64"))
    emulated = replace(cross, name="go-emulated-riscv64", strategy="emulated", root=Path("/roots/go-trixie-riscv64"),
                       version="go version go1.24.4 linux/riscv64", sysroot="/roots/go-trixie-riscv64")
    native = replace(cross, name="go", strategy="native", root=None, command="/usr/lib/go-1.24/bin/go",
                     version="go version go1.24.4 linux/riscv64")
    keys = {key(go_recipe((target.strategy,)), target) for target in (cross, emulated, native)}
    assert len(keys) == 1
    assert key(go_recipe(("cross", "emulated")), cross) in keys
    # Another release is another key.
    assert key(go_recipe(("cross",)), replace(cross, identity="go1.24.5")) not in keys


def test_an_available_toolchain_without_an_identity_cannot_exist() -> None:
    with pytest.raises(ValueError, match="available without an identity"):
        ToolchainTarget(name="go", kind="go", platform=RISCV64, strategy="cross", available=True, command="go")
