"""A tiny single-layer riscv64 image written straight into an OCI layout, for registry tests."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path
from typing import Any

from crossyard.hashing import sha256_bytes
from crossyard.lock import ImageLockEntry, Lock, write_lock
from crossyard.oci.layout import OciLayout


def tiny_image(layout: OciLayout, payload: bytes, name: str) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("hello")
        info.size, info.mtime = len(payload), 0
        tar.addfile(info, io.BytesIO(payload))
    layer_bytes = gzip.compress(raw.getvalue(), mtime=0)
    layer = layout.write_blob(layer_bytes, "application/vnd.oci.image.layer.v1.tar+gzip")
    config = layout.write_json(
        {"architecture": "riscv64", "os": "linux",
         "rootfs": {"type": "layers", "diff_ids": [sha256_bytes(raw.getvalue())]}},
        "application/vnd.oci.image.config.v1+json",
    )
    manifest = layout.write_json(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "config": config.to_json(), "layers": [layer.to_json()]},
        "application/vnd.oci.image.manifest.v1+json",
    )
    entry = manifest.with_(annotations={"org.opencontainers.image.ref.name": name})
    layout.update_index(lambda ms: [*ms, entry])


def random_image(layout: OciLayout, size: int, name: str) -> str:
    """A single-layer image whose layer is `size` random bytes (written 1 MiB at a time, so large
    layers never sit in memory); returns the layer digest."""
    path = layout.root / "layer.bin"
    with path.open("wb") as handle:
        for offset in range(0, size, 1 << 20):
            handle.write(os.urandom(min(1 << 20, size - offset)))
    layer = layout.import_file(path, "application/vnd.oci.image.layer.v1.tar")
    path.unlink()
    # An uncompressed layer: its diff_id is its digest.
    config = layout.write_json({"architecture": "arm64", "os": "linux",
                                "rootfs": {"type": "layers", "diff_ids": [layer.digest]}},
                               "application/vnd.oci.image.config.v1+json")
    manifest = layout.write_json(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "config": config.to_json(), "layers": [layer.to_json()]},
        "application/vnd.oci.image.manifest.v1+json",
    )
    layout.update_index(lambda ms: [*ms, manifest.with_(
        annotations={"org.opencontainers.image.ref.name": name})])
    return layer.digest


def lock_stored_images(layout: OciLayout, lock_path: Path) -> None:
    """Record every image in `layout` in `lock_path` as a build of the catalog, since publish
    pushes what the lock records (images written by hand here have no recipe)."""
    images = {}
    for entry in layout.manifests():
        name, _, version = (entry.annotations or {})["org.opencontainers.image.ref.name"].rpartition(":")
        images[f"{name}:{version}"] = ImageLockEntry(name=name, version=version, recipe="", key="",
                                                     index=entry.digest)
    write_lock(lock_path, Lock(images=images))


def unpack_image(layout: OciLayout, ref: str, platforms: set[str], platform: str,
                 into: Path) -> dict[str, Any]:
    """The image tagged `ref` in `layout`: check its index lists exactly `platforms` (os/arch),
    unpack the regular files of `platform`'s layers into `into`; return its config."""
    [index] = [m for m in layout.manifests()
               if (m.annotations or {}).get("org.opencontainers.image.ref.name") == ref]
    manifests = layout.read_json(index.digest)["manifests"]
    assert {f"{m['platform']['os']}/{m['platform']['architecture']}" for m in manifests} == platforms
    [entry] = [m for m in manifests
               if f"{m['platform']['os']}/{m['platform']['architecture']}" == platform]
    manifest = layout.read_json(entry["digest"])
    for layer in manifest["layers"]:
        with tarfile.open(layout.blob_path(layer["digest"]), "r:*") as tar:
            for member in tar:  # regular files are all the tests run or read
                source = tar.extractfile(member) if member.isfile() else None
                if source is not None and ".." not in Path(member.name).parts:
                    target = into / member.name.lstrip("/")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(source.read())
                    target.chmod(member.mode & 0o755)
    config: dict[str, Any] = layout.read_json(manifest["config"]["digest"])["config"]
    return config
