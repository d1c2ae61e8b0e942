"""Hostile and malformed inputs (issue #10): every one ends in exit 2 with one line naming the
file and key (or the variable, or the flag), and nothing is written: the store and the lock of a
workspace that was built before are byte-identical afterwards, and no file appears outside.

One real cross build (C for linux/riscv64) makes the workspace each case starts from.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import require_tool, run_cli

GOOD = """name = "good"
kind = "c"
version = "1.0"
platforms = ["linux/riscv64"]
[source]
path = "../src"
[c]
sources = ["main.c"]
"""


def recipe(*, top: str = "", table: str = '[c]\nsources = ["main.c"]\n', source: str = 'path = "../src"',
           kind: str = "c", name: str = "bad") -> str:
    return (f'name = "{name}"\nkind = "{kind}"\nplatforms = ["linux/riscv64"]\n{top}'
            f"[source]\n{source}\n{table}")


def image(name: str) -> str:
    return (f'kind = "image"\nversion = "1.0"\n[image]\nname = "{name}"\n'
            '[[image.files]]\nartifact = "good"\n')


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("riscv64-linux-gnu-gcc", "apt-get install gcc-riscv64-linux-gnu")
    ws = tmp_path_factory.mktemp("built") / "ws"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "main.c").write_text("int main(void){return 0;}\n")
    (ws / "recipes").mkdir()
    (ws / "recipes" / "good.toml").write_text(GOOD)
    (ws / "crossyard.toml").write_text('[build]\nplatforms = ["linux/riscv64"]\n')
    result = run_cli("-C", str(ws), "build")
    assert result.returncode == 0, result.stderr
    assert (ws / ".crossyard" / "store" / "index.json").is_file() and (ws / "crossyard.lock").is_file()
    return ws


@pytest.fixture
def ws(built: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "ws"
    shutil.copytree(built, copy, symlinks=True)
    return copy


def snapshot(ws: Path) -> dict[str, str]:
    """Every file of the store and the lock, by content digest."""
    files = [ws / "crossyard.lock", *sorted((ws / ".crossyard" / "store").rglob("*"))]
    return {str(p.relative_to(ws)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}


def write(files: dict[str, str | bytes]) -> Callable[[Path], None]:
    def setup(ws: Path) -> None:
        for rel, content in files.items():
            path = ws / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
    return setup


def bad(**kwargs: str) -> Callable[[Path], None]:
    return write({"recipes/bad.toml": recipe(**kwargs)})


def patch_through_a_symlink(ws: Path) -> None:
    """The source has a symlink out of the workspace; a patch creating a file through it."""
    (ws / "src" / "link").symlink_to(ws.parent)
    write({"recipes/bad.toml": recipe(source='path = "../src"\npatches = ["link.patch"]'),
           "recipes/link.patch": "--- /dev/null\n+++ b/link/x\n@@ -0,0 +1 @@\n+owned\n"})(ws)


def fifo_in_source(ws: Path) -> None:
    os.mkfifo(ws / "src" / "pipe")


def source_through_link(ws: Path) -> None:
    (ws / "elsewhere").symlink_to(ws.parent)  # inside the workspace, leading out of it
    bad(source='path = "../elsewhere"')(ws)


def subdir_through_link(ws: Path) -> None:
    (ws / "src" / "up").symlink_to(ws.parent)
    bad(source='path = "../src"\nsubdir = "up"')(ws)


def nothing(ws: Path) -> None:
    pass


BUILD = (("plan",), ("build",))
CONFIG = "crossyard.toml"
# id -> (what to do to the built workspace, the commands to run, environment, what the one line says)
Case = tuple[Callable[[Path], None], tuple[tuple[str, ...], ...], dict[str, str], tuple[str, ...]]
CASES: dict[str, Case] = {
    # 2: output names and paths stay inside the job; recipe paths inside their trees
    "c-output-escapes": (bad(table='[c]\nsources = ["main.c"]\noutput = "../../x"\n'), BUILD, {},
                         ("bad.toml", "[c] `output` = '../../x' is not a plain file name")),
    "c-output-absolute": (bad(table='[c]\nsources = ["main.c"]\noutput = "/tmp/x"\n'), BUILD, {},
                          ("bad.toml", "[c] `output`")),
    "go-output-escapes": (bad(kind="go", table='[go]\noutput = "../x"\n'), BUILD, {},
                          ("bad.toml", "[go] `output` = '../x'")),
    "rust-bin-escapes": (bad(kind="rust", table='[rust]\nbin = "../../x"\n'), BUILD, {},
                         ("bad.toml", "[rust] `bin`")),
    "rust-profile-escapes": (bad(kind="rust", table='[rust]\nprofile = "../../../x"\n'), BUILD, {},
                             ("bad.toml", "[rust] `profile`")),
    "make-outputs-escape": (bad(table='[c]\nbuild = "make"\noutputs = ["../../x"]\n'), BUILD, {},
                            ("bad.toml", "[c] `outputs` = '../../x' must be a path inside the source tree")),
    "headers-escape": (bad(table='[c]\nsources = ["main.c"]\nheaders = ["../../../etc/passwd"]\n'), BUILD, {},
                       ("bad.toml", "[c] `headers` = '../../../etc/passwd'")),
    "two-outputs-one-name": (bad(table='[c]\nbuild = "make"\noutputs = ["a/x", "b/x"]\n'), BUILD, {},
                             ("bad.toml", "two outputs are named `x`")),
    "override-output-escapes": (
        bad(top='[platform."riscv64".c]\noutput = "../x"\n'), BUILD, {},
        ("bad.toml", '[platform."riscv64".c] `output`')),
    "nul-in-output": (bad(table='[c]\nsources = ["main.c"]\noutput = "a\\u0000b"\n'), BUILD, {},
                      ("bad.toml", "`c.output` contains a NUL byte")),
    "nul-in-image-src": (write({"recipes/img.toml": 'kind = "image"\n[image]\n[[image.files]]\n'
                                                    'src = "src/main.c\\u0000"\ndest = "/x"\n'}), BUILD, {},
                         ("img.toml", "`image.files[0].src` contains a NUL byte")),
    "source-path-outside-workspace": (bad(source='path = "../.."'), BUILD, {},
                                      ("bad.toml", "[source] path `../..`", "outside ")),
    "source-path-symlink-outside": (source_through_link, BUILD, {}, ("bad.toml", "where local sources must be")),
    "source-root-below-workspace": (write({CONFIG: '[build]\nsource_root = "src"\n'}), BUILD, {},
                                    ("crossyard.toml: [build] source_root = 'src' must be a directory that holds",)),
    "subdir-escapes": (bad(source='path = "../src"\nsubdir = "../../.."'), BUILD, {},
                       ("bad.toml", "[source] `subdir` = '../../..' must be a path inside the source tree")),
    "subdir-symlink-escapes": (subdir_through_link, BUILD, {},
                               ("bad.toml", "[source] subdir `up` is not a directory inside the source (it leads to")),
    # 4: names and versions a registry takes
    "version-with-slashes": (bad(top='version = "0.1/../../0"\n'), BUILD, {},
                             ("bad.toml", "`version` '0.1/../../0' cannot be a registry tag")),
    "version-empty": (bad(top='version = ""\n'), BUILD, {}, ("bad.toml", "`version` ''")),
    "version-with-space": (bad(top='version = "1 0"\n'), BUILD, {}, ("bad.toml", "`version` '1 0'")),
    "version-too-long": (bad(top=f'version = "{"1" * 200}"\n'), BUILD, {}, ("bad.toml", "at most 114 characters")),
    "version-115": (bad(top=f'version = "{"1" * 115}"\n'), BUILD, {}, ("bad.toml", "at most 114 characters")),
    "version-float": (bad(top="version = 1.10\n"), BUILD, {}, ("bad.toml", "`version` 1.1 cannot")),
    "name-uppercase": (bad(name="Bad"), BUILD, {}, ("bad.toml", "`name` 'Bad' is not a valid recipe name")),
    "name-double-dot": (bad(name="a..b"), BUILD, {}, ("bad.toml", "`name` 'a..b'")),
    "name-trailing-dash": (bad(name="bad-"), BUILD, {}, ("bad.toml", "`name` 'bad-'")),
    "name-too-long": (bad(name="a" * 129), BUILD, {}, ("bad.toml", "at most 128 characters")),
    "image-name-too-long": (write({"recipes/img.toml": image("team/" + "a" * 130)}), BUILD, {},
                            ("img.toml", "[image] name", "at most 128 characters")),
    # 6: one image name:version, one recipe
    "two-images-one-ref": (write({"recipes/a.toml": image("shared"), "recipes/b.toml": image("shared")}), BUILD, {},
                           ("b.toml: image `shared:1.0` is also made by", "a.toml")),
    # 10: special files in a source tree
    "fifo-in-source": (fifo_in_source, BUILD, {}, ("good.toml: [source]:", "src/pipe is a FIFO (named pipe)",
                                                   "[source] exclude")),
    "fifo-as-recipe": (lambda ws: os.mkfifo(ws / "recipes" / "pipe.toml"), BUILD, {},
                       ("pipe.toml: not a regular file",)),
    # 11: types, settings and the environment
    "recipe-not-utf8": (write({"recipes/bad.toml": b'name = "bad"\n# caf\xe9\nkind = "c"\n'}), BUILD, {},
                        ("bad.toml: not UTF-8 (byte 0xe9 on line 2)",)),
    "config-not-utf8": (write({CONFIG: b"[build]\n# \xff\n"}), BUILD, {}, ("crossyard.toml: not UTF-8",)),
    "env-jobs-word": (nothing, (("build",),), {"CROSSYARD_JOBS": "lots"}, ("CROSSYARD_JOBS='lots'",)),
    "env-jobs-empty": (nothing, (("build",),), {"CROSSYARD_JOBS": ""}, ("CROSSYARD_JOBS=''",)),
    "env-platforms-empty": (nothing, BUILD, {"CROSSYARD_PLATFORMS": ""},
                            ("CROSSYARD_PLATFORMS='': names no platform",)),
    "config-jobs-word": (write({CONFIG: '[build]\njobs = "four"\n'}), BUILD, {},
                         ("crossyard.toml: [build] jobs: ", "got 'four'")),
    "config-jobs-float": (write({CONFIG: "[build]\njobs = 2.7\n"}), BUILD, {}, ("[build] jobs", "got 2.7")),
    "config-jobs-bool": (write({CONFIG: "[build]\njobs = true\n"}), BUILD, {}, ("[build] jobs", "got True")),
    "config-platforms-string": (write({CONFIG: '[build]\nplatforms = "riscv64"\n'}), BUILD, {},
                                ("crossyard.toml: [build] platforms = 'riscv64' must be a non-empty list",)),
    "flag-jobs-zero": (nothing, (("build", "-j", "0"),), {}, ("--jobs: ", "got 0")),
    "flag-platform-empty": (nothing, (("plan", "-p", ""),), {}, ("--platform: names no platform",)),
    "config-epoch-word": (write({CONFIG: '[build]\nsource_date_epoch = "yesterday"\n'}), BUILD, {},
                          ("crossyard.toml: [build] source_date_epoch = 'yesterday' must be a whole number",)),
    "config-epoch-negative": (write({CONFIG: "[build]\nsource_date_epoch = -1\n"}), BUILD, {},
                              ("[build] source_date_epoch = -1",)),
    "recipe-epoch-bool": (bad(top="source_date_epoch = true\n"), BUILD, {},
                          ("bad.toml: `source_date_epoch` = True",)),
    "recipe-epoch-year-10000": (bad(top="source_date_epoch = 253402300800\n"), BUILD, {},
                                ("bad.toml: `source_date_epoch` = 253402300800",)),
    "test-run-empty": (bad(table='[c]\nsources = ["main.c"]\n[test]\nrun = []\n'), BUILD, {},
                       ("bad.toml: [test] needs `run`",)),
    "test-run-string": (bad(table='[c]\nsources = ["main.c"]\n[test]\nrun = "bad"\n'), BUILD, {},
                        ("bad.toml: `test.run` must be a list of strings",)),
    "test-expect-number": (bad(table='[c]\nsources = ["main.c"]\n[test]\nrun = ["bad"]\nexpect = 42\n'), BUILD, {},
                           ("bad.toml: [test] `expect` must be a string",)),
    "test-env-number": (bad(table='[c]\nsources = ["main.c"]\n[test]\nrun = ["bad"]\nenv = { N = 1 }\n'), BUILD,
                        {}, ("bad.toml: `test.env` must map variable names",)),
    "go-env-string": (bad(kind="go", table='[go]\nenv = "x"\n'), BUILD, {}, ("bad.toml: `go.env` must be a table",)),
    "go-cgo-string": (bad(kind="go", table='[go]\ncgo = "false"\n'), BUILD, {},
                      ("bad.toml: [go] `cgo` must be a boolean (true or false), got 'false'",)),
    "go-tags-string": (bad(kind="go", table='[go]\ntags = "netgo"\n'), BUILD, {},
                       ("bad.toml: `go.tags` must be a list of strings",)),
    "go-ldflags-string": (bad(kind="go", table='[go]\nldflags = "-s"\n'), BUILD, {},
                          ("bad.toml: `go.ldflags` must be a list of strings",)),
    "go-ldflags-unknown-placeholder": (
        bad(kind="go", table='[go]\nldflags = ["-X main.commit={comit}"]\n'), BUILD, {},
        ("bad.toml: [go] `ldflags` uses unknown placeholder {comit} (did you mean `commit`?); known: {name}",)),
    "go-commit-without-commit": (
        bad(kind="go", table='[go]\nldflags = ["-X main.commit={commit}"]\n'), BUILD, {},
        ("bad.toml: [go] `ldflags` uses {commit}, but the recipe's [source] has no commit; add `commit = ",)),
    "c-cflags-lone-brace": (bad(table='[c]\nsources = ["main.c"]\ncflags = ["-DX=${Y"]\n'), BUILD, {},
                            ("bad.toml: [c] `cflags`: '-DX=${Y' is not a valid template",)),
    "override-env-placeholder": (
        bad(kind="go", top='[platform."riscv64".go]\nenv = { V = "{verison}" }\n', table=""), BUILD, {},
        ('bad.toml: [platform."riscv64".go] `env.V` uses unknown placeholder {verison} (did you mean `version`?)',)),
    "dockerfile-reserved-build-arg": (
        bad(kind="dockerfile", table='[dockerfile]\nbuild_args = { SOURCE_DATE_EPOCH = "1" }\n'), BUILD, {},
        ("bad.toml: [dockerfile] `build_args` sets `SOURCE_DATE_EPOCH`, which crossyard sets",)),
    "toolchain-placeholder-typo": (
        write({"toolchains/extra.toml": '[cc]\nkind = "c"\ncommand = "{gnu_tripet}-gcc"\n'}), BUILD, {},
        ("toolchains/extra.toml: toolchain [cc] `command` uses unknown placeholder {gnu_tripet} "
         "(did you mean `gnu_triplet`?)",)),
    "go-package-escapes": (bad(kind="go", table='[go]\npackage = "../../elsewhere"\n'), BUILD, {},
                           ("bad.toml: [go] `package`",)),
    "c-static-string": (bad(table='[c]\nsources = ["main.c"]\nstatic = "yes"\n'), BUILD, {},
                        ("bad.toml: [c] `static` must be a boolean",)),
    "c-build-unknown": (bad(table='[c]\nbuild = "maek"\n'), BUILD, {},
                        ("bad.toml: [c] `build` = 'maek' (did you mean `make`?)",)),
    "rust-locked-number": (bad(kind="rust", table="[rust]\nlocked = 1\n"), BUILD, {},
                           ("bad.toml: [rust] `locked` must be a boolean",)),
    "description-table": (bad(top="description = { a = 1 }\n"), BUILD, {}, ("bad.toml: `description`",)),
    # 12: sources from Debian, workspace patches, generate steps, GOPATH mode
    "patch-outside-workspace": (bad(source='path = "../src"\npatches = ["/etc/passwd"]'), BUILD, {},
                                ("bad.toml: [source] patches: `/etc/passwd` is /etc/passwd, outside",)),
    "patch-missing": (bad(source='path = "../src"\npatches = ["nope.patch"]'), BUILD, {},
                      ("bad.toml: [source] patches: `nope.patch` is not a file",)),
    "patch-not-applying": (
        write({"recipes/bad.toml": recipe(source='path = "../src"\npatches = ["fix.patch"]'),
               "recipes/fix.patch": "--- a/main.c\n+++ b/main.c\n@@ -1 +1 @@\n-int main(void){return 1;}\n"
                                    "+int main(void){return 2;}\n"}), BUILD, {},
        ("bad.toml: [source] patches: ", "fix.patch does not apply to the path source", "FAILED")),
    "patch-writes-outside-the-tree": (
        write({"recipes/bad.toml": recipe(source='path = "../src"\npatches = ["out.patch"]'),
               "recipes/out.patch": "--- a/../../../../../../x\n+++ b/../../../../../../x\n@@ -0,0 +1 @@\n+owned\n"}),
        BUILD, {}, ("bad.toml: [source] patches: ", "out.patch does not apply", "dangerous file name")),
    "patch-through-a-symlink": (patch_through_a_symlink, BUILD, {},
                                ("bad.toml: [source] patches: ", "link.patch does not apply", "Invalid file name")),
    "debian-without-suite": (bad(source='debian = "kubernetes"\nversion = "1.32.3+ds-2"'), BUILD, {},
                             ("bad.toml: [source] debian needs `suite`",)),
    "debian-bad-version": (bad(source='debian = "kubernetes"\nsuite = "trixie"\nversion = "1.32/../x"'), BUILD,
                           {}, ("bad.toml: [source] debian needs `version` = the exact version",)),
    "debian-bad-package": (bad(source='debian = "../kubernetes"\nsuite = "trixie"\nversion = "1"'), BUILD, {},
                           ("bad.toml: [source] debian = '../kubernetes' is not a Debian source package name",)),
    "suite-without-debian": (bad(source='path = "../src"\nsuite = "trixie"'), BUILD, {},
                             ("bad.toml: [source] `suite` belongs to a Debian source package",)),
    "generate-unknown-placeholder": (bad(top='[[generate]]\nrun = ["{toolchian}", "generate"]\n'), BUILD, {},
                                     ("bad.toml: [[generate]] #1 `run` uses unknown placeholder {toolchian} "
                                      "(did you mean `toolchain`?)",)),
    "generate-without-run": (bad(top="[[generate]]\nenv = { A = \"b\" }\n"), BUILD, {},
                             ("bad.toml: [[generate]] #1 needs `run`",)),
    "generate-dir-escapes": (bad(top='[[generate]]\nrun = ["true"]\ndir = "../.."\n'), BUILD, {},
                             ("bad.toml: [[generate]] #1 `dir` = '../..' must be a path inside the source tree",)),
    "gopath-without-import-path": (bad(kind="go", table="[go]\ngopath = true\n"), BUILD, {},
                                   ("bad.toml: [go] gopath = true needs `import_path`",)),
    "import-path-escapes": (bad(kind="go", table='[go]\ngopath = true\nimport_path = "k8s.io/../../x"\n'), BUILD,
                            {}, ("bad.toml: [go] `import_path` = 'k8s.io/../../x' is not a Go import path",)),
    "import-path-without-gopath": (bad(kind="go", table='[go]\nimport_path = "k8s.io/kubernetes"\n'), BUILD, {},
                                   ("bad.toml: [go] `import_path` places the source in GOPATH; add `gopath = true`",)),
    "strategies-empty": (bad(top="strategies = []\n"), BUILD, {}, ("bad.toml: `strategies` is empty",)),
    "toolchains-empty": (bad(top="toolchains = []\n"), BUILD, {}, ("bad.toml: `toolchains` is empty",)),
    "toolchains-unknown": (bad(top='toolchains = ["gcc-nope"]\n'), BUILD, {},
                           ("bad.toml: `toolchains` names gcc-nope, which no toolchain definition",)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_is_refused_and_nothing_written(ws: Path, case: str) -> None:
    setup, commands, env, expected = CASES[case]
    setup(ws)
    jobs_tmp = ws.parent / "jobs"  # where job directories go: `../../x` from one's out/ lands here
    jobs_tmp.mkdir()
    before = snapshot(ws)
    for command in commands:
        result = run_cli("-C", str(ws), *command, env={**env, "TMPDIR": str(jobs_tmp)})
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert result.stderr.startswith("crossyard: error: ") and result.stderr.count("\n") == 1, result.stderr
        for fragment in expected:
            assert fragment in result.stderr, (fragment, result.stderr)
        assert snapshot(ws) == before
    assert list(jobs_tmp.iterdir()) == [] and not (ws.parent / "x").exists()


def test_socket_in_source(ws: Path) -> None:
    before = snapshot(ws)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(ws / "src" / "sock"))
        result = run_cli("-C", str(ws), "plan")
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "good.toml: [source]:" in result.stderr and "src/sock is a socket" in result.stderr
        assert snapshot(ws) == before
        # excluded, it is no longer the source's business
        (ws / "recipes" / "good.toml").write_text(
            GOOD.replace('path = "../src"', 'path = "../src"\nexclude = ["sock"]'))
        assert run_cli("-C", str(ws), "plan").returncode == 0


def test_output_symlink_out_of_the_job_is_not_stored(ws: Path, tmp_path: Path) -> None:
    """A source symlink named as an output (here a header) would carry a file from anywhere on
    the build host into the store, and on to the registry."""
    secret = tmp_path / "secret.txt"
    secret.write_text("do not publish me\n")
    (ws / "src" / "leak.h").symlink_to(secret)
    (ws / "recipes" / "good.toml").write_text(GOOD.replace(
        'sources = ["main.c"]', 'sources = ["main.c"]\noutput = "libgood.a"\nheaders = ["leak.h"]'))
    result = run_cli("-C", str(ws), "build")
    assert result.returncode == 1, result.stderr
    assert "output `leak.h`" in result.stderr and f"is a symlink to {secret}" in result.stderr
    blobs = (ws / ".crossyard" / "store" / "blobs" / "sha256").iterdir()
    assert all(b"do not publish me" not in blob.read_bytes() for blob in blobs)


def test_hostile_cases_keep_the_good_workspace_good(ws: Path) -> None:
    """The baseline every case starts from plans fine: each refusal above is the case's own."""
    result = run_cli("-C", str(ws), "plan")
    assert result.returncode == 0, result.stderr
    assert "cached" in result.stdout


