"""`docker save` → OCI import (digests checked at the boundary) and the deterministic context tar.

The archives here are written by the test in both shapes docker produces (20.10's legacy layout
and docker 25+'s OCI layout); test_dockerfile.py imports real ones from a real engine.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from crossyard.build_options import DockerfileOptions
from crossyard.builders.dockerfile import DockerfileBuilder, platform_args
from crossyard.errors import IntegrityError
from crossyard.executors.docker import write_context
from crossyard.hashing import sha256_bytes
from crossyard.oci import media
from crossyard.oci.docker_archive import import_docker_archive
from crossyard.oci.layout import OciLayout
from crossyard.platforms import AMD64, ARM64, RISCV64


def layer_tar(payload: bytes) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("hello")
        info.size, info.mode = len(payload), 0o755
        tar.addfile(info, io.BytesIO(payload))
    return raw.getvalue()


def save_archive(path: Path, *, layer: bytes, arch: str = "riscv64", oci_shape: bool = False,
                 diff_id: str | None = None, compress: bool = False) -> str:
    """A docker-save tarball of a one-layer image; returns the image ID."""
    config = json.dumps({
        "architecture": arch, "os": "linux", "created": "2026-11-23T09:00:00Z",
        "config": {"Entrypoint": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id or sha256_bytes(layer)]},
    }).encode()
    image_id = sha256_bytes(config)
    stored_layer = gzip.compress(layer, mtime=0) if compress else layer
    if oci_shape:
        config_name = f"blobs/sha256/{image_id[7:]}"
        layer_name = f"blobs/sha256/{sha256_bytes(stored_layer)[7:]}"
    else:
        config_name, layer_name = f"{image_id[7:]}.json", "0123abcd/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": None, "Layers": [layer_name]}]).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in ((config_name, config), (layer_name, stored_layer), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return image_id


@pytest.mark.parametrize("oci_shape", [False, True], ids=["docker-20.10", "docker-25"])
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzipped"])
def test_import_keeps_the_config_and_checks_every_digest(tmp_path: Path, oci_shape: bool, compress: bool) -> None:
    layer = layer_tar(b"\x7fELF riscv64 hello")
    archive = tmp_path / "save.tar"
    image_id = save_archive(archive, layer=layer, oci_shape=oci_shape, compress=compress)
    layout = OciLayout(tmp_path / "store").ensure()
    imported = import_docker_archive(layout, archive, image_id=image_id, platform=RISCV64,
                                     annotations={"dev.crossyard.reproducible": "false"})
    assert imported.config.digest == image_id  # the engine's config, byte for byte
    assert imported.manifest.platform == {"os": "linux", "architecture": "riscv64"}
    manifest = layout.read_json(imported.manifest.digest)
    assert manifest["mediaType"] == media.MANIFEST
    assert manifest["config"]["mediaType"] == media.CONFIG
    assert manifest["annotations"] == {"dev.crossyard.reproducible": "false"}
    [stored] = manifest["layers"]
    assert stored["mediaType"] == media.LAYER_GZIP
    compressor = stored["annotations"]["dev.crossyard.compressor"]  # the lock records it
    assert compressor.startswith("the Docker engine") if compress else compressor.startswith("python-zlib")
    compressed = layout.read_blob(stored["digest"])
    assert gzip.decompress(compressed) == layer
    if not compress:
        assert compressed[4:8] == b"\0\0\0\0" and compressed[3] & 0x08 == 0  # no mtime, no file name


def test_same_archive_gives_the_same_manifest(tmp_path: Path) -> None:
    layer = layer_tar(b"payload")
    archive = tmp_path / "save.tar"
    image_id = save_archive(archive, layer=layer)
    digests = {
        import_docker_archive(OciLayout(tmp_path / f"store{i}").ensure(), archive, image_id=image_id,
                              platform=RISCV64).manifest.digest
        for i in range(2)
    }
    assert len(digests) == 1


def test_wrong_image_id_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "save.tar"
    save_archive(archive, layer=layer_tar(b"x"))
    layout = OciLayout(tmp_path / "store").ensure()
    with pytest.raises(IntegrityError, match="but the engine built sha256:0000"):
        import_docker_archive(layout, archive, image_id="sha256:" + "0" * 64, platform=RISCV64)


def test_layer_that_does_not_match_its_diff_id_is_refused_and_not_stored(tmp_path: Path) -> None:
    archive = tmp_path / "save.tar"
    image_id = save_archive(archive, layer=layer_tar(b"tampered"), diff_id=sha256_bytes(b"what the config says"))
    layout = OciLayout(tmp_path / "store").ensure()
    with pytest.raises(IntegrityError, match="but the image config's diff_id is"):
        import_docker_archive(layout, archive, image_id=image_id, platform=RISCV64)
    assert sorted(p.name for p in layout.blobs_dir.iterdir()) == []  # no half-imported blob


def test_platform_the_engine_did_not_build_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "save.tar"
    image_id = save_archive(archive, layer=layer_tar(b"x"), arch="amd64")
    with pytest.raises(IntegrityError, match="produced a linux/amd64 image where linux/riscv64 was asked for"):
        import_docker_archive(OciLayout(tmp_path / "store").ensure(), archive, image_id=image_id, platform=RISCV64)


def test_context_tar_is_deterministic_and_honours_dockerignore(tmp_path: Path) -> None:
    tars = []
    for i, (umask, mtime) in enumerate(((0o022, 1_000_000), (0o002, 2_000_000))):
        context = tmp_path / f"ctx{i}"
        (context / "artifacts" / "app").mkdir(parents=True)
        (context / "Dockerfile").write_text("FROM scratch\nCOPY artifacts/app/app /app\n")
        (context / ".dockerignore").write_text("# comment\nsecret.txt\n")
        (context / "secret.txt").write_text("never sent")
        app = context / "artifacts" / "app" / "app"
        app.write_bytes(b"\x7fELF")
        os.chmod(app, 0o775 & ~umask)
        for path in context.rglob("*"):
            os.utime(path, (mtime, mtime))
        out = tmp_path / f"ctx{i}.tar"
        write_context(context, "Dockerfile", out, epoch=1767225600)
        tars.append(out.read_bytes())
    assert tars[0] == tars[1]
    with tarfile.open(fileobj=io.BytesIO(tars[0])) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert "secret.txt" not in members and "Dockerfile" in members
    assert list(members) == sorted(members)
    app_member = members["artifacts/app/app"]
    assert (app_member.mode, app_member.mtime, app_member.uid, app_member.uname) == (0o755, 1767225600, 0, "")


def test_build_args_and_placements() -> None:
    options = DockerfileOptions(build_args=(("N", 3), ("TEAM", "edge {version} {{x}}")), context="./docker/",
                                target="final")
    build = DockerfileBuilder().build(
        name="web", version="1.0", commit=None, options=options,
        platform=ARM64, engine=AMD64, deps={"hello-go": ("hello-go",)}, source_date_epoch=42,
    )
    assert build.build_args == {
        "BUILDARCH": "amd64", "BUILDOS": "linux", "BUILDPLATFORM": "linux/amd64", "N": "3", "SOURCE_DATE_EPOCH": "42",
        "TARGETARCH": "arm64", "TARGETOS": "linux", "TARGETPLATFORM": "linux/arm64", "TARGETVARIANT": "",
        "TEAM": "edge 1.0 {x}",
    }
    assert platform_args(RISCV64, AMD64)["TARGETPLATFORM"] == "linux/riscv64"
    assert [p.dest for p in build.placements] == ["artifacts/hello-go/hello-go"]
    assert (build.context, build.dockerfile, build.target) == ("docker", "Dockerfile", "final")
