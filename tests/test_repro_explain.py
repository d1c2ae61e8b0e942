"""crossyard's own explanations of a reproducibility mismatch (crossyard.repro.explain).

Every pair of outputs here is made by the real tool that makes such outputs in a build: the
riscv64 cross gcc, go, GNU tar and gzip, crossyard's own image writer. Each test checks that the
cause named is the one the pair was made to have, and, where a fix exists, that applying the
fix really makes the pair identical.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
import tracemalloc
from pathlib import Path

import pytest

from conftest import require, require_tool
from crossyard.oci.image import ImageConfig, tag, write_image, write_index
from crossyard.oci.layer import LayerEntry, write_layer
from crossyard.oci.layout import OciLayout
from crossyard.platforms import RISCV64, Platform
from crossyard.repro.diffoscope import html_diff
from crossyard.repro.explain import (
    CAUSES,
    Explanation,
    Variant,
    explain,
    explain_trees,
    kind_of,
)
from crossyard.toolchains import in_root, roots_dir

CC = "riscv64-linux-gnu-gcc"
HELLO_C = '#include <stdio.h>\nint main(void) { puts("hello from " __FILE__); return 0; }\n'
STAMPED_C = (
    "#include <stdio.h>\n"
    'int main(void) { printf("built %s %s\\n", __DATE__, __TIME__); return 0; }\n'
)


def names(explanation: Explanation) -> list[str]:
    return [cause.name for cause in explanation.causes]


def cause(explanation: Explanation, name: str) -> str:
    """The evidence of cause `name` followed by its fix (one string to assert on)."""
    found = [c for c in explanation.causes if c.name == name]
    assert found, f"no {name} cause in {explanation}"
    return found[0].evidence + " || " + found[0].fix


def sh(script: str, cwd: Path, **env: str) -> None:
    subprocess.run(["sh", "-euc", script], cwd=cwd, check=True, env={**os.environ, **env})


def compile_c(source: str, directory: Path, *flags: str, env: dict[str, str] | None = None
              ) -> Path:
    """Compile `source` as hello.c in `directory` (the job's build directory) with the cross gcc."""
    require_tool(CC, "apt-get install gcc-riscv64-linux-gnu")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hello.c").write_text(source)
    subprocess.run([CC, "-g", "-O1", *flags, "hello.c", "-o", "hello"], cwd=directory,
                   check=True, env={**os.environ, **(env or {})})
    return directory / "hello"


# ELF -------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_c_built_in_two_directories_names_the_build_path_and_the_fix_works(tmp_path: Path):
    one, two = tmp_path / "build-one", tmp_path / "elsewhere" / "build-two"
    a, b = compile_c(HELLO_C, one), compile_c(HELLO_C, two)
    left = Variant(label="lock", build_dirs=(str(one),))
    right = Variant(label="build-path", build_dirs=(str(two),))

    found = explain(a, b, name="hello", left=left, right=right)

    assert found.kind == "elf"
    assert names(found) == ["build-path"]
    text = cause(found, "build-path")
    assert str(one) in text and str(two) in text
    assert "section .debug" in text  # where it was seen: DWARF's compilation directory
    assert f"-ffile-prefix-map={one}=." in found.causes[0].fix  # gcc made it: the C fix only
    assert "-trimpath" not in found.causes[0].fix
    assert found.summary.startswith("hello: a build path is embedded")
    assert any(d.startswith("section .debug") for d in found.details)

    # the fix it names, applied, makes the two builds identical
    fixed_a = compile_c(HELLO_C, tmp_path / "f1", f"-ffile-prefix-map={tmp_path / 'f1'}=.")
    fixed_b = compile_c(HELLO_C, tmp_path / "x" / "f2", f"-ffile-prefix-map={tmp_path / 'x/f2'}=.")
    again = explain(fixed_a, fixed_b, name="hello", left=left, right=right)
    assert again.causes == () and again.identical


@pytest.mark.integration
def test_a_path_the_build_passes_in_itself_is_named_with_a_fix_no_flag_gives(tmp_path: Path):
    """-DWHERE="$(CURDIR)" (as a Makefile might): the path is in .rodata, which
    -ffile-prefix-map does not reach, so the fix says to drop it, not only to add the flag."""
    source = '#include <stdio.h>\nint main(void) { puts(WHERE); return 0; }\n'
    outs = []
    for job in (tmp_path / "one", tmp_path / "two"):
        outs.append(compile_c(source, job, f"-ffile-prefix-map={job}=.", f'-DWHERE="{job}"'))

    found = explain(*outs, name="hello", left=Variant(label="a", build_dirs=(str(outs[0].parent),)),
                    right=Variant(label="b", build_dirs=(str(outs[1].parent),)))

    assert names(found) == ["build-path"]
    assert "in section .rodata of a's output" in found.causes[0].evidence
    assert "section .debug" not in found.causes[0].evidence  # the flag did its part
    assert "drop it or make it relative" in found.causes[0].fix


def date_macro(epoch: int) -> str:
    """`__DATE__` as gcc writes it for SOURCE_DATE_EPOCH (UTC, day padded with a space)."""
    moment = time.gmtime(epoch)
    return f"{time.strftime('%b', moment)} {moment.tm_mday:2d} {moment.tm_year}"


@pytest.mark.integration
def test_date_and_time_macros_are_named_a_timestamp_not_a_build_id(tmp_path: Path):
    first, second = 1_600_000_000, 1_700_000_000
    b = compile_c(STAMPED_C, tmp_path / "b", f"-ffile-prefix-map={tmp_path / 'b'}=.",
                  env={"SOURCE_DATE_EPOCH": str(second)})
    a = compile_c(STAMPED_C, tmp_path / "a", f"-ffile-prefix-map={tmp_path / 'a'}=.",
                  env={"SOURCE_DATE_EPOCH": str(first)})
    left = Variant(label="lock", source_date_epoch=first, build_dirs=(str(tmp_path / "a"),))
    right = Variant(label="later", source_date_epoch=second, build_dirs=(str(tmp_path / "b"),))

    found = explain(a, b, name="hello", left=left, right=right)

    assert names(found) == ["timestamp"]
    text = cause(found, "timestamp")
    assert repr(date_macro(first)) in text and "section .rodata" in text
    assert "a __DATE__ string, = lock's SOURCE_DATE_EPOCH" in text
    assert "SOURCE_DATE_EPOCH" in found.causes[0].fix and "__DATE__" in found.causes[0].fix
    # the GNU build id differs too, as a consequence, and says so
    assert any("GNU build id" in d for d in found.details)
    assert any("follows from" in d for d in found.details)


@pytest.mark.integration
def test_the_clock_stamped_in_by_date_under_another_tz_is_named_a_timestamp(tmp_path: Path):
    """A build running `date` (as a Makefile might) in UTC and in Tokyo at the same moment: the
    two times are attributed to each build's own clock, read in its own TZ."""
    source = '#include <stdio.h>\nint main(void) { puts("at " STAMP); return 0; }\n'
    outs = []
    for name, tz in (("utc", "UTC"), ("tokyo", "Asia/Tokyo")):
        job = tmp_path / name
        job.mkdir()
        (job / "hello.c").write_text(source)
        require_tool(CC, "apt-get install gcc-riscv64-linux-gnu")
        sh(f'{CC} -O1 -DSTAMP="\\"$(date +%Y-%m-%dT%H:%M:%S)\\"" hello.c -o hello', job, TZ=tz)
        outs.append(job / "hello")
    now = int(time.time())
    left = Variant(label="lock", epoch=now - 5, tz="UTC")
    right = Variant(label="tz", epoch=now - 5, tz="Asia/Tokyo")

    found = explain(outs[0], outs[1], name="hello", left=left, right=right)

    assert names(found) == ["timestamp"]
    text = cause(found, "timestamp")
    assert "an ISO 8601 date, = lock's build time) in section .rodata of lock's output" in text
    assert "tz's build time) in section .rodata of tz's output" in text
    assert "{build_date}" in found.causes[0].fix


@pytest.mark.integration
def test_a_random_gnu_build_id_alone_is_named_a_build_id(tmp_path: Path):
    flags = (f"-ffile-prefix-map={tmp_path}=.", "-Wl,--build-id=uuid")
    a = compile_c(HELLO_C, tmp_path / "x", *flags)
    a = a.rename(tmp_path / "hello-1")
    b = compile_c(HELLO_C, tmp_path / "x", *flags)

    found = explain(a, b, name="hello", left=Variant(label="one"), right=Variant(label="two"))

    assert names(found) == ["build-id"]
    assert "GNU build id" in found.causes[0].evidence
    assert "--build-id=uuid" in found.causes[0].fix


def go_build(tmp_path: Path, out: str, *ldflags: str) -> Path:
    go = require_tool("go", "apt-get install golang-go")
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "go.mod").write_text("module example.com/hello\n\ngo 1.19\n")
    (src / "main.go").write_text('package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hi") }\n')
    env = {**os.environ, "GOOS": "linux", "GOARCH": "riscv64", "CGO_ENABLED": "0",
           "GOFLAGS": "", "GO111MODULE": "on"}
    subprocess.run([go, "build", "-trimpath", *ldflags, "-o", str(tmp_path / out), "."],
                   cwd=src, check=True, env=env)
    return tmp_path / out


