"""`crossyard keys generate`, `sign`, `verify`, `publish`.

`publish` = build (cached) → push images and binaries → sign → attest provenance → verify by
pulling back every manifest → print where each thing is and how to get it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from rich.console import Console

from .. import pipeline, signing
from ..errors import ConfigurationError
from ..oci import media
from ..reference import Reference
from ..registry import push as pub
from ..registry.client import manifest_digest
from ..registry.target import Target, resolve_target
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
def _publish(args: argparse.Namespace) -> int:
    from ..project import Project, load_settings
    from ..report.live import LiveReporter
    from .build import render_build

    workspace = Workspace.find(explicit=args.workspace)
    key = _private_key(workspace, args.key)  # a wrong passphrase fails before any work
    target = resolve_target(workspace, registry=args.registry, ca=args.ca)
    project = Project(workspace, load_settings(workspace, platforms=args.platform))
    if args.no_build or not workspace.recipes_dir.is_dir():
        result = pipeline.recorded(project)
    else:
        result = pipeline.build(project, names=args.recipes, reporter=LiveReporter(quiet=args.json))
        render_build(result, Console(file=sys.stderr, highlight=False))
        result.raise_for_status()
    published = pipeline.publish(result, target, key, names=args.recipes)
    _report(published, target, workspace, args)
    return 0


def _report(result: pipeline.Published, target: Target, workspace: Workspace, args: argparse.Namespace) -> None:
    published, skipped = result.items, result.skipped
    if emit_json(args, result.to_json()):
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
