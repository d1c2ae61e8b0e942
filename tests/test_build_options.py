"""The recipe options users reach for beyond the example catalog, each built for real for riscv64
and arm64 and proven by its smoke test under qemu-user: Go package + tags + ldflags + cgo + the
source's declared commit stamped in with `{commit}`, C via
cmake and via make with a dependency's static library, Rust with a workspace package + features."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from conftest import build_summary, require, require_tool
from crossyard.toolchains import roots_dir

pytestmark = [pytest.mark.integration]

PLATFORMS = ("linux/riscv64", "linux/arm64")


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())


def built(summary: dict[str, Any]) -> dict[str, str]:
    return {job["id"]: job["status"] for job in summary["jobs"]}


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "crossyard.toml").write_text('[build]\nplatforms = ["linux/riscv64", "linux/arm64"]\n')
    return tmp_path


def test_go_package_tags_ldflags_cgo_and_commit(ws: Path) -> None:
    for tool in ("go", "riscv64-linux-gnu-gcc", "aarch64-linux-gnu-gcc", "qemu-riscv64-static"):
        require_tool(tool, "run .ci/install.d/00-apt.sh")
    write(ws / "src", {
        "go.mod": "module opts\n\ngo 1.19\n",
        "cmd/opts/main.go": """
            package main

            /*
            static int twice(int x) { return 2 * x; }
            */
            import "C"

            import "fmt"

            var version, commit = "dev", "none"

            func main() {
                fmt.Printf("opts %s edition=%s cgo=%d commit=%s\\n", version, edition, int(C.twice(21)), commit)
            }
            """,
        "cmd/opts/plain.go": '//go:build !extra\n\npackage main\n\nconst edition = "plain"\n',
        "cmd/opts/extra.go": '//go:build extra\n\npackage main\n\nconst edition = "extra"\n',
    })
    write(ws / "recipes", {"opts.toml": """
        name = "opts"
        kind = "go"
        version = "1.2.3"
        [source]
        path = "../src"
        commit = "0123456789abcdef0123456789abcdef01234567"  # the upstream commit of this tree
        [go]
        package = "./cmd/opts"
        tags = ["extra"]
        ldflags = ["-X main.version={version}", "-X main.commit={commit}"]
        cgo = true
        [test]
        run = ["opts"]
        expect = "opts 1.2.3 edition=extra cgo=42 commit=0123456789abcdef0123456789abcdef01234567"
        """})
    summary = build_summary(ws)  # the smoke test runs each binary under qemu and checks that line
    assert built(summary) == {f"opts@{p}": "built" for p in PLATFORMS}


def test_c_cmake_and_make_with_a_static_dependency(ws: Path) -> None:
    for tool in ("cmake", "make", "riscv64-linux-gnu-gcc", "aarch64-linux-gnu-gcc", "qemu-riscv64-static"):
        require_tool(tool, "run .ci/install.d/00-apt.sh")
    write(ws / "cm", {
        "CMakeLists.txt": """
            cmake_minimum_required(VERSION 3.13)
            project(cm C)
            add_executable(cm main.c)
            target_compile_definitions(cm PRIVATE GREETING="$<IF:$<BOOL:${LOUD}>,LOUD,quiet>")
            target_link_options(cm PRIVATE -static)
            """,
        "main.c": '#include <stdio.h>\nint main(void){printf("cmake says %s\\n", GREETING);return 0;}\n',
    })
    write(ws / "lib", {"add.c": "int add(int a, int b) { return a + b; }\n", "add.h": "int add(int a, int b);\n"})
    write(ws / "mk", {
        "Makefile": "mk: main.c\n\t$(CC) $(CFLAGS) -static -o mk main.c $(LIBS)\n",
        "main.c": '#include <stdio.h>\n#include "add.h"\nint main(void){printf("make says %d\\n", add(40, 2));return 0;}\n',
    })
    write(ws / "recipes", {
        "cm.toml": """
            name = "cm"
            kind = "c"
            [source]
            path = "../cm"
            [c]
            build = "cmake"
            cmake_args = ["-DLOUD=ON"]
            outputs = ["cm"]
            [test]
            run = ["cm"]
            expect = "cmake says LOUD"
            """,
        "add.toml": """
            name = "add"
            kind = "c"
            [source]
            path = "../lib"
            [c]
            sources = ["add.c"]
            output = "libadd.a"
            headers = ["add.h"]
            """,
        "mk.toml": """
            name = "mk"
            kind = "c"
            depends = ["add"]
            [source]
            path = "../mk"
            [c]
            build = "make"
            make_args = ["LIBS={deps}/add/libadd.a"]
            outputs = ["mk"]
            [test]
            run = ["mk"]
            expect = "make says 42"
            """,
    })
    summary = build_summary(ws)
    assert built(summary) == {f"{name}@{p}": "built" for name in ("add", "cm", "mk") for p in PLATFORMS}


def test_rust_workspace_package_and_features(ws: Path) -> None:
    require_tool("bwrap", "apt-get install bubblewrap")
    require((roots_dir() / "rust-trixie" / "usr").is_dir(),
            "the rust-trixie root is missing: run `crossyard toolchains prepare rust-trixie`")
    write(ws / "src", {
        "Cargo.toml": '[workspace]\nmembers = ["app", "words"]\nresolver = "2"\n',
        "words/Cargo.toml": '[package]\nname = "words"\nversion = "0.1.0"\nedition = "2021"\n',
        "words/src/lib.rs": 'pub fn word() -> &\'static str { "yard" }\n',
        "app/Cargo.toml": """
            [package]
            name = "app"
            version = "0.3.0"
            edition = "2021"
            [dependencies]
            words = { path = "../words" }
            [features]
            loud = []
            [[bin]]
            name = "greeter"
            path = "src/main.rs"
            """,
        "app/src/main.rs": """
            fn main() {
                let word = words::word();
                if cfg!(feature = "loud") { println!("HELLO {}", word.to_uppercase()) } else { println!("hello {word}") }
            }
            """,
    })
    write(ws / "recipes", {"greeter.toml": """
        name = "greeter"
        kind = "rust"
        [source]
        path = "../src"
        [rust]
        package = "app"
        bin = "greeter"
        features = ["loud"]
        [test]
        run = ["greeter"]
        expect = "HELLO YARD"
        """})
    summary = build_summary(ws)
    assert built(summary) == {f"greeter@{p}": "built" for p in PLATFORMS}
    assert all(set(job["outputs"]) == {"greeter"} for job in summary["jobs"])
