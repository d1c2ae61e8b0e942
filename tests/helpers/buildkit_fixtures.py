"""BuildKit fixtures shared by the test files that need a daemon (a pytest plugin, loaded by
conftest.py): the buildkitd and buildctl recipes built once per session by `crossyard build`,
the amd64 buildkitd started once as root, and a plain-HTTP registry it can push to."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import REPO, build_summary, require, require_tool
from crossyard import certs, debian
from crossyard.buildkit.api import descriptor_set
from crossyard.buildkit.client import Api, TlsFiles
from crossyard.oci.layout import OciLayout
from crossyard.platforms import AMD64, Platform
from crossyard.registry import server
from crossyard.toolchains import roots_dir
from crossyard.workspace import Workspace
from helpers.managed import make_workspace
from helpers.processes import stop, wait_started

RUNC_ROOT = "go-trixie-runc-amd64"  # toolchains/go-runc.toml


@dataclass(frozen=True, kw_only=True)
class Built:
    ws: Workspace
    summary: dict[str, Any]

    def binary(self, program: str, platform: Platform, into: Path) -> Path:
        """`program` for `platform` out of the store, executable, in `into`."""
        [job] = [j for j in self.summary["jobs"] if j["id"] == f"{program}@{platform.oci}"]
        target = into / f"{program}-{platform.slug}"
        shutil.copyfile(OciLayout(self.ws.store_dir).blob_path(job["outputs"][program]), target)
        target.chmod(0o755)
        return target


@dataclass(frozen=True, kw_only=True)
class Daemon:
    address: str
    tcp: str  # the same daemon over TCP with mutual TLS (crossyard's CA)
    tls: TlsFiles  # a client certificate from that CA
    buildctl: Path
    api: Api


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Both programs and runc for the three platforms and the image of the three, built once by
    `crossyard build` from a copy of the recipes (the go-buildkit and go-runc toolchains' roots:
    `crossyard toolchains prepare go-buildkit`, `… prepare go-runc`)."""
    for toolchain, root in (("go-buildkit", "go-trixie-buildkit-amd64"), ("go-runc", RUNC_ROOT)):
        require((roots_dir() / root / "usr" / "share" / "gocode").is_dir(),
                f"the {toolchain} root is missing: run `crossyard toolchains prepare {toolchain}`")
    require_tool("bwrap", "apt-get install bubblewrap")
    ws = make_workspace(tmp_path_factory.mktemp("buildkit"), (REPO / "crossyard.toml").read_text())
    shutil.copytree(REPO / "recipes" / "buildkit", ws.root / "recipes" / "buildkit")
    return Built(ws=ws, summary=build_summary(ws.root))


@pytest.fixture(scope="session")
def api(built: Built) -> Api:
    """BuildKit's API, compiled from the same Debian source's .proto files (cached in the workspace)."""
    return Api.load(descriptor_set(built.ws.cache_dir, lambda: debian.workspace_mirror(built.ws)))


@pytest.fixture(scope="session")
def daemon(built: Built, api: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """The built amd64 buildkitd, as root: its own state directory and socket, the OCI worker
    (the machine's runc), no containerd worker."""
    require(Platform.host() == AMD64, "the amd64 buildkitd runs natively here")
    require(os.geteuid() == 0, "buildkitd's OCI worker runs as root here (rootless is not set up)")
    require_tool("runc", "apt-get install runc")
    tmp = tmp_path_factory.mktemp("buildkitd")
    buildkitd, buildctl = built.binary("buildkitd", AMD64, tmp), built.binary("buildctl", AMD64, tmp)
    address = f"unix://{tmp}/buildkitd.sock"
    tcp = f"tcp://127.0.0.1:{server.free_port()}"
    ca = certs.create_ca(tmp / "ca")
    served = certs.issue_leaf(ca, tmp / "ca", names=("127.0.0.1",), stem="buildkitd")
    ours = certs.issue_leaf(ca, tmp / "ca", names=(), usage=("client",), common_name="crossyard test", stem="client")
    log = tmp / "buildkitd.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(buildkitd), "--root", str(tmp / "root"), "--addr", address, "--addr", tcp,
             "--tlscacert", str(ca.cert), "--tlscert", str(served.cert), "--tlskey", str(served.key),
             "--oci-worker=true", "--containerd-worker=false"], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_started(process, lambda: answers(buildctl, address), what="buildkitd",
                     log=lambda: log.read_text(errors="replace"), timeout=60, interval=0.5)
        yield Daemon(address=address, tcp=tcp, tls=TlsFiles(ca=ca.cert, cert=ours.cert, key=ours.key),
                     buildctl=buildctl, api=api)
    finally:
        stop(process)


def answers(buildctl: Path, address: str) -> bool:
    """The buildkitd at `address` answers `buildctl debug workers`."""
    return subprocess.run([str(buildctl), "--addr", address, "debug", "workers"],
                          capture_output=True).returncode == 0


def buildctl_workers(daemon: Daemon) -> list[dict[str, Any]]:
    """What the built buildctl says the workers are (`debug workers`, as JSON)."""
    result = subprocess.run([str(daemon.buildctl), "--addr", daemon.address, "debug", "workers",
                             "--format", "{{json .}}"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    workers: list[dict[str, Any]] = json.loads(result.stdout)
    return workers


@pytest.fixture
def plain_registry(tmp_path: Path) -> Iterator[str]:
    """A CNCF registry on 127.0.0.1 over plain HTTP, no credentials: what buildkitd can push to
    without a session (credentials would come through the session's auth service)."""
    registry = require_tool("docker-registry", "apt-get install docker-registry")
    host = f"127.0.0.1:{server.free_port()}"
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path}/storage\n"
                      f"http:\n  addr: {host}\n")
    log = tmp_path / "registry.log"
    with log.open("wb") as out:
        process = subprocess.Popen([registry, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_started(process, lambda: _http_ok(f"http://{host}/v2/"), what="docker-registry",
                     log=lambda: log.read_text(errors="replace"), timeout=30)
        yield host
    finally:
        stop(process)


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
