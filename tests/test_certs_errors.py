"""Bad certificate input: one clear message naming the file/key and the fix, exit status 2, no
traceback, nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from crossyard import pki
from crossyard.cli import main
from crossyard.errors import ConfigurationError
from helpers.pkiws import CA_TOML, make_workspace


def _cli(ws_root: Path, *args: str) -> tuple[int, str]:
    """The real console entry point in a subprocess: exit status and stderr as users see them."""
    r = run_cli("--workspace", str(ws_root), "certs", *args)
    assert "Traceback" not in r.stderr
    assert "PRIVATE KEY" not in r.stdout + r.stderr
    return r.returncode, r.stderr


def _main(capsys: pytest.CaptureFixture[str], ws_root: Path, *args: str) -> tuple[int, str]:
    """`cli.main` in-process (same code path, no interpreter start) for the many table cases."""
    code = main(["--workspace", str(ws_root), "certs", *args])
    captured = capsys.readouterr()
    assert "PRIVATE KEY" not in captured.out + captured.err
    return code, captured.err


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ('names = ["*.*"]\n', ["registry.toml", "`names`", "'*.*' is not a valid DNS name",
                               "wildcard may only be the whole leftmost label"]),
        ('names = ["10.0.0.300"]\n', ["registry.toml", "'10.0.0.300' is not a valid IP address"]),
        ('names = ["fd00::zz"]\n', ["registry.toml", "not a valid IP address"]),
        ('names = ["bad_name.local"]\n', ["registry.toml", "not a valid DNS name"]),
        ('usage = ["server"]\n', ["registry.toml", "has no `names`"]),
        ("names = []\n", ["registry.toml", "has no `names`"]),
        ('name = ["localhost"]\n', ["registry.toml", "unknown key `name`", "did you mean `names`"]),
        ('names = ["localhost"]\nlifetime = "90 days"\n',
         ["registry.toml", "`lifetime`", '"90d"']),
        ('names = ["localhost"]\nusage = ["sever"]\n', ["`usage`", "did you mean `server`"]),
        ('names = ["localhost"]\nkey_type = "rsa-2048"\n',
         ["`key_type`", "ecdsa-p256, rsa-3072"]),
        ('names = ["registry.example.com"]\n',
         ["'registry.example.com' is outside the CA's permitted names", "certs/ca.toml"]),
        ('names = ["localhost"\n', ["registry.toml", "malformed TOML"]),
        ('names = ["localhost"]\nlifetime = "99999999d"\n',
         ["registry.toml", "`lifetime` = '99999999d' is out of range", "between 1s and 36500d"]),
    ],
)
def test_bad_leaf_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], profile: str, expected: list[str]
) -> None:
    ws = make_workspace(tmp_path, profiles={"registry": profile})
    code, err = _main(capsys, ws.root, "issue", "registry")
    assert code == 2, err
    for fragment in expected:
        assert fragment in err, (fragment, err)
    assert len(err.strip().splitlines()) == 1, err
    assert not (ws.pki_dir / "registry").exists()


@pytest.mark.parametrize(
    ("ca", "expected"),
    [
        ('permited_dns = ["local"]\n', ["ca.toml", "unknown key `permited_dns`",
                                         "did you mean `permitted_dns`"]),
        ('permitted_ips = ["10.0.0.1/8"]\n', ["ca.toml", "`permitted_ips`", "10.0.0.0/8"]),
        ('permitted_dns = ["*.local"]\n', ["ca.toml", "`permitted_dns`"]),
        ('permitted_dns = []\npermitted_ips = []\n', ["ca.toml", "could sign nothing"]),
        ('overlap = "soon"\n', ["ca.toml", "`overlap`"]),
        ('lifetime = "99999999d"\n', ["ca.toml", "`lifetime`", "between 1s and 36500d"]),
        ('overlap = "1d"\nswitch_after = "2d"\n', ["ca.toml", "`switch_after`", "`overlap`"]),
    ],
)
def test_bad_ca_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ca: str, expected: list[str]
) -> None:
    ws = make_workspace(tmp_path, ca=ca)
    code, err = _main(capsys, ws.root, "init")
    assert code == 2, err
    for fragment in expected:
        assert fragment in err, (fragment, err)
    assert not pki.Pki.of(ws).ca.key.exists()


def test_issue_options_need_san(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = make_workspace(tmp_path)
    code, err = _main(capsys, ws.root, "issue", "registry", "--days", "5")
    assert code == 2 and "only to an ad hoc certificate" in err and "certs/registry.toml" in err
    code, err = _main(capsys, ws.root, "issue", "x", "--san", "localhost", "--days", "0")
    assert code == 2 and "positive" in err
    code, err = _main(capsys, ws.root, "issue", "x", "--san", "10.0.0.300")
    assert code == 2 and "--san" in err and "not a valid IP address" in err
    code, err = _main(capsys, ws.root, "issue", "x", "--san", "localhost", "--days", "5",
                      "--lifetime", "12h")
    assert code == 2 and "--days 5 and --lifetime 12h" in err and "give one" in err
    code, err = _main(capsys, ws.root, "issue", "x", "--san", "localhost", "--days", "99999999")
    assert code == 2 and "`--days` = 99999999 is out of range" in err and "36500d" in err
    code, err = _main(capsys, ws.root, "issue", "x", "--san", "localhost", "--lifetime",
                      "99999999d")
    assert code == 2 and "`--lifetime`" in err and "out of range" in err
    assert not (ws.pki_dir / "x").exists()
    assert _main(capsys, ws.root, "issue", "x", "--san", "localhost", "--lifetime", "12h")[0] == 0


def test_missing_profile_names_the_file(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    code, err = _cli(ws.root, "issue", "nothere")
    assert code == 2
    assert "certs/nothere.toml" in err and "names = " in err
    code, err = _cli(ws.root, "issue", "../escape")
    assert code == 2 and "not usable" in err


def test_missing_corrupt_and_exposed_ca_key(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    assert _cli(ws.root, "init")[0] == 0
    key = pki.Pki.of(ws).ca.key
    good = key.read_bytes()

    key.chmod(0o644)
    code, err = _cli(ws.root, "issue", "registry")
    assert code == 2
    assert f"private key {key} is readable by group or others (mode 0644)" in err
    assert f"chmod 600 {key}" in err
    key.chmod(0o640)
    assert "readable by group or others" in _cli(ws.root, "issue", "registry")[1]

    key.chmod(0o600)
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n")
    code, err = _cli(ws.root, "issue", "registry")
    assert code == 2
    assert f"private key {key} cannot be read" in err and "crossyard certs init --force" in err

    key.unlink()
    code, err = _cli(ws.root, "issue", "registry")
    assert code == 2
    assert f"private key {key} is missing" in err

    # A key that parses but belongs to another CA.
    other = make_workspace(tmp_path / "other")
    pki.ensure_ca(other)
    key.write_bytes(pki.Pki.of(other).ca.key.read_bytes())
    key.chmod(0o600)
    code, err = _cli(ws.root, "issue", "registry")
    assert code == 2 and "does not belong to" in err

    key.write_bytes(good)
    assert _cli(ws.root, "issue", "registry")[0] == 0
    assert not list(ws.pki_dir.rglob("*.tmp"))


def test_exposed_leaf_key_is_refused_on_load(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    leaf = pki.ensure_leaf(ws, "registry")
    leaf.key.chmod(0o604)
    with pytest.raises(ConfigurationError, match="readable by group or others"):
        pki.ensure_leaf(ws, "registry")


def test_ca_defaults_without_profile_and_cli_overrides(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ca=None)
    code, err = _cli(ws.root, "init", "--permit-dns", "cluster.local", "--permit-ip", "10.0.0.0/8")
    assert code == 0, err
    code, err = _cli(ws.root, "issue", "registry")  # has localhost: not permitted now
    assert code == 2 and "'localhost' is outside" in err
    code, err = _cli(ws.root, "init", "--force", "--permit-ip", "10.0.0.300/8")
    assert code == 2 and "10.0.0.300/8" in err


def test_trust_bad_input(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ca=CA_TOML)
    pki.ensure_leaf(ws, "registry")
    code, err = _cli(ws.root, "trust", "--format", "docker", "--host", "https://reg:5000/")
    assert code == 2 and "HOST:PORT" in err
    code, err = _cli(ws.root, "trust", "--format", "docker", "--host", "reg:99999")
    assert code == 2 and "out of range" in err
    code, err = _cli(ws.root, "trust", "--format", "docker", "--host", "reg:5000", "--client",
                     "registry")
    assert code == 2 and "not a client certificate" in err


def test_corrupt_ca_certificate_advice_leads_out(tmp_path: Path) -> None:
    """Every command that meets a corrupt ca.crt says the same thing, and that thing works:
    no advice sends the user to a command that fails the same way."""
    ws = make_workspace(tmp_path)
    assert _cli(ws.root, "issue", "registry")[0] == 0
    layout = pki.Pki.of(ws)
    layout.ca.cert.write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    for args in (["status"], ["init"], ["rotate"], ["rotate", "--ca"], ["issue", "registry"]):
        code, err = _cli(ws.root, *args)
        assert code == 2, (args, err)
        assert f"{layout.ca.cert}" in err, (args, err)
        assert "restore it from your backup" in err, (args, err)
        assert "`crossyard certs init --force`" in err, (args, err)
        assert "run `crossyard certs init` to" not in err, (args, err)
    code, err = _cli(ws.root, "init", "--force")
    assert code == 0, err
    assert _cli(ws.root, "rotate")[0] == 0  # re-issues the leaf from the new CA
    assert _cli(ws.root, "status", "--threshold-days", "1")[0] == 0

    # A corrupt bundle (what `certs trust` reads) is rewritten from the CA by `certs init`.
    layout.bundle.write_bytes(b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    trust = ["trust", "--format", "docker", "--host", "localhost:5000"]
    code, err = _cli(ws.root, *trust)
    assert code == 2 and "is corrupt" in err and "`crossyard certs init` rewrites it" in err
    assert _cli(ws.root, "init")[0] == 0
    assert _cli(ws.root, *trust)[0] == 0
