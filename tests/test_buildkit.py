"""BuildKit (recipes/buildkit/): buildkitd and buildctl built by `crossyard build` from Debian
trixie's docker.io source (its orig-buildkit component) for amd64, riscv64 and arm64; the foreign
ones print their stamped version under qemu-user; the amd64 buildkitd, started here as root with
the OCI worker (runc), answers the built buildctl and crossyard's own client
(`crossyard.buildkit`), whose API is compiled from the same Debian source's .proto files.
runc, built from Debian trixie's runc source (cgo, static), and the node image `buildkit` holding
all three, run in a private Docker engine: the amd64 one natively, the riscv64 one under qemu-user."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import binfmt_registered, build_summary, require, require_tool, run_cli
from crossyard import certs
from crossyard.buildkit import llb
from crossyard.buildkit.api import descriptor_set
from crossyard.buildkit.client import Api, BuildKitError, Client, TlsFiles
from crossyard.buildkit.llb import InlineFile
from crossyard.errors import ConfigurationError, IntegrityError
from crossyard.lock import read_lock
from crossyard.oci.layout import OciLayout
from crossyard.platforms import AMD64, ARM64, RISCV64, Platform
from crossyard.registry import server
from crossyard.toolchains import in_root, roots_dir
from helpers import dockerd
from helpers.buildkit_fixtures import RUNC_ROOT, Built, Daemon, buildctl_workers
from helpers.dockerd import DockerdHandle
from helpers.processes import stop, wait_started

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLATFORMS = (AMD64, RISCV64, ARM64)
PROGRAMS = ("buildkitd", "buildctl")
# `--version`: argv[0], Package, Version, Revision (buildkitd carries one patch more than buildctl)
REVISION = {"buildkitd": "debian-docker.io-26.1.5+dfsg1-9+crossyard1", "buildctl": "debian-docker.io-26.1.5+dfsg1-9"}


# -- milestone 1: the binaries ----------------------------------------------------------------
def test_built_static_for_three_platforms_with_trixies_go(built: Built) -> None:
    jobs = {j["id"]: j for j in built.summary["jobs"]}
    assert set(jobs) == {f"{n}@{p.oci}" for n in (*PROGRAMS, "runc") for p in PLATFORMS}
    locked = read_lock(built.ws.lock_path).entries.values()
    assert {e.toolchain for e in locked} == {jobs[f"buildkitd@{AMD64.oci}"]["toolchain"]}
    assert jobs[f"buildkitd@{AMD64.oci}"]["toolchain"].startswith("go1.24")  # trixie's golang-go
    store = OciLayout(built.ws.store_dir)
    for platform in PLATFORMS:
        for program in ("buildkitd", "runc"):  # runc is cgo: linked statically by the cross gcc
            described = subprocess.run(
                ["file", "-b", str(store.blob_path(jobs[f"{program}@{platform.oci}"]["outputs"][program]))],
                capture_output=True, text=True, check=True).stdout
            assert "statically linked" in described, described
            assert {RISCV64: "RISC-V", ARM64: "ARM aarch64", AMD64: "x86-64"}[platform] in described


def test_a_second_build_rebuilds_nothing(built: Built) -> None:
    again = build_summary(built.ws.root)
    assert {j["id"]: j["status"] for j in again["jobs"]} == {j["id"]: "cached" for j in built.summary["jobs"]}
    assert {j["id"]: j["outputs"] for j in again["jobs"]} == {j["id"]: j["outputs"] for j in built.summary["jobs"]}
    assert [(i["ref"], i["digest"]) for i in again["images"]] == [(i["ref"], i["digest"]) for i in built.summary["images"]]


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


# -- milestone 4: runc and the node image -----------------------------------------------------
IMAGE = "buildkit:0.13.2"
IMAGE_PLATFORMS = (AMD64, RISCV64, ARM64)
RUNC_VERSION = ("runc version 1.1.15\ncommit: debian-runc-1.1.15+ds1-2\nspec: 1.2.0\ngo: go1.24.4\n"
                "libseccomp: 2.6.0\n")
# What `docker run --privileged` gives, spelled out: this machine's capability bounding set lacks
# CAP_SYS_RESOURCE, and docker 20.10's --privileged asks runc for every capability the kernel
# has, which fails here ("unable to apply caps: operation not permitted"). The cgroup hierarchy
# is bound read-write as --privileged mounts it: the image's runc makes a cgroup for each step.
PRIVILEGED = ("--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined",
              "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined",
              "-v", "/sys/fs/cgroup:/sys/fs/cgroup")
# A step's program: exits 0 only as PID 1 (runc gave it a PID namespace) on the machine named
# by its argument; otherwise 4 and/or 8, so a step that ran elsewhere is told apart from one
# runc could not start (exit 1, runc's own).
CHECK_C = rb"""#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/utsname.h>
int main(int argc, char **argv) {
    struct utsname u;
    int code = 0;
    if (argc != 2 || uname(&u) != 0) return 2;
    if (getpid() != 1) code |= 4;
    if (strcmp(u.machine, argv[1]) != 0) code |= 8;
    printf("%s: pid %d on %s\n", u.nodename, (int)getpid(), u.machine);
    return code;
}
"""

docker_engine = dockerd.docker_engine


@pytest.fixture(scope="session")
def loaded(built: Built, docker_engine: DockerdHandle, tmp_path_factory: pytest.TempPathFactory) -> dict[Platform, str]:
    """The image for each platform exported as a docker-archive and loaded: its image ID (one
    tag holds one platform in docker 20.10, so each is read before the next load takes the tag)."""
    tmp = tmp_path_factory.mktemp("buildkit-image")
    ids = {}
    for platform in IMAGE_PLATFORMS:
        archive = tmp / f"buildkit-{platform.slug}.tar"
        exported = run_cli("-C", str(built.ws.root), "image", "export", IMAGE, "--format", "docker-archive",
                           "--platform", platform.oci, "-o", str(archive))
        assert exported.returncode == 0, exported.stderr
        assert f"Loaded image: {IMAGE}" in docker_engine.docker("load", "-i", str(archive)).stdout
        image_id, os_arch = docker_engine.docker("image", "inspect", "--format", "{{.Id}} {{.Os}}/{{.Architecture}}",
                                                 IMAGE).stdout.split()
        assert os_arch == platform.oci
        ids[platform] = image_id
    return ids


@contextlib.contextmanager
def image_daemon(engine: DockerdHandle, image_id: str, platform: Platform, api: Api, tmp: Path, *,
                 volumes: tuple[str, ...] = (), args: tuple[str, ...] = (), timeout: float) -> Iterator[tuple[str, str]]:
    """The image's entrypoint (buildkitd) in a container, `args` added to it, its socket directory
    and state directory bound from `tmp`: the container's name and the socket's address. Attached
    (signals are proxied), so stopping the client stops buildkitd and the container goes (--rm)."""
    (tmp / "run").mkdir()
    (tmp / "state").mkdir()  # on the container's own overlay root it would fall back to `native`
    name = f"buildkitd-{platform.slug}-{uuid.uuid4().hex[:8]}"
    address = f"unix://{tmp}/run/buildkitd.sock"
    log = tmp / "container.log"
    mounts = [f"{tmp}/run:/run/buildkit", f"{tmp}/state:/var/lib/buildkit", *volumes]
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["docker", "run", "--rm", "--name", name, "--platform", platform.oci, "--network", "host", *PRIVILEGED,
             *(a for m in mounts for a in ("-v", m)), image_id, *args],
            env=engine.client_env(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_started(process, lambda: _info_answers(address, api), what=f"buildkitd in {name}",
                     log=lambda: log.read_text(errors="replace"), timeout=timeout, interval=1)
        yield name, address
    finally:
        stop(process, 30)
        engine.docker("rm", "-f", name, check=False)


def _info_answers(address: str, api: Api) -> bool:
    if not Path(address.removeprefix("unix://")).exists():
        return False
    with Client(address, api, timeout=5) as client:
        try:
            client.info()
        except BuildKitError:
            return False
    return True


@dataclass(frozen=True, kw_only=True)
class ImageDaemon:
    container: str
    address: str  # its socket, through the bind-mounted /run/buildkit
    tcp: str = ""  # tcp://127.0.0.1:PORT, mutual TLS
    tls: TlsFiles | None = None  # a client certificate from the CA buildkitd was given


@pytest.fixture(scope="session")
def amd64_image(loaded: dict[Platform, str], docker_engine: DockerdHandle, api: Api,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageDaemon]:
    """The amd64 image, natively; TCP with mutual TLS added by buildkitd's flags at run time,
    its CA, certificate and key from a read-only volume."""
    require(Platform.host() == AMD64, "the amd64 image runs natively here")
    tmp = tmp_path_factory.mktemp("bk-amd64")
    ca = certs.create_ca(tmp / "pki")
    served = certs.issue_leaf(ca, tmp / "pki", names=("127.0.0.1",), stem="buildkitd")
    ours = certs.issue_leaf(ca, tmp / "pki", names=(), usage=("client",), common_name="crossyard test", stem="client")
    tcp = f"tcp://127.0.0.1:{server.free_port()}"
    inside = "/etc/buildkit/tls"
    flags = ("--addr", tcp, "--tlscacert", f"{inside}/{ca.cert.relative_to(tmp / 'pki')}",
             "--tlscert", f"{inside}/{served.cert.relative_to(tmp / 'pki')}",
             "--tlskey", f"{inside}/{served.key.relative_to(tmp / 'pki')}")
    with image_daemon(docker_engine, loaded[AMD64], AMD64, api, tmp, volumes=(f"{tmp}/pki:{inside}:ro",),
                      args=flags, timeout=60) as (name, address):
        yield ImageDaemon(container=name, address=address, tcp=tcp, tls=TlsFiles(ca=ca.cert, cert=ours.cert, key=ours.key))


@pytest.fixture(scope="session")
def riscv64_image(loaded: dict[Platform, str], docker_engine: DockerdHandle, api: Api,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageDaemon]:
    """The riscv64 image under qemu-user (binfmt): buildkitd and, for each step, runc emulated."""
    require(binfmt_registered("riscv64"), "qemu-riscv64 binfmt is not registered (.ci/install.d/10-binfmt.sh)")
    with image_daemon(docker_engine, loaded[RISCV64], RISCV64, api, tmp_path_factory.mktemp("bk-riscv64"),
                      timeout=180) as (name, address):
        yield ImageDaemon(container=name, address=address)


@pytest.fixture(scope="session")
def check_programs(tmp_path_factory: pytest.TempPathFactory) -> dict[Platform, bytes]:
    """CHECK_C for each platform, static, by the go-runc root's gcc for it (the one that linked runc)."""
    tmp = tmp_path_factory.mktemp("check")
    (tmp / "check.c").write_bytes(CHECK_C)
    programs = {}
    for platform in IMAGE_PLATFORMS:
        argv = [f"{platform.gnu_triplet}-gcc", "-static", "-Os", "-s", "-o", f"check-{platform.slug}", "check.c"]
        subprocess.run(in_root(roots_dir() / RUNC_ROOT, argv, binds=[(tmp, "/tmp/check")], workdir="/tmp/check"),
                       check=True, capture_output=True, timeout=120)
        programs[platform] = (tmp / f"check-{platform.slug}").read_bytes()
    return programs


