"""`crossyard certs status` against real short-lived certificates (the clock is never faked)."""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

from conftest import run_cli
from crossyard import certs, pki
from helpers.pkiws import REGISTRY_TOML, make_workspace


def _status(ws_root: Path, *args: str) -> tuple[int, str, str]:
    r = run_cli("--workspace", str(ws_root), "certs", "status", *args)
    assert "Traceback" not in r.stderr
    return r.returncode, r.stdout, r.stderr


def test_status_lists_every_certificate_and_passes_when_fresh(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    pki.ensure_leaf(ws, "registry")
    code, out, err = _status(ws.root)
    assert code == 0, out + err
    assert "registry [leaf] ok" in out
    assert "ca [ca] ok" in out
    assert "localhost, registry.cluster.local, 127.0.0.1" in out
    assert "issuer:  CN=test CA" in out
    assert "days left" in out
    code, out, _ = _status(ws.root, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["ok"] is True
    assert data["threshold_days"] == 30
    by_name = {c["name"]: c for c in data["certificates"]}
    assert set(by_name) == {"ca", "registry"}
    reg = by_name["registry"]
    assert reg["dns_names"] == ["localhost", "registry.cluster.local"]
    assert reg["ip_addresses"] == ["127.0.0.1"]
    assert reg["usage"] == ["server"]
    assert reg["issuer"].startswith("CN=test CA")
    assert 89 < reg["days_left"] <= 90
    assert reg["state"] == "ok"
    assert "PRIVATE KEY" not in out


def test_status_flags_expiring_within_threshold(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, profiles={"short": 'names = ["localhost"]\nlifetime = "12h"\n'})
    pki.ensure_leaf(ws, "short")
    code, out, err = _status(ws.root)  # default threshold: 30 days
    assert code == 1
    assert "short [leaf] EXPIRING" in out
    assert "short (expiring)" in err and "crossyard certs rotate" in err
    code, out, _ = _status(ws.root, "--threshold-days", "0.25")  # 6 h: 12 h is fine
    assert code == 0, out
    code, out, _ = _status(ws.root, "--threshold-days", "1", "--json")
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False
    assert {c["name"]: c["state"] for c in data["certificates"]} == {
        "ca": "ok", "short": "expiring",
    }


def test_status_reports_expired_whatever_the_threshold(tmp_path: Path) -> None:
    ws = make_workspace(
        tmp_path,
        profiles={"brief": 'names = ["localhost"]\nlifetime = "2s"\n', "registry": REGISTRY_TOML},
    )
    leaf = pki.ensure_leaf(ws, "brief")
    pki.ensure_leaf(ws, "registry")
    end = certs.expiry(leaf.cert)
    time.sleep(max(0.0, (end - datetime.datetime.now(datetime.UTC)).total_seconds()) + 1.1)
    code, out, err = _status(ws.root, "--threshold-days", "0")
    assert code == 1
    assert "brief [leaf] EXPIRED" in out
    assert "registry [leaf] ok" in out
    assert "brief (expired)" in err
    code, out, _ = _status(ws.root, "--threshold-days", "0", "--json")
    assert code == 1
    states = {c["name"]: c for c in json.loads(out)["certificates"]}
    assert states["brief"]["state"] == "expired"
    assert states["brief"]["seconds_left"] < 0
    assert states["registry"]["state"] == "ok"


def test_status_warns_about_an_exposed_key(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    leaf = pki.ensure_leaf(ws, "registry")
    leaf.key.chmod(0o644)
    code, out, err = _status(ws.root)
    assert code == 0
    assert f"private key {leaf.key} of registry is accessible to group or others" in err
    code, out, _ = _status(ws.root, "--json")
    rows = {c["name"]: c for c in json.loads(out)["certificates"]}
    assert rows["registry"]["key_exposed"] is True and rows["ca"]["key_exposed"] is False


def test_status_without_ca_is_a_clear_error(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    code, _, err = _status(ws.root)
    assert code == 2
    assert "no CA at" in err and "crossyard certs init" in err


def test_status_is_not_ok_without_the_ca_key_and_its_advice_works(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    leaf = pki.ensure_leaf(ws, "registry")
    ca_key = pki.Pki.of(ws).ca.key
    ca_key.unlink()
    code, out, err = _status(ws.root)
    assert code == 1, out + err
    assert "ca [ca] KEY MISSING" in out and "registry [leaf] ok" in out
    assert f"ca [ca]: key missing ({ca_key})" in err
    assert "restore it from your backup" in err and "`crossyard certs rotate --ca`" in err
    code, out, _ = _status(ws.root, "--json")
    rows = {c["role"]: c for c in json.loads(out)["certificates"]}
    assert code == 1 and rows["ca"]["state"] == "key-missing"
    assert rows["ca"]["key_problem"] == "key missing"

    # The advice is a real way out: staging needs no old key, the switch re-issues the leaf
    # from the new CA, and everything is ok again.
    for step in (["rotate", "--ca"], ["switch-ca"]):
        r = run_cli("--workspace", str(ws.root), "certs", *step)
        assert r.returncode == 0, (step, r.stdout + r.stderr)
    code, out, err = _status(ws.root, "--threshold-days", "0.01")
    assert code == 0, out + err
    ca_cert, _ = certs.load_ca(pki.Pki.of(ws).ca)
    assert certs.issued_by(certs.load_cert(leaf.cert, fix=""), ca_cert)


def test_status_flags_a_leaf_key_that_is_missing_or_wrong(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    leaf = pki.ensure_leaf(ws, "registry")
    leaf.key.write_bytes(pki.Pki.of(ws).ca.key.read_bytes())  # a key, but not this one
    code, out, err = _status(ws.root)
    assert code == 1 and "registry [leaf] KEY MISMATCH" in out
    assert "run `crossyard certs rotate` to re-issue registry" in err
    leaf.key.write_bytes(b"garbage")
    code, out, err = _status(ws.root)
    assert code == 1 and "registry [leaf] KEY UNREADABLE" in out
    r = run_cli("--workspace", str(ws.root), "certs", "rotate")
    assert r.returncode == 0 and "re-issued registry: key unreadable" in r.stdout, r.stderr
    assert _status(ws.root)[0] == 0
