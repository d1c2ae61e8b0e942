"""The build options of each recipe kind, as frozen, typed values.

A recipe's `[go]`, `[c]`, `[rust]` or `[dockerfile]` table, with its `[platform."…".<kind>]`
table merged over it (a key there replaces the key, lists are not appended), becomes one of
these when the recipe loads (`crossyard.recipes`); builders read fields, never a dict.

Each field's metadata says what its TOML value must be (one of the words below) and whether its
strings are templates (`crossyard.templates`); the loader checks every value against that, so a
type is written once. Values are never converted: `cgo = "false"` is an error, not cgo on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Final, TypeVar

from .templates import JOB_DIRECTORIES, RECIPE_PLACEHOLDERS

# What a value must be. NAME: a plain file name; REL: a path that stays inside its tree.
STR, BOOL, STRS, ENV, ARGS = "string", "boolean", "list of strings", "table of strings", "table of values"
NAME, REL, RELS = "file name", "relative path", "list of relative paths"
IMPORT = "Go import path"
IMPORT_DIRS = "table of Go import paths to relative paths"
OUTS = "list of relative paths to outputs"  # each file's name is an output's name
C_BUILDS: Final = ("sources", "make", "cmake")  # a word from a closed set
# Where a `dockerfile` recipe's Dockerfile finds its dependencies' artifacts: `context`, at
# artifacts/<recipe>/<file> in the build context (one platform's per build); `named-context`, in
# BuildKit's named context `artifacts`, one per platform (`COPY --from=artifacts <recipe>/<file>`),
# so one BuildKit solve builds every platform.
ARTIFACT_PLACES: Final = ("context", "named-context")
# Build args crossyard sets for each platform (builders/dockerfile.py); a recipe cannot.
RESERVED_BUILD_ARGS: Final = (
    "TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
    "BUILDPLATFORM", "BUILDOS", "BUILDARCH", "SOURCE_DATE_EPOCH",
)


def option(kind: str | tuple[str, ...], default: Any = None, *, templated: bool = False) -> Any:
    """A field whose TOML value must be `kind`; `templated`: its strings may use placeholders."""
    return field(default=default, metadata={"type": kind, "templated": templated})


@dataclass(frozen=True, kw_only=True)
class KindOptions:
    """What every kind's options share: which keys the recipe set."""

    PLACEHOLDERS: ClassVar[tuple[str, ...]] = RECIPE_PLACEHOLDERS
    # The keys the recipe wrote. The input key is taken over those as written, not over the
    # defaults: that is what it has always been taken over, and re-keying every artifact for
    # the same bytes would only cost rebuilds (a changed default bumps BUILD_ENV_VERSION).
    given: frozenset[str] = field(default=frozenset(), repr=False)

    @classmethod
    def types(cls) -> dict[str, str | tuple[str, ...]]:
        """Each option's name and what its value must be."""
        return {spec.name: spec.type for spec in OPTION_SPECS[cls]}

    @classmethod
    def templated(cls) -> frozenset[str]:
        return frozenset(spec.name for spec in OPTION_SPECS[cls] if spec.templated)

    def normalized(self) -> dict[str, Any]:
        """What the input key sees: the options the recipe set, as TOML gave them, and any other
        that is not its default (options made in code, not loaded, set no `given`)."""
        out: dict[str, Any] = {}
        for spec in OPTION_SPECS[type(self)]:
            value = getattr(self, spec.name)
            if spec.name not in self.given and value == spec.default:
                continue
            if spec.type in (ENV, ARGS):
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[spec.name] = value
        return out


@dataclass(frozen=True, kw_only=True)
class OptionSpec:
    """One option as its field declares it (read once per kind: every recipe and job uses it)."""

    name: str
    type: str | tuple[str, ...]
    templated: bool
    default: Any


