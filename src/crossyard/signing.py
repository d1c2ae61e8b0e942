"""Key generation, cosign-compatible simple-signing payloads, signatures and DSSE envelopes.

The registry side (pushing `sha256-<hex>.sig` / `.att` manifests) belongs to the distribution
client; this module only turns bytes into signatures and checks them, with no network I/O.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from .errors import ConfigurationError, CrossyardError
from .fsutil import atomic_write_bytes

PASSWORD_ENV: Final = "CROSSYARD_KEY_PASSWORD"
SIGNATURE_ANNOTATION: Final = "dev.cosignproject.cosign/signature"
SIMPLESIGNING_MEDIA_TYPE: Final = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_MEDIA_TYPE: Final = "application/vnd.dsse.envelope.v1+json"
INTOTO_PAYLOAD_TYPE: Final = "application/vnd.in-toto+json"
_DIGEST_RE: Final = re.compile(r"^sha256:[0-9a-f]{64}$")
# RFC 6979 deterministic ECDSA: the same key over the same bytes gives the same signature, so
# re-signing unchanged content changes nothing in the registry (and verifies the same anywhere).
_ECDSA: Final = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)


class VerificationError(CrossyardError):
    """A signature that does not verify with the key the user gave, or a payload that does not
    say what it must: a finding about the content (exit status 1, like a failed build), not a
    mistake in the command."""


@dataclass(frozen=True, kw_only=True)
class KeyPair:
    private_path: Path
    public_path: Path


def generate_keys(directory: Path, *, password: str | None = None) -> KeyPair:
    """Write an ECDSA P-256 pair: `cosign.key` (encrypted PKCS#8 if a password is given, always
    0600) and `cosign.pub` (PKIX "PUBLIC KEY", what `cosign verify --key` reads)."""
    if password is None:
        password = os.environ.get(PASSWORD_ENV)
    private_path, public_path = directory / "cosign.key", directory / "cosign.pub"
    if private_path.exists():
        raise ConfigurationError(
            f"{private_path} already exists; move it away to generate a new key pair"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(private_path, private_pem, mode=0o600)
    atomic_write_bytes(public_path, public_pem(key.public_key()))
    return KeyPair(private_path=private_path, public_path=public_path)


def public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(path: Path, *, password: str | None = None) -> ec.EllipticCurvePrivateKey:
    if password is None:
        password = os.environ.get(PASSWORD_ENV)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read signing key {path}: {exc.strerror}; run `crossyard keys generate`"
        ) from exc
    try:
        key = serialization.load_pem_private_key(data, password.encode() if password else None)
    except TypeError as exc:
        raise ConfigurationError(
            f"signing key {path} is encrypted: set {PASSWORD_ENV} to its passphrase"
        ) from exc
    except ValueError as exc:
        hint = (f"is {PASSWORD_ENV} the passphrase it was generated with?" if password
                else f"set {PASSWORD_ENV} to its passphrase")
        raise ConfigurationError(
            f"cannot decrypt signing key {path} (wrong passphrase or not a PEM key): {hint}"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigurationError(f"{path} is not an ECDSA private key")
    return key


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot load public key {path}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigurationError(f"{path} is not an ECDSA public key")
    return key


def simple_signing_payload(docker_reference: str, manifest_digest: str) -> bytes:
    """The payload bytes exactly as cosign writes them (Go encoding/json of its struct order)."""
    if not _DIGEST_RE.match(manifest_digest):
        raise ValueError(f"not a sha256 digest: {manifest_digest!r}")
    return (
        '{"critical":{"identity":{"docker-reference":'
        + json.dumps(docker_reference)
        + '},"image":{"docker-manifest-digest":'
        + json.dumps(manifest_digest)
        + '},"type":"cosign container image signature"},"optional":null}'
    ).encode()


def sign_bytes(key: ec.EllipticCurvePrivateKey, data: bytes) -> str:
    """ECDSA-SHA256 DER signature, base64 (the annotation value cosign writes)."""
    return base64.b64encode(key.sign(data, _ECDSA)).decode("ascii")


def verify_bytes(key: ec.EllipticCurvePublicKey, data: bytes, signature_b64: str) -> bool:
    try:
        key.verify(base64.b64decode(signature_b64, validate=True), data, _ECDSA)
    except (InvalidSignature, ValueError):
        return False
    return True


def sign_digest(key: ec.EllipticCurvePrivateKey, digest: str) -> str:
    """Detached signature of a file whose sha256 is `digest`, without reading it again: the same
    bytes `cosign sign-blob` / `openssl dgst -sha256 -sign` produce over the file itself."""
    raw = bytes.fromhex(_hex(digest))
    signature = key.sign(raw, ec.ECDSA(utils.Prehashed(hashes.SHA256()),
                                       deterministic_signing=True))
    return base64.b64encode(signature).decode("ascii")


def verify_digest(key: ec.EllipticCurvePublicKey, digest: str, signature_b64: str) -> bool:
    try:
        key.verify(base64.b64decode(signature_b64, validate=True), bytes.fromhex(_hex(digest)),
                   ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except (InvalidSignature, ValueError):
        return False
    return True


def _hex(digest: str) -> str:
    if not _DIGEST_RE.match(digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return digest.split(":", 1)[1]


def verify_simple_signing(
    key: ec.EllipticCurvePublicKey,
    payload: bytes,
    signature_b64: str,
    *,
    docker_reference: str,
    manifest_digest: str,
) -> None:
    """Check the signature first, then only trust the now-verified payload's claims."""
    if not verify_bytes(key, payload, signature_b64):
        raise VerificationError(
            f"the signature over {docker_reference}@{manifest_digest} does not verify with this "
            "key: it was made by another key, or its payload was changed"
        )
    claims = json.loads(payload)
    critical = claims.get("critical", {})
    if critical.get("type") != "cosign container image signature":
        raise VerificationError("signed payload is not a cosign container image signature")
    if critical.get("image", {}).get("docker-manifest-digest") != manifest_digest:
        raise VerificationError(f"signed payload names another digest than {manifest_digest}")
    if critical.get("identity", {}).get("docker-reference") != docker_reference:
        raise VerificationError(
            f"signed payload names another repository than {docker_reference}"
        )


def signature_tag(manifest_digest: str, suffix: str = "sig") -> str:
    """`sha256-<hex>.sig` (or `.att`): where cosign looks for signatures of a digest."""
    algorithm, hex_ = manifest_digest.split(":", 1)
    return f"{algorithm}-{hex_}.{suffix}"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def dsse_envelope(key: ec.EllipticCurvePrivateKey, payload_type: str, payload: bytes) -> bytes:
    envelope = {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [{"keyid": "", "sig": sign_bytes(key, pae(payload_type, payload))}],
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def verify_dsse(key: ec.EllipticCurvePublicKey, envelope: bytes) -> tuple[str, bytes]:
    """Return (payloadType, payload) once at least one signature verifies over the PAE."""
    data: dict[str, Any] = json.loads(envelope)
    payload_type = str(data["payloadType"])
    payload = base64.b64decode(data["payload"])
    message = pae(payload_type, payload)
    if not any(verify_bytes(key, message, str(s.get("sig", ""))) for s in data["signatures"]):
        raise VerificationError("DSSE envelope has no signature that verifies with this key")
    return payload_type, payload
