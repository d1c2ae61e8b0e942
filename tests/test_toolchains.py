"""Toolchain definitions: their templates, and `toolchains prepare` with the Debian mirror."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import REPO, require, require_tool, run_cli
from crossyard.debian import ENV
from crossyard.platforms import RISCV64
from crossyard.toolchains import (
    ProbeCache,
    Prober,
    installed_packages_digest,
    load_definitions,
    roots_dir,
)

MIRROR = "http://mirror.example/debian"
# A root "prepared" by a shell: it records the mirror it was given, like mmdebstrap would use it.
PREPARE = '["sh", "-c", "mkdir -p \\"$1/usr\\" && echo \\"$2\\" > \\"$1/mirror\\"", "sh", "{root}", "%s"]'


def workspace(tmp_path: Path, toolchain: str, config: str = "") -> Path:
    (tmp_path / "toolchains").mkdir()
    (tmp_path / "toolchains" / "extra.toml").write_text(toolchain)
    (tmp_path / "crossyard.toml").write_text(config)
    return tmp_path


def rooted(prepare_arg: str) -> str:
    return ('[rooted]\nkind = "c"\ncommand = "cc"\nroot = "{roots}/rooted"\n'
            f"prepare = {PREPARE % prepare_arg}\n")


def prepare(ws: Path, env: dict[str, str]) -> tuple[int, str]:
    """`toolchains prepare rooted`: its exit status and stderr (never a traceback)."""
    result = run_cli("-C", str(ws), "toolchains", "prepare", "rooted",
                     env={"CROSSYARD_ROOTS": str(ws / "roots"), **env})
    assert "Traceback" not in result.stderr
    return result.returncode, result.stderr


def test_prepare_renders_the_mirror_from_the_environment_or_workspace(tmp_path: Path) -> None:
    ws = workspace(tmp_path, rooted("{mirror}"), '[debian]\nmirror = "http://ws.example/debian"\n')
    assert prepare(ws, {ENV: f"{MIRROR}/"})[0] == 0
    assert (ws / "roots" / "rooted" / "mirror").read_text() == f"{MIRROR}\n"
    (ws / "roots" / "rooted" / "mirror").unlink()
    (ws / "roots" / "rooted" / "usr").rmdir()
    assert prepare(ws, {ENV: ""})[0] == 0
    assert (ws / "roots" / "rooted" / "mirror").read_text() == "http://ws.example/debian\n"


def test_prepare_with_a_bad_mirror_writes_nothing(tmp_path: Path) -> None:
    ws = workspace(tmp_path, rooted("{mirror}"))
    code, error = prepare(ws, {ENV: "mirror.example"})
    assert code == 2 and f"{ENV}: 'mirror.example' is not a Debian mirror URL" in error
    assert not (ws / "roots" / "rooted").exists()


@pytest.mark.parametrize(("command", "text", "named"), [
    (["toolchains", "prepare", "rooted"], rooted("{mirorr}"),
     "[rooted] `prepare` uses unknown placeholder {mirorr} (did you mean `mirror`?); known: {gnu_triplet}"),
    (["toolchains"], '[cc]\nkind = "c"\ncommand = "{gnu_tripet}-gcc"\n',
     "[cc] `command` uses unknown placeholder {gnu_tripet} (did you mean `gnu_triplet`?)"),
    (["toolchains"], '[cc]\nkind = "c"\ncommand = "cc"\nversion = [["cc", "{0}"]]\n',
     "[cc] `version` uses unknown placeholder {0}"),
    (["toolchains"], '[cc]\nkind = "c"\ncommand = "cc"\ninstall = "get {mirror}"\n',
     "[cc] `install` uses unknown placeholder {mirror}"),
    (["toolchains"], '[cc]\nkind = "c"\ncommand = "cc"\nenv = { CC = "{command" }\n',
     "[cc] `env`: '{command' is not a valid template"),
    (["toolchains"], '[cc]\nkind = "c"\ncommand = "cc"\nroot = "{roots}/{name}"\n',
     "[cc] `root` uses unknown placeholder {name}; known: {roots}"),
    (["toolchains"], '[cc]\nkind = "c"\ncommand = "cc}"\n',
     "[cc] `command`: 'cc}' is not a valid template (a lone `}` at character 3)"),
    (["toolchains"], '[cc]\nkind = "c"\ncommand = "cc"\nlinker = "{gnu_triplet!r}"\n',
     "[cc] `linker` uses unknown placeholder {gnu_triplet!r}"),  # one grammar: no conversions or specs
])
def test_unknown_placeholder_names_file_key_and_known_ones(tmp_path: Path, command: list[str], text: str,
                                                           named: str) -> None:
    ws = workspace(tmp_path, text)
    result = run_cli("-C", str(ws), *command, env={ENV: MIRROR, "CROSSYARD_ROOTS": str(ws / "roots")})
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert f"{ws / 'toolchains' / 'extra.toml'}: toolchain {named}" in result.stderr
    assert not (ws / "roots").exists()


def test_builtin_roots_take_the_mirror_from_discovery() -> None:
    """No mirror host is written into the toolchain files: each Debian root's source is {mirror}."""
    rooted_defs = [d for d in load_definitions(REPO / "toolchains") if d.prepare]
    assert {d.name for d in rooted_defs} >= {"rust-trixie", "go-emulated-riscv64"}
    for definition in rooted_defs:
        # the mirror as a URL, or in sources.list lines (`deb-src {mirror} trixie main` for build-dep)
        assert definition.prepare[0] == "mmdebstrap" and "{mirror}" in definition.prepare[-1]
        assert not any("://" in arg for arg in definition.prepare), definition.prepare


