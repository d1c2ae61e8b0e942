"""Run a CNCF distribution registry (Debian `docker-registry`) over TLS with htpasswd auth."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from crossyard.errors import ConfigurationError, CrossyardError
from crossyard.fsutil import atomic_write_bytes, atomic_write_text


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    addr: str
    cert: Path
    key: Path
    htpasswd: Path
    storage_dir: Path
    draintimeout_s: int = 5


def write_htpasswd(path: Path, users: dict[str, str]) -> None:
    lines = [
        f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=10)).decode()}\n"
        for u, p in sorted(users.items())
    ]
    atomic_write_bytes(path, "".join(lines).encode(), mode=0o600)


def render_config(cfg: ServerConfig) -> str:
    return f"""version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {cfg.storage_dir}
  delete:
    enabled: true
http:
  addr: {cfg.addr}
  draintimeout: {cfg.draintimeout_s}s
  tls:
    certificate: {cfg.cert}
    key: {cfg.key}
auth:
  htpasswd:
    realm: crossyard
    path: {cfg.htpasswd}
"""


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


def start_process(config_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("docker-registry")
    if exe is None:
        raise ConfigurationError("`docker-registry` not found; apt install docker-registry")
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [exe, "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def write_config(path: Path, cfg: ServerConfig) -> None:
    atomic_write_text(path, render_config(cfg))
