"""Copy an image (index, manifests, configs, layers) from one OCI layout to another.

Every blob is verified on the way across: JSON documents when read, layers while streamed.
"""

from __future__ import annotations

from typing import Any

from ..errors import IntegrityError
from ..hashing import CHUNK
from . import media
from .layout import Descriptor, OciLayout


def children(document: dict[str, Any]) -> list[Descriptor]:
    """The descriptors a manifest or index points at (config first, then layers/manifests)."""
    out = []
    if "config" in document:
        out.append(Descriptor.from_json(document["config"]))
    out.extend(Descriptor.from_json(d) for d in document.get("layers", []))
    out.extend(Descriptor.from_json(d) for d in document.get("manifests", []))
    return out


def copy_blob(source: OciLayout, descriptor: Descriptor, target: OciLayout) -> None:
    """Stream one blob across, checking its digest and size; already there intact → nothing to
    do (a damaged copy there is replaced)."""
    if target.check_blob(descriptor.digest, descriptor.size) is None:
        return
    path = source.blob_path(descriptor.digest)
    if not path.exists():
        raise IntegrityError(f"{source.root}: blob {descriptor.digest} is missing")
    try:
        with path.open("rb") as handle, target.blob_writer(expected_digest=descriptor.digest) as writer:
            while chunk := handle.read(CHUNK):
                writer.write(chunk)
    except IntegrityError:
        raise IntegrityError(
            f"{source.root}: blob {descriptor.digest} is corrupt (its bytes do not match); {source.recovery}"
        ) from None
    if writer.size != descriptor.size:
        raise IntegrityError(
            f"{source.root}: blob {descriptor.digest} is {writer.size} bytes, its descriptor says {descriptor.size}"
        )


def copy_tree(source: OciLayout, descriptor: Descriptor, target: OciLayout) -> None:
    """Copy `descriptor` and everything under it; children go first, the root last."""
    if descriptor.media_type in media.MANIFESTS_AND_INDEXES:
        document = source.read_json(descriptor.digest)
        for child in children(document):
            copy_tree(source, child, target)
    copy_blob(source, descriptor, target)
