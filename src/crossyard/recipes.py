"""Recipes: the TOML files under `recipes/` that say what to build.

Loading is strict: an unknown key, kind, platform or strategy is a `ConfigurationError` naming
the file and suggesting the nearest known word; malformed TOML names the file and line. The
result is a frozen `Recipe` whose `normalized()` form is what the input key is taken over, so
re-ordering keys or spelling `aarch64` instead of `linux/arm64` does not change any key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .errors import ConfigurationError, check_keys, suggest
from .platforms import ARM64, RISCV64, Platform, parse_platforms

KINDS: Final = ("go", "c", "rust", "image", "dockerfile")
STRATEGIES: Final = ("cross", "native", "emulated")
DEFAULT_PLATFORMS: Final = (RISCV64, ARM64)
DEFAULT_STRATEGIES: Final = ("cross", "native", "emulated")

TOP_KEYS: Final = (
    "name", "kind", "version", "description", "platforms", "strategies", "depends",
    "source_date_epoch", "source", "test", "platform", "image", *("go", "c", "rust", "dockerfile"),
)
SOURCE_KEYS: Final = ("path", "git", "commit", "url", "sha256", "subdir", "exclude")
TEST_KEYS: Final = ("run", "expect", "env")
OPTION_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "go": ("package", "output", "ldflags", "tags", "cgo", "env"),
    "c": ("sources", "cflags", "ldflags", "libs", "output", "headers", "build", "make_args", "cmake_args", "outputs", "static"),
    "rust": ("package", "bin", "features", "profile", "env", "locked"),
    "dockerfile": ("context", "file", "build_args", "target"),
}
NAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True, kw_only=True)
class Source:
    """Where a recipe's source comes from: exactly one of a local path, a git commit, a URL."""

    path: Path | None = None
    git: str | None = None
    commit: str | None = None
    url: str | None = None
    sha256: str | None = None
    subdir: str | None = None
    exclude: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return "path" if self.path is not None else "git" if self.git else "url"

    def normalized(self, workspace_root: Path) -> dict[str, Any]:
        if self.path is not None:
            try:
                where = self.path.relative_to(workspace_root).as_posix()
            except ValueError:
                where = self.path.as_posix()
            # Relative to the workspace (the content is keyed by the tree digest), so moving a
            # workspace keeps its keys.
            return {"kind": "path", "subdir": self.subdir, "exclude": list(self.exclude), "where": where}
        if self.git:
            return {"kind": "git", "git": self.git, "commit": self.commit, "subdir": self.subdir}
        return {"kind": "url", "url": self.url, "sha256": self.sha256, "subdir": self.subdir}


@dataclass(frozen=True, kw_only=True)
class Test:
    run: tuple[str, ...]
    expect: str | None = None
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Recipe:
    name: str
    kind: str
    file: Path
    version: str = "0.0.0"
    description: str = ""
    platforms: tuple[Platform, ...] = DEFAULT_PLATFORMS
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    depends: tuple[str, ...] = ()
    source: Source | None = None
    source_date_epoch: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # platform → options
    test: Test | None = None
    image: Mapping[str, Any] | None = None

    def options_for(self, platform: Platform) -> dict[str, Any]:
        """Build options with the platform's overrides applied (lists replace, not append)."""
        merged = dict(self.options)
        merged.update(self.overrides.get(platform.oci, {}))
        return merged

    def normalized(self, platform: Platform, workspace_root: Path) -> dict[str, Any]:
        """What the input key sees of this recipe for one platform."""
        return {
            "name": self.name,
            "kind": self.kind,
            "version": self.version,
            "source": self.source.normalized(workspace_root) if self.source else None,
            "source_date_epoch": self.source_date_epoch,
            "options": self.options_for(platform),
            "test": None
            if self.test is None
            else {"run": list(self.test.run), "expect": self.test.expect, "env": dict(self.test.env)},
        }


# -- loading -------------------------------------------------------------------------------------


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a syntax error names the file and line."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        where = str(error)
        if "end of document" in where:  # tomllib gives no line there: it is the last one
            where += f" (line {len(path.read_text(errors='replace').splitlines())})"
        raise ConfigurationError(f"{path}: malformed TOML: {where}; fix the syntax at that line") from None
    except OSError as error:
        raise ConfigurationError(f"{path}: cannot read: {error.strerror}") from None


def _str_list(value: Any, *, key: str, file: Path) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{file}: `{key}` must be a list of strings, got {value!r}")
    return tuple(value)


