"""A workspace opened for work: its settings, recipes, toolchains, sources and store.

Settings cascade like cibuildwheel's: defaults, then `crossyard.toml`, then the command line,
then `CROSSYARD_*` environment variables; an unknown key names the nearest known one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .buildkit.endpoints import BuildKitInfo
from .config import config_table, read_config
from .debian import workspace_mirror
from .engine import probe as engine_probe
from .errors import ConfigurationError, check_keys
from .nodes import Node, load_nodes
from .plan import BUILD_KINDS, BuildGraph, plan
from .platforms import Platform, parse_platforms
from .recipes import Catalog, Recipe, check_epoch, load_catalog
from .sources import SourceResolver
from .store import Store
from .toolchains import ProbeCache, Prober, load_definitions, qemu_command
from .workspace import Workspace

BUILD_KEYS = ("platforms", "jobs", "source_date_epoch", "source_root")


@dataclass(frozen=True, kw_only=True)
class Settings:
    platforms: tuple[Platform, ...] | None = None  # None: each recipe's own list
    jobs: int = os.cpu_count() or 1
    source_date_epoch: int = 0
    source_root: Path | None = None  # where local sources may be; None: the workspace
    nodes: tuple[Node, ...] = ()  # [[nodes]], or this machine alone with `jobs` slots


def load_settings(
    workspace: Workspace, *, platforms: Sequence[str] = (), jobs: int | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Settings:
    """The cascade: defaults, `crossyard.toml` [build], the command line, then `CROSSYARD_*`
    from `environ`. A bad value is a `ConfigurationError` naming where it came from: the file
    and key, the flag or the variable. A variable that is set is used: set but empty is an error,
    not "unset" (an empty `CROSSYARD_JOBS` in CI is a mistake worth hearing about)."""
    file = workspace.config_path
    data = read_config(workspace)
    build = config_table(data, "build", file=file)
    check_keys(build, BUILD_KEYS, where="[build]", file=file)

    chosen: tuple[Platform, ...] | None = None
    if "platforms" in build:
        value = build["platforms"]
        if not isinstance(value, list) or not value or not all(isinstance(p, str) for p in value):
            raise ConfigurationError(
                f"{file}: [build] platforms = {value!r} must be a non-empty list of strings, "
                'e.g. ["linux/riscv64", "linux/arm64"]'
            )
        chosen = _platforms(value, origin=f"{file}: [build] platforms")
    if platforms:
        chosen = _platforms([p for value in platforms for p in value.split(",") if p], origin="--platform")
    if "CROSSYARD_PLATFORMS" in environ:
        text = environ["CROSSYARD_PLATFORMS"]
        chosen = _platforms([p for p in text.split(",") if p.strip()], origin=f"CROSSYARD_PLATFORMS={text!r}")

    count = os.cpu_count() or 1
    if "jobs" in build:
        count = _jobs(build["jobs"], origin=f"{file}: [build] jobs")
    if jobs is not None:
        count = _jobs(jobs, origin="--jobs")
    if "CROSSYARD_JOBS" in environ:
        text = environ["CROSSYARD_JOBS"]
        origin = f"CROSSYARD_JOBS={text!r}"
        count = _jobs(int(text) if text.strip().isdigit() else text, origin=origin)

    epoch = 0
    if "source_date_epoch" in build:
        epoch = check_epoch(build["source_date_epoch"], key=f"{file}: [build] source_date_epoch")
    source_root = _source_root(build["source_root"], workspace) if "source_root" in build else None
    nodes = load_nodes(data.get("nodes"), file=file, jobs=count, environ=environ)
    return Settings(platforms=chosen, jobs=count, source_date_epoch=epoch, source_root=source_root, nodes=nodes)


def _source_root(value: object, workspace: Workspace) -> Path:
    """`[build] source_root`: a workspace nested in a repository (examples/x/) may take its
    sources from the repository (`source_root = "../.."`); nothing else widens where a local
    [source] path may lead. It must hold the workspace, or the workspace's own sources would
    be refused."""
    where = f"{workspace.config_path}: [build] source_root = {value!r}"
    if not isinstance(value, str) or not value or "\0" in value:
        raise ConfigurationError(f"{where} must be a directory path, relative to crossyard.toml")
    root = (workspace.root / value).resolve()
    if not root.is_dir() or not workspace.root.resolve().is_relative_to(root):
        raise ConfigurationError(
            f"{where} must be a directory that holds the workspace (like \"..\"), relative to crossyard.toml"
        )
    return root


def _platforms(names: Sequence[str], *, origin: str) -> tuple[Platform, ...]:
    if not names:
        raise ConfigurationError(f"{origin}: names no platform; give one, e.g. linux/riscv64 (or leave it out)")
    try:
        return parse_platforms(list(names))
    except ConfigurationError as error:
        raise ConfigurationError(f"{origin}: {error}") from None


def _jobs(value: object, *, origin: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"{origin}: the number of parallel jobs must be a whole number, 1 or more (e.g. 4), got {value!r}"
        )
    return value


class Project:
    def __init__(self, workspace: Workspace, settings: Settings) -> None:
        self.workspace = workspace
        self.settings = settings
        self.resolver = SourceResolver(workspace.cache_dir, mirror=lambda: workspace_mirror(workspace))
        self.store = Store(workspace.store_dir)
        self.probe_cache = ProbeCache(workspace.cache_dir / "toolchains.json")

    @cached_property
    def catalog(self) -> Catalog:
        catalog = load_catalog(self.workspace.recipes_dir,
                               source_root=self.settings.source_root or self.workspace.root)
        if not catalog.recipes:
            raise ConfigurationError(
                f"{self.workspace.recipes_dir}: no recipes found; run `crossyard init` or add recipes/*.toml"
            )
        return catalog

    @cached_property
    def prober(self) -> Prober:
        return Prober(load_definitions(self.workspace.toolchains_dir), cache=self.probe_cache)

    def select(self, names: Sequence[str]) -> list[Recipe]:
        return self.catalog.select(names) if names else sorted(self.catalog.recipes.values(), key=lambda r: r.name)

    def fetch_sources(self, graph: BuildGraph) -> None:
        """Fetch and verify every remote source before any job runs: a bad pin fails early."""
        for job in graph.jobs.values():
            self.resolver.resolve(job.recipe)

    def buildkit_daemons(self) -> list[BuildKitInfo]:
        """Every buildkitd of this run (`buildkit` nodes, BUILDKIT_HOST's), probed now: one that
        does not answer is the user's to fix before planning (exit 2)."""
        from .buildkit.endpoints import load_api, probe_for_plan

        endpoints = [n.endpoint() for n in self.settings.nodes if n.transport == "buildkit"]
        if not endpoints:
            return []
        api = load_api(self.workspace)
        return [probe_for_plan(e, api) for e in endpoints]

    def graph(self, names: Sequence[str] = ()) -> BuildGraph:
        recipes = self.select(names)
        if self.settings.platforms is not None:
            wanted = set(self.settings.platforms)
            asked = ", ".join(p.oci for p in self.settings.platforms)
            buildable = [r for r in recipes if r.kind in BUILD_KINDS]
            for recipe in buildable:
                if not wanted & set(recipe.platforms) and names:
                    raise ConfigurationError(
                        f"{recipe.file}: `{recipe.name}` is not built for {asked}; its platforms are "
                        f"{', '.join(p.oci for p in recipe.platforms)}"
                    )
            if buildable and not any(wanted & set(r.platforms) for r in buildable):
                # Building nothing and saying "0 built" would look like success.
                listed = "; ".join(f"{r.name}: {', '.join(p.oci for p in r.platforms)}" for r in buildable[:5])
                raise ConfigurationError(
                    f"no recipe is built for {asked} ({listed}{'; …' if len(buildable) > 5 else ''}); "
                    "add it to a recipe's `platforms`, or ask for one of those"
                )
        digests: dict[str, str] = {}
        epochs: dict[str, int | None] = {}
        for recipe in recipes:
            if recipe.kind not in BUILD_KINDS:
                continue
            digests[recipe.name] = self.resolver.identity(recipe)
            epochs[recipe.name] = None
            # A git commit's time, a Debian source's last changelog entry: known once fetched.
            fetched = recipe.source is not None and recipe.source.kind in ("git", "debian")
            if fetched and recipe.source_date_epoch is None:
                epochs[recipe.name] = self.resolver.resolve(recipe).epoch
        try:
            return plan(
                recipes,
                platforms=self.settings.platforms,
                toolchains=self.prober.candidates,
                source_digests=digests,
                source_epochs=epochs,
                workspace_root=self.workspace.root,
                default_epoch=self.settings.source_date_epoch,
                can_run=lambda p: p == Platform.host() or qemu_command(p) is not None,
                engine=engine_probe,  # only legacy `dockerfile` jobs ask (DOCKER_HOST)
                buildkit=self.buildkit_daemons,  # only `dockerfile` recipes ask
            )
        finally:
            self.probe_cache.save()
