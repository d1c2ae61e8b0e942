"""Which registry, with which credentials (registry/target.py), against a real TLS registry:
a password inside `CROSSYARD_REGISTRY` is used and never shown."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import require_tool, run_cli
from crossyard.errors import ConfigurationError
from crossyard.oci.layout import OciLayout
from crossyard.registry.server import free_port
from crossyard.registry.target import resolve_target
from crossyard.workspace import Workspace
from helpers.images import lock_stored_images, tiny_image
from helpers.registry import running_registry

# Characters a URL must percent-encode, so the decoded and the encoded forms both matter.
SECRET = "s3cr3t@pw:/x%"
ENCODED = quote(SECRET, safe="")


def _url(host: str, password: str = ENCODED, user: str = "tester") -> str:
    return f"https://{user}:{password}@{host}"


def _workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "crossyard.toml").write_text("")
    store = OciLayout(ws / ".crossyard" / "store").ensure()
    tiny_image(store, b"hello\n", "hello:1")
    lock_stored_images(store, ws / "crossyard.lock")
    keys = run_cli("-C", str(ws), "keys", "generate", env={"CROSSYARD_KEY_PASSWORD": ""})
    assert keys.returncode == 0, keys.stderr
    return ws


def _shows_no_secret(result: subprocess.CompletedProcess[str]) -> None:
    shown = result.stdout + result.stderr
    for form in (SECRET, ENCODED, quote(SECRET)):
        assert form not in shown, f"the password is shown:\n{shown}"


def _env(url: str, ca: Path | None) -> dict[str, str]:
    # Credentials only in the URL: the _USERNAME/_PASSWORD variables are emptied.
    env = {"CROSSYARD_REGISTRY": url, "CROSSYARD_REGISTRY_USERNAME": "",
           "CROSSYARD_REGISTRY_PASSWORD": "", "CROSSYARD_KEY_PASSWORD": ""}
    env["CROSSYARD_REGISTRY_CA"] = str(ca) if ca else ""
    return env


@pytest.mark.integration
def test_a_password_in_the_registry_url_is_used_and_never_shown(tmp_path: Path) -> None:
    require_tool("docker-registry", "apt install docker-registry")
    ws = _workspace(tmp_path)
    with running_registry(tmp_path, users={"tester": SECRET}) as reg:
        closed = f"127.0.0.1:{free_port()}"
        runs = {
            "publish": run_cli("-C", str(ws), "publish", "--no-build", "--json",
                               env=_env(_url(reg.host), reg.ca_path)),
            "publish -v": run_cli("-C", str(ws), "-v", "publish", "--no-build",
                                  env=_env(_url(reg.host), reg.ca_path)),
            "verify missing": run_cli("-C", str(ws), "verify", f"{reg.host}/nope:1",
                                      env=_env(_url(reg.host), reg.ca_path)),
            "wrong password": run_cli("-C", str(ws), "publish", "--no-build",
                                      env=_env(_url(reg.host, ENCODED + "x"), reg.ca_path)),
            "no CA": run_cli("-C", str(ws), "publish", "--no-build",
                             env=_env(_url(reg.host), None)),
            "nobody listening": run_cli("-C", str(ws), "publish", "--no-build",
                                        env=_env(_url(closed), reg.ca_path)),
            "bad port": run_cli("-C", str(ws), "publish", "--no-build",
                                env=_env(_url("127.0.0.1:http"), reg.ca_path)),
            "flag": run_cli("-C", str(ws), "publish", "--no-build", "--registry",
                            _url(reg.host, ENCODED + "x"), env=_env("", reg.ca_path)),
            "registry status": run_cli("-C", str(ws), "registry", "status",
                                       env=_env(_url(reg.host), reg.ca_path)),
        }
    for name, result in runs.items():
        _shows_no_secret(result)
        assert "Traceback" not in result.stderr, (name, result.stderr)
    assert runs["publish"].returncode == 0, runs["publish"].stderr
    assert f'"registry": "{reg.host}"' in runs["publish"].stdout
    assert runs["publish -v"].returncode == 0 and reg.host in runs["publish -v"].stdout
    # The login hint says where the password was given, never the environment variable it was not in.
    assert "(the password is in the CROSSYARD_REGISTRY URL)" in runs["publish -v"].stdout
    assert runs["verify missing"].returncode == 2
    assert f"{reg.host}/nope:1 not found" in runs["verify missing"].stderr
    for name in ("wrong password", "flag"):
        assert runs[name].returncode == 2
        assert f"registry {reg.host} refused credentials for tester" in runs[name].stderr
    assert runs["no CA"].returncode == 2
    assert f"registry {reg.host}: its TLS certificate is not trusted" in runs["no CA"].stderr
    assert runs["nobody listening"].returncode == 1
    assert f"registry {closed}:" in runs["nobody listening"].stderr
    assert runs["bad port"].returncode == 2
    assert "https://127.0.0.1:http" in runs["bad port"].stderr
    assert runs["registry status"].returncode == 1


def test_url_credentials_come_off_the_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CROSSYARD_REGISTRY_USERNAME", "CROSSYARD_REGISTRY_PASSWORD",
                 "CROSSYARD_REGISTRY_CA"):
        monkeypatch.delenv(name, raising=False)
    ws = Workspace(root=tmp_path)
    monkeypatch.setenv("CROSSYARD_REGISTRY", _url("[::1]:5000/"))
    target = resolve_target(ws)
    assert (target.url, target.host) == ("https://[::1]:5000", "[::1]:5000")
    assert (target.username, target.password) == ("tester", SECRET)
    assert SECRET not in repr(target) and ENCODED not in repr(target)
    # Without a password in the URL, the variables give it.
    monkeypatch.setenv("CROSSYARD_REGISTRY_USERNAME", "env-user")
    monkeypatch.setenv("CROSSYARD_REGISTRY_PASSWORD", "env-pw")
    target = resolve_target(ws, registry="registry.example:443")
    assert (target.host, target.username, target.password) == (
        "registry.example:443", "env-user", "env-pw")
    target = resolve_target(ws, registry="https://alice@registry.example")
    assert (target.host, target.username, target.password) == (
        "registry.example", "alice", "env-pw")
    with pytest.raises(ConfigurationError) as bad:
        resolve_target(ws, registry=_url("registry.example:99999"))
    assert SECRET not in str(bad.value) and ENCODED not in str(bad.value)
    assert "--registry" in str(bad.value)