@pytest.mark.integration
@pytest.mark.slow
def test_go_binaries_with_different_build_ids_name_the_build_id(tmp_path: Path):
    a = go_build(tmp_path, "a", "-ldflags=-buildid=first-build")
    b = go_build(tmp_path, "b", "-ldflags=-buildid=other-build")

    found = explain(a, b, name="hello", left=Variant(label="lock"), right=Variant(label="node"))

    assert names(found) == ["build-id"]
    text = cause(found, "build-id")
    assert "'first-build'" in text and "'other-build'" in text and ".note.go.buildid" in text
    assert "-ldflags=-buildid=" in found.causes[0].fix  # the Go fix, not the C one
    assert "--build-id" not in found.causes[0].fix

    # a build id naming the job's directory (`-buildid=fixture-{out}`): still the build id's
    # doing, with the path as evidence, not -trimpath's
    one, two = tmp_path / "job-one", tmp_path / "job-two-longer"
    c = go_build(tmp_path, "c", f"-ldflags=-buildid=fixture-{one}/out")
    d = go_build(tmp_path, "d", f"-ldflags=-buildid=fixture-{two}/out")
    by_dir = explain(c, d, name="hello", left=Variant(label="lock", build_dirs=(str(one),)),
                     right=Variant(label="path", build_dirs=(str(two),)))
    assert names(by_dir) == ["build-id"]
    assert f"(it contains the build dir {one}, {two})" in by_dir.causes[0].evidence

    same = go_build(tmp_path, "e", "-ldflags=-buildid=first-build")
    assert explain(a, same, name="hello", left=Variant(label="lock"),
                   right=Variant(label="node")).identical


