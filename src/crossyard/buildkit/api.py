"""BuildKit's gRPC API, compiled from BuildKit's own .proto files on first use in a workspace.

When and from what: the first time a workspace needs the API, its .proto files are taken
from Debian trixie's verified source packages (`crossyard.debsource`: signed InRelease, Sources
index, sha256 of every file; each package pinned here by its .dsc's sha256):
- docker.io 26.1.5+dfsg1-9 (its orig-buildkit component, the tree crossyard builds buildkitd
  from, so client and daemon share one API): control.proto, worker.proto, ops.proto, policy.proto,
  filesync.proto, and fsutil's wire.proto and stat.proto from its vendor/ tree (the session's
  file transfer);
- golang-gogoprotobuf 1.3.2-3: gogoproto/gogo.proto (field options the BuildKit files use);
- golang-github-gogo-googleapis 1.4.0-2: google/rpc/status.proto.
grpcio-tools' protoc compiles them (with the google/protobuf/*.proto it ships) into one
FileDescriptorSet: every message, enum and service, as the `_pb2` modules embed it. Nothing is
generated as Python source: those modules would be named after the import paths
(`github.com.moby…`, not importable) and add nothing the descriptors lack; message classes are
made from the descriptors at run time (`crossyard.buildkit.client`).

Not at package build: installing crossyard must not need a Debian mirror, and the API follows
the pinned daemon source, not crossyard's wheel. The set is cached under the workspace's cache
by a digest of what it is made from (the pins, the proto paths, protoc's version), with its own
sha256 beside it, compared each time it is read: a warm workspace needs no network or unpack.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Final

from ..debsource import DebianArchive
from ..errors import ConfigurationError, CrossyardError, IntegrityError
from ..fsutil import atomic_write_bytes, atomic_write_text

SUITE: Final = "trixie"


@dataclass(frozen=True, kw_only=True)
class ProtoSource:
    """A Debian source package and the .proto files taken from it: import path → file in it."""

    package: str
    version: str
    dsc_sha256: str
    files: tuple[tuple[str, str], ...]


SOURCES: Final = (
    ProtoSource(
        package="docker.io", version="26.1.5+dfsg1-9",
        dsc_sha256="12726d2cb8ba6e92eb4e2d4833a8838cd07397385b1fb060ff05a8dea9c7645f",
        files=(*((f"github.com/moby/buildkit/{p}", f"buildkit/{p}") for p in (
            "api/services/control/control.proto", "api/types/worker.proto", "solver/pb/ops.proto",
            "sourcepolicy/pb/policy.proto", "session/filesync/filesync.proto",
        )),
            # fsutil's wire format for filesync (its Packet imports "stat.proto" by bare name)
            ("github.com/tonistiigi/fsutil/types/wire.proto",
             "buildkit/vendor/github.com/tonistiigi/fsutil/types/wire.proto"),
            ("stat.proto", "buildkit/vendor/github.com/tonistiigi/fsutil/types/stat.proto"),
        ),
    ),
    ProtoSource(
        package="golang-gogoprotobuf", version="1.3.2-3",
        dsc_sha256="ab6e3ae8764b3cea0ba7f3d14eb2279886c70845557aa987451e20a942c51486",
        files=(("github.com/gogo/protobuf/gogoproto/gogo.proto", "gogoproto/gogo.proto"),),
    ),
    ProtoSource(
        package="golang-github-gogo-googleapis", version="1.4.0-2",
        dsc_sha256="bf41c178149e628c8bd20b390607e1391e198a08f9428767d8397277afeb6fbf",
        files=(("github.com/gogo/googleapis/google/rpc/status.proto", "google/rpc/status.proto"),),
    ),
)
# What the client calls (Control) and serves in a session (FileSync, FileSend); the others
# (worker.proto, ops.proto, wire.proto, …) come in as their imports.
ROOT_PROTOS: Final = (
    "github.com/moby/buildkit/api/services/control/control.proto",
    "github.com/moby/buildkit/session/filesync/filesync.proto",
)
ORIGIN: Final = "BuildKit API"


def descriptor_set(cache_dir: Path, mirror: Callable[[], str]) -> Path:
    """The compiled API (a serialized FileDescriptorSet) in `cache_dir`, made if missing.
    `mirror` (the workspace's Debian mirror) is asked only when the sources must be fetched."""
    protoc = _protoc_version()
    key = hashlib.sha256(json.dumps({
        "sources": [[s.package, s.version, s.dsc_sha256, list(map(list, s.files))] for s in SOURCES],
        "suite": SUITE, "grpcio-tools": protoc,
    }, sort_keys=True).encode()).hexdigest()
    target = cache_dir / "buildkit-api" / f"{key}.binpb"
    stamp = target.with_suffix(".sha256")
    if target.is_file() and stamp.is_file():
        recorded, actual = stamp.read_text().strip(), hashlib.sha256(target.read_bytes()).hexdigest()
        if actual == recorded:
            return target
        target.unlink(missing_ok=True)
        stamp.unlink(missing_ok=True)
        raise IntegrityError(
            f"{ORIGIN}: the compiled API {target} changed since it was made (sha256 {actual}, not "
            f"{recorded}); it was removed: run again to compile it afresh"
        )
    archive = DebianArchive(cache_dir, mirror)
    with tempfile.TemporaryDirectory(prefix="crossyard-buildkit-api-") as tmp:
        include = Path(tmp) / "include"
        for source in SOURCES:
            tree = archive.unpack(package=source.package, suite=SUITE, version=source.version,
                                  pin=source.dsc_sha256, origin=ORIGIN).tree
            for import_path, inside in source.files:
                place = include / import_path
                place.parent.mkdir(parents=True, exist_ok=True)
                try:
                    shutil.copyfile(tree / inside, place)
                except FileNotFoundError:
                    raise CrossyardError(
                        f"{ORIGIN}: {source.package} {source.version} has no {inside}"
                    ) from None
        out = Path(tmp) / "api.binpb"
        result = subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", f"-I{include}", f"-I{_protoc_include()}",
             "--include_imports", f"--descriptor_set_out={out}", *ROOT_PROTOS],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise CrossyardError(
                f"{ORIGIN}: protoc (grpcio-tools {protoc}) could not compile BuildKit's .proto files "
                f"(exit {result.returncode}):\n{result.stderr.strip()}"
            )
        data = out.read_bytes()
    atomic_write_bytes(target, data)
    atomic_write_text(stamp, hashlib.sha256(data).hexdigest() + "\n")
    return target


def _protoc_version() -> str:
    try:
        return metadata.version("grpcio-tools")
    except metadata.PackageNotFoundError:
        raise ConfigurationError(
            f"{ORIGIN}: compiling BuildKit's .proto files needs grpcio-tools: pip install grpcio-tools "
            "(a dependency of crossyard: reinstall it)"
        ) from None


def _protoc_include() -> Path:
    """The google/protobuf/*.proto files grpcio-tools ships (descriptor, timestamp, any)."""
    import grpc_tools  # imported here: only compiling needs it

    return Path(grpc_tools.__file__).parent / "_proto"
