"""`crossyard publish` pushes what crossyard.lock records (not every image the store still
holds) and hashes every blob before it leaves: real cross builds, a real TLS registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossyard.registry.client import RegistryClient
from helpers.appws import app_workspace, blob, build, cli, flip, image_layer, set_version
from helpers.registry import RegistryHandle, running_registry

pytestmark = [pytest.mark.integration]


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return app_workspace(tmp_path)


def publish_env(reg: RegistryHandle, ws: Path) -> dict[str, str]:
    env = {"CROSSYARD_REGISTRY": reg.host, "CROSSYARD_REGISTRY_CA": str(reg.ca_path),
           "CROSSYARD_REGISTRY_USERNAME": reg.username, "CROSSYARD_REGISTRY_PASSWORD": reg.password,
           "CROSSYARD_KEY_PASSWORD": "pw"}
    cli(ws, "keys", "generate", env=env)
    return env


def tagged(reg: RegistryHandle, repo: str, tag: str) -> bool:
    with RegistryClient(reg.url, ca_path=reg.ca_path, username=reg.username, password=reg.password) as client:
        return client.get_manifest(repo, tag) is not None


def test_publish_pushes_what_the_lock_records_not_every_stored_image(ws: Path, tmp_path: Path) -> None:
    build(ws)
    stale_layer = image_layer(ws, "0.1.0")
    set_version(ws, "0.2.0")
    build(ws)
    flip(blob(ws, stale_layer))  # the old image is damaged; it must not matter any more
    with running_registry(tmp_path) as reg:
        env = publish_env(reg, ws)
        summary = json.loads(cli(ws, "publish", "--json", env=env).stdout)
        assert sorted((p["kind"], p["repository"], p["tag"]) for p in summary["published"]) == [
            ("binary", "app", "0.2.0-binaries"), ("image", "app", "0.2.0")]
        assert tagged(reg, "app", "0.2.0") and not tagged(reg, "app", "0.1.0")


def test_publish_checks_every_blob_before_pushing(ws: Path, tmp_path: Path) -> None:
    build(ws)
    layer = image_layer(ws, "0.1.0")
    flip(blob(ws, layer))
    with running_registry(tmp_path) as reg:
        env = publish_env(reg, ws)
        failed = cli(ws, "publish", "--no-build", env=env, code=1).stderr
        assert f"blob {layer} is corrupt" in failed and "crossyard store verify" in failed
        assert "DIGEST_INVALID" not in failed
        assert not tagged(reg, "app", "0.1.0")
        # A build repairs it; then it publishes.
        build(ws, "--locked")
        cli(ws, "publish", "--no-build", env=env)
        assert tagged(reg, "app", "0.1.0")
