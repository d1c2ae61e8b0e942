from __future__ import annotations

import datetime
import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from crossyard import certs
from crossyard.errors import IntegrityError
from crossyard.oci.layout import OciLayout
from crossyard.registry.client import RegistryClient
from helpers.https import serve_https
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
    """A throwaway CA and a 127.0.0.1/localhost leaf, by crossyard's own certs module."""
    ca = certs.create_ca(directory, common_name="test CA", lifetime=datetime.timedelta(days=1))
    leaf = certs.issue_leaf(ca, directory, names=("127.0.0.1", "localhost"), lifetime=datetime.timedelta(days=1))
    return ca.cert, leaf.cert, leaf.key


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

    with serve_https(Handler, cert, key) as url:
        yield url, ca


def test_pull_with_lying_server_fails_and_stores_nothing(tmp_path: Path) -> None:
    with _lying_server(tmp_path) as (url, ca):
        dst = OciLayout(tmp_path / "dst").ensure()
        with RegistryClient(url, ca_path=ca) as client, pytest.raises(IntegrityError):
            client.pull("app", "1", dst)
        assert not any(p.is_file() for p in dst.blobs_dir.rglob("*"))