def exec_definition(api: Api, program: bytes, platform: Platform, *args: str) -> Any:
    """LLB: scratch with `program` at /check, then an ExecOp running `/check ARGS` on it for
    `platform` (what `llb.Scratch().File(llb.Mkfile(…)).Run(…)` marshals)."""
    rootfs = llb.inline_files(api, (InlineFile(path="/check", data=program, mode=0o755),))
    on = api.message("pb.Platform")(OS=platform.os, Architecture=platform.architecture)
    file_op = api.message("pb.Op").FromString(getattr(rootfs, "def")[0])
    file_op.platform.CopyFrom(on)
    run = api.message("pb.Op")(
        inputs=[api.message("pb.Input")(digest=llb.digest(file_op.SerializeToString(deterministic=True)), index=0)],
        exec=api.message("pb.ExecOp")(
            meta=api.message("pb.Meta")(args=["/check", *args], env=["PATH=/"], cwd="/"),
            mounts=[api.message("pb.Mount")(input=0, dest="/", output=0)]),
        platform=on)
    return llb.definition(api, [file_op, run])


def solve_without_export(address: str, api: Api, definition: Any) -> None:
    """Solve `definition` and export nothing: the step ran if this returns (BuildKitError if not)."""
    request = api.message("moby.buildkit.v1.SolveRequest")(Ref=uuid.uuid4().hex, Definition=definition)
    with Client(address, api) as client:
        client.call("Solve", request, timeout=300)


