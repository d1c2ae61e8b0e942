"""Import a `docker save` tarball into an OCI layout as one platform's image manifest.

Both shapes docker writes are read through their `manifest.json` (Config + Layers paths): the
legacy one (`<id>.json`, `<layer>/layer.tar`, docker 20.10) and the OCI-layout one of docker 25+
(`blobs/sha256/<hex>`). Every digest is checked on the way in: the config's sha256 is the image
ID the engine reported, each layer's uncompressed sha256 is its `rootfs.diff_ids` entry, and the
config names the platform that was asked for. Uncompressed layers are gzipped with the same
deterministic writer as crossyard's own layers (no name, mtime 0, level 6); layers docker already
compressed are stored as they are. The config bytes are kept exactly, so the store's config
digest is the image ID `docker images` shows.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..annotations import ANNOTATION_COMPRESSOR
from ..errors import IntegrityError
from ..hashing import CHUNK
from ..platforms import Platform, platform_label
from . import media
from .layer import compressor_identity
from .layout import Descriptor, OciLayout

GZIP_MAGIC = b"\x1f\x8b"
GZIP_LEVEL = 6
# The compressor annotation's value for layers kept as the engine compressed them.
ENGINE_COMPRESSED = "the Docker engine (stored as saved)"


@dataclass(frozen=True, kw_only=True)
class ImportedImage:
    manifest: Descriptor  # with platform
    config: Descriptor
    layers: tuple[Descriptor, ...]
    diff_ids: tuple[str, ...]


def _read_member(tar: tarfile.TarFile, name: str, archive: Path) -> IO[bytes]:
    try:
        handle = tar.extractfile(name)
    except KeyError:
        handle = None
    if handle is None:
        raise IntegrityError(f"{archive}: `{name}` named by manifest.json is not in the archive")
    return handle


def _import_layer(tar: tarfile.TarFile, name: str, diff_id: str, layout: OciLayout, archive: Path) -> Descriptor:
    """Store one layer (gzipped deterministically unless docker already compressed it)."""
    handle = _read_member(tar, name, archive)
    head = handle.read(2)
    handle.seek(0)
    tar_hash = hashlib.sha256()
    if head == GZIP_MAGIC:
        with layout.blob_writer() as blob:
            with gzip.GzipFile(fileobj=handle, mode="rb") as plain:
                # Hash the uncompressed stream while copying the compressed bytes as they are.
                while chunk := plain.read(CHUNK):
                    tar_hash.update(chunk)
            handle.seek(0)
            while chunk := handle.read(CHUNK):
                blob.write(chunk)
            _check_diff_id(tar_hash, diff_id, name, archive)
        return Descriptor(media_type=media.LAYER_GZIP, digest=blob.digest, size=blob.size,
                          annotations={ANNOTATION_COMPRESSOR: ENGINE_COMPRESSED})
    with layout.blob_writer() as blob:
        compressor = gzip.GzipFile(filename="", mode="wb", fileobj=blob, compresslevel=GZIP_LEVEL, mtime=0)  # type: ignore[call-overload]
        while chunk := handle.read(CHUNK):
            tar_hash.update(chunk)
            compressor.write(chunk)
        compressor.close()
        _check_diff_id(tar_hash, diff_id, name, archive)  # before the blob is moved into place
    return Descriptor(media_type=media.LAYER_GZIP, digest=blob.digest, size=blob.size,
                      annotations={ANNOTATION_COMPRESSOR: compressor_identity("gzip", GZIP_LEVEL)})


def _check_diff_id(tar_hash: Any, diff_id: str, name: str, archive: Path) -> None:
    got = "sha256:" + tar_hash.hexdigest()
    if got != diff_id:
        raise IntegrityError(
            f"{archive}: layer `{name}` has sha256 {got}, but the image config's diff_id is {diff_id}"
        )


def import_docker_archive(
    layout: OciLayout,
    archive: Path,
    *,
    image_id: str,
    platform: Platform,
    annotations: Mapping[str, str] | None = None,
) -> ImportedImage:
    """Write the image `image_id` from `archive` into `layout`; return its manifest descriptor.

    Blobs are written first and the manifest last; nothing is tagged (the caller records the
    manifest in the index).
    """
    try:
        tar = tarfile.open(archive)  # noqa: SIM115 (closed by the `with tar` below)
    except (tarfile.TarError, OSError) as error:
        raise IntegrityError(f"{archive}: not a readable docker-save archive ({error})") from None
    with tar:
        entries = json.loads(_read_member(tar, "manifest.json", archive).read())
        if not isinstance(entries, list) or len(entries) != 1:
            raise IntegrityError(f"{archive}: manifest.json must describe exactly one image")
        entry: dict[str, Any] = entries[0]
        config_bytes = _read_member(tar, entry["Config"], archive).read()
        config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        if config_digest != image_id:
            raise IntegrityError(
                f"{archive}: the image config has digest {config_digest}, but the engine built {image_id}"
            )
        config = json.loads(config_bytes)
        got_platform = platform_label(config)
        if got_platform != platform.oci:
            raise IntegrityError(
                f"{archive}: the engine produced a {got_platform} image where {platform.oci} was asked for"
            )
        diff_ids = list(config.get("rootfs", {}).get("diff_ids", []))
        names = list(entry.get("Layers", []))
        if len(names) != len(diff_ids):
            raise IntegrityError(
                f"{archive}: {len(names)} layers in manifest.json, {len(diff_ids)} diff_ids in the config"
            )
        layers = tuple(
            _import_layer(tar, name, diff_id, layout, archive) for name, diff_id in zip(names, diff_ids, strict=True)
        )
    config_desc = layout.write_blob(config_bytes, media.CONFIG)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media.MANIFEST,
        "config": config_desc.to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    descriptor = layout.write_json(manifest, media.MANIFEST, platform=dict(platform.oci_platform))
    return ImportedImage(manifest=descriptor, config=config_desc, layers=layers, diff_ids=tuple(diff_ids))
