from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from crossyard.errors import ConfigurationError
from crossyard.oci.layout import OciLayout
from crossyard.registry.client import RegistryClient, add_query
from helpers.images import tiny_image
from helpers.registry import running_registry


def test_add_query_keeps_opaque_location() -> None:
    base = "https://r.example:5000"
    got = add_query("/v2/a/blobs/uploads/u1?_state=xyz", base, digest="sha256:00")
    assert got == "https://r.example:5000/v2/a/blobs/uploads/u1?_state=xyz&digest=sha256%3A00"
    assert add_query("https://o.example/x", base) == "https://o.example/x"


@pytest.mark.integration
def test_push_pull_roundtrip_and_head_only_repush(tmp_path: Path) -> None:
    src = OciLayout(tmp_path / "src").ensure()
    tiny_image(src, b"hello riscv64\n" * 1000, "hello:0.1.0")
    with running_registry(tmp_path) as reg:
        with RegistryClient(reg.url, ca_path=reg.ca_path, username="tester",
                            password="wrong") as bad, pytest.raises(
            ConfigurationError, match="refused credentials for tester"
        ):
            bad.ping()
        with RegistryClient(reg.url, ca_path=reg.ca_path, username=reg.username,
                            password=reg.password) as client:
            client.ping()
            digest = client.push_layout(src, "hello:0.1.0", "hello", "0.1.0")
            dst = OciLayout(tmp_path / "dst").ensure()
            root = client.pull("hello", "0.1.0", dst)
            assert root.digest == digest
            manifest = json.loads(dst.read_blob(digest))
            for layer in manifest["layers"]:
                assert dst.has_blob(layer["digest"])
        methods: list[str] = []

        def hook(request: httpx.Request) -> None:
            methods.append(request.method)

        with RegistryClient(reg.url, ca_path=reg.ca_path, username=reg.username,
                            password=reg.password, event_hooks={"request": [hook]}) as client:
            client.push_layout(src, "hello:0.1.0", "hello", "0.1.0")
        assert set(methods) == {"HEAD"}, methods
        assert "POST" not in methods and "PATCH" not in methods