@pytest.mark.parametrize("platform", IMAGE_PLATFORMS, ids=lambda p: p.architecture)
def test_image_holds_the_three_programs_for_its_platform(loaded: dict[Platform, str], docker_engine: DockerdHandle,
                                                        platform: Platform) -> None:
    if platform != Platform.host():
        require(binfmt_registered(platform.uname_m), f"qemu-{platform.uname_m} binfmt is not registered")
    said = {}
    for program in ("buildkitd", "buildctl", "runc"):
        said[program] = docker_engine.docker(
            "run", "--rm", "--platform", platform.oci, "--entrypoint", f"/usr/bin/{program}", loaded[platform],
            "--version").stdout
    assert said["runc"] == RUNC_VERSION
    for program in PROGRAMS:
        assert said[program] == f"{program} github.com/moby/buildkit v0.13.2 {REVISION[program]}\n"


def test_amd64_image_answers_crossyards_client_on_its_socket_and_over_mutual_tls(
        amd64_image: ImageDaemon, api: Api) -> None:
    for arch in ("riscv64", "aarch64"):
        require(binfmt_registered(arch), f"qemu-{arch} binfmt is not registered (.ci/install.d/10-binfmt.sh)")
    assert amd64_image.tls is not None
    for address, tls in ((amd64_image.address, None), (amd64_image.tcp, amd64_image.tls)):
        with Client(address, api, tls=tls) as client:
            info, [worker] = client.info(), client.list_workers()
        assert (info.package, info.version, info.revision) == (
            "github.com/moby/buildkit", "v0.13.2", REVISION["buildkitd"])
        assert worker.platforms[0] == "linux/amd64"
        assert {"linux/amd64", "linux/riscv64", "linux/arm64"} <= set(worker.platforms)
        labels = dict(worker.labels)
        assert labels["org.mobyproject.buildkit.worker.executor"] == "oci"
        assert labels["org.mobyproject.buildkit.worker.snapshotter"] == "overlayfs"


