"""`crossyard.lock`: what each recipe x platform was built from and what it produced.

Users commit it. `build` updates the entries of the jobs it ran or found cached; `build --locked`
instead holds every output against it and names each artifact that drifted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigurationError
from .fsutil import atomic_write_text
from .recipes import read_toml

LOCK_VERSION = 1
HEADER = "# crossyard.lock: written by `crossyard build`; commit it. `crossyard build --locked` checks against it.\n"


@dataclass(frozen=True, kw_only=True)
class LockEntry:
    recipe: str
    platform: str
    input_key: str
    toolchain: str
    strategy: str
    outputs: Mapping[str, str] = field(default_factory=dict)
    reproducible: bool = True  # false for Dockerfile builds: only as reproducible as the Dockerfile

    @property
    def id(self) -> str:
        return f"{self.recipe}@{self.platform}"


@dataclass(frozen=True, kw_only=True)
class Lock:
    entries: Mapping[str, LockEntry] = field(default_factory=dict)  # by id

    def merged(self, updates: Iterable[LockEntry]) -> Lock:
        entries = dict(self.entries)
        for entry in updates:
            entries[entry.id] = entry
        return Lock(entries=entries)


@dataclass(frozen=True, kw_only=True)
class Drift:
    id: str
    reason: str


def read_lock(path: Path) -> Lock:
    if not path.exists():
        return Lock()
    data = read_toml(path)
    version = data.get("version")
    if version != LOCK_VERSION:
        raise ConfigurationError(f"{path}: lock version {version!r} is not {LOCK_VERSION}; rebuild without --locked")
    entries: dict[str, LockEntry] = {}
    for i, raw in enumerate(data.get("artifact", [])):
        try:
            entry = LockEntry(
                recipe=raw["recipe"], platform=raw["platform"], input_key=raw["input_key"],
                toolchain=raw.get("toolchain", ""), strategy=raw.get("strategy", ""),
                outputs=dict(raw.get("outputs", {})), reproducible=bool(raw.get("reproducible", True)),
            )
        except KeyError as error:
            raise ConfigurationError(f"{path}: [[artifact]] #{i + 1} lacks `{error.args[0]}`") from None
        entries[entry.id] = entry
    return Lock(entries=entries)


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def render_lock(lock: Lock) -> str:
    lines = [HEADER, f"version = {LOCK_VERSION}\n"]
    for entry in sorted(lock.entries.values(), key=lambda e: (e.recipe, e.platform)):
        lines.append("\n[[artifact]]\n")
        fields: list[tuple[str, Any]] = [
            ("recipe", entry.recipe), ("platform", entry.platform), ("input_key", entry.input_key),
            ("toolchain", entry.toolchain), ("strategy", entry.strategy),
        ]
        for key, value in fields:
            lines.append(f"{key} = {_toml_string(value)}\n")
        if not entry.reproducible:
            lines.append("reproducible = false\n")
        lines.append("outputs = { " + ", ".join(
            f"{_toml_string(name)} = {_toml_string(digest)}" for name, digest in sorted(entry.outputs.items())
        ) + " }\n")
    return "".join(lines)


def write_lock(path: Path, lock: Lock) -> None:
    atomic_write_text(path, render_lock(lock))


def compare(lock: Lock, built: Iterable[LockEntry]) -> list[Drift]:
    """Each built entry whose outputs differ from the lock, with the likely reason."""
    drifts = []
    for entry in built:
        locked = lock.entries.get(entry.id)
        if locked is None:
            drifts.append(Drift(id=entry.id, reason="not in crossyard.lock"))
            continue
        if dict(locked.outputs) == dict(entry.outputs):
            continue
        changed = sorted(set(locked.outputs) ^ set(entry.outputs)) or sorted(
            name for name in entry.outputs if locked.outputs.get(name) != entry.outputs[name]
        )
        if locked.input_key == entry.input_key:
            why = "same inputs, different output (not reproducible)"
        elif locked.toolchain != entry.toolchain:
            why = f"toolchain changed ({locked.toolchain} -> {entry.toolchain})"
        else:
            why = "inputs changed"
        detail = ", ".join(
            f"{name}: {locked.outputs.get(name, 'absent')} -> {entry.outputs.get(name, 'absent')}" for name in changed
        )
        drifts.append(Drift(id=entry.id, reason=f"{why}; {detail}"))
    return drifts
