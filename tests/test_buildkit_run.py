"""A Dockerfile with a RUN step on a small base made from Debian packages (trixie's
busybox-static .debs for riscv64 and arm64, fetched and verified by crossyard.debsource): built
through crossyard's BuildKit client for both platforms in one solve, and as a `dockerfile` recipe
by `crossyard build`. The RUN runs under qemu-user (binfmt) and says which machine it ran on, two
builds from nothing cached give one digest, and the image runs with `docker run --platform`
under qemu (pushed to a registry and pulled; exported by crossyard and loaded)."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import binfmt_registered, build_summary, require, require_tool, run_cli
from crossyard import debian
from crossyard.buildkit import dockerfile as bk_dockerfile
from crossyard.buildkit.client import Client
from crossyard.buildkit.dockerfile import DockerfileSolve
from crossyard.debsource import DebianArchive
from crossyard.lock import read_lock
from crossyard.oci.layout import OciLayout
from crossyard.platforms import ARM64, RISCV64
from helpers import dockerd
from helpers.buildkit_fixtures import Built, Daemon
from helpers.dockerd import DockerdHandle

pytestmark = [pytest.mark.integration, pytest.mark.slow]
docker_engine = dockerd.docker_engine  # a private dockerd, started once per session

BUSYBOX = "busybox-static"
APPLETS = ("sh", "uname", "cat", "echo", "mkdir")
DOCKERFILE = """FROM scratch
ARG TARGETARCH
ADD rootfs-${TARGETARCH}.tar /
RUN mkdir -p /etc && echo "built on $(uname -m)" > /etc/built
CMD ["/bin/sh", "-c", "cat /etc/built; echo run on $(uname -m)"]
"""


def base_rootfs(deb: Path, into: Path, work: Path) -> None:
    """The package's busybox plus /bin/sh and a few applets as links to it, as a tar with fixed
    owners and times (the same .deb gives the same bytes)."""
    tree = work / deb.name
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
    busybox = tree / "bin" / "busybox"
    if not busybox.exists():
        busybox = tree / "usr" / "bin" / "busybox"
    assert busybox.is_file(), sorted(str(p) for p in tree.rglob("*"))
    data = busybox.read_bytes()
    with tarfile.open(into, "w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, kind: bytes, payload: bytes = b"", link: str = "", mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime, info.size, info.linkname = kind, mode, 0, len(payload), link
            tar.addfile(info, io.BytesIO(payload) if payload else None)
        add("bin", tarfile.DIRTYPE)
        add("bin/busybox", tarfile.REGTYPE, data)
        for applet in APPLETS:
            add(f"bin/{applet}", tarfile.SYMTYPE, link="busybox", mode=0o777)


@pytest.fixture(scope="module")
def context(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("dpkg-deb", "apt-get install dpkg")
    archive = DebianArchive(built.ws.cache_dir, lambda: debian.workspace_mirror(built.ws))
    root, work = tmp_path_factory.mktemp("run-context"), tmp_path_factory.mktemp("debs")
    for platform in (RISCV64, ARM64):
        deb = archive.binary_package(package=BUSYBOX, suite="trixie", architecture=platform.architecture,
                                     origin="test base")
        base_rootfs(deb.path, root / f"rootfs-{platform.architecture}.tar", work)
    (root / "Dockerfile").write_text(DOCKERFILE)
    return root


def _prune(daemon: Daemon) -> None:
    result = subprocess.run([str(daemon.buildctl), "--addr", daemon.address, "prune", "--all"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def _file_in_layers(layout: OciLayout, manifest_digest: str, name: str) -> bytes:
    manifest = layout.read_json(manifest_digest)
    for layer in reversed(manifest["layers"]):
        with tarfile.open(layout.blob_path(layer["digest"]), "r:*") as tar:
            try:
                member = tar.getmember(name)
            except KeyError:
                continue
            handle = tar.extractfile(member)
            assert handle is not None
            return handle.read()
    raise AssertionError(f"{name} is in no layer of {manifest_digest}")


def test_a_run_step_on_a_debian_base_for_riscv64_and_arm64_is_reproducible_and_runs(
        daemon: Daemon, context: Path, plain_registry: str, docker_engine: DockerdHandle, tmp_path: Path) -> None:
    require(binfmt_registered("riscv64") and binfmt_registered("aarch64"),
            "RUN for riscv64/arm64 needs qemu-user binfmt handlers: .ci/install.d/10-binfmt.sh")
    skopeo = require_tool("skopeo", "run .ci/install.d/40-skopeo.sh")
    solve = DockerfileSolve(context=context, dockerfile_dir=context, platforms=(RISCV64, ARM64),
                            source_date_epoch=1_700_000_000)
    exported, layouts = [], []
    with Client(daemon.address, daemon.api) as client:
        for attempt in range(2):
            _prune(daemon)  # from nothing cached, each time
            layout = OciLayout(tmp_path / f"store-{attempt}").ensure()
            exported.append(bk_dockerfile.build(client, solve, layout).descriptor)
            layouts.append(layout)
    assert exported[0].digest == exported[1].digest
    layout = layouts[0]
    index = layout.read_json(exported[0].digest)
    machines = {"riscv64": b"built on riscv64\n", "arm64": b"built on aarch64\n"}
    for entry in index["manifests"]:
        arch = entry["platform"]["architecture"]
        assert _file_in_layers(layout, entry["digest"], "etc/built") == machines[arch]
    # the result runs: pushed as it is, pulled and run by a Docker engine for each platform
    layout.update_index(lambda _: [exported[0].with_(annotations={"org.opencontainers.image.ref.name": "test"})])
    reference = f"{plain_registry}/crossyard/busybox-run:test"
    pushed = subprocess.run([skopeo, "copy", "--all", "--dest-tls-verify=false", f"oci:{layout.root}:test",
                             f"docker://{reference}"], capture_output=True, text=True, timeout=300)
    assert pushed.returncode == 0, pushed.stderr
    for platform, machine in ((RISCV64, "riscv64"), (ARM64, "aarch64")):
        docker_engine.docker("pull", "--platform", platform.oci, reference)
        ran = docker_engine.docker("run", "--rm", "--platform", platform.oci, "--network", "none", reference)
        assert ran.stdout == f"built on {machine}\nrun on {machine}\n"
        docker_engine.docker("rmi", reference)


RECIPE = """name = "busybox-run"
kind = "dockerfile"
version = "1.0.0"
platforms = ["linux/riscv64", "linux/arm64"]
source_date_epoch = 1700000000

