"""Image config, manifest and multi-platform index, written as canonical JSON blobs."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..platforms import Platform
from . import media
from .layer import Layer
from .layout import Descriptor, OciLayout


def rfc3339(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# The config fields `ImageConfig` decides; anything else of a base's config is inherited as is.
CONFIG_FIELDS = ("Entrypoint", "Cmd", "Env", "User", "WorkingDir", "ExposedPorts", "Labels")


@dataclass(frozen=True, kw_only=True)
class ImageConfig:
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    user: str = ""
    workdir: str = ""
    ports: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)


def write_image(
    layout: OciLayout,
    *,
    platform: Platform,
    layers: Sequence[Layer],
    config: ImageConfig,
    source_date_epoch: int,
    annotations: Mapping[str, str] | None = None,
    history: Sequence[Mapping[str, Any]] | None = None,
    inherited: Mapping[str, Any] | None = None,
) -> Descriptor:
    """Write config + manifest for one platform; return the manifest descriptor (with platform).

    `history` (a base image's entries followed by ours) replaces the default one entry per layer;
    `inherited` carries a base config's fields `ImageConfig` has no word for (StopSignal,
    Volumes, Healthcheck…), kept as they are.
    """
    created = rfc3339(source_date_epoch)
    cfg: dict[str, object] = {k: v for k, v in (inherited or {}).items() if k not in CONFIG_FIELDS}
    if config.entrypoint:
        cfg["Entrypoint"] = list(config.entrypoint)
    if config.cmd:
        cfg["Cmd"] = list(config.cmd)
    if config.env:
        cfg["Env"] = [f"{k}={v}" for k, v in sorted(config.env.items())]
    if config.user:
        cfg["User"] = config.user
    if config.workdir:
        cfg["WorkingDir"] = config.workdir
    if config.ports:
        cfg["ExposedPorts"] = {p if "/" in p else f"{p}/tcp": {} for p in config.ports}
    if config.labels:
        cfg["Labels"] = dict(config.labels)
    image_config = {
        **platform.oci_platform,
        "created": created,
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [dict(h) for h in history]
        if history is not None
        else [{"created": created, "created_by": "crossyard"} for _ in layers],
    }
    config_desc = layout.write_json(image_config, media.CONFIG)
    manifest: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": media.MANIFEST,
        "config": config_desc.to_json(),
        "layers": [layer.descriptor.to_json() for layer in layers],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    return layout.write_json(manifest, media.MANIFEST, platform=dict(platform.oci_platform))


def write_index(
    layout: OciLayout,
    manifests: Sequence[Descriptor],
    *,
    annotations: Mapping[str, str] | None = None,
) -> Descriptor:
    """Write an image index with one entry per platform (sorted for determinism)."""
    entries = sorted(manifests, key=lambda d: sorted((d.platform or {}).items()))
    index: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": media.INDEX,
        "manifests": [d.to_json() for d in entries],
    }
    if annotations:
        index["annotations"] = dict(annotations)
    return layout.write_json(index, media.INDEX)


def tag(layout: OciLayout, index: Descriptor, ref_name: str) -> Descriptor:
    """Record `index` in index.json under `ref_name`, replacing an older entry; done last."""
    tagged = index.with_(
        annotations={**(index.annotations or {}), media.ANNOTATION_REF_NAME: ref_name}
    )

    def change(current: list[Descriptor]) -> list[Descriptor]:
        kept = [
            d for d in current if (d.annotations or {}).get(media.ANNOTATION_REF_NAME) != ref_name
        ]
        return [*kept, tagged]

    layout.update_index(change)
    return tagged
