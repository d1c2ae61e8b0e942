"""An OCI image layout on disk: `oci-layout`, `index.json`, `blobs/sha256/…`.

Blobs are written streaming (never whole in memory), digested on the way in, and moved into
place atomically; `index.json` is replaced atomically under an exclusive lock, so concurrent
writers (parallel jobs, two crossyard processes) never lose each other's entries.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import IntegrityError
from ..fsutil import atomic_write_bytes
from ..hashing import CHUNK, canonical_json, split_digest
from . import media

LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}


@dataclass(frozen=True, kw_only=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] | None = None
    platform: dict[str, str] | None = None
    artifact_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.platform:
            out["platform"] = dict(self.platform)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Descriptor:
        return cls(
            media_type=data["mediaType"],
            digest=data["digest"],
            size=int(data["size"]),
            annotations=data.get("annotations"),
            platform=data.get("platform"),
            artifact_type=data.get("artifactType"),
        )

    def with_(self, **changes: Any) -> Descriptor:
        return dataclasses.replace(self, **changes)


@dataclass
class BlobWriter:
    """A file being written into the layout; its digest is known only when it is closed."""

    handle: IO[bytes]
    _hash: Any = field(default_factory=hashlib.sha256)
    size: int = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        self.handle.write(data)
        return len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + str(self._hash.hexdigest())


class OciLayout:
    """Read and write one OCI image layout directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- structure --------------------------------------------------------------------------
    @property
    def blobs_dir(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def index_path(self) -> Path:
        return self.root / "index.json"

    def ensure(self) -> OciLayout:
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        marker = self.root / "oci-layout"
        if not marker.exists():
            atomic_write_bytes(marker, canonical_json(LAYOUT_VERSION))
        if not self.index_path.exists():
            self._write_index({"schemaVersion": 2, "mediaType": media.INDEX, "manifests": []})
        return self

    # -- blobs ------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        _, hexpart = split_digest(digest)
        return self.blobs_dir / hexpart

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).exists()

    def read_blob(self, digest: str) -> bytes:
        data = self.blob_path(digest).read_bytes()
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise IntegrityError(f"{self.root}: blob {digest} is corrupt (its bytes do not match)")
        return data

    def read_json(self, digest: str) -> dict[str, Any]:
        value = json.loads(self.read_blob(digest))
        assert isinstance(value, dict)
        return value

    @contextlib.contextmanager
    def blob_writer(self, *, expected_digest: str | None = None) -> Iterator[BlobWriter]:
        """Stream bytes in; on success the blob is moved to its content address."""
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.blobs_dir, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as handle:
                writer = BlobWriter(handle)
                yield writer
                handle.flush()
                os.fsync(handle.fileno())
            if expected_digest is not None and writer.digest != expected_digest:
                raise IntegrityError(
                    f"blob digest mismatch: expected {expected_digest}, got {writer.digest}"
                )
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.blob_path(writer.digest))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def write_blob(self, data: bytes, media_type: str, **extra: Any) -> Descriptor:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if not self.has_blob(digest):
            with self.blob_writer() as writer:
                writer.write(data)
        return Descriptor(media_type=media_type, digest=digest, size=len(data), **extra)

    def write_json(self, value: dict[str, Any], media_type: str, **extra: Any) -> Descriptor:
        return self.write_blob(canonical_json(value), media_type, **extra)

    def import_file(self, path: Path, media_type: str, **extra: Any) -> Descriptor:
        with path.open("rb") as source, self.blob_writer() as writer:
            shutil.copyfileobj(source, writer, CHUNK)
        return Descriptor(media_type=media_type, digest=writer.digest, size=writer.size, **extra)

    # -- index ------------------------------------------------------------------------------
    def read_index(self) -> dict[str, Any]:
        if not self.index_path.exists():
            return {"schemaVersion": 2, "mediaType": media.INDEX, "manifests": []}
        value = json.loads(self.index_path.read_bytes())
        assert isinstance(value, dict)
        return value

    def manifests(self) -> list[Descriptor]:
        return [Descriptor.from_json(d) for d in self.read_index().get("manifests", [])]

    def update_index(self, change: Callable[[list[Descriptor]], list[Descriptor]]) -> None:
        """Apply `change` to the index's manifest list under an exclusive lock."""
        self.ensure()
        lock_path = self.root / ".index.lock"
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            index = self.read_index()
            current = [Descriptor.from_json(d) for d in index.get("manifests", [])]
            index["manifests"] = [d.to_json() for d in change(current)]
            self._write_index(index)

    def _write_index(self, index: dict[str, Any]) -> None:
        atomic_write_bytes(self.index_path, json.dumps(index, indent=2, sort_keys=True).encode() + b"\n")
