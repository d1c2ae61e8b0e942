"""`kind = "dockerfile"` end to end: a private dockerd, real qemu binfmt, the real CLI.

The example workspace examples/dockerfile (hello-go cross-built by crossyard, copied into a
FROM scratch image by a Dockerfile) is built for linux/riscv64 and linux/arm64 on the private
engine; the per-platform image manifests and the `hello-web:0.1.0` index land in the store; the
image exported as a docker-archive loads into the engine and serves under qemu.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from conftest import binfmt_registered, build_summary, require, require_tool, run_cli
from crossyard.annotations import ANNOTATION_INPUT_KEY
from crossyard.oci import media
from crossyard.platforms import Platform
from crossyard.registry.server import free_port
from helpers import dockerd
from helpers.dockerd import DockerdHandle, copy_example

pytestmark = [pytest.mark.integration]

docker_engine = dockerd.docker_engine
PLATFORMS = ("linux/riscv64", "linux/arm64")



def store_index(ws: Path) -> dict[str, Any]:
    index: dict[str, Any] = json.loads((ws / ".crossyard" / "store" / "index.json").read_text())
    return index


def blob(ws: Path, digest: str) -> bytes:
    return (ws / ".crossyard" / "store" / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def by_ref(ws: Path) -> dict[str, dict[str, Any]]:
    return {
        m["annotations"][media.ANNOTATION_REF_NAME]: m
        for m in store_index(ws)["manifests"]
        if media.ANNOTATION_REF_NAME in m.get("annotations", {})
    }


def build(ws: Path, engine: DockerdHandle, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    return build_summary(ws, *args, env=env or engine.env)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, docker_engine: DockerdHandle) -> Path:
    require_tool("go", "run .ci/install.d/00-apt.sh")
    for arch in ("riscv64", "aarch64"):
        require(binfmt_registered(arch), f"qemu-{arch} binfmt is not registered: run .ci/install.d/10-binfmt.sh")
    return copy_example(tmp_path_factory.mktemp("dockerfile"))


@pytest.fixture(scope="module")
def first_build(workspace: Path, docker_engine: DockerdHandle) -> dict[str, Any]:
    return build(workspace, docker_engine)


def test_dockerfile_recipe_stores_one_image_per_platform(
    workspace: Path, first_build: dict[str, Any], docker_engine: DockerdHandle
) -> None:
    jobs = {j["id"]: j for j in first_build["jobs"]}
    refs = by_ref(workspace)
    host = Platform.host()
    for name in PLATFORMS:
        platform = Platform.parse(name)
        job = jobs[f"hello-web@{name}"]
        assert job["status"] == "built"
        assert job["strategy"] == ("native" if platform == host else "emulated")
        assert job["toolchain"].startswith("docker ")
        entry = refs[f"hello-web:{platform.slug}"]
        assert entry["mediaType"] == media.MANIFEST and "artifactType" not in entry
        assert entry["platform"]["architecture"] == platform.architecture
        assert entry["annotations"][ANNOTATION_INPUT_KEY] == job["input_key"]
        assert job["outputs"] == {"image": entry["digest"]}

        manifest = json.loads(blob(workspace, entry["digest"]))
        notes = manifest["annotations"]
        assert notes["dev.crossyard.reproducible"] == "false"
        # The config is the engine's own: its digest is the image ID docker reported.
        assert manifest["config"]["digest"] == notes["dev.crossyard.docker.image-id"]
        config = json.loads(blob(workspace, manifest["config"]["digest"]))
        assert (config["os"], config["architecture"]) == ("linux", platform.architecture)
        assert config["config"]["Entrypoint"] == ["/usr/local/bin/hello-go"]
        assert config["config"]["Labels"]["org.example.team"] == "edge"  # build_args reached the build
        assert config["config"]["Labels"]["dev.crossyard.example.platform"] == name  # TARGETPLATFORM
        # The one layer holds exactly the binary crossyard cross-built for that platform.
        [layer] = manifest["layers"]
        assert layer["mediaType"] == media.LAYER_GZIP
        raw = gzip.decompress(blob(workspace, layer["digest"]))
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == config["rootfs"]["diff_ids"][0]
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            member = tar.getmember("usr/local/bin/hello-go")
            assert member.mode & 0o777 == 0o755
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
        binary = jobs[f"hello-go@{name}"]["outputs"]["hello-go"]
        assert "sha256:" + hashlib.sha256(data).hexdigest() == binary
        # The Dockerfile's RUN step ran the binary for that platform (under qemu on a foreign engine).
        assert f"hello from hello-go 0.1.0 on {name}" in Path(job["log"]).read_text()
        # The engine keeps nothing: the store has the image now.
        gone = docker_engine.docker("image", "inspect", notes["dev.crossyard.docker.image-id"], check=False)
        assert gone.returncode != 0


def test_index_marks_the_image_not_reproducible(workspace: Path, first_build: dict[str, Any]) -> None:
    entry = by_ref(workspace)["hello-web:0.1.0"]
    assert entry["mediaType"] == media.INDEX
    assert entry["annotations"]["dev.crossyard.reproducible"] == "false"
    index = json.loads(blob(workspace, entry["digest"]))
    jobs = {j["id"]: j for j in first_build["jobs"]}
    assert sorted(m["digest"] for m in index["manifests"]) == sorted(
        jobs[f"hello-web@{p}"]["outputs"]["image"] for p in PLATFORMS
    )
    lock = (workspace / "crossyard.lock").read_text()
    assert "docker 20" in lock or "docker " in lock
    assert "reproducible = false" in lock


def test_second_build_uses_the_store(workspace: Path, first_build: dict[str, Any], docker_engine: DockerdHandle) -> None:
    again = build(workspace, docker_engine)
    assert {j["id"]: j["status"] for j in again["jobs"]} == {j["id"]: "cached" for j in first_build["jobs"]}
    assert {j["id"]: j["outputs"] for j in again["jobs"]} == {j["id"]: j["outputs"] for j in first_build["jobs"]}



def answer(url: str, attempts: int = 150) -> str:
    """GET `url`, retrying while the emulated service starts."""
    last: Exception | None = None
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())
        except OSError as error:
            last = error
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered: {last}")


@pytest.mark.parametrize("name", PLATFORMS)
def test_exported_docker_archive_runs_under_qemu(
    workspace: Path, first_build: dict[str, Any], docker_engine: DockerdHandle, tmp_path: Path, name: str
) -> None:
    platform = Platform.parse(name)
    archive = tmp_path / f"hello-web-{platform.slug}.tar"
    exported = run_cli("-C", str(workspace), "image", "export", "hello-web:0.1.0", "--format", "docker-archive",
                       "--platform", name, "-o", str(archive))
    assert exported.returncode == 0, exported.stderr
    loaded = docker_engine.docker("load", "-i", str(archive))
    assert "hello-web:0.1.0" in loaded.stdout
    image_id = docker_engine.docker("image", "inspect", "--format", "{{.Id}} {{.Os}}/{{.Architecture}}",
                                    "hello-web:0.1.0").stdout.split()
    # Lossless round trip: the engine sees the very image it built (same config, same ID).
    job = next(j for j in first_build["jobs"] if j["id"] == f"hello-web@{name}")
    manifest = json.loads(blob(workspace, job["outputs"]["image"]))
    assert image_id == [manifest["annotations"]["dev.crossyard.docker.image-id"], name]
    port = free_port()
    container = f"hello-web-{platform.slug}-{port}"
    docker_engine.docker("run", "-d", "--name", container, "--platform", name, "--network", "host",
                         image_id[0], "serve", f"127.0.0.1:{port}")
    try:
        text = answer(f"http://127.0.0.1:{port}/")
        assert text == f"hello from hello-go 0.1.0 on {name}\n"
    finally:
        logs = docker_engine.docker("logs", container, check=False)
        docker_engine.docker("rm", "-f", container, check=False)
    assert f"listening on 127.0.0.1:{port}" in logs.stderr + logs.stdout


def test_dockerfile_error_exits_1_with_the_log_tail(
    tmp_path: Path, docker_engine: DockerdHandle, workspace: Path
) -> None:
    ws = copy_example(tmp_path)
    dockerfile = ws / "docker" / "hello-web" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "COPY no-such-file /nowhere\n")
    result = run_cli("-C", str(ws), "build", "-p", "linux/riscv64", env=docker_engine.env)
    assert result.returncode == 1, result.stderr
    assert "hello-web@linux/riscv64: docker build failed" in result.stderr
    assert "no-such-file" in result.stderr
    # The log's tail, not just the error: the failing step and the steps before it.
    assert re.search(r"Step (\d+)/\1 : COPY no-such-file /nowhere", result.stderr)
    assert 'CMD ["serve", ":8080"]' in result.stderr  # the step before
    logs = list((ws / ".crossyard" / "logs" / "hello-web").glob("linux-riscv64-*.log"))
    assert len(logs) == 1 and re.search(r"Step 1/\d+ : FROM scratch", logs[0].read_text())
    refs = by_ref(ws)
    assert "hello-go:linux-riscv64" in refs  # the dependency built and stays
    assert not [r for r in refs if r.startswith("hello-web")]  # nothing stored for the failed job
    assert "hello-web" not in (ws / "crossyard.lock").read_text()


def test_engine_over_tcp_with_tls_client_certificates(
    tmp_path: Path, docker_engine: DockerdHandle, first_build: dict[str, Any]
) -> None:
    """Where the engine is does not enter the key: the same engine over TLS builds the same job."""
    ws = copy_example(tmp_path)
    summary = build(ws, docker_engine, "-p", "linux/riscv64", env=docker_engine.tls_env)
    jobs = {j["id"]: j for j in summary["jobs"]}
    first = {j["id"]: j for j in first_build["jobs"]}
    assert jobs["hello-web@linux/riscv64"]["status"] == "built"
    assert jobs["hello-web@linux/riscv64"]["input_key"] == first["hello-web@linux/riscv64"]["input_key"]
    # Without the client certificate the engine refuses: a clear message, exit 2, nothing built.
    plain = {**docker_engine.tls_env, "DOCKER_TLS_VERIFY": "", "DOCKER_CERT_PATH": ""}
    result = run_cli("-C", str(ws), "plan", env=plain)
    assert result.returncode == 2, result.stderr
    assert f"cannot reach the Docker engine at {docker_engine.tls_host} (DOCKER_HOST)" in result.stderr
    assert "DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_engine_is_a_configuration_error(tmp_path: Path) -> None:
    require_tool("go", "run .ci/install.d/00-apt.sh")
    ws = copy_example(tmp_path)
    host = f"unix://{tmp_path}/no-engine.sock"
    result = run_cli("-C", str(ws), "plan", env={"DOCKER_HOST": host})
    assert result.returncode == 2, result.stderr
    assert f"cannot reach the Docker engine at {host} (DOCKER_HOST)" in result.stderr
    assert "Traceback" not in result.stderr
    # The rest of a workspace does not need an engine: the Go recipe alone plans without one.
    alone = run_cli("-C", str(ws), "plan", "hello-go", env={"DOCKER_HOST": host})
    assert alone.returncode == 0, alone.stderr
