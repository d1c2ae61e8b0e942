"""A real CNCF distribution registry over TLS + htpasswd for tests, built from crossyard's own
certs and registry server code. Stable API: `running_registry(tmp_path, users=...)`."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from crossyard import certs
from crossyard.registry import server
from helpers.processes import stop


@dataclass(frozen=True, kw_only=True)
class RegistryHandle:
    url: str
    host: str
    ca_path: Path
    username: str
    password: str
    storage_dir: Path
    config_path: Path
    _proc: list[subprocess.Popen[bytes]] = field(default_factory=list, repr=False, compare=False)

    def start(self) -> None:
        """(Re)start the registry on the same port and storage; waits until /v2/ answers."""
        if self._proc:
            return
        self._proc.append(
            server.start_process(self.config_path, self.config_path.parent / "registry.log")
        )
        try:
            server.wait_ready(self.url, self.ca_path)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the registry (SIGTERM, then SIGKILL after 10 s)."""
        while self._proc:
            stop(self._proc.pop(), 10)

    @property
    def running(self) -> bool:
        return bool(self._proc) and self._proc[0].poll() is None


@contextmanager
def running_registry(
    tmp_path: Path, *, users: dict[str, str] | None = None
) -> Iterator[RegistryHandle]:
    root = tmp_path / "registry"
    root.mkdir(parents=True, exist_ok=True)
    users = users or {"tester": "s3cret-pw"}
    ca = certs.create_ca(root / "ca")
    leaf = certs.issue_leaf(ca, root / "tls", names=("127.0.0.1", "localhost"))
    htpasswd = root / "htpasswd"
    server.write_htpasswd(htpasswd, users)
    port = server.free_port()
    storage = root / "storage"
    config = root / "config.yml"
    server.write_config(
        config,
        server.ServerConfig(
            addr=f"127.0.0.1:{port}", cert=leaf.cert, key=leaf.key, htpasswd=htpasswd,
            storage_dir=storage, draintimeout_s=1,
        ),
    )
    username, password = next(iter(users.items()))
    handle = RegistryHandle(
        url=f"https://127.0.0.1:{port}", host=f"127.0.0.1:{port}", ca_path=ca.cert,
        username=username, password=password, storage_dir=storage, config_path=config,
    )
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()
