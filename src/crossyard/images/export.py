"""Take a built image out of the store, in a form `docker load` and `skopeo` read.

- `oci`: an OCI image layout directory with just that image (every platform, or the one asked
  for); a PATH ending in `.tar` gets the same layout as an `oci-archive` tarball.
- `docker-archive`: the `docker save` format: `manifest.json` (Config, RepoTags, Layers), the
  config blob and each layer as an uncompressed tar. One platform per archive, like `docker save`.

Everything is staged beside the destination and moved into place at the end; each layer is
checked against its diff_id as it is decompressed.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import ConfigurationError, IntegrityError
from ..fsutil import atomic_writer
from ..hashing import CHUNK
from ..oci import media
from ..oci.archive import tree_members, write_archive
from ..oci.copy import copy_tree
from ..oci.layout import Descriptor, OciLayout
from ..platforms import Platform, platform_label
from ..store import Store, StoredImage

FORMATS = ("oci", "docker-archive")
CONTAINERD_NAME = "io.containerd.image.name"


@dataclass(frozen=True, kw_only=True)
class Exported:
    path: Path
    format: str
    ref: str
    digest: str  # what the export's index.json / manifest.json points at
    platforms: tuple[str, ...]


def find_image(store: Store, ref: str) -> StoredImage:
    """`name:version`, or `name` when the store holds exactly one version of it."""
    images = store.images()
    exact = [i for i in images if i.ref == ref]
    if exact:
        return exact[0]
    named = [i for i in images if i.name == ref]
    if len(named) == 1:
        return named[0]
    known = ", ".join(sorted(i.ref for i in images)) or "(none; run `crossyard build`)"
    if named:
        raise ConfigurationError(f"image `{ref}` has several versions; name one: {known}")
    raise ConfigurationError(f"no image `{ref}` in the store {store.root}; images: {known}")


def platform_manifests(layout: OciLayout, image: StoredImage) -> list[Descriptor]:
    index = layout.read_json(image.index.digest)
    return [Descriptor.from_json(d) for d in index.get("manifests", [])]


def pick_platform(layout: OciLayout, image: StoredImage, platform: Platform) -> Descriptor:
    manifests = platform_manifests(layout, image)
    for descriptor in manifests:
        if platform_label(descriptor.platform) == platform.oci:
            return descriptor
    have = ", ".join(platform_label(d.platform) for d in manifests)
    raise ConfigurationError(f"image `{image.ref}` has no {platform} manifest; it has: {have}")


def export_image(
    store: Store, ref: str, destination: Path, *, format: str, platform: Platform | None = None
) -> Exported:
    if format not in FORMATS:
        raise ConfigurationError(f"unknown export format `{format}`; use one of: {', '.join(FORMATS)}")
    image = find_image(store, ref)
    if format == "oci":
        return _export_oci(store.layout, image, destination, platform)
    if platform is None:
        manifests = platform_manifests(store.layout, image)
        if len(manifests) != 1:
            have = ", ".join(platform_label(d.platform)
                             for d in manifests)
            raise ConfigurationError(
                f"a docker-archive holds one platform and `{image.ref}` has {len(manifests)} ({have}); "
                "pass --platform"
            )
        chosen = manifests[0]
    else:
        chosen = pick_platform(store.layout, image, platform)
    return _export_docker(store.layout, image, chosen, destination)


def _check_destination(destination: Path) -> None:
    if destination.is_dir() and any(destination.iterdir()):
        raise ConfigurationError(f"{destination} exists and is not empty; remove it or choose another path")
    if destination.exists() and not destination.is_dir() and destination.suffix != ".tar":
        raise ConfigurationError(f"{destination} exists and is not a directory")


@contextlib.contextmanager
def _staging(destination: Path) -> Iterator[Path]:
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=destination.parent, prefix=f".{destination.name}-"))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _export_oci(layout: OciLayout, image: StoredImage, destination: Path, platform: Platform | None) -> Exported:
    _check_destination(destination)
    root = image.index.with_(annotations=None) if platform is None else pick_platform(layout, image, platform)
    entry = root.with_(annotations={
        media.ANNOTATION_REF_NAME: image.ref,
        CONTAINERD_NAME: image.ref,
    })
    platforms = tuple(
        platform_label(d.platform)
        for d in ([root] if platform is not None else platform_manifests(layout, image))
    )
    with _staging(destination) as staging:
        out = OciLayout(staging / "layout").ensure()
        copy_tree(layout, root, out)
        out.update_index(lambda _current: [entry])
        (out.root / ".index.lock").unlink(missing_ok=True)
        if destination.suffix == ".tar":
            with atomic_writer(destination) as handle:
                write_archive(handle, tree_members(out.root))
        else:
            if destination.is_dir():
                destination.rmdir()  # checked empty above
            out.root.rename(destination)
    return Exported(path=destination, format="oci", ref=image.ref, digest=root.digest, platforms=platforms)


def _decompressor(media_type: str, handle: IO[bytes]) -> IO[bytes]:
    if media_type.endswith("+zstd") or media_type.endswith(".zstd"):
        import zstandard

        reader: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(handle)
        return reader
    if media_type.endswith("gzip"):
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    return handle


def _uncompressed_layer(layout: OciLayout, layer: Descriptor, diff_id: str, into: Path) -> Path:
    """Decompress one layer to a file, checking that the blob's bytes are its digest and the
    tar's sha256 is the config's diff_id."""
    target = into / diff_id.removeprefix("sha256:")
    layout.require_blob(layer.digest, layer.size)  # a flipped byte can still decompress
    digest = hashlib.sha256()
    with layout.blob_path(layer.digest).open("rb") as raw, target.open("wb") as out:
        stream = _decompressor(layer.media_type, raw)
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    if "sha256:" + digest.hexdigest() != diff_id:
        raise IntegrityError(
            f"layer {layer.digest} decompresses to sha256:{digest.hexdigest()}, the config says {diff_id}"
        )
    return target


def _export_docker(layout: OciLayout, image: StoredImage, manifest_desc: Descriptor, destination: Path) -> Exported:
    if destination.is_dir():
        raise ConfigurationError(f"{destination} is a directory; a docker-archive is a file (e.g. image.tar)")
    manifest = layout.read_json(manifest_desc.digest)
    config_desc = Descriptor.from_json(manifest["config"])
    config_bytes = layout.read_blob(config_desc.digest)
    config: dict[str, Any] = json.loads(config_bytes)
    diff_ids: list[str] = list(config.get("rootfs", {}).get("diff_ids", []))
    layers = [Descriptor.from_json(d) for d in manifest.get("layers", [])]
    if len(diff_ids) != len(layers):
        raise IntegrityError(f"image `{image.ref}`: {len(layers)} layers but {len(diff_ids)} diff_ids")
    with _staging(destination) as staging:
        members: list[tuple[str, Path | bytes]] = []
        names = []
        for layer, diff_id in zip(layers, diff_ids, strict=True):
            path = _uncompressed_layer(layout, layer, diff_id, staging)
            name = f"blobs/sha256/{diff_id.removeprefix('sha256:')}"
            if name not in names:
                members.append((name, path))
            names.append(name)
        config_name = f"blobs/sha256/{config_desc.digest.removeprefix('sha256:')}"
        members.append((config_name, config_bytes))
        document = [{"Config": config_name, "RepoTags": [image.ref], "Layers": names}]
        members.insert(0, ("manifest.json", json.dumps(document, separators=(",", ":")).encode()))
        with atomic_writer(destination) as handle:
            write_archive(handle, members)
    return Exported(
        path=destination, format="docker-archive", ref=image.ref, digest=manifest_desc.digest,
        platforms=(platform_label(manifest_desc.platform or config),),
    )

