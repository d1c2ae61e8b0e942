"""Every bad setting, from crossyard.toml or the environment, through the real CLI: exit 2, one
line naming where the value came from, no traceback, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.managed import make_workspace

# (crossyard.toml, environment, command, what the message must name)
CASES = [
    ("", {"CROSSYARD_JOBS": "lots"}, ["plan"], "CROSSYARD_JOBS='lots': the number of parallel jobs"),
    ("", {"CROSSYARD_JOBS": "lots"}, ["build"], "CROSSYARD_JOBS='lots'"),
    ("", {"CROSSYARD_JOBS": ""}, ["plan"], "CROSSYARD_JOBS='': the number of parallel jobs"),
    ('[build]\nsource_date_epoch = "yesterday"\n', {}, ["plan"],
     "crossyard.toml: [build] source_date_epoch = 'yesterday' must be a whole number of seconds"),
    ('[build]\njobs = "4"\n', {}, ["build"], "crossyard.toml: [build] jobs"),
    ("", {"CROSSYARD_PLATFORMS": "linux/sparc"}, ["plan"],
     "CROSSYARD_PLATFORMS='linux/sparc': unknown platform `linux/sparc`"),
    ('[build]\nplatforms = ["linux/sparc"]\n', {}, ["plan"],
     "crossyard.toml: [build] platforms: unknown platform"),
    ('[buidl]\njobs = 2\n', {}, ["plan"], "unknown key `buidl` in crossyard.toml (did you mean `build`?)"),
    ('[registry]\naddr = "nope"\n', {}, ["registry", "up"],
     "crossyard.toml: [registry] addr: malformed address 'nope'"),
    ("[registry]\naddr = 5000\n", {}, ["registry", "up"], "crossyard.toml: [registry] addr must be a string"),
    ('[registry]\ncert = "../x"\n', {}, ["registry", "up"],
     "crossyard.toml: [registry] cert must name a certificate profile"),
    ('registry = "127.0.0.1:5000"\n', {}, ["registry", "up"], "crossyard.toml: `registry` must be a table"),
    ('[registry]\nadr = "127.0.0.1:5000"\n', {}, ["registry", "up"],
     "unknown key `adr` in [registry] (did you mean `addr`?)"),
    ("", {"CROSSYARD_REGISTRY_ADDR": "127.0.0.1:99999"}, ["registry", "up"],
     "CROSSYARD_REGISTRY_ADDR: malformed address '127.0.0.1:99999'"),
    # A misspelt table was ignored by every command but plan and build: `registry k8s` rendered
    # manifests for the default address.
    ('[regsitry]\naddr = "0.0.0.0:5000"\n', {}, ["registry", "k8s", "-o", "k8s"],
     "unknown key `regsitry` in crossyard.toml (did you mean `registry`?)"),
    ('[debian]\nmirror = "deb.example/debian"\n', {}, ["toolchains", "mirror"],
     "crossyard.toml: [debian] mirror: 'deb.example/debian' is not a Debian mirror URL"),
    ('[debian]\nmirorr = "http://mirror.example/debian"\n', {}, ["toolchains", "mirror"],
     "unknown key `mirorr` in [debian] (did you mean `mirror`?)"),
    ('debian = "http://mirror.example/debian"\n', {}, ["toolchains", "mirror"],
     "crossyard.toml: `debian` must be a table"),
    ('[debain]\nmirror = "http://mirror.example/debian"\n', {}, ["toolchains", "mirror"],
     "unknown key `debain` in crossyard.toml (did you mean `debian`?)"),
    ("", {"CROSSYARD_DEBIAN_MIRROR": "ftp://mirror.example/debian"}, ["toolchains", "mirror"],
     "CROSSYARD_DEBIAN_MIRROR: 'ftp://mirror.example/debian' is not a Debian mirror URL"),
]


@pytest.mark.parametrize(("toml", "env", "command", "named"), CASES,
                         ids=[f"{' '.join(c[2])}:{c[3][:40]}" for c in CASES])
def test_bad_setting_exits_2_naming_its_origin(
    tmp_path: Path, toml: str, env: dict[str, str], command: list[str], named: str
) -> None:
    ws = make_workspace(tmp_path, toml)
    (ws.root / "recipes").mkdir()
    (ws.root / "recipes" / "app.toml").write_text(
        'name = "app"\nkind = "c"\n[source]\npath = "."\n[c]\nsources = ["main.c"]\n')
    (ws.root / "recipes" / "main.c").write_text("int main(void){return 0;}\n")
    # Only the case's own variables: a CROSSYARD_* of the machine running the tests stays out.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CROSSYARD_")}
    result = subprocess.run([sys.executable, "-m", "crossyard.cli", "-C", str(ws.root), *command],
                            env={**clean, **env}, cwd=ws.root, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("crossyard: error: "), result.stderr
    assert named in lines[0]
    assert not (ws.state / "registry").exists() and not (ws.state / "pki").exists()
    assert not (ws.root / "k8s").exists() and not (ws.state / "store").exists()
