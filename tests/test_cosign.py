"""The real cosign verifies crossyard's signatures and provenance attestations."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import require_tool
from crossyard import signing
from crossyard.oci.layout import OciLayout
from crossyard.platforms import RISCV64
from crossyard.provenance import provenance_statement
from crossyard.records import BuildRecord
from crossyard.registry import push as pub
from crossyard.registry.client import RegistryClient
from helpers.images import tiny_image
from helpers.registry import RegistryHandle, running_registry

Cosign = Callable[..., subprocess.CompletedProcess[str]]


def _cosign(tmp_path: Path, reg: RegistryHandle) -> Cosign:
    cosign = require_tool("cosign", "run .ci/install.d/56-cosign.sh")
    docker = tmp_path / "docker"
    docker.mkdir(exist_ok=True)
    auth = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {reg.host: {"auth": auth}}}))
    env = {**os.environ, "DOCKER_CONFIG": str(docker), "SSL_CERT_FILE": str(reg.ca_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([cosign, *args], env=env, capture_output=True, text=True,
                              timeout=60)

    return run


@pytest.mark.integration
def test_cosign_verifies_crossyard_signatures(tmp_path: Path) -> None:
    src = OciLayout(tmp_path / "src").ensure()
    tiny_image(src, b"signed\n", "app:1")
    tiny_image(src, b"unsigned\n", "other:1")
    ours = signing.generate_keys(tmp_path / "k1", password="pw")
    theirs = signing.generate_keys(tmp_path / "k2", password="pw")
    key = signing.load_private_key(ours.private_path, password="pw")
    key2 = signing.load_private_key(theirs.private_path, password="pw")
    with running_registry(tmp_path) as reg:
        cosign = _cosign(tmp_path, reg)

        def cosign_verify(ref: str, pub_key: Path) -> subprocess.CompletedProcess[str]:
            return cosign("verify", "--key", str(pub_key), "--insecure-ignore-tlog=true",
                          f"{reg.host}/{ref}")

        with RegistryClient(reg.url, ca_path=reg.ca_path, username=reg.username,
                            password=reg.password) as client:
            digest = client.push_layout(src, "app:1", "app", "1")
            client.push_layout(src, "other:1", "other", "1")
            sig1 = pub.sign(client, "app", digest, key)
            assert pub.sign(client, "app", digest, key) == sig1  # deterministic: no new layer
            ok = cosign_verify("app:1", ours.public_path)
            assert ok.returncode == 0, ok.stderr
            assert pub.verify(client, "app", "1", key.public_key()).digest == digest
            assert cosign_verify("other:1", ours.public_path).returncode != 0
            with pytest.raises(signing.VerificationError, match="not signed"):
                pub.verify(client, "other", "1", key.public_key())
            # another key: fails for them until they sign too; then signatures accumulate
            assert cosign_verify("app:1", theirs.public_path).returncode != 0
            with pytest.raises(signing.VerificationError, match="verifies with this key"):
                pub.verify(client, "app", "1", key2.public_key())
            pub.sign(client, "app", digest, key2)
            assert cosign_verify("app:1", theirs.public_path).returncode == 0
            assert cosign_verify("app:1", ours.public_path).returncode == 0
            # tampered payload: our signature over other bytes, stored with a real payload
            other_digest = client.push_layout(src, "other:1", "other", "1")
            payload = signing.simple_signing_payload(f"{reg.host}/other", other_digest)
            forged = signing.sign_bytes(key, b"something else")
            pub.attach(client, "other", other_digest, "sig", payload,
                       signing.SIMPLESIGNING_MEDIA_TYPE, {signing.SIGNATURE_ANNOTATION: forged})
            assert cosign_verify("other:1", ours.public_path).returncode != 0
            with pytest.raises(signing.VerificationError):
                pub.verify(client, "other", "1", key.public_key())


@pytest.mark.integration
def test_cosign_verify_attestation_accepts_crossyard_provenance(tmp_path: Path) -> None:
    src = OciLayout(tmp_path / "src").ensure()
    tiny_image(src, b"attested\n", "app:1")
    pair = signing.generate_keys(tmp_path / "k", password="pw")
    other = signing.generate_keys(tmp_path / "k2", password="pw")
    key = signing.load_private_key(pair.private_path, password="pw")
    with running_registry(tmp_path) as reg:
        cosign = _cosign(tmp_path, reg)
        with RegistryClient(reg.url, ca_path=reg.ca_path, username=reg.username,
                            password=reg.password) as client:
            digest = client.push_layout(src, "app:1", "app", "1")
            job = BuildRecord(recipe="app", platform=RISCV64, status="built", input_key="sha256:" + "1" * 64,
                              version="1", toolchain="go1.22.2", strategy="cross",
                              node="local", started="2026-11-23T09:00:00Z",
                              finished="2026-11-23T09:01:00Z", source="sha256:" + "2" * 64)
            statement = provenance_statement(subjects=[(f"{reg.host}/app", digest)],
                                             recipe="app", version="1", jobs=[job])
            pub.sign(client, "app", digest, key)
            pub.attest(client, "app", digest, key, statement)
            assert pub.verify(client, "app", "1", key.public_key(),
                              require_provenance=True).provenance

        def verify_attestation(pub_key: Path, kind: str) -> subprocess.CompletedProcess[str]:
            return cosign("verify-attestation", "--key", str(pub_key),
                          "--insecure-ignore-tlog=true", "--type", kind, f"{reg.host}/app:1")

        ok = verify_attestation(pair.public_path, "slsaprovenance1")
        assert ok.returncode == 0, ok.stderr
        envelope = json.loads(ok.stdout.splitlines()[0])
        got = json.loads(base64.b64decode(envelope["payload"]))
        assert got["predicateType"] == "https://slsa.dev/provenance/v1"
        assert got["subject"][0]["digest"]["sha256"] == digest.split(":")[1]
        jobs = got["predicate"]["buildDefinition"]["internalParameters"]["jobs"]
        assert jobs[0]["toolchain"] == "go1.22.2" and jobs[0]["strategy"] == "cross"
        assert got["predicate"]["runDetails"]["metadata"]["startedOn"] == "2026-11-23T09:00:00Z"
        assert verify_attestation(other.public_path, "slsaprovenance1").returncode != 0
        assert verify_attestation(pair.public_path, "spdxjson").returncode != 0