@dataclass(frozen=True, kw_only=True)
class GoOptions(KindOptions):
    package: str = option(REL, ".")
    output: str | None = option(NAME)  # default: the recipe's name
    ldflags: tuple[str, ...] = option(STRS, (), templated=True)
    tags: tuple[str, ...] = option(STRS, ())
    cgo: bool = option(BOOL, False)
    env: tuple[tuple[str, str], ...] = option(ENV, (), templated=True)  # sorted by name
    # GOPATH mode (GO111MODULE=off, vendor/ used as GOPATH does): the source is placed at
    # `{root}/gopath/src/<import_path>` and built there; a toolchain's `gopath` follows it.
    gopath: bool = option(BOOL, False)
    import_path: str | None = option(IMPORT)
    # A tree holding several Go projects (Debian's docker.io: buildkit/, engine/, cli/, as its
    # debian/rules places them): each import path's directory of the tree is placed there in
    # GOPATH instead of the whole tree; the build runs in `import_path`'s. Sorted by import path.
    gopath_dirs: tuple[tuple[str, str], ...] = option(IMPORT_DIRS, ())


@dataclass(frozen=True, kw_only=True)
class COptions(KindOptions):
    sources: tuple[str, ...] = option(RELS, ())
    cflags: tuple[str, ...] = option(STRS, ("-O2",), templated=True)
    ldflags: tuple[str, ...] = option(STRS, (), templated=True)
    libs: tuple[str, ...] = option(STRS, ())
    output: str | None = option(NAME)  # default: the recipe's name
    headers: tuple[str, ...] = option(OUTS, ())
    build: str = option(C_BUILDS, "sources")
    make_args: tuple[str, ...] = option(STRS, (), templated=True)
    cmake_args: tuple[str, ...] = option(STRS, (), templated=True)
    outputs: tuple[str, ...] | None = option(OUTS)  # default: (the recipe's name,)
    static: bool = option(BOOL, False)


@dataclass(frozen=True, kw_only=True)
class RustOptions(KindOptions):
    package: str | None = option(STR)
    bin: str | None = option(NAME)  # default: the package, else the recipe's name
    features: tuple[str, ...] = option(STRS, ())
    profile: str = option(NAME, "release")
    env: tuple[tuple[str, str], ...] = option(ENV, (), templated=True)  # sorted by name
    locked: bool = option(BOOL, False)
    static: bool = option(BOOL, False)  # glibc's crt-static: runs on `scratch`/`crossyard/static`


@dataclass(frozen=True, kw_only=True)
class DockerfileOptions(KindOptions):
    # The build runs on an engine, not in a job directory: no {deps} or {out}.
    PLACEHOLDERS: ClassVar[tuple[str, ...]] = tuple(
        p for p in RECIPE_PLACEHOLDERS if p not in JOB_DIRECTORIES
    )
    context: str = option(REL, ".")
    file: str = option(REL, "Dockerfile")  # relative to the context
    # Sorted by name; strings are templates, TOML numbers and booleans kept as given.
    build_args: tuple[tuple[str, str | int | float | bool], ...] = option(ARGS, (), templated=True)
    target: str | None = option(STR)
    artifacts: str = option(ARTIFACT_PLACES, "context")


BuildOptions = GoOptions | COptions | RustOptions | DockerfileOptions
OPTIONS: Final[dict[str, type[BuildOptions]]] = {
    "go": GoOptions, "c": COptions, "rust": RustOptions, "dockerfile": DockerfileOptions,
}

OPTION_SPECS: Final[dict[type[KindOptions], tuple[OptionSpec, ...]]] = {
    cls: tuple(OptionSpec(name=f.name, type=f.metadata["type"], templated=f.metadata["templated"],
                          default=f.default) for f in fields(cls) if "type" in f.metadata)
    for cls in OPTIONS.values()
}

OptionsT = TypeVar("OptionsT", bound=KindOptions)


def of_kind(options: BuildOptions, cls: type[OptionsT]) -> OptionsT:
    """`options` as the builder's own kind (a mismatch is crossyard's bug, not the recipe's)."""
    if not isinstance(options, cls):
        raise TypeError(f"{cls.__name__} expected, got {type(options).__name__}")
    return options
