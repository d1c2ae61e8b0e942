"""`crossyard publish` pushes what crossyard.lock records (not every image the store still
holds) and hashes every blob before it leaves: real cross builds, a real TLS registry."""

from __future__ import annotations

import json
import shutil
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


def test_provenance_names_the_builds_inside_the_image_not_the_newest_in_the_store(
        ws: Path, tmp_path: Path) -> None:
    import base64

    first = build(ws)
    [key] = [j["input_key"] for j in first["jobs"]]
    # Another source builds (the newest artifact of app@linux/riscv64 in the store is now that
    # one), then the source goes back: the job is cached under its first key, and the image
    # published is the first one. Its provenance must name that build, not the newest.
    source = ws / "src" / "app.c"
    original = source.read_text()
    source.write_text(original + "/* another source */\n")
    newer = build(ws)
    assert [j["input_key"] for j in newer["jobs"]] != [key]
    source.write_text(original)
    again = build(ws)
    assert [j["status"] for j in again["jobs"]] == ["cached"] and [j["input_key"] for j in again["jobs"]] == [key]
    lock = (ws / "crossyard.lock").read_text()
    assert f'inputs = ["{key}"]' in lock  # the image records the build it holds
    with running_registry(tmp_path) as reg:
        env = publish_env(reg, ws)
        summary = json.loads(cli(ws, "publish", "--no-build", "--json", env=env).stdout)
        digest = next(p["digest"] for p in summary["published"] if p["kind"] == "image")
        with RegistryClient(reg.url, ca_path=reg.ca_path, username=reg.username,
                            password=reg.password) as client:
            att = client.get_manifest("app", "sha256-" + digest[7:] + ".att")
            assert att is not None
            envelope = client.get_blob_bytes("app", json.loads(att[0])["layers"][0]["digest"])
    statement = json.loads(base64.b64decode(json.loads(envelope)["payload"]))
    jobs = statement["predicate"]["buildDefinition"]["internalParameters"]["jobs"]
    assert [j["inputKey"] for j in jobs] == [key]
    assert jobs[0]["outputs"] == first["jobs"][0]["outputs"]


def test_publish_of_named_recipes_needs_only_their_builds_in_the_store(ws: Path, tmp_path: Path) -> None:
    """The main job on a fresh clone: the committed lock also records what `build_all` builds
    (Kubernetes …), the new store holds only what `publish NAMES` built; that publishes. Without
    names everything the lock records must be there, and what is missing is named."""
    other = (ws / "recipes" / "app.toml").read_text().replace('name = "app"', 'name = "other"', 1)
    other = other.replace('run = ["app", "yard"]', 'run = ["other", "yard"]')
    (ws / "recipes" / "other.toml").write_text(other.split("[image]")[0])
    build(ws)  # the lock now records app and other, as a full build leaves it
    shutil.rmtree(ws / ".crossyard" / "store")  # a fresh clone: the lock, no store
    with running_registry(tmp_path) as reg:
        env = publish_env(reg, ws)
        summary = json.loads(cli(ws, "publish", "--json", "app", env=env).stdout)
        assert {p["repository"] for p in summary["published"]} == {"app"}
        assert tagged(reg, "app", "0.1.0")
        failed = cli(ws, "publish", "--no-build", env=env, code=2).stderr
        assert "crossyard.lock records builds that" in failed and "other@linux/riscv64" in failed
        assert "app@" not in failed
