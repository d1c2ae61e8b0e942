"""A throw-away workspace with crossyard's certificate profiles, for `crossyard registry` tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
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
        manager.down(ws)
