"""Kubernetes manifests for the same registry `registry up` runs: rendered from registry/k8s/*.yaml
(string.Template) with the workspace's leaf, trust bundle, users and distribution config.

The pod runs the catalog's registry image (recipes/registry/: distribution built from Debian's
docker-registry for riscv64, arm64 and amd64), by the index digest crossyard.lock records, from
the workspace's registry (where `crossyard publish` put it): a board on a private network can
pull it, and there is a riscv64 build. `--image` runs another image instead."""

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
from ..lock import read_lock
from ..reference import Reference
from ..workspace import Workspace
from . import server, users
from .client import RegistryError
from .paths import RegistryPaths, k8s_templates, template, trust_file
from .settings import load
from .target import resolve_target

PORT: Final = 5000
# The catalog's registry image: recipes/registry/registry-image.toml's [image] name and recipe.
CATALOG_IMAGE: Final = "registry"
CATALOG_RECIPE: Final = "registry-image"
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
    image: str | None = None  # None: the catalog's registry image, by digest (`catalog_image`)
    storage_size: str = "10Gi"
    registry: str | None = None  # where the catalog's image was published (`resolve_target`)
    ca: str | None = None

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
        if self.image is not None:
            Reference.parse(self.image, what="--image")


def catalog_image(workspace: Workspace, *, registry: str | None = None, ca: str | None = None) -> str:
    """`HOST/registry@sha256:…`: the catalog's registry image at the index digest crossyard.lock
    records, once the registry it was published to (`resolve_target`) holds it (a manifest
    naming what no node can pull would leave the pod in ImagePullBackOff)."""
    other = ("or pass --image REF to run another registry image (docker.io/library/registry:2.8.3 "
             "is upstream's, which has no riscv64 build)")
    images = read_lock(workspace.lock_path).images.values()
    built = sorted((e for e in images if e.name == CATALOG_IMAGE), key=lambda e: e.version)
    if not built:
        raise ConfigurationError(
            f"{workspace.lock_path} records no `{CATALOG_IMAGE}` image: run `crossyard build "
            f"{CATALOG_RECIPE}` and `crossyard publish {CATALOG_RECIPE}` first, so that the "
            f"manifests run it by digest from the workspace's registry; {other}"
        )
    if len(built) > 1:
        raise ConfigurationError(
            f"{workspace.lock_path} records `{CATALOG_IMAGE}` at "
            f"{', '.join(e.version for e in built)}: keep one version's recipe and build again, {other}"
        )
    index = built[0].index
    target = resolve_target(workspace, registry=registry, ca=ca)
    reference = f"{target.host}/{CATALOG_IMAGE}@{index}"
    try:
        with target.client(retries=1) as client:
            published = client.has_manifest(CATALOG_IMAGE, index, index)
    except RegistryError as error:
        raise ConfigurationError(
            f"{target.origin} {target.host} did not answer ({error}), so whether it holds "
            f"{reference} is unknown: start it (`crossyard registry up`) and run `crossyard "
            f"publish {CATALOG_RECIPE}`; {other}"
        ) from None
    if not published:
        raise ConfigurationError(
            f"{reference} (the `{CATALOG_IMAGE}` image crossyard.lock records) is not in "
            f"{target.origin} {target.host}: run `crossyard publish {CATALOG_RECIPE}` first; {other}"
        )
    return reference


def render(workspace: Workspace, options: K8sOptions) -> dict[str, str]:
    """{file name: manifest text}; TLS pair and htpasswd are the workspace's current ones."""
    options.check()
    settings = load(workspace)
    image = options.image or catalog_image(workspace, registry=options.registry, ca=options.ca)
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
        "image": image,
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
