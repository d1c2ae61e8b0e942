"""A workspace opened for work: its settings, recipes, toolchains, sources and store.

Settings cascade like cibuildwheel's: defaults, then `crossyard.toml`, then the command line,
then `CROSSYARD_*` environment variables; an unknown key names the nearest known one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from .engine import probe as engine_probe
from .errors import ConfigurationError, check_keys
from .plan import BUILD_KINDS, BuildGraph, plan
from .platforms import Platform, parse_platforms
from .recipes import Catalog, Recipe, load_catalog, read_toml
from .sources import SourceResolver
from .store import Store
from .toolchains import ProbeCache, Prober, load_definitions, qemu_command
from .workspace import Workspace

CONFIG_KEYS = ("build", "registry", "debian")  # [registry]: registry/manager.py, [debian]: debian.py
BUILD_KEYS = ("platforms", "jobs", "source_date_epoch")


@dataclass(frozen=True, kw_only=True)
class Settings:
    platforms: tuple[Platform, ...] | None = None  # None: each recipe's own list
    jobs: int = os.cpu_count() or 1
    source_date_epoch: int = 0


def load_settings(workspace: Workspace, *, platforms: Sequence[str] = (), jobs: int | None = None) -> Settings:
    data = read_toml(workspace.config_path) if workspace.config_path.exists() else {}
    check_keys(data, CONFIG_KEYS, where="crossyard.toml", file=workspace.config_path)
    build = data.get("build", {})
    check_keys(build, BUILD_KEYS, where="[build]", file=workspace.config_path)
    chosen: list[str] = list(build.get("platforms", []))
    if platforms:
        chosen = [p for value in platforms for p in value.split(",") if p]
    env_platforms = os.environ.get("CROSSYARD_PLATFORMS")
    if env_platforms:
        chosen = [p for p in env_platforms.split(",") if p]
    count = int(os.environ.get("CROSSYARD_JOBS", jobs or build.get("jobs", os.cpu_count() or 1)))
    if count < 1:
        raise ConfigurationError(f"--jobs must be at least 1 (got {count})")
    return Settings(
        platforms=parse_platforms(chosen) if chosen else None,
        jobs=count,
        source_date_epoch=int(build.get("source_date_epoch", 0)),
    )


class Project:
    def __init__(self, workspace: Workspace, settings: Settings) -> None:
        self.workspace = workspace
        self.settings = settings
        self.resolver = SourceResolver(workspace.cache_dir)
        self.store = Store(workspace.store_dir)
        self.probe_cache = ProbeCache(workspace.cache_dir / "toolchains.json")

    @cached_property
    def catalog(self) -> Catalog:
        catalog = load_catalog(self.workspace.recipes_dir)
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
            if recipe.source is not None and recipe.source.git and recipe.source_date_epoch is None:
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
                engine=engine_probe,  # only `dockerfile` recipes ask (DOCKER_HOST)
            )
        finally:
            self.probe_cache.save()
