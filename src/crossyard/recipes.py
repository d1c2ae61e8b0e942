"""Recipes: the TOML files under `recipes/` that say what to build.

Loading is strict: an unknown key, kind, platform or strategy is a `ConfigurationError` naming
the file and suggesting the nearest known word; malformed TOML names the file and line. The
result is a frozen `Recipe` whose `normalized()` form is what the input key is taken over, so
re-ordering keys or spelling `aarch64` instead of `linux/arm64` does not change any key.

An `[image]` table (on a go/c/rust recipe, which it wraps, or on a `kind = "image"` recipe that
only assembles) is parsed into a frozen `ImageSpec`; what needs other recipes or the disk (the
artifacts it names, workspace files, bases) is checked by the catalog and at assembly
(`crossyard.images`). An image does not enter its recipe's input key: re-wrapping never rebuilds.
"""

from __future__ import annotations

import functools
import itertools
import os
import posixpath
import re
import stat
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Final

from . import templates
from .build_options import (
    ARGS,
    BOOL,
    ENV,
    IMPORT,
    IMPORT_DIRS,
    NAME,
    OPTIONS,
    OUTS,
    REL,
    RELS,
    RESERVED_BUILD_ARGS,
    STRS,
    BuildOptions,
    DockerfileOptions,
    GoOptions,
)
from .errors import ConfigurationError, check_keys, suggest
from .platforms import ARM64, PLATFORMS, RISCV64, Platform, parse_platforms
from .reference import COMPONENT, REPOSITORY_RE, TAG_RE, Reference, split_host

KINDS: Final = ("go", "c", "rust", "image", "dockerfile")
BUILD_RECIPE_KINDS: Final = ("go", "c", "rust")  # the kinds whose jobs produce file artifacts
STRATEGIES: Final = ("cross", "native", "emulated")
DEFAULT_PLATFORMS: Final = (RISCV64, ARM64)
DEFAULT_STRATEGIES: Final = ("cross", "native", "emulated")

TOP_KEYS: Final = (
    "name", "kind", "version", "description", "platforms", "strategies", "toolchains", "depends",
    "source_date_epoch", "source", "test", "platform", "image", "generate",
    *("go", "c", "rust", "dockerfile"),
)
SOURCE_KEYS: Final = (
    "path", "git", "commit", "url", "sha256", "subdir", "exclude", "debian", "suite", "version",
    "patches",
)
SOURCE_KINDS: Final = ("path", "git", "url", "debian")
# Debian policy 5.6.1 (source package names) and 5.6.12 (versions: [epoch:]upstream[-revision]).
DEBIAN_PACKAGE_RE: Final = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
DEBIAN_VERSION_RE: Final = re.compile(r"^(?:[0-9]+:)?[A-Za-z0-9][A-Za-z0-9.+~-]*$")
GENERATE_KEYS: Final = ("run", "env", "dir")
# What a generate step's strings may name, besides the recipe's placeholders: the job directory,
# the source and HOME as the step sees them, and the toolchain's command (`go`, `gcc`, `cargo`).
GENERATE_PLACEHOLDERS: Final = (*templates.RECIPE_PLACEHOLDERS, "root", "src", "home", "toolchain")
TEST_KEYS: Final = ("run", "expect", "env", "timeout")
DEFAULT_TEST_TIMEOUT: Final = 120  # seconds

# Names as the OCI distribution spec allows them (crossyard.reference), since recipes and images
# are pushed under them. Recipe names are one component (they are also directory names:
# deps/<recipe>, logs/<recipe>). 128 characters leaves the registry host room within the 255
# that clients allow for host/name.
NAME_RE: Final = re.compile(rf"^{COMPONENT}$")
MAX_NAME: Final = 128
# A version is tagged as is (images, the binaries' index) and with a suffix (registry/push.py:
# `VERSION-binaries`, `VERSION-linux-riscv64`): it leaves room for the longest within 128.
VERSION_SUFFIXES: Final = ("-binaries", *(f"-{p.slug}" for p in PLATFORMS.values()))
MAX_VERSION: Final = 128 - max(len(s) for s in VERSION_SUFFIXES)
# An output is a plain file name: in the job's output directory, an OCI annotation, a file
# `oras pull` writes. No `/`, no leading `.` or `-`, nothing a shell or a tag would trip on.
FILE_NAME_RE: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,254}$")
ENV_NAME_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
IMPORT_PATH_RE: Final = re.compile(r"^[A-Za-z0-9_~-][A-Za-z0-9._~-]*(?:/[A-Za-z0-9._~-]+)*$")
# The largest SOURCE_DATE_EPOCH a date can be made of (9999-12-31T23:59:59Z).
MAX_EPOCH: Final = 253402300799

IMAGE_KEYS: Final = (
    "name", "base", "files", "entrypoint", "cmd", "user", "env", "ports", "labels", "workdir",
    "compression",
)
IMAGE_FILE_KEYS: Final = ("artifact", "file", "src", "dest", "mode")
COMPRESSIONS: Final = ("gzip", "pgzip", "zstd")
BASE_WORDS: Final = ("scratch", "crossyard/static", "recipe:", "oci-layout:", "oci-archive:")
PORT_RE: Final = re.compile(r"^[0-9]{1,5}(?:/(?:tcp|udp|sctp))?$")
DEFAULT_IMAGE_DEST: Final = "/usr/local/bin/"


