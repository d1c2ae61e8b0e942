"""A throw-away workspace with crossyard's certificate profiles, for `crossyard registry` tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from conftest import REPO
from crossyard.registry import manager, server
from crossyard.workspace import Workspace


def make_workspace(tmp_path: Path, toml: str = "") -> Workspace:
    root = tmp_path / "ws"
    (root / "certs").mkdir(parents=True)
    for profile in sorted((REPO / "certs").glob("*.toml")):
        shutil.copy(profile, root / "certs" / profile.name)
    (root / "crossyard.toml").write_text(toml)
    return Workspace(root=root)


def free_addr() -> str:
    return f"127.0.0.1:{server.free_port()}"


@contextmanager
def stopped_after(ws: Workspace) -> Iterator[Workspace]:
    """Whatever a test started in `ws` is stopped at the end, pass or fail."""
    try:
        yield ws
    finally:
        with suppress(manager.ForeignRegistryError):  # another workspace's: not ours to stop
            manager.down(ws)


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "2m") mounted at `path` (needs root); unmounted at the end, pass
    or fail (lazily if something still holds it)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                   check=True, capture_output=True)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(path)], capture_output=True, check=False)
