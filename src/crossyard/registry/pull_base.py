"""Registry base images for image recipes: `host[:port]/repo@sha256:<hex>`, pinned by digest.

`pull_base` pulls the index (or manifest) and every blob under it into a layout, each checked
against its digest, and returns the root descriptor. A tag is refused: a base that can move
under a tag would make the image key lie.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ..errors import ConfigurationError
from ..oci.layout import Descriptor, OciLayout
from ..workspace import Workspace
from .target import target_for_host

_REF: Final = re.compile(
    r"^(?P<host>[A-Za-z0-9.-]+(?::[0-9]+)?)/(?P<repo>[a-z0-9]+(?:[._/-][a-z0-9]+)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>[a-z0-9]+:[0-9a-f]+))?$"
)
_SHA256: Final = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True, kw_only=True)
class BaseRef:
    host: str
    repo: str
    digest: str

    @property
    def text(self) -> str:
        return f"{self.host}/{self.repo}@{self.digest}"


def parse_base(ref: str) -> BaseRef:
    match = _REF.match(ref.strip())
    if match is None:
        raise ConfigurationError(
            f"registry base `{ref}` is not `HOST[:PORT]/REPO@sha256:<64 hex>`"
        )
    digest = match.group("digest")
    if digest is None:
        raise ConfigurationError(
            f"registry base `{ref}` is pinned by tag; pin it by digest "
            f"(`{match.group('host')}/{match.group('repo')}@sha256:…`; "
            f"`skopeo inspect --format '{{{{.Digest}}}}' docker://{ref}` prints it)"
        )
    if not _SHA256.match(digest):
        raise ConfigurationError(f"registry base `{ref}`: {digest!r} is not a sha256 digest")
    return BaseRef(host=match.group("host"), repo=match.group("repo"), digest=digest)


def pull_base(workspace: Workspace | Path, ref: str, into: OciLayout) -> Descriptor:
    """Pull `ref` (digest-pinned) with everything under it into `into`; return its root."""
    base = parse_base(ref)
    ws = workspace if isinstance(workspace, Workspace) else Workspace(root=workspace)
    target = target_for_host(ws, base.host)
    into.ensure()
    with target.client() as client:
        root = client.pull(base.repo, base.digest, into)
    if root.digest != base.digest:  # pull checks it too; a base is worth saying so twice
        raise ConfigurationError(f"registry base `{ref}` resolved to {root.digest}")
    return root
