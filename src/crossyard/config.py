"""`crossyard.toml`, read the same way by every module that has a table in it.

Each table belongs to one module, which checks its keys and values: `[build]` project.py,
`[registry]` registry/settings.py, `[debian]` debian.py, `[[nodes]]` nodes.py. Each of them takes the environment as
an argument (`environ`, `os.environ` when the caller gives none) and applies it after the file,
so every value's origin (file and key, flag or variable) is known when it is refused. A table
name that none of them owns is refused whichever command reads the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from .errors import ConfigurationError, check_keys
from .recipes import read_toml
from .workspace import Workspace

TABLES: Final = ("build", "registry", "debian", "nodes")


def read_config(workspace: Workspace) -> dict[str, Any]:
    """The workspace's crossyard.toml (empty when there is none), its table names checked."""
    file = workspace.config_path
    data = read_toml(file) if file.exists() else {}
    check_keys(data, TABLES, where="crossyard.toml", file=file)
    return data


def config_table(config: Mapping[str, Any], name: str, *, file: Path | str) -> dict[str, Any]:
    """`[name]` of a read crossyard.toml (empty when absent), which must be a table."""
    table = config.get(name, {})
    if not isinstance(table, dict):
        raise ConfigurationError(f"{file}: `{name}` must be a table ([{name}]), got {table!r}")
    return table
