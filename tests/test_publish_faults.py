from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from crossyard.errors import IntegrityError
from crossyard.oci.layout import OciLayout
from crossyard.registry.client import RegistryClient
from helpers.images import random_image
from helpers.registry import running_registry


@pytest.mark.integration
def test_registry_stopped_mid_push_then_completes(tmp_path: Path) -> None:
    src = OciLayout(tmp_path / "src").ensure()
    layer_digest = random_image(src, 64 << 20, "big:1")
    with running_registry(tmp_path) as reg:
        patches = {"n": 0}

        def hook(request: httpx.Request) -> None:
            if request.method == "PATCH":
                patches["n"] += 1
                if patches["n"] == 3:
                    reg.stop()
                    threading.Timer(0.5, reg.start).start()

        with RegistryClient(reg.url, ca_path=reg.ca_path, username=reg.username,
                            password=reg.password, chunk_size=8 << 20,
                            event_hooks={"request": [hook]}) as client:
            digest = client.push_layout(src, "big:1", "big", "1")
            assert patches["n"] > 3
            dst = OciLayout(tmp_path / "dst").ensure()
            assert client.pull("big", "1", dst).digest == digest
            assert dst.has_blob(layer_digest)
            data = hashlib.sha256(dst.blob_path(layer_digest).read_bytes()).hexdigest()
            assert "sha256:" + data == layer_digest


def _certs(directory: Path) -> tuple[Path, Path, Path]:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.crt", directory / "tls.crt", directory / "tls.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


@contextmanager
def _lying_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    ca, cert, key = _certs(tmp_path)
    good = b'{"schemaVersion":2}'
    digest = "sha256:" + hashlib.sha256(good).hexdigest()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"not what you asked for"
            if "/manifests/" in self.path:
                body = json.dumps({"schemaVersion": 2, "mediaType":
                                   "application/vnd.oci.image.manifest.v1+json",
                                   "config": {"mediaType": "x", "digest": digest, "size": 19},
                                   "layers": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", ca
    finally:
        server.shutdown()


def test_pull_with_lying_server_fails_and_stores_nothing(tmp_path: Path) -> None:
    with _lying_server(tmp_path) as (url, ca):
        dst = OciLayout(tmp_path / "dst").ensure()
        with RegistryClient(url, ca_path=ca) as client, pytest.raises(IntegrityError):
            client.pull("app", "1", dst)
        assert not any(p.is_file() for p in dst.blobs_dir.rglob("*"))
