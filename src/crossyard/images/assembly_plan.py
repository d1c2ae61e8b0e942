"""Which images to assemble, for which platforms, from which inputs, under which cache key.

Pure: no files, no store. The caller hands in the selected recipes, the SOURCE_DATE_EPOCH of
each built recipe, and later the artifacts each job produced and the digests of workspace files;
what comes back are frozen values. Errors a user can cause (an artifact not built for a platform,
an image base cycle, a file placed twice) are `ConfigurationError`s naming the recipe file.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ..errors import ConfigurationError
from ..hashing import sha256_json
from ..oci import media
from ..oci.image import rfc3339
from ..platforms import Platform
from ..recipes import DEFAULT_PLATFORMS, ImageSpec, Recipe

# Bump when what an assembled image looks like changes for the same inputs (layout of the
# layer, config fields, the static base's contents): it is part of every image key.
IMAGE_FORMAT_VERSION: Final = 1


@dataclass(frozen=True, kw_only=True)
class ImageJob:
    """One image to assemble: a recipe's [image] for the platforms it is built for."""

    recipe: Recipe
    spec: ImageSpec
    platforms: tuple[Platform, ...]
    epoch: int
    after: tuple[str, ...] = ()  # image recipes whose output is this one's base
    annotations: Mapping[str, str] = field(default_factory=dict)  # OCI annotations, index and manifests

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> str:
        return self.recipe.version

    @property
    def ref(self) -> str:
        return f"{self.spec.name}:{self.recipe.version}"

    @property
    def from_dockerfile(self) -> bool:
        return self.recipe.kind == "dockerfile"


@dataclass(frozen=True, kw_only=True)
class ArtifactInfo:
    """One file of a built artifact, as the store holds it."""

    digest: str
    mode: int
    path: Path  # the blob in the store


@dataclass(frozen=True, kw_only=True)
class Placed:
    """One file in an image for one platform: where it goes, with which mode, from where."""

    dest: str
    mode: int
    digest: str
    path: Path
    origin: str  # "hello-go@linux/arm64:hello-go" or "src:services/x/README.md"

    def keyed(self) -> dict[str, Any]:
        return {"dest": self.dest, "mode": f"{self.mode:04o}", "digest": self.digest, "origin": self.origin}


def _source_annotations(recipe: Recipe, by_name: Mapping[str, Recipe]) -> dict[str, str]:
    """source/revision from the recipe's own source, else from the (first) recipe it wraps."""
    candidates = [recipe] + [by_name[n] for n in (recipe.image.artifact_recipes if recipe.image else ())
                             if n in by_name]
    notes: dict[str, str] = {}
    for candidate in candidates:
        source = candidate.source
        if source is None:
            continue
        if source.git:
            notes[media.ANNOTATION_SOURCE] = source.git
            if source.commit:
                notes[media.ANNOTATION_REVISION] = source.commit
        elif source.url:
            notes[media.ANNOTATION_SOURCE] = source.url
        break
    return notes


def plan_images(
    recipes: Sequence[Recipe],
    *,
    platforms: Sequence[Platform] | None,
    epochs: Mapping[str, int],
    default_epoch: int = 0,
    named: Sequence[str] = (),
) -> list[ImageJob]:
    """Every selected recipe with an image, in assembly order (a base image before its users).

    `epochs`: the SOURCE_DATE_EPOCH each built recipe's jobs used; `named`: the recipes the user
    asked for (one of those left with no platform by `--platform` is an error, not a no-op).
    """
    by_name = {r.name: r for r in recipes}
    wanted = {p.oci for p in platforms} if platforms else None
    jobs: dict[str, ImageJob] = {}
    state: dict[str, str] = {}

    def visit(recipe: Recipe, trail: tuple[str, ...]) -> None:
        if state.get(recipe.name) == "done":
            return
        if state.get(recipe.name) == "active":
            cycle = " -> ".join([*trail[trail.index(recipe.name):], recipe.name])
            raise ConfigurationError(f"{recipe.file}: image base cycle: {cycle}; one image must start from another base")
        state[recipe.name] = "active"
        spec = recipe.image
        assert spec is not None
        after: tuple[str, ...] = ()
        if spec.base.kind == "recipe":
            base = by_name.get(spec.base.value)
            if base is None or base.image is None:
                raise ConfigurationError(
                    f"{recipe.file}: [image] base `recipe:{spec.base.value}` is not a selected recipe with an image"
                )
            visit(base, (*trail, recipe.name))
            after = (base.name,)
        jobs[recipe.name] = _job(recipe, spec, by_name, wanted, epochs, default_epoch, after, jobs)
        state[recipe.name] = "done"

    for recipe in sorted(recipes, key=lambda r: r.name):
        if recipe.image is not None:
            visit(recipe, ())
    for job in jobs.values():
        if not job.platforms and job.recipe.name in named and wanted is not None:
            raise ConfigurationError(
                f"{job.recipe.file}: image `{job.name}` is not built for {', '.join(sorted(wanted))}; "
                f"its platforms come from {'its own list' if job.recipe.platforms_given else 'its inputs'}"
            )
    return [job for job in jobs.values() if job.platforms]