@pytest.mark.integration
def test_rust_built_in_two_directories_gets_the_rust_fix_and_it_works(tmp_path: Path):
    """Debian trixie's rustc from the rust-trixie root CI prepares, run with bubblewrap; the jobs
    are at /mnt/one and /mnt/other/two inside it."""
    root = roots_dir() / "rust-trixie"
    require((root / "usr" / "bin" / "rustc").is_file(),
            "the rust-trixie root is missing: run `crossyard toolchains prepare rust-trixie`")
    require_tool("bwrap", "apt-get install bubblewrap")
    source = ('fn main() { let v: Vec<usize> = std::env::args().map(|a| a.len()).collect(); '
              'println!("{}", v[3]); }\n')  # indexing may panic: the panic names the source file

    def build(job: str, *flags: str) -> Path:
        (tmp_path / job).mkdir(parents=True, exist_ok=True)
        (tmp_path / job / "main.rs").write_text(source)
        argv = ["rustc", "-O", *flags, f"/mnt/{job}/main.rs", "-o", f"/mnt/{job}/main"]
        subprocess.run(in_root(root, argv, binds=[(tmp_path, "/mnt")]), check=True)
        return tmp_path / job / "main"

    left = Variant(label="lock", build_dirs=("/mnt/one",))
    right = Variant(label="path", build_dirs=("/mnt/other/two",))

    found = explain(build("one"), build("other/two"), name="main", left=left, right=right)

    assert names(found) == ["build-path"]
    assert "--remap-path-prefix=/mnt/one=." in found.causes[0].fix
    assert "-ffile-prefix-map" not in found.causes[0].fix
    fixed = explain(build("one", "--remap-path-prefix=/mnt/one=."),
                    build("other/two", "--remap-path-prefix=/mnt/other/two=."), name="main",
                    left=left, right=right)
    assert fixed.identical


@pytest.mark.integration
def test_rust_crates_hashed_differently_name_the_metadata_and_stripping_works(tmp_path: Path):
    """What cargo does to a crate with a build script built cross and emulated (its -C metadata
    takes in the build host), made directly: trixie's rustc with two -C metadata values."""
    root = roots_dir() / "rust-trixie"
    require((root / "usr" / "bin" / "rustc").is_file(),
            "the rust-trixie root is missing: run `crossyard toolchains prepare rust-trixie`")
    require_tool("bwrap", "apt-get install bubblewrap")
    (tmp_path / "main.rs").write_text(
        "fn twice<T: std::fmt::Display>(t: T) -> String { format!(\"{t}{t}\") }\n"
        "fn main() { println!(\"{} {}\", twice(1), twice(\"a\")); }\n")

    def build(out: str, *flags: str) -> Path:
        argv = ["rustc", "-O", "--target", RISCV64.rust_triple, "-C", f"linker={CC}", *flags,
                "/mnt/main.rs", "-o", f"/mnt/{out}"]
        subprocess.run(in_root(root, argv, binds=[(tmp_path, "/mnt")]), check=True)
        return tmp_path / out

    found = explain(build("one", "-Cmetadata=one"), build("two", "-Cmetadata=two"), name="main",
                    left=Variant(label="control"), right=Variant(label="emulated"))

    assert names(found) == ["rust-metadata"]
    text = cause(found, "rust-metadata")
    pair = re.search(r"\.strtab: (_ZN\S+17h)[0-9a-f]{16}E in control's output is (\S+17h)[0-9a-f]{16}E "
                     r"in emulated's; \d+ names differ", text)
    assert pair and pair[1] == pair[2], text  # one symbol, two hashes
    assert "cargo#8140" in text and 'strip = "symbols"' in text
    stripped = explain(build("one-s", "-Cmetadata=one", "-Cstrip=symbols"),
                       build("two-s", "-Cmetadata=two", "-Cstrip=symbols"), name="main",
                       left=Variant(label="control"), right=Variant(label="emulated"))
    assert stripped.identical


