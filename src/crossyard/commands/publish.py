"""`crossyard keys generate`, `sign`, `verify`, `publish`.

`publish` = build (cached) → push images and binaries → sign → attest provenance → verify by
pulling back every manifest → print where each thing is and how to get it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from .. import signing
from ..annotations import ANNOTATION_RECIPE
from ..errors import ConfigurationError
from ..lock import Lock, read_lock
from ..oci import media
from ..oci.layout import Descriptor
from ..platforms import platform_label
from ..provenance import JobRecord, job_record, provenance_statement
from ..recipes import Recipe
from ..reference import Reference
from ..registry import push as pub
from ..registry.client import RegistryClient, manifest_digest, walk
from ..registry.target import Target, resolve_target
from ..store import Store
from ..workspace import Workspace
from . import add_json_options, emit_json


def _keys_dir(workspace: Workspace) -> Path:
    return workspace.state / "keys"


def _private_key(workspace: Workspace, explicit: str | None) -> ec.EllipticCurvePrivateKey:
    path = Path(explicit) if explicit else _keys_dir(workspace) / "cosign.key"
    if not path.exists():
        raise ConfigurationError(
            f"signing key {path} does not exist: run `crossyard keys generate` (or pass --key)"
        )
    return signing.load_private_key(path)


def _split(ref: str, host: str) -> tuple[str, str]:
    """`[HOST/]REPO[:TAG|@DIGEST]` → (repo, tag or digest); the host must be the target's."""
    image = Reference.parse(ref, default_host=host)
    if image.host != host:
        raise ConfigurationError(
            f"{ref} names registry {image.host}, but the target registry is {host}: pass "
            f"--registry {image.host} (or drop the host from the reference)"
        )
    return image.repository, image.ref


# -- keys / sign / verify -----------------------------------------------------------------------
def _keys_generate(args: argparse.Namespace) -> int:
    workspace = Workspace.find(explicit=args.workspace)
    pair = signing.generate_keys(Path(args.dir) if args.dir else _keys_dir(workspace))
    print(f"wrote {pair.private_path} (0600) and {pair.public_path}")
    return 0