def _job(
    recipe: Recipe,
    spec: ImageSpec,
    by_name: Mapping[str, Recipe],
    wanted: set[str] | None,
    epochs: Mapping[str, int],
    default_epoch: int,
    after: tuple[str, ...],
    planned: Mapping[str, ImageJob],
) -> ImageJob:
    inputs = [by_name[n] for n in spec.artifact_recipes if n in by_name]
    missing = [n for n in spec.artifact_recipes if n not in by_name]
    if missing:
        raise ConfigurationError(f"{recipe.file}: [[image.files]] artifact `{missing[0]}` is not a selected recipe")
    if recipe.kind == "image" and not recipe.platforms_given:
        # An assembling recipe takes the platforms all its inputs are built for.
        candidates = list(inputs[0].platforms if inputs else DEFAULT_PLATFORMS)
        for other in inputs[1:]:
            candidates = [p for p in candidates if p in other.platforms]
        if after:
            candidates = [p for p in candidates if p in planned[after[0]].platforms]
    else:
        candidates = list(recipe.platforms)
    chosen = tuple(p for p in candidates if wanted is None or p.oci in wanted)
    for platform in candidates:  # the recipe's own list is checked whatever --platform selects
        for other in inputs:
            if platform not in other.platforms:
                raise ConfigurationError(
                    f"{recipe.file}: image `{spec.name}` for {platform} needs artifact `{other.name}` for "
                    f"{platform}, which it is not built for ({other.file} lists "
                    f"{', '.join(p.oci for p in other.platforms)}); add the platform there or drop it here"
                )
        if after and platform in chosen and platform not in planned[after[0]].platforms:
            raise ConfigurationError(
                f"{recipe.file}: image `{spec.name}` for {platform} has base `recipe:{after[0]}`, whose image "
                f"is not built for {platform}"
            )
    epoch = recipe.source_date_epoch
    if epoch is None:
        known = [epochs[r.name] for r in (recipe, *inputs) if r.name in epochs]
        epoch = max(known) if known else default_epoch
    notes = {
        **_source_annotations(recipe, by_name),
        media.ANNOTATION_VERSION: recipe.version,
        media.ANNOTATION_CREATED: rfc3339(epoch),
    }
    return ImageJob(recipe=recipe, spec=spec, platforms=chosen, epoch=epoch, after=after, annotations=notes)


def place_files(
    job: ImageJob,
    platform: Platform,
    *,
    artifacts: Mapping[str, Mapping[str, ArtifactInfo]],
    static: Mapping[str, ArtifactInfo],
) -> tuple[Placed, ...]:
    """Where each [[image.files]] entry lands for `platform`, sorted by destination.

    `artifacts`: recipe name → that recipe's files built for `platform`; `static`: workspace
    files (by their `src` as written) with digests.
    """
    placed: dict[str, Placed] = {}
    file = job.recipe.file
    for entry in job.spec.files:
        items: list[tuple[str, ArtifactInfo, str]] = []
        if entry.src is not None:
            info = static[entry.src]
            items.append((posixpath.basename(entry.src), info, f"src:{entry.src}"))
            directory = entry.dest.endswith("/")
        else:
            assert entry.artifact is not None
            files = artifacts.get(entry.artifact)
            if files is None:
                raise ConfigurationError(
                    f"{file}: image `{job.name}` for {platform} needs artifact `{entry.artifact}` for {platform}, "
                    "and the build did not produce it"
                )
            names = sorted(files)
            if entry.file is not None:
                if entry.file not in files:
                    raise ConfigurationError(
                        f"{file}: [[image.files]] file `{entry.file}` is not in artifact `{entry.artifact}` "
                        f"for {platform}; it has: {', '.join(names) or '(nothing)'}"
                    )
                names = [entry.file]
            origin = f"{entry.artifact}@{platform.oci}"
            items.extend((n, files[n], f"{origin}:{n}") for n in names)
            directory = entry.dest.endswith("/") or (entry.file is None and len(names) > 1)
        for base_name, info, origin in items:
            dest = posixpath.normpath(posixpath.join(entry.dest, base_name) if directory else entry.dest)
            if dest in placed:
                raise ConfigurationError(
                    f"{file}: image `{job.name}` places two files at {dest} ({placed[dest].origin} and {origin})"
                )
            mode = entry.mode if entry.mode is not None else info.mode
            placed[dest] = Placed(dest=dest, mode=mode, digest=info.digest, path=info.path, origin=origin)
    return tuple(placed[d] for d in sorted(placed))


def image_key(
    job: ImageJob,
    *,
    bases: Mapping[str, str],
    files: Mapping[str, Sequence[Placed]],
    compressor: str,
) -> str:
    """sha256 over everything that decides the image: spec, base and file digests per platform,
    epoch, compression (with the compressor's identity), annotations and the format version."""
    return sha256_json({
        "crossyard_image_format": IMAGE_FORMAT_VERSION,
        "spec": job.spec.normalized(),
        "version": job.version,
        "epoch": job.epoch,
        "compressor": compressor,
        "annotations": dict(job.annotations),
        "platforms": {
            p.oci: {"base": bases[p.oci], "files": [f.keyed() for f in files.get(p.oci, ())]}
            for p in job.platforms
        },
    })
