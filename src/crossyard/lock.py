"""`crossyard.lock`: what each recipe x platform was built from and what it produced.

Users commit it. `build` updates the entries of the jobs it ran or found cached; `build --locked`
instead holds every output against it and names each artifact that drifted.

Images are recorded too (`[[image]]`): the index digest, each platform's manifest digest, and
per layer its diff_id (sha256 of the tar), its blob digest and the compressor that made the blob,
so a drift can be told apart: same diff_id with another blob means compression, not content.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigurationError
from .fsutil import atomic_write_text
from .platforms import Platform
from .recipes import read_toml
from .records import BuildRecord, outputs_from

LOCK_VERSION = 1
HEADER = "# crossyard.lock: written by `crossyard build`; commit it. `crossyard build --locked` checks against it.\n"


@dataclass(frozen=True, kw_only=True)
class LockedLayer:
    diff_id: str
    blob: str
    compressor: str


@dataclass(frozen=True, kw_only=True)
class LockedPlatform:
    platform: str
    manifest: str
    layers: tuple[LockedLayer, ...] = ()
    inputs: tuple[str, ...] = ()  # input keys of the build jobs whose outputs the image holds


@dataclass(frozen=True, kw_only=True)
class ImageLockEntry:
    name: str
    version: str
    recipe: str
    key: str
    index: str
    base: str = ""
    ca_bundle: str = ""  # the crossyard/static base's CA bundle digest (shipped, or CROSSYARD_CA_BUNDLE)
    reproducible: bool = True  # false for Dockerfile images
    platforms: tuple[LockedPlatform, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True, kw_only=True)
class Lock:
    entries: Mapping[str, BuildRecord] = field(default_factory=dict)  # by id, status "locked"
    images: Mapping[str, ImageLockEntry] = field(default_factory=dict)  # by name:version

    def merged(self, updates: Iterable[BuildRecord], images: Iterable[ImageLockEntry] = ()) -> Lock:
        entries = dict(self.entries)
        for entry in updates:
            entries[entry.id] = entry
        locked_images = dict(self.images)
        for image in images:
            locked_images[image.id] = image
        return Lock(entries=entries, images=locked_images)

    def pruned(self, *, artifacts: AbstractSet[str], images: AbstractSet[str]) -> Lock:
        """Only the entries the catalog can still produce (ids `recipe@platform`, `name:version`):
        a deleted recipe, a dropped platform or a bumped version leaves no stale entry behind."""
        return Lock(
            entries={i: e for i, e in self.entries.items() if i in artifacts},
            images={i: e for i, e in self.images.items() if i in images},
        )


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
    entries: dict[str, BuildRecord] = {}
    for i, raw in enumerate(data.get("artifact", [])):
        try:
            entry = BuildRecord(
                recipe=raw["recipe"], platform=Platform.parse(raw["platform"]), status="locked",
                input_key=raw["input_key"], toolchain=raw.get("toolchain", ""), strategy=raw.get("strategy", ""),
                outputs=outputs_from(raw.get("outputs", {})), reproducible=bool(raw.get("reproducible", True)),
            )
        except KeyError as error:
            raise ConfigurationError(f"{path}: [[artifact]] #{i + 1} lacks `{error.args[0]}`") from None
        except ConfigurationError as error:
            raise ConfigurationError(f"{path}: [[artifact]] #{i + 1}: {error}") from None
        entries[entry.id] = entry
    images: dict[str, ImageLockEntry] = {}
    for i, raw in enumerate(data.get("image", [])):
        try:
            image = ImageLockEntry(
                name=raw["name"], version=raw["version"], recipe=raw.get("recipe", ""), key=raw.get("key", ""),
                index=raw["index"], base=raw.get("base", ""), ca_bundle=raw.get("ca_bundle", ""),
                reproducible=bool(raw.get("reproducible", True)),
                platforms=tuple(
                    LockedPlatform(
                        platform=p["platform"], manifest=p["manifest"],
                        layers=tuple(LockedLayer(diff_id=layer["diff_id"], blob=layer["blob"],
                                                 compressor=layer.get("compressor", ""))
                                     for layer in p.get("layers", [])),
                        inputs=tuple(p.get("inputs", ())),
                    )
                    for p in raw.get("platform", [])
                ),
            )
        except KeyError as error:
            raise ConfigurationError(f"{path}: [[image]] #{i + 1} lacks `{error.args[0]}`") from None
        images[image.id] = image
    return Lock(entries=entries, images=images)


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def render_lock(lock: Lock) -> str:
    lines = [HEADER, f"version = {LOCK_VERSION}\n"]
    for entry in sorted(lock.entries.values(), key=lambda e: (e.recipe, e.platform.oci)):
        lines.append("\n[[artifact]]\n")
        fields: list[tuple[str, Any]] = [
            ("recipe", entry.recipe), ("platform", entry.platform.oci), ("input_key", entry.input_key),
            ("toolchain", entry.toolchain), ("strategy", entry.strategy),
        ]
        for key, value in fields:
            lines.append(f"{key} = {_toml_string(value)}\n")
        if not entry.reproducible:
            lines.append("reproducible = false\n")
        lines.append("outputs = { " + ", ".join(
            f"{_toml_string(name)} = {_toml_string(digest)}" for name, digest in sorted(entry.digests.items())
        ) + " }\n")
    for image in sorted(lock.images.values(), key=lambda i: (i.name, i.version)):
        lines.append("\n[[image]]\n")
        for key, value in (("name", image.name), ("version", image.version), ("recipe", image.recipe),
                           ("key", image.key), ("index", image.index), ("base", image.base)):
            lines.append(f"{key} = {_toml_string(value)}\n")
        if image.ca_bundle:
            lines.append(f"ca_bundle = {_toml_string(image.ca_bundle)}\n")
        if not image.reproducible:
            lines.append("reproducible = false\n")
        for plat in image.platforms:
            lines.append("\n[[image.platform]]\n")
            lines.append(f"platform = {_toml_string(plat.platform)}\n")
            lines.append(f"manifest = {_toml_string(plat.manifest)}\n")
            if plat.inputs:
                lines.append("inputs = [" + ", ".join(_toml_string(k) for k in plat.inputs) + "]\n")
            lines.append("layers = [\n")
            for layer in plat.layers:
                lines.append(
                    f"  {{ diff_id = {_toml_string(layer.diff_id)}, blob = {_toml_string(layer.blob)}, "
                    f"compressor = {_toml_string(layer.compressor)} }},\n"
                )
            lines.append("]\n")
    return "".join(lines)


def write_lock(path: Path, lock: Lock) -> None:
    atomic_write_text(path, render_lock(lock))


def compare(lock: Lock, built: Iterable[BuildRecord]) -> list[Drift]:
    """Each built record whose outputs differ from the lock, with the likely reason."""
    drifts = []
    for entry in built:
        locked = lock.entries.get(entry.id)
        if locked is None:
            drifts.append(Drift(id=entry.id, reason="not in crossyard.lock"))
            continue
        was, now = locked.digests, entry.digests
        if was == now:
            continue
        changed = sorted(set(was) ^ set(now)) or sorted(name for name in now if was.get(name) != now[name])
        if locked.input_key == entry.input_key:
            why = "same inputs, different output (not reproducible)"
        elif locked.toolchain != entry.toolchain:
            why = f"toolchain changed ({locked.toolchain} -> {entry.toolchain})"
        else:
            why = "inputs changed"
        detail = ", ".join(
            f"{name}: {was.get(name, 'absent')} -> {now.get(name, 'absent')}" for name in changed
        )
        drifts.append(Drift(id=entry.id, reason=f"{why}; {detail}"))
    return drifts


def compare_entries(lock: Lock, built: Iterable[BuildRecord]) -> tuple[list[Drift], list[Drift]]:
    """(drifts, warnings): `compare`, except that an entry marked not reproducible (a Dockerfile
    job) only warns, as its image does in `compare_images`."""
    built = list(built)
    loose = {e.id for e in built if not e.reproducible}
    loose |= {key for key, e in lock.entries.items() if not e.reproducible}
    drifts = compare(lock, built)
    return [d for d in drifts if d.id not in loose], [d for d in drifts if d.id in loose]


def compare_images(lock: Lock, built: Iterable[ImageLockEntry]) -> tuple[list[Drift], list[Drift]]:
    """(drifts, warnings): each built image whose digests differ from the lock, explained from
    the outside in (index → platform manifest → layer: compression or contents). Drift of an
    image marked not reproducible (a Dockerfile build) is only a warning."""
    drifts: list[Drift] = []
    warnings: list[Drift] = []
    for image in built:
        locked = lock.images.get(image.id)
        if locked is None:
            drifts.append(Drift(id=image.id, reason="image not in crossyard.lock"))
            continue
        if locked.index == image.index:
            continue
        reasons = _explain_image(locked, image)
        target = warnings if not (locked.reproducible and image.reproducible) else drifts
        target.append(Drift(id=image.id, reason=f"index {locked.index} -> {image.index}; " + "; ".join(reasons)))
    return drifts, warnings


def _explain_image(locked: ImageLockEntry, built: ImageLockEntry) -> list[str]:
    reasons: list[str] = []
    if locked.key != built.key:
        reasons.append("inputs changed (image key differs)")
    if locked.ca_bundle != built.ca_bundle:
        reasons.append(f"the static base's CA bundle changed ({locked.ca_bundle or 'none'} -> {built.ca_bundle or 'none'})")
    old = {p.platform: p for p in locked.platforms}
    new = {p.platform: p for p in built.platforms}
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a is None or b is None:
            reasons.append(f"{name}: {'added' if a is None else 'removed'}")
            continue
        if a.manifest == b.manifest:
            continue
        layer_notes = []
        for i, (la, lb) in enumerate(zip(a.layers, b.layers, strict=False)):
            if la == lb:
                continue
            if la.diff_id == lb.diff_id:
                layer_notes.append(
                    f"layer {i + 1}: same contents (diff_id), different blob: compression "
                    f"({la.compressor} -> {lb.compressor})"
                )
            else:
                layer_notes.append(f"layer {i + 1}: contents differ (diff_id {la.diff_id} -> {lb.diff_id})")
        if len(a.layers) != len(b.layers):
            layer_notes.append(f"{len(a.layers)} -> {len(b.layers)} layers")
        if not layer_notes:
            layer_notes.append("same layers: the config or annotations differ")
        reasons.append(f"{name}: manifest {a.manifest} -> {b.manifest}: " + ", ".join(layer_notes))
    if not reasons:
        reasons.append("same platform manifests: the index annotations differ")
    return reasons
