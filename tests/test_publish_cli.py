from __future__ import annotations

import stat
from pathlib import Path

import pytest

from crossyard.cli import main
from crossyard.oci.layout import OciLayout
from helpers.images import tiny_image
from helpers.registry import running_registry


@pytest.mark.integration
def test_keys_publish_verify_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "crossyard.toml").write_text("")
    monkeypatch.setenv("CROSSYARD_KEY_PASSWORD", "pw")
    assert main(["--workspace", str(ws), "keys", "generate"]) == 0
    key = ws / ".crossyard" / "keys" / "cosign.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    store = OciLayout(ws / ".crossyard" / "store").ensure()
    tiny_image(store, b"cli\n", "hello-go:0.1.0")
    with running_registry(tmp_path) as reg:
        monkeypatch.setenv("CROSSYARD_REGISTRY", reg.url)
        monkeypatch.setenv("CROSSYARD_REGISTRY_CA", str(reg.ca_path))
        monkeypatch.setenv("CROSSYARD_REGISTRY_USERNAME", reg.username)
        monkeypatch.setenv("CROSSYARD_REGISTRY_PASSWORD", "wrong")
        assert main(["--workspace", str(ws), "publish"]) == 2
        assert "refused credentials for tester" in capsys.readouterr().err
        monkeypatch.setenv("CROSSYARD_REGISTRY_PASSWORD", reg.password)
        assert main(["--workspace", str(ws), "publish"]) == 0
        pub = str(ws / ".crossyard" / "keys" / "cosign.pub")
        assert main(["--workspace", str(ws), "verify", "hello-go:0.1.0", "--key", pub]) == 0
        other = tmp_path / "other"
        assert main(["--workspace", str(ws), "keys", "generate", "--dir", str(other)]) == 0
        bad = str(other / "cosign.pub")
        assert main(["--workspace", str(ws), "verify", "hello-go:0.1.0", "--key", bad]) == 1