@pytest.mark.integration
def test_a_start_file_from_another_glibc_package_names_the_c_runtime(tmp_path: Path):
    """trixie's cross gcc (the rust-trixie root) links hello.c with the cross glibc's Scrt1.o
    (cross-toolchain-base's: it has a .note.package) and with the native riscv64 libc6-dev's
    (from the rust-trixie-riscv64 root), which has none: the cross and emulated Rust builds'
    difference before those roots held the cross package."""
    root, native_root = roots_dir() / "rust-trixie", roots_dir() / "rust-trixie-riscv64"
    for name, path in (("rust-trixie", root), ("rust-emulated-riscv64", native_root)):
        require((path / "usr").is_dir(), f"the {path.name} root is missing: run `crossyard "
                f"toolchains prepare {name}`")
    require_tool("bwrap", "apt-get install bubblewrap")
    (tmp_path / "hello.c").write_text(HELLO_C)
    for side, start_file in (("native", native_root / "usr/lib/riscv64-linux-gnu/Scrt1.o"),
                             ("cross", root / "usr/riscv64-linux-gnu/lib/Scrt1.o")):
        (tmp_path / side).mkdir()
        shutil.copy(start_file, tmp_path / side)

    def link(out: str, start_files: str) -> Path:
        argv = [CC, "-O1", f"-B/mnt/{start_files}/", "/mnt/hello.c", "-o", f"/mnt/{out}"]
        subprocess.run(in_root(root, argv, binds=[(tmp_path, "/mnt")]), check=True)
        return tmp_path / out

    found = explain(link("a", "cross"), link("b", "native"), name="hello",
                    left=Variant(label="control"), right=Variant(label="emulated"))

    assert names(found) == ["c-runtime"]
    text = cause(found, "c-runtime")
    assert '"name":"cross-toolchain-base"' in text and "none in emulated's" in text, text
    assert "libc6-dev-ARCH-cross" in text
    assert explain(link("a", "cross"), link("c", "cross"), name="hello", left=Variant(label="control"),
                   right=Variant(label="emulated")).identical


# tar archives and layers -----------------------------------------------------------------------

NORMAL_TAR = "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner"


def make_tree(root: Path, umask: str = "022") -> None:
    sh(f"umask {umask}; mkdir -p usr/bin etc; printf 'a\\n' > etc/a.conf;"
       " printf 'b\\n' > etc/b.conf; printf '#!/bin/sh\\n' > usr/bin/run; chmod +x usr/bin/run",
       root)


def test_layers_written_under_two_umasks_name_the_umask(tmp_path: Path):
    require_tool("tar")
    for name, umask in (("one", "022"), ("two", "002")):
        (tmp_path / name).mkdir()
        make_tree(tmp_path / name, umask)
        sh(f"{NORMAL_TAR} -cf ../{name}.tar .", tmp_path / name)
    left = Variant(label="lock", umask=0o022)
    right = Variant(label="umask", umask=0o002)

    found = explain(tmp_path / "one.tar", tmp_path / "two.tar", name="layer.tar", left=left,
                    right=right)

    assert found.kind == "tar"
    assert names(found) == ["umask"]
    text = cause(found, "umask")
    assert "entry ./etc/a.conf: mode 0644 vs 0664" in text and "umask 022 vs 002" in text
    assert "normalise modes" in text


def test_the_same_entries_in_another_order_name_the_file_order(tmp_path: Path):
    require_tool("tar")
    make_tree(tmp_path)
    sh(f"{NORMAL_TAR.replace('--sort=name ', '')} -cf one.tar etc/a.conf etc/b.conf usr/bin/run"
       f" && {NORMAL_TAR.replace('--sort=name ', '')} -cf two.tar usr/bin/run etc/b.conf"
       " etc/a.conf", tmp_path)

    found = explain(tmp_path / "one.tar", tmp_path / "two.tar", name="layer.tar",
                    left=Variant(label="lock"), right=Variant(label="file-order"))

    assert names(found) == ["file-order"]
    assert "'etc/a.conf' (lock) vs 'usr/bin/run' (file-order)" in cause(found, "file-order")
    assert "--sort=name" in found.causes[0].fix


def test_an_image_layer_with_one_stray_mtime_names_the_mtime_and_the_entry(tmp_path: Path):
    require_tool("tar")
    require_tool("gzip")
    stray = 1_700_000_000
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        make_tree(tmp_path / name)
        sh("find . -exec touch -h -d @0 {} +", tmp_path / name)
    os.utime(tmp_path / "two" / "etc" / "b.conf", (stray, stray))
    for name in ("one", "two"):
        tar = NORMAL_TAR.replace("--mtime=@0 ", "")
        sh(f"{tar} -cf - . | gzip -n > ../{name}.tar.gz", tmp_path / name)
    right = Variant(label="later", epoch=stray - 60)

    found = explain(tmp_path / "one.tar.gz", tmp_path / "two.tar.gz", name="layer",
                    left=Variant(label="lock", epoch=1_600_000_000), right=right)

    assert found.kind == "gzip+tar"
    assert names(found) == ["mtime"]
    text = cause(found, "mtime")
    assert "entry ./etc/b.conf: mtime 0" in text and f"vs {stray}" in text
    assert "later's build time" in text
    assert "SOURCE_DATE_EPOCH" in found.causes[0].fix
    assert "./etc/a.conf" not in text  # only the stray entry