@dataclass(frozen=True, kw_only=True)
class Source:
    """Where a recipe's source comes from: exactly one of a local path, a git commit, a URL, a
    Debian source package (`debian` at an exact `version` of a `suite`; `sha256` then optionally
    pins its .dsc). `commit` is the git commit; on the others it is optional and declares the
    upstream commit the tree was made from (a Debian tarball of Kubernetes), for `{commit}`.
    `patches` (workspace files) are applied in order to whatever the source gives."""

    path: Path | None = None
    git: str | None = None
    commit: str | None = None
    url: str | None = None
    sha256: str | None = None
    debian: str | None = None
    suite: str | None = None
    version: str | None = None
    subdir: str | None = None
    exclude: tuple[str, ...] = ()
    patches: tuple[Path, ...] = ()

    @property
    def kind(self) -> str:
        if self.path is not None:
            return "path"
        return "git" if self.git else "debian" if self.debian else "url"

    def normalized(self, workspace_root: Path) -> dict[str, Any]:
        normal = self._normalized(workspace_root)
        if self.patches:  # their contents are in the source's identity (`SourceResolver`)
            normal["patches"] = [_workspace_relative(p, workspace_root) for p in self.patches]
        return normal

    def _normalized(self, workspace_root: Path) -> dict[str, Any]:
        if self.debian:
            return {"kind": "debian", "debian": self.debian, "suite": self.suite, "version": self.version,
                    "sha256": self.sha256, "subdir": self.subdir, "exclude": list(self.exclude),
                    "commit": self.commit}
        if self.git:
            return {"kind": "git", "git": self.git, "commit": self.commit, "subdir": self.subdir}
        if self.path is not None:
            # Relative to the workspace (the content is keyed by the tree digest), so moving a
            # workspace keeps its keys.
            where = _workspace_relative(self.path, workspace_root)
            normal = {"kind": "path", "subdir": self.subdir, "exclude": list(self.exclude), "where": where}
        else:
            normal = {"kind": "url", "url": self.url, "sha256": self.sha256, "subdir": self.subdir}
        # A declared commit is what `{commit}` stamps into the outputs. Only when there is one,
        # so that the keys of sources without one stay what they were.
        return normal if self.commit is None else {**normal, "commit": self.commit}


def _workspace_relative(path: Path, workspace_root: Path) -> str:
    try:
        return path.relative_to(workspace_root).as_posix()
    except ValueError:
        return path.as_posix()


@dataclass(frozen=True, kw_only=True)
class GenerateStep:
    """One `[[generate]]` step: a command run in the job before the build (a code generator
    built from the same tree, say), in the build's working directory (or `dir` below it), with
    the build's environment and its own `env` over it. Its strings are templates."""

    run: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    dir: str | None = None

    def normalized(self) -> dict[str, Any]:
        return {"run": list(self.run), "env": dict(self.env), "dir": self.dir}


@dataclass(frozen=True, kw_only=True)
class Test:
    run: tuple[str, ...]
    expect: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    # Not in the input key (`normalized`): how long a test may take does not change an output.
    timeout: int = DEFAULT_TEST_TIMEOUT


@dataclass(frozen=True, kw_only=True)
class BaseRef:
    """Where an image's base comes from, parsed from `[image] base`."""

    kind: str  # scratch | static | recipe | oci-layout | oci-archive | registry
    value: str = ""  # recipe name, path (as written), or `host/repo`
    ref: str | None = None  # the ref inside a layout/archive, or the registry digest
    registry: Reference | None = None  # a registry base, parsed (host and digest always set)

    @property
    def text(self) -> str:
        if self.kind == "scratch":
            return "scratch"
        if self.kind == "static":
            return "crossyard/static"
        if self.kind == "registry":
            return f"{self.value}@{self.ref}"
        return f"{self.kind}:{self.value}" + (f":{self.ref}" if self.ref else "")

    @classmethod
    def parse(cls, text: str, *, file: Path | None = None) -> BaseRef:
        origin = f"{file}: " if file is not None else ""
        if text == "scratch":
            return cls(kind="scratch")
        if text == "crossyard/static":
            return cls(kind="static")
        for prefix in ("recipe", "oci-layout", "oci-archive"):
            if text.startswith(prefix + ":"):
                rest = text[len(prefix) + 1:]
                # Like skopeo's `oci:PATH:REF`: the path ends at the first colon.
                value, _, ref = rest.partition(":")
                if not value:
                    break
                if prefix == "recipe" and (ref or not NAME_RE.match(value)):
                    break
                return cls(kind=prefix, value=value, ref=ref or None)
        if split_host(text.partition("@")[0])[0] is not None:
            image = Reference.parse(text, what=f"{origin}[image] base")
            if image.digest is None:
                raise ConfigurationError(
                    f"{origin}[image] base `{text}` is pinned by tag; pin it by digest "
                    f"(`{image.name}@sha256:…`; `skopeo inspect --format '{{{{.Digest}}}}' "
                    f"docker://{text}` prints it): a base that can move would make the image key lie"
                )
            # A tag next to the digest is a note for readers: the digest is what is pulled and
            # what the key holds.
            return cls(kind="registry", value=image.name, ref=image.digest, registry=image)
        raise ConfigurationError(
            f"{origin}[image] base `{text}` is not a known base{suggest(text, BASE_WORDS)}; use "
            "`scratch`, `crossyard/static`, `recipe:<image recipe>`, `oci-layout:<dir>[:<ref>]`, "
            "`oci-archive:<tar>[:<ref>]` or `<host>/<repo>@sha256:<digest>` (registry bases are "
            "pinned by digest)"
        )


@dataclass(frozen=True, kw_only=True)
class ImageFile:
    """One `[[image.files]]` entry: an artifact (of some recipe) or a workspace file."""

    dest: str
    artifact: str | None = None
    file: str | None = None  # one file of a multi-file artifact
    src: str | None = None  # workspace-relative
    mode: int | None = None  # None: the artifact's own mode / 0644 for static files

    def normalized(self) -> dict[str, Any]:
        return {"dest": self.dest, "artifact": self.artifact, "file": self.file, "src": self.src,
                "mode": None if self.mode is None else f"{self.mode:04o}"}


