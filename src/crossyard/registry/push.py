"""Publish what the store holds, sign it, attest it, verify it back.

- Images: the index (and every platform manifest and blob under it) as `name:version`.
- Binaries: each recipe x platform artifact manifest exactly as the store has it (oras-style:
  artifactType, one layer per file named by `org.opencontainers.image.title`, so `oras pull`
  gets the files) tagged `version-<os>-<arch>`, and an index of them tagged `version`, so
  `recipe:version` resolves on every arch.
- Signatures: cosign's key-based layout (`sha256-<hex>.sig`, a simple-signing payload layer with
  the base64 signature annotation). A binary's signature layer also carries, in
  `dev.crossyard.files`, a detached ECDSA-SHA256 signature of each file's bytes (what `cosign
  verify-blob --key cosign.pub --signature SIG FILE` checks).
- Attestations: an in-toto statement with a SLSA provenance v1 predicate in a DSSE envelope,
  `sha256-<hex>.att`, as `cosign attest` writes it (`cosign verify-attestation --type
  slsaprovenance1` checks it).

Signatures are deterministic (RFC 6979), so publishing unchanged content writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec

from .. import signing
from ..annotations import ANNOTATION_FILES
from ..errors import ConfigurationError
from ..hashing import canonical_json
from ..oci import media
from ..oci.layout import Descriptor, OciLayout
from ..platforms import platform_label
from ..provenance import SLSA_PROVENANCE_V1
from .client import RegistryClient, manifest_digest, walk

PREDICATE_ANNOTATION: Final = "predicateType"
_COSIGN_EPOCH: Final = "0001-01-01T00:00:00Z"


@dataclass(frozen=True, kw_only=True)
class Published:
    """One thing now in the registry, and how to get it."""

    kind: str  # image | binary
    host: str
    repo: str
    tag: str
    digest: str
    platforms: tuple[str, ...] = ()
    platform_tags: Mapping[str, str] = field(default_factory=dict)  # platform → tag (binaries)
    files: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # platform → name → digest

    @property
    def reference(self) -> str:
        return f"{self.host}/{self.repo}@{self.digest}"

    @property
    def tagged(self) -> str:
        return f"{self.host}/{self.repo}:{self.tag}"


@dataclass(frozen=True, kw_only=True)
class Verified:
    reference: str
    digest: str
    files: tuple[str, ...] = ()  # "platform name" of every file whose detached signature verified
    provenance: bool = False


# -- attachments (cosign layout) -----------------------------------------------------------------
def attach(
    client: RegistryClient, repo: str, subject_digest: str, suffix: str,
    layer: bytes, layer_media_type: str, annotations: Mapping[str, str],
) -> str:
    """Add a layer to the `sha256-<hex>.<suffix>` manifest (accumulating; an identical layer is
    not added twice, and then nothing is written at all)."""
    tag = signing.signature_tag(subject_digest, suffix)
    layers: list[dict[str, Any]] = []
    existing = client.get_manifest(repo, tag)
    if existing is not None:
        layers = list(json.loads(existing[0]).get("layers", []))
    entry = {"mediaType": layer_media_type, "size": len(layer),
             "digest": manifest_digest(layer), "annotations": dict(annotations)}
    if existing is not None and entry in layers:
        return manifest_digest(existing[0])
    client.push_bytes(repo, layer, check_first=False)
    layers.append(entry)
    config = json.dumps({
        "architecture": "", "config": {}, "created": _COSIGN_EPOCH,
        "history": [{"created": _COSIGN_EPOCH}], "os": "",
        "rootfs": {"diff_ids": [str(x["digest"]) for x in layers], "type": "layers"},
    }, separators=(",", ":"), sort_keys=True).encode()
    client.push_bytes(repo, config, check_first=False)
    manifest = {
        "schemaVersion": 2, "mediaType": media.MANIFEST,
        "config": {"mediaType": media.CONFIG, "size": len(config),
                   "digest": manifest_digest(config)},
        "layers": layers,
    }
    body = json.dumps(manifest, separators=(",", ":")).encode()
    return client.put_manifest(repo, tag, body, media.MANIFEST, check_first=False)


def file_signatures(
    key: ec.EllipticCurvePrivateKey, files: Mapping[str, str]
) -> dict[str, dict[str, str]]:
    """name → {digest, signature}: detached signatures of each file's bytes (by its sha256)."""
    return {name: {"digest": digest, "signature": signing.sign_digest(key, digest)}
            for name, digest in sorted(files.items())}