def test_entries_owned_by_the_building_user_name_the_owner(tmp_path: Path):
    require_tool("tar")
    make_tree(tmp_path)
    sh("tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf one.tar etc"
       " && tar --sort=name --mtime=@0 --owner=1000 --group=1000 --numeric-owner -cf two.tar etc",
       tmp_path)

    found = explain(tmp_path / "one.tar", tmp_path / "two.tar", name="layer.tar",
                    left=Variant(label="lock", uid=0), right=Variant(label="user", uid=1000))

    assert names(found) == ["owner"]
    assert "uid 0 vs 1000" in cause(found, "owner")
    assert "--owner=0" in found.causes[0].fix


@pytest.mark.integration
def test_a_layer_holding_differing_binaries_explains_the_binary_inside(tmp_path: Path):
    one, two = tmp_path / "j1", tmp_path / "j2"
    compile_c(HELLO_C, one)
    compile_c(HELLO_C, two)
    sh(f"{NORMAL_TAR} -czf j1.tgz -C j1 hello && {NORMAL_TAR} -czf j2.tgz -C j2 hello", tmp_path)

    found = explain(tmp_path / "j1.tgz", tmp_path / "j2.tgz", name="layer", left=Variant(
        label="lock", build_dirs=(str(one),)), right=Variant(label="path", build_dirs=(str(two),)))

    assert names(found) == ["build-path"]
    assert cause(found, "build-path").startswith(f"entry hello: {one}")


def test_a_symlink_to_the_build_directory_names_the_build_path(tmp_path: Path):
    require_tool("tar")
    for name in ("one", "two"):
        job = tmp_path / name
        job.mkdir()
        (job / "lib").symlink_to(job / "build" / "lib")  # ln -s "$(pwd)/build/lib" lib
        sh(f"{NORMAL_TAR} -cf ../{name}.tar lib", job)

    found = explain(tmp_path / "one.tar", tmp_path / "two.tar", name="layer.tar",
                    left=Variant(label="lock", build_dirs=(str(tmp_path / "one"),)),
                    right=Variant(label="path", build_dirs=(str(tmp_path / "two"),)))

    assert names(found) == ["build-path"]
    assert "in entry lib's link target of lock's output" in found.causes[0].evidence


@pytest.mark.integration
def test_a_static_library_names_its_members_mtime_mode_and_the_path_inside(tmp_path: Path):
    """`ar rcU` (real mtimes, uids and modes, unlike Debian's deterministic default) of objects
    compiled in two directories under two umasks at two times."""
    require_tool(CC, "apt-get install gcc-riscv64-linux-gnu")
    ar = require_tool("riscv64-linux-gnu-ar", "apt-get install binutils-riscv64-linux-gnu")
    for name, umask, epoch in (("one", "022", 1_600_000_000), ("two", "002", 1_700_000_000)):
        job = tmp_path / name
        job.mkdir()
        (job / "greet.c").write_text('int greet(void) { return 42; }\n')
        sh(f"umask {umask} && {CC} -g -c greet.c -o greet.o && touch -d @{epoch} greet.o"
           f" && {ar} rcU libgreet.a greet.o", job)
    left = Variant(label="lock", build_dirs=(str(tmp_path / "one"),), umask=0o022)
    right = Variant(label="all", build_dirs=(str(tmp_path / "two"),), umask=0o002,
                    epoch=1_700_000_000)

    found = explain(tmp_path / "one/libgreet.a", tmp_path / "two/libgreet.a", name="libgreet.a",
                    left=left, right=right)

    assert found.kind == "ar"
    assert names(found) == ["build-path", "umask", "mtime"]
    assert cause(found, "build-path").startswith(f"entry greet.o: {tmp_path / 'one'}")
    assert "section .debug" in cause(found, "build-path")
    assert "entry greet.o: mode 0644 vs 0664" in cause(found, "umask")
    assert "mtime 1600000000" in cause(found, "mtime") and "(= all's build time)" in cause(
        found, "mtime")

    # cut short: not read as an archive, compared as bytes
    whole = (tmp_path / "one/libgreet.a").read_bytes()
    (tmp_path / "cut.a").write_bytes(whole[: len(whole) - 100])
    cut = explain(tmp_path / "cut.a", tmp_path / "two/libgreet.a", name="libgreet.a", left=left,
                  right=right)
    assert cut.kind == "ar" and "an ar archive that cannot be read" in cut.details[0]

    # deterministic (D) and with the path mapped: the same library
    for name in ("one", "two"):
        job = tmp_path / name
        sh(f"{CC} -g -ffile-prefix-map={job}=. -c greet.c -o greet.o && rm libgreet.a"
           f" && {ar} rcD libgreet.a greet.o", job)
    assert explain(tmp_path / "one/libgreet.a", tmp_path / "two/libgreet.a", name="libgreet.a",
                   left=left, right=right).identical


