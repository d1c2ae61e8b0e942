"""A Dockerfile built by buildkitd's own dockerfile frontend (dockerfile.v0), crossyard's side:
the context and the Dockerfile's directory uploaded through a session (filesync), build args and
platforms as buildx passes them, SOURCE_DATE_EPOCH with rewrite-timestamp so the same inputs
give the same image bytes, and the result exported as an OCI archive through the same session
and imported into an OCI layout (crossyard's store), every blob checked against its digest.

Progress: buildkitd's Status stream for the solve, as `Step` values (one per vertex change and
per log chunk), to whatever `progress` callback the caller gives (a job log, the live view).
"""

from __future__ import annotations

import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ..annotations import ANNOTATION_COMPRESSOR
from ..errors import CrossyardError, IntegrityError
from ..hashing import sha256_file
from ..oci import media
from ..oci.archive import safe_extract
from ..oci.copy import copy_tree
from ..oci.layout import Descriptor, OciLayout
from ..platforms import Platform, platform_label
from .client import BuildKitError, Client
from .session import Session

FRONTEND: Final = "dockerfile.v0"
DIGEST_KEY: Final = "containerimage.digest"  # the exporter's answer: what it exported


@dataclass(frozen=True, kw_only=True)
class DockerfileSolve:
    """What to build: `dockerfile` (relative to `dockerfile_dir`) on `context`, for `platforms`
    (several: one solve, an image index). `named_contexts`: local directories the Dockerfile
    reaches as `FROM name` / `COPY --from=name`, by (name, platform): one per platform, which is
    how one solve gives each platform its own files (a build context is one for all)."""

    context: Path
    dockerfile_dir: Path
    dockerfile: str = "Dockerfile"
    platforms: tuple[Platform, ...]
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    source_date_epoch: int = 0
    named_contexts: Mapping[tuple[str, Platform], Path] = field(default_factory=dict)

    def local_dirs(self) -> dict[str, Path]:
        """What the session serves, by the name the frontend asks for."""
        dirs = {"context": self.context, "dockerfile": self.dockerfile_dir}
        dirs.update({_local_name(name, platform): path for (name, platform), path in self.named_contexts.items()})
        return dirs

    def frontend_attrs(self) -> dict[str, str]:
        attrs = {"filename": self.dockerfile, "platform": ",".join(p.oci for p in self.platforms)}
        attrs.update({f"build-arg:{k}": v for k, v in sorted(self.build_args.items())})
        # `context:NAME::PLATFORM`: the frontend looks a named context up for the platform it is
        # building first, then by name alone (dockerui's NamedContext).
        attrs.update({f"context:{name}::{platform.oci}": f"local:{_local_name(name, platform)}"
                      for (name, platform) in sorted(self.named_contexts, key=lambda k: (k[0], k[1].oci))})
        # what buildx does with SOURCE_DATE_EPOCH in the environment: a build arg, which the
        # frontend also uses for the image's created time and history
        attrs["build-arg:SOURCE_DATE_EPOCH"] = str(self.source_date_epoch)
        if self.target:
            attrs["target"] = self.target
        return attrs


@dataclass(frozen=True, kw_only=True)
class Step:
    """A line of progress: a vertex (BuildKit's `#N` step) that started, finished, was cached or
    failed, or a chunk of its log."""

    vertex: str  # its digest
    name: str  # "[linux/riscv64 2/3] RUN make"
    state: str  # started | done | cached | error | log
    text: str = ""  # the error, or the log chunk


@dataclass(frozen=True, kw_only=True)
class Exported:
    descriptor: Descriptor  # the image index (or manifest, for one platform) in the layout
    exporter_response: Mapping[str, str]
    archive_size: int


# rewrite-timestamp: layer files' times clamped to SOURCE_DATE_EPOCH, as buildx's
# `--output type=oci,rewrite-timestamp=true`; the frontend dates the config from the build arg.
OCI_EXPORTER_ATTRS: Final = {"rewrite-timestamp": "true"}


def build(client: Client, solve: DockerfileSolve, into: OciLayout, *,
          progress: Callable[[Step], None] | None = None) -> Exported:
    """Solve `solve` on `client`'s buildkitd and import the image into `into`."""
    with tempfile.TemporaryDirectory(prefix="crossyard-buildkit-") as tmp:
        archive = Path(tmp) / "image.tar"
        response = solve_to_archive(client, solve, archive, progress=progress)
        descriptor = import_archive(archive, into, expected=response.get(DIGEST_KEY))
        return Exported(descriptor=descriptor, exporter_response=response, archive_size=archive.stat().st_size)


def solve_to_archive(client: Client, solve: DockerfileSolve, archive: Path, *,
                     progress: Callable[[Step], None] | None = None, ref: str = "") -> dict[str, str]:
    """Solve `solve` on `client`'s buildkitd, the OCI archive written to `archive` through the
    session (not checked yet: `import_archive` does); what the exporter answered. `ref` names
    the solve in buildkitd's status and build history (default: a random one)."""
    ref = ref or uuid.uuid4().hex
    with Session(client, dirs=solve.local_dirs(), outputs={0: archive}) as session:
        watcher = _watch(client, ref, progress) if progress is not None else None
        try:
            response = client.solve(
                exporter="oci", attrs=OCI_EXPORTER_ATTRS, frontend=FRONTEND,
                frontend_attrs=solve.frontend_attrs(), session=session.id, ref=ref)
        except BuildKitError as error:
            raise BuildKitError(f"{error}{_session_errors(session)}") from None
        finally:
            if watcher is not None:
                watcher.join(timeout=10)
        if not archive.is_file():
            raise BuildKitError(f"buildkitd at {client.address} exported nothing through the session"
                                f"{_session_errors(session)}")
    return response


