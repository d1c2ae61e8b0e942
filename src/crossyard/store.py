"""The local content-addressed store: an OCI image layout under `.crossyard/store`.

Every built binary set is an OCI artifact (like `oras push`): a manifest with
`artifactType = application/vnd.crossyard.artifact.v1`, the empty config, and one layer per
file, named by `org.opencontainers.image.title`. Its index entry carries the platform and the
job's input key, which is the cache: a job whose key is already in the index is not rebuilt.

The newest artifact of a recipe x platform also carries `org.opencontainers.image.ref.name =
<recipe>:<os>-<arch>`, so `skopeo`/`oras` can address it; older entries stay (keyed by input key)
so switching back to an earlier source is free too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .fsutil import atomic_writer
from .hashing import CHUNK
from .oci import media
from .oci.copy import INDEX_TYPES, MANIFEST_TYPES, children
from .oci.image import tag
from .oci.layout import Descriptor, OciLayout
from .platforms import Platform

FILE_MODE_ANNOTATION = "dev.crossyard.file.mode"
IMAGE_KEY_ANNOTATION = "dev.crossyard.image-key"
REPRODUCIBLE_ANNOTATION = "dev.crossyard.reproducible"


@dataclass(frozen=True, kw_only=True)
class ArtifactFile:
    name: str
    digest: str
    size: int
    mode: int


@dataclass(frozen=True, kw_only=True)
class StoredArtifact:
    """One recipe x platform output, as recorded in the store's index."""

    recipe: str
    platform: str
    input_key: str
    manifest: Descriptor
    files: tuple[ArtifactFile, ...]

    def file(self, name: str) -> ArtifactFile | None:
        return next((f for f in self.files if f.name == name), None)

    @property
    def digests(self) -> dict[str, str]:
        return {f.name: f.digest for f in self.files}


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


