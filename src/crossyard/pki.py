"""Where the workspace PKI lives under `.crossyard/pki/` (one place; every stage asks here).

    ca/ca.crt, ca/ca.key   the current CA
    ca/previous.crt        the CA being retired, kept during a CA rotation's overlap
    ca/bundle.crt          what clients trust: the current CA, plus the previous one during overlap
    <name>/tls.crt, .key   a leaf issued from profile certs/<name>.toml
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .certs import CertPaths
from .workspace import Workspace


@dataclass(frozen=True, kw_only=True)
class Pki:
    root: Path

    @classmethod
    def of(cls, workspace: Workspace) -> Pki:
        return cls(root=workspace.pki_dir)

    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"

    @property
    def ca(self) -> CertPaths:
        return CertPaths(cert=self.ca_dir / "ca.crt", key=self.ca_dir / "ca.key")

    @property
    def previous_ca(self) -> Path:
        return self.ca_dir / "previous.crt"

    @property
    def bundle(self) -> Path:
        return self.ca_dir / "bundle.crt"

    def leaf(self, name: str) -> CertPaths:
        return CertPaths(cert=self.root / name / "tls.crt", key=self.root / name / "tls.key")
