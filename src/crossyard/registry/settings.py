"""`[registry]` in crossyard.toml: where the managed registry listens and which leaf it serves.

Cascade like the rest of crossyard: defaults, then crossyard.toml, then the command line, then
`CROSSYARD_REGISTRY_ADDR`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ..config import config_table, read_config
from ..errors import ConfigurationError, check_keys
from ..workspace import Workspace

DEFAULT_ADDR: Final = "127.0.0.1:5000"
DEFAULT_CERT: Final = "registry"
KEYS: Final = ("addr", "cert")
ADDR_ENV: Final = "CROSSYARD_REGISTRY_ADDR"
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")
_PROFILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True, kw_only=True)
class Address:
    """A listen address: `host:port`, `[v6]:port`."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str, *, where: str) -> Address:
        hint = f"{where}: malformed address {text!r}; write HOST:PORT, e.g. 127.0.0.1:5000"
        host, sep, port_text = text.rpartition(":")
        if not sep or not port_text.isdigit():
            raise ConfigurationError(hint)
        port = int(port_text)
        if not 0 < port < 65536:
            raise ConfigurationError(f"{hint} (port must be 1-65535)")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise ConfigurationError(hint) from None
        elif not _NAME.match(host) or ":" in host:
            raise ConfigurationError(hint)
        return cls(host=host, port=port)

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    @property
    def listen(self) -> str:
        return f"[{self.host}]:{self.port}" if self.is_ipv6 else f"{self.host}:{self.port}"

    @property
    def connect_host(self) -> str:
        """The host a local client dials: a wildcard bind is reached on loopback."""
        return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)

    @property
    def authority(self) -> str:
        """host:port as it appears in URLs and image references."""
        h = self.connect_host
        return f"[{h}]:{self.port}" if ":" in h else f"{h}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.authority}"


@dataclass(frozen=True, kw_only=True)
class RegistrySettings:
    addr: Address
    cert: str = DEFAULT_CERT


def load(
    workspace: Workspace, *, addr: str | None = None, environ: Mapping[str, str] = os.environ
) -> RegistrySettings:
    """The cascade: default, `[registry]` in crossyard.toml, `--addr`, then `ADDR_ENV` from
    `environ` (an empty one counts as unset). A bad value names where it came from."""
    file = workspace.config_path
    table = config_table(read_config(workspace), "registry", file=file)
    check_keys(table, KEYS, where="[registry]", file=file)
    addr_text, where = DEFAULT_ADDR, "default"
    if "addr" in table:
        if not isinstance(table["addr"], str):
            raise ConfigurationError(
                f'{file}: [registry] addr must be a string like "127.0.0.1:5000"'
            )
        addr_text, where = table["addr"], f"{file}: [registry] addr"
    if addr is not None:
        addr_text, where = addr, "--addr"
    env = environ.get(ADDR_ENV)
    if env:
        addr_text, where = env, ADDR_ENV
    cert = table.get("cert", DEFAULT_CERT)
    if not isinstance(cert, str) or not _PROFILE.match(cert):
        raise ConfigurationError(
            f"{file}: [registry] cert must name a certificate profile (certs/<name>.toml), "
            f"got {cert!r}"
        )
    return RegistrySettings(addr=Address.parse(addr_text, where=where), cert=cert)
