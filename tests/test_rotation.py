"""Certificate rotation on a running managed registry while clients keep pulling.

The clients are deliberately plain: no retries. Two read bundle.crt directly (a new TLS context
per pull, and one kept-alive connection); two are real nodes' tools holding only what `certs
trust` wrote for them — skopeo with a Docker certs.d directory and containerd's `ctr` with a
hosts.toml — refreshed only when `certs status` says so. Any refused connection, failed
handshake or missing blob through leaf renewal and the CA rotation's three phases (`rotate
--ca`, `switch-ca`, `retire-ca`) shows up as a failure.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import REPO, require, require_tool, run_cli
from crossyard import certs
from crossyard.oci.layout import OciLayout
from crossyard.registry import manager
from crossyard.registry.client import RegistryClient
from helpers.containerd import ctr_fetch, running_containerd, untrusted
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


@dataclass
class ToolPuller:
    """A real client pulling in a loop: `pull()` runs one skopeo/ctr invocation, which reads its
    trust files afresh each time, as a node's runtime does per pull."""

    name: str
    pull: Callable[[], subprocess.CompletedProcess[str]]
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            result = self.pull()
            if result.returncode == 0:
                self.ok += 1
            else:
                self.failures.append((result.stdout + result.stderr).strip()[-300:])
            self.stop.wait(0.05)

    def pulls_after(self, count: int, more: int = 3, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.ok < count + more and time.monotonic() < deadline and not self.failures:
            time.sleep(0.05)
        assert self.ok >= count + more, f"{self.name} stalled at {self.ok}: {self.failures[-3:]}"


def _trust(ws_root: Path, fmt: str, addr: str, out: Path) -> None:
    """What an operator runs to (re)write a node's trust: `crossyard certs trust`."""
    r = run_cli("-C", str(ws_root), "certs", "trust", "--format", fmt, "--host", addr,
                "-o", str(out))
    assert r.returncode == 0, r.stderr


def _skopeo(cert_dir: Path, ref: str, creds: str) -> subprocess.CompletedProcess[str]:
    dest = tempfile.mkdtemp(prefix="cy-skopeo-")
    try:
        return subprocess.run(
            ["skopeo", "copy", "--retry-times", "0", "--src-cert-dir", str(cert_dir),
             "--src-creds", creds, f"docker://{ref}", f"dir:{dest}"],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def _verify_error(openssl: str, cafile: Path, cert: Path) -> str:
    """`openssl verify`'s complaint, or '' when the chain verifies."""
    r = subprocess.run([openssl, "verify", "-CAfile", str(cafile), str(cert)],
                       capture_output=True, text=True)
    return "" if r.returncode == 0 else r.stdout + r.stderr


@pytest.mark.integration
def test_ca_rotation_phases_under_load(tmp_path: Path) -> None:
    for tool in ("docker-registry", "skopeo", "containerd", "ctr"):
        require_tool(tool, "see .ci/install.d/31-certs.sh")
    openssl = require_tool("openssl", "apt install openssl")
    require(os.geteuid() == 0, "containerd needs root")
    ws = make_workspace(tmp_path)
    addr = free_addr()
    host, port = addr.rsplit(":", 1)
    cli = ("-C", str(ws.root))
    with stopped_after(ws), running_containerd(tmp_path / "ctd") as sock:
        up = run_cli(*cli, "registry", "up", "--addr", addr)
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
        puller = Puller(*args)  # reads bundle.crt per pull
        pooled = Puller(*args, keep_alive=True)  # and a client that keeps its connection
        creds, ref = f"{info.username}:{info.password}", f"{addr}/hello:0.1.0"

        # The nodes' trust, written before any rotation; `pre` copies are never refreshed.
        node_docker, node_ctd = tmp_path / "node-docker", tmp_path / "node-containerd"
        _trust(ws.root, "docker", addr, node_docker)
        _trust(ws.root, "containerd", addr, node_ctd)
        pre_docker, pre_ctd = tmp_path / "pre-docker", tmp_path / "pre-containerd"
        shutil.copytree(node_docker, pre_docker)
        shutil.copytree(node_ctd, pre_ctd)
        pre_ca = pre_docker / "certs.d" / addr / "ca.crt"
        assert pre_ca.read_bytes().count(b"BEGIN CERTIFICATE") == 1
        skopeo = ToolPuller("skopeo", lambda: _skopeo(node_docker / "certs.d" / addr, ref, creds))
        ctr = ToolPuller("ctr", lambda: ctr_fetch(sock, node_ctd / "certs.d", ref, creds))
        pre_skopeo = lambda: _skopeo(pre_docker / "certs.d" / addr, ref, creds)  # noqa: E731
        pre_ctr = lambda: ctr_fetch(sock, pre_ctd / "certs.d", ref, creds)  # noqa: E731

        loops = (puller, pooled, skopeo, ctr)
        threads = [threading.Thread(target=p.run, daemon=True) for p in loops]
        for thread in threads:
            thread.start()

        def step(*argv: str) -> subprocess.CompletedProcess[str]:
            """Run a `crossyard certs` step; every client keeps pulling across it."""
            before = [p.ok for p in loops]
            result = run_cli(*cli, "certs", *argv)
            assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
            for p, count in zip(loops, before, strict=True):
                p.pulls_after(count)
            return result

        def status() -> tuple[str, dict]:  # type: ignore[type-arg]
            text = run_cli(*cli, "certs", "status", "--threshold-days", "1")
            js = run_cli(*cli, "certs", "status", "--threshold-days", "1", "--json")
            assert js.returncode == 0, js.stdout + js.stderr
            return text.stdout, json.loads(js.stdout)["ca_rotation"]

        leaf_file = tmp_path / "served.pem"

        def served() -> x509.Certificate:
            der = _served_der(host, int(port))
            leaf_file.write_text(ssl.DER_cert_to_PEM_cert(der))
            return x509.load_der_x509_certificate(der)

        try:
            for p in loops:
                p.pulls_after(0)
            first = served()

            # Leaf renewal within the CA: nothing changes for any client.
            step("rotate", "--force")
            renewed = served()
            assert renewed.serial_number != first.serial_number
            assert _verify_error(openssl, pre_ca, leaf_file) == ""

            # Phase 1: the new CA is staged; the registry keeps a leaf from the old CA, so the
            # nodes, still on their pre-rotation trust, keep pulling.
            r = step("rotate", "--ca")
            assert "new CA staged" in r.stdout
            assert served().serial_number == renewed.serial_number
            assert _verify_error(openssl, pre_ca, leaf_file) == ""
            assert pre_skopeo().returncode == 0 and pre_ctr().returncode == 0
            text, rotation = status()
            assert "CA rotation: phase 1 of 3 (staged)" in text
            assert rotation["phase"] == 1 and rotation["next"] == "crossyard certs switch-ca"
            assert "`crossyard certs trust --format docker|containerd" in rotation["advice"]
            # Out of order: the old CA signs everything, it cannot be retired yet.
            early = run_cli(*cli, "certs", "retire-ca", "--force")
            assert early.returncode == 2 and "crossyard certs switch-ca" in early.stderr

            # As status says: give the nodes the new trust (both CAs), then switch.
            _trust(ws.root, "docker", addr, node_docker)
            _trust(ws.root, "containerd", addr, node_ctd)
            assert (node_docker / "certs.d" / addr / "ca.crt").read_bytes().count(
                b"BEGIN CERTIFICATE") == 2
            for p in (skopeo, ctr):
                p.pulls_after(p.ok)

            # Phase 2: the registry serves a leaf from the new CA. The refreshed nodes keep
            # pulling; trust from before the rotation is refused now (OpenSSL error 20).
            r = step(*rotation["next"].split()[2:])  # "crossyard certs switch-ca"
            assert "registry reloaded with the new certificate" in r.stdout
            switched = served()
            assert switched.serial_number != renewed.serial_number
            assert "error 20" in _verify_error(openssl, pre_ca, leaf_file)
            assert untrusted(pre_skopeo()) and untrusted(pre_ctr())
            text, rotation = status()
            assert "CA rotation: phase 2 of 3 (switched)" in text
            assert rotation["next"] == "crossyard certs retire-ca"
            again = run_cli(*cli, "certs", "switch-ca")
            assert again.returncode == 2 and "crossyard certs retire-ca" in again.stderr
            refused = run_cli(*cli, "certs", "retire-ca")  # the overlap (30 days) still runs
            assert refused.returncode == 2 and "overlap lasts until" in refused.stderr

            # Phase 3: the old CA leaves the bundle; nothing served depended on it.
            step("retire-ca", "--force")
            assert served().serial_number == switched.serial_number
            text, rotation = status()
            assert rotation["phase"] == 0 and "CA rotation" not in text
        finally:
            for p in loops:
                p.stop.set()
            for thread in threads:
                thread.join(timeout=120)
        for p in (puller, pooled, skopeo, ctr):
            assert p.failures == [], (p, p.failures[:5])
        assert puller.ok > 40 and pooled.ok > 10 and skopeo.ok > 10 and ctr.ok > 10

        now = manager.status(ws)
        assert now is not None and now.pid == info.pid
        assert now.backend_pid != info.backend_pid
        on_disk = x509.load_pem_x509_certificate((ws.state / "pki" / "registry" / "tls.crt")
                                                 .read_bytes())
        assert on_disk.serial_number == switched.serial_number

        # Nothing stored was lost: pull it all back, digests checked by the client.
        with RegistryClient(info.url, ca_path=info.ca_bundle, username=info.username,
                            password=info.password, retries=0) as client:
            dst = OciLayout(tmp_path / "dst").ensure()
            assert client.pull("hello", "0.1.0", dst).digest == digest
            for layer in manifest["layers"]:
                assert dst.has_blob(layer["digest"])

        # After retire-ca the bundle is the new CA alone and the old CA vouches for nothing
        # the registry serves.
        assert info.ca_bundle.read_bytes().count(b"BEGIN CERTIFICATE") == 1
        _handshake(host, int(port), info.ca_bundle)
        with pytest.raises(ssl.SSLCertVerificationError):
            _handshake(host, int(port), pre_ca)
        assert _verify_error(openssl, info.ca_bundle, leaf_file) == ""
        assert "error 20" in _verify_error(openssl, pre_ca, leaf_file)


@pytest.mark.integration
def test_expired_registry_certificate_says_rotate(tmp_path: Path) -> None:
    require_tool("docker-registry", "apt install docker-registry")
    ws = make_workspace(tmp_path)
    profile = (REPO / "certs" / "registry.toml").read_text()
    (ws.root / "certs" / "registry.toml").write_text(
        profile.replace('lifetime = "90d"', 'lifetime = "8s"'))
    public = tmp_path / "cosign.pub"
    public.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    addr = free_addr()
    with stopped_after(ws):
        up = run_cli("-C", str(ws.root), "registry", "up", "--addr", addr)
        assert up.returncode == 0, up.stderr
        expires = certs.expiry(ws.state / "pki" / "registry" / "tls.crt")
        time.sleep(max(0.0, (expires - datetime.datetime.now(datetime.UTC)).total_seconds()) + 1)
        verify = ("-C", str(ws.root), "verify", f"{addr}/hello:1", "--key", str(public))
        r = run_cli(*verify)
        assert r.returncode == 2, r.stdout + r.stderr
        assert "Traceback" not in r.stderr
        assert "TLS certificate has expired" in r.stderr
        assert "`crossyard certs rotate`" in r.stderr and "--ca" not in r.stderr
        # The advice works: rotate re-issues and reloads, and TLS is fine again.
        r = run_cli("-C", str(ws.root), "certs", "rotate")
        assert r.returncode == 0, r.stderr
        assert "re-issued registry: expired" in r.stdout and "registry reloaded" in r.stdout
        r = run_cli(*verify)
        assert r.returncode == 2 and "not found in the registry" in r.stderr, r.stderr
