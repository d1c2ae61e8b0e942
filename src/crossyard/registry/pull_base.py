"""Registry base images for image recipes: `host[:port]/repo@sha256:<hex>`, pinned by digest.

`pull_base` pulls the index (or manifest) and every blob under it into a layout, each checked
against its digest, and returns the root descriptor. The recipe loader (`recipes.BaseRef`)
refuses a base pinned by tag: a base that can move under a tag would make the image key lie.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigurationError
from ..oci.layout import Descriptor, OciLayout
from ..reference import Reference
from ..workspace import Workspace
from .target import target_for_host


def pull_base(workspace: Workspace | Path, base: Reference, into: OciLayout) -> Descriptor:
    """Pull `base` (digest-pinned) with everything under it into `into`; return its root."""
    if base.host is None or base.digest is None:
        raise ConfigurationError(f"registry base `{base}` is not `HOST[:PORT]/REPO@sha256:<64 hex>`")
    ws = workspace if isinstance(workspace, Workspace) else Workspace(root=workspace)
    target = target_for_host(ws, base.host)
    into.ensure()
    with target.client() as client:
        root = client.pull(base.repository, base.digest, into)
    if root.digest != base.digest:  # pull checks it too; a base is worth saying so twice
        raise ConfigurationError(f"registry base `{base}` resolved to {root.digest}")
    return root
