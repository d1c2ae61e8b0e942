"""Image bases: what an image's own layer goes on top of.

- `scratch`: nothing.
- `crossyard/static`: a distroless/static-like root crossyard generates: a CA bundle at
  /etc/ssl/certs/ca-certificates.crt (the Mozilla set crossyard ships, or CROSSYARD_CA_BUNDLE;
  its digest is recorded on every manifest built on it and in the lock: the bundle is an input
  like any other), /etc/passwd and /etc/group with root,
  nobody and nonroot (65532), /etc/nsswitch.conf, /tmp (1777), /root and /home/nonroot (0700).
- `recipe:NAME`: another image recipe's output, for the same platform.
- `oci-layout:DIR[:REF]` and `oci-archive:TAR[:REF]`: an image on disk; the manifest for the
  platform is picked from its index and every blob is verified as it is copied into the store.
- `HOST/REPO@sha256:…`: a registry base, pulled by `crossyard.registry.pull_base.pull_base`.

`identity()` is cheap and writes nothing (it goes in the image key, before any work);
`materialize()` copies or generates the base's blobs into the store and returns its layers.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from ..annotations import (
    ANNOTATION_BASE,
    ANNOTATION_BASE_DIGEST,
    ANNOTATION_CA_BUNDLE,
    ANNOTATION_COMPRESSOR,
)
from ..errors import ConfigurationError
from ..hashing import sha256_file, sha256_json
from ..oci import media
from ..oci.archive import safe_extract
from ..oci.copy import copy_blob
from ..oci.image import rfc3339
from ..oci.layer import Layer, LayerEntry, compressor_identity, write_layer
from ..oci.layout import Descriptor, OciLayout
from ..platforms import Platform, platform_label
from ..recipes import BaseRef
from ..reference import Reference
from ..workspace import Workspace

STATIC_VERSION: Final = 1
# Mozilla's CA set as Debian ships it (ca-certificates 20250419~deb12u2, bookworm: the
# /usr/share/ca-certificates/mozilla/*.crt files concatenated in name order; `nox -s ca_bundle`
# refreshes it). Shipped rather than read from the host: a host's /etc/ssl also holds its local
# and proxy CAs, which do not belong in an image and would make its digest machine-dependent.
CA_BUNDLE: Final = Path(__file__).resolve().parent.parent / "data" / "ca-certificates.crt"
CA_BUNDLE_PATH_IN_IMAGE: Final = "etc/ssl/certs/ca-certificates.crt"
DEFAULT_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NONROOT: Final = 65532
PASSWD: Final = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
    f"nonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n"
)
GROUP: Final = f"root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:{NONROOT}:\n"
NSSWITCH: Final = "hosts: files dns\n"

DOCKER_LAYER_TYPES: Final = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": media.LAYER_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar": media.LAYER_TAR,
}


@dataclass(frozen=True, kw_only=True)
class BaseImage:
    """A base for one platform, its blobs in the store."""

    layers: tuple[Layer, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)  # the base's `config` section (Env, User…)
    history: tuple[Mapping[str, Any], ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)  # put on the manifests built on it


def ca_bundle_path() -> Path:
    """The CA bundle the static base carries: CROSSYARD_CA_BUNDLE (e.g. one with the cluster's
    own CA), else the one crossyard ships."""
    override = os.environ.get("CROSSYARD_CA_BUNDLE")
    return Path(override) if override else CA_BUNDLE


def _registry_base(workspace: Path, base: Reference, into: OciLayout) -> Descriptor:
    """Pull a registry base (pinned by digest) into the store, its whole tree, digests checked."""
    from ..registry.pull_base import pull_base  # imports the HTTP client: only when asked

    return pull_base(Workspace(root=workspace), base, into=into)


def _matches(found: Mapping[str, Any] | None, platform: Platform) -> bool:
    if not found:
        return False
    if found.get("os") != platform.os or found.get("architecture") != platform.architecture:
        return False
    variant = found.get("variant")
    return variant is None or platform.variant is None or variant == platform.variant


class BaseResolver:
    """Resolves bases for one build; holds temp dirs of extracted archives (a context manager)."""

    def __init__(self, *, workspace: Path, store: OciLayout, assembled: Mapping[str, Mapping[str, Descriptor]]) -> None:
        self.workspace = workspace
        self.store = store
        self.assembled = assembled  # image recipe → platform → manifest descriptor (filled as images are built)
        self._stack = contextlib.ExitStack()
        self._layouts: dict[str, OciLayout] = {}
        self._ca_digest: str | None = None

    def __enter__(self) -> BaseResolver:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._stack.close()

    # -- identity (cheap, writes nothing) -------------------------------------------------------
    def check(self, base: BaseRef, *, file: Path) -> None:
        """Fail early, naming the recipe file, when a base cannot be found at all."""
        if base.kind == "static":
            self._ca(file)
        elif base.kind in ("oci-layout", "oci-archive"):
            self._layout(base, file)

    def identity(self, base: BaseRef, platform: Platform, *, file: Path) -> str:
        if base.kind == "scratch":
            return "scratch"
        if base.kind == "static":
            return sha256_json({"static": STATIC_VERSION, "ca_bundle": self._ca(file),
                                "compressor": compressor_identity("gzip")})
        if base.kind == "recipe":
            return self.assembled[base.value][platform.oci].digest
        if base.kind == "registry":
            return f"{base.value}@{base.ref}#{platform.oci}"
        layout = self._layout(base, file)
        return self._pick(layout, base, platform, file).digest

    def _ca(self, file: Path) -> str:
        if self._ca_digest is None:
            path = ca_bundle_path()
            if not path.is_file():
                raise ConfigurationError(
                    f"{file}: base `crossyard/static` carries the CA bundle {path}, which does not exist; "
                    "set CROSSYARD_CA_BUNDLE to a PEM bundle (or unset it for the one crossyard ships)"
                )
            self._ca_digest = sha256_file(path)
        return self._ca_digest

    def _layout(self, base: BaseRef, file: Path) -> OciLayout:
        key = f"{base.kind}:{base.value}"
        if key in self._layouts:
            return self._layouts[key]
        path = Path(base.value)
        if not path.is_absolute():
            path = self.workspace / path
        if base.kind == "oci-layout":
            if not (path / "index.json").is_file():
                raise ConfigurationError(
                    f"{file}: [image] base `{base.text}`: {path} is not an OCI image layout (no index.json); "
                    "fix the path (relative to the workspace) or create it with `skopeo copy … oci:DIR:REF`"
                )
            layout = OciLayout(path)
        else:
            if not path.is_file():
                raise ConfigurationError(
                    f"{file}: [image] base `{base.text}`: {path} does not exist; fix the path (relative to "
                    "the workspace) or create it with `skopeo copy … oci-archive:FILE:REF`"
                )
            tmp = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="crossyard-base-")))
            safe_extract(path, tmp)
            if not (tmp / "index.json").is_file():
                raise ConfigurationError(f"{file}: [image] base `{base.text}`: {path} has no index.json (not an oci-archive)")
            layout = OciLayout(tmp)
        self._layouts[key] = layout
        return layout

    def _pick(self, layout: OciLayout, base: BaseRef, platform: Platform, file: Path) -> Descriptor:
        """The platform's manifest in `layout`, following the ref (or the only entry) and indexes."""
        entries = layout.manifests()
        if base.ref is not None:
            named = [d for d in entries if (d.annotations or {}).get(media.ANNOTATION_REF_NAME) == base.ref]
            if not named:
                refs = sorted(str((d.annotations or {}).get(media.ANNOTATION_REF_NAME)) for d in entries)
                raise ConfigurationError(
                    f"{file}: [image] base `{base.text}`: no ref `{base.ref}` in {layout.root}; it has: "
                    f"{', '.join(refs) or '(nothing)'}"
                )
            entries = named[:1]
        elif len(entries) != 1:
            refs = sorted(str((d.annotations or {}).get(media.ANNOTATION_REF_NAME)) for d in entries)
            raise ConfigurationError(
                f"{file}: [image] base `{base.text}` holds {len(entries)} images; add `:REF` (one of: "
                f"{', '.join(refs) or '(none)'})"
            )
        return self._platform_manifest(layout, entries[0], base, platform, file)

    def _platform_manifest(
        self, layout: OciLayout, entry: Descriptor, base: BaseRef, platform: Platform, file: Path
    ) -> Descriptor:
        if entry.media_type in media.INDEXES:
            index = layout.read_json(entry.digest)
            for child in (Descriptor.from_json(d) for d in index.get("manifests", [])):
                if _matches(child.platform, platform) and child.media_type in media.IMAGE_MANIFESTS:
                    return child
            have = ", ".join(
                platform_label(d.get("platform"))
                for d in index.get("manifests", [])
            )
            raise ConfigurationError(f"{file}: [image] base `{base.text}` has no {platform} image (it has: {have})")
        if entry.media_type not in media.IMAGE_MANIFESTS:
            raise ConfigurationError(f"{file}: [image] base `{base.text}` is a {entry.media_type}, not an image")
        manifest = layout.read_json(entry.digest)
        config = layout.read_json(manifest["config"]["digest"])
        if not _matches(config, platform):
            raise ConfigurationError(
                f"{file}: [image] base `{base.text}` is a {platform_label(config)} image, "
                f"not {platform}"
            )
        return entry

    # -- materialize (writes blobs into the store; never the index) ----------------------------
    def materialize(self, base: BaseRef, platform: Platform, *, file: Path) -> BaseImage:
        if base.kind == "scratch":
            return BaseImage()
        if base.kind == "static":
            return self._static(platform, file)
        if base.kind == "recipe":
            descriptor = self.assembled[base.value][platform.oci]
            return self._from_manifest(self.store, descriptor, base)
        if base.kind == "registry":
            assert base.registry is not None
            root = _registry_base(self.workspace, base.registry, self.store)
            descriptor = self._platform_manifest(self.store, root, base, platform, file)
            return self._from_manifest(self.store, descriptor, base)
        layout = self._layout(base, file)
        descriptor = self._pick(layout, base, platform, file)
        return self._from_manifest(layout, descriptor, base)

    def _static(self, platform: Platform, file: Path) -> BaseImage:
        ca_digest = self._ca(file)
        entries = [
            LayerEntry(path="etc/passwd", source=PASSWD.encode()),
            LayerEntry(path="etc/group", source=GROUP.encode()),
            LayerEntry(path="etc/nsswitch.conf", source=NSSWITCH.encode()),
            LayerEntry(path=CA_BUNDLE_PATH_IN_IMAGE, source=ca_bundle_path().read_bytes()),
            LayerEntry(path="tmp", mode=0o1777),
            LayerEntry(path="root", mode=0o700),
            LayerEntry(path="home", mode=0o755),
            LayerEntry(path="home/nonroot", mode=0o700, uid=NONROOT, gid=NONROOT),
        ]
        # Epoch 0: the base is the same bytes whatever image is built on it (one shared blob).
        layer = write_layer(self.store, entries, source_date_epoch=0, compression="gzip")
        layer = Layer(
            descriptor=layer.descriptor.with_(annotations={ANNOTATION_COMPRESSOR: compressor_identity("gzip")}),
            diff_id=layer.diff_id, compression=layer.compression, level=layer.level,
        )
        return BaseImage(
            layers=(layer,),
            config={"Env": [f"PATH={DEFAULT_PATH}", f"SSL_CERT_FILE=/{CA_BUNDLE_PATH_IN_IMAGE}"]},
            history=({"created": rfc3339(0), "created_by": f"crossyard/static v{STATIC_VERSION} (CA bundle {ca_digest})"},),
            annotations={ANNOTATION_BASE: "crossyard/static", ANNOTATION_CA_BUNDLE: ca_digest},
        )

    def _from_manifest(self, layout: OciLayout, descriptor: Descriptor, base: BaseRef) -> BaseImage:
        manifest = layout.read_json(descriptor.digest)
        config = layout.read_json(manifest["config"]["digest"])
        diff_ids = list(config.get("rootfs", {}).get("diff_ids", []))
        raw_layers = [Descriptor.from_json(d) for d in manifest.get("layers", [])]
        if len(diff_ids) != len(raw_layers):
            raise ConfigurationError(f"[image] base `{base.text}`: {len(raw_layers)} layers but {len(diff_ids)} diff_ids")
        layers = []
        for raw, diff_id in zip(raw_layers, diff_ids, strict=True):
            if layout is not self.store:
                copy_blob(layout, raw, self.store)
            media_type = DOCKER_LAYER_TYPES.get(raw.media_type, raw.media_type)
            layers.append(Layer(descriptor=raw.with_(media_type=media_type), diff_id=diff_id,
                                compression=media_type.rpartition("+")[2], level=0))
        notes = dict(manifest.get("annotations") or {})
        inherited = {k: v for k, v in notes.items() if k in (ANNOTATION_CA_BUNDLE,)}
        return BaseImage(
            layers=tuple(layers),
            config=dict(config.get("config") or {}),
            history=tuple(config.get("history") or ()),
            annotations={
                **inherited,
                ANNOTATION_BASE: base.text,
                ANNOTATION_BASE_DIGEST: descriptor.digest,
            },
        )
