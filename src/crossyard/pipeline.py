"""The stages in order, each a library function taking the previous stage's value:

    build(project)              plan → schedule and run the jobs → assemble images → lock
      -> BuildResult            (one BuildRecord per job, the images, the lock it wrote)
    publish(result, target, key)
      -> Published              push images and binaries → sign → attest → verify back

Command handlers parse arguments, call these, and render what comes back; none calls another
command's handler. Nothing here prints.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .buildkit.endpoints import TOOLCHAIN as BUILDKIT
from .errors import BuildError, ConfigurationError, DriftError
from .executors import Executor
from .images.assemble import Assembler, BuiltImage, lock_entry, plan_image_jobs
from .lock import (
    Drift,
    ImageLockEntry,
    Lock,
    compare_entries,
    compare_images,
    read_lock,
    write_lock,
)
from .nodes import Cluster, connect, implicit_local, local_executors
from .oci import media
from .oci.layout import Descriptor
from .placement import Durations
from .plan import BUILD_KINDS, BuildGraph
from .plan import job_id as lock_id
from .project import Project
from .provenance import provenance_statement
from .recipes import Recipe
from .records import JOB_STATUSES, BuildRecord
from .scheduler import Reporter, Scheduler
from .store import Store, image_ref

if TYPE_CHECKING:  # publishing's modules load only when something is published (`plan` stays light)
    from cryptography.hazmat.primitives.asymmetric import ec

    from .registry import push as pub
    from .registry.client import RegistryClient
    from .registry.target import Target


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    """What a build did, and what the workspace now holds (the lock it left)."""

    records: tuple[BuildRecord, ...]  # this run's jobs, in dependency order
    images: tuple[BuiltImage, ...]
    lock: Lock  # crossyard.lock after this run: every build publish may publish
    store: Path
    recipes: Mapping[str, Recipe]  # the catalog (versions, images)
    drift: tuple[Drift, ...] = ()  # with `locked`: outputs that differ from the lock
    warnings: tuple[Drift, ...] = ()  # drift of builds marked not reproducible
    image_error: str | None = None
    seconds: float = 0.0
    node_warnings: tuple[str, ...] = ()  # nodes left out of the run, and why

    def count(self, status: str) -> int:
        return sum(1 for r in self.records if r.status == status)

    @property
    def failures(self) -> tuple[BuildRecord, ...]:
        return tuple(r for r in self.records if r.status == "failed")

    @property
    def ok(self) -> bool:
        return (all(r.ok for r in self.records) and not self.drift and self.image_error is None
                and not any(i.status == "skipped" for i in self.images))

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "counts": {s: self.count(s) for s in JOB_STATUSES},
            "jobs": [r.to_json() for r in self.records],
            "images": [i.to_json() for i in self.images],
            "drift": [{"id": d.id, "reason": d.reason} for d in self.drift],
            "warnings": [{"id": w.id, "reason": w.reason} for w in self.warnings],
            "node_warnings": list(self.node_warnings),
        }

    def raise_for_status(self) -> None:
        """A failed job, image or lock check as the error the CLI exits with."""
        if self.failures:
            raise BuildError("\n".join(r.error or r.id for r in self.failures))
        if self.image_error is not None:
            raise ConfigurationError(self.image_error)
        if self.drift:
            raise DriftError(
                f"{len(self.drift)} artifact(s)/image(s) differ from crossyard.lock:\n"
                + "\n".join(f"  {d.id}: {d.reason}" for d in self.drift)
                + "\nIf the change is intended, run `crossyard build` without --locked and commit the lock."
            )


def default_executors(project: Project) -> list[Executor]:
    """This machine for toolchain jobs, the DOCKER_HOST engine for Dockerfile builds."""
    return list(local_executors(project.workspace))


def connect_cluster(project: Project, graph: BuildGraph | None = None) -> Cluster:
    """The run's members: the nodes of crossyard.toml (this machine alone without [[nodes]]),
    remote ones probed now; unreachable ones left out with a warning. With `graph`, buildkitds
    only when it has BuildKit jobs (BUILDKIT_HOST set for other work costs nothing)."""
    nodes = project.settings.nodes or (implicit_local(project.settings.jobs),)
    if graph is not None and not any(j.toolchain.name == BUILDKIT for j in graph.jobs.values()):
        nodes = tuple(n for n in nodes if n.transport != "buildkit")
    return connect(nodes, workspace=project.workspace, toolchains=project.prober)


def build(
    project: Project,
    *,
    names: Sequence[str] = (),
    locked: bool = False,
    reporter: Reporter | None = None,
    executors: Sequence[Executor] | None = None,
    cluster: Cluster | None = None,
) -> BuildResult:
    """Build the selected recipes (all by default) and their images; record them in the lock,
    or, `locked`, hold every output against it instead (drift in the result, the lock as it was).

    Bad input raises `ConfigurationError` before anything runs; failed jobs do not raise: they are
    records in the result, whose `raise_for_status` the caller may call after rendering it.
    `executors` (this machine alone) or `cluster` replace the nodes crossyard.toml declares."""
    workspace = project.workspace
    lock = read_lock(workspace.lock_path)
    graph = project.graph(names)
    image_jobs = plan_image_jobs(project, graph, names)  # a bad image input fails before any build
    project.fetch_sources(graph)
    owned = cluster is None and executors is None
    if owned:
        cluster = connect_cluster(project, graph)
    try:
        scheduler = Scheduler(
            store=project.store, resolver=project.resolver, executors=executors or (),
            members=cluster.members if cluster is not None else None,
            warnings=cluster.warnings if cluster is not None else (),
            durations=Durations.load(workspace.state / "durations.json"),
            logs_dir=workspace.logs_dir, jobs=project.settings.jobs, reporter=reporter,
        )
        # Images are jobs of the run: each assembled once what it takes is built.
        report = scheduler.run(graph, images=image_jobs,
                               assembler=Assembler(store=project.store, workspace=workspace.root))
    finally:
        if owned and cluster is not None:  # the SSH connections end with the run, also on Ctrl-C
            cluster.close()
    images, image_error = report.images, report.image_error  # the artifacts' lock entries are written regardless
    stored = {image.ref: image for image in project.store.images()}
    image_entries = [lock_entry(project.store, stored[i.ref], i.inputs)
                     for i in images if i.index is not None and i.ref in stored]
    drift: list[Drift] = []
    warnings: list[Drift] = []
    built = [r for r in report.records if r.ok]
    if locked:
        drift, warnings = compare_entries(lock, built)
        image_drift, image_warnings = compare_images(lock, image_entries)
        drift += image_drift
        warnings += image_warnings
    else:
        lock = lock.merged(built, image_entries).pruned(**_producible(project))
        write_lock(workspace.lock_path, lock)
    return BuildResult(
        records=report.records, images=images, lock=lock, store=project.store.root,
        recipes=dict(project.catalog.recipes), drift=tuple(drift), warnings=tuple(warnings),
        image_error=image_error, seconds=report.seconds, node_warnings=report.warnings,
    )


def recorded(project: Project) -> BuildResult:
    """The builds crossyard.lock records, without building (`publish --no-build`)."""
    recipes = dict(project.catalog.recipes) if project.workspace.recipes_dir.is_dir() else {}
    return BuildResult(records=(), images=(), lock=read_lock(project.workspace.lock_path),
                       store=project.store.root, recipes=recipes)


def _producible(project: Project) -> dict[str, set[str]]:
    """The lock ids the catalog can produce now, whatever this run selected."""
    recipes = project.catalog.recipes.values()
    return {
        "artifacts": {lock_id(r.name, p) for r in recipes if r.kind in BUILD_KINDS for p in r.platforms},
        "images": {image_ref(r.image.name, r.version) for r in recipes if r.image is not None},
    }


# -- publish -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Published:
    items: tuple[pub.Published, ...]
    skipped: tuple[str, ...] = ()
    registry: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "registry": self.registry,
            "published": [
                {"kind": p.kind, "repository": p.repo, "tag": p.tag, "digest": p.digest,
                 "reference": p.reference, "platforms": list(p.platforms),
                 "platform_tags": dict(p.platform_tags),
                 "files": {k: dict(v) for k, v in p.files.items()}}
                for p in self.items
            ],
            "skipped": list(self.skipped),
        }


@dataclass(frozen=True, kw_only=True)
class _Image:
    name: str
    version: str
    recipe: str
    index: Descriptor
    jobs: tuple[BuildRecord, ...]


def _selected(result: BuildResult, names: Sequence[str]) -> tuple[list[BuildRecord], list[ImageLockEntry]]:
    """The lock's entries and images to publish: all, or `names`' and the builds their images
    hold. The store needs to hold only those: a main job that builds a default set publishes it
    although the lock also records what `build_all` builds."""
    images = sorted(result.lock.images.values(), key=lambda i: i.id)
    entries = list(result.lock.entries.values())
    if not names:
        return entries, images
    wanted = set(names)
    images = [i for i in images if (i.recipe or i.name) in wanted or i.name in wanted]
    keys = {key for image in images for platform in image.platforms for key in platform.inputs}
    for image in images:  # a lock from before images recorded their inputs: by artifact recipe
        recipe = result.recipes.get(image.recipe or image.name)
        if recipe is not None and recipe.image is not None:
            wanted.update(recipe.image.artifact_recipes)
    return [e for e in entries if e.recipe in wanted or e.input_key in keys], images


def _records(result: BuildResult, store: Store, entries: Sequence[BuildRecord]) -> dict[str, BuildRecord]:
    """The reproducible builds of `entries`, as found in the store (looked up by input key,
    never by a moving ref), with what this run knows of it (node, times, source)."""
    this_run = {r.input_key: r for r in result.records if r.input_key}
    by_key = store.job_outputs()
    found: dict[str, BuildRecord] = {}
    missing: list[str] = []
    for entry in entries:
        descriptor = by_key.get(entry.input_key)
        if descriptor is None:
            missing.append(f"{entry.id} (input key {entry.input_key})")
            continue
        stored = (store.artifact(descriptor) if descriptor.artifact_type == media.ARTIFACT_TYPE
                  else store.job_image(descriptor))
        record = this_run.get(entry.input_key, entry).merged(entry).merged(stored)
        recipe = result.recipes.get(entry.recipe)
        found[entry.id] = record.merged(BuildRecord(recipe=entry.recipe, platform=entry.platform, status="locked",
                                                    version=recipe.version if recipe else ""))
    if missing:
        raise ConfigurationError(
            f"crossyard.lock records builds that {store.root} does not hold: {', '.join(missing)}; "
            "run `crossyard build` (or publish without --no-build) to build them again"
        )
    return found


def _images(result: BuildResult, store: Store, records: Mapping[str, BuildRecord],
            images: Sequence[ImageLockEntry]) -> list[_Image]:
    by_key = {r.input_key: r for r in records.values()}
    by_digest = {d.digest: d for d in store.layout.manifests()}
    missing = []
    out = []
    for image in images:
        found = by_digest.get(image.index)
        if found is None:
            missing.append(f"image {image.id} (index {image.index})")
            continue
        out.append(_Image(name=image.name, version=image.version, recipe=image.recipe or image.name,
                          index=found.with_(annotations=None), jobs=_image_jobs(image, result, records, by_key)))
    if missing:
        raise ConfigurationError(
            f"crossyard.lock records builds that {store.root} does not hold: {', '.join(missing)}; "
            "run `crossyard build` (or publish without --no-build) to build them again"
        )
    return out


def _image_jobs(image: ImageLockEntry, result: BuildResult, records: Mapping[str, BuildRecord],
                by_key: Mapping[str, BuildRecord]) -> tuple[BuildRecord, ...]:
    """The builds inside an image: exactly the input keys the lock recorded for it. A lock from
    before those were recorded falls back to its artifact recipes on the image's platforms."""
    keys = [key for platform in image.platforms for key in platform.inputs]
    if keys:
        return tuple(by_key[k] for k in keys if k in by_key)
    recipe = result.recipes.get(image.recipe)
    if recipe is None or recipe.image is None:
        return ()
    return tuple(records[f"{name}@{p.platform}"] for name in recipe.image.artifact_recipes
                 for p in image.platforms if f"{name}@{p.platform}" in records)


