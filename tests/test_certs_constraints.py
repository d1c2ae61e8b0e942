"""Name constraints and EKUs are enforced by real verifiers (OpenSSL's CLI and Python's ssl in a
real TLS handshake), not only by crossyard's own check."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import require_tool
from crossyard import certs, pki
from crossyard.errors import ConfigurationError
from helpers.pkiws import REGISTRY_TOML, make_workspace, openssl_verify

pytestmark = [pytest.mark.integration]


def _rogue_leaf(ca: certs.CertPaths, directory: Path, name: str) -> certs.CertPaths:
    """A leaf for `name` signed with the CA key directly, bypassing crossyard's own check."""
    ca_cert, ca_key = certs.load_ca(ca)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = certs.CertPaths(cert=directory / "rogue.crt", key=directory / "rogue.key")
    certs.write_pair(paths, cert, key)
    return paths


@contextmanager
def tls_server(
    leaf: certs.CertPaths, *, client_ca: Path | None = None
) -> Iterator[tuple[int, list[BaseException]]]:
    """A tiny TLS server on 127.0.0.1 presenting `leaf`; requires a client certificate issued by
    `client_ca` when given. Yields (port, errors the server saw)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(leaf.cert), str(leaf.key))
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(client_ca))
    errors: list[BaseException] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                try:
                    with ctx.wrap_socket(conn, server_side=True) as tls:
                        tls.sendall(b"hello\n")
                except (ssl.SSLError, OSError) as exc:
                    errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], errors
    finally:
        stop.set()
        # accept() is not interrupted by close() from another thread: wake it with a connection.
        with socket.create_connection(("127.0.0.1", listener.getsockname()[1]), timeout=5):
            pass
        listener.close()
        thread.join(timeout=10)


def _handshake(
    port: int, *, cafile: Path, server_hostname: str, client: certs.CertPaths | None = None
) -> bytes:
    ctx = ssl.create_default_context(cafile=str(cafile))
    if client is not None:
        ctx.load_cert_chain(str(client.cert), str(client.key))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, ctx.wrap_socket(
        raw, server_hostname=server_hostname
    ) as tls:
        return tls.recv(16)


def test_outside_name_refused_by_crossyard_openssl_and_python_ssl(tmp_path: Path) -> None:
    openssl = require_tool("openssl", "apt-get install openssl")
    ws = make_workspace(tmp_path)
    ca = pki.ensure_ca(ws)
    good = pki.ensure_leaf(ws, "registry")

    with pytest.raises(ConfigurationError, match="outside the CA's permitted names"):
        certs.issue_leaf(ca, tmp_path / "evil", names=("registry.example.com",))
    rogue = _rogue_leaf(ca, tmp_path, "registry.example.com")

    # OpenSSL's verifier: the constrained CA accepts its own leaf and refuses the rogue one.
    assert openssl_verify(openssl, ca.cert, good.cert).returncode == 0
    res = openssl_verify(openssl, ca.cert, rogue.cert)
    assert res.returncode != 0
    assert "permitted subtree violation" in (res.stdout + res.stderr).lower()
    bundle = pki.Pki.of(ws).bundle
    assert openssl_verify(openssl, bundle, good.cert).returncode == 0

    # Python's ssl in a real handshake: same outcome.
    with tls_server(good) as (port, _):
        assert _handshake(port, cafile=bundle, server_hostname="registry.cluster.local") == (
            b"hello\n"
        )
        assert _handshake(port, cafile=bundle, server_hostname="127.0.0.1") == b"hello\n"
    with tls_server(rogue) as (port, _), pytest.raises(ssl.SSLCertVerificationError) as info:
        _handshake(port, cafile=bundle, server_hostname="registry.example.com")
    assert "permitted subtree violation" in str(info.value).lower()


def test_outside_ip_refused_by_openssl(tmp_path: Path) -> None:
    openssl = require_tool("openssl", "apt-get install openssl")
    ws = make_workspace(tmp_path)
    ca = pki.ensure_ca(ws)
    with pytest.raises(ConfigurationError, match="outside"):
        certs.issue_leaf(ca, tmp_path / "ip", names=("192.168.1.10",))
    # The same IP leaf from an unconstrained CA verifies, so it is the constraint that refuses.
    free = certs.create_ca(tmp_path / "free")
    ok = certs.issue_leaf(free, tmp_path / "ok", names=("192.168.1.10",))
    assert openssl_verify(openssl, free.cert, ok.cert).returncode == 0
    ca_cert, ca_key = certs.load_ca(ca)
    rogue_cert, rogue_key = certs.build_leaf(
        *certs.load_ca(free), names=("192.168.1.10",), lifetime=datetime.timedelta(hours=1)
    )
    del rogue_key
    # Re-sign the same contents with the constrained CA, skipping crossyard's check.
    builder = (
        x509.CertificateBuilder()
        .subject_name(rogue_cert.subject).issuer_name(ca_cert.subject)
        .public_key(rogue_cert.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(rogue_cert.not_valid_before_utc)
        .not_valid_after(rogue_cert.not_valid_after_utc)
    )
    for ext in rogue_cert.extensions:
        if not isinstance(ext.value, x509.AuthorityKeyIdentifier):
            builder = builder.add_extension(ext.value, critical=ext.critical)
    signed = builder.sign(ca_key, hashes.SHA256())
    path = tmp_path / "rogue-ip.crt"
    path.write_bytes(signed.public_bytes(serialization.Encoding.PEM))
    res = openssl_verify(openssl, ca.cert, path)
    assert res.returncode != 0
    assert "permitted subtree violation" in (res.stdout + res.stderr).lower()


def test_client_certificates_for_mtls(tmp_path: Path) -> None:
    """A `usage = ["client"]` leaf from the same CA opens an mTLS connection; a server-only leaf
    is refused as a client certificate by the server's verifier."""
    openssl = require_tool("openssl", "apt-get install openssl")
    ws = make_workspace(
        tmp_path,
        profiles={
            "registry": REGISTRY_TOML,
            "node1": 'names = ["node1.cluster.local"]\nusage = ["client"]\nlifetime = "1h"\n',
        },
    )
    server = pki.ensure_leaf(ws, "registry")
    node = pki.ensure_leaf(ws, "node1")
    bundle = pki.Pki.of(ws).bundle
    assert certs.inspect(node.cert).usage == ("client",)
    res = openssl_verify(openssl, bundle, node.cert, "-purpose", "sslclient")
    assert res.returncode == 0, res.stdout + res.stderr
    res = openssl_verify(openssl, bundle, node.cert, "-purpose", "sslserver")
    assert res.returncode != 0

    with tls_server(server, client_ca=bundle) as (port, errors):
        got = _handshake(port, cafile=bundle, server_hostname="localhost", client=node)
        assert got == b"hello\n"
        assert not errors
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            data = _handshake(port, cafile=bundle, server_hostname="localhost", client=server)
            # TLS 1.3: the client learns of the rejection on its first read.
            if not data:
                raise ConnectionError("closed")
    assert any("unsuitable certificate purpose" in str(e) for e in errors), errors


def test_rsa_ca_and_leaf_verify(tmp_path: Path) -> None:
    openssl = require_tool("openssl", "apt-get install openssl")
    ws = make_workspace(
        tmp_path,
        ca='key_type = "rsa-3072"\npermitted_dns = ["localhost"]\npermitted_ips = ["127.0.0.0/8"]\n',
        profiles={"registry": 'names = ["localhost", "127.0.0.1"]\nkey_type = "rsa-3072"\n'},
    )
    leaf = pki.ensure_leaf(ws, "registry")
    assert certs.inspect(pki.Pki.of(ws).ca.cert).key_type == "rsa-3072"
    assert certs.inspect(leaf.cert).key_type == "rsa-3072"
    assert openssl_verify(openssl, pki.Pki.of(ws).bundle, leaf.cert).returncode == 0
    with tls_server(leaf) as (port, _):
        assert _handshake(port, cafile=pki.Pki.of(ws).bundle, server_hostname="127.0.0.1")