@dataclass(frozen=True, kw_only=True)
class ImageSpec:
    """A recipe's `[image]` table, validated as far as one file allows (the rest at assembly)."""

    name: str
    base: BaseRef = field(default_factory=lambda: BaseRef(kind="scratch"))
    files: tuple[ImageFile, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    user: str = ""
    env: tuple[tuple[str, str], ...] = ()
    ports: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    workdir: str = ""
    compression: str = "gzip"

    @property
    def artifact_recipes(self) -> tuple[str, ...]:
        return tuple(sorted({f.artifact for f in self.files if f.artifact}))

    def normalized(self) -> dict[str, Any]:
        """What the image's cache key sees of the spec."""
        return {
            "name": self.name, "base": self.base.text, "files": [f.normalized() for f in self.files],
            "entrypoint": list(self.entrypoint), "cmd": list(self.cmd), "user": self.user,
            "env": dict(self.env), "ports": list(self.ports), "labels": dict(self.labels),
            "workdir": self.workdir, "compression": self.compression,
        }

    @classmethod
    def from_toml(cls, table: Mapping[str, Any], *, file: Path, recipe: str, kind: str) -> ImageSpec:
        check_keys(table, IMAGE_KEYS, where="[image]", file=file)
        name = table.get("name", recipe)
        if not isinstance(name, str) or not REPOSITORY_RE.match(name) or len(name) > MAX_NAME:
            raise ConfigurationError(
                f"{file}: [image] name {name!r} is not a valid repository name (lowercase letters "
                f"and digits, separated by . _ - or /, at most {MAX_NAME} characters)"
            )
        if kind == "dockerfile":
            extra = sorted(set(table) - {"name"})
            if extra:
                raise ConfigurationError(
                    f"{file}: [image] `{extra[0]}`: a `dockerfile` recipe's image comes from its "
                    "Dockerfile; its [image] table takes only `name`"
                )
        base_text = table.get("base", "scratch")
        if not isinstance(base_text, str):
            raise ConfigurationError(f"{file}: [image] base must be a string, got {base_text!r}")
        base = BaseRef.parse(base_text, file=file)
        if base.kind == "recipe" and base.value == recipe:
            raise ConfigurationError(f"{file}: [image] base `{base_text}` names the recipe itself")
        raw_files = table.get("files", [])
        if not isinstance(raw_files, list):
            raise ConfigurationError(f"{file}: [image] files must be an array of tables ([[image.files]])")
        files = tuple(_image_file(entry, i, file=file) for i, entry in enumerate(raw_files))
        compression = table.get("compression", "gzip")
        if compression not in COMPRESSIONS:
            raise ConfigurationError(
                f"{file}: [image] compression `{compression}`{suggest(str(compression), COMPRESSIONS)}; "
                f"use one of: {', '.join(COMPRESSIONS)}"
            )
        ports = _str_list(table.get("ports", []), key="image.ports", file=file)
        for port in ports:
            if not PORT_RE.match(port):
                raise ConfigurationError(f"{file}: [image] port `{port}` is not PORT[/tcp|/udp|/sctp]")
        user = table.get("user", "")
        if not isinstance(user, str) or not re.fullmatch(r"[A-Za-z0-9_.-]*(?::[A-Za-z0-9_.-]+)?", user):
            raise ConfigurationError(f"{file}: [image] user {user!r} must be NAME, UID or UID:GID")
        workdir = table.get("workdir", "")
        if not isinstance(workdir, str) or (workdir and not workdir.startswith("/")):
            raise ConfigurationError(f"{file}: [image] workdir {workdir!r} must be an absolute path")
        if kind == "image" and not files and base.kind == "scratch":
            raise ConfigurationError(
                f"{file}: an `image` recipe on `scratch` needs [[image.files]] (artifact = \"<recipe>\")"
            )
        return cls(
            name=name,
            base=base,
            files=files,
            entrypoint=_str_list(table.get("entrypoint", []), key="image.entrypoint", file=file),
            cmd=_str_list(table.get("cmd", []), key="image.cmd", file=file),
            user=user,
            env=_str_table(table.get("env", {}), key="image.env", file=file),
            ports=ports,
            labels=_str_table(table.get("labels", {}), key="image.labels", file=file),
            workdir=workdir,
            compression=str(compression),
        )


def _str_table(value: Any, *, key: str, file: Path) -> tuple[tuple[str, str], ...]:
    table = _table(value, key=key, file=file)
    for k, v in table.items():
        if not isinstance(v, str | int | float | bool) or isinstance(v, dict | list):
            raise ConfigurationError(f"{file}: `{key}.{k}` must be a string, got {v!r}")
    return tuple(sorted((str(k), str(v)) for k, v in table.items()))


def _image_file(value: Any, index: int, *, file: Path) -> ImageFile:
    where = f"[[image.files]] #{index + 1}"
    table = _table(value, key=f"image.files[{index}]", file=file)
    check_keys(table, IMAGE_FILE_KEYS, where=where, file=file)
    given = [k for k in ("artifact", "src") if k in table]
    if len(given) != 1:
        raise ConfigurationError(
            f"{file}: {where} needs exactly one of `artifact` (a recipe name) or `src` "
            f"(a workspace file); got {given or 'neither'}"
        )
    for key in ("artifact", "file", "src", "dest"):
        if key in table and (not isinstance(table[key], str) or not table[key]):
            raise ConfigurationError(f"{file}: {where} `{key}` must be a non-empty string")
    if "file" in table and "artifact" not in table:
        raise ConfigurationError(f"{file}: {where} `file` picks a file of an `artifact`; add `artifact`")
    src = table.get("src")
    if src is not None:
        if not _stays_inside(src):
            raise ConfigurationError(
                f"{file}: {where} src `{src}` leaves the workspace; give a path relative to the "
                "workspace root, without `..`"
            )
        if "dest" not in table:
            raise ConfigurationError(f"{file}: {where} needs `dest` (the absolute path in the image)")
    if "file" in table:
        check_name(table["file"], key=f"{where} `file`", file=file)
    dest = _image_dest(table.get("dest", DEFAULT_IMAGE_DEST), where=where, file=file)
    mode = table.get("mode")
    if mode is not None:
        try:
            mode = int(mode, 8) if isinstance(mode, str) else int(mode)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o7777:
            raise ConfigurationError(f"{file}: {where} mode {table['mode']!r} must be octal, like \"0755\"")
    artifact = table.get("artifact")
    if artifact is not None and not NAME_RE.match(artifact):
        raise ConfigurationError(f"{file}: {where} artifact `{artifact}` is not a recipe name")
    return ImageFile(dest=dest, artifact=artifact, file=table.get("file"), src=src, mode=mode)


def _image_dest(dest: str, *, where: str, file: Path) -> str:
    """`dest` normalised (`/usr//bin/./x` → `/usr/bin/x`), a trailing `/` kept: it means "into
    this directory". A `..` is refused rather than resolved: it would say the author expected a
    different layout than the one they get."""
    if not dest.startswith("/") or ".." in dest.split("/"):
        raise ConfigurationError(
            f"{file}: {where} dest `{dest}` must be an absolute path in the image, without `..`"
        )
    normal = "/" + posixpath.normpath(dest).lstrip("/")
    return normal if normal == "/" or not dest.endswith(("/", "/.")) else normal + "/"


@dataclass(frozen=True, kw_only=True)
class Recipe:
    name: str
    kind: str
    file: Path
    version: str = "0.0.0"
    description: str = ""
    platforms: tuple[Platform, ...] = DEFAULT_PLATFORMS
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    # Toolchain definitions allowed to build it (empty: any, best first). Not keyed: the chosen
    # toolchain's identity (and a GOPATH build's gopath digest) is.
    toolchains: tuple[str, ...] = ()
    depends: tuple[str, ...] = ()
    source: Source | None = None
    source_date_epoch: int | None = None
    options: BuildOptions | None = None  # its kind's table; None for an `image` recipe
    # platform (OCI) → the options with its [platform."…".<kind>] table merged in
    overrides: Mapping[str, BuildOptions] = field(default_factory=dict)
    test: Test | None = None
    image: ImageSpec | None = None
    platforms_given: bool = True  # false: the defaults (an image recipe then takes its inputs')
    generate: tuple[GenerateStep, ...] = ()

    @property
    def requires(self) -> tuple[str, ...]:
        """Recipes this one needs built first: `depends`, plus its image's artifacts and base."""
        extra: list[str] = []
        if self.image is not None:
            extra.extend(a for a in self.image.artifact_recipes if a != self.name)
            if self.image.base.kind == "recipe":
                extra.append(self.image.base.value)
        return tuple(dict.fromkeys([*self.depends, *extra]))

    @property
    def commit(self) -> str | None:
        """The source's commit (git), or the upstream commit a path or URL source declares."""
        return self.source.commit if self.source is not None else None

    def options_for(self, platform: Platform) -> BuildOptions:
        """Build options with the platform's overrides applied (lists replace, not append); a
        recipe made in code without options has its kind's defaults."""
        options = self.overrides.get(platform.oci, self.options)
        if options is None:
            if self.kind not in OPTIONS:
                raise ValueError(f"a `{self.kind}` recipe has no build options")
            options = OPTIONS[self.kind]()
        return options

    def normalized(self, platform: Platform, workspace_root: Path) -> dict[str, Any]:
        """What the input key sees of this recipe for one platform."""
        return {
            "name": self.name,
            "kind": self.kind,
            "version": self.version,
            "source": self.source.normalized(workspace_root) if self.source else None,
            "source_date_epoch": self.source_date_epoch,
            "options": self.options_for(platform).normalized() if self.kind in OPTIONS else {},
            "test": None
            if self.test is None
            else {"run": list(self.test.run), "expect": self.test.expect, "env": dict(self.test.env)},
            # Only when there are any, so that the keys of recipes without them stay what they were.
            **({"generate": [g.normalized() for g in self.generate]} if self.generate else {}),
        }


# -- loading -------------------------------------------------------------------------------------


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a syntax error names the file and line."""
    try:
        # Only a regular file: opening a FIFO would wait forever for a writer (hence O_NONBLOCK,
        # which a regular file ignores), reading a device forever for its end.
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ConfigurationError(f"{path}: not a regular file; a TOML file is expected here")
            data = handle.read()
        return tomllib.loads(data.decode())
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ConfigurationError(
            f"{path}: not UTF-8 (byte 0x{data[error.start]:02x} on line {line}); TOML files are UTF-8: "
            "re-save it as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as error:
        where = str(error)
        if "end of document" in where:  # tomllib gives no line there: it is the last one
            where += f" (line {len(path.read_text(errors='replace').splitlines())})"
        raise ConfigurationError(f"{path}: malformed TOML: {where}; fix the syntax at that line") from None
    except OSError as error:
        raise ConfigurationError(f"{path}: cannot read: {error.strerror}") from None


def _str_list(value: Any, *, key: str, file: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(
            f"{file}: `{key}` must be a list of strings (a TOML array: [\"...\"]), got {value!r}"
        )
    return tuple(value)


def _table(value: Any, *, key: str, file: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigurationError(f"{file}: `{key}` must be a table, got {type(value).__name__}")
    return value


def _stays_inside(path: str) -> bool:
    """Lexically: relative, without `..` (symlinks are checked where the tree is on disk)."""
    return bool(path) and not path.startswith("/") and ".." not in PurePosixPath(path).parts


def check_name(value: Any, *, key: str, file: Path) -> str:
    """A plain file name (an output, a binary, a cargo profile): it stays in its directory."""
    if not isinstance(value, str) or not FILE_NAME_RE.match(value):
        raise ConfigurationError(
            f"{file}: {key} = {value!r} is not a plain file name; use letters, digits, `.`, `_`, "
            "`+` and `-`, without `/` and not starting with `.` or `-`"
        )
    return value


def check_relative(value: Any, *, key: str, file: Path, inside: str) -> str:
    """A path relative to the tree it names a file of: it never leaves that tree."""
    if not isinstance(value, str) or not _stays_inside(value):
        raise ConfigurationError(
            f"{file}: {key} = {value!r} must be a path inside {inside}: relative, without a leading "
            "`/` or `..`"
        )
    return value


def check_epoch(value: Any, *, key: str) -> int:
    """SOURCE_DATE_EPOCH as a TOML integer; `key` names where it came from."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_EPOCH:
        raise ConfigurationError(
            f"{key} = {value!r} must be a whole number of seconds since 1970, from 0 to {MAX_EPOCH} "
            "(a TOML integer, e.g. 1767225600)"
        )
    return value


def _env_table(value: Any, *, key: str, file: Path) -> tuple[tuple[str, str], ...]:
    table = _table(value, key=key, file=file)
    for name, text in table.items():
        if not ENV_NAME_RE.match(name) or not isinstance(text, str):
            raise ConfigurationError(
                f"{file}: `{key}` must map variable names (A-Z, 0-9, _) to strings, got {name} = {text!r}"
            )
    return tuple(sorted(table.items()))


def _nul(value: Any, key: str = "") -> str | None:
    """The dotted key of the first string (or key) holding a NUL byte, which no path, argument
    or environment variable can carry."""
    if isinstance(value, str):
        return key if "\0" in value else None
    if isinstance(value, dict):
        children = [(f"{key}.{k}" if key else k, k, v) for k, v in value.items()]
    elif isinstance(value, list):
        children = [(f"{key}[{i}]", "", v) for i, v in enumerate(value)]
    else:
        return None
    for path, name, child in children:
        found = path if "\0" in name else _nul(child, path)
        if found:
            return found
    return None


@functools.lru_cache(maxsize=8)
def _resolved_root(root: Path) -> Path:
    """The workspace (or [build] source_root) with symlinks resolved: once per catalog, not once
    per recipe (a thousand recipes, a thousand identical `realpath` walks)."""
    return root.resolve()


def _options(value: Any, kind: str, *, where: str, file: Path, commit: str | None) -> dict[str, Any]:
    """A kind's options table (`where`: its table), each value checked against its field in
    `build_options` and returned as that field holds it (tuples; tables as sorted pairs).

    One rule for every recipe (README, "Recipes"): nothing is converted, so a list is a TOML
    array, a flag a boolean, text a string; `cgo = "false"` or `tags = "netgo"` is an error, not
    cgo on or `-tags=n,e,t,g,o`. Names and paths have more rules (`check_name`, `check_relative`);
    template strings may use only the placeholders a build fills in."""
    options = _table(value, key=where.strip("[]"), file=file)
    cls = OPTIONS[kind]
    types, templated = cls.types(), cls.templated()
    check_keys(options, types, where=where, file=file)
    typed: dict[str, Any] = {}
    for key, option in options.items():
        expected = types[key]
        at = f"{where} `{key}`"
        dotted = f"{where.strip('[]')}.{key}"
        if isinstance(expected, tuple):
            if option not in expected:
                raise ConfigurationError(
                    f"{file}: {at} = {option!r}{suggest(str(option), expected)}; use one of: {', '.join(expected)}"
                )
        elif expected == NAME:
            check_name(option, key=at, file=file)
        elif expected == REL:
            check_relative(option, key=at, file=file, inside="the source tree")
        elif expected == IMPORT:
            _check_import_path(option, at=at, file=file)
        elif expected == IMPORT_DIRS:
            for path, directory in _table(option, key=dotted, file=file).items():
                _check_import_path(path, at=f"{at} key", file=file)
                check_relative(directory, key=f"{at} `{path}`", file=file, inside="the source tree")
                if PurePosixPath(directory) == PurePosixPath("."):
                    raise ConfigurationError(
                        f"{file}: {at} `{path}` = {directory!r} names the whole tree: name a directory "
                        "in it (without `gopath_dirs` the whole tree is `import_path`'s)"
                    )
            option = tuple(sorted(option.items()))
        elif expected in (STRS, RELS, OUTS):
            option = _str_list(option, key=dotted, file=file)
            for item in option:
                if expected != STRS:
                    check_relative(item, key=at, file=file, inside="the source tree")
                if expected == OUTS:
                    check_name(PurePosixPath(item).name, key=f"{at} (its file name)", file=file)
        elif expected == ENV:
            option = _env_table(option, key=dotted, file=file)
        elif expected == ARGS:
            for name, arg in _table(option, key=dotted, file=file).items():
                if not isinstance(arg, str | int | float | bool):
                    raise ConfigurationError(f"{file}: {at} `{name}` must be a string, got {arg!r}")
                if name in RESERVED_BUILD_ARGS:
                    raise ConfigurationError(
                        f"{file}: {at} sets `{name}`, which crossyard sets for each platform; remove "
                        f"it (declare `ARG {name}` in the Dockerfile to use it)"
                    )
            option = tuple(sorted(option.items()))
        elif expected == BOOL:
            if not isinstance(option, bool):
                raise ConfigurationError(f"{file}: {at} must be a boolean (true or false), got {option!r}")
        elif not isinstance(option, str) or not option:
            raise ConfigurationError(f'{file}: {at} must be a non-empty string (in quotes: "..."), got {option!r}')
        if key in templated:
            _check_templates(option, f"{file}: {at}", cls.PLACEHOLDERS, commit=commit)
        typed[key] = option
    if kind == "c":  # two outputs of one name: one would silently replace the other
        names = [PurePosixPath(p).name for p in (*typed.get("outputs", ()), *typed.get("headers", ()))]
        if "output" in typed:
            names.append(typed["output"])
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigurationError(f"{file}: {where}: two outputs are named `{twice[0]}`; rename one")
    return typed


def _check_import_path(value: Any, *, at: str, file: Path) -> None:
    if not isinstance(value, str) or not IMPORT_PATH_RE.match(value) or ".." in value.split("/"):
        raise ConfigurationError(
            f'{file}: {at} = {value!r} is not a Go import path (like "k8s.io/kubernetes": '
            "letters, digits, `.`, `_`, `~`, `-`, separated by `/`)"
        )


def _check_templates(value: Any, where: str, known: tuple[str, ...], *, commit: str | None) -> None:
    """Each template string of one option; `where` is "FILE: [table] `key`", and a table's
    entries are named by key: "FILE: [go] `env.NAME`"."""
    if isinstance(value, str):
        templates.check(value, known, where=where)
        if commit is None and "commit" in templates.placeholders(value):
            raise ConfigurationError(
                f"{where} uses {{commit}}, but the recipe's [source] has no commit; add "
                '`commit = "<40-hex>"` to [source], the upstream commit this source was made from '
                "(a `git` source has its own)"
            )
    elif isinstance(value, tuple):
        for item in value:
            if isinstance(item, tuple):  # (name, value) of an env or build_args table
                name, text = item
                _check_templates(text, f"{where.removesuffix('`')}.{name}`", known, commit=commit)
            else:
                _check_templates(item, where, known, commit=commit)


def parse_recipe(data: Mapping[str, Any], *, file: Path, source_root: Path | None = None) -> Recipe:
    """`source_root`: the directory a local [source] path must stay in (default: the recipe's)."""
    nul = _nul(data)
    if nul is not None:
        key = nul.replace("\0", "\\u0000")
        raise ConfigurationError(f"{file}: `{key}` contains a NUL byte (\\u0000); remove it")
    check_keys(data, TOP_KEYS, where="the recipe", file=file)
    name = data.get("name", file.stem)
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > MAX_NAME:
        origin = "" if "name" in data else " (from the file name; set `name`)"
        raise ConfigurationError(
            f"{file}: `name` {name!r}{origin} is not a valid recipe name: lowercase letters and digits, "
            f"separated by one `.`, `_`, `__` or dashes, at most {MAX_NAME} characters (it names "
            "a registry repository)"
        )
    kind = data.get("kind")
    if kind is None:
        raise ConfigurationError(f"{file}: missing `kind`; one of: {', '.join(KINDS)}")
    if kind not in KINDS:
        raise ConfigurationError(
            f"{file}: unknown kind `{kind}`{suggest(str(kind), KINDS)}; known kinds: {', '.join(KINDS)}"
        )
    version = data.get("version", "0.0.0")
    if not isinstance(version, str) or not TAG_RE.match(version) or len(version) > MAX_VERSION:
        raise ConfigurationError(
            f"{file}: `version` {version!r} cannot be a registry tag: use a string of letters, digits, "
            f"`.`, `_` and `-`, not starting with `.` or `-`, at most {MAX_VERSION} characters "
            f"(it is tagged with suffixes like `{VERSION_SUFFIXES[1]}`), e.g. \"1.2.0\""
        )
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ConfigurationError(f"{file}: `description` must be a string, got {description!r}")
    try:
        platforms = (
            parse_platforms(list(_str_list(data["platforms"], key="platforms", file=file)))
            if "platforms" in data
            else DEFAULT_PLATFORMS
        )
    except ConfigurationError as error:
        raise ConfigurationError(f"{file}: `platforms`: {error}") from None
    strategies = _str_list(data.get("strategies", list(DEFAULT_STRATEGIES)), key="strategies", file=file)
    for listed, key in ((platforms, "platforms"), (strategies, "strategies")):
        if not listed:
            raise ConfigurationError(f"{file}: `{key}` is empty; list at least one, or remove it for the defaults")
    for strategy in strategies:
        if strategy not in STRATEGIES:
            raise ConfigurationError(
                f"{file}: unknown strategy `{strategy}`{suggest(strategy, STRATEGIES)}; "
                f"known strategies: {', '.join(STRATEGIES)}"
            )
    toolchains = _str_list(data.get("toolchains", []), key="toolchains", file=file)
    if "toolchains" in data and not toolchains:
        raise ConfigurationError(
            f"{file}: `toolchains` is empty; name the toolchain definitions that may build it, or "
            "remove it for any"
        )
    depends = _str_list(data.get("depends", []), key="depends", file=file)
    toolchain = data.get("toolchain")
    if toolchain is not None and (not isinstance(toolchain, str) or not NAME_RE.match(toolchain)):
        raise ConfigurationError(
            f"{file}: `toolchain` = {toolchain!r} must name a toolchain definition (a [table] of "
            "toolchains/*.toml, e.g. \"go-k8s\"), or be removed to take the best available"
        )
    epoch = data.get("source_date_epoch")
    if epoch is not None:
        check_epoch(epoch, key=f"{file}: `source_date_epoch`")

    source = (
        _parse_source(data["source"], file=file, source_root=source_root or file.parent)
        if "source" in data else None
    )
    if source is None and kind in ("go", "c", "rust", "dockerfile"):
        raise ConfigurationError(f"{file}: a `{kind}` recipe needs a [source] table (path, git or url)")

    for other in OPTIONS:
        if other != kind and other in data:
            raise ConfigurationError(f"{file}: a `{kind}` recipe cannot have a [{other}] table")
    commit = source.commit if source is not None else None
    given: dict[str, Any] = {}
    options: BuildOptions | None = None
    if kind in OPTIONS:
        given = _options(data.get(kind, {}), kind, where=f"[{kind}]", file=file, commit=commit)
        options = OPTIONS[kind](**given, given=frozenset(given))

    overrides: dict[str, BuildOptions] = {}
    for plat_name, table in _table(data.get("platform", {}), key="platform", file=file).items():
        try:
            plat = Platform.parse(plat_name)
        except ConfigurationError as error:
            raise ConfigurationError(f"{file}: [platform.\"{plat_name}\"]: {error}") from None
        table = _table(table, key=f"platform.{plat_name}", file=file)
        check_keys(table, (kind,) if kind in OPTIONS else (), where=f'[platform."{plat_name}"]', file=file)
        if kind in OPTIONS:
            where = f'[platform."{plat_name}".{kind}]'
            merged = {**given, **_options(table.get(kind, {}), kind, where=where, file=file, commit=commit)}
            overrides[plat.oci] = OPTIONS[kind](**merged, given=frozenset(merged))

    for where, options_of in (("[go]", options), *((f'[platform."{o}".go]', v) for o, v in overrides.items())):
        if isinstance(options_of, GoOptions):
            _check_gopath(options_of, where=where, file=file)
    for where, options_of in ((f"[{kind}]", options), *((f'[platform."{o}".{kind}]', v) for o, v in overrides.items())):
        if isinstance(options_of, DockerfileOptions) and options_of.artifacts == "named-context" \
                and toolchains == ("docker",):
            raise ConfigurationError(
                f'{file}: {where} `artifacts` = "named-context" needs BuildKit (the legacy builder has no '
                'named contexts), but `toolchains` = ["docker"]; allow "buildkit" in `toolchains`, or '
                'use `artifacts = "context"` (COPY artifacts/<recipe>/<file>)'
            )
    generate = _generate(data.get("generate", []), file=file, commit=commit)
    if generate and kind not in BUILD_RECIPE_KINDS:
        raise ConfigurationError(
            f"{file}: [[generate]] runs before a build in the job's directory; a `{kind}` recipe has "
            f"none (only {', '.join(BUILD_RECIPE_KINDS)} recipes)"
        )

    test = None
    if "test" in data:
        table = _table(data["test"], key="test", file=file)
        check_keys(table, TEST_KEYS, where="[test]", file=file)
        run = _str_list(table.get("run", []), key="test.run", file=file)
        if not run:
            raise ConfigurationError(
                f"{file}: [test] needs `run` = [\"<output>\", args…] (the output file to run and its arguments)"
            )
        expect = table.get("expect")
        if expect is not None and not isinstance(expect, str):
            raise ConfigurationError(
                f"{file}: [test] `expect` must be a string (text the output must contain), got {expect!r}"
            )
        timeout = table.get("timeout", DEFAULT_TEST_TIMEOUT)
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0:
            raise ConfigurationError(
                f"{file}: [test] timeout = {timeout!r}: give the smoke test's time limit in seconds, "
                f"a whole number above 0 (default {DEFAULT_TEST_TIMEOUT})"
            )
        test = Test(run=run, expect=expect, env=_env_table(table.get("env", {}), key="test.env", file=file),
                    timeout=timeout)
    image = None
    if "image" in data:
        image = ImageSpec.from_toml(_table(data["image"], key="image", file=file), file=file,
                                    recipe=name, kind=kind)
    if kind == "image" and image is None:
        raise ConfigurationError(f"{file}: an `image` recipe needs an [image] table")
    if kind == "dockerfile" and image is None:
        # Its jobs build images; the assembly stage indexes them as `<recipe>:<version>`.
        image = ImageSpec.from_toml({}, file=file, recipe=name, kind=kind)
    if image is not None and kind in BUILD_RECIPE_KINDS and not image.files:
        # The image wraps the recipe's own artifact, every file under /usr/local/bin/.
        image = replace(image, files=(ImageFile(dest=DEFAULT_IMAGE_DEST, artifact=name),))

    return Recipe(
        name=name,
        kind=kind,
        file=file,
        version=version,
        description=description,
        platforms=platforms,
        strategies=strategies,
        toolchains=toolchains,
        depends=depends,
        source=source,
        source_date_epoch=epoch,
        options=options,
        overrides=overrides,
        test=test,
        image=image,
        platforms_given="platforms" in data,
        generate=generate,
    )


def _check_gopath(options: GoOptions, *, where: str, file: Path) -> None:
    """GOPATH mode needs the import path the tree is placed under, and only it uses one."""
    if options.gopath and options.import_path is None:
        raise ConfigurationError(
            f"{file}: {where} gopath = true needs `import_path`, where the source sits in GOPATH "
            '(e.g. import_path = "k8s.io/kubernetes")'
        )
    if options.import_path is not None and not options.gopath:
        raise ConfigurationError(
            f"{file}: {where} `import_path` places the source in GOPATH; add `gopath = true` (GOPATH "
            "mode, GO111MODULE=off) or remove it (module mode reads go.mod)"
        )
    dirs = dict(options.gopath_dirs)
    if dirs and options.import_path not in dirs:
        raise ConfigurationError(
            f"{file}: {where} `gopath_dirs` places parts of the tree in GOPATH; the build runs in "
            f"`import_path`'s, so it must be one of them ({', '.join(dirs)}), not "
            f"{options.import_path!r}"
        )
    for what, items in (("directories", dirs.values()), ("import paths", dirs)):
        paths = sorted(PurePosixPath(item) for item in items)
        for outer, inner in itertools.pairwise(paths):
            if inner == outer or outer in inner.parents:
                raise ConfigurationError(
                    f"{file}: {where} `gopath_dirs` names `{outer}` and `{inner}`: one holds the "
                    f"other; name {what} that do not overlap"
                )


def _parse_source(value: Any, *, file: Path, source_root: Path) -> Source:
    table = _table(value, key="source", file=file)
    check_keys(table, SOURCE_KEYS, where="[source]", file=file)
    given = [k for k in SOURCE_KINDS if k in table]
    if len(given) != 1:
        raise ConfigurationError(
            f"{file}: [source] needs exactly one of `path`, `git`, `url`, `debian` (got {given or 'none'})"
        )
    for key in ("path", "git", "url", "subdir", "debian", "suite", "version"):
        if key in table and (not isinstance(table[key], str) or not table[key]):
            raise ConfigurationError(f"{file}: [source] `{key}` must be a non-empty string, got {table[key]!r}")
    for key in ("suite", "version"):
        if key in table and "debian" not in table:
            raise ConfigurationError(
                f"{file}: [source] `{key}` belongs to a Debian source package (`debian = \"<source package>\"`)"
            )
    exclude = _str_list(table.get("exclude", []), key="source.exclude", file=file)
    patches = tuple(
        _workspace_file(name, key="[source] patches", file=file, source_root=source_root)
        for name in _str_list(table.get("patches", []), key="source.patches", file=file)
    )
    commit = table.get("commit")
    if (commit is not None or "git" in table) and (
        not isinstance(commit, str) or not re.fullmatch(r"[0-9a-f]{40}", commit)
    ):
        what = "git needs `commit` =" if "git" in table else "`commit` (the upstream commit) must be"
        raise ConfigurationError(
            f"{file}: [source] {what} a full 40-hex commit id (branches and tags move), got {commit!r}"
        )
    subdir = table.get("subdir")
    if subdir is not None:
        check_relative(subdir, key="[source] `subdir`", file=file, inside="the source tree")
    common: dict[str, Any] = {"commit": commit, "subdir": subdir, "exclude": exclude, "patches": patches}
    if "path" in table:
        path = (file.parent / table["path"]).resolve()
        root = _resolved_root(source_root)
        # Relative to the recipe, anywhere in the workspace (recipes/services/x.toml reaches
        # ../../services/x), never outside it: symlinks resolved, so a link cannot lead out.
        if not path.is_relative_to(root):
            raise ConfigurationError(
                f"{file}: [source] path `{table['path']}` is {path}, outside {root}, where local sources "
                "must be (the workspace, or crossyard.toml's [build] source_root); use `git` or `url` "
                "for others"
            )
        if not path.is_dir():
            raise ConfigurationError(
                f"{file}: [source] path `{table['path']}` does not exist (looked for {path}); "
                "fix the path, relative to the recipe file"
            )
        return Source(path=path, **common)
    if "git" in table:
        return Source(git=table["git"], **common)
    sha = table.get("sha256")
    if "debian" in table:
        return _debian_source(table, sha, common, file=file)
    url = table["url"]
    if not url.startswith(("https://", "http://")):
        raise ConfigurationError(f"{file}: [source] url must be https:// (got {url})")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha.removeprefix("sha256:")):
        raise ConfigurationError(f"{file}: [source] url needs `sha256` = the 64-hex digest of the download")
    return Source(url=url, sha256=sha.removeprefix("sha256:"), **common)