class Store:
    """Put artifacts in, find them by input key, get their files out."""

    def __init__(self, root: Path) -> None:
        self.layout = OciLayout(root)

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
        annotations: Mapping[str, str] | None = None,
        run: Mapping[str, str] | None = None,
    ) -> StoredArtifact:
        """Import `files` as one artifact; the index entry is written last, under a lock.
        `annotations` go into the manifest (part of its digest); `run` (node, start and end
        times: what differs between two builds of the same bytes) only onto the index entry."""
        self.layout.ensure()
        layers: list[Descriptor] = []
        for name in sorted(files):
            path = files[name]
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            layers.append(
                self.layout.import_file(
                    path,
                    media.BINARY_LAYER,
                    annotations={media.ANNOTATION_TITLE: name, FILE_MODE_ANNOTATION: f"{mode:04o}"},
                )
            )
        config = self.layout.write_blob(media.EMPTY_JSON, media.EMPTY)
        manifest_annotations = {
            media.ANNOTATION_RECIPE: recipe,
            media.ANNOTATION_PLATFORM: platform.oci,
            media.ANNOTATION_INPUT_KEY: input_key,
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
                media.ANNOTATION_RECIPE: recipe,
                media.ANNOTATION_PLATFORM: platform.oci,
                media.ANNOTATION_INPUT_KEY: input_key,
                **(run or {}),
            },
            platform=dict(platform.oci_platform),
        )

        def change(current: list[Descriptor]) -> list[Descriptor]:
            kept: list[Descriptor] = []
            for d in current:
                notes = dict(d.annotations or {})
                if notes.get(media.ANNOTATION_INPUT_KEY) == input_key:
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
        notes = {media.ANNOTATION_RECIPE: recipe, IMAGE_KEY_ANNOTATION: key}
        if not reproducible:
            notes[REPRODUCIBLE_ANNOTATION] = "false"
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
        """The image assembled with cache key `key`, if it and its whole tree are present."""
        for image in self.images():
            if image.key == key and self._complete(image.index):
                return image
        return None

    def _complete(self, descriptor: Descriptor) -> bool:
        if not self.layout.has_blob(descriptor.digest):
            return False
        if descriptor.media_type in MANIFEST_TYPES + INDEX_TYPES:
            return all(self._complete(c) for c in children(self.layout.read_json(descriptor.digest)))
        return True

    def _image(self, descriptor: Descriptor) -> StoredImage:
        notes = descriptor.annotations or {}
        ref = notes.get(media.ANNOTATION_REF_NAME, "")
        name, _, version = ref.rpartition(":")
        return StoredImage(
            name=name or ref, version=version if name else "", recipe=notes.get(media.ANNOTATION_RECIPE, ""),
            key=notes.get(IMAGE_KEY_ANNOTATION, ""), index=descriptor,
            reproducible=notes.get(REPRODUCIBLE_ANNOTATION, "true") != "false",
        )

    def artifacts(self) -> list[StoredArtifact]:
        out = []
        for descriptor in self.layout.manifests():
            if descriptor.artifact_type == media.ARTIFACT_TYPE:
                out.append(self.artifact(descriptor))
        return out

    def cached_keys(self) -> dict[str, Descriptor]:
        """Input key → index entry, for every artifact in the store (one index read)."""
        out: dict[str, Descriptor] = {}
        for descriptor in self.layout.manifests():
            key = (descriptor.annotations or {}).get(media.ANNOTATION_INPUT_KEY)
            if key and descriptor.artifact_type == media.ARTIFACT_TYPE:
                out[key] = descriptor
        return out

    def find(self, input_key: str, *, index: Mapping[str, Descriptor] | None = None) -> StoredArtifact | None:
        """The artifact built with `input_key`, if it and all its blobs are present.

        Pass `index` (from `cached_keys()`) when looking up many keys: one index read for all.
        """
        descriptor = (self.cached_keys() if index is None else index).get(input_key)
        if descriptor is None or not self.layout.has_blob(descriptor.digest):
            return None
        artifact = self.artifact(descriptor)
        if not all(self.layout.has_blob(f.digest) for f in artifact.files):
            return None
        return artifact

    def latest(self, recipe: str, platform: Platform) -> StoredArtifact | None:
        ref = artifact_ref(recipe, platform)
        for descriptor in self.layout.manifests():
            if (descriptor.annotations or {}).get(media.ANNOTATION_REF_NAME) == ref:
                return self.artifact(descriptor)
        return None

    def resolve(self, ref_name: str) -> Descriptor | None:
        """The index entry tagged `ref_name` (an artifact or an image), if any."""
        for descriptor in self.layout.manifests():
            if (descriptor.annotations or {}).get(media.ANNOTATION_REF_NAME) == ref_name:
                return descriptor
        return None

    def file_path(self, file: ArtifactFile) -> Path:
        return self.layout.blob_path(file.digest)

    def export_file(self, file: ArtifactFile, destination: Path) -> Path:
        """Copy one artifact file out of the store (atomically, with its mode)."""
        with self.file_path(file).open("rb") as source, atomic_writer(destination, mode=file.mode) as out:
            while chunk := source.read(CHUNK):
                out.write(chunk)
        return destination

    def artifact(self, descriptor: Descriptor) -> StoredArtifact:
        manifest = self.layout.read_json(descriptor.digest)
        notes = manifest.get("annotations", {})
        files = []
        for layer in manifest.get("layers", []):
            layer_notes = layer.get("annotations", {})
            files.append(
                ArtifactFile(
                    name=layer_notes.get(media.ANNOTATION_TITLE, layer["digest"]),
                    digest=layer["digest"],
                    size=int(layer["size"]),
                    mode=int(layer_notes.get(FILE_MODE_ANNOTATION, "0644"), 8),
                )
            )
        return StoredArtifact(
            recipe=notes.get(media.ANNOTATION_RECIPE, ""),
            platform=notes.get(media.ANNOTATION_PLATFORM, ""),
            input_key=notes.get(media.ANNOTATION_INPUT_KEY, ""),
            manifest=descriptor,
            files=tuple(files),
        )

    def put_job_image(
        self, *, recipe: str, platform: Platform, input_key: str, manifest: Descriptor,
        run: Mapping[str, str] | None = None,
    ) -> StoredArtifact:
        """Record a job's per-platform IMAGE manifest (blobs already written; `dockerfile` jobs)
        like an artifact: under the job's ref and input key, standing for one output named
        `image` (the manifest digest)."""
        entry = self._record_job(manifest, recipe=recipe, platform=platform, input_key=input_key, run=run)
        image = ArtifactFile(name="image", digest=manifest.digest, size=manifest.size, mode=0o644)
        return StoredArtifact(recipe=recipe, platform=platform.oci, input_key=input_key, manifest=entry, files=(image,))
