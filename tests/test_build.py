"""End to end through the real CLI: real Go, cross GCC, Rust, qemu-user; the example catalog."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, build_summary, require, require_tool, run_cli
from crossyard.platforms import Platform
from crossyard.toolchains import roots_dir

pytestmark = [pytest.mark.integration]

EXPECT = {
    "hello-go": "hello from hello-go 0.1.0 on linux/{goarch}",
    "hello-c": "greetings, yard from hello-c on {uname_m}",
    "hello-rs": "hello from hello-rs 0.1.0 on linux/{uname_m}",
}
ARGS = {"hello-c": ["yard"]}


def statuses(summary: dict[str, Any]) -> dict[str, str]:
    return {job["id"]: job["status"] for job in summary["jobs"]}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for tool in ("go", "riscv64-linux-gnu-gcc", "aarch64-linux-gnu-gcc", "qemu-riscv64-static",
                 "qemu-aarch64-static", "bwrap"):
        require_tool(tool, "run .ci/install.d/00-apt.sh")
    require((roots_dir() / "rust-trixie" / "usr").is_dir(),
            "the rust-trixie root is missing: run `crossyard toolchains prepare rust-trixie`")
    ws = tmp_path_factory.mktemp("ws")
    # The example recipes only: the rest of the catalog has tests of its own (test_services).
    (ws / "recipes" / "services").mkdir(parents=True)
    (ws / "recipes" / "images").mkdir()
    for name in ("hello-go", "hello-c", "hello-rs", "libgreet"):
        shutil.copy(REPO / "recipes" / "services" / f"{name}.toml", ws / "recipes" / "services")
        shutil.copytree(REPO / "services" / name, ws / "services" / name)
    shutil.copy(REPO / "recipes" / "images" / "hello-go.toml", ws / "recipes" / "images")
    shutil.copy(REPO / "crossyard.toml", ws)
    return ws


@pytest.fixture(scope="module")
def first_build(workspace: Path) -> dict[str, Any]:
    return build_summary(workspace)


def store_file(ws: Path, digest: str, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copyfile(ws / ".crossyard" / "store" / "blobs" / "sha256" / digest.split(":")[1], target)
    target.chmod(0o755)
    return target


def test_builds_every_recipe_for_riscv64_and_arm64(first_build: dict[str, Any]) -> None:
    assert first_build["ok"]
    assert set(statuses(first_build)) == {
        f"{r}@linux/{a}" for r in ("hello-go", "hello-c", "hello-rs", "libgreet") for a in ("riscv64", "arm64")
    }
    assert first_build["counts"]["failed"] == 0
    rust = [j for j in first_build["jobs"] if j["recipe"] == "hello-rs"]
    assert all(j["strategy"] == "cross" for j in rust)


@pytest.mark.parametrize("recipe", ["hello-go", "hello-c", "hello-rs"])
@pytest.mark.parametrize("platform_name", ["linux/riscv64", "linux/arm64"])
def test_binaries_are_foreign_elf_and_run_under_qemu(
    workspace: Path, first_build: dict[str, Any], tmp_path: Path, recipe: str, platform_name: str
) -> None:
    platform = Platform.parse(platform_name)
    job = next(j for j in first_build["jobs"] if j["id"] == f"{recipe}@{platform_name}")
    binary = store_file(workspace, job["outputs"][recipe], tmp_path, recipe)
    header = binary.read_bytes()[:20]
    assert header[:4] == b"\x7fELF"
    assert struct.unpack("<H", header[18:20])[0] == platform.elf_machine
    described = subprocess.run(["file", "-b", str(binary)], capture_output=True, text=True).stdout
    assert {"linux/riscv64": "RISC-V", "linux/arm64": "ARM aarch64"}[platform_name] in described
    sysroot = f"/usr/{platform.gnu_triplet}"
    if recipe == "hello-rs":
        sysroot = str(roots_dir() / "rust-trixie" / "usr" / platform.gnu_triplet)
    run = subprocess.run([platform.qemu_binary, "-L", sysroot, str(binary), *ARGS.get(recipe, [])],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert EXPECT[recipe].format(goarch=platform.goarch, uname_m=platform.uname_m) in run.stdout


def test_second_build_rebuilds_nothing(workspace: Path, first_build: dict[str, Any]) -> None:
    again = build_summary(workspace)
    assert again["counts"] == {"built": 0, "cached": 8, "failed": 0, "skipped": 0}
    assert {j["id"]: j["outputs"] for j in again["jobs"]} == {j["id"]: j["outputs"] for j in first_build["jobs"]}


def test_changing_a_source_rebuilds_exactly_its_dependents(workspace: Path, first_build: dict[str, Any]) -> None:
    greet = workspace / "services" / "libgreet" / "greet.c"
    original = greet.read_text()
    # A comment: libgreet rebuilds, but to the same bytes, so hello-c (keyed on them) stays cached.
    greet.write_text("/* a comment */\n" + original)
    summary = build_summary(workspace)
    assert statuses(summary) == {**statuses(summary), "libgreet@linux/riscv64": "built", "libgreet@linux/arm64": "built"}
    assert summary["counts"] == {"built": 2, "cached": 6, "failed": 0, "skipped": 0}
    # A behaviour change: libgreet and hello-c (which links it) rebuild, nothing else.
    greet.write_text(original.replace("greetings, %s", "salutations, %s"))
    (workspace / "recipes" / "services" / "hello-c.toml").write_text(
        (workspace / "recipes" / "services" / "hello-c.toml").read_text().replace("greetings", "salutations")
    )
    summary = build_summary(workspace)
    built = sorted(j["id"] for j in summary["jobs"] if j["status"] == "built")
    assert built == ["hello-c@linux/arm64", "hello-c@linux/riscv64", "libgreet@linux/arm64", "libgreet@linux/riscv64"]
    assert summary["counts"]["cached"] == 4


def test_locked_build_names_drifted_artifacts(workspace: Path, first_build: dict[str, Any]) -> None:
    lock = workspace / "crossyard.lock"
    before = lock.read_text()
    main = workspace / "services" / "hello-go" / "main.go"
    original = main.read_text()
    main.write_text(original.replace('listening on', 'now listening on'))
    try:
        result = run_cli("-C", str(workspace), "build", "--locked", "hello-go")
        assert result.returncode == 1, result.stderr
        assert "hello-go@linux/riscv64" in result.stderr and "hello-go@linux/arm64" in result.stderr
        assert "differ from crossyard.lock" in result.stderr
        assert lock.read_text() == before  # --locked never rewrites the lock
    finally:
        main.write_text(original)
    result = run_cli("-C", str(workspace), "build", "--locked", "hello-go")
    assert result.returncode == 0, result.stderr


def test_plan_shows_cached_jobs(workspace: Path, first_build: dict[str, Any]) -> None:
    result = run_cli("-C", str(workspace), "plan", "--json")
    assert result.returncode == 0, result.stderr
    jobs = json.loads(result.stdout)["jobs"]
    assert len(jobs) == 8 and all(j["status"] == "cached" for j in jobs)
    assert {j["id"]: j["input_key"] for j in jobs} == {
        j["id"]: j["input_key"] for j in build_summary(workspace)["jobs"]
    }


def test_store_is_an_oci_layout_with_artifacts(workspace: Path, first_build: dict[str, Any]) -> None:
    result = run_cli("-C", str(workspace), "store", "ls", "--json")
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)["entries"]
    refs = {e["ref"] for e in entries}
    assert {"hello-go:linux-riscv64", "hello-rs:linux-arm64", "libgreet:linux-arm64"} <= refs
    layout = json.loads((workspace / ".crossyard" / "store" / "oci-layout").read_text())
    assert layout == {"imageLayoutVersion": "1.0.0"}


def test_toolchains_command(workspace: Path) -> None:
    result = run_cli("-C", str(workspace), "toolchains", "--json")
    assert result.returncode == 0, result.stderr
    rows = {(r["kind"], r["platform"]): r for r in json.loads(result.stdout)["toolchains"]}
    go = rows[("go", "linux/riscv64")]
    assert go["available"] and go["strategy"] == "cross" and "go1." in go["version"]
    assert rows[("c", "linux/arm64")]["toolchain"] == "gcc"
    rust = rows[("rust", "linux/riscv64")]
    assert rust["available"]
    rustup = [a for a in rust["alternatives"] if a["toolchain"] == "rust"]
    if rustup and not rustup[0]["available"]:
        assert rustup[0]["fix"].startswith("rustup target add riscv64gc-unknown-linux-gnu")


def test_init_scaffolds_a_workspace_that_builds(tmp_path: Path) -> None:
    require_tool("go", "apt-get install golang-go")
    ws = tmp_path / "new"
    assert run_cli("init", str(ws)).returncode == 0
    summary = build_summary(ws, "--platform", "riscv64")
    assert statuses(summary) == {"hello@linux/riscv64": "built"}
    assert ".crossyard/" in (ws / ".gitignore").read_text()
    assert {p.name for p in (ws / "certs").glob("*.toml")} >= {"ca.toml", "registry.toml"}
    issued = run_cli("-C", str(ws), "certs", "issue", "registry")  # the profiles work as shipped
    assert issued.returncode == 0, issued.stderr
    assert run_cli("init", str(ws)).returncode == 2  # never overwrites


def test_env_is_clean(tmp_path: Path) -> None:
    """A make recipe that records its build environment: nothing of ours leaks in."""
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "env.c").write_text(
        '#include <stdio.h>\n#include <stdlib.h>\nint main(void){printf("%s\\n", ENVTXT);return 0;}\n'
    )
    (ws / "recipes").mkdir()
    (ws / "src" / "Makefile").write_text(
        "env:\n\tenv | sort > env.txt\n\tumask > umask.txt\n\t$(CC) -o env -DENVTXT='\"ok\"' env.c\n"
    )
    (ws / "recipes" / "env.toml").write_text(
        'name = "env"\nkind = "c"\nplatforms = ["linux/arm64"]\nsource_date_epoch = 1234\n[source]\npath = "../src"\n'
        '[c]\nbuild = "make"\noutputs = ["env", "env.txt", "umask.txt"]\n'
    )
    summary = build_summary(ws, "--platform", "arm64")
    job = summary["jobs"][0]
    env_txt = (ws / ".crossyard" / "store" / "blobs" / "sha256" / job["outputs"]["env.txt"][7:]).read_text()
    env = dict(line.split("=", 1) for line in env_txt.splitlines() if "=" in line)
    assert env["SOURCE_DATE_EPOCH"] == "1234" and env["TZ"] == "UTC" and env["LC_ALL"] == "C.UTF-8"
    assert "PYTEST_CURRENT_TEST" not in env and "VIRTUAL_ENV" not in env
    assert env["HOME"].startswith(os.path.realpath(os.environ.get("TMPDIR", "/tmp")))
    umask = (ws / ".crossyard" / "store" / "blobs" / "sha256" / job["outputs"]["umask.txt"][7:]).read_text()
    assert umask.strip() == "0022"


def test_emulated_strategy_runs_a_riscv64_go_under_qemu(tmp_path: Path) -> None:
    """Strategy `emulated`: Debian trixie's riscv64 Go, run under qemu-user binfmt, builds a
    riscv64 binary (slow the first time: Go's runtime compiles under emulation)."""
    require((roots_dir() / "go-trixie-riscv64" / "usr").is_dir(),
            "the riscv64 Go root is missing: run `crossyard toolchains prepare go-emulated-riscv64`")
    ws = tmp_path / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "go.mod").write_text("module tiny\n\ngo 1.19\n")
    (ws / "src" / "main.go").write_text(
        'package main\n\nimport "os"\n\nfunc main() { os.Stdout.WriteString("tiny, emulated\\n") }\n'
    )
    (ws / "recipes").mkdir()
    (ws / "recipes" / "tiny.toml").write_text(
        'name = "tiny"\nkind = "go"\nplatforms = ["linux/riscv64"]\nstrategies = ["emulated"]\n'
        '[source]\npath = "../src"\n[test]\nrun = ["tiny"]\nexpect = "tiny, emulated"\n'
    )
    summary = build_summary(ws)
    job = summary["jobs"][0]
    assert (job["status"], job["strategy"]) == ("built", "emulated")
    assert job["toolchain"].startswith("go1.")  # the release only: not the riscv64 host it runs on
    binary = store_file(ws, job["outputs"]["tiny"], tmp_path, "tiny")
    assert struct.unpack("<H", binary.read_bytes()[18:20])[0] == 243
