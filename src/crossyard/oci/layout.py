"""An OCI image layout on disk: `oci-layout`, `index.json`, `blobs/sha256/…`.

Blobs are written streaming (never whole in memory), digested on the way in, and moved into
place atomically; `index.json` is replaced atomically under an exclusive lock, so concurrent
writers (parallel jobs, two crossyard processes) never lose each other's entries.

Reads trust nothing on disk: a blob read whole is hashed, `check_blob` hashes one streaming, and
an `index.json` that is not a valid index is a `ConfigurationError` naming it and the way back
(`recovery`), never a traceback. A full disk while writing is a `StorageError` naming the
filesystem; the temp file is removed and the index is left as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from ..errors import ConfigurationError, IntegrityError, StorageError
from ..fsutil import atomic_write_bytes
from ..hashing import CHUNK, canonical_json, split_digest
from . import media

LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
INCOMING_PREFIX = ".incoming-"  # blobs being written; a crash can leave one behind


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
    """Read and write one OCI image layout directory. `recovery` ends every message about a
    damaged blob in it, `index_recovery` one about a damaged index.json: how to get back to a
    good state (the store names crossyard's commands)."""

    def __init__(self, root: Path, *, recovery: str = "", index_recovery: str = "") -> None:
        self.root = root
        self.recovery = recovery or f"restore {root} from where it came, or remove it"
        self.index_recovery = index_recovery or self.recovery

    # -- structure --------------------------------------------------------------------------
    @property
    def blobs_dir(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def index_path(self) -> Path:
        return self.root / "index.json"

    def ensure(self) -> OciLayout:
        with disk_space(self.root):
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
        try:
            data = self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise IntegrityError(f"{self.root}: blob {digest} is missing; {self.recovery}") from None
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise IntegrityError(
                f"{self.root}: blob {digest} is corrupt (its bytes do not match); {self.recovery}"
            )
        return data

    def read_json(self, digest: str) -> dict[str, Any]:
        data = self.read_blob(digest)
        try:
            value = json.loads(data)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise IntegrityError(f"{self.root}: blob {digest} is not a JSON document; {self.recovery}")
        return value

    def check_blob(self, digest: str, size: int | None = None) -> str | None:
        """What is wrong with a blob (missing, wrong size, bytes that hash to another digest),
        or None when it is intact. Streams: any size costs constant memory."""
        path = self.blob_path(digest)
        try:
            with path.open("rb") as handle:
                actual = os.fstat(handle.fileno()).st_size
                if size is not None and actual != size:
                    return f"is {actual} bytes, its descriptor says {size}"
                hasher = hashlib.sha256()
                while chunk := handle.read(CHUNK):
                    hasher.update(chunk)
        except FileNotFoundError:
            return "is missing"
        if "sha256:" + hasher.hexdigest() != digest:
            return f"is corrupt: its bytes hash to sha256:{hasher.hexdigest()}"
        return None

    def require_blob(self, digest: str, size: int | None = None) -> Path:
        """The blob's path, after checking its bytes; an `IntegrityError` otherwise."""
        problem = self.check_blob(digest, size)
        if problem is not None:
            raise IntegrityError(f"{self.root}: blob {digest} {problem}; {self.recovery}")
        return self.blob_path(digest)

    def blob_files(self) -> list[Path]:
        """Every file in blobs/sha256 (blobs and temp files of writes in progress)."""
        if not self.blobs_dir.is_dir():
            return []
        return sorted(p for p in self.blobs_dir.iterdir() if p.is_file())

    @contextlib.contextmanager
    def blob_writer(self, *, expected_digest: str | None = None) -> Iterator[BlobWriter]:
        """Stream bytes in; on success the blob is moved to its content address (replacing a
        damaged copy there). On any failure, a full disk included, the temp file is removed."""
        tmp = ""
        try:
            with disk_space(self.blobs_dir):
                self.blobs_dir.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=self.blobs_dir, prefix=INCOMING_PREFIX)
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
            if tmp:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)

    def write_blob(self, data: bytes, media_type: str, **extra: Any) -> Descriptor:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        # A copy already there is reused only when intact (these blobs are small: manifests,
        # configs), so writing a blob again is also how a damaged one is repaired. Reusing it
        # touches it: `store gc` spares blobs touched while it runs.
        if self.check_blob(digest, len(data)) is None:
            with contextlib.suppress(OSError):
                os.utime(self.blob_path(digest))
        else:
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
        """index.json, checked to be an image index whose entries are descriptors."""
        try:
            data = self.index_path.read_bytes()
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": media.INDEX, "manifests": []}
        problem = index_problem(data)
        if problem is not None:
            raise ConfigurationError(f"{self.index_path} {problem}; {self.index_recovery}")
        value: dict[str, Any] = json.loads(data)
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
        with disk_space(self.root):
            atomic_write_bytes(self.index_path, json.dumps(index, indent=2, sort_keys=True).encode() + b"\n")


def index_problem(data: bytes) -> str | None:
    """What makes `data` not a usable index.json (empty, not JSON, entries that are not
    descriptors), or None."""
    if not data.strip():
        return "is empty"
    try:
        value = json.loads(data)
    except ValueError as error:
        return f"is not valid JSON ({error})"
    if not isinstance(value, dict) or not isinstance(value.get("manifests", []), list):
        return "is not an OCI image index (no `manifests` list)"
    for i, entry in enumerate(value.get("manifests", [])):
        try:
            descriptor = Descriptor.from_json(entry)
            split_digest(descriptor.digest)
        except (KeyError, TypeError, ValueError, AttributeError):
            return f"has a broken entry (manifests[{i}] is not a descriptor with a sha256 digest)"
    return None


_FULL: Final = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def disk_space(path: Path) -> Iterator[None]:
    """Turn "no space left on device" (or an exceeded quota) while writing under `path` into a
    `StorageError` that names the filesystem and how much room it has."""
    try:
        yield
    except OSError as error:
        if error.errno not in _FULL:
            raise
        mount = _mount_point(path)
        try:
            stats = os.statvfs(mount)
            room = f"{stats.f_bavail * stats.f_frsize} of {stats.f_blocks * stats.f_frsize} bytes free"
        except OSError:
            room = "free space unknown"
        raise StorageError(
            f"no space left writing {path}: the filesystem mounted on {mount} is full ({room}); "
            "free space there (or move the workspace to a bigger disk) and run again; "
            "nothing half-written was kept"
        ) from None


def _mount_point(path: Path) -> Path:
    current = path.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    while not os.path.ismount(current) and current != current.parent:
        current = current.parent
    return current
