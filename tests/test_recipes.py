from __future__ import annotations

from pathlib import Path

import pytest

from crossyard.build_options import COptions, DockerfileOptions, GoOptions, RustOptions
from crossyard.errors import ConfigurationError
from crossyard.platforms import ARM64, PLATFORMS, RISCV64
from crossyard.recipes import MAX_VERSION, TAG_RE, load_catalog, load_recipe
from crossyard.registry.push import platform_tag

REPO = Path(__file__).resolve().parent.parent


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_example_catalog_loads() -> None:
    catalog = load_catalog(REPO / "recipes")
    assert {"hello-go", "hello-c", "hello-rs", "libgreet"} <= set(catalog.recipes)
    go = catalog.recipes["hello-go"]
    assert go.kind == "go" and go.platforms == (RISCV64, ARM64)
    assert go.test is not None and go.test.run == ("hello-go",)
    assert catalog.recipes["hello-c"].depends == ("libgreet",)


def test_normalized_ignores_spelling_and_order(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    a = load_recipe(write(tmp_path / "a.toml", 'name = "x"\nkind = "c"\nplatforms = ["aarch64"]\n'
                          '[source]\npath = "src"\n[c]\nsources = ["a.c"]\ncflags = ["-O2"]\n'))
    b = load_recipe(write(tmp_path / "b.toml", 'kind = "c"\nname = "x"\nplatforms = ["linux/arm64/v8"]\n'
                          '[c]\ncflags = ["-O2"]\nsources = ["a.c"]\n[source]\npath = "./src/"\n'))
    assert a.normalized(ARM64, tmp_path) == b.normalized(ARM64, tmp_path)


def test_platform_override(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    recipe = load_recipe(write(tmp_path / "r.toml", 'name = "x"\nkind = "go"\n[source]\npath = "src"\n'
                               '[go]\ntags = ["a"]\nldflags = ["-s"]\n[platform."riscv64".go]\ntags = ["b"]\n'))
    riscv64, arm64 = recipe.options_for(RISCV64), recipe.options_for(ARM64)
    assert isinstance(riscv64, GoOptions) and isinstance(arm64, GoOptions)
    assert (riscv64.tags, riscv64.ldflags) == (("b",), ("-s",))  # a key replaces; the others stay
    assert (arm64.tags, arm64.ldflags) == (("a",), ("-s",))


HEAD = 'name = "x"\nkind = "{kind}"\n[source]\npath = "src"\n'


@pytest.mark.parametrize(("kind", "table", "expected"), [
    ("go", "", GoOptions()),
    ("go", '[go]\ncgo = true\ntags = ["netgo"]\nldflags = ["-s"]\nenv = { B = "2", A = "1" }\n',
     GoOptions(cgo=True, tags=("netgo",), ldflags=("-s",), env=(("A", "1"), ("B", "2")),
               given=frozenset({"cgo", "tags", "ldflags", "env"}))),
    ("c", '[c]\nbuild = "make"\noutputs = ["a/b"]\n',
     COptions(build="make", outputs=("a/b",), given=frozenset({"build", "outputs"}))),
    ("rust", '[rust]\nfeatures = ["f"]\nlocked = true\n',
     RustOptions(features=("f",), locked=True, given=frozenset({"features", "locked"}))),
    ("dockerfile", '[dockerfile]\nbuild_args = { N = 3, V = "{version}" }\n',
     DockerfileOptions(build_args=(("N", 3), ("V", "{version}")), given=frozenset({"build_args"}))),
])
def test_options_are_typed_per_kind(tmp_path: Path, kind: str, table: str, expected: object) -> None:
    (tmp_path / "src").mkdir()
    recipe = load_recipe(write(tmp_path / "r.toml", HEAD.format(kind=kind) + table))
    assert recipe.options_for(RISCV64) == expected


def test_defaults_are_typed_values() -> None:
    assert (GoOptions().package, GoOptions().cgo, GoOptions().output) == (".", False, None)
    assert (COptions().cflags, COptions().build, COptions().outputs) == (("-O2",), "sources", None)
    assert (RustOptions().profile, DockerfileOptions().file) == ("release", "Dockerfile")


def test_normalized_options_are_what_the_recipe_wrote(tmp_path: Path) -> None:
    """The input key sees the options as written (TOML arrays and tables), not the defaults:
    so the keys in a committed crossyard.lock did not change when options became typed."""
    (tmp_path / "src").mkdir()
    recipe = load_recipe(write(tmp_path / "r.toml", HEAD.format(kind="go") +
                               '[go]\ncgo = false\ntags = ["a"]\nenv = { B = "2", A = "1" }\n'))
    assert recipe.normalized(RISCV64, tmp_path)["options"] == {"cgo": False, "tags": ["a"],
                                                                "env": {"A": "1", "B": "2"}}
    bare = load_recipe(write(tmp_path / "s.toml", HEAD.format(kind="go")))
    assert bare.normalized(RISCV64, tmp_path)["options"] == {}
    # Options made in code (no `given`) still key on every value that is not a default.
    assert GoOptions(tags=("a",)).normalized() == {"tags": ["a"]}


GIT = 'git = "https://example.com/x.git"\ncommit = "{commit}"\n'
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize("source", [GIT.format(commit=COMMIT), f'path = "src"\ncommit = "{COMMIT}"\n',
                                    f'url = "https://example.com/x.tgz"\nsha256 = "{"a" * 64}"\ncommit = "{COMMIT}"\n'])
def test_commit_is_the_sources_and_in_the_key(tmp_path: Path, source: str) -> None:
    (tmp_path / "src").mkdir()
    text = 'name = "x"\nkind = "go"\n[go]\nldflags = ["-X main.commit={{commit}}"]\n[source]\n'
    recipe = load_recipe(write(tmp_path / "r.toml", text + source))
    assert recipe.commit == COMMIT
    other = load_recipe(write(tmp_path / "s.toml", text + source.replace(COMMIT, "f" * 40)))
    assert recipe.normalized(RISCV64, tmp_path) != other.normalized(RISCV64, tmp_path)


def test_a_source_without_commit_keeps_its_key_shape(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    recipe = load_recipe(write(tmp_path / "r.toml", HEAD.format(kind="go")))
    assert recipe.commit is None
    assert recipe.normalized(RISCV64, tmp_path)["source"] == {"kind": "path", "subdir": None, "exclude": [],
                                                               "where": "src"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\nkind = "go"\nplatfroms = ["riscv64"]\n[source]\npath = "."\n', "did you mean `platforms`"),
        ('name = "x"\nkind = "golang"\n[source]\npath = "."\n', "unknown kind `golang`"),
        ('name = "x"\nkind = "go"\nplatforms = ["mips"]\n[source]\npath = "."\n', "unknown platform `mips`"),
        ('name = "x"\nkind = "go"\n[source]\npath = "nowhere"\n', "does not exist"),
        ('name = "x"\nkind = "go"\nstrategies = ["magic"]\n[source]\npath = "."\n', "unknown strategy"),
        ('name = "x"\nkind = "go"\n[source]\nurl = "https://example.com/x.tgz"\n', "sha256"),
        ('name = "x"\nkind = "go"\n[source]\ngit = "https://example.com/x.git"\ncommit = "main"\n', "40-hex"),
        ('name = "x"\nkind = "go"\n[source]\npath = "."\n[go]\npkg = "."\n', "did you mean `package`"),
        # types: nothing is converted
        ('name = "x"\nkind = "go"\n[source]\npath = "."\n[go]\ncgo = "false"\n',
         "[go] `cgo` must be a boolean (true or false), got 'false'"),
        ('name = "x"\nkind = "go"\n[source]\npath = "."\n[go]\ntags = "netgo"\n', "`go.tags` must be a list of strings"),
        ('name = "x"\nkind = "go"\n[source]\npath = "."\n[go]\nldflags = "-s"\n', "`go.ldflags` must be a list of strings"),
        ('name = "x"\nkind = "rust"\n[source]\npath = "."\n[rust]\npackage = ""\n',
         "[rust] `package` must be a non-empty string"),
        ('name = "x"\nkind = "dockerfile"\n[source]\npath = "."\n[dockerfile]\ntarget = 1\n',
         "[dockerfile] `target` must be a non-empty string"),
        ('name = "x"\nkind = "dockerfile"\n[source]\npath = "."\n[dockerfile]\nbuild_args = { TARGETARCH = "x" }\n',
         "[dockerfile] `build_args` sets `TARGETARCH`, which crossyard sets for each platform"),
        ('name = "x"\nkind = "dockerfile"\n[source]\npath = "."\n[dockerfile]\ncontext = "../elsewhere"\n',
         "[dockerfile] `context` = '../elsewhere' must be a path inside the source tree"),
        ('name = "x"\nkind = "dockerfile"\n[source]\npath = "."\n[dockerfile]\nfile = "/etc/Dockerfile"\n',
         "[dockerfile] `file` = '/etc/Dockerfile' must be a path inside"),
        # templates: checked at load, against what a build fills in
        ('name = "x"\nkind = "go"\n[source]\npath = "."\n[go]\nldflags = ["-X main.c={comit}"]\n',
         "[go] `ldflags` uses unknown placeholder {comit} (did you mean `commit`?); known: {name}, {version}, "
         "{commit}, {source_date_epoch}, {build_date}, {goarch}, {architecture}, {gnu_triplet}, {rust_triple}, "
         "{platform}, {deps}, {out}"),
        ('name = "x"\nkind = "go"\n[source]\npath = "."\n[go]\nenv = { A = "{verison}" }\n',
         "[go] `env.A` uses unknown placeholder {verison} (did you mean `version`?)"),
        ('name = "x"\nkind = "rust"\n[source]\npath = "."\n[rust]\nenv = { A = "{0}" }\n',
         "[rust] `env.A` uses unknown placeholder {0}"),
        ('name = "x"\nkind = "c"\n[source]\npath = "."\n[c]\ncflags = ["-DX={"]\n',
         "[c] `cflags`: '-DX={' is not a valid template (a lone `{` at character 5); write a literal brace as {{ or }}"),
        ('name = "x"\nkind = "c"\n[source]\npath = "."\n[c]\nbuild = "make"\nmake_args = ["X={version:>9}"]\n',
         "[c] `make_args` uses unknown placeholder {version:>9}"),
        ('name = "x"\nkind = "c"\n[source]\npath = "."\n[c]\nbuild = "cmake"\ncmake_args = ["-DX=}"]\n',
         "[c] `cmake_args`: '-DX=}' is not a valid template (a lone `}`"),
        ('name = "x"\nkind = "c"\n[source]\npath = "."\n[c]\nsources = ["a.c"]\nldflags = ["{dep}/x.a"]\n',
         "[c] `ldflags` uses unknown placeholder {dep} (did you mean `deps`?)"),
        ('name = "x"\nkind = "dockerfile"\n[source]\npath = "."\n[dockerfile]\nbuild_args = { X = "{out}" }\n',
         "[dockerfile] `build_args.X` uses unknown placeholder {out}"),
        ('name = "x"\nkind = "go"\n[source]\npath = "."\n[platform."riscv64".go]\nldflags = ["{gnu_triple}"]\n',
         '[platform."riscv64".go] `ldflags` uses unknown placeholder {gnu_triple} (did you mean `gnu_triplet`?)'),
        ('name = "x"\nkind = "go"\n[source]\npath = "."\n[go]\nldflags = ["-X main.c={commit}"]\n',
         "[go] `ldflags` uses {commit}, but the recipe's [source] has no commit; add `commit = \"<40-hex>\"` to [source]"),
        ('name = "x"\nkind = "go"\n[source]\npath = "."\ncommit = "v1.2"\n',
         "[source] `commit` (the upstream commit) must be a full 40-hex commit id"),
    ],
)
def test_bad_recipes(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigurationError) as info:
        load_recipe(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert info.value.return_code == 2


def test_malformed_toml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.toml", 'name = "x"\nkind = "go"\nplatforms = [\n')
    with pytest.raises(ConfigurationError) as info:
        load_recipe(path)
    assert str(path) in str(info.value) and "line" in str(info.value)


def test_duplicate_names(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    for stem in ("a", "b"):
        write(tmp_path / "recipes" / f"{stem}.toml", 'name = "same"\nkind = "c"\n[source]\npath = "../src"\n')
    with pytest.raises(ConfigurationError, match="already used"):
        load_catalog(tmp_path / "recipes")


IMAGE_GO = 'name = "svc"\nkind = "go"\nversion = "2.0"\n[source]\npath = "src"\n'


def test_image_table_parses_and_wraps_own_artifact(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    recipe = load_recipe(write(tmp_path / "svc.toml", IMAGE_GO + '[image]\nbase = "crossyard/static"\n'
                               'user = "65532:65532"\nenv = { A = "1" }\nports = ["8080", "53/udp"]\n'))
    spec = recipe.image
    assert spec is not None and spec.name == "svc" and spec.base.kind == "static"
    assert [(f.artifact, f.dest) for f in spec.files] == [("svc", "/usr/local/bin/")]
    assert spec.env == (("A", "1"),) and spec.ports == ("8080", "53/udp") and spec.compression == "gzip"
    assert recipe.requires == ()  # its own artifact is not a dependency


def test_image_recipe_requires_its_inputs(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    write(tmp_path / "recipes" / "svc.toml", IMAGE_GO.replace('"src"', '"../src"'))
    write(tmp_path / "recipes" / "base.toml", 'kind = "image"\n[image]\nbase = "crossyard/static"\n')
    write(tmp_path / "recipes" / "img.toml", 'kind = "image"\n[image]\nname = "team/img"\nbase = "recipe:base"\n'
          '[[image.files]]\nartifact = "svc"\nfile = "svc"\ndest = "/bin/svc"\nmode = "0700"\n')
    catalog = load_catalog(tmp_path / "recipes")
    img = catalog.recipes["img"]
    assert img.requires == ("svc", "base") and not img.platforms_given
    assert img.image is not None and img.image.files[0].mode == 0o700
    assert [r.name for r in catalog.select(["img"])] == ["base", "img", "svc"]


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ('entrypont = ["/x"]\n', "did you mean `entrypoint`"),
        ('base = "debian:12"\n', "not a known base"),
        ('base = "reg.example:5000/base:1"\n', "pinned by tag; pin it by digest"),
        ('base = "reg.example:5000/base"\n', "pinned by tag"),
        ('base = "reg.example/Base@sha256:' + "a" * 64 + '"\n', "uppercase letters are not allowed"),
        ('base = "reg.example/base@sha256:1234"\n', "`sha256:1234` is not a digest"),
        ('base = "recipe:img"\n', "names the recipe itself"),
        ('compression = "xz"\n', "compression `xz`"),
        ('ports = ["http"]\n', "port `http`"),
        ('name = "Bad Name"\n', "not a valid repository name"),
        ('workdir = "relative"\n', "absolute path"),
        ('[[image.files]]\nsrc = "../../etc/passwd"\ndest = "/x"\n', "leaves the workspace"),
        ('[[image.files]]\nsrc = "/etc/passwd"\ndest = "/x"\n', "leaves the workspace"),
        ('[[image.files]]\nsrc = "a"\nartifact = "b"\ndest = "/x"\n', "exactly one of"),
        ('[[image.files]]\nartifact = "b"\ndest = "relative"\n', "must be an absolute path"),
        ('[[image.files]]\nartifact = "b"\nmode = "rwx"\n', "must be octal"),
        ('[[image.files]]\nartifact = "b"\nsorce = "x"\n', "did you mean `src`"),
    ],
)
def test_bad_image_tables(tmp_path: Path, image: str, message: str) -> None:
    path = write(tmp_path / "img.toml", f'kind = "image"\n[image]\n{image}')
    with pytest.raises(ConfigurationError) as info:
        load_recipe(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_registry_base_keeps_host_and_digest(tmp_path: Path) -> None:
    digest = "sha256:" + "b" * 64
    path = write(tmp_path / "img.toml", f'kind = "image"\n[image]\nbase = "reg.example:5000/base/static:1@{digest}"\n')
    spec = load_recipe(path).image
    assert spec is not None and spec.base.registry is not None
    assert (spec.base.registry.host, spec.base.registry.repository) == ("reg.example:5000", "base/static")
    # The tag is a note: the key (text) holds what is pulled, the digest.
    assert spec.base.text == f"reg.example:5000/base/static@{digest}"


def test_image_references_are_checked_at_load(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    write(tmp_path / "recipes" / "svc.toml", IMAGE_GO.replace('"src"', '"../src"'))
    write(tmp_path / "recipes" / "img.toml", 'kind = "image"\n[image]\n[[image.files]]\nartifact = "svx"\n')
    with pytest.raises(ConfigurationError, match="did you mean `svc`"):
        load_catalog(tmp_path / "recipes")
    write(tmp_path / "recipes" / "img.toml", 'kind = "image"\n[image]\nbase = "recipe:svc"\n')
    with pytest.raises(ConfigurationError, match="not a recipe with an image"):
        load_catalog(tmp_path / "recipes")


def test_dockerfile_image_takes_only_a_name(tmp_path: Path) -> None:
    (tmp_path / "ctx").mkdir()
    head = 'kind = "dockerfile"\n[source]\npath = "ctx"\n'
    recipe = load_recipe(write(tmp_path / "d.toml", head + '[image]\nname = "team/d"\n'))
    assert recipe.image is not None and recipe.image.name == "team/d" and recipe.image.files == ()
    with pytest.raises(ConfigurationError, match="takes only `name`"):
        load_recipe(write(tmp_path / "e.toml", head + '[image]\nentrypoint = ["/x"]\n'))
    bare = load_recipe(write(tmp_path / "f.toml", head))
    assert bare.image is not None and bare.image.name == "f"


def test_image_dest_is_normalised(tmp_path: Path) -> None:
    files = ('[[image.files]]\nartifact = "b"\ndest = "/usr//local/./bin/b"\n'
             '[[image.files]]\nartifact = "c"\ndest = "/opt/./c//"\n')
    recipe = load_recipe(write(tmp_path / "img.toml", f'kind = "image"\n[image]\n{files}'))
    assert recipe.image is not None
    assert [f.dest for f in recipe.image.files] == ["/usr/local/bin/b", "/opt/c/"]


def test_longest_version_still_makes_every_tag() -> None:
    """A version is pushed as is and with publish's suffixes; the longest allowed fits them all."""
    version = "1" * MAX_VERSION
    tags = [version, f"{version}-binaries", *(platform_tag(version, p) for p in PLATFORMS)]
    assert all(TAG_RE.match(tag) for tag in tags)
    assert not TAG_RE.match(platform_tag(version + "1", "linux/riscv64"))


@pytest.mark.parametrize("name", ["a", "hello-go", "a.b_c__d--e", "x" * 128])
def test_names_a_registry_takes(tmp_path: Path, name: str) -> None:
    (tmp_path / "src").mkdir()
    assert load_recipe(write(tmp_path / "r.toml", f'name = "{name}"\nkind = "c"\n[source]\npath = "src"\n')).name == name


DEBIAN = 'debian = "kubernetes"\nsuite = "trixie"\nversion = "1.32.3+ds-2"\n'


def test_a_debian_source_is_keyed_by_package_version_and_pin(tmp_path: Path) -> None:
    text = 'name = "kubectl"\nkind = "go"\n[source]\n' + DEBIAN
    recipe = load_recipe(write(tmp_path / "r.toml", text))
    assert recipe.source is not None and recipe.source.kind == "debian"
    assert recipe.normalized(RISCV64, tmp_path)["source"] == {
        "kind": "debian", "debian": "kubernetes", "suite": "trixie", "version": "1.32.3+ds-2", "sha256": None,
        "subdir": None, "exclude": [], "commit": None}
    pinned = load_recipe(write(tmp_path / "p.toml", text + f'sha256 = "sha256:{"a" * 64}"\n'))
    assert pinned.source is not None and pinned.source.sha256 == "a" * 64
    other = load_recipe(write(tmp_path / "o.toml", text.replace("+ds-2", "+ds-3")))
    keys = {r.normalized(RISCV64, tmp_path)["source"]["version"] for r in (recipe, other)}
    assert keys == {"1.32.3+ds-2", "1.32.3+ds-3"}


def test_patches_and_generate_steps_enter_the_recipes_key(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "patches").mkdir()
    (tmp_path / "patches" / "fix.patch").write_text("--- a/x\n+++ b/x\n")
    head = 'name = "x"\nkind = "go"\n[source]\npath = "src"\n'
    plain = load_recipe(write(tmp_path / "r.toml", head)).normalized(RISCV64, tmp_path)
    assert "generate" not in plain and "patches" not in plain["source"]  # old keys stay what they were
    recipe = load_recipe(write(tmp_path / "g.toml", head + 'patches = ["patches/fix.patch"]\n'
                               '[[generate]]\nrun = ["{toolchain}", "generate", "{src}/x"]\n'
                               'env = { GOOS = "" }\ndir = "pkg"\n'))
    normal = recipe.normalized(RISCV64, tmp_path)
    assert normal["source"]["patches"] == ["patches/fix.patch"]
    assert normal["generate"] == [{"run": ["{toolchain}", "generate", "{src}/x"], "env": {"GOOS": ""}, "dir": "pkg"}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[source]\nsuite = "trixie"\npath = "."\n', "`suite` belongs to a Debian source package"),
        ('[source]\ndebian = "kubernetes"\nsuite = "trixie"\n', "needs `version` = the exact version"),
        ('[source]\ndebian = "kubernetes"\nversion = "1"\nsuite = "stable-security"\n', "needs `suite`"),
        ('[source]\n' + DEBIAN + 'sha256 = "abc"\n', "must be the 64-hex sha256 of kubernetes's .dsc"),
        ('[source]\n' + DEBIAN + 'url = "https://example.com/x"\n', "exactly one of `path`, `git`, `url`, `debian`"),
        ('[source]\npath = "."\npatches = "x.patch"\n', "`source.patches` must be a list of strings"),
        ('[[generate]]\nrun = ["go", "{nope}"]\n[source]\npath = "."\n', "unknown placeholder {nope}"),
        ('[[generate]]\nrun = ["go"]\nwhere = "x"\n[source]\npath = "."\n', "unknown key `where` in [[generate]] #1"),
        ('[[generate]]\nrun = ["gen", "{commit}"]\n[source]\npath = "."\n', "uses {commit}, but the recipe's"),
        ('[source]\npath = "."\n[go]\ngopath = "yes"\n', "[go] `gopath` must be a boolean"),
        ('[source]\npath = "."\n[go]\ngopath = true\nimport_path = "/abs"\n', "is not a Go import path"),
        ('[source]\npath = "."\n[platform.riscv64.go]\ngopath = true\n',
         '[platform."linux/riscv64".go] gopath = true needs `import_path`'),
        ('[source]\npath = "."\n[go]\ngopath = true\nimport_path = "a.org/x"\ngopath_dirs = { "a.org/y" = "y" }\n',
         "[go] `gopath_dirs` places parts of the tree in GOPATH; the build runs in `import_path`'s, so it "
         "must be one of them (a.org/y), not 'a.org/x'"),
        ('[source]\npath = "."\n[go]\ngopath = true\nimport_path = "a.org/x"\n'
         'gopath_dirs = { "a.org/x" = "../x" }\n', "`a.org/x` = '../x' must be a path inside the source tree"),
        ('[source]\npath = "."\n[go]\ngopath = true\nimport_path = "a.org/x"\n'
         'gopath_dirs = { "a.org/x" = "x", "b.org/y" = "x/y" }\n',
         "[go] `gopath_dirs` names `x` and `x/y`: one holds the other; name directories that do not overlap"),
        ('[source]\npath = "."\n[go]\ngopath = true\nimport_path = "a.org/x"\n'
         'gopath_dirs = { "a.org/x" = "x", "a.org/x/y" = "y" }\n',
         "names `a.org/x` and `a.org/x/y`: one holds the other; name import paths that do not overlap"),
        ('[source]\npath = "."\n[go]\ngopath = true\nimport_path = "a.org/x"\n'
         'gopath_dirs = { "a.org/../x" = "x" }\n', "[go] `gopath_dirs` key = 'a.org/../x' is not a Go import path"),
        ('[source]\npath = "."\n[go]\ngopath = true\nimport_path = "a.org/x"\n'
         'gopath_dirs = { "a.org/x" = "./" }\n', "[go] `gopath_dirs` `a.org/x` = './' names the whole tree"),
    ],
)
def test_bad_sources_generate_and_gopath(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "r.toml", 'name = "x"\nkind = "go"\n' + text)
    with pytest.raises(ConfigurationError) as error:
        load_recipe(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


def test_generate_needs_a_build_recipe(tmp_path: Path) -> None:
    text = ('name = "img"\nkind = "image"\n[[generate]]\nrun = ["true"]\n[image]\nbase = "crossyard/static"\n'
            '[[image.files]]\nsrc = "x"\ndest = "/x"\n')
    with pytest.raises(ConfigurationError, match="a `image` recipe has none"):
        load_recipe(write(tmp_path / "r.toml", text))
