from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import require_tool
from crossyard import signing
from crossyard.commands.publish import sign_image, verify_image
from crossyard.errors import IntegrityError
from crossyard.oci.layout import OciLayout
from crossyard.registry.client import RegistryClient
from helpers.images import tiny_image
from helpers.registry import running_registry


@pytest.mark.integration
def test_cosign_verifies_crossyard_signatures(tmp_path: Path) -> None:
    cosign = require_tool("cosign", "run .ci/install.d/35-cosign.sh")
    src = OciLayout(tmp_path / "src").ensure()
    tiny_image(src, b"signed\n", "app:1")
    tiny_image(src, b"unsigned\n", "other:1")
    ours = signing.generate_keys(tmp_path / "k1", password="pw")
    theirs = signing.generate_keys(tmp_path / "k2", password="pw")
    key = signing.load_private_key(ours.private_path, password="pw")
    key2 = signing.load_private_key(theirs.private_path, password="pw")
    with running_registry(tmp_path) as reg:
        docker = tmp_path / "docker"
        docker.mkdir()
        auth = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
        (docker / "config.json").write_text(json.dumps({"auths": {reg.host: {"auth": auth}}}))
        env = {**os.environ, "DOCKER_CONFIG": str(docker), "SSL_CERT_FILE": str(reg.ca_path)}

        def cosign_verify(ref: str, pub: Path) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [cosign, "verify", "--key", str(pub), "--insecure-ignore-tlog=true",
                 f"{reg.host}/{ref}"],
                env=env, capture_output=True, text=True, timeout=60,
            )

        with RegistryClient(reg.url, ca_path=reg.ca_path, username=reg.username,
                            password=reg.password) as client:
            digest = client.push_layout(src, "app:1", "app", "1")
            client.push_layout(src, "other:1", "other", "1")
            sign_image(client, "app", digest, key)
            sign_image(client, "app", digest, key)  # idempotent: no duplicate layer
            ok = cosign_verify("app:1", ours.public_path)
            assert ok.returncode == 0, ok.stderr
            assert verify_image(client, "app", "1", key.public_key()) == digest
            assert cosign_verify("other:1", ours.public_path).returncode != 0
            with pytest.raises(IntegrityError):
                verify_image(client, "other", "1", key.public_key())
            # another key: fails for them until they sign too; then signatures accumulate
            assert cosign_verify("app:1", theirs.public_path).returncode != 0
            sign_image(client, "app", digest, key2)
            assert cosign_verify("app:1", theirs.public_path).returncode == 0
            assert cosign_verify("app:1", ours.public_path).returncode == 0
            # tampered payload: reuse our signature over a payload naming another digest
            other_digest = client.push_layout(src, "other:1", "other", "1")
            payload = signing.simple_signing_payload(f"{reg.host}/other", other_digest)
            from crossyard.commands.publish import attach
            forged = signing.sign_bytes(key, b"something else")
            attach(client, "other", other_digest, "sig", payload,
                   signing.SIMPLESIGNING_MEDIA_TYPE, {signing.SIGNATURE_ANNOTATION: forged})
            assert cosign_verify("other:1", ours.public_path).returncode != 0
            with pytest.raises(IntegrityError):
                verify_image(client, "other", "1", key.public_key())
