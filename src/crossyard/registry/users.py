"""The users the managed registry accepts: one 0600 password file each, rendered into htpasswd."""

from __future__ import annotations

import os
import re
import secrets
from typing import Final

from ..errors import ConfigurationError
from ..fsutil import atomic_write_text
from .paths import RegistryPaths
from .server import write_htpasswd

DEFAULT_USER: Final = "crossyard"
PASSWORD_ENV: Final = "CROSSYARD_REGISTRY_PASSWORD"
_USER = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def check_name(name: str) -> str:
    if not _USER.match(name):
        raise ConfigurationError(
            f"registry user name {name!r} is not valid: use 1-64 lower-case letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )
    return name


def names(paths: RegistryPaths) -> list[str]:
    if not paths.users.is_dir():
        return []
    return sorted(p.name.removesuffix(".password") for p in paths.users.glob("*.password"))


def password(paths: RegistryPaths, name: str) -> str:
    return paths.password_file(name).read_text().strip()


def default_user(paths: RegistryPaths) -> str | None:
    found = names(paths)
    if DEFAULT_USER in found:
        return DEFAULT_USER
    return found[0] if found else None


def add(paths: RegistryPaths, name: str, secret: str | None = None) -> str:
    """Create or replace user `name` with password `secret`, else $CROSSYARD_REGISTRY_PASSWORD,
    else a random one."""
    check_name(name)
    value = secret
    if value is None:
        value = os.environ.get(PASSWORD_ENV) or secrets.token_urlsafe(24)
    if not value or any(c in value for c in "\r\n\0"):
        raise ConfigurationError(f"{PASSWORD_ENV}: a password must be one non-empty line")
    paths.users.mkdir(parents=True, exist_ok=True)
    atomic_write_text(paths.password_file(name), value + "\n", mode=0o600)
    render(paths)
    return name


def remove(paths: RegistryPaths, name: str) -> None:
    check_name(name)
    file = paths.password_file(name)
    if not file.exists():
        known = ", ".join(names(paths)) or "none"
        raise ConfigurationError(f"no registry user {name!r} (users: {known})")
    file.unlink()
    render(paths)


def ensure_default(paths: RegistryPaths) -> str:
    """The first `up` creates user `crossyard` with a random password when there is no user."""
    current = default_user(paths)
    if current is None:
        current = add(paths, DEFAULT_USER, secrets.token_urlsafe(24))
    elif not paths.htpasswd.exists():
        render(paths)
    return current


def render(paths: RegistryPaths) -> None:
    """Rewrite htpasswd (bcrypt) from the password files."""
    write_htpasswd(paths.htpasswd, {n: password(paths, n) for n in names(paths)})


def ensure_http_secret(paths: RegistryPaths) -> str:
    if not paths.http_secret.exists():
        atomic_write_text(paths.http_secret, secrets.token_hex(32) + "\n", mode=0o600)
    return paths.http_secret.read_text().strip()