@pytest.mark.integration
def test_a_toolchains_gopath_provides_go_packages_and_keys_gopath_builds(tmp_path: Path) -> None:
    """A build-dependency root in small: a toolchain whose `gopath` holds a Go package (as a
    root with Debian's golang-*-dev holds /usr/share/gocode) builds a GOPATH-mode program that
    imports it, for riscv64; what is in that gopath is in the key."""
    require_tool("go", "apt-get install golang-go")
    require_tool("qemu-riscv64-static", "apt-get install qemu-user-static")
    library = tmp_path / "gocode" / "src" / "example.org" / "greeting"
    library.mkdir(parents=True)
    (library / "greeting.go").write_text(
        'package greeting\n\nfunc Hello() string { return "hello from the toolchain\'s gopath" }\n')
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.go").write_text(
        'package main\n\nimport (\n\t"fmt"\n\n\t"example.org/greeting"\n)\n\n'
        "func main() { fmt.Println(greeting.Hello()) }\n")
    ws = workspace(tmp_path, f'[go-libs]\nkind = "go"\ncommand = "go"\ngopath = "{tmp_path}/gocode"\npriority = 5\n')
    (ws / "recipes").mkdir()
    (ws / "recipes" / "hello.toml").write_text(
        'name = "hello"\nkind = "go"\nplatforms = ["linux/riscv64"]\n[source]\npath = "../src"\n'
        '[go]\ngopath = true\nimport_path = "example.org/hello"\n'
        '[test]\nrun = ["hello"]\nexpect = "hello from the toolchain\'s gopath"\n')
    result = run_cli("-C", str(ws), "build", "--json")
    assert result.returncode == 0, result.stderr
    [job] = json.loads(result.stdout)["jobs"]
    assert job["status"] == "built" and job["toolchain"].startswith("go1.")
    (library / "greeting.go").write_text(
        'package greeting\n\nfunc Hello() string { return "changed in the toolchain\'s gopath" }\n')
    planned = run_cli("-C", str(ws), "plan", "--json")
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["jobs"][0]["input_key"] != job["input_key"]
    # without it the toolchain is not available (and says why), and nothing else has the package
    shutil.rmtree(tmp_path / "gocode")
    listed = run_cli("-C", str(ws), "toolchains", "--json")
    reasons = [alt["reason"] for entry in json.loads(listed.stdout)["toolchains"]
               for alt in entry["alternatives"] if alt["toolchain"] == "go-libs"]
    assert reasons and all(f"`gopath` {tmp_path}/gocode is not a directory" in r for r in reasons)
    failed = run_cli("-C", str(ws), "build")
    assert failed.returncode == 1 and 'cannot find package "example.org/greeting"' in failed.stderr


STATUS = """Package: libseccomp-dev
Status: install ok installed
Architecture: riscv64
Version: 2.6.0-2
Description: high level interface
 to the kernel's syscall filter

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: golang-go
Status: install ok installed
Architecture: amd64
Version: 2:1.24~2
"""


def test_a_roots_installed_packages_digest_names_versions_not_order_or_leftovers() -> None:
    digest = installed_packages_digest(STATUS)
    paragraphs = STATUS.strip().split("\n\n")
    assert installed_packages_digest("\n\n".join(reversed(paragraphs))) == digest  # order
    assert installed_packages_digest(STATUS.replace("Version: 1.0", "Version: 2.0")) == digest  # not installed
    assert installed_packages_digest(STATUS.replace("2.6.0-2", "2.6.0-3")) != digest  # a version


@pytest.mark.integration
def test_a_cgo_toolchain_root_keys_its_packages() -> None:
    """The go-runc root (runc links its static libc and libseccomp): probed, its target carries
    the digest of the root's installed packages, which a cgo job's key holds."""
    root = roots_dir() / "go-trixie-runc-amd64"
    require((root / "var" / "lib" / "dpkg" / "status").is_file(),
            "the go-runc root is missing: run `crossyard toolchains prepare go-runc`")
    [definition] = [d for d in load_definitions(REPO / "toolchains") if d.name == "go-runc"]
    target = Prober([definition], cache=ProbeCache(None)).probe(definition, RISCV64)
    assert target.available, target.reason
    assert target.root_packages == installed_packages_digest((root / "var/lib/dpkg/status").read_text())