@pytest.mark.parametrize("platform", [AMD64, RISCV64], ids=["amd64", "riscv64-by-binfmt"])
def test_amd64_image_runs_a_step_with_its_runc(amd64_image: ImageDaemon, api: Api,
                                               check_programs: dict[Platform, bytes], platform: Platform) -> None:
    """An ExecOp: the image's runc starts the step as PID 1 of its own namespace, on `platform`
    (riscv64 through the kernel's binfmt entry, inside the container too)."""
    program = check_programs[platform]
    solve_without_export(amd64_image.address, api, exec_definition(api, program, platform, platform.uname_m))
    # the same step told another machine fails with its own exit code: the step did run
    other = "aarch64"
    with pytest.raises(BuildKitError, match=f'process "/check {other}" did not complete successfully: exit code: 8'):
        solve_without_export(amd64_image.address, api, exec_definition(api, program, platform, other))


def test_riscv64_image_under_qemu_answers_crossyards_client(riscv64_image: ImageDaemon, api: Api) -> None:
    with Client(riscv64_image.address, api) as client:
        info, [worker] = client.info(), client.list_workers()
    assert info.version == "v0.13.2" and info.revision == REVISION["buildkitd"]
    assert worker.platforms[0] == "linux/riscv64"  # its own, emulated, first
    assert dict(worker.labels)["org.mobyproject.buildkit.worker.executor"] == "oci"


def test_riscv64_images_runc_under_qemu_cannot_start_a_step(riscv64_image: ImageDaemon, api: Api,
                                                            check_programs: dict[Platform, bytes],
                                                            docker_engine: DockerdHandle, tmp_path: Path) -> None:
    """A known limit, pinned so a change shows: runc 1.1's C init re-executes runc from a sealed
    memfd (fexecve), and qemu-user 7.2 answers execveat with ENOSYS, so runc's init dies before the
    step and runc reports the broken pipe to it. The image's buildctl shows runc's own words."""
    definition = exec_definition(api, check_programs[RISCV64], RISCV64, "riscv64")
    with pytest.raises(BuildKitError, match='process "/check riscv64" did not complete successfully: exit code: 1'):
        solve_without_export(riscv64_image.address, api, definition)
    (tmp_path / "def.pb").write_bytes(definition.SerializeToString())
    with (tmp_path / "def.pb").open("rb") as stdin:
        shown = subprocess.run(["docker", "exec", "-i", riscv64_image.container, "buildctl", "build", "--progress",
                                "plain"], stdin=stdin, env=docker_engine.client_env(), capture_output=True,
                               text=True, timeout=300)
    assert shown.returncode != 0
    # which end of runc's pipe to its init notices first varies: "read init-p: connection reset by
    # peer" or "write init-p: broken pipe"
    assert re.search(r"runc run failed: unable to start container process: .*init-p: ", shown.stderr), shown.stderr