def _debian_source(table: Mapping[str, Any], sha: Any, common: dict[str, Any], *, file: Path) -> Source:
    """`debian = "<source package>"`, `suite`, the exact `version`, optionally `sha256` of its .dsc."""
    # Imported here: debian.py reads the configuration, which reads TOML with this module.
    from .debian import is_debian_suite

    package, suite, version = table["debian"], table.get("suite"), table.get("version")
    if not DEBIAN_PACKAGE_RE.match(package):
        raise ConfigurationError(
            f"{file}: [source] debian = {package!r} is not a Debian source package name (lowercase "
            "letters, digits, `+`, `-`, `.`), e.g. \"kubernetes\""
        )
    if suite is None or not is_debian_suite(suite):
        raise ConfigurationError(
            f"{file}: [source] debian needs `suite` = the Debian release to take `{package}` from, "
            f"e.g. \"bookworm\" or \"trixie\" (got {suite!r})"
        )
    if version is None or not DEBIAN_VERSION_RE.match(version):
        raise ConfigurationError(
            f"{file}: [source] debian needs `version` = the exact version of `{package}` in {suite} "
            f"(as `apt-cache showsrc {package}` prints it, e.g. \"1.32.3+ds-2\"), got {version!r}"
        )
    if sha is not None and (not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha.removeprefix("sha256:"))):
        raise ConfigurationError(
            f"{file}: [source] sha256 = {sha!r} must be the 64-hex sha256 of {package}'s .dsc (the "
            "`Checksums-Sha256` line of the .dsc in `apt-cache showsrc`)"
        )
    return Source(debian=package, suite=suite, version=version,
                  sha256=sha.removeprefix("sha256:") if isinstance(sha, str) else None, **common)


