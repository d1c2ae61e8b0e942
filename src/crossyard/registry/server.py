"""Run a CNCF distribution registry (Debian `docker-registry`) over TLS with htpasswd auth."""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import ssl
import string
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Final

import bcrypt

from crossyard.errors import ConfigurationError, CrossyardError
from crossyard.fsutil import atomic_write_bytes, atomic_write_text

BINARY: Final = "docker-registry"


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    addr: str
    cert: Path
    key: Path
    htpasswd: Path
    storage_dir: Path
    draintimeout_s: int = 5
    # Stable across restarts so an upload begun on one backend finishes on the next.
    http_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    log_level: str = "warn"


def htpasswd_bytes(users: Mapping[str, str]) -> bytes:
    """bcrypt htpasswd lines (the only scheme distribution accepts)."""
    lines = [
        f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=10)).decode()}\n"
        for u, p in sorted(users.items())
    ]
    return "".join(lines).encode()


def write_htpasswd(path: Path, users: Mapping[str, str]) -> None:
    atomic_write_bytes(path, htpasswd_bytes(users), mode=0o600)


def render_config(cfg: ServerConfig, template: Path | None = None) -> str:
    """Fill the distribution config template (registry/config.yml) for `cfg`.

    Values go in as JSON strings, which YAML reads as double-quoted scalars: a path with spaces
    or a `#` stays one value.
    """
    source = template or builtin_config_template()
    values = {
        "addr": cfg.addr,
        "storage": str(cfg.storage_dir),
        "cert": str(cfg.cert),
        "key": str(cfg.key),
        "htpasswd": str(cfg.htpasswd),
        "http_secret": cfg.http_secret,
        "draintimeout": f"{cfg.draintimeout_s}s",
        "log_level": cfg.log_level,
    }
    return fill_template(source, {k: json.dumps(v) for k, v in values.items()})


def fill_template(source: Path, values: Mapping[str, str]) -> str:
    try:
        return string.Template(source.read_text()).substitute(values)
    except KeyError as exc:
        raise ConfigurationError(
            f"{source}: unknown placeholder ${{{exc.args[0]}}}; known: "
            f"{', '.join(sorted(values))} (write $$ for a literal $)"
        ) from None
    except ValueError as exc:
        raise ConfigurationError(
            f"{source}: bad placeholder ({exc}); write $$ for a literal $"
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"{source}: cannot read: {exc.strerror}") from None


def builtin_config_template() -> Path:
    return Path(str(resources.files("crossyard") / "data" / "registry" / "config.yml"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, ca_path: Path, *, timeout: float = 15.0) -> None:
    """Poll `url`/v2/ until it answers (401 counts: auth is on)."""
    ctx = ssl.create_default_context(cafile=str(ca_path))
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/v2/", context=ctx, timeout=1).close()
            return
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                return
            last = exc
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise CrossyardError(f"registry at {url} did not become ready: {last}")


def find_binary() -> str:
    """The CNCF distribution registry binary, or a message saying how to install it."""
    exe = shutil.which(BINARY)
    if exe is None:
        raise ConfigurationError(
            f"`{BINARY}` (CNCF distribution) not found on PATH; install it with "
            f"`sudo apt-get install -y {BINARY}` (Debian/Ubuntu)"
        )
    return exe


def start_process(
    config_path: Path, log_path: Path, *, preexec_fn: Callable[[], object] | None = None
) -> subprocess.Popen[bytes]:
    exe = find_binary()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [exe, "serve", str(config_path)], stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=preexec_fn,
        )


def write_config(path: Path, cfg: ServerConfig, template: Path | None = None) -> None:
    atomic_write_text(path, render_config(cfg, template), mode=0o600)
