"""Registry bases for image recipes: digest-pinned, pulled and verified into a layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossyard.errors import ConfigurationError
from crossyard.oci.layout import OciLayout
from crossyard.reference import Reference
from crossyard.registry.client import RegistryClient
from crossyard.registry.pull_base import pull_base
from crossyard.workspace import Workspace
from helpers.images import tiny_image
from helpers.registry import running_registry


@pytest.mark.integration
def test_pull_base_from_the_configured_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = OciLayout(tmp_path / "src").ensure()
    tiny_image(src, b"base layer\n", "base:1")
    ws = Workspace(root=tmp_path / "ws")
    with running_registry(tmp_path) as reg:
        monkeypatch.setenv("CROSSYARD_REGISTRY", reg.host)
        monkeypatch.setenv("CROSSYARD_REGISTRY_CA", str(reg.ca_path))
        monkeypatch.setenv("CROSSYARD_REGISTRY_USERNAME", reg.username)
        monkeypatch.setenv("CROSSYARD_REGISTRY_PASSWORD", reg.password)
        with RegistryClient(reg.url, ca_path=reg.ca_path, username=reg.username,
                            password=reg.password) as client:
            digest = client.push_layout(src, "base:1", "library/base", "1")
        into = OciLayout(tmp_path / "store")
        root = pull_base(ws, Reference.parse(f"{reg.host}/library/base@{digest}"), into)
        assert root.digest == digest
        manifest = json.loads(into.read_blob(digest))
        for blob in [manifest["config"], *manifest["layers"]]:
            assert into.read_blob(blob["digest"])  # present, and its bytes match
        with pytest.raises(ConfigurationError, match="is not `HOST"):
            pull_base(ws.root, Reference.parse(f"{reg.host}/library/base:1"), into)
        missing = "sha256:" + "0" * 64
        with pytest.raises(ConfigurationError, match="not found in the registry"):
            pull_base(ws.root, Reference.parse(f"{reg.host}/library/base@{missing}"),
                      OciLayout(tmp_path / "x"))