def _workspace_file(name: str, *, key: str, file: Path, source_root: Path) -> Path:
    """A file a recipe names (relative to the recipe, like [source] path), which must stay in
    the workspace once symlinks are resolved and be a regular file."""
    path = (file.parent / name).resolve()
    root = _resolved_root(source_root)
    if not name or not path.is_relative_to(root):
        raise ConfigurationError(
            f"{file}: {key}: `{name}` is {path}, outside {root}; name a file in the workspace, "
            "relative to the recipe file"
        )
    if not path.is_file():
        raise ConfigurationError(
            f"{file}: {key}: `{name}` is not a file (looked for {path}); fix the path, relative to the recipe file"
        )
    return path


def _generate(value: Any, *, file: Path, commit: str | None) -> tuple[GenerateStep, ...]:
    """`[[generate]]`: an array of tables, each `run` (argv), optional `env` and `dir`."""
    if not isinstance(value, list):
        raise ConfigurationError(f"{file}: `generate` must be an array of tables ([[generate]])")
    steps = []
    for index, entry in enumerate(value):
        where = f"[[generate]] #{index + 1}"
        table = _table(entry, key=f"generate[{index}]", file=file)
        check_keys(table, GENERATE_KEYS, where=where, file=file)
        run = _str_list(table.get("run", []), key=f"generate[{index}].run", file=file)
        if not run or not run[0]:
            raise ConfigurationError(
                f"{file}: {where} needs `run` = [\"<command>\", args…], e.g. "
                '["{toolchain}", "build", "-o", "{root}/bin/gen", "./cmd/gen"]'
            )
        env = _env_table(table.get("env", {}), key=f"generate[{index}].env", file=file)
        directory = table.get("dir")
        if directory is not None:
            check_relative(directory, key=f"{where} `dir`", file=file, inside="the source tree")
        _check_templates(run, f"{file}: {where} `run`", GENERATE_PLACEHOLDERS, commit=commit)
        _check_templates(env, f"{file}: {where} `env`", GENERATE_PLACEHOLDERS, commit=commit)
        steps.append(GenerateStep(run=run, env=env, dir=directory))
    return tuple(steps)


