from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from crossyard import signing
from crossyard.errors import ConfigurationError
from crossyard.platforms import ARM64
from crossyard.provenance import provenance_statement
from crossyard.records import BuildRecord

DIGEST = "sha256:" + "ab" * 32


def test_payload_bytes_match_cosign() -> None:
    got = signing.simple_signing_payload("reg.example:5000/hello", DIGEST)
    assert got == (
        b'{"critical":{"identity":{"docker-reference":"reg.example:5000/hello"},'
        b'"image":{"docker-manifest-digest":"' + DIGEST.encode() + b'"},'
        b'"type":"cosign container image signature"},"optional":null}'
    )


def test_keys_generate_encrypted_0600(tmp_path: Path) -> None:
    pair = signing.generate_keys(tmp_path, password="pw")
    assert stat.S_IMODE(pair.private_path.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in pair.private_path.read_bytes()
    assert pair.public_path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    with pytest.raises(ConfigurationError, match="CROSSYARD_KEY_PASSWORD"):
        signing.load_private_key(pair.private_path, password="wrong")
    with pytest.raises(ConfigurationError, match="already exists"):
        signing.generate_keys(tmp_path, password="pw")


def test_sign_verify_and_rejections(tmp_path: Path) -> None:
    pair = signing.generate_keys(tmp_path / "a", password="pw")
    other = signing.generate_keys(tmp_path / "b", password="pw")
    key = signing.load_private_key(pair.private_path, password="pw")
    pub = signing.load_public_key(pair.public_path)
    payload = signing.simple_signing_payload("r/app", DIGEST)
    sig = signing.sign_bytes(key, payload)
    signing.verify_simple_signing(
        pub, payload, sig, docker_reference="r/app", manifest_digest=DIGEST
    )
    with pytest.raises(signing.VerificationError):
        signing.verify_simple_signing(
            signing.load_public_key(other.public_path),
            payload, sig, docker_reference="r/app", manifest_digest=DIGEST,
        )
    tampered = payload.replace(b"r/app", b"r/evil")
    with pytest.raises(signing.VerificationError):
        signing.verify_simple_signing(
            pub, tampered, sig, docker_reference="r/evil", manifest_digest=DIGEST
        )
    with pytest.raises(signing.VerificationError, match="another repository"):
        signing.verify_simple_signing(
            pub, payload, sig, docker_reference="r/other", manifest_digest=DIGEST
        )
    assert signing.signature_tag(DIGEST) == "sha256-" + "ab" * 32 + ".sig"


def test_dsse_pae_and_provenance(tmp_path: Path) -> None:
    assert signing.pae("t", b"hi") == b"DSSEv1 1 t 2 hi"
    pair = signing.generate_keys(tmp_path, password="")
    key = signing.load_private_key(pair.private_path, password="")
    statement = provenance_statement(
        subjects=[("r/app", DIGEST)], recipe="hello-go", version="1",
        jobs=[BuildRecord(recipe="hello-go", platform=ARM64, status="built", input_key=DIGEST,
                          toolchain="go1.22", strategy="cross")],
    )
    env = signing.dsse_envelope(key, signing.INTOTO_PAYLOAD_TYPE, statement)
    ptype, payload = signing.verify_dsse(signing.load_public_key(pair.public_path), env)
    assert ptype == signing.INTOTO_PAYLOAD_TYPE
    assert json.loads(payload)["predicateType"] == "https://slsa.dev/provenance/v1"
    bad = json.loads(env)
    bad["payloadType"] = "text/plain"
    with pytest.raises(signing.VerificationError):
        signing.verify_dsse(
            signing.load_public_key(pair.public_path), json.dumps(bad).encode()
        )


def test_detached_file_signature_is_a_plain_signature_of_the_bytes(tmp_path: Path) -> None:
    import hashlib

    pair = signing.generate_keys(tmp_path, password="pw")
    key = signing.load_private_key(pair.private_path, password="pw")
    data = b"\x7fELF pretend binary" * 1000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    signature = signing.sign_digest(key, digest)
    # Signed by digest, verifiable over the file's bytes by anything that speaks ECDSA-SHA256.
    assert signing.verify_bytes(key.public_key(), data, signature)
    assert signing.verify_digest(key.public_key(), digest, signature)
    assert not signing.verify_bytes(key.public_key(), data + b"!", signature)
    assert signing.sign_digest(key, digest) == signature  # RFC 6979: deterministic
    with pytest.raises(ValueError):
        signing.sign_digest(key, "md5:abc")


def test_wrong_or_missing_passphrase_says_so(tmp_path: Path) -> None:
    pair = signing.generate_keys(tmp_path, password="right")
    with pytest.raises(ConfigurationError, match="wrong passphrase"):
        signing.load_private_key(pair.private_path, password="wrong")
    with pytest.raises(ConfigurationError, match="is encrypted: set CROSSYARD_KEY_PASSWORD"):
        signing.load_private_key(pair.private_path, password="")
