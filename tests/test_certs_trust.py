"""Trust renderers: the files each client format needs, before and during a CA overlap, parsed
back with real parsers (tomllib, YAML) and checked with OpenSSL."""

from __future__ import annotations

import base64
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import require_tool, run_cli
from crossyard import certs, pki, trust
from crossyard.errors import ConfigurationError
from helpers.pkiws import REGISTRY_TOML, make_workspace, openssl_verify

HOST = "registry.cluster.local:5000"
NODE = 'names = ["node1.cluster.local"]\nusage = ["client"]\nlifetime = "1h"\n'


@pytest.fixture
def overlap_ws(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A workspace mid CA rotation: bundle = [new CA, old CA], leaves from the new CA."""
    ws = make_workspace(tmp_path, profiles={"registry": REGISTRY_TOML, "node1": NODE})
    pki.ensure_leaf(ws, "registry")
    pki.ensure_leaf(ws, "node1")
    pki.rotate(ws, ca=True)
    pki.switch_ca(ws)
    return ws


def _cas(ws) -> tuple[bytes, ...]:  # type: ignore[no-untyped-def]
    return tuple(certs.pem(c) for c in certs.load_bundle(pki.Pki.of(ws).bundle))


def test_docker_layout_holds_both_cas(overlap_ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    openssl = require_tool("openssl", "apt-get install openssl")
    cas = _cas(overlap_ws)
    files = trust.render("docker", host=HOST, cas=cas)
    assert set(files) == {f"certs.d/{HOST}/ca.crt"}
    ca_crt = files[f"certs.d/{HOST}/ca.crt"]
    assert ca_crt == b"".join(cas) and ca_crt.count(b"BEGIN CERTIFICATE") == 2
    (tmp_path / "ca.crt").write_bytes(ca_crt)
    leaf = pki.Pki.of(overlap_ws).leaf("registry")
    assert openssl_verify(openssl, tmp_path / "ca.crt", leaf.cert).returncode == 0
    # After retire-ca: one CA.
    pki.retire_ca(overlap_ws, force=True)
    files = trust.render("docker", host=HOST, cas=_cas(overlap_ws))
    assert files[f"certs.d/{HOST}/ca.crt"].count(b"BEGIN CERTIFICATE") == 1


def test_containerd_hosts_toml_lists_ca_paths(overlap_ws) -> None:  # type: ignore[no-untyped-def]
    cas = _cas(overlap_ws)
    layout = pki.Pki.of(overlap_ws)
    client = trust.ClientIdentity(
        cert=layout.leaf("node1").cert.read_bytes(), key=layout.leaf("node1").key.read_bytes()
    )
    files = trust.render("containerd", host=HOST, cas=cas, client=client)
    base = f"certs.d/{HOST}"
    hosts = tomllib.loads(files[f"{base}/hosts.toml"].decode())
    assert hosts["server"] == f"https://{HOST}"
    entry = hosts["host"][f"https://{HOST}"]
    assert entry["ca"] == [trust.containerd_ca_name(ca) for ca in cas]
    assert all(re.fullmatch(r"ca-[0-9a-f]{16}\.crt", n) for n in entry["ca"])
    assert len(set(entry["ca"])) == 2
    assert entry["client"] == [["client.cert", "client.key"]]
    assert set(entry["capabilities"]) == {"pull", "resolve", "push"}
    assert [files[f"{base}/{p}"] for p in entry["ca"]] == list(cas)
    assert files[f"{base}/client.key"] == client.key
    assert trust.is_secret(f"{base}/client.key", client.key, client)
    assert not trust.is_secret(f"{base}/hosts.toml", files[f"{base}/hosts.toml"], client)
    # Outside an overlap `ca` lists one path.
    one = trust.render("containerd", host=HOST, cas=cas[:1])
    assert tomllib.loads(one[f"{base}/hosts.toml"].decode())["host"][f"https://{HOST}"]["ca"] == [
        trust.containerd_ca_name(cas[0])
    ]
    # hosts.toml is written last, after every file it names exists.
    assert list(files)[-1] == f"{base}/hosts.toml"


def test_talos_patch_carries_base64_bundle(overlap_ws) -> None:  # type: ignore[no-untyped-def]
    cas = _cas(overlap_ws)
    files = trust.render("talos", host=HOST, cas=cas, talos_version="1.11")
    assert set(files) == {"talos-registry-patch.yaml"}
    doc = yaml.safe_load(files["talos-registry-patch.yaml"])
    tls = doc["machine"]["registries"]["config"][HOST]["tls"]
    assert base64.b64decode(tls["ca"]) == b"".join(cas)
    assert set(tls) == {"ca"}
    client = trust.ClientIdentity(cert=b"CERT\n", key=b"KEY\n")
    files = trust.render("talos", host=HOST, cas=cas, client=client, talos_version="v1.9.5")
    doc = yaml.safe_load(files["talos-registry-patch.yaml"])
    ident = doc["machine"]["registries"]["config"][HOST]["tls"]["clientIdentity"]
    assert base64.b64decode(ident["crt"]) == b"CERT\n"
    assert trust.is_secret("talos-registry-patch.yaml", files["talos-registry-patch.yaml"], client)


# The fields of Talos's RegistryTLSConfig and TrustedRootsConfig v1alpha1 documents
# (pkg/machinery/config/types/cri/registry_tls.go, types/security): nothing else is allowed.
_TALOS_FIELDS = {
    "RegistryTLSConfig": ({"apiVersion", "kind", "name"},
                          {"ca", "clientIdentity", "insecureSkipVerify"}),
    "TrustedRootsConfig": ({"apiVersion", "kind", "name", "certificates"}, set()),
}


def _pem_certs(text: str) -> list[bytes]:
    from cryptography import x509

    return [certs.pem(c) for c in x509.load_pem_x509_certificates(text.encode())]


def test_talos_documents_for_112_and_later(overlap_ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    openssl = require_tool("openssl", "apt-get install openssl")
    cas = _cas(overlap_ws)
    layout = pki.Pki.of(overlap_ws)
    node = layout.leaf("node1")
    client = trust.ClientIdentity(cert=node.cert.read_bytes(), key=node.key.read_bytes())
    for version in ("1.12", "v1.13.0", "2.0"):
        files = trust.render("talos", host=HOST, cas=cas, client=client, talos_version=version)
        assert set(files) == {"talos-registry-tls.yaml"}, version
    text = files["talos-registry-tls.yaml"]
    docs = list(yaml.safe_load_all(text))
    assert [d["kind"] for d in docs] == ["RegistryTLSConfig", "TrustedRootsConfig"]
    for doc in docs:
        required, optional = _TALOS_FIELDS[doc["kind"]]
        assert doc["apiVersion"] == "v1alpha1"
        assert required <= set(doc) <= required | optional, doc.keys()
        assert all(isinstance(doc[k], str) for k in required)
    tls, roots = docs
    assert tls["name"] == HOST  # the endpoint as in https://HOST/v2/
    assert _pem_certs(tls["ca"]) == list(cas) == _pem_certs(roots["certificates"])
    assert roots["name"] == "crossyard-registry-ca"
    assert set(tls["clientIdentity"]) == {"cert", "key"}  # PEM, not base64 as in the old patch
    assert tls["clientIdentity"]["cert"].encode() == client.cert.strip()
    assert tls["clientIdentity"]["key"].encode() == client.key.strip()
    assert trust.is_secret("talos-registry-tls.yaml", text, client)
    # The CA text Talos gets verifies the registry leaf (both CAs present during the overlap).
    (tmp_path / "talos-ca.pem").write_text(tls["ca"] + "\n")
    assert openssl_verify(openssl, tmp_path / "talos-ca.pem", layout.leaf("registry").cert
                          ).returncode == 0

    # Without a client: no clientIdentity, and nothing secret (so it may be printed).
    plain = trust.render("talos", host="[fd00::5]:5000", cas=cas[:1], talos_version="1.12")
    docs = list(yaml.safe_load_all(plain["talos-registry-tls.yaml"]))
    assert "clientIdentity" not in docs[0] and docs[0]["name"] == "[fd00::5]:5000"
    assert not trust.is_secret("talos-registry-tls.yaml", plain["talos-registry-tls.yaml"], None)

    # Without --talos-version both forms are written; a bad version names the flag.
    assert set(trust.render("talos", host=HOST, cas=cas)) == {
        "talos-registry-tls.yaml", "talos-registry-patch.yaml"}
    with pytest.raises(ConfigurationError, match="--talos-version 'latest'"):
        trust.render("talos", host=HOST, cas=cas, talos_version="latest")
    with pytest.raises(ConfigurationError, match="only to --format talos"):
        trust.render("docker", host=HOST, cas=cas, talos_version="1.12")

    out = tmp_path / "talos"
    r = run_cli("--workspace", str(overlap_ws.root), "certs", "trust", "--format", "talos",
                "--host", HOST, "--talos-version", "1.12", "--client", "node1", "-o", str(out))
    assert r.returncode == 0, r.stderr
    written = out / "talos-registry-tls.yaml"
    assert written.stat().st_mode & 0o777 == 0o600  # holds the client key
    assert next(yaml.safe_load_all(written.read_text()))["kind"] == "RegistryTLSConfig"
    r = run_cli("--workspace", str(overlap_ws.root), "certs", "trust", "--format", "talos",
                "--host", HOST, "--talos-version", "1.12")
    assert r.returncode == 0, r.stderr
    assert [d["kind"] for d in yaml.safe_load_all(r.stdout)] == [
        "RegistryTLSConfig", "TrustedRootsConfig"]


def test_k8s_configmap(overlap_ws) -> None:  # type: ignore[no-untyped-def]
    cas = _cas(overlap_ws)
    files = trust.render("k8s", host=HOST, cas=cas, namespace="registry-system")
    doc = yaml.safe_load(files["registry-ca-configmap.yaml"])
    assert doc["kind"] == "ConfigMap" and doc["apiVersion"] == "v1"
    assert doc["metadata"] == {
        "name": "crossyard-registry-ca", "namespace": "registry-system",
        "labels": {"app.kubernetes.io/managed-by": "crossyard"},
        "annotations": {"crossyard.dev/registry": HOST},
    }
    assert doc["data"]["ca.crt"] == b"".join(cas).decode()
    with pytest.raises(ConfigurationError, match="Kubernetes name"):
        trust.render("k8s", host=HOST, cas=cas, namespace="Bad_NS")


def test_render_rejects_bad_input() -> None:
    with pytest.raises(ConfigurationError, match="did you mean `docker`"):
        trust.render("dokcer", host=HOST, cas=(b"x",))
    with pytest.raises(ConfigurationError, match="HOST:PORT"):
        trust.render("docker", host="reg/x", cas=(b"x",))
    with pytest.raises(ConfigurationError, match="empty"):
        trust.render("docker", host=HOST, cas=())
    assert trust.parse_host("[::1]:5000") == "[::1]:5000"
    assert trust.parse_host("localhost") == "localhost"


def test_trust_cli_prints_and_writes(overlap_ws, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = str(overlap_ws.root)
    r = run_cli("--workspace", root, "certs", "trust", "--format", "k8s", "--host", HOST)
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout)["kind"] == "ConfigMap"
    r = run_cli(
        "--workspace", root, "certs", "trust", "--format", "containerd", "--host", HOST,
        "--client", "node1",
    )
    assert r.returncode == 2 and "never printed" in r.stderr and "PRIVATE KEY" not in r.stdout
    out = tmp_path / "out"
    r = run_cli(
        "--workspace", root, "certs", "trust", "--format", "docker", "--host", HOST,
        "--client", "node1", "-o", str(out),
    )
    assert r.returncode == 0, r.stderr
    base = out / "certs.d" / HOST
    assert (base / "client.key").stat().st_mode & 0o777 == 0o600
    assert (base / "ca.crt").stat().st_mode & 0o777 == 0o644
    assert (base / "ca.crt").read_bytes().count(b"BEGIN CERTIFICATE") == 2
    assert "PRIVATE KEY" not in r.stdout + r.stderr


def test_containerd_rewrite_never_changes_a_listed_file_and_drops_a_retired_ca(
    overlap_ws, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A node's containerd reads hosts.toml, then each CA file it lists, on every pull. Rewriting
    the trust must never change a file the previous hosts.toml lists (else a node would briefly
    trust only the new CA), and after `retire-ca` the retired CA's file goes."""
    root = str(overlap_ws.root)
    out = tmp_path / "node"
    base = out / "certs.d" / HOST
    base.mkdir(parents=True)
    (base / "ca.crt").write_text("written by an older crossyard\n")

    def write() -> list[str]:
        r = run_cli("--workspace", root, "certs", "trust", "--format", "containerd",
                    "--host", HOST, "-o", str(out))
        assert r.returncode == 0, r.stderr
        return tomllib.loads((base / "hosts.toml").read_text())["host"][f"https://{HOST}"]["ca"]

    during = write()
    assert len(during) == 2 and not (base / "ca.crt").exists()  # the fixed-name file is gone
    contents = {n: (base / n).read_bytes() for n in during}
    pki.retire_ca(overlap_ws, force=True)
    after = write()
    assert after == during[:1]  # the current CA keeps its file name ...
    assert (base / after[0]).read_bytes() == contents[after[0]]  # ... and its bytes
    assert sorted(p.name for p in base.glob("ca*.crt")) == after  # the retired CA's file is gone
