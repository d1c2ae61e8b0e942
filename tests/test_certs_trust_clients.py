"""Rendered trust material used by real clients against a real TLS registry through a CA
rotation: skopeo reads the Docker `certs.d/<host:port>/` layout, containerd (`ctr --hosts-dir`)
reads hosts.toml. Before, during and after the overlap, and the negative controls."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import require, require_tool
from crossyard import certs, pki, trust
from crossyard.oci.layout import OciLayout
from crossyard.registry import server
from crossyard.workspace import Workspace
from helpers.containerd import ctr_fetch, running_containerd, untrusted
from helpers.images import tiny_image
from helpers.pkiws import make_workspace
from helpers.processes import stop

pytestmark = [pytest.mark.integration]

USER, PASSWORD = "tester", "s3cret-pw"


@contextmanager
def _registry(ws: Workspace, tmp: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """A distribution registry serving the workspace's `registry` leaf; yields (host, procs) —
    restart it with `_restart` to serve a re-issued leaf (distribution reads TLS once)."""
    leaf = pki.ensure_leaf(ws, "registry")
    htpasswd = tmp / "htpasswd"
    server.write_htpasswd(htpasswd, {USER: PASSWORD})
    port = server.free_port()
    config = tmp / "registry.yml"
    server.write_config(
        config,
        server.ServerConfig(
            addr=f"127.0.0.1:{port}", cert=leaf.cert, key=leaf.key, htpasswd=htpasswd,
            storage_dir=tmp / "storage", draintimeout_s=1,
        ),
    )
    procs: list[subprocess.Popen[bytes]] = []
    _restart(ws, config, procs, port)
    try:
        yield f"127.0.0.1:{port}", procs
    finally:
        _stop(procs)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    while procs:
        stop(procs.pop(), 10)


def _restart(ws: Workspace, config: Path, procs: list[subprocess.Popen[bytes]], port: int) -> None:
    _stop(procs)
    procs.append(server.start_process(config, config.parent / "registry.log"))
    server.wait_ready(f"https://127.0.0.1:{port}", pki.Pki.of(ws).bundle)


def _render(ws: Workspace, fmt: str, host: str, out: Path) -> Path:
    cas = tuple(certs.pem(c) for c in certs.load_bundle(pki.Pki.of(ws).bundle))
    for relpath, content in trust.render(fmt, host=host, cas=cas).items():
        (out / relpath).parent.mkdir(parents=True, exist_ok=True)
        (out / relpath).write_bytes(content)
    return out / "certs.d"


def _skopeo_push(cert_dir: Path, src: Path, host: str, tag: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["skopeo", "copy", "--retry-times", "0", "--dest-cert-dir", str(cert_dir),
         "--dest-creds", f"{USER}:{PASSWORD}", f"oci:{src}:v1", f"docker://{host}/demo:{tag}"],
        capture_output=True, text=True, timeout=120,
    )


def _ctr_fetch(sock: Path, hosts_dir: Path, host: str, tag: str) -> subprocess.CompletedProcess[str]:
    return ctr_fetch(sock, hosts_dir, f"{host}/demo:{tag}", f"{USER}:{PASSWORD}")



def test_docker_and_containerd_trust_through_a_ca_rotation(tmp_path: Path) -> None:
    for tool in ("docker-registry", "skopeo", "containerd", "ctr"):
        require_tool(tool, "see .ci/install.d/31-certs.sh")
    require(os.geteuid() == 0, "containerd needs root")
    ws = make_workspace(tmp_path)
    src = tmp_path / "oci"
    tiny_image(OciLayout(src).ensure(), b"hello from crossyard\n", "v1")

    with _registry(ws, tmp_path / "reg") as (host, procs), running_containerd(tmp_path / "ctd") as sock:
        port = int(host.rsplit(":", 1)[1])
        config = tmp_path / "reg" / "registry.yml"

        # One CA: both clients trust the registry with what `certs trust` renders.
        docker1 = _render(ws, "docker", host, tmp_path / "docker1") / host
        ctd1 = _render(ws, "containerd", host, tmp_path / "ctd1")
        r = _skopeo_push(docker1, src, host, "one")
        assert r.returncode == 0, r.stderr
        r = _ctr_fetch(sock, ctd1, host, "one")
        assert r.returncode == 0, r.stderr

        # Negative control: trust material from an unrelated CA is refused.
        stranger = make_workspace(tmp_path / "stranger")
        pki.ensure_ca(stranger)
        assert untrusted(_skopeo_push(_render(stranger, "docker", host, tmp_path / "s") / host,
                                       src, host, "x"))
        assert untrusted(_ctr_fetch(sock, _render(stranger, "containerd", host,
                                                   tmp_path / "s2"), host, "one"))

        # Phase 1 (`rotate --ca`): the new CA is staged, the registry keeps its old leaf, so the
        # pre-rotation trust still works; the trust rendered now holds both CAs.
        pki.rotate(ws, ca=True)
        assert _skopeo_push(docker1, src, host, "one-staged").returncode == 0
        assert _ctr_fetch(sock, ctd1, host, "one").returncode == 0
        docker2 = _render(ws, "docker", host, tmp_path / "docker2") / host
        ctd2 = _render(ws, "containerd", host, tmp_path / "ctd2")
        assert _skopeo_push(docker2, src, host, "two-old-leaf").returncode == 0
        assert _ctr_fetch(sock, ctd2, host, "one").returncode == 0
        # Phase 2 (`switch-ca`): the registry restarts on a leaf from the new CA; clients with
        # the phase-1 trust never fail.
        pki.switch_ca(ws)
        _restart(ws, config, procs, port)
        r = _skopeo_push(docker2, src, host, "two-new-leaf")
        assert r.returncode == 0, r.stderr
        r = _ctr_fetch(sock, ctd2, host, "two-new-leaf")
        assert r.returncode == 0, r.stderr
        # Clients still on the old CA alone cannot reach the re-issued registry.
        assert untrusted(_skopeo_push(docker1, src, host, "stale"))
        assert untrusted(_ctr_fetch(sock, ctd1, host, "one"))

        # retire-ca: the new CA alone is enough.
        pki.retire_ca(ws, force=True)
        docker3 = _render(ws, "docker", host, tmp_path / "docker3") / host
        ctd3 = _render(ws, "containerd", host, tmp_path / "ctd3")
        assert (docker3 / "ca.crt").read_bytes().count(b"BEGIN CERTIFICATE") == 1
        assert _skopeo_push(docker3, src, host, "three").returncode == 0
        r = _ctr_fetch(sock, ctd3, host, "three")
        assert r.returncode == 0, r.stderr
