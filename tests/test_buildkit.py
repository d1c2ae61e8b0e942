"""BuildKit (recipes/buildkit/): buildkitd and buildctl built by `crossyard build` from Debian
trixie's docker.io source (its orig-buildkit component) for amd64, riscv64 and arm64; the foreign
ones print their stamped version under qemu-user; the amd64 buildkitd, started here as root with
the OCI worker (runc), answers the built buildctl and crossyard's own client
(`crossyard.buildkit`), whose API is compiled from the same Debian source's .proto files."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tarfile
from pathlib import Path

import httpx
import pytest

from conftest import binfmt_registered, build_summary, require, require_tool
from crossyard import certs
from crossyard.buildkit import llb
from crossyard.buildkit.api import descriptor_set
from crossyard.buildkit.client import Api, BuildKitError, Client, TlsFiles
from crossyard.buildkit.llb import InlineFile
from crossyard.errors import ConfigurationError, IntegrityError
from crossyard.lock import read_lock
from crossyard.oci.layout import OciLayout
from crossyard.platforms import AMD64, ARM64, RISCV64, Platform
from helpers.buildkit_fixtures import Built, Daemon, buildctl_workers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLATFORMS = (AMD64, RISCV64, ARM64)
PROGRAMS = ("buildkitd", "buildctl")
# `--version`: argv[0], Package, Version, Revision (buildkitd carries one patch more than buildctl)
REVISION = {"buildkitd": "debian-docker.io-26.1.5+dfsg1-9+crossyard1", "buildctl": "debian-docker.io-26.1.5+dfsg1-9"}


# -- milestone 1: the binaries ----------------------------------------------------------------
def test_built_static_for_three_platforms_with_trixies_go(built: Built) -> None:
    jobs = {j["id"]: j for j in built.summary["jobs"]}
    assert set(jobs) == {f"{n}@{p.oci}" for n in PROGRAMS for p in PLATFORMS}
    locked = read_lock(built.ws.lock_path).entries.values()
    assert {e.toolchain for e in locked} == {jobs[f"buildkitd@{AMD64.oci}"]["toolchain"]}
    assert jobs[f"buildkitd@{AMD64.oci}"]["toolchain"].startswith("go1.24")  # trixie's golang-go
    store = OciLayout(built.ws.store_dir)
    for platform in PLATFORMS:
        described = subprocess.run(
            ["file", "-b", str(store.blob_path(jobs[f"buildkitd@{platform.oci}"]["outputs"]["buildkitd"]))],
            capture_output=True, text=True, check=True).stdout
        assert "statically linked" in described, described
        assert {RISCV64: "RISC-V", ARM64: "ARM aarch64", AMD64: "x86-64"}[platform] in described


def test_a_second_build_rebuilds_nothing(built: Built) -> None:
    again = build_summary(built.ws.root)
    assert {j["id"]: j["status"] for j in again["jobs"]} == {j["id"]: "cached" for j in built.summary["jobs"]}
    assert {j["id"]: j["outputs"] for j in again["jobs"]} == {j["id"]: j["outputs"] for j in built.summary["jobs"]}


@pytest.mark.parametrize("platform", [RISCV64, ARM64], ids=["riscv64", "arm64"])
@pytest.mark.parametrize("program", PROGRAMS)
def test_foreign_binaries_print_their_stamped_version_under_qemu(built: Built, tmp_path: Path, program: str,
                                                                 platform: Platform) -> None:
    qemu = require_tool(platform.qemu_binary, "apt-get install qemu-user-static")
    run = subprocess.run([qemu, str(built.binary(program, platform, tmp_path)), "--version"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"{program} github.com/moby/buildkit v0.13.2 {REVISION[program]}", run.stdout


def test_amd64_buildkitd_answers_buildctl_with_its_version(daemon: Daemon) -> None:
    result = subprocess.run([str(daemon.buildctl), "--addr", daemon.address, "debug", "info"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "v0.13.2" in result.stdout and REVISION["buildkitd"] in result.stdout, result.stdout


# -- milestone 2: crossyard's client ----------------------------------------------------------
def test_client_lists_workers_with_the_native_and_binfmt_platforms(daemon: Daemon) -> None:
    for arch in ("riscv64", "aarch64"):
        require(binfmt_registered(arch), f"qemu-{arch} binfmt is not registered (.ci/install.d/10-binfmt.sh)")
    with Client(daemon.address, daemon.api) as client:
        workers = client.list_workers()
    [worker] = workers
    assert worker.platforms[0] == "linux/amd64"
    assert {"linux/amd64", "linux/riscv64", "linux/arm64"} <= set(worker.platforms)
    assert dict(worker.labels)["org.mobyproject.buildkit.worker.executor"] == "oci"
    # what buildctl, built from the same tree, reads from the same daemon
    [theirs] = buildctl_workers(daemon)
    assert worker.id == theirs["id"]
    assert dict(worker.labels) == theirs["labels"]
    assert list(worker.platforms) == [
        "/".join(filter(None, (p["os"], p["architecture"], p.get("variant")))) for p in theirs["platforms"]]


def test_client_info_is_the_stamped_version(daemon: Daemon) -> None:
    with Client(daemon.address, daemon.api) as client:
        info = client.info()
    assert (info.package, info.version, info.revision) == (
        "github.com/moby/buildkit", "v0.13.2", REVISION["buildkitd"])


def test_a_daemon_that_is_not_there_is_a_clear_error(daemon: Daemon, tmp_path: Path) -> None:
    with Client(f"unix://{tmp_path}/none.sock", daemon.api, timeout=2) as client, \
            pytest.raises(BuildKitError, match=f"buildkitd at unix://{tmp_path}/none.sock: Info failed: UNAVAILABLE"):
        client.info()


def test_over_tcp_with_mutual_tls_from_crossyards_ca(daemon: Daemon, tmp_path: Path) -> None:
    with Client(daemon.tcp, daemon.api, tls=daemon.tls) as client:
        assert client.info().version == "v0.13.2"
        assert "linux/riscv64" in client.list_workers()[0].platforms
    # a certificate from another CA is refused by the daemon
    other = certs.create_ca(tmp_path / "other")
    stranger = certs.issue_leaf(other, tmp_path / "other", names=(), usage=("client",), common_name="x", stem="c")
    with Client(daemon.tcp, daemon.api, tls=TlsFiles(ca=daemon.tls.ca, cert=stranger.cert, key=stranger.key),
                timeout=5) as client, pytest.raises(BuildKitError, match="Info failed: UNAVAILABLE"):
        client.info()


@pytest.mark.parametrize(("address", "tls", "message"), [
    ("tcp://127.0.0.1:1234", False, "over TCP crossyard speaks to buildkitd only with mutual TLS"),
    ("http://127.0.0.1:1234", False, "give unix:///ABSOLUTE/PATH (buildkitd --addr) or tcp://HOST:PORT"),
    ("tcp://127.0.0.1:1234", True, "nope.pem: cannot read this TLS file for buildkitd"),
])
def test_bad_addresses_and_tls_files_are_configuration_errors(daemon: Daemon, tmp_path: Path, address: str,
                                                              tls: bool, message: str) -> None:
    files = TlsFiles(ca=daemon.tls.ca, cert=tmp_path / "nope.pem", key=daemon.tls.key) if tls else None
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        Client(address, daemon.api, tls=files)


def test_the_compiled_api_is_cached_and_a_changed_one_is_refused_and_removed(built: Built, daemon: Daemon) -> None:
    # warm: no mirror is asked (this one would fail)
    path = descriptor_set(built.ws.cache_dir, lambda: "http://127.0.0.1:9/debian")
    assert Api.load(path).service.full_name == "moby.buildkit.v1.Control"
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\0")
        with pytest.raises(IntegrityError, match="changed since it was made"):
            descriptor_set(built.ws.cache_dir, lambda: "http://127.0.0.1:9/debian")
        assert not path.exists()
    finally:
        path.write_bytes(original)
        path.with_suffix(".sha256").write_text(hashlib.sha256(original).hexdigest() + "\n")


# -- milestone 3: a solve without a session ---------------------------------------------------
def test_llb_from_python_solved_without_a_session_and_pushed_reproducibly(daemon: Daemon, plain_registry: str) -> None:
    files = (InlineFile(path="/etc/crossyard/hello.txt", data=b"built by crossyard's BuildKit client\n"),
             InlineFile(path="/bin/run.sh", data=b"#!/bin/sh\necho hi\n", mode=0o755))
    name = f"{plain_registry}/crossyard/inline:test"
    attrs = {"name": name, "push": "true", "registry.insecure": "true", "oci-mediatypes": "true",
             "source-date-epoch": "0", "rewrite-timestamp": "true"}
    with Client(daemon.address, daemon.api) as client:
        first = client.solve(llb.inline_files(daemon.api, files), exporter="image", attrs=attrs)
        # from nothing cached: the same image, byte for byte
        pruned = subprocess.run([str(daemon.buildctl), "--addr", daemon.address, "prune", "--all"],
                                capture_output=True, text=True, timeout=120)
        assert pruned.returncode == 0, pruned.stderr
        second = client.solve(llb.inline_files(daemon.api, files), exporter="image", attrs=attrs)
    manifest_digest = first["containerimage.digest"]
    assert second["containerimage.digest"] == manifest_digest
    # what the registry holds is that image: one layer with exactly those files, dated 0
    base = f"http://{plain_registry}/v2/crossyard/inline"
    response = httpx.get(f"{base}/manifests/test", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert response.status_code == 200 and response.json()["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert "sha256:" + hashlib.sha256(response.content).hexdigest() == manifest_digest
    [layer] = response.json()["layers"]
    blob = httpx.get(f"{base}/blobs/{layer['digest']}").content
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == layer["digest"]
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tar:
        members = {m.name.rstrip("/"): m for m in tar.getmembers()}
        assert {n for n, m in members.items() if m.isfile()} == {"etc/crossyard/hello.txt", "bin/run.sh"}
        hello = tar.extractfile(members["etc/crossyard/hello.txt"])
        assert hello is not None and hello.read() == files[0].data
        assert members["bin/run.sh"].mode & 0o777 == 0o755
        assert {m.mtime for m in members.values()} == {0}


DOCKERFILE = b"FROM scratch\nARG TARGETARCH\nCOPY hello.txt /etc/hello-$TARGETARCH.txt\n"
HELLO = b"hello from the context\n"


def test_dockerfile_frontend_with_inline_inputs_builds_riscv64_and_arm64_reproducibly(
        daemon: Daemon, plain_registry: str, tmp_path: Path) -> None:
    """BuildKit's own dockerfile frontend, its context and Dockerfile given as LLB definitions
    (what buildx does for named contexts), so no session: FROM scratch + COPY for riscv64 and
    arm64 in one solve, SOURCE_DATE_EPOCH and rewrite-timestamp; one index digest from nothing
    cached twice, and the same digest buildctl gets uploading the same files as a local context
    through its session."""
    context = llb.inline_files(daemon.api, (InlineFile(path="/hello.txt", data=HELLO),))
    dockerfile = llb.inline_files(daemon.api, (InlineFile(path="/Dockerfile", data=DOCKERFILE),))
    attrs = {"name": f"{plain_registry}/crossyard/dockerfile:test", "push": "true", "registry.insecure": "true",
             "oci-mediatypes": "true", "rewrite-timestamp": "true"}
    digests = []
    with Client(daemon.address, daemon.api) as client:
        for _ in range(2):
            pruned = subprocess.run([str(daemon.buildctl), "--addr", daemon.address, "prune", "--all"],
                                    capture_output=True, text=True, timeout=120)
            assert pruned.returncode == 0, pruned.stderr
            answer = client.solve(
                exporter="image", attrs=attrs, frontend="dockerfile.v0",
                frontend_attrs={"platform": "linux/riscv64,linux/arm64", "build-arg:SOURCE_DATE_EPOCH": "0"},
                frontend_inputs={"context": context, "dockerfile": dockerfile})
            digests.append(answer["containerimage.digest"])
    assert digests[0] == digests[1]
    (tmp_path / "Dockerfile").write_bytes(DOCKERFILE)
    (tmp_path / "hello.txt").write_bytes(HELLO)
    theirs = subprocess.run(
        [str(daemon.buildctl), "--addr", daemon.address, "build", "--frontend", "dockerfile.v0",
         "--local", f"context={tmp_path}", "--local", f"dockerfile={tmp_path}",
         "--opt", "platform=linux/riscv64,linux/arm64", "--opt", "build-arg:SOURCE_DATE_EPOCH=0",
         "--output", f"type=image,name={plain_registry}/crossyard/dockerfile:buildctl,push=true,"
         "registry.insecure=true,oci-mediatypes=true,rewrite-timestamp=true",
         "--metadata-file", str(tmp_path / "metadata.json")], capture_output=True, text=True, timeout=300)
    assert theirs.returncode == 0, theirs.stderr
    assert json.loads((tmp_path / "metadata.json").read_text())["containerimage.digest"] == digests[0]
    base = f"http://{plain_registry}/v2/crossyard/dockerfile"
    index = httpx.get(f"{base}/manifests/test", headers={"Accept": "application/vnd.oci.image.index.v1+json"})
    assert "sha256:" + hashlib.sha256(index.content).hexdigest() == digests[0]
    manifests = {m["platform"]["architecture"]: m["digest"] for m in index.json()["manifests"]}
    assert set(manifests) == {"riscv64", "arm64"}
    for arch, digest in manifests.items():
        manifest = httpx.get(f"{base}/manifests/{digest}",
                             headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).json()
        [layer] = manifest["layers"]
        with tarfile.open(fileobj=io.BytesIO(httpx.get(f"{base}/blobs/{layer['digest']}").content), mode="r:*") as tar:
            [member] = [m for m in tar.getmembers() if m.isfile()]
            assert member.name == f"etc/hello-{arch}.txt" and member.mtime == 0
            content = tar.extractfile(member)
            assert content is not None and content.read() == HELLO