def sign(
    client: RegistryClient, repo: str, digest: str, key: ec.EllipticCurvePrivateKey, *,
    files: Mapping[str, str] | None = None,
) -> str:
    """cosign-compatible signature of repo@digest (plus detached file signatures)."""
    payload = signing.simple_signing_payload(f"{client.host}/{repo}", digest)
    annotations = {signing.SIGNATURE_ANNOTATION: signing.sign_bytes(key, payload)}
    if files:
        annotations[ANNOTATION_FILES] = canonical_json(
            file_signatures(key, files)).decode()
    return attach(client, repo, digest, "sig", payload, signing.SIMPLESIGNING_MEDIA_TYPE,
                  annotations)


def attest(
    client: RegistryClient, repo: str, digest: str, key: ec.EllipticCurvePrivateKey,
    statement: bytes, predicate_type: str = SLSA_PROVENANCE_V1,
) -> str:
    envelope = signing.dsse_envelope(key, signing.INTOTO_PAYLOAD_TYPE, statement)
    return attach(client, repo, digest, "att", envelope, signing.DSSE_MEDIA_TYPE,
                  {signing.SIGNATURE_ANNOTATION: "", PREDICATE_ANNOTATION: predicate_type})


# -- verification --------------------------------------------------------------------------------
def _verified_signature(
    client: RegistryClient, repo: str, digest: str, key: ec.EllipticCurvePublicKey
) -> dict[str, str]:
    """The annotations of a signature layer over repo@digest that verifies with `key`."""
    reference = f"{client.host}/{repo}"
    sigs = client.get_manifest(repo, signing.signature_tag(digest))
    if sigs is None:
        raise signing.VerificationError(f"{reference}@{digest} is not signed (no .sig manifest)")
    last: signing.VerificationError | None = None
    for layer in json.loads(sigs[0]).get("layers", []):
        if layer.get("mediaType") != signing.SIMPLESIGNING_MEDIA_TYPE:
            continue
        notes = {str(k): str(v) for k, v in (layer.get("annotations") or {}).items()}
        payload = client.get_blob_bytes(repo, str(layer["digest"]))
        try:
            signing.verify_simple_signing(
                key, payload, notes.get(signing.SIGNATURE_ANNOTATION, ""),
                docker_reference=reference, manifest_digest=digest,
            )
        except signing.VerificationError as error:
            last = error
            continue
        return notes
    raise signing.VerificationError(
        f"no signature on {reference}@{digest} verifies with this key"
        + (f" ({last})" if last else "")
    )


def _check_files(
    reference: str, document: Mapping[str, Any], notes: Mapping[str, str],
    key: ec.EllipticCurvePublicKey,
) -> list[str]:
    """Every titled layer of an artifact manifest has a detached signature that verifies over
    the layer digest the (signed) manifest names. The annotation's own claims are not trusted."""
    try:
        claimed = json.loads(notes.get(ANNOTATION_FILES, "{}"))
    except json.JSONDecodeError:
        claimed = {}
    checked = []
    for layer in document.get("layers", []):
        name = (layer.get("annotations") or {}).get(media.ANNOTATION_TITLE)
        if not name:
            continue
        entry = claimed.get(name) if isinstance(claimed, dict) else None
        signature = str(entry.get("signature", "")) if isinstance(entry, dict) else ""
        if not signing.verify_digest(key, str(layer["digest"]), signature):
            raise signing.VerificationError(
                f"{reference}: file {name} has no detached signature that verifies with this key"
            )
        checked.append(name)
    return checked