def import_archive(archive: Path, into: OciLayout, *, expected: str | None = None) -> Descriptor:
    """The image an OCI archive holds (its index.json's one entry), copied into `into` with every
    blob checked; `expected`: the digest buildkitd said it exported."""
    with tempfile.TemporaryDirectory(prefix="crossyard-oci-import-") as tmp:
        safe_extract(archive, Path(tmp))
        source = OciLayout(Path(tmp), recovery="build it again")
        entries = source.manifests()
        if len(entries) != 1:
            raise IntegrityError(f"{archive}: an OCI archive from BuildKit should name one image, it names {len(entries)}")
        [root] = entries
        if root.media_type not in media.MANIFESTS_AND_INDEXES:
            raise IntegrityError(f"{archive}: its image is a {root.media_type}, not a manifest or index")
        if expected and root.digest != expected:
            raise IntegrityError(f"{archive}: holds {root.digest}, but buildkitd exported {expected}")
        for blob in source.blob_files():  # before anything is copied: a damaged archive adds nothing
            actual = sha256_file(blob)
            if actual != f"sha256:{blob.name}":
                raise IntegrityError(
                    f"{archive}: blob sha256:{blob.name} does not match its digest (its bytes hash to "
                    f"{actual}): the export was damaged on the way; nothing was stored, build it again")
        copy_tree(source, root, into)
        return Descriptor(media_type=root.media_type, digest=root.digest, size=root.size)


def _watch(client: Client, ref: str, progress: Callable[[Step], None]) -> threading.Thread:
    def run() -> None:
        seen: dict[str, str] = {}
        try:
            for status in client.status(ref):
                for step in steps(status, seen):
                    progress(step)
        except CrossyardError:
            return  # progress is a view: a broken stream must not fail the build

    thread = threading.Thread(target=run, daemon=True, name=f"buildkit-status-{ref[:8]}")
    thread.start()
    return thread


def steps(status: Any, seen: dict[str, str]) -> list[Step]:
    """The changes one StatusResponse brings; `seen` (vertex → last state) drops repeats."""
    out = []
    names = {}
    for vertex in status.vertexes:
        names[vertex.digest] = vertex.name
        state = ("error" if vertex.error else "cached" if vertex.cached
                 else "done" if vertex.HasField("completed") else
                 "started" if vertex.HasField("started") else "")
        if state == "started" and seen.get(vertex.digest) in ("done", "cached", "error"):
            continue  # a late copy of the vertex: it ended already
        if state and seen.get(vertex.digest) != state:
            seen[vertex.digest] = state
            out.append(Step(vertex=vertex.digest, name=vertex.name, state=state, text=vertex.error))
    for log in status.logs:
        text = log.msg.decode("utf-8", "replace")
        if text:
            out.append(Step(vertex=log.vertex, name=names.get(log.vertex, ""), state="log", text=text))
    return out


def _local_name(name: str, platform: Platform) -> str:
    return f"{name}-{platform.slug}"


def _session_errors(session: Session) -> str:
    return "".join(f"\n  session: {e}" for e in session.errors)


def import_platform_image(archive: Path, into: OciLayout, *, platform: Platform, expected: str | None,
                          annotations: Mapping[str, str], compressor: str) -> Descriptor:
    """The one `platform` image a single-platform solve exported (`archive`), imported into
    `into` (every blob checked) and its manifest written again with crossyard's `annotations`
    (recipe, input key, toolchain…), as the legacy builder's images are, each layer marked with
    its `compressor` (buildkitd's gzip): the descriptor of that manifest, not yet recorded in the
    layout's index. The config and layer blobs stay BuildKit's."""
    root = import_archive(archive, into, expected=expected)
    digest = root.digest
    if root.media_type in media.INDEXES:
        entries = into.read_json(root.digest).get("manifests", [])
        ours = [e for e in entries if platform_label(e.get("platform") or {}) == platform.oci]
        if len(ours) != 1:
            raise IntegrityError(f"{archive}: BuildKit exported {len(entries)} images, {len(ours)} for {platform}")
        digest = ours[0]["digest"]
    manifest = into.read_json(digest)
    config = into.read_json(manifest["config"]["digest"])
    built = platform_label(config)
    if built != platform.oci:
        raise IntegrityError(f"{archive}: buildkitd produced a {built} image where {platform.oci} was asked for")
    manifest["annotations"] = {**(manifest.get("annotations") or {}), **annotations}
    for layer in manifest.get("layers", []):  # what made each blob: the lock records it per layer
        layer["annotations"] = {**(layer.get("annotations") or {}), ANNOTATION_COMPRESSOR: compressor}
    manifest["mediaType"] = media.MANIFEST
    return into.write_json(manifest, media.MANIFEST, platform=dict(platform.oci_platform))
