"""A portable input key, for real: one Go recipe, one Go release (Debian trixie's golang-1.24),
built two ways — cross-compiled by the amd64 Go of the `go-trixie` root on this host, and by the
riscv64 Go of the `go-trixie-riscv64` root running under qemu-user — has one input key before
anything is built and one output digest after both builds ran. The same for a Rust recipe and
trixie's rustc: `rust-trixie` cross-compiling, `rust-emulated-riscv64` natively under qemu."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import (
    REPO,
    build_summary,
    require_emulated_roots,
    run_cli,
)
from crossyard.platforms import RISCV64

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAIN = """package main

import (
\t"fmt"
\t"os"
\t"runtime"
\t"sort"
\t"strings"
)

func main() {
\twords := strings.Fields("riscv64 amd64 arm64 one key one output")
\tsort.Strings(words)
\tfmt.Fprintf(os.Stdout, "%s on %s/%s\\n", strings.Join(words, ","), runtime.GOOS, runtime.GOARCH)
}
"""
EXPECT = "amd64,arm64,key,one,one,output,riscv64 on linux/riscv64"


def workspace(root: Path, strategy: str) -> Path:
    """The same source and recipe, differing only in the strategy the recipe allows."""
    (root / "src").mkdir(parents=True)
    (root / "src" / "go.mod").write_text("module tiny\n\ngo 1.19\n")
    (root / "src" / "main.go").write_text(MAIN)
    (root / "recipes").mkdir()
    (root / "recipes" / "tiny.toml").write_text(
        f'name = "tiny"\nkind = "go"\nversion = "1.0.0"\nplatforms = ["linux/riscv64"]\nstrategies = ["{strategy}"]\n'
        'source_date_epoch = 1767225600\n[source]\npath = "../src"\n'
        f'[test]\nrun = ["tiny"]\nexpect = "{EXPECT}"\n'
    )
    if strategy == "cross":
        # The host's golang-go (an older release) would be chosen for `cross` first: hide it, so
        # the built-in go-trixie, the release the riscv64 root has, is.
        (root / "toolchains").mkdir()
        (root / "toolchains" / "go.toml").write_text('[go]\nkind = "go"\ncommand = "go-hidden-by-this-test"\n')
    return root


def planned(ws: Path) -> dict[str, Any]:
    result = run_cli("-C", str(ws), "plan", "--json")
    assert result.returncode == 0, result.stderr
    (job,) = json.loads(result.stdout)["jobs"]
    return dict(job)


def same_key_and_output(cross_ws: Path, emulated_ws: Path, *, toolchain: str, output: str) -> None:
    """Planned cross and emulated with one toolchain identity (starting `toolchain`) and one
    key; built, each in its own store, the same `output` bytes."""
    plans = planned(cross_ws), planned(emulated_ws)
    assert [p["strategy"] for p in plans] == ["cross", "emulated"]
    assert plans[0]["toolchain"] == plans[1]["toolchain"]
    assert plans[0]["toolchain"].startswith(toolchain)
    assert plans[0]["input_key"] == plans[1]["input_key"]
    jobs = []
    for ws in (cross_ws, emulated_ws):  # each its own store: both really build
        started = time.monotonic()
        (job,) = build_summary(ws)["jobs"]
        print(f"{job['strategy']}: {job['status']} in {time.monotonic() - started:.1f}s "
              f"(job {job['seconds']:.1f}s), key {job['input_key']}, {output} {job['outputs'][output]}")
        jobs.append(job)
    assert [(j["status"], j["strategy"]) for j in jobs] == [("built", "cross"), ("built", "emulated")]
    assert jobs[0]["input_key"] == jobs[1]["input_key"] == plans[0]["input_key"]
    assert jobs[0]["toolchain"] == jobs[1]["toolchain"] == plans[0]["toolchain"]
    assert jobs[0]["outputs"] == jobs[1]["outputs"]  # byte for byte, and each ran its smoke test


def test_cross_and_emulated_builds_of_one_go_release_share_the_key_and_the_output(tmp_path: Path) -> None:
    require_emulated_roots(("go-trixie-amd64", "go-trixie-riscv64"), RISCV64,
                           prepare=".ci/install.d/61-go-roots.sh")
    cross_ws, emulated_ws = workspace(tmp_path / "cross", "cross"), workspace(tmp_path / "emulated", "emulated")

    same_key_and_output(cross_ws, emulated_ws, toolchain="go1.24.", output="tiny")


def rust_workspace(root: Path, strategy: str, arch: str = "riscv64") -> Path:
    """The example hello-rs service (std only, no crates.io), allowed one strategy."""
    shutil.copytree(REPO / "services" / "hello-rs", root / "src", ignore=shutil.ignore_patterns("target"))
    (root / "recipes").mkdir()
    (root / "recipes" / "hello-rs.toml").write_text(
        f'name = "hello-rs"\nkind = "rust"\nversion = "0.1.0"\nplatforms = ["linux/{arch}"]\n'
        f'strategies = ["{strategy}"]\nsource_date_epoch = 1767225600\n[source]\npath = "../src"\n'
        f'[rust]\nbin = "hello-rs"\n[test]\nrun = ["hello-rs"]\n'
        f'expect = "hello from hello-rs 0.1.0 on linux/{"aarch64" if arch == "arm64" else arch}"\n'
    )
    return root


def test_cross_and_emulated_builds_of_one_rust_release_share_the_key_and_the_output(tmp_path: Path) -> None:
    """Without the cross glibc package in the riscv64 root (LIBRARY_PATH, toolchains/rust.toml)
    the emulated binary lacks the cross Scrt1.o's `.note.package` and differs."""
    require_emulated_roots(("rust-trixie", "rust-trixie-riscv64"), RISCV64,
                           prepare=".ci/install.d/60-rust-root.sh")
    cross_ws = rust_workspace(tmp_path / "cross", "cross")
    emulated_ws = rust_workspace(tmp_path / "emulated", "emulated")

    same_key_and_output(cross_ws, emulated_ws, toolchain="rustc 1.", output="hello-rs")