def test_the_same_archive_compressed_at_two_times_names_the_gzip_header(tmp_path: Path):
    require_tool("gzip")
    make_tree(tmp_path)
    # the same name in both: gzip also records it in the header
    sh(f"mkdir one two && {NORMAL_TAR} -cf one/l.tar etc && cp one/l.tar two/l.tar"
       " && touch -d @1600000000 one/l.tar && touch -d @1700000000 two/l.tar"
       " && gzip one/l.tar two/l.tar", tmp_path)

    found = explain(tmp_path / "one/l.tar.gz", tmp_path / "two/l.tar.gz", name="layer",
                    left=Variant(label="a"), right=Variant(label="b", epoch=1_700_000_000))

    assert names(found) == ["timestamp"]
    assert "gzip header mtime 1600000000 vs 1700000000 (= b's build time)" in cause(
        found, "timestamp")
    assert "gzip -n" in found.causes[0].fix


def test_a_compressed_page_with_a_date_names_the_header_and_the_text(tmp_path: Path):
    """A gzip man page (not tar), compressed by gzip without -n, its text dated by `date`."""
    for name, epoch in (("one", 1_600_000_000), ("two", 1_700_000_000)):
        (tmp_path / name).mkdir()
        sh(f"date -u -d @{epoch} +'.TH HELLO 1 %Y-%m-%d' > hello.1 && touch -d @{epoch} hello.1"
           " && gzip -9 hello.1", tmp_path / name)

    found = explain(tmp_path / "one/hello.1.gz", tmp_path / "two/hello.1.gz", name="hello.1.gz",
                    left=Variant(label="lock", epoch=1_600_000_000),
                    right=Variant(label="later", epoch=1_700_000_000))

    assert found.kind == "bytes"
    assert names(found) == ["timestamp"]
    text = cause(found, "timestamp")
    assert "gzip header mtime 1600000000 vs 1700000000 (= lock's build time)" in text
    assert "uncompressed: '2020-09-13' (an ISO 8601 date, = lock's build time)" in text


def test_a_hostile_entry_name_is_explained_without_writing_outside(tmp_path: Path):
    for name, body in (("one.tar", b"1\n"), ("two.tar", b"2\n")):
        with tarfile.open(tmp_path / name, "w") as tar:
            info = tarfile.TarInfo("../../escape")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))

    found = explain(tmp_path / "one.tar", tmp_path / "two.tar", name="layer",
                    left=Variant(label="a"), right=Variant(label="b"))

    assert names(found) == ["content"]
    assert "entry ../../escape" in found.causes[0].evidence
    assert not (tmp_path.parent.parent / "escape").exists()


def test_an_entry_written_twice_is_not_mistaken_for_another_order(tmp_path: Path):
    for name, entries in (("one.tar", ["a", "b"]), ("two.tar", ["a", "b", "a"])):
        with tarfile.open(tmp_path / name, "w") as tar:
            for entry in entries:
                info = tarfile.TarInfo(entry)
                info.size = 2
                tar.addfile(info, io.BytesIO(b"x\n"))

    found = explain(tmp_path / "one.tar", tmp_path / "two.tar", name="layer",
                    left=Variant(label="a"), right=Variant(label="b"))

    assert names(found) == ["content"]
    assert "duplicate entries" in found.causes[0].evidence


# JSON ------------------------------------------------------------------------------------------


def test_image_configs_written_at_two_times_name_created_a_timestamp(tmp_path: Path):
    results = []
    for name, epoch in (("one", 1_600_000_000), ("two", 1_700_000_000)):
        layout = OciLayout(tmp_path / name).ensure()
        layer = write_layer(layout, [LayerEntry(path="etc/motd", source=b"hi\n")],
                            source_date_epoch=0)
        manifest = write_image(layout, platform=Platform.parse("linux/riscv64"), layers=[layer],
                               config=ImageConfig(cmd=("/bin/sh",)), source_date_epoch=epoch)
        config = json.loads(layout.read_blob(manifest.digest))["config"]["digest"]
        results.append((layout.blob_path(config), layout.blob_path(manifest.digest)))
    (config_a, manifest_a), (config_b, manifest_b) = results
    left, right = Variant(label="lock"), Variant(label="later")

    found = explain(config_a, config_b, name="config", left=left, right=right)

    assert found.kind == "json"
    assert names(found) == ["timestamp"]
    text = cause(found, "timestamp")
    assert 'created: "2020-09-13T12:26:40Z" vs "2023-11-14T22:13:20Z"' in text
    assert "history[0].created" in text
    assert "SOURCE_DATE_EPOCH" in found.causes[0].fix

    manifest = explain(manifest_a, manifest_b, name="manifest", left=left, right=right)
    assert manifest.kind == "json"
    assert names(manifest) == ["content"]
    assert "config.digest: the referenced blob differs" in manifest.causes[0].evidence
    assert not any("config.size" in c.evidence for c in manifest.causes)