def load_recipe(path: Path, *, source_root: Path | None = None) -> Recipe:
    return parse_recipe(read_toml(path), file=path, source_root=source_root)


def discover(recipes_dir: Path) -> list[Path]:
    return sorted(recipes_dir.rglob("*.toml")) if recipes_dir.is_dir() else []


@dataclass(frozen=True, kw_only=True)
class Catalog:
    """Every recipe of a workspace, by name."""

    recipes: Mapping[str, Recipe]

    def select(self, names: Iterable[str]) -> list[Recipe]:
        """The named recipes plus everything they depend on (missing names are errors)."""
        out: dict[str, Recipe] = {}
        stack = list(names)
        while stack:
            name = stack.pop()
            if name in out:
                continue
            recipe = self.recipes.get(name)
            if recipe is None:
                raise ConfigurationError(
                    f"no recipe named `{name}`{suggest(name, self.recipes)}; "
                    f"known: {', '.join(sorted(self.recipes)) or '(none)'}"
                )
            out[name] = recipe
            stack.extend(recipe.requires)
        return sorted(out.values(), key=lambda r: r.name)


def load_catalog(recipes_dir: Path, *, source_root: Path | None = None) -> Catalog:
    """Every recipe under `recipes_dir`; local sources must be inside `source_root` (default:
    the workspace, the directory holding `recipes/`)."""
    recipes: dict[str, Recipe] = {}
    for path in discover(recipes_dir):
        recipe = load_recipe(path, source_root=source_root or recipes_dir.parent)
        if recipe.name in recipes:
            raise ConfigurationError(
                f"{path}: recipe name `{recipe.name}` is already used by {recipes[recipe.name].file}"
            )
        recipes[recipe.name] = recipe
    _check_image_references(recipes)
    return Catalog(recipes=recipes)


