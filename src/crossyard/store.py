"""The local content-addressed store: an OCI image layout under `.crossyard/store`.

Every built binary set is an OCI artifact (like `oras push`): a manifest with
`artifactType = application/vnd.crossyard.artifact.v1`, the empty config, and one layer per
file, named by `org.opencontainers.image.title`. Its index entry carries the platform and the
job's input key, which is the cache: a job whose key is already in the index is not rebuilt.

The newest artifact of a recipe x platform also carries `org.opencontainers.image.ref.name =
<recipe>:<os>-<arch>`, so `skopeo`/`oras` can address it; older entries stay (keyed by input key)
so switching back to an earlier source is free too, until `gc` drops what neither the lock nor a
recent build needs.

A cache hit is trusted only after its blobs are hashed (`find(verify=True)`, `find_image`): a
corrupt artifact is rebuilt, and writing it again replaces the damaged blob. `verify` hashes
the whole store and follows every reference.
"""

from __future__ import annotations

import calendar
import os
import time
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .annotations import (
    ANNOTATION_FILE_MODE,
    ANNOTATION_FINISHED,
    ANNOTATION_IMAGE_KEY,
    ANNOTATION_INPUT_KEY,
    ANNOTATION_NODE,
    ANNOTATION_PLATFORM,
    ANNOTATION_RECIPE,
    ANNOTATION_REPRODUCIBLE,
    ANNOTATION_SOURCE_DIGEST,
    ANNOTATION_STARTED,
    ANNOTATION_STORED,
    ANNOTATION_STRATEGY,
    ANNOTATION_TOOLCHAIN,
)
from .errors import IntegrityError
from .fsutil import atomic_writer
from .hashing import CHUNK, split_digest
from .oci import media
from .oci.copy import children
from .oci.image import rfc3339, tag
from .oci.layout import INCOMING_PREFIX, Descriptor, OciLayout, index_problem
from .platforms import Platform
from .records import BuildRecord, OutputFile

# A blob nothing references may belong to a build writing right now (blobs go in before the
# index entry): `gc` leaves such blobs alone until they are this old.
IN_FLIGHT_GRACE_S: Final = 3600


@dataclass(frozen=True, kw_only=True)
class StoredImage:
    """An image index in the store, tagged `name:version`."""

    name: str
    version: str
    recipe: str
    key: str  # the assembly's cache key ("" for images crossyard did not assemble)
    index: Descriptor  # the index.json entry (annotations included)
    reproducible: bool = True

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


def image_ref(name: str, version: str) -> str:
    return f"{name}:{version}"


def artifact_ref(recipe: str, platform: Platform | str) -> str:
    slug = platform.slug if isinstance(platform, Platform) else platform.replace("/", "-")
    return f"{recipe}:{slug}"


@dataclass(frozen=True, kw_only=True)
class BlobProblem:
    """A blob `verify` found missing, corrupt or mis-sized, and what uses it."""

    digest: str
    problem: str  # "is missing", "is corrupt: …", "is 12 bytes, its descriptor says 13"
    used_by: tuple[str, ...]  # labels of the index entries that reach it (empty: garbage)


@dataclass(frozen=True, kw_only=True)
class VerifyReport:
    blobs: int  # blobs hashed
    size: int  # their bytes
    index_problem: str | None  # index.json itself unusable
    problems: tuple[BlobProblem, ...]

    @property
    def ok(self) -> bool:
        return self.index_problem is None and not self.problems


@dataclass(frozen=True, kw_only=True)
class GcPlan:
    """What `gc` drops (index entries, then blobs) and keeps."""

    drop: tuple[Descriptor, ...]
    keep: tuple[Descriptor, ...]
    recent: tuple[Descriptor, ...]  # kept only because they were stored recently
    blobs: tuple[tuple[str, int], ...]  # (file name in blobs/sha256, size) to delete
    in_flight: int  # unreferenced blobs spared as possibly part of a running build

    @property
    def size(self) -> int:
        return sum(size for _, size in self.blobs)


def entry_label(descriptor: Descriptor) -> str:
    """How an index entry is named to a user: its ref, else recipe@platform (older build)."""
    notes = descriptor.annotations or {}
    ref = notes.get(media.ANNOTATION_REF_NAME)
    if ref:
        return ref
    recipe, platform = notes.get(ANNOTATION_RECIPE), notes.get(ANNOTATION_PLATFORM)
    if recipe and platform:
        return f"{recipe}@{platform} (older build {notes.get(ANNOTATION_INPUT_KEY, '')[7:19]})"
    return descriptor.digest


