"""zig, the optional C toolchain, for real: `zig cc` cross-compiles for riscv64 and arm64 with no
cross GCC at all (the workspace hides it), dynamic binaries against glibc, static ones against
musl, libraries through `zig ar`, make driving zig; smoke tests under qemu-user; and the outputs
do not depend on where the workspace is."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import build_summary, require_tool

pytestmark = [pytest.mark.integration]

PLATFORMS = ("linux/riscv64", "linux/arm64")
MAIN = '#include <stdio.h>\n#include "add.h"\nint main(void){printf("%s %d\\n", KIND, add(40, 2));return 0;}\n'


def recipe(name: str, body: str) -> str:
    return f'name = "{name}"\nkind = "c"\nplatforms = ["linux/riscv64", "linux/arm64"]\n{body}'


def make_workspace(root: Path) -> Path:
    (root / "toolchains").mkdir(parents=True)
    # gcc that cannot exist: the planner has to pick zig for every C job
    (root / "toolchains" / "gcc.toml").write_text(
        '[gcc]\nkind = "c"\ncommand = "{gnu_triplet}-gcc-absent"\nnative_command = "gcc-absent"\n'
        'install = "(hidden by this test)"\n'
    )
    src = root / "src"
    src.mkdir()
    (src / "add.c").write_text("int add(int a, int b) { return a + b; }\n")
    (src / "add.h").write_text("int add(int a, int b);\n")
    (src / "main.c").write_text(MAIN)
    (src / "Makefile").write_text('zmake: main.c\n\t$(CC) $(CFLAGS) -DKIND=\'"make"\' -o zmake main.c $(LIBS)\n')
    (root / "recipes").mkdir()
    (root / "recipes" / "zadd.toml").write_text(recipe(
        "zadd", '[source]\npath = "../src"\n[c]\nsources = ["add.c"]\noutput = "libzadd.a"\nheaders = ["add.h"]\n'))
    for name, kind, extra in (("zdyn", "dynamic", ""), ("zstatic", "static", "static = true\n")):
        (root / "recipes" / f"{name}.toml").write_text(recipe(
            name, 'depends = ["zadd"]\n[source]\npath = "../src"\n'
                  f'[c]\nsources = ["main.c"]\ncflags = ["-O2", "-DKIND=\\"{kind}\\""]\n{extra}'
                  f'[test]\nrun = ["{name}"]\nexpect = "{kind} 42"\n'))
    (root / "recipes" / "zmake.toml").write_text(recipe(
        "zmake", 'depends = ["zadd"]\n[source]\npath = "../src"\n'
                 '[c]\nbuild = "make"\nmake_args = ["LIBS={deps}/zadd/libzadd.a"]\noutputs = ["zmake"]\n'
                 '[test]\nrun = ["zmake"]\nexpect = "make 42"\n'))
    return root


def test_zig_cross_builds_without_a_cross_gcc(tmp_path: Path) -> None:
    require_tool("zig", "run .ci/install.d/55-zig.sh (pip install ziglang, linked onto PATH)")
    require_tool("qemu-riscv64-static", "apt-get install qemu-user-static")
    ws = make_workspace(tmp_path / "one")
    summary = build_summary(ws)  # every binary's smoke test ran under qemu and printed its line
    jobs = {job["id"]: job for job in summary["jobs"]}
    assert set(jobs) == {f"{n}@{p}" for n in ("zadd", "zdyn", "zstatic", "zmake") for p in PLATFORMS}
    assert all(job["status"] == "built" and job["toolchain"].startswith("zig ") for job in jobs.values())

    store = ws / ".crossyard" / "store" / "blobs" / "sha256"
    static = (store / jobs["zstatic@linux/riscv64"]["outputs"]["zstatic"][7:]).read_bytes()
    dynamic = (store / jobs["zdyn@linux/riscv64"]["outputs"]["zdyn"][7:]).read_bytes()
    assert b"/lib/ld-linux-riscv64" in dynamic and b"/lib/ld-linux" not in static  # musl, no interpreter

    # The same workspace elsewhere builds the same bytes (the job directory is mapped away).
    other = shutil.copytree(ws, tmp_path / "elsewhere" / "two", ignore=shutil.ignore_patterns(".crossyard"))
    again = {job["id"]: job["outputs"] for job in build_summary(other)["jobs"]}
    assert again == {job_id: job["outputs"] for job_id, job in jobs.items()}


def test_zig_refuses_cmake_before_building(tmp_path: Path) -> None:
    require_tool("zig", "run .ci/install.d/55-zig.sh (pip install ziglang, linked onto PATH)")
    ws = make_workspace(tmp_path)
    (ws / "recipes" / "zmake.toml").write_text(recipe(
        "zmake", '[source]\npath = "../src"\n[c]\nbuild = "cmake"\n'))
    from conftest import run_cli

    result = run_cli("-C", str(ws), "build")
    assert result.returncode == 2, result.stderr
    assert "zmake.toml: [c]: build = \"cmake\" needs a gcc-style compiler" in result.stderr
