"""Kubernetes manifests for the same registry `registry up` runs: rendered from registry/k8s/*.yaml
(string.Template) with the workspace's leaf, trust bundle, users and distribution config."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .. import pki
from ..errors import ConfigurationError
from ..fsutil import atomic_write_text
from ..reference import Reference
from ..workspace import Workspace
from . import server, users
from .paths import RegistryPaths, k8s_templates, template, trust_file
from .settings import load

PORT: Final = 5000
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_SECRET_KIND = re.compile(r"^kind:\s*Secret\s*$", re.MULTILINE)
_NAMESPACE_KIND = re.compile(r"^kind:\s*Namespace\s*$", re.MULTILINE)
# Every cluster has these (and refuses to delete most): no Namespace manifest for them.
_CLUSTER_NAMESPACES: Final = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})


@dataclass(frozen=True, kw_only=True)
class K8sOptions:
    namespace: str = "crossyard"
    name: str = "registry"
    image: str = "docker.io/library/registry:2.8.3"
    storage_size: str = "10Gi"

    def check(self) -> None:
        for key, value in (("--namespace", self.namespace), ("--name", self.name)):
            if not _LABEL.match(value):
                raise ConfigurationError(
                    f"{key} {value!r} is not a Kubernetes name (lower-case letters, digits, '-')"
                )
        if not _QUANTITY.match(self.storage_size):
            raise ConfigurationError(
                f"--storage-size {self.storage_size!r} is not a Kubernetes quantity, e.g. 10Gi"
            )
        Reference.parse(self.image, what="--image")


def render(workspace: Workspace, options: K8sOptions) -> dict[str, str]:
    """{file name: manifest text}; TLS pair and htpasswd are the workspace's current ones."""
    options.check()
    settings = load(workspace)
    paths = RegistryPaths.of(workspace)
    leaf = pki.ensure_leaf(workspace, settings.cert)
    users.ensure_default(paths)
    http_secret = users.ensure_http_secret(paths)
    htpasswd = server.htpasswd_bytes({n: users.password(paths, n) for n in users.names(paths)})
    config = server.render_config(
        server.ServerConfig(
            addr=f":{PORT}", cert=Path("/certs/tls.crt"), key=Path("/certs/tls.key"),
            htpasswd=Path("/auth/htpasswd"), storage_dir=Path("/var/lib/registry"),
            http_secret="set-from-REGISTRY_HTTP_SECRET", draintimeout_s=20, log_level="info",
        ),
        template(workspace.root, "config.yml"),
    )
    tls_crt, tls_key = leaf.cert.read_bytes(), leaf.key.read_bytes()
    ca = trust_file(workspace).read_bytes()
    values = {
        "name": options.name,
        "namespace": options.namespace,
        "image": options.image,
        "storage_size": options.storage_size,
        "port": str(PORT),
        "grace_s": "30",
        "cert_profile": settings.cert,
        "config_yml": "\n".join(("    " + line).rstrip() for line in config.splitlines()),
        "config_sha256": hashlib.sha256(config.encode()).hexdigest(),
        "secrets_sha256": hashlib.sha256(tls_crt + tls_key + ca + htpasswd).hexdigest(),
        "tls_crt_b64": _b64(tls_crt),
        "tls_key_b64": _b64(tls_key),
        "ca_crt_b64": _b64(ca),
        "htpasswd_b64": _b64(htpasswd),
        "http_secret_b64": _b64(http_secret.encode()),
    }
    rendered = {t.name: server.fill_template(t, values) for t in k8s_templates(workspace.root)}
    if options.namespace in _CLUSTER_NAMESPACES:
        return {n: text for n, text in rendered.items() if not _NAMESPACE_KIND.search(text)}
    return rendered


def write_manifests(workspace: Workspace, directory: Path, *, options: K8sOptions) -> list[Path]:
    """Write the manifests into `directory`; those holding a Secret are 0600."""
    rendered = render(workspace, options)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in sorted(rendered.items()):
        path = directory / name
        atomic_write_text(path, text, mode=0o600 if _SECRET_KIND.search(text) else 0o644)
        written.append(path)
    return written


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
