"""Which registry to talk to, with which CA and credentials: the one place that decides.

Order: an explicit `--registry`/`--ca`, then CROSSYARD_REGISTRY / CROSSYARD_REGISTRY_CA /
CROSSYARD_REGISTRY_USERNAME / _PASSWORD, then the workspace's managed registry
(`crossyard registry up`). A URL may carry `user:password@`: those are the credentials (before
the variables), and the URL is kept without them, so nothing that prints it shows the password.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import ConfigurationError
from ..workspace import Workspace
from .client import RegistryClient


@dataclass(frozen=True, kw_only=True)
class Target:
    url: str  # https://host:port
    host: str  # host:port, as in image references
    ca_path: Path | None  # None: the system's trust store
    username: str | None
    password: str | None = field(repr=False)
    origin: str  # where the choice came from, for messages
    password_file: Path | None = None  # the managed registry's, to tell users how to log in
    password_from: str = "CROSSYARD_REGISTRY_PASSWORD"  # where it was given, never its value

    def client(self, **options: Any) -> RegistryClient:
        return RegistryClient(self.url, ca_path=self.ca_path, username=self.username,
                              password=self.password, **options)


def _normalize(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else "https://" + url


def _without_credentials(url: str, origin: str) -> tuple[str, str | None, str | None]:
    """(URL without `user:password@`, user, password), percent-decoded; the URL's port checked
    here, with the password already gone from what the message shows."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    clean = urlunsplit(parts._replace(netloc=hostport)) if at else url
    try:
        _ = urlsplit(clean).port  # raises on a port that is not one
    except ValueError:
        raise ConfigurationError(
            f"{origin}: {clean} is not a registry address; write HOST[:PORT] or "
            "https://[USER:PASSWORD@]HOST[:PORT]"
        ) from None
    if not at:
        return clean, None, None
    user, colon, password = userinfo.partition(":")
    return clean, unquote(user) or None, unquote(password) if colon else None


def resolve_target(
    workspace: Workspace, *, registry: str | None = None, ca: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Target:
    url = registry or environ.get("CROSSYARD_REGISTRY")
    if url:
        origin = "--registry" if registry else "CROSSYARD_REGISTRY"
        ca_text = ca or environ.get("CROSSYARD_REGISTRY_CA")
        ca_path = Path(ca_text) if ca_text else None
        if ca_path is not None and not ca_path.is_file():
            raise ConfigurationError(
                f"CA bundle {ca_path} (--ca / CROSSYARD_REGISTRY_CA) does not exist; "
                "the workspace's own is .crossyard/pki/ca/bundle.crt"
            )
        full, user, password = _without_credentials(_normalize(url), origin)
        return Target(
            url=full, host=urlsplit(full).netloc, ca_path=ca_path,
            username=user or environ.get("CROSSYARD_REGISTRY_USERNAME") or None,
            password=password or environ.get("CROSSYARD_REGISTRY_PASSWORD") or None,
            origin=origin,
            password_from=f"the {origin} URL" if password else "CROSSYARD_REGISTRY_PASSWORD",
        )
    from . import manager

    info = manager.status(workspace)
    if info is None:
        raise ConfigurationError(
            "no registry given: pass --registry HOST[:PORT], set CROSSYARD_REGISTRY, or start "
            f"the workspace's registry with `crossyard -C {workspace.root} registry up`"
        )
    return Target(
        url=info.url, host=info.host, ca_path=Path(ca) if ca else info.ca_bundle,
        username=info.username, password=info.password,
        origin="the workspace's managed registry", password_file=info.password_file,
    )


def target_for_host(
    workspace: Workspace, host: str, *, environ: Mapping[str, str] = os.environ
) -> Target:
    """Settings for `host` (a registry base's): the configured registry if it is that host,
    else anonymous over the system trust store."""
    try:
        configured = resolve_target(workspace, environ=environ)
    except ConfigurationError:
        configured = None
    if configured is not None and configured.host == host:
        return configured
    return Target(url=f"https://{host}", host=host, ca_path=None, username=None, password=None,
                  origin=f"{host} (anonymous, system CAs)")
