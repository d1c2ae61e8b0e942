"""Where a crossyard workspace lives and where its run-time state goes.

A workspace is the directory holding `crossyard.toml` (or, failing that, `recipes/`). Its
run-time state (store, caches, keys, PKI, logs) lives under `.crossyard/`, ignored by git.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigurationError

CONFIG_NAME = "crossyard.toml"
LOCK_NAME = "crossyard.lock"


@dataclass(frozen=True, kw_only=True)
class Workspace:
    root: Path

    @property
    def state(self) -> Path:
        return self.root / ".crossyard"

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def lock_path(self) -> Path:
        return self.root / LOCK_NAME

    @property
    def recipes_dir(self) -> Path:
        return self.root / "recipes"

    @property
    def toolchains_dir(self) -> Path:
        return self.root / "toolchains"

    @property
    def store_dir(self) -> Path:
        return self.state / "store"

    @property
    def cache_dir(self) -> Path:
        return self.state / "cache"

    @property
    def logs_dir(self) -> Path:
        return self.state / "logs"

    @property
    def runs_dir(self) -> Path:
        """One directory per `crossyard build` (report/runs.py) and `latest`."""
        return self.state / "runs"

    @property
    def pki_dir(self) -> Path:
        return self.state / "pki"

    @property
    def toolchain_cache_dir(self) -> Path:
        """Toolchains' own caches (GOCACHE, …): per user, shared by workspaces, content-safe."""
        base = os.environ.get("CROSSYARD_CACHE_HOME") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "crossyard"
        )
        return Path(base) / "toolchains"

    @classmethod
    def find(cls, start: Path | None = None, *, explicit: Path | None = None) -> Workspace:
        """`--workspace` if given, else the nearest directory up from `start` with a config."""
        env = os.environ.get("CROSSYARD_WORKSPACE")
        if explicit is None and env:
            explicit = Path(env)
        if explicit is not None:
            if not explicit.is_dir():
                raise ConfigurationError(
                    f"workspace {explicit} does not exist; create it with `crossyard init {explicit}`"
                )
            return cls(root=explicit.resolve())
        here = (start or Path.cwd()).resolve()
        for candidate in (here, *here.parents):
            if (candidate / CONFIG_NAME).is_file() or (candidate / "recipes").is_dir():
                return cls(root=candidate)
        return cls(root=here)
