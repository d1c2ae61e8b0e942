from __future__ import annotations

import datetime
import ipaddress
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import REPO, require_tool
from crossyard import certprofiles, certs, pki
from crossyard.errors import ConfigurationError
from crossyard.workspace import Workspace


def test_ca_and_leaf_verify_with_openssl(tmp_path: Path) -> None:
    ca = certs.create_ca(tmp_path / "ca")
    leaf = certs.issue_leaf(ca, tmp_path / "leaf", names=("registry.local", "10.0.0.5"))
    assert ca.key.stat().st_mode & 0o777 == 0o600
    assert leaf.key.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(leaf.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["registry.local"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5")]
    if shutil.which("openssl"):
        subprocess.run(
            ["openssl", "verify", "-CAfile", str(ca.cert), str(leaf.cert)], check=True,
            capture_output=True,
        )


def test_name_constraints_refuse_outside_leaf(tmp_path: Path) -> None:
    ca = certs.create_ca(
        tmp_path / "ca", permitted_dns=("cluster.local",), permitted_ips=("10.0.0.0/8",)
    )
    with pytest.raises(ConfigurationError, match="outside"):
        certs.issue_leaf(ca, tmp_path / "bad", names=("evil.example.com",))
    # Bypass crossyard's check: sign an out-of-tree leaf directly with the CA key.
    ca_cert, ca_key = certs.load_ca(ca)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    bad = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evil.example.com")]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("evil.example.com")]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    bad_path = tmp_path / "bad.crt"
    bad_path.write_bytes(bad.public_bytes(serialization.Encoding.PEM))
    good = certs.issue_leaf(ca, tmp_path / "good", names=("reg.cluster.local", "10.1.2.3"))
    openssl = shutil.which("openssl")
    assert openssl is not None
    ok = subprocess.run([openssl, "verify", "-CAfile", str(ca.cert), str(good.cert)])
    assert ok.returncode == 0
    res = subprocess.run(
        [openssl, "verify", "-CAfile", str(ca.cert), str(bad_path)], capture_output=True, text=True
    )
    assert res.returncode != 0
    assert "permitted subtree violation" in (res.stdout + res.stderr).lower()
    assert ssl.create_default_context(cafile=str(ca.cert)) is not None


def test_cli_init_issue_and_constraint_error(tmp_path: Path) -> None:
    from conftest import run_cli

    ws = tmp_path / "ws"
    ws.mkdir()
    r = run_cli("--workspace", str(ws), "certs", "init", "--permit-dns", "cluster.local")
    assert r.returncode == 0, r.stderr
    r = run_cli("--workspace", str(ws), "certs", "issue", "registry", "--san", "reg.cluster.local")
    assert r.returncode == 0, r.stderr
    assert (ws / ".crossyard/pki/registry/tls.key").stat().st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" not in r.stdout + r.stderr
    r = run_cli("--workspace", str(ws), "certs", "issue", "bad", "--san", "evil.example.com")
    assert r.returncode == 2
    assert "outside the CA's permitted names" in r.stderr
    assert "Traceback" not in r.stderr


def test_shipped_profiles_issue_and_verify(tmp_path: Path) -> None:
    """certs/*.toml of the example workspace: the registry answers on localhost and 127.0.0.1,
    every profile fits the CA's name constraints, and OpenSSL accepts each chain."""
    openssl = require_tool("openssl", "apt-get install openssl")
    root = tmp_path / "ws"
    shutil.copytree(REPO / "certs", root / "certs")
    ws = Workspace(root=root)
    reg = certprofiles.load_leaf(root / "certs", "registry")
    assert "localhost" in reg.dns_names and "127.0.0.1" in reg.ip_addresses
    ca_profile = certprofiles.load_ca(root / "certs")
    assert ca_profile.key_type == "ecdsa-p256"
    assert "127.0.0.0/8" in ca_profile.permitted_ips
    for name in certprofiles.leaf_names(root / "certs"):
        leaf = pki.ensure_leaf(ws, name)
        res = subprocess.run(
            [openssl, "verify", "-CAfile", str(pki.Pki.of(ws).bundle), str(leaf.cert)],
            capture_output=True, text=True,
        )
        assert res.returncode == 0, (name, res.stdout + res.stderr)
    ca = x509.load_pem_x509_certificate(pki.Pki.of(ws).ca.cert.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0


def test_profile_organization_is_the_subjects_o(tmp_path: Path) -> None:
    """`organization` puts O values in the subject (Kubernetes reads them as the client's groups,
    e.g. system:masters for an admin); a CLI issue from the profile carries them, and OpenSSL
    prints them in the subject."""
    from conftest import run_cli

    openssl = require_tool("openssl", "apt-get install openssl")
    ws = tmp_path / "ws"
    (ws / "certs").mkdir(parents=True)
    (ws / "certs" / "admin.toml").write_text(
        'names = ["localhost"]\nusage = ["client"]\ncommon_name = "kubernetes-admin"\n'
        'organization = ["system:masters", "ops"]\n')
    r = run_cli("--workspace", str(ws), "certs", "issue", "admin")
    assert r.returncode == 0, r.stderr
    cert = ws / ".crossyard/pki/admin/tls.crt"
    subject = x509.load_pem_x509_certificate(cert.read_bytes()).subject
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:masters", "ops"]
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["kubernetes-admin"]
    shown = subprocess.run([openssl, "x509", "-noout", "-subject", "-in", str(cert)],
                           capture_output=True, text=True, check=True).stdout
    assert "O = system:masters, O = ops, CN = kubernetes-admin" in shown
    (ws / "certs" / "admin.toml").write_text('names = ["localhost"]\norganization = "system:masters"\n')
    r = run_cli("--workspace", str(ws), "certs", "issue", "admin")
    assert r.returncode == 2 and "admin.toml: `organization` must be a list of strings" in r.stderr
    assert "Traceback" not in r.stderr