[source]
path = "../src"

[image]
name = "busybox-run"
"""


def test_a_dockerfile_recipe_with_a_run_step_on_the_debian_base_is_reproducible_and_runs(
        daemon: Daemon, built: Built, context: Path, docker_engine: DockerdHandle, tmp_path: Path) -> None:
    """The same Dockerfile as a `dockerfile` recipe, built by `crossyard build` on the buildkitd
    (BUILDKIT_HOST): from two clean workspaces, each after the daemon was pruned, one image
    digest, marked reproducible in the lock; exported as a docker archive per platform, loaded
    and run with `docker run --platform` under qemu, it says where it was built and where it runs."""
    require(binfmt_registered("riscv64") and binfmt_registered("aarch64"),
            "RUN for riscv64/arm64 needs qemu-user binfmt handlers: .ci/install.d/10-binfmt.sh")
    digests, workspaces = [], []
    for name in ("first", "second"):
        _prune(daemon)
        ws = tmp_path / name
        (ws / "recipes").mkdir(parents=True)
        (ws / "crossyard.toml").write_text("")
        (ws / "recipes" / "busybox-run.toml").write_text(RECIPE)
        shutil.copytree(context, ws / "src")
        shutil.copytree(built.ws.cache_dir / "buildkit-api", ws / ".crossyard" / "cache" / "buildkit-api")
        summary = build_summary(ws, env={"BUILDKIT_HOST": daemon.address})
        jobs = {j["id"]: j for j in summary["jobs"]}
        assert {jobs[f"busybox-run@{p.oci}"]["toolchain"].split()[0] for p in (RISCV64, ARM64)} == {"buildkit"}
        # Nothing in its context depends on the platform: both platforms in one solve.
        headers = {Path(jobs[f"busybox-run@{p.oci}"]["log"]).read_text().splitlines()[0] for p in (RISCV64, ARM64)}
        [header] = headers
        assert "busybox-run@linux/riscv64" in header and "busybox-run@linux/arm64" in header
        [image] = [i for i in summary["images"] if i["recipe"] == "busybox-run"]
        assert image["reproducible"] is True
        digests.append(image["digest"])
        workspaces.append(ws)
    assert digests[0] == digests[1]
    assert read_lock(workspaces[0] / "crossyard.lock").images["busybox-run:1.0.0"].reproducible
    for platform, machine in ((RISCV64, "riscv64"), (ARM64, "aarch64")):
        archive = tmp_path / f"busybox-run-{platform.slug}.tar"
        exported = run_cli("-C", str(workspaces[0]), "image", "export", "busybox-run:1.0.0",
                           "--format", "docker-archive", "--platform", platform.oci, "-o", str(archive))
        assert exported.returncode == 0, exported.stderr
        docker_engine.docker("load", "-i", str(archive))
        ran = docker_engine.docker("run", "--rm", "--platform", platform.oci, "--network", "none",
                                   "busybox-run:1.0.0")
        assert ran.stdout == f"built on {machine}\nrun on {machine}\n"
        docker_engine.docker("rmi", "busybox-run:1.0.0")