def stored_at(descriptor: Descriptor) -> float | None:
    """When an index entry was written (a job's finish, an image's tagging), if recorded."""
    notes = descriptor.annotations or {}
    text = notes.get(ANNOTATION_FINISHED) or notes.get(ANNOTATION_STORED)
    if not text:
        return None
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


class Store:
    """Put artifacts in, find them by input key, get their files out."""

    def __init__(self, root: Path) -> None:
        self.layout = OciLayout(
            root,
            recovery=("`crossyard store verify` lists what is damaged and `crossyard build` rebuilds "
                      f"it; to start over, remove {root} (everything is rebuilt)"),
            index_recovery=(f"without its index the store is lost: remove {root} and run `crossyard "
                            "build` (it rebuilds everything into a new store)"),
        )

    @property
    def root(self) -> Path:
        return self.layout.root

    # -- writing ----------------------------------------------------------------------------
    def put_artifact(
        self,
        *,
        recipe: str,
        platform: Platform,
        input_key: str,
        files: Mapping[str, Path],
        digests: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        run: Mapping[str, str] | None = None,
    ) -> BuildRecord:
        """Import `files` as one artifact; the index entry is written last, under a lock.
        `digests`, when given, are what the executor computed where it read the bytes: a file
        that hashes otherwise here is an `IntegrityError`, and nothing is recorded.
        `annotations` go into the manifest (part of its digest); `run` (node, start and end
        times: what differs between two builds of the same bytes) only onto the index entry."""
        self.layout.ensure()
        layers: list[Descriptor] = []
        for name in sorted(files):
            path = files[name]
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            layer = self.layout.import_file(
                path,
                media.BINARY_LAYER,
                annotations={media.ANNOTATION_TITLE: name, ANNOTATION_FILE_MODE: f"{mode:04o}"},
            )
            if digests is not None and digests.get(name) != layer.digest:
                raise IntegrityError(
                    f"{recipe}@{platform.oci}: output `{name}` hashes to {layer.digest} here, but the "
                    f"executor reported {digests.get(name)}; the bytes changed on the way"
                )
            layers.append(layer)
        config = self.layout.write_blob(media.EMPTY_JSON, media.EMPTY)
        manifest_annotations = {
            ANNOTATION_RECIPE: recipe,
            ANNOTATION_PLATFORM: platform.oci,
            ANNOTATION_INPUT_KEY: input_key,
            **(annotations or {}),
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": media.MANIFEST,
            "artifactType": media.ARTIFACT_TYPE,
            "config": config.to_json(),
            "layers": [layer.to_json() for layer in layers],
            "annotations": manifest_annotations,
        }
        descriptor = self.layout.write_json(
            manifest, media.MANIFEST, artifact_type=media.ARTIFACT_TYPE, platform=platform.oci_platform
        )
        entry = self._record_job(descriptor, recipe=recipe, platform=platform, input_key=input_key, run=run)
        return self.artifact(entry)

    def _record_job(
        self, manifest: Descriptor, *, recipe: str, platform: Platform, input_key: str,
        run: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """Index `manifest` as the output of recipe x platform with `input_key`: it replaces an
        entry with the same key, and the job's ref moves to it from the previous build."""
        ref = artifact_ref(recipe, platform)
        entry = manifest.with_(
            annotations={
                media.ANNOTATION_REF_NAME: ref,
                ANNOTATION_RECIPE: recipe,
                ANNOTATION_PLATFORM: platform.oci,
                ANNOTATION_INPUT_KEY: input_key,
                **(run or {}),
            },
            platform=dict(platform.oci_platform),
        )

        def change(current: list[Descriptor]) -> list[Descriptor]:
            kept: list[Descriptor] = []
            for d in current:
                notes = dict(d.annotations or {})
                if notes.get(ANNOTATION_INPUT_KEY) == input_key:
                    continue  # replaced by the new entry
                if notes.get(media.ANNOTATION_REF_NAME) == ref:
                    notes.pop(media.ANNOTATION_REF_NAME)  # the ref moves to the newest build
                    d = d.with_(annotations=notes)
                kept.append(d)
            return [*kept, entry]

        self.layout.update_index(change)
        return entry

    def put_image(
        self, *, name: str, version: str, recipe: str, key: str, index: Descriptor, reproducible: bool = True
    ) -> StoredImage:
        """Tag an image index (its blobs already written) as `name:version`; done last."""
        notes = {ANNOTATION_RECIPE: recipe, ANNOTATION_IMAGE_KEY: key,
                 ANNOTATION_STORED: rfc3339(int(time.time()))}
        if not reproducible:
            notes[ANNOTATION_REPRODUCIBLE] = "false"
        tagged = tag(self.layout, index.with_(annotations=notes), image_ref(name, version))
        return self._image(tagged)

    # -- reading ----------------------------------------------------------------------------
    def images(self) -> list[StoredImage]:
        """Every tagged image index (multi-platform images crossyard assembled or indexed)."""
        if not self.layout.index_path.exists():
            return []
        return [self._image(d) for d in self.layout.manifests()
                if d.media_type == media.INDEX and (d.annotations or {}).get(media.ANNOTATION_REF_NAME)]

    def find_image(self, key: str) -> StoredImage | None:
        """The image assembled with cache key `key`, if its whole tree is there and intact."""
        for image in self.images():
            if image.key == key and self._intact(image.index):
                return image
        return None

    def _intact(self, descriptor: Descriptor) -> bool:
        """Every blob under `descriptor` is present and hashes to its digest."""
        if descriptor.media_type in media.MANIFESTS_AND_INDEXES:
            try:
                document = self.layout.read_json(descriptor.digest)  # hashed as it is read
            except IntegrityError:
                return False
            return all(self._intact(c) for c in children(document))
        return self.layout.check_blob(descriptor.digest, descriptor.size) is None

    def _image(self, descriptor: Descriptor) -> StoredImage:
        notes = descriptor.annotations or {}
        ref = notes.get(media.ANNOTATION_REF_NAME, "")
        name, _, version = ref.rpartition(":")
        return StoredImage(
            name=name or ref, version=version if name else "", recipe=notes.get(ANNOTATION_RECIPE, ""),
            key=notes.get(ANNOTATION_IMAGE_KEY, ""), index=descriptor,
            reproducible=notes.get(ANNOTATION_REPRODUCIBLE, "true") != "false",
        )

    def artifacts(self) -> list[BuildRecord]:
        out = []
        for descriptor in self.layout.manifests():
            if descriptor.artifact_type == media.ARTIFACT_TYPE:
                out.append(self.artifact(descriptor))
        return out

    def cached_keys(self) -> dict[str, Descriptor]:
        """Input key → index entry, for every artifact in the store (one index read)."""
        out: dict[str, Descriptor] = {}
        for descriptor in self.layout.manifests():
            key = (descriptor.annotations or {}).get(ANNOTATION_INPUT_KEY)
            if key and descriptor.artifact_type == media.ARTIFACT_TYPE:
                out[key] = descriptor
        return out

    def job_outputs(self) -> dict[str, Descriptor]:
        """Input key → index entry of every job's stored outputs, artifacts and `dockerfile` job
        images alike, from one index read (what a build looks its jobs up in)."""
        out: dict[str, Descriptor] = {}
        for descriptor in self.layout.manifests() if self.layout.index_path.exists() else []:
            key = (descriptor.annotations or {}).get(ANNOTATION_INPUT_KEY)
            if key and (descriptor.artifact_type == media.ARTIFACT_TYPE or (
                    descriptor.media_type == media.MANIFEST and descriptor.artifact_type is None)):
                out[key] = descriptor
        return out

    def find(
        self, input_key: str, *, index: Mapping[str, Descriptor] | None = None, verify: bool = False,
    ) -> BuildRecord | None:
        """The artifact built with `input_key`, if it and all its blobs are present; with
        `verify`, only if every blob also hashes to its digest (what a build trusts as cached).

        Pass `index` (from `cached_keys()`) when looking up many keys: one index read for all.
        """
        found = self._manifest(input_key, self.cached_keys() if index is None else index)
        if found is None:
            return None
        descriptor, manifest = found
        artifact = self._artifact(descriptor, manifest)
        if verify:
            config = manifest.get("config") or {}
            blobs = [(f.digest, f.size) for f in artifact.outputs]
            blobs.append((str(config.get("digest", "")), int(config.get("size", -1))))
            intact = all(self.layout.check_blob(d, size) is None for d, size in blobs)
        else:
            intact = all(self.layout.has_blob(f.digest) for f in artifact.outputs)
        return artifact if intact else None

    def _manifest(self, key: str, index: Mapping[str, Descriptor]) -> tuple[Descriptor, dict[str, Any]] | None:
        """The index entry stored under input key `key` and its manifest, hashed as it is read;
        None when absent or corrupt (the job is then built again)."""
        descriptor = index.get(key)
        if descriptor is None:
            return None
        try:
            return descriptor, self.layout.read_json(descriptor.digest)
        except IntegrityError:
            return None

    def resolve(self, ref_name: str) -> Descriptor | None:
        """The index entry tagged `ref_name` (an artifact or an image), if any."""
        for descriptor in self.layout.manifests():
            if (descriptor.annotations or {}).get(media.ANNOTATION_REF_NAME) == ref_name:
                return descriptor
        return None

    def file_path(self, file: OutputFile) -> Path:
        return self.layout.blob_path(file.digest)

    def export_file(self, file: OutputFile, destination: Path) -> Path:
        """Copy one artifact file out of the store (atomically, with its mode)."""
        with self.file_path(file).open("rb") as source, atomic_writer(destination, mode=file.mode) as out:
            while chunk := source.read(CHUNK):
                out.write(chunk)
        return destination

    def artifact(self, descriptor: Descriptor) -> BuildRecord:
        return self._artifact(descriptor, self.layout.read_json(descriptor.digest))

    def _artifact(self, descriptor: Descriptor, manifest: dict[str, Any]) -> BuildRecord:
        """The record of the job that stored `manifest`: what its manifest says (recipe,
        platform, key, toolchain, strategy, files) and its index entry (node and times)."""
        notes = manifest.get("annotations", {})
        entry = descriptor.annotations or {}
        files = []
        for layer in manifest.get("layers", []):
            layer_notes = layer.get("annotations", {})
            files.append(
                OutputFile(
                    name=layer_notes.get(media.ANNOTATION_TITLE, layer["digest"]),
                    digest=layer["digest"],
                    size=int(layer["size"]),
                    mode=int(layer_notes.get(ANNOTATION_FILE_MODE, "0644"), 8),
                )
            )
        return BuildRecord(
            recipe=notes.get(ANNOTATION_RECIPE, ""),
            platform=Platform.parse(notes.get(ANNOTATION_PLATFORM, "")),
            status="stored",
            input_key=notes.get(ANNOTATION_INPUT_KEY, ""),
            toolchain=notes.get(ANNOTATION_TOOLCHAIN, ""),
            strategy=notes.get(ANNOTATION_STRATEGY, ""),
            source=entry.get(ANNOTATION_SOURCE_DIGEST, ""),
            node=entry.get(ANNOTATION_NODE, ""),
            started=entry.get(ANNOTATION_STARTED, ""),
            finished=entry.get(ANNOTATION_FINISHED, ""),
            manifest=descriptor,
            outputs=tuple(files),
        )

    def job_image(self, descriptor: Descriptor) -> BuildRecord:
        """The record of a `dockerfile` job's image manifest: one output, `image`, the manifest."""
        notes = descriptor.annotations or {}
        manifest_notes = self.layout.read_json(descriptor.digest).get("annotations") or {}
        return BuildRecord(
            recipe=notes.get(ANNOTATION_RECIPE, ""), platform=Platform.parse(notes.get(ANNOTATION_PLATFORM, "")),
            status="stored", input_key=notes.get(ANNOTATION_INPUT_KEY, ""),
            toolchain=manifest_notes.get(ANNOTATION_TOOLCHAIN, ""),
            # the index entry's (BuildKit's jobs: not in the manifest), else the manifest's
            strategy=notes.get(ANNOTATION_STRATEGY) or manifest_notes.get(ANNOTATION_STRATEGY, ""),
            # BuildKit's images say "true"; the legacy builder's "false" (it stamps times).
            reproducible=manifest_notes.get(ANNOTATION_REPRODUCIBLE) == "true",
            node=notes.get(ANNOTATION_NODE, ""), started=notes.get(ANNOTATION_STARTED, ""),
            finished=notes.get(ANNOTATION_FINISHED, ""), source=notes.get(ANNOTATION_SOURCE_DIGEST, ""),
            manifest=descriptor, outputs=(OutputFile(name="image", digest=descriptor.digest, size=descriptor.size, mode=0o644),),
        )

    def job_images(self) -> dict[str, Descriptor]:
        """Input key → index entry of every job image (`dockerfile` jobs' per-platform manifests)."""
        out: dict[str, Descriptor] = {}
        for descriptor in self.layout.manifests() if self.layout.index_path.exists() else []:
            key = (descriptor.annotations or {}).get(ANNOTATION_INPUT_KEY)
            if key and descriptor.media_type == media.MANIFEST and descriptor.artifact_type is None:
                out[key] = descriptor
        return out

    def find_job_image(self, key: str, *, index: Mapping[str, Descriptor] | None = None) -> BuildRecord | None:
        """The `dockerfile` job image built with `key`, if its manifest, config and layers are intact."""
        found = self._manifest(key, self.job_images() if index is None else index)
        if found is None:
            return None
        descriptor, manifest = found
        blobs = [manifest["config"], *manifest.get("layers", [])]
        if not all(self.layout.check_blob(d["digest"], int(d["size"])) is None for d in blobs):
            return None  # missing or corrupt: build it again
        return self.job_image(descriptor)

    def put_job_image(
        self, *, recipe: str, platform: Platform, input_key: str, manifest: Descriptor,
        run: Mapping[str, str] | None = None,
    ) -> BuildRecord:
        """Record a job's per-platform IMAGE manifest (blobs already written; `dockerfile` jobs)
        like an artifact: under the job's ref and input key, standing for one output named
        `image` (the manifest digest)."""
        entry = self._record_job(manifest, recipe=recipe, platform=platform, input_key=input_key, run=run)
        return self.job_image(entry)

    # -- upkeep -----------------------------------------------------------------------------
    def verify(self) -> VerifyReport:
        """Hash every blob, then follow every reference from every index entry: what is
        missing, corrupt or not the size its descriptor says, and which entries use it."""
        hashed: dict[str, str | None] = {}  # digest → problem, None when intact
        total = 0
        for path in self.layout.blob_files():
            if path.name.startswith(INCOMING_PREFIX) or not _is_hex_digest(path.name):
                continue
            total += path.stat().st_size
            hashed["sha256:" + path.name] = self.layout.check_blob("sha256:" + path.name)
        problems = {digest: problem for digest, problem in hashed.items() if problem}
        used_by: dict[str, set[str]] = {}
        bad_index = None
        entries: list[Descriptor] = []
        if self.layout.index_path.exists():
            bad_index = index_problem(self.layout.index_path.read_bytes())
            entries = [] if bad_index else self.layout.manifests()
        for entry in entries:
            label = entry_label(entry)
            stack, seen = [entry], set()
            while stack:
                node = stack.pop()
                if node.digest in seen:
                    continue
                seen.add(node.digest)
                used_by.setdefault(node.digest, set()).add(label)
                if node.digest not in hashed:
                    problems[node.digest] = "is missing"
                    continue
                if hashed[node.digest]:
                    continue  # corrupt: what it references cannot be known
                size = self.layout.blob_path(node.digest).stat().st_size
                if size != node.size:
                    problems.setdefault(node.digest, f"is {size} bytes, a descriptor says {node.size}")
                if node.media_type in media.MANIFESTS_AND_INDEXES:
                    try:
                        stack.extend(references(self.layout.read_json(node.digest)))
                    except (IntegrityError, KeyError, TypeError, ValueError):
                        problems[node.digest] = "is not a manifest or index crossyard can read"
        return VerifyReport(
            blobs=len(hashed), size=total, index_problem=bad_index,
            problems=tuple(BlobProblem(digest=d, problem=p, used_by=tuple(sorted(used_by.get(d, ()))))
                           for d, p in sorted(problems.items())),
        )

    def gc(
        self, *, keep_keys: AbstractSet[str], keep_digests: AbstractSet[str], recent_since: float,
        apply: bool = False,
    ) -> GcPlan:
        """Drop the index entries that no `keep_keys` (artifact input keys) or `keep_digests`
        (image indexes) name and that were stored before `recent_since`, unless an entry
        kept refers to them; then the blobs nothing kept reaches. A dry run unless `apply`:
        then index.json is rewritten first (atomically, under its lock), blobs deleted after.

        A build running meanwhile writes blobs before their index entry: unreferenced blobs
        younger than IN_FLIGHT_GRACE_S and blobs written or reused (touched) since gc began are
        spared. One it reuses untouched (an intact base layer) can still go; the next build
        then finds its image incomplete and assembles it again."""
        if not self.layout.index_path.exists():
            return GcPlan(drop=(), keep=(), recent=(), blobs=(), in_flight=0)
        started = time.time()
        plans: list[GcPlan] = []

        def decide(current: list[Descriptor]) -> list[Descriptor]:
            plans.append(self._gc_plan(current, keep_keys, keep_digests, recent_since, started))
            return list(plans[-1].keep)

        if apply:
            self.layout.update_index(decide)
        else:
            decide(self.layout.manifests())
        plan = plans[-1]
        if apply:
            for name, _ in plan.blobs:
                path = self.layout.blobs_dir / name
                try:
                    if path.stat().st_mtime >= started:
                        continue  # written or reused since gc began: a build needs it
                    path.unlink()
                except FileNotFoundError:
                    pass
        return plan

    def _gc_plan(
        self, current: list[Descriptor], keep_keys: AbstractSet[str], keep_digests: AbstractSet[str],
        recent_since: float, now: float,
    ) -> GcPlan:
        kept: set[int] = set()
        recent: list[Descriptor] = []
        for i, entry in enumerate(current):
            if (entry.annotations or {}).get(ANNOTATION_INPUT_KEY) in keep_keys or entry.digest in keep_digests:
                kept.add(i)
            elif (when := stored_at(entry)) is not None and when >= recent_since:
                kept.add(i)
                recent.append(entry)
        reachable = self._reachable([current[i] for i in kept], strict=True)
        # A referrer (signature, attestation) of something kept is kept with it.
        grew = True
        while grew:
            grew = False
            for i, entry in enumerate(current):
                if i not in kept and self._subject(entry) in reachable:
                    kept.add(i)
                    reachable |= self._reachable([entry], strict=True)
                    grew = True
        drop = [d for i, d in enumerate(current) if i not in kept]
        garbage = self._reachable(drop, strict=False)  # once referenced, so no build in flight
        blobs: list[tuple[str, int]] = []
        in_flight = 0
        for path in self.layout.blob_files():
            info = path.stat()
            digest = "sha256:" + path.name
            if digest in reachable:
                continue
            if digest in garbage or now - info.st_mtime > IN_FLIGHT_GRACE_S:
                blobs.append((path.name, info.st_size))
            else:
                in_flight += 1
        return GcPlan(drop=tuple(drop), keep=tuple(d for i, d in enumerate(current) if i in kept),
                      recent=tuple(recent), blobs=tuple(blobs), in_flight=in_flight)

    def _reachable(self, roots: Iterable[Descriptor], *, strict: bool) -> set[str]:
        """Every digest under `roots` (themselves, configs, layers, child manifests, subjects).
        `strict`: a manifest that cannot be read is an error (what it keeps alive is unknown)."""
        seen: set[str] = set()
        stack = [(root, entry_label(root)) for root in roots]
        while stack:
            node, label = stack.pop()
            if node.digest in seen:
                continue
            seen.add(node.digest)
            if node.media_type not in media.MANIFESTS_AND_INDEXES:
                continue
            try:
                stack.extend((child, label) for child in references(self.layout.read_json(node.digest)))
            except (IntegrityError, KeyError, TypeError, ValueError) as error:
                if strict:
                    raise IntegrityError(
                        f"cannot tell which blobs {label} needs ({error}); nothing was deleted. "
                        "Run `crossyard store verify` and `crossyard build` to repair the store first"
                    ) from None
        return seen

    def _subject(self, entry: Descriptor) -> str | None:
        if entry.media_type not in media.MANIFESTS_AND_INDEXES:
            return None
        try:
            subject = self.layout.read_json(entry.digest).get("subject")
        except IntegrityError:
            return None
        return str(subject.get("digest")) if isinstance(subject, dict) else None


def references(document: dict[str, Any]) -> list[Descriptor]:
    """What a manifest or index points at: its children, and its subject if it is a referrer."""
    out = children(document)
    if isinstance(document.get("subject"), dict):
        out.append(Descriptor.from_json(document["subject"]))
    return out


def _is_hex_digest(name: str) -> bool:
    try:
        split_digest("sha256:" + name)
    except ValueError:
        return False
    return True