def _sign(args: argparse.Namespace) -> int:
    workspace = Workspace.find(explicit=args.workspace)
    key = _private_key(workspace, args.key)
    target = resolve_target(workspace, registry=args.registry, ca=args.ca)
    with target.client() as client:
        repo, ref = _split(args.ref, target.host)
        got = client.get_manifest(repo, ref)
        if got is None:
            raise ConfigurationError(f"{target.host}/{repo}:{ref} not found in the registry")
        document = json.loads(got[0])
        files = {}
        if document.get("artifactType") == media.ARTIFACT_TYPE:
            files = {str(layer["annotations"][media.ANNOTATION_TITLE]): str(layer["digest"])
                     for layer in document.get("layers", [])
                     if (layer.get("annotations") or {}).get(media.ANNOTATION_TITLE)}
        digest = manifest_digest(got[0])
        pub.sign(client, repo, digest, key, files=files)
    print(f"signed {target.host}/{repo}@{digest}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    workspace = Workspace.find(explicit=args.workspace)
    key_path = Path(args.key) if args.key else _keys_dir(workspace) / "cosign.pub"
    public = signing.load_public_key(key_path)
    target = resolve_target(workspace, registry=args.registry, ca=args.ca)
    with target.client() as client:
        repo, ref = _split(args.ref, target.host)
        # A signature that does not verify raises VerificationError: a finding, exit 1.
        result = pub.verify(client, repo, ref, public, require_provenance=args.provenance)
    notes = [f"signature by {key_path.name} ok"]
    if result.files:
        notes.append(f"{len(result.files)} file signature(s) ok")
    notes.append("provenance ok" if result.provenance else "no provenance attestation")
    print(f"verified {result.reference}: {', '.join(notes)}")
    return 0


# -- publish ------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class _Catalog:
    """What the recipes say (versions, image → artifact recipes, source digests), if any."""

    recipes: dict[str, Recipe]
    sources: dict[str, str]


def _build_and_catalog(workspace: Workspace, args: argparse.Namespace) -> _Catalog:
    if not workspace.recipes_dir.is_dir():
        return _Catalog(recipes={}, sources={})
    from ..project import Project, load_settings
    from .build import cmd_build

    project = Project(workspace, load_settings(workspace, platforms=args.platform))
    if not args.no_build:
        cmd_build(argparse.Namespace(
            workspace=args.workspace, recipes=args.recipes, platform=args.platform, json=False,
            json_file=None,
            jobs=None, locked=False,
        ))
    recipes = dict(project.catalog.recipes)
    sources = {}
    for name, recipe in recipes.items():
        if recipe.source is not None:
            with contextlib.suppress(ConfigurationError):
                sources[name] = project.resolver.identity(recipe)
    return _Catalog(recipes=recipes, sources=sources)


def _record(store: Store, entry: Descriptor, catalog: _Catalog) -> JobRecord:
    manifest = store.layout.read_json(entry.digest)
    artifact = store.artifact(entry)
    recipe_name = (manifest.get("annotations") or {}).get(ANNOTATION_RECIPE, "")
    recipe = catalog.recipes.get(recipe_name)
    return job_record(
        entry.annotations, manifest.get("annotations"),
        version=recipe.version if recipe else "",
        source_digest=catalog.sources.get(recipe_name, ""),
        outputs=artifact.digests,
    )


def _image_jobs(
    store: Store, root: Descriptor, recipe: Recipe | None, catalog: _Catalog, built: _Built,
) -> list[JobRecord]:
    """The artifact builds an image is made of (as the lock records them), per platform of its
    index."""
    if recipe is None or recipe.image is None:
        return []
    platforms = []
    if root.media_type == media.INDEX:
        for child in store.layout.read_json(root.digest).get("manifests", []):
            plat = child.get("platform") or {}
            if plat.get("os") and plat.get("architecture"):
                platforms.append(platform_label(plat))
    jobs = []
    for artifact_recipe in recipe.image.artifact_recipes:
        for platform in platforms:
            entry = built.artifacts.get(f"{artifact_recipe}@{platform}")
            if entry is not None:
                jobs.append(_record(store, entry, catalog))
    return jobs


@dataclass(frozen=True, kw_only=True)
class _Built:
    """What the current catalog builds, as crossyard.lock records it, found in the store: the
    lock's artifacts (`recipe@platform` → index entry) and images (`name:version` → entry)."""

    artifacts: dict[str, Descriptor]
    images: dict[str, tuple[str, Descriptor]]  # name:version → (recipe, index entry)


def _built(store: Store, lock: Lock, lock_path: Path) -> _Built:
    """Only what the lock names is published: an image or artifact the store still holds from
    an older version, a deleted recipe or a failed experiment is not (`crossyard store gc` drops
    those). Each is looked up by input key or index digest, never by a moving ref."""
    missing = []
    by_key = store.cached_keys()
    artifacts = {}
    for entry in lock.entries.values():
        if not entry.reproducible:
            continue  # a Dockerfile job's output is an image manifest: published with its image
        found = by_key.get(entry.input_key)
        if found is None:
            missing.append(f"{entry.id} (input key {entry.input_key})")
        else:
            artifacts[entry.id] = found
    by_digest = {d.digest: d for d in store.layout.manifests()}
    images = {}
    for image in lock.images.values():
        found = by_digest.get(image.index)
        if found is None:
            missing.append(f"image {image.id} (index {image.index})")
        else:
            images[image.id] = (image.recipe, found)
    if missing:
        raise ConfigurationError(
            f"{lock_path.name} records builds that {store.root} does not hold: {', '.join(missing)}; "
            "run `crossyard build` (or publish without --no-build) to build them again"
        )
    return _Built(artifacts=artifacts, images=images)


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
    blobs, _ = walk(store.layout, root)
    for blob in blobs:
        client.remember(blob.digest, repo)


def _publish(args: argparse.Namespace) -> int:
    workspace = Workspace.find(explicit=args.workspace)
    key = _private_key(workspace, args.key)  # a wrong passphrase fails before any work
    target = resolve_target(workspace, registry=args.registry, ca=args.ca)
    catalog = _build_and_catalog(workspace, args)
    store = Store(workspace.store_dir)
    lock = read_lock(workspace.lock_path)
    built = _built(store, lock, workspace.lock_path)
    if not built.artifacts and not built.images:
        raise ConfigurationError(
            f"nothing to publish: {workspace.lock_path} records no builds (run `crossyard build`)"
        )
    wanted = set(args.recipes or ())
    images: list[tuple[str, str, str, Descriptor]] = []  # name, version, recipe, index entry
    binaries: dict[str, list[Descriptor]] = defaultdict(list)
    # Every platform the lock records, whatever -p built: the `version` index covers them all.
    for entry_id, entry in sorted(built.artifacts.items()):
        recipe_name = entry_id.partition("@")[0]
        if not wanted or recipe_name in wanted:
            binaries[recipe_name].append(entry)
    for ref, (recipe_name, entry) in sorted(built.images.items()):
        name, _, version = ref.rpartition(":")
        if not wanted or recipe_name in wanted or name in wanted:
            images.append((name, version, recipe_name or name, entry))
    if wanted and not images and not binaries:
        raise ConfigurationError(
            f"nothing built for {', '.join(sorted(wanted))}: unknown recipe or image name "
            f"(see {workspace.lock_path.name} or `crossyard store ls`)"
        )
    published: list[pub.Published] = []
    skipped: list[str] = []
    public = key.public_key()
    with target.client() as client:
        client.ping()
        for name, version, recipe_name, entry in images:
            recipe = catalog.recipes.get(recipe_name)
            root = entry.with_(annotations=None)
            statement = provenance_statement(
                subjects=[(f"{target.host}/{name}", root.digest)],
                recipe=recipe.name if recipe else name, version=version,
                jobs=_image_jobs(store, root, recipe, catalog, built),
            )
            _remember_base(client, store, recipe)
            done = pub.publish_image(client, store.layout, root, name, version, key,
                                     statement=statement)
            pub.verify_back(client, done, public)
            published.append(done)
        for recipe_name, entries in sorted(binaries.items()):
            recipe = catalog.recipes.get(recipe_name)
            if recipe is None:
                skipped.append(f"binaries of `{recipe_name}`: no recipe, so no version to tag")
                continue
            builds = []
            records = []
            for entry in entries:
                record = _record(store, entry, catalog)
                records.append(record)
                builds.append(pub.BinaryBuild(
                    platform=record.platform, manifest=entry.with_(annotations=None),
                    files=record.outputs,
                    statement=provenance_statement(
                        subjects=[(f"{target.host}/{recipe_name}", entry.digest),
                                  *sorted(record.outputs.items())],
                        recipe=recipe_name, version=recipe.version, jobs=[record],
                    ),
                ))
            index_digest = manifest_digest(pub.binary_index(builds))
            statement = provenance_statement(
                subjects=[(f"{target.host}/{recipe_name}", index_digest)],
                recipe=recipe_name, version=recipe.version, jobs=records,
            )
            # An image of the same name owns `name:version`; the binaries' index steps aside.
            index_tag = recipe.version
            if f"{recipe_name}:{recipe.version}" in built.images:
                index_tag = f"{recipe.version}-binaries"
            done = pub.publish_binaries(client, store.layout, recipe_name, recipe.version,
                                        builds, key, statement=statement, index_tag=index_tag)
            pub.verify_back(client, done, public)
            published.append(done)
    _report(published, skipped, target, workspace, args)
    return 0


def _summary(published: Sequence[pub.Published], skipped: Sequence[str],
             target: Target) -> dict[str, object]:
    return {
        "registry": target.host,
        "published": [
            {"kind": p.kind, "repository": p.repo, "tag": p.tag, "digest": p.digest,
             "reference": p.reference, "platforms": list(p.platforms),
             "platform_tags": dict(p.platform_tags),
             "files": {k: dict(v) for k, v in p.files.items()}}
            for p in published
        ],
        "skipped": list(skipped),
    }


def _report(published: Sequence[pub.Published], skipped: Sequence[str], target: Target,
            workspace: Workspace, args: argparse.Namespace) -> None:
    if emit_json(args, _summary(published, skipped, target)):
        return
    out = sys.stdout
    pubkey = Path(args.key).with_suffix(".pub") if args.key else _keys_dir(workspace) / "cosign.pub"
    ws = f"-C {workspace.root} " if args.workspace else ""
    out.write(f"published {len(published)} item(s) to {target.host} ({target.origin}):\n")
    for item in published:
        out.write(f"\n{item.kind} {item.repo}:{item.tag} ({', '.join(item.platforms) or 'one platform'})\n")
        out.write(f"  {item.reference}\n")
        if item.kind == "image":
            out.write(f"  docker pull {item.reference}\n")
        for platform, tag in sorted(item.platform_tags.items()):
            ca = f" --ca-file {target.ca_path}" if target.ca_path else ""
            out.write(f"  {platform}: oras pull{ca} {target.host}/{item.repo}:{tag}\n")
        out.write(f"  crossyard {ws}verify {item.tagged} --key {pubkey}\n")
    if published and target.username:
        secret = target.password_file or target.password_from
        out.write(
            f"\nlog in first: docker login {target.host} -u {target.username} "
            f"--password-stdin  (the password is in {secret})"
        )
    if published:
        cert_env = f"SSL_CERT_FILE={target.ca_path} " if target.ca_path else ""
        out.write(
            f"\ntrust the registry's CA first: crossyard {ws}certs trust --format docker "
            f"--host {target.host} -o /etc/docker   (containerd: --format containerd -o "
            "/etc/containerd)\n"
            f"cosign: {cert_env}cosign verify --key {pubkey} "
            "--insecure-ignore-tlog=true "
            f"{published[0].tagged}\n"
        )
    for note in skipped:
        out.write(f"skipped {note}\n")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = subparsers.add_parser("keys", help="signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    gen = keys_sub.add_parser("generate", help="generate an ECDSA P-256 cosign-compatible pair")
    gen.add_argument("--dir", help="output directory (default .crossyard/keys)")
    gen.set_defaults(func=_keys_generate)

    def target_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--registry", help="HOST[:PORT] (default CROSSYARD_REGISTRY, then the "
                                          "workspace's managed registry)")
        p.add_argument("--ca", help="CA bundle for the registry (default CROSSYARD_REGISTRY_CA)")

    sign = subparsers.add_parser("sign", help="sign REF in the registry (cosign format)")
    sign.add_argument("ref")
    sign.add_argument("--key", help="private key (default .crossyard/keys/cosign.key)")
    target_options(sign)
    sign.set_defaults(func=_sign)

    verify = subparsers.add_parser("verify", help="verify REF's signature (and its files')")
    verify.add_argument("ref", help="[HOST/]REPO[:TAG|@DIGEST]")
    verify.add_argument("--key", help="public key (default .crossyard/keys/cosign.pub)")
    verify.add_argument("--provenance", action="store_true",
                        help="also require a SLSA provenance attestation by the key")
    target_options(verify)
    verify.set_defaults(func=_verify)

    publish = subparsers.add_parser(
        "publish", help="build (cached), push, sign, attest, verify back; print how to pull")
    publish.add_argument("recipes", nargs="*", metavar="RECIPE", help="default: everything")
    publish.add_argument("-p", "--platform", action="append", default=[])
    publish.add_argument("--no-build", action="store_true", help="publish the store as it is")
    add_json_options(publish)
    publish.add_argument("--key", help="private key (default .crossyard/keys/cosign.key)")
    target_options(publish)
    publish.set_defaults(func=_publish)