def _check_provenance(
    client: RegistryClient, repo: str, digest: str, key: ec.EllipticCurvePublicKey
) -> bool:
    """True when a provenance attestation by `key` names repo@digest as its subject."""
    atts = client.get_manifest(repo, signing.signature_tag(digest, "att"))
    if atts is None:
        return False
    for layer in json.loads(atts[0]).get("layers", []):
        if layer.get("mediaType") != signing.DSSE_MEDIA_TYPE:
            continue
        envelope = client.get_blob_bytes(repo, str(layer["digest"]))
        try:
            _, payload = signing.verify_dsse(key, envelope)
        except signing.VerificationError:
            continue
        statement = json.loads(payload)
        subjects = {"sha256:" + str(s.get("digest", {}).get("sha256", ""))
                    for s in statement.get("subject", [])}
        if statement.get("predicateType") == SLSA_PROVENANCE_V1 and digest in subjects:
            return True
    return False


def verify(
    client: RegistryClient, repo: str, ref: str, key: ec.EllipticCurvePublicKey, *,
    require_provenance: bool = False, fetched: tuple[bytes, str] | None = None,
) -> Verified:
    """Check repo:ref's signature by `key` (and, for binaries, each file's detached signature
    and the signature of every platform's artifact); raise VerificationError otherwise.
    `fetched`: repo:ref's manifest, if the caller has just read it."""
    got = fetched or client.get_manifest(repo, ref)
    sep = "@" if ref.startswith("sha256:") else ":"
    if got is None:
        raise ConfigurationError(
            f"{client.host}/{repo}{sep}{ref} not found in the registry: check the name "
            "(`crossyard publish` prints what it pushed)"
        )
    body, _ = got
    digest = manifest_digest(body)
    reference = f"{client.host}/{repo}@{digest}"
    notes = _verified_signature(client, repo, digest, key)
    document = json.loads(body)
    files = [f"{name}" for name in _check_files(reference, document, notes, key)]
    for child in document.get("manifests", []) or []:
        if child.get("artifactType") != media.ARTIFACT_TYPE:
            continue
        child_digest = str(child["digest"])
        child_got = client.get_manifest(repo, child_digest)
        if child_got is None:
            raise ConfigurationError(f"{reference}: platform manifest {child_digest} is missing")
        child_notes = _verified_signature(client, repo, child_digest, key)
        platform = platform_label(child.get("platform"))
        for name in _check_files(f"{client.host}/{repo}@{child_digest}",
                                 json.loads(child_got[0]), child_notes, key):
            files.append(f"{platform} {name}")
    provenance = _check_provenance(client, repo, digest, key)
    if require_provenance and not provenance:
        raise signing.VerificationError(
            f"{reference} has no SLSA provenance attestation that verifies with this key"
        )
    return Verified(reference=reference, digest=digest, files=tuple(files), provenance=provenance)


# -- publishing ----------------------------------------------------------------------------------
def check_local(layout: OciLayout, root: Descriptor) -> None:
    """Every blob under `root` hashes to its digest before anything is pushed: a damaged store
    is reported as such, naming the blob and the fix, not as the registry refusing an upload
    (DIGEST_INVALID) halfway through a publish."""
    blobs, _ = walk(layout, root)  # reads, and so hashes, every manifest and index
    for blob in blobs:
        layout.require_blob(blob.digest, blob.size)


def publish_image(
    client: RegistryClient, layout: OciLayout, root: Descriptor, repo: str, tag: str,
    key: ec.EllipticCurvePrivateKey, *, statement: bytes | None = None,
    mount_from: Sequence[str] = (),
) -> Published:
    """Push an image (index or manifest) as repo:tag, sign it and attach its provenance."""
    check_local(layout, root)
    digest = client.push(layout, root, repo, tag, mount_from=mount_from)
    sign(client, repo, digest, key)
    if statement is not None:
        attest(client, repo, digest, key, statement)
    platforms: list[str] = []
    if root.media_type in media.INDEXES:
        for child in layout.read_json(root.digest).get("manifests", []):
            plat = child.get("platform") or {}
            if plat:
                platforms.append(platform_label(plat))
    elif root.platform:
        platforms.append(platform_label(root.platform))
    return Published(kind="image", host=client.host, repo=repo, tag=tag, digest=digest,
                     platforms=tuple(platforms))