def test_two_image_layouts_are_compared_image_by_image(tmp_path: Path):
    for name, epoch in (("one", 1_600_000_000), ("two", 1_700_000_000)):
        layout = OciLayout(tmp_path / name).ensure()
        layer = write_layer(layout, [LayerEntry(path="etc/motd", source=b"hi\n")],
                            source_date_epoch=epoch)
        manifest = write_image(layout, platform=Platform.parse("linux/riscv64"), layers=[layer],
                               config=ImageConfig(), source_date_epoch=epoch)
        tag(layout, write_index(layout, [manifest]), "hello:1")

    found = explain_trees(tmp_path / "one", tmp_path / "two", left=Variant(label="lock"),
                          right=Variant(label="later", epoch=1_700_000_000))

    by_name = {e.name: e for e in found}
    assert list(by_name) == ["index.json", "hello:1", "hello:1 linux/riscv64",
                             "hello:1 linux/riscv64 config", "hello:1 linux/riscv64 layer 0"]
    assert names(by_name["hello:1 linux/riscv64 config"]) == ["timestamp"]
    layer = by_name["hello:1 linux/riscv64 layer 0"]
    assert layer.kind == "gzip+tar" and names(layer) == ["mtime"]
    assert "(= later's build time)" in cause(layer, "mtime")
    assert "the referenced blob differs" in cause(by_name["hello:1 linux/riscv64"], "content")
    assert not any(e.kind == "missing" for e in found)  # no blob "only in one layout"


def test_zstd_layers_are_read_entry_by_entry(tmp_path: Path):
    for name, epoch in (("one", 1_600_000_000), ("two", 1_700_000_000)):
        layout = OciLayout(tmp_path / name).ensure()
        layer = write_layer(layout, [LayerEntry(path="etc/motd", source=b"hi\n")],
                            source_date_epoch=epoch, compression="zstd")
        (tmp_path / f"{name}.layer").symlink_to(layout.blob_path(layer.descriptor.digest))

    found = explain(tmp_path / "one.layer", tmp_path / "two.layer", name="layer",
                    left=Variant(label="lock"), right=Variant(label="later"))

    assert found.kind == "zstd+tar"
    assert names(found) == ["mtime"]
    assert "entry etc/motd: mtime 1600000000" in cause(found, "mtime")


# identical, trees, text, bounds, JSON form -----------------------------------------------------


def test_identical_outputs_have_no_explanation(tmp_path: Path):
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        make_tree(tmp_path / name)
        sh(f"{NORMAL_TAR} -cf out.tar etc", tmp_path / name)

    found = explain(tmp_path / "one/out.tar", tmp_path / "two/out.tar", name="out.tar",
                    left=Variant(label="a"), right=Variant(label="b"))

    assert found.identical and found.causes == () and found.details == ()
    assert explain_trees(tmp_path / "one", tmp_path / "two", left=Variant(label="a"),
                         right=Variant(label="b")) == ()


def test_output_trees_list_missing_files_then_differing_ones(tmp_path: Path):
    for name, umask in (("one", "022"), ("two", "002")):
        (tmp_path / name).mkdir()
        make_tree(tmp_path / name, umask)
    (tmp_path / "one" / "only-left").write_text("x")
    (tmp_path / "two" / "share" / "doc").mkdir(parents=True)
    (tmp_path / "two" / "share" / "doc" / "README").write_text("x")
    (tmp_path / "two" / "etc" / "b.conf").write_text("changed\n")

    found = explain_trees(tmp_path / "one", tmp_path / "two", left=Variant(label="lock"),
                          right=Variant(label="umask", umask=0o002))

    assert [e.name for e in found] == ["only-left", "share/", "etc/", "etc/a.conf", "etc/b.conf",
                                       "usr/", "usr/bin/", "usr/bin/run"]
    assert found[0].kind == "missing" and "in lock's output and not in umask's" in found[0].summary
    assert "in umask's output and not in lock's" in found[1].summary  # not again for README
    by_name = {e.name: e for e in found}
    assert names(by_name["etc/"]) == ["umask"]  # a directory: 0755 vs 0775
    assert names(by_name["etc/a.conf"]) == ["umask"]  # same bytes, mode 0644 vs 0664
    assert "etc/a.conf: mode 0644 vs 0664" in by_name["etc/a.conf"].causes[0].evidence
    assert names(by_name["etc/b.conf"]) == ["umask", "content"]
    assert names(by_name["usr/bin/run"]) == ["umask"]  # 0755 vs 0775


