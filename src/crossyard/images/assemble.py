"""Assemble planned images into the store: base + one deterministic layer per platform, the
config, a manifest per platform, the index, and last the `name:version` tag.

Nothing is tagged until every platform's image is written, so a failure leaves the store's index
as it was (blobs written so far are unreferenced and harmless). An image whose key the store
already holds is not assembled again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..annotations import (
    ANNOTATION_BASE,
    ANNOTATION_CA_BUNDLE,
    ANNOTATION_COMPRESSOR,
    ANNOTATION_REPRODUCIBLE,
)
from ..errors import ConfigurationError, IntegrityError
from ..hashing import sha256_file, sha256_json
from ..lock import ImageLockEntry, LockedLayer, LockedPlatform
from ..oci import media
from ..oci.image import ImageConfig, rfc3339, write_image, write_index
from ..oci.layer import Layer, LayerEntry, compressor_identity, write_layer
from ..oci.layout import Descriptor
from ..platforms import Platform, platform_label
from ..records import BuildRecord, OutputFile
from ..store import Store, StoredImage, artifact_ref
from .assembly_plan import ArtifactInfo, ImageJob, Placed, image_key, place_files, plan_images
from .base_images import (
    DEFAULT_PATH,
    BaseImage,
    BaseResolver,
)

if TYPE_CHECKING:
    from ..plan import BuildGraph
    from ..project import Project

LAYER_LEVEL = 6


@dataclass(frozen=True, kw_only=True)
class BuiltImage:
    recipe: str
    name: str
    version: str
    status: str  # assembled | cached | skipped
    key: str = ""
    index: Descriptor | None = None
    manifests: Mapping[str, str] = field(default_factory=dict)  # platform → manifest digest
    reproducible: bool = True
    error: str | None = None
    # platform → input keys of the build jobs whose outputs are in the image (its provenance)
    inputs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe, "ref": self.ref, "name": self.name, "version": self.version,
            "status": self.status, "key": self.key or None,
            "digest": self.index.digest if self.index else None, "manifests": dict(self.manifests),
            "reproducible": self.reproducible, "error": self.error,
            "inputs": {p: list(keys) for p, keys in self.inputs.items()},
        }


def static_files(job: ImageJob, workspace: Path) -> dict[str, ArtifactInfo]:
    """The workspace files an image takes (`src`), checked to stay inside the workspace."""
    root = workspace.resolve()
    out: dict[str, ArtifactInfo] = {}
    for entry in job.spec.files:
        if entry.src is None:
            continue
        path = root / entry.src
        resolved = path.resolve()
        if not resolved.is_relative_to(root):
            raise ConfigurationError(
                f"{job.recipe.file}: [[image.files]] src `{entry.src}` resolves to {resolved}, outside the "
                f"workspace {root} (a symlink?); images take only files inside the workspace"
            )
        if not resolved.is_file():
            raise ConfigurationError(
                f"{job.recipe.file}: [[image.files]] src `{entry.src}` is not a file ({path}); "
                "give a path relative to the workspace root"
            )
        mode = 0o755 if os.access(resolved, os.X_OK) else 0o644
        out[entry.src] = ArtifactInfo(digest=sha256_file(resolved), mode=mode, path=resolved)
    return out



def _merge_config(job: ImageJob, base: BaseImage) -> ImageConfig:
    """Our [image] over the base's config, the way a Dockerfile's instructions would."""
    inherited = base.config
    env: dict[str, str] = {}
    for item in inherited.get("Env") or []:
        key, _, value = str(item).partition("=")
        env[key] = value
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(dict(job.spec.env))
    spec = job.spec
    entrypoint = spec.entrypoint or tuple(inherited.get("Entrypoint") or ())
    if spec.cmd:
        cmd = spec.cmd
    elif spec.entrypoint:
        cmd = ()  # a new entrypoint resets the base's cmd, as in a Dockerfile
    else:
        cmd = tuple(inherited.get("Cmd") or ())
    ports = tuple(dict.fromkeys([*(inherited.get("ExposedPorts") or {}), *spec.ports]))
    labels = {**(inherited.get("Labels") or {}), **dict(spec.labels)}
    return ImageConfig(
        entrypoint=entrypoint, cmd=cmd, env=env, user=spec.user or str(inherited.get("User") or ""),
        workdir=spec.workdir or str(inherited.get("WorkingDir") or ""), ports=ports, labels=labels,
    )


def _history(job: ImageJob, base: BaseImage, own_layer: bool) -> list[dict[str, Any]]:
    inherited = [dict(h) for h in base.history]
    if sum(1 for h in inherited if not h.get("empty_layer")) != len(base.layers):
        inherited = [{"created": rfc3339(0), "created_by": f"base layer {i + 1}"} for i in range(len(base.layers))]
    ours: dict[str, Any] = {
        "created": rfc3339(job.epoch), "created_by": f"crossyard: image {job.ref} (recipe {job.recipe.name})",
    }
    if not own_layer:
        ours["empty_layer"] = True
    return [*inherited, ours]


class Assembler:
    """Turns image jobs into images in the store, in order, reusing what the store holds."""

    def __init__(self, *, store: Store, workspace: Path,
                 files: Callable[[OutputFile], Path] | None = None) -> None:
        """`files`: where an artifact's output file is (default: its blob in `store`); `repro
        check` assembles from rebuilds kept outside any store."""
        self.store = store
        self.workspace = workspace
        self.files = files or store.file_path
        self.assembled: dict[str, dict[str, Descriptor]] = {}  # recipe → platform → manifest

    def preflight(self, jobs: Sequence[ImageJob]) -> None:
        """Check what can be checked before any build: workspace files and bases on disk."""
        with BaseResolver(workspace=self.workspace, store=self.store.layout, assembled={}) as resolver:
            for job in jobs:
                static_files(job, self.workspace)
                if job.from_dockerfile:
                    continue
                resolver.check(job.spec.base, file=job.recipe.file)
                if job.spec.base.kind in ("oci-layout", "oci-archive"):
                    for platform in job.platforms:  # the base has an image for each platform
                        resolver.identity(job.spec.base, platform, file=job.recipe.file)

    def run(
        self,
        jobs: Sequence[ImageJob],
        *,
        records: Mapping[tuple[str, str], BuildRecord],
        unavailable: AbstractSet[tuple[str, str]] = frozenset(),
    ) -> list[BuiltImage]:
        """`records`: (recipe, platform) → the job's record (its outputs in the store);
        `unavailable`: jobs that failed or were skipped."""
        done: dict[str, BuiltImage] = {}
        with self.resolver() as resolver:
            for job in jobs:
                done[job.recipe.name] = self.one(job, resolver, records=records, unavailable=unavailable, done=done)
        return list(done.values())

    def resolver(self) -> BaseResolver:
        """The bases' resolver for a run of `one`s (it holds extracted archives until closed)."""
        return BaseResolver(workspace=self.workspace, store=self.store.layout, assembled=self.assembled)

    def one(
        self,
        job: ImageJob,
        resolver: BaseResolver,
        *,
        records: Mapping[tuple[str, str], BuildRecord],
        unavailable: AbstractSet[tuple[str, str]],
        done: Mapping[str, BuiltImage],
    ) -> BuiltImage:
        """Assemble `job` once what it takes is built: `records` and `unavailable` as in `run`,
        `done`: the images assembled before it (by recipe), its bases among them."""
        blocked = self._blocked(job, unavailable, done)
        if blocked:
            return BuiltImage(recipe=job.recipe.name, name=job.name, version=job.version, status="skipped",
                              reproducible=not job.from_dockerfile, error=blocked)
        if job.from_dockerfile:
            built = self._index_dockerfile(job, records)
        else:
            artifacts = {
                key: {f.name: ArtifactInfo(digest=f.digest, mode=f.mode, path=self.files(f))
                      for f in record.outputs}
                for key, record in records.items() if key[0] in job.spec.artifact_recipes and record.reproducible
            }
            built = self._assemble(job, resolver, artifacts)
        return replace(built, inputs=_inputs(job, records)) if built.index is not None else built

    def _blocked(
        self, job: ImageJob, unavailable: AbstractSet[tuple[str, str]], done: Mapping[str, BuiltImage]
    ) -> str | None:
        needs = [job.recipe.name] if job.from_dockerfile else list(job.spec.artifact_recipes)
        for platform in job.platforms:
            for name in needs:
                if (name, platform.oci) in unavailable:
                    return f"{name}@{platform.oci} did not build"
        for name in job.after:
            if done.get(name) is None or done[name].status == "skipped":
                return f"base image recipe `{name}` was not assembled"
        return None

    def _assemble(
        self, job: ImageJob, resolver: BaseResolver, artifacts: Mapping[tuple[str, str], Mapping[str, ArtifactInfo]]
    ) -> BuiltImage:
        static = static_files(job, self.workspace)
        placed: dict[str, tuple[Placed, ...]] = {}
        bases: dict[str, str] = {}
        for platform in job.platforms:
            files = {name: artifacts[(name, platform.oci)] for name in job.spec.artifact_recipes
                     if (name, platform.oci) in artifacts}
            placed[platform.oci] = place_files(job, platform, artifacts=files, static=static)
            bases[platform.oci] = resolver.identity(job.spec.base, platform, file=job.recipe.file)
        compressor = compressor_identity(job.spec.compression, LAYER_LEVEL)
        key = image_key(job, bases=bases, files=placed, compressor=compressor)
        cached = self.store.find_image(key)
        if cached is not None and cached.ref == job.ref:
            return self._record(job, cached, status="cached")
        manifests: list[Descriptor] = []
        for platform in job.platforms:
            manifests.append(self._platform_image(job, platform, resolver, placed[platform.oci], compressor))
        index = write_index(self.store.layout, manifests, annotations={
            **job.annotations, ANNOTATION_BASE: job.spec.base.text,
        })
        stored = self.store.put_image(name=job.name, version=job.version, recipe=job.recipe.name, key=key, index=index)
        return self._record(job, stored, status="assembled")

    def _platform_image(
        self, job: ImageJob, platform: Platform, resolver: BaseResolver, placed: Sequence[Placed], compressor: str
    ) -> Descriptor:
        base = resolver.materialize(job.spec.base, platform, file=job.recipe.file)
        layers: list[Layer] = list(base.layers)
        if placed:
            for p in placed:  # the image key has these digests: the layer must have these bytes
                if sha256_file(p.path) != p.digest:
                    raise IntegrityError(
                        f"image {job.ref}: {p.origin} ({p.path}) no longer hashes to {p.digest}; "
                        f"{self.store.layout.recovery}"
                    )
            entries = [LayerEntry(path=p.dest, source=p.path, mode=p.mode) for p in placed]
            own = write_layer(self.store.layout, entries, source_date_epoch=job.epoch,
                              compression=job.spec.compression, level=LAYER_LEVEL)
            layers.append(Layer(
                descriptor=own.descriptor.with_(annotations={ANNOTATION_COMPRESSOR: compressor}),
                diff_id=own.diff_id, compression=own.compression, level=own.level,
            ))
        return write_image(
            self.store.layout, platform=platform, layers=layers, config=_merge_config(job, base),
            source_date_epoch=job.epoch, annotations={**job.annotations, **base.annotations},
            history=_history(job, base, bool(placed)), inherited=base.config,
        )

    def _index_dockerfile(self, job: ImageJob, records: Mapping[tuple[str, str], BuildRecord]) -> BuiltImage:
        """A dockerfile recipe's jobs stored one image manifest per platform; index and tag them."""
        manifests = []
        reproducible = True  # BuildKit's jobs are; an image with one legacy build is not
        for platform in job.platforms:
            record = records.get((job.recipe.name, platform.oci))
            reproducible = reproducible and record is not None and record.reproducible
            entry = record.manifest if record is not None else None
            if entry is None or entry.media_type != media.MANIFEST or entry.artifact_type:
                raise ConfigurationError(
                    f"{job.recipe.file}: no image manifest for `{job.recipe.name}` on {platform} in the store "
                    f"(ref {artifact_ref(job.recipe.name, platform)}); its build did not store one"
                )
            manifests.append(entry.with_(annotations=None, platform=entry.platform or dict(platform.oci_platform)))
        notes = {**job.annotations, ANNOTATION_REPRODUCIBLE: "true" if reproducible else "false"}
        key = sha256_json({"dockerfile": [m.digest for m in manifests], "annotations": notes})
        cached = self.store.find_image(key)
        if cached is not None and cached.ref == job.ref:
            return self._record(job, cached, status="cached")
        index = write_index(self.store.layout, manifests, annotations=notes)
        stored = self.store.put_image(name=job.name, version=job.version, recipe=job.recipe.name, key=key,
                                      index=index, reproducible=reproducible)
        return self._record(job, stored, status="assembled")

    def _record(self, job: ImageJob, image: StoredImage, *, status: str) -> BuiltImage:
        index = self.store.layout.read_json(image.index.digest)
        by_platform: dict[str, Descriptor] = {}
        for raw in index.get("manifests", []):
            descriptor = Descriptor.from_json(raw)
            by_platform[platform_label(descriptor.platform)] = descriptor
        self.assembled[job.recipe.name] = by_platform
        return BuiltImage(
            recipe=job.recipe.name, name=job.name, version=job.version, status=status, key=image.key,
            index=image.index, manifests={p: d.digest for p, d in sorted(by_platform.items())},
            reproducible=image.reproducible,
        )


def _inputs(job: ImageJob, records: Mapping[tuple[str, str], BuildRecord]) -> dict[str, tuple[str, ...]]:
    """Per platform, the input keys of the jobs whose outputs the image holds."""
    recipes = (job.recipe.name,) if job.from_dockerfile else job.spec.artifact_recipes
    out: dict[str, tuple[str, ...]] = {}
    for platform in job.platforms:
        keys = sorted(records[(name, platform.oci)].input_key for name in recipes
                      if (name, platform.oci) in records)
        out[platform.oci] = tuple(keys)
    return out


def lock_entry(store: Store, image: StoredImage, inputs: Mapping[str, tuple[str, ...]] | None = None) -> ImageLockEntry:
    """What crossyard.lock records of a stored image: digests down to each layer's compressor."""
    index = store.layout.read_json(image.index.digest)
    platforms = []
    for raw in index.get("manifests", []):
        descriptor = Descriptor.from_json(raw)
        manifest = store.layout.read_json(descriptor.digest)
        config = store.layout.read_json(manifest["config"]["digest"])
        diff_ids = list(config.get("rootfs", {}).get("diff_ids", []))
        layers = []
        for layer, diff_id in zip(manifest.get("layers", []), diff_ids, strict=False):
            notes = layer.get("annotations") or {}
            layers.append(LockedLayer(
                diff_id=diff_id, blob=layer["digest"],
                compressor=notes.get(ANNOTATION_COMPRESSOR, "unknown (from the base image)"),
            ))
        label = platform_label(descriptor.platform)
        platforms.append(LockedPlatform(
            platform=label, manifest=descriptor.digest, layers=tuple(layers),
            inputs=tuple((inputs or {}).get(label, ())),
        ))
    notes = index.get("annotations") or {}
    ca = next((
        (store.layout.read_json(p.manifest).get("annotations") or {}).get(ANNOTATION_CA_BUNDLE)
        for p in platforms[:1]
    ), None)
    return ImageLockEntry(
        name=image.name, version=image.version, recipe=image.recipe, key=image.key, index=image.index.digest,
        base=str(notes.get(ANNOTATION_BASE, "")), ca_bundle=ca or "", reproducible=image.reproducible,
        platforms=tuple(sorted(platforms, key=lambda p: p.platform)),
    )


def plan_image_jobs(project: Project, graph: BuildGraph, names: Sequence[str],
                    named: Sequence[str] | None = None) -> list[ImageJob]:
    """The images to assemble after the build, checked as far as possible before it starts.
    `named`: the recipes the user named, when `names` adds others (default: `names`)."""
    epochs: dict[str, int] = {}
    for job in graph.jobs.values():
        epochs[job.recipe.name] = max(epochs.get(job.recipe.name, 0), job.source_date_epoch)
    jobs = plan_images(project.select(names), platforms=project.settings.platforms, epochs=epochs,
                       default_epoch=project.settings.source_date_epoch,
                       named=names if named is None else named)
    Assembler(store=project.store, workspace=project.workspace.root).preflight(jobs)
    return jobs