def _table(value: Any, *, key: str, file: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigurationError(f"{file}: `{key}` must be a table, got {type(value).__name__}")
    return value


def parse_recipe(data: Mapping[str, Any], *, file: Path) -> Recipe:
    check_keys(data, TOP_KEYS, where="the recipe", file=file)
    name = data.get("name", file.stem)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigurationError(
            f"{file}: `name` {name!r} is not a valid recipe name (lowercase letters, digits, . _ -)"
        )
    kind = data.get("kind")
    if kind is None:
        raise ConfigurationError(f"{file}: missing `kind`; one of: {', '.join(KINDS)}")
    if kind not in KINDS:
        raise ConfigurationError(
            f"{file}: unknown kind `{kind}`{suggest(str(kind), KINDS)}; known kinds: {', '.join(KINDS)}"
        )
    try:
        platforms = (
            parse_platforms(list(_str_list(data["platforms"], key="platforms", file=file)))
            if "platforms" in data
            else DEFAULT_PLATFORMS
        )
    except ConfigurationError as error:
        raise ConfigurationError(f"{file}: `platforms`: {error}") from None
    strategies = _str_list(data.get("strategies", list(DEFAULT_STRATEGIES)), key="strategies", file=file)
    for strategy in strategies:
        if strategy not in STRATEGIES:
            raise ConfigurationError(
                f"{file}: unknown strategy `{strategy}`{suggest(strategy, STRATEGIES)}; "
                f"known strategies: {', '.join(STRATEGIES)}"
            )
    depends = _str_list(data.get("depends", []), key="depends", file=file)
    epoch = data.get("source_date_epoch")
    if epoch is not None and (not isinstance(epoch, int) or epoch < 0):
        raise ConfigurationError(f"{file}: `source_date_epoch` must be a non-negative integer")

    source = _parse_source(data["source"], file=file) if "source" in data else None
    if source is None and kind in ("go", "c", "rust", "dockerfile"):
        raise ConfigurationError(f"{file}: a `{kind}` recipe needs a [source] table (path, git or url)")

    options: dict[str, Any] = {}
    if kind in OPTION_KEYS:
        options = _table(data.get(kind, {}), key=kind, file=file)
        check_keys(options, OPTION_KEYS[kind], where=f"[{kind}]", file=file)
    for other in OPTION_KEYS:
        if other != kind and other in data:
            raise ConfigurationError(f"{file}: a `{kind}` recipe cannot have a [{other}] table")

    overrides: dict[str, dict[str, Any]] = {}
    for plat_name, table in _table(data.get("platform", {}), key="platform", file=file).items():
        try:
            plat = Platform.parse(plat_name)
        except ConfigurationError as error:
            raise ConfigurationError(f"{file}: [platform.\"{plat_name}\"]: {error}") from None
        table = _table(table, key=f"platform.{plat_name}", file=file)
        check_keys(table, (kind,), where=f'[platform."{plat_name}"]', file=file)
        inner = _table(table.get(kind, {}), key=f"platform.{plat_name}.{kind}", file=file)
        check_keys(inner, OPTION_KEYS.get(kind, ()), where=f'[platform."{plat_name}".{kind}]', file=file)
        overrides[plat.oci] = inner

    test = None
    if "test" in data:
        table = _table(data["test"], key="test", file=file)
        check_keys(table, TEST_KEYS, where="[test]", file=file)
        if "run" not in table:
            raise ConfigurationError(f"{file}: [test] needs `run` (the output file to run and its arguments)")
        env = _table(table.get("env", {}), key="test.env", file=file)
        test = Test(
            run=_str_list(table["run"], key="test.run", file=file),
            expect=table.get("expect"),
            env=tuple(sorted((str(k), str(v)) for k, v in env.items())),
        )
    image = _table(data["image"], key="image", file=file) if "image" in data else None
    if kind == "image" and image is None:
        raise ConfigurationError(f"{file}: an `image` recipe needs an [image] table")

    return Recipe(
        name=name,
        kind=kind,
        file=file,
        version=str(data.get("version", "0.0.0")),
        description=str(data.get("description", "")),
        platforms=platforms,
        strategies=strategies,
        depends=depends,
        source=source,
        source_date_epoch=epoch,
        options=options,
        overrides=overrides,
        test=test,
        image=image,
    )


def _parse_source(value: Any, *, file: Path) -> Source:
    table = _table(value, key="source", file=file)
    check_keys(table, SOURCE_KEYS, where="[source]", file=file)
    given = [k for k in ("path", "git", "url") if k in table]
    if len(given) != 1:
        raise ConfigurationError(f"{file}: [source] needs exactly one of `path`, `git`, `url` (got {given or 'none'})")
    exclude = _str_list(table.get("exclude", []), key="source.exclude", file=file)
    subdir = table.get("subdir")
    if "path" in table:
        path = (file.parent / str(table["path"])).resolve()
        if not path.is_dir():
            raise ConfigurationError(
                f"{file}: [source] path `{table['path']}` does not exist (looked for {path}); "
                "fix the path, relative to the recipe file"
            )
        return Source(path=path, subdir=subdir, exclude=exclude)
    if "git" in table:
        commit = table.get("commit")
        if not isinstance(commit, str) or not re.fullmatch(r"[0-9a-f]{40}", commit):
            raise ConfigurationError(
                f"{file}: [source] git needs `commit` = a full 40-hex commit id (branches and tags move)"
            )
        return Source(git=str(table["git"]), commit=commit, subdir=subdir, exclude=exclude)
    url = str(table["url"])
    if not url.startswith(("https://", "http://")):
        raise ConfigurationError(f"{file}: [source] url must be https:// (got {url})")
    sha = table.get("sha256")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha.removeprefix("sha256:")):
        raise ConfigurationError(f"{file}: [source] url needs `sha256` = the 64-hex digest of the download")
    return Source(url=url, sha256=sha.removeprefix("sha256:"), subdir=subdir, exclude=exclude)


def load_recipe(path: Path) -> Recipe:
    return parse_recipe(read_toml(path), file=path)


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
            stack.extend(recipe.depends)
        return sorted(out.values(), key=lambda r: r.name)


def load_catalog(recipes_dir: Path) -> Catalog:
    recipes: dict[str, Recipe] = {}
    for path in discover(recipes_dir):
        recipe = load_recipe(path)
        if recipe.name in recipes:
            raise ConfigurationError(
                f"{path}: recipe name `{recipe.name}` is already used by {recipes[recipe.name].file}"
            )
        recipes[recipe.name] = recipe
    return Catalog(recipes=recipes)