def test_a_listing_in_another_order_names_the_locale_when_the_locales_differ(tmp_path: Path):
    require_tool("tar")
    make_tree(tmp_path)
    tar = NORMAL_TAR.replace("--sort=name ", "")
    sh(f"{tar} -cf one.tar etc/a.conf etc/b.conf && {tar} -cf two.tar etc/b.conf etc/a.conf"
       " && tar -tf one.tar > one.txt && tar -tf two.tar > two.txt", tmp_path)
    a, b = tmp_path / "one.txt", tmp_path / "two.txt"

    by_order = explain(a, b, name="files.txt", left=Variant(label="a"), right=Variant(label="b"))
    by_locale = explain(a, b, name="files.txt", left=Variant(label="a", locale="C"),
                        right=Variant(label="b", locale="de_DE.UTF-8"))

    assert by_order.kind == "text"
    assert names(by_order) == ["file-order"]
    assert names(by_locale) == ["locale"] and "LC_ALL=C.UTF-8" in by_locale.causes[0].fix
    assert "+etc/b.conf" in by_order.details


def test_big_files_are_streamed_not_loaded(tmp_path: Path):
    size = 64 << 20
    for name, tail in (("one", b"build at /tmp/job-one/src\0"), ("two", b"build at /work/b\0")):
        with (tmp_path / name).open("wb") as handle:
            handle.truncate(size)  # sparse: cheap on disk
            handle.seek(size - 4096)
            handle.write(tail)
    tracemalloc.start()
    try:
        found = explain(tmp_path / "one", tmp_path / "two", name="blob",
                        left=Variant(label="a", build_dirs=("/tmp/job-one",)),
                        right=Variant(label="b", build_dirs=("/work/b",)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert found.kind == "bytes" and names(found) == ["build-path"]
    assert f"first difference at offset {size - 4096 + 10}" in found.details[0]
    assert peak < 16 << 20, f"peak {peak} bytes for two {size}-byte files"


def test_explanations_round_trip_through_json(tmp_path: Path):
    (tmp_path / "a.json").write_text('{"created": "2020-01-01T00:00:00Z", "x": [1, 2]}')
    (tmp_path / "b.json").write_text('{"created": "2021-01-01T00:00:00Z", "x": [1]}')
    found = explain(tmp_path / "a.json", tmp_path / "b.json", name="c.json",
                    left=Variant(label="a"), right=Variant(label="b"))

    data = json.loads(json.dumps(found.to_json()))

    assert Explanation.from_json(data) == found
    assert {c["name"] for c in data["causes"]} == {"timestamp", "content"}
    assert set(names(found)) <= set(CAUSES)
    assert "x[1]: 2 vs (absent)" in found.details
    v = Variant(label="x", build_dirs=("/a",), epoch=1, umask=0o22, tz="UTC")
    assert Variant.from_json(json.loads(json.dumps(v.to_json()))) == v


def test_kinds_are_told_by_their_magic(tmp_path: Path):
    make_tree(tmp_path)
    sh(f"{NORMAL_TAR} -cf l.tar etc && gzip -nk l.tar && cp l.tar.gz blob", tmp_path)
    (tmp_path / "c.json").write_text("{}")
    with gzip.open(tmp_path / "t.gz", "wb") as handle:
        handle.write(b"not a tar")
    assert [kind_of(tmp_path / n) for n in ("l.tar", "blob", "c.json", "etc/a.conf", "t.gz",
                                            "nope")] == [
        "tar", "gzip+tar", "json", "text", "bytes", "missing"]


# diffoscope ------------------------------------------------------------------------------------


@pytest.mark.integration
def test_diffoscope_writes_an_html_diff_naming_the_differing_section(tmp_path: Path):
    require_tool("diffoscope", "apt-get install diffoscope-minimal binutils-multiarch")
    first, second = 1_600_000_000, 1_700_000_000
    a = compile_c(STAMPED_C, tmp_path / "a", env={"SOURCE_DATE_EPOCH": str(first)})
    b = compile_c(STAMPED_C, tmp_path / "a2", env={"SOURCE_DATE_EPOCH": str(second)})

    page = html_diff(a, b, tmp_path / "report" / "hello.html", timeout=300)

    assert page == tmp_path / "report" / "hello.html"
    html = page.read_text()
    assert "hex-dump=.rodata" in html  # readelf's dump of the section __DATE__ is in
    assert "hex-dump=.text" not in html  # and not of the code, which is the same
    assert html_diff(a, b, tmp_path / "slow.html", timeout=0.01) is None
    assert not (tmp_path / "slow.html").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_without_diffoscope_there_is_no_html_and_no_error(tmp_path: Path, monkeypatch):
    (tmp_path / "a").write_text("a\n")
    (tmp_path / "b").write_text("b\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # a machine without diffoscope

    assert html_diff(tmp_path / "a", tmp_path / "b", tmp_path / "out" / "d.html") is None
    assert not (tmp_path / "out" / "d.html").exists()
