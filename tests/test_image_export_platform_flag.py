"""`crossyard image export -p PLATFORM`, as the README shows it: the flag exists, takes the same
aliases as `build -p`, and picks that platform's manifest out of a multi-platform image."""

from __future__ import annotations

import gzip
import io
import json
import shlex
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import REPO, require_tool, run_cli
from crossyard.cli import build_parser
from crossyard.hashing import sha256_bytes
from crossyard.oci import media
from crossyard.oci.layout import Descriptor, OciLayout
from crossyard.store import Store


def _platform_manifest(layout: OciLayout, arch: str) -> Descriptor:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        payload = f"built for {arch}\n".encode()
        info = tarfile.TarInfo("hello")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    layer = layout.write_blob(gzip.compress(raw.getvalue(), mtime=0), media.LAYER_GZIP)
    config = layout.write_json(
        {"architecture": arch, "os": "linux",
         "rootfs": {"type": "layers", "diff_ids": [sha256_bytes(raw.getvalue())]}},
        media.CONFIG,
    )
    return layout.write_json(
        {"schemaVersion": 2, "mediaType": media.MANIFEST, "config": config.to_json(),
         "layers": [layer.to_json()]},
        media.MANIFEST, platform={"os": "linux", "architecture": arch},
    )


def _workspace_with_image(root: Path) -> Path:
    """A workspace whose store holds hello:1 for linux/riscv64 and linux/arm64."""
    root.mkdir(parents=True)
    (root / "crossyard.toml").write_text("")
    store = Store(root / ".crossyard" / "store")
    store.layout.ensure()
    manifests = [_platform_manifest(store.layout, arch) for arch in ("riscv64", "arm64")]
    index = store.layout.write_json(
        {"schemaVersion": 2, "mediaType": media.INDEX,
         "manifests": [m.to_json() for m in manifests]},
        media.INDEX,
    )
    store.put_image(name="hello", version="1", recipe="hello", key="", index=index)
    return root


def test_every_image_export_line_of_the_readme_parses() -> None:
    lines = [line.split("#", 1)[0].strip() for line in (REPO / "README.md").read_text().splitlines()]
    exports = [shlex.split(line)[1:] for line in lines if line.startswith("crossyard image export")]
    assert any("-p" in argv for argv in exports), "the README no longer shows `image export -p`"
    for argv in exports:
        args = build_parser(argv).parse_args(argv)  # argparse exits 2 on an unknown flag
        assert args.output


@pytest.mark.integration
def test_export_dash_p_picks_that_platform(tmp_path: Path) -> None:
    skopeo = require_tool("skopeo", "apt install skopeo")
    ws = _workspace_with_image(tmp_path / "ws")
    archive = tmp_path / "hello-riscv64.tar"
    result = run_cli("-C", str(ws), "image", "export", "hello:1", "--format", "docker-archive",
                     "-p", "riscv64", "-o", str(archive))
    assert result.returncode == 0, result.stderr
    inspected = subprocess.run([skopeo, "inspect", f"docker-archive:{archive}"],
                               check=True, capture_output=True, text=True).stdout
    assert json.loads(inspected)["Architecture"] == "riscv64"

    layout = tmp_path / "arm64-only"
    result = run_cli("-C", str(ws), "image", "export", "hello:1", "-p", "aarch64", "-o",
                     str(layout))
    assert result.returncode == 0, result.stderr
    [entry] = json.loads((layout / "index.json").read_text())["manifests"]
    assert entry["platform"]["architecture"] == "arm64"

    unknown = run_cli("-C", str(ws), "image", "export", "hello:1", "-p", "sparc64", "-o",
                      str(tmp_path / "none"))
    assert unknown.returncode == 2 and "unknown platform `sparc64`" in unknown.stderr