def _check_image_references(recipes: Mapping[str, Recipe]) -> None:
    """An image naming an unknown recipe (artifact or base) fails at load, naming the file; so
    do two images claiming one `name:version` (the last assembled would win each run)."""
    claimed: dict[str, Recipe] = {}
    for recipe in recipes.values():
        if recipe.image is None:
            continue
        ref = f"{recipe.image.name}:{recipe.version}"
        if ref in claimed:
            raise ConfigurationError(
                f"{recipe.file}: image `{ref}` is also made by {claimed[ref].file}; give one of them "
                "another [image] name or version"
            )
        claimed[ref] = recipe
        for name in recipe.image.artifact_recipes:
            other = recipes.get(name)
            if other is None:
                raise ConfigurationError(
                    f"{recipe.file}: [[image.files]] artifact `{name}` is not a recipe{suggest(name, recipes)}; "
                    f"known recipes: {', '.join(sorted(recipes))}"
                )
            if other.kind not in BUILD_RECIPE_KINDS:
                raise ConfigurationError(
                    f"{recipe.file}: [[image.files]] artifact `{name}` is a `{other.kind}` recipe; "
                    f"artifacts come from {', '.join(BUILD_RECIPE_KINDS)} recipes"
                )
        base = recipe.image.base
        if base.kind == "recipe":
            other = recipes.get(base.value)
            if other is None or other.image is None:
                raise ConfigurationError(
                    f"{recipe.file}: [image] base `recipe:{base.value}` is not a recipe with an image"
                    f"{suggest(base.value, [r.name for r in recipes.values() if r.image])}; images: "
                    f"{', '.join(sorted(r.name for r in recipes.values() if r.image)) or '(none)'}"
                )
