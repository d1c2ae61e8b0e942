"""The catalog's registry (recipes/registry/): distribution's `registry` built by `crossyard build`
from Debian's docker-registry source for riscv64, arm64 and amd64, wrapped in an image on
crossyard/static; the amd64 binary out of the image's layer serves TLS with crossyard's
certificate and takes a push and a pull; the foreign ones print their version under qemu-user;
`registry k8s` runs the published image by digest."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conftest import REPO, build_summary, require, require_tool, run_cli
from crossyard import certs
from crossyard.lock import read_lock
from crossyard.oci.layout import OciLayout
from crossyard.platforms import AMD64, ARM64, RISCV64, Platform
from crossyard.registry import manager, server
from crossyard.registry.client import RegistryClient
from crossyard.toolchains import roots_dir
from crossyard.workspace import Workspace
from helpers.images import tiny_image, unpack_image
from helpers.managed import make_workspace, stopped_after
from helpers.processes import stop

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLATFORMS = (RISCV64, ARM64, AMD64)
VERSION = "2.8.2"
STAMP = f"github.com/docker/distribution v{VERSION}"  # `registry --version`: argv[0], Package, Version


@dataclass(frozen=True, kw_only=True)
class Built:
    ws: Workspace
    summary: dict[str, Any]

    @property
    def store(self) -> OciLayout:
        return OciLayout(self.ws.store_dir)

    def rootfs(self, platform: Platform, into: Path) -> dict[str, Any]:
        """The registry image's filesystem for `platform` unpacked into `into`; its config."""
        return unpack_image(self.store, f"registry:{VERSION}", {p.oci for p in PLATFORMS}, platform.oci,
                            into)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The registry and its image, built once by `crossyard build` from a copy of the recipes."""
    root = roots_dir() / "go-bookworm-registry-amd64"
    require((root / "usr" / "share" / "gocode").is_dir(),
            "the go-registry root is missing: run `crossyard toolchains prepare go-registry`")
    require_tool("bwrap", "apt-get install bubblewrap")
    for platform in (RISCV64, ARM64):
        require_tool(platform.qemu_binary, "apt-get install qemu-user-static")
    require(Platform.host() == AMD64, "these tests run the amd64 registry natively")
    ws = make_workspace(tmp_path_factory.mktemp("registry-image"),
                        (REPO / "crossyard.toml").read_text())
    shutil.copytree(REPO / "recipes" / "registry", ws.root / "recipes" / "registry")
    return Built(ws=ws, summary=build_summary(ws.root))


def test_registry_builds_static_for_three_platforms_with_debians_go(built: Built) -> None:
    jobs = {j["id"]: j for j in built.summary["jobs"]}
    assert set(jobs) == {f"registry@{p.oci}" for p in PLATFORMS}
    locked = {e.platform.oci: e for e in read_lock(built.ws.lock_path).entries.values()}
    assert {p: e.toolchain for p, e in locked.items()} == {p.oci: "go1.19.8" for p in PLATFORMS}
    for platform in PLATFORMS:
        digest = jobs[f"registry@{platform.oci}"]["outputs"]["registry"]
        described = subprocess.run(["file", "-b", str(built.store.blob_path(digest))],
                                   capture_output=True, text=True, check=True).stdout
        assert "statically linked" in described, described
        assert {RISCV64: "RISC-V", ARM64: "ARM aarch64", AMD64: "x86-64"}[platform] in described


def test_a_second_build_rebuilds_nothing(built: Built) -> None:
    again = build_summary(built.ws.root)
    assert {j["id"]: j["status"] for j in again["jobs"]} == {f"registry@{p.oci}": "cached" for p in PLATFORMS}
    assert {j["id"]: j["outputs"] for j in again["jobs"]} == {j["id"]: j["outputs"] for j in built.summary["jobs"]}


@pytest.mark.parametrize("platform", [RISCV64, ARM64], ids=["riscv64", "arm64"])
def test_foreign_binaries_print_their_stamped_version_under_qemu(built: Built, tmp_path: Path,
                                                                 platform: Platform) -> None:
    rootfs = tmp_path / "rootfs"
    built.rootfs(platform, rootfs)
    run = subprocess.run([platform.qemu_binary, str(rootfs / "usr/local/bin/registry"), "--version"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().endswith(STAMP), run.stdout


def test_image_is_laid_out_as_upstreams(built: Built, tmp_path: Path) -> None:
    config = built.rootfs(RISCV64, tmp_path)
    assert config["Entrypoint"] == ["/usr/local/bin/registry", "serve"]
    assert config["Cmd"] == ["/etc/docker/registry/config.yml"]
    assert "5000/tcp" in config["ExposedPorts"]
    shipped = (tmp_path / "etc/docker/registry/config.yml").read_text()
    assert shipped == (REPO / "recipes/registry/config.yml").read_text()
    settings = yaml.safe_load(shipped)
    assert settings["storage"]["filesystem"]["rootdirectory"] == "/var/lib/registry"
    assert settings["http"]["addr"] == ":5000"


def test_amd64_binary_from_the_image_serves_tls_and_takes_a_push_and_a_pull(built: Built, tmp_path: Path) -> None:
    """The image's own binary as crossyard's managed registry is configured: crossyard's CA and
    leaf, htpasswd, 127.0.0.1; crossyard's client pushes an image and pulls it back."""
    rootfs = tmp_path / "rootfs"
    built.rootfs(AMD64, rootfs)
    ca = certs.create_ca(tmp_path / "ca")
    leaf = certs.issue_leaf(ca, tmp_path / "tls", names=("127.0.0.1",))
    server.write_htpasswd(tmp_path / "htpasswd", {"tester": "s3cret-pw"})
    port = server.free_port()
    config = tmp_path / "config.yml"
    server.write_config(config, server.ServerConfig(
        addr=f"127.0.0.1:{port}", cert=leaf.cert, key=leaf.key, htpasswd=tmp_path / "htpasswd",
        storage_dir=tmp_path / "storage", draintimeout_s=1))
    url = f"https://127.0.0.1:{port}"
    with (tmp_path / "registry.log").open("wb") as log:
        process = subprocess.Popen([str(rootfs / "usr/local/bin/registry"), "serve", str(config)],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        server.wait_ready(url, ca.cert, timeout=60)
        trust = ssl.create_default_context(cafile=str(ca.cert))
        assert httpx.get(f"{url}/v2/", verify=trust, timeout=10).status_code == 401
        assert httpx.get(f"{url}/v2/", verify=trust, auth=("tester", "s3cret-pw"),
                         timeout=10).status_code == 200
        source = OciLayout(tmp_path / "src").ensure()
        tiny_image(source, b"pushed to the catalog's registry\n", "hello:1")
        [sent] = source.manifests()
        back = OciLayout(tmp_path / "back").ensure()
        with RegistryClient(url, ca_path=ca.cert, username="tester", password="s3cret-pw") as client:
            client.push_layout(source, "hello:1", "hello", "1")
            got = client.pull("hello", "1", back)
        assert got.digest == sent.digest
        layer = source.read_json(sent.digest)["layers"][0]["digest"]
        assert back.blob_path(layer).read_bytes() == source.blob_path(layer).read_bytes()
        assert (tmp_path / "storage" / "docker" / "registry" / "v2" / "repositories" / "hello").is_dir()
    finally:
        stop(process, 10)


def test_registry_k8s_runs_the_published_image_by_digest(built: Built) -> None:
    """`publish registry-image` to the workspace's registry, then `registry k8s`: the Deployment
    names that registry's `registry@<the lock's index digest>`, run as the image means it."""
    ws = built.ws
    env = {"CROSSYARD_KEY_PASSWORD": "", "CROSSYARD_REGISTRY": ""}
    out = ws.root / "k8s"
    with stopped_after(ws):
        up = run_cli("-C", str(ws.root), "registry", "up", "--addr", f"127.0.0.1:{server.free_port()}", env=env)
        assert up.returncode == 0, up.stderr
        assert run_cli("-C", str(ws.root), "keys", "generate", env=env).returncode == 0
        published = run_cli("-C", str(ws.root), "publish", "registry-image", env=env)
        assert published.returncode == 0, published.stderr
        rendered = run_cli("-C", str(ws.root), "registry", "k8s", "-o", str(out), env=env)
        assert rendered.returncode == 0, rendered.stderr
        info = manager.status(ws)
        assert info is not None
    index = read_lock(ws.lock_path).images[f"registry:{VERSION}"].index
    [deployment] = [d for p in sorted(out.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())
                    if d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{info.host}/registry@{index}"
    # The pod's command line: the image's entrypoint and the manifest's args, the mounted config.
    assert container["args"] == ["/etc/docker/registry/config.yml"]

