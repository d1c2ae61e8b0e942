"""Certificate rotation on a running managed registry while a client keeps pulling.

The client is deliberately plain: no retries, a new TLS context read from bundle.crt for every
pull (as containerd re-reads certs.d), so any refused connection, failed handshake or missing
blob during `certs rotate`, `certs rotate --ca` and `certs retire-ca` shows up as a failure.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from conftest import require_tool, run_cli
from crossyard.oci.layout import OciLayout
from crossyard.registry import manager
from crossyard.registry.client import RegistryClient
from helpers.images import tiny_image
from helpers.managed import free_addr, make_workspace, stopped_after

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class Puller:
    url: str
    bundle: Path
    auth: tuple[str, str]
    manifest_digest: str
    blob_digest: str
    keep_alive: bool = False  # one client for the whole run, like a daemon's connection pool
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def client(self) -> httpx.Client:
        ctx = ssl.create_default_context(cafile=str(self.bundle))
        transport = httpx.HTTPTransport(verify=ctx, retries=0)
        return httpx.Client(transport=transport, auth=self.auth, timeout=30)

    def pull_once(self, http: httpx.Client) -> None:
        m = http.get(f"{self.url}/v2/hello/manifests/0.1.0", headers={"Accept": MANIFEST})
        if m.status_code != 200:
            raise AssertionError(f"manifest: HTTP {m.status_code}")
        if "sha256:" + hashlib.sha256(m.content).hexdigest() != self.manifest_digest:
            raise AssertionError("manifest bytes do not match the pushed digest")
        b = http.get(f"{self.url}/v2/hello/blobs/{self.blob_digest}")
        if b.status_code != 200:
            raise AssertionError(f"blob: HTTP {b.status_code}")
        if "sha256:" + hashlib.sha256(b.content).hexdigest() != self.blob_digest:
            raise AssertionError("blob bytes do not match the digest")

    def run(self) -> None:
        shared = self.client() if self.keep_alive else None
        while not self.stop.is_set():
            http = shared or self.client()
            try:
                self.pull_once(http)
            except Exception as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            else:
                self.ok += 1
            finally:
                if shared is None:
                    http.close()
        if shared is not None:
            shared.close()

    def pulls_after(self, count: int, more: int = 10, timeout: float = 60) -> None:
        """Wait until `more` pulls have completed after `count` (progress, not speed)."""
        deadline = time.monotonic() + timeout
        while self.ok < count + more and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.ok >= count + more, f"the puller stalled at {self.ok}: {self.failures[-3:]}"


def _served_der(host: str, port: int) -> bytes:
    raw = ssl.create_default_context()
    raw.check_hostname, raw.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=5) as tcp, raw.wrap_socket(tcp) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def _handshake(host: str, port: int, cafile: Path) -> None:
    ctx = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection((host, port), timeout=5) as tcp, ctx.wrap_socket(
        tcp, server_hostname=host
    ):
        pass


@pytest.mark.integration
def test_rotation_under_load_loses_no_pull_and_no_blob(tmp_path: Path) -> None:
    require_tool("docker-registry", "apt install docker-registry")
    openssl = require_tool("openssl", "apt install openssl")
    ws = make_workspace(tmp_path)
    addr = free_addr()
    host, port = addr.rsplit(":", 1)
    with stopped_after(ws):
        up = run_cli("-C", str(ws.root), "registry", "up", "--addr", addr)
        assert up.returncode == 0, up.stderr
        info = manager.status(ws)
        assert info is not None
        src = OciLayout(tmp_path / "src").ensure()
        tiny_image(src, b"rotate me\n" * 50_000, "hello:0.1.0")
        with RegistryClient(info.url, ca_path=info.ca_bundle, username=info.username,
                            password=info.password) as client:
            digest = client.push_layout(src, "hello:0.1.0", "hello", "0.1.0")
        manifest = json.loads(src.read_blob(digest))
        args = (info.url, info.ca_bundle, (info.username, info.password), digest,
                manifest["layers"][0]["digest"])
        puller = Puller(*args)  # the one the brief describes: fresh TLS context per pull
        pooled = Puller(*args, keep_alive=True)  # and a client that keeps its connection
        old_ca = tmp_path / "old-ca.crt"
        shutil.copy(ws.state / "pki" / "ca" / "ca.crt", old_ca)
        first_leaf = _served_der(host, int(port))

        threads = [threading.Thread(target=p.run, daemon=True) for p in (puller, pooled)]
        for thread in threads:
            thread.start()
        try:
            puller.pulls_after(0)
            pooled.pulls_after(0)
            served = [first_leaf]
            for step in (["certs", "rotate", "--force"], ["certs", "rotate", "--ca"],
                         ["certs", "retire-ca", "--force"]):
                before = puller.ok
                result = run_cli("-C", str(ws.root), *step)
                assert result.returncode == 0, f"{step}: {result.stdout}{result.stderr}"
                puller.pulls_after(before)  # the client kept pulling across this step
                served.append(_served_der(host, int(port)))
        finally:
            for p in (puller, pooled):
                p.stop.set()
            for thread in threads:
                thread.join(timeout=60)
        assert puller.failures == [], puller.failures[:5]
        assert pooled.failures == [], pooled.failures[:5]
        assert puller.ok > 40 and pooled.ok > 10

        # Each rotation put a new leaf (new serial) in front of the clients, and the registry
        # serves the leaf now on disk.
        serials = [x509.load_der_x509_certificate(der).serial_number for der in served]
        assert serials[1] != serials[0] and serials[2] != serials[1], serials
        on_disk = x509.load_pem_x509_certificate((ws.state / "pki" / "registry" / "tls.crt")
                                                 .read_bytes())
        assert serials[3] == on_disk.serial_number
        now = manager.status(ws)
        assert now is not None and now.pid == info.pid
        assert now.backend_pid != info.backend_pid

        # Nothing stored was lost: pull it all back, digests checked by the client.
        with RegistryClient(info.url, ca_path=info.ca_bundle, username=info.username,
                            password=info.password, retries=0) as client:
            dst = OciLayout(tmp_path / "dst").ensure()
            assert client.pull("hello", "0.1.0", dst).digest == digest
            for layer in manifest["layers"]:
                assert dst.has_blob(layer["digest"])

        # After retire-ca the old CA vouches for nothing the registry serves; the bundle does.
        _handshake(host, int(port), info.ca_bundle)
        with pytest.raises(ssl.SSLCertVerificationError):
            _handshake(host, int(port), old_ca)
        leaf = tmp_path / "served.pem"
        leaf.write_text(ssl.DER_cert_to_PEM_cert(served[-1]))
        assert subprocess.run([openssl, "verify", "-CAfile", str(info.ca_bundle), str(leaf)],
                              capture_output=True).returncode == 0
        assert subprocess.run([openssl, "verify", "-CAfile", str(old_ca), str(leaf)],
                              capture_output=True).returncode != 0
