from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import require_tool
from crossyard.oci.image import ImageConfig, tag, write_image, write_index
from crossyard.oci.layer import LayerEntry, write_layer
from crossyard.oci.layout import OciLayout
from crossyard.platforms import Platform
from helpers.oci_schema import validate

_validate = validate


def _build(root: Path) -> str:
    layout = OciLayout(root).ensure()
    manifests = []
    for name in ("linux/riscv64", "linux/arm64"):
        platform = Platform.parse(name)
        layer = write_layer(
            layout,
            [LayerEntry(path="/hello", source=name.encode(), mode=0o755)],
            source_date_epoch=1,
        )
        manifests.append(
            write_image(
                layout,
                platform=platform,
                layers=[layer],
                config=ImageConfig(entrypoint=("/hello",)),
                source_date_epoch=1,
            )
        )
    index = write_index(layout, manifests)
    tag(layout, index, "demo:1")
    tag(layout, index, "demo:1")
    return index.digest


def test_image_index_deterministic_and_valid(tmp_path: Path) -> None:
    digest = _build(tmp_path / "a")
    assert digest == _build(tmp_path / "b")
    layout = OciLayout(tmp_path / "a")
    assert len(layout.manifests()) == 1
    index = layout.read_json(digest)
    _validate(index, "image-index-schema.json")
    assert {m["platform"]["architecture"] for m in index["manifests"]} == {"riscv64", "arm64"}
    for entry in index["manifests"]:
        manifest = layout.read_json(entry["digest"])
        _validate(manifest, "image-manifest-schema.json")
        _validate(layout.read_json(manifest["config"]["digest"]), "config-schema.json")


@pytest.mark.integration
def test_skopeo_reads_index(tmp_path: Path) -> None:
    skopeo = require_tool("skopeo", "apt install skopeo")
    _build(tmp_path / "a")
    raw = subprocess.run(
        [skopeo, "inspect", "--raw", f"oci:{tmp_path / 'a'}:demo:1"],
        check=True,
        capture_output=True,
    ).stdout
    archs = {m["platform"]["architecture"] for m in json.loads(raw)["manifests"]}
    assert archs == {"riscv64", "arm64"}
    subprocess.run(
        [skopeo, "copy", "--all", f"oci:{tmp_path / 'a'}:demo:1", f"dir:{tmp_path / 'out'}"],
        check=True,
        capture_output=True,
    )
    assert (tmp_path / "out" / "manifest.json").exists()
