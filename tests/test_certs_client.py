"""`crossyard certs client NAME -o DIR`: a client certificate from the workspace CA, written as a
docker client reads DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem 0600). Checked with openssl;
tests/test_container_executor.py uses it against a real dockerd with --tlsverify."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import require_tool, run_cli


def openssl(*args: str) -> str:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_writes_a_client_certificate_docker_can_use_and_keeps_it_while_good(tmp_path: Path) -> None:
    require_tool("openssl", "apt-get install openssl")
    out = tmp_path / "docker-certs"
    result = run_cli("-C", str(tmp_path), "certs", "client", "builder", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert f"DOCKER_CERT_PATH={out}" in result.stdout
    key = (out / "key.pem").read_text()
    assert key.split("\n", 1)[1][:40] not in result.stdout + result.stderr  # never printed
    assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()} == {
        "ca.pem": 0o644, "cert.pem": 0o644, "key.pem": 0o600}

    text = openssl("x509", "-in", str(out / "cert.pem"), "-noout", "-subject", "-ext",
                   "extendedKeyUsage,subjectAltName,basicConstraints")
    assert "subject=CN = builder" in text and "TLS Web Client Authentication" in text
    assert "Server Authentication" not in text and "Subject Alternative Name" not in text
    assert openssl("verify", "-CAfile", str(out / "ca.pem"), "-purpose", "sslclient",
                   str(out / "cert.pem")).strip().endswith("OK")
    # the key is the certificate's
    assert openssl("x509", "-in", str(out / "cert.pem"), "-noout", "-pubkey") == \
        openssl("pkey", "-in", str(out / "key.pem"), "-pubout")

    status = run_cli("-C", str(tmp_path), "certs", "status", "--json")
    rows = {c["name"]: c for c in json.loads(status.stdout)["certificates"]}
    assert rows["builder"]["usage"] == ["client"] and rows["builder"]["state"] == "ok"

    first = (out / "cert.pem").read_bytes()
    again = run_cli("-C", str(tmp_path), "certs", "client", "builder", "-o", str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "cert.pem").read_bytes() == first  # still good: not re-issued


def test_ca_pem_holds_both_cas_during_a_rotation(tmp_path: Path) -> None:
    assert run_cli("-C", str(tmp_path), "certs", "init").returncode == 0
    assert run_cli("-C", str(tmp_path), "certs", "rotate", "--ca").returncode == 0
    result = run_cli("-C", str(tmp_path), "certs", "client", "builder", "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "ca.pem").read_text().count("BEGIN CERTIFICATE") == 2


def test_a_server_certificate_is_not_turned_into_a_client(tmp_path: Path) -> None:
    issued = run_cli("-C", str(tmp_path), "certs", "issue", "dockerd", "--san", "127.0.0.1")
    assert issued.returncode == 0, issued.stderr
    before = (tmp_path / ".crossyard" / "pki" / "dockerd" / "tls.crt").read_bytes()
    result = run_cli("-C", str(tmp_path), "certs", "client", "dockerd", "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "certificate `dockerd` is for server use, not for a client" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    assert (tmp_path / ".crossyard" / "pki" / "dockerd" / "tls.crt").read_bytes() == before
    bad = run_cli("-C", str(tmp_path), "certs", "client", "builder", "-o", str(tmp_path / "out"), "--days", "0")
    assert bad.returncode == 2 and "--days 0" in bad.stderr
