"""Where the managed registry keeps its state and finds its templates (one place; all ask here).

    .crossyard/registry/
      storage/              blobs and manifests (filesystem driver), shared by every backend
      users/NAME.password   one managed user per file (0600); htpasswd is rendered from these
      htpasswd              bcrypt htpasswd (0600)
      http.secret           distribution's upload-state secret (0600), stable across reloads
      state.json            the supervisor's state: pid, instance id, workspace, addr, current
                            backend (atomic writes)
      supervisor.log        the supervisor's log
      backends/N/           generation N: config.yml, TLS pair and htpasswd snapshots
      logs/backend-N.log    generation N's registry log

Templates: the workspace's `registry/` directory, else the copy shipped in the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import ConfigurationError
from ..workspace import Workspace


@dataclass(frozen=True, kw_only=True)
class RegistryPaths:
    root: Path

    @classmethod
    def of(cls, workspace: Workspace) -> RegistryPaths:
        return cls(root=workspace.state / "registry")

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    @property
    def users(self) -> Path:
        return self.root / "users"

    def password_file(self, user: str) -> Path:
        return self.users / f"{user}.password"

    @property
    def htpasswd(self) -> Path:
        return self.root / "htpasswd"

    @property
    def http_secret(self) -> Path:
        return self.root / "http.secret"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    @property
    def backends(self) -> Path:
        return self.root / "backends"

    def backend(self, generation: int) -> Path:
        return self.backends / str(generation)

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def backend_log(self, generation: int) -> Path:
        return self.logs / f"backend-{generation}.log"


def builtin_templates() -> Path:
    return Path(str(resources.files("crossyard") / "data" / "registry"))


def template(workspace_root: Path, relpath: str) -> Path:
    """The workspace's registry/<relpath> if it exists, else the shipped copy."""
    for base in (workspace_root / "registry", builtin_templates()):
        candidate = base / relpath
        if candidate.is_file():
            return candidate
    raise ConfigurationError(
        f"registry template registry/{relpath} not found in {workspace_root} nor in the "
        "crossyard package; restore it from the crossyard sources"
    )


def k8s_templates(workspace_root: Path) -> list[Path]:
    """The manifest templates: the workspace's registry/k8s/*.yaml if any, else the shipped ones."""
    for base in (workspace_root / "registry" / "k8s", builtin_templates() / "k8s"):
        found = sorted(base.glob("*.yaml"))
        if found:
            return found
    raise ConfigurationError(
        f"no registry/k8s/*.yaml manifest templates in {workspace_root} nor in the "
        "crossyard package"
    )


def trust_file(workspace: Workspace) -> Path:
    """What clients of the managed registry trust: the PKI bundle (the CA before one exists)."""
    from ..pki import Pki  # late: pki pulls in the certificate stack

    pki = Pki.of(workspace)
    return pki.bundle if pki.bundle.exists() else pki.ca.cert