def test_settings_read_the_environment_they_are_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crossyard.errors import ConfigurationError
    from crossyard.platforms import ARM64
    from crossyard.project import load_settings
    from crossyard.workspace import Workspace

    workspace = Workspace(root=tmp_path)
    (tmp_path / "crossyard.toml").write_text('[build]\njobs = 2\nplatforms = ["riscv64"]\nsource_date_epoch = 7\n')
    monkeypatch.setenv("CROSSYARD_JOBS", "lots")  # not the environment it is given: ignored
    settings = load_settings(workspace, environ={})
    assert (settings.jobs, settings.source_date_epoch, [p.oci for p in settings.platforms or ()]) == (
        2, 7, ["linux/riscv64"])
    assert load_settings(workspace, jobs=3, environ={}).jobs == 3
    overridden = load_settings(workspace, jobs=3, platforms=["riscv64"],
                               environ={"CROSSYARD_JOBS": "5", "CROSSYARD_PLATFORMS": "aarch64"})
    assert overridden.jobs == 5 and overridden.platforms == (ARM64,)
    with pytest.raises(ConfigurationError, match=r"^CROSSYARD_PLATFORMS='sparc': unknown platform `sparc`"):
        load_settings(workspace, environ={"CROSSYARD_PLATFORMS": "sparc"})


def test_source_root_lets_a_nested_workspace_use_its_repository(ws: Path) -> None:
    """Like examples/dockerfile: a workspace inside a repository, building the repository's
    sources, says so in crossyard.toml; a source beyond that is still refused."""
    (ws.parent / "services" / "app").mkdir(parents=True)
    (ws.parent / "services" / "app" / "main.c").write_text("int main(void){return 0;}\n")
    bad(source='path = "../../services/app"')(ws)
    refused = run_cli("-C", str(ws), "plan")
    assert refused.returncode == 2 and "[build] source_root" in refused.stderr, refused.stderr
    (ws / "crossyard.toml").write_text('[build]\nplatforms = ["linux/riscv64"]\nsource_root = ".."\n')
    result = run_cli("-C", str(ws), "plan")
    assert result.returncode == 0, result.stderr
    assert "bad@linux/riscv64" in result.stdout
    bad(source='path = "../../.."')(ws)
    beyond = run_cli("-C", str(ws), "plan")
    assert beyond.returncode == 2 and "bad.toml: [source] path `../../..`" in beyond.stderr, beyond.stderr