@dataclass(frozen=True, kw_only=True)
class BinaryBuild:
    """One recipe x platform artifact to publish."""

    platform: str  # linux/arm64
    manifest: Descriptor  # the artifact manifest in the store
    files: Mapping[str, str]  # name → digest
    statement: bytes | None = None


def platform_tag(version: str, platform: str) -> str:
    return f"{version}-{platform.replace('/', '-')}"


def binary_index(builds: Sequence[BinaryBuild]) -> bytes:
    """An OCI index over the platform artifacts (canonical: same builds, same digest)."""
    manifests = []
    for build in sorted(builds, key=lambda b: b.platform):
        os_, _, arch = build.platform.partition("/")
        arch, _, variant = arch.partition("/")
        plat = {"os": os_, "architecture": arch, **({"variant": variant} if variant else {})}
        manifests.append({
            "mediaType": build.manifest.media_type, "digest": build.manifest.digest,
            "size": build.manifest.size, "artifactType": media.ARTIFACT_TYPE, "platform": plat,
        })
    return canonical_json({"schemaVersion": 2, "mediaType": media.INDEX,
                           "artifactType": media.ARTIFACT_TYPE, "manifests": manifests})


def publish_binaries(
    client: RegistryClient, layout: OciLayout, repo: str, version: str,
    builds: Sequence[BinaryBuild], key: ec.EllipticCurvePrivateKey, *,
    statement: bytes | None = None, index_tag: str | None = None,
) -> Published:
    """Each platform's artifact as repo:version-os-arch (signed, with detached file signatures
    and provenance), then an index of them as repo:version (signed, with provenance)."""
    index_tag = index_tag or version
    for build in builds:
        check_local(layout, build.manifest)

    def one(build: BinaryBuild) -> None:
        digest = client.push(layout, build.manifest, repo, platform_tag(version, build.platform))
        sign(client, repo, digest, key, files=build.files)
        if build.statement is not None:
            attest(client, repo, digest, key, build.statement)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, builds))
    tags = {b.platform: platform_tag(version, b.platform) for b in builds}
    files = {b.platform: dict(b.files) for b in builds}
    index = binary_index(builds)
    digest = client.put_manifest(repo, index_tag, index, media.INDEX)
    sign(client, repo, digest, key)
    if statement is not None:
        attest(client, repo, digest, key, statement)
    return Published(kind="binary", host=client.host, repo=repo, tag=index_tag, digest=digest,
                     platforms=tuple(sorted(tags)), platform_tags=tags, files=files)


def verify_back(
    client: RegistryClient, published: Published, key: ec.EllipticCurvePublicKey, *,
    require_provenance: bool = True,
) -> Verified:
    """Pull back every manifest of `published` (digests checked on the way), compare the tag's
    digest with what was pushed, and verify signatures and provenance."""
    got = client.get_manifest(published.repo, published.tag)
    if got is None or manifest_digest(got[0]) != published.digest:
        raise signing.VerificationError(
            f"{published.tagged} does not resolve to {published.digest} after the push: "
            "someone else is pushing the same tag?"
        )

    def walk(body: bytes) -> None:
        for child in json.loads(body).get("manifests", []) or []:
            # Artifact platform manifests are read (and their signatures checked) by verify().
            if child.get("mediaType") in media.MANIFESTS_AND_INDEXES and \
                    child.get("artifactType") != media.ARTIFACT_TYPE:
                child_got = client.get_manifest(published.repo, str(child["digest"]))
                if child_got is None:
                    raise ConfigurationError(f"{published.reference}: {child['digest']} missing")
                walk(child_got[0])

    walk(got[0])
    return verify(client, published.repo, published.tag, key,
                  require_provenance=require_provenance, fetched=got)