def _remember_base(client: RegistryClient, store: Store, recipe: Recipe | None) -> None:
    """An image on a registry base from this same registry: tell the client where the base's
    blobs already are, so it mounts them instead of uploading them (and tries nothing else)."""
    if recipe is None or recipe.image is None or recipe.image.base.registry is None:
        return
    base = recipe.image.base.registry
    host, repo, digest = base.host, base.repository, base.digest or ""
    if host != client.host or not store.layout.has_blob(digest):
        return
    document = store.layout.read_json(digest)
    root = Descriptor(media_type=str(document.get("mediaType", media.INDEX)), digest=digest,
                      size=store.layout.blob_path(digest).stat().st_size)
    from .registry.client import walk

    blobs, _ = walk(store.layout, root)
    for blob in blobs:
        client.remember(blob.digest, repo)


def publish(
    result: BuildResult, target: Target, key: ec.EllipticCurvePrivateKey, *, names: Sequence[str] = (),
) -> Published:
    """Push, sign, attest and verify back what `result`'s lock records (only `names`' builds and
    images when given). Every platform the lock records is published, whatever this run built:
    the `version` index covers them all."""
    from .registry import push as pub
    from .registry.client import manifest_digest

    if not result.lock.entries and not result.lock.images:
        raise ConfigurationError("nothing to publish: crossyard.lock records no builds (run `crossyard build`)")
    store = Store(result.store)
    entries, lock_images = _selected(result, names)
    records = _records(result, store, entries)
    images = _images(result, store, records, lock_images)
    wanted = set(names)
    binaries: dict[str, list[BuildRecord]] = defaultdict(list)
    for record in sorted(records.values(), key=lambda r: r.id):
        if record.reproducible and (not wanted or record.recipe in wanted):
            binaries[record.recipe].append(record)  # a Dockerfile job's image goes with its image
    if wanted and not images and not binaries:
        raise ConfigurationError(
            f"nothing built for {', '.join(sorted(wanted))}: unknown recipe or image name "
            "(see crossyard.lock or `crossyard store ls`)"
        )
    image_refs = set(result.lock.images)
    published: list[pub.Published] = []
    skipped: list[str] = []
    public = key.public_key()
    with target.client() as client:
        client.ping()
        for image in images:
            statement = provenance_statement(
                subjects=[(f"{target.host}/{image.name}", image.index.digest)],
                recipe=image.recipe, version=image.version, jobs=image.jobs,
            )
            _remember_base(client, store, result.recipes.get(image.recipe))
            done = pub.publish_image(client, store.layout, image.index, image.name, image.version, key,
                                     statement=statement)
            pub.verify_back(client, done, public)
            published.append(done)
        for recipe_name, jobs in sorted(binaries.items()):
            recipe = result.recipes.get(recipe_name)
            if recipe is None:
                skipped.append(f"binaries of `{recipe_name}`: no recipe, so no version to tag")
                continue
            builds = []
            for job in jobs:
                assert job.manifest is not None  # found in the store by _records
                builds.append(pub.BinaryBuild(
                    platform=job.platform.oci, manifest=job.manifest.with_(annotations=None),
                    files=job.digests,
                    statement=provenance_statement(
                        subjects=[(f"{target.host}/{recipe_name}", job.manifest.digest),
                                  *sorted(job.digests.items())],
                        recipe=recipe_name, version=recipe.version, jobs=[job],
                    ),
                ))
            index_digest = manifest_digest(pub.binary_index(builds))
            statement = provenance_statement(
                subjects=[(f"{target.host}/{recipe_name}", index_digest)],
                recipe=recipe_name, version=recipe.version, jobs=jobs,
            )
            # An image of the same name owns `name:version`; the binaries' index steps aside.
            index_tag = recipe.version
            if f"{recipe_name}:{recipe.version}" in image_refs:
                index_tag = f"{recipe.version}-binaries"
            done = pub.publish_binaries(client, store.layout, recipe_name, recipe.version,
                                        builds, key, statement=statement, index_tag=index_tag)
            pub.verify_back(client, done, public)
            published.append(done)
    return Published(items=tuple(published), skipped=tuple(skipped), registry=target.host)
