from __future__ import annotations

import base64
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import require_tool
from helpers.registry import running_registry


def _get(url: str, ca: Path, auth: tuple[str, str] | None) -> int:
    req = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    ctx = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.integration
def test_running_registry_tls_auth_restart(tmp_path: Path) -> None:
    require_tool("docker-registry", "apt install docker-registry")
    with running_registry(tmp_path, users={"alice": "pw-a"}) as reg:
        assert reg.url == f"https://{reg.host}"
        assert _get(f"{reg.url}/v2/", reg.ca_path, None) == 401
        assert _get(f"{reg.url}/v2/", reg.ca_path, ("alice", "wrong")) == 401
        assert _get(f"{reg.url}/v2/", reg.ca_path, ("alice", "pw-a")) == 200
        reg.stop()
        assert not reg.running
        reg.start()
        assert _get(f"{reg.url}/v2/", reg.ca_path, (reg.username, reg.password)) == 200
