"""`crossyard keys generate`, `sign`, `verify`, `publish`: push the store, sign, verify back."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec

from .. import signing
from ..errors import ConfigurationError, IntegrityError
from ..registry.client import RegistryClient, iter_refs
from ..workspace import Workspace

OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"


def _sig_config(layer_digest: str) -> bytes:
    config = {
        "architecture": "", "config": {}, "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
        "rootfs": {"diff_ids": [layer_digest], "type": "layers"},
    }
    return json.dumps(config, separators=(",", ":"), sort_keys=True).encode()


def _put_small_blob(client: RegistryClient, repo: str, data: bytes) -> str:
    import tempfile

    from ..oci.layout import OciLayout

    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with tempfile.TemporaryDirectory() as tmp:
        layout = OciLayout(Path(tmp)).ensure()
        descriptor = layout.write_blob(data, "application/octet-stream")
        client.push_blob(repo, layout, descriptor)
    return digest


def attach(
    client: RegistryClient, repo: str, subject_digest: str, suffix: str,
    layer: bytes, layer_media_type: str, annotations: dict[str, str],
) -> str:
    """Append a layer to the cosign-style `sha256-<hex>.<suffix>` manifest (accumulating)."""
    tag = signing.signature_tag(subject_digest, suffix)
    layers: list[dict[str, Any]] = []
    existing = client.get_manifest(repo, tag)
    if existing is not None:
        layers = list(json.loads(existing[0]).get("layers", []))
    digest = _put_small_blob(client, repo, layer)
    entry = {"mediaType": layer_media_type, "size": len(layer), "digest": digest,
             "annotations": annotations}
    if entry not in layers:
        layers.append(entry)
    config = _sig_config(layers[0]["digest"])
    config_digest = _put_small_blob(client, repo, config)
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": config_digest},
        "layers": layers,
    }
    body = json.dumps(manifest, separators=(",", ":")).encode()
    return client.put_manifest(repo, tag, body, OCI_MANIFEST)


def sign_image(
    client: RegistryClient, repo: str, digest: str, key: ec.EllipticCurvePrivateKey
) -> str:
    """cosign-compatible key-based signature of repo@digest; returns the .sig manifest digest."""
    payload = signing.simple_signing_payload(f"{client.host}/{repo}", digest)
    return attach(
        client, repo, digest, "sig", payload, signing.SIMPLESIGNING_MEDIA_TYPE,
        {signing.SIGNATURE_ANNOTATION: signing.sign_bytes(key, payload)},
    )


def attest_image(
    client: RegistryClient, repo: str, digest: str, key: ec.EllipticCurvePrivateKey,
    statement: bytes, predicate_type: str,
) -> str:
    envelope = signing.dsse_envelope(key, signing.INTOTO_PAYLOAD_TYPE, statement)
    return attach(
        client, repo, digest, "att", envelope, signing.DSSE_MEDIA_TYPE,
        {signing.SIGNATURE_ANNOTATION: "", "predicateType": predicate_type},
    )


def verify_image(
    client: RegistryClient, repo: str, ref: str, key: ec.EllipticCurvePublicKey
) -> str:
    """Raise IntegrityError unless a signature by `key` covers repo:ref; return its digest."""
    got = client.get_manifest(repo, ref)
    if got is None:
        raise ConfigurationError(f"{client.host}/{repo}:{ref} not found")
    digest = "sha256:" + hashlib.sha256(got[0]).hexdigest()
    sigs = client.get_manifest(repo, signing.signature_tag(digest))
    if sigs is None:
        raise IntegrityError(f"{client.host}/{repo}@{digest} has no signatures")
    for layer in json.loads(sigs[0]).get("layers", []):
        if layer.get("mediaType") != signing.SIMPLESIGNING_MEDIA_TYPE:
            continue
        payload = client.get_blob_bytes(repo, str(layer["digest"]))
        signature = str((layer.get("annotations") or {}).get(signing.SIGNATURE_ANNOTATION, ""))
        try:
            signing.verify_simple_signing(
                key, payload, signature,
                docker_reference=f"{client.host}/{repo}", manifest_digest=digest,
            )
        except IntegrityError:
            continue
        return digest
    raise IntegrityError(f"no signature on {client.host}/{repo}@{digest} verifies with this key")


# -- CLI ---------------------------------------------------------------------------------------
def _client(args: argparse.Namespace) -> RegistryClient:
    url = args.registry or os.environ.get("CROSSYARD_REGISTRY")
    if not url:
        raise ConfigurationError("no registry given: pass --registry or set CROSSYARD_REGISTRY")
    if "://" not in url:
        url = "https://" + url
    ca = args.ca or os.environ.get("CROSSYARD_REGISTRY_CA")
    return RegistryClient(
        url, ca_path=Path(ca) if ca else None,
        username=os.environ.get("CROSSYARD_REGISTRY_USERNAME"),
        password=os.environ.get("CROSSYARD_REGISTRY_PASSWORD"),
    )


def _split(ref: str) -> tuple[str, str]:
    if "@" in ref:
        repo, _, tag = ref.partition("@")
        return repo, tag
    repo, _, tag = ref.rpartition(":")
    if not repo or "/" in tag:
        return ref, "latest"
    return repo, tag


def _keys_generate(args: argparse.Namespace) -> int:
    workspace = Workspace.find(explicit=args.workspace)
    signing.generate_keys(Path(args.dir) if args.dir else workspace.root / ".crossyard" / "keys")
    return 0


def _sign(args: argparse.Namespace) -> int:
    workspace = Workspace.find(explicit=args.workspace)
    key = signing.load_private_key(
        Path(args.key) if args.key else workspace.root / ".crossyard" / "keys" / "cosign.key"
    )
    repo, ref = _split(args.ref)
    with _client(args) as client:
        got = client.get_manifest(repo, ref)
        if got is None:
            raise ConfigurationError(f"{args.ref} not found in the registry")
        sign_image(client, repo, "sha256:" + hashlib.sha256(got[0]).hexdigest(), key)
    return 0


def _verify(args: argparse.Namespace) -> int:
    Workspace.find(explicit=args.workspace)
    repo, ref = _split(args.ref)
    with _client(args) as client:
        verify_image(client, repo, ref, signing.load_public_key(Path(args.key)))
    return 0


def _publish(args: argparse.Namespace) -> int:
    from ..oci.layout import OciLayout

    workspace = Workspace.find(explicit=args.workspace)
    layout = OciLayout(workspace.root / ".crossyard" / "store")
    key = signing.load_private_key(workspace.root / ".crossyard" / "keys" / "cosign.key")
    with _client(args) as client:
        client.ping()
        for name, _ in list(iter_refs(layout)):
            repo, tag = _split(name)
            digest = client.push_layout(layout, name, repo, tag)
            sign_image(client, repo, digest, key)
            verify_image(client, repo, digest, key.public_key())
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = subparsers.add_parser("keys", help="signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    gen = keys_sub.add_parser("generate", help="generate an ECDSA P-256 cosign-compatible pair")
    gen.add_argument("--dir", help="output directory (default .crossyard/keys)")
    gen.set_defaults(func=_keys_generate)
    for name, handler, help_ in (
        ("sign", _sign, "sign REF in the registry (cosign format)"),
        ("verify", _verify, "verify REF's signature with --key"),
        ("publish", _publish, "push the store, sign, verify by pulling back"),
    ):
        p = subparsers.add_parser(name, help=help_)
        if name != "publish":
            p.add_argument("ref")
        p.add_argument("--key", required=name == "verify")
        p.add_argument("--registry")
        p.add_argument("--ca")
        p.set_defaults(func=handler)
