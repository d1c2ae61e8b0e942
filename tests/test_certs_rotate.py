"""Leaf renewal at two thirds of life, and the CA rotation's three phases (stage, switch,
retire) with their refusals — with real short lifetimes and real OpenSSL verification."""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import require_tool, run_cli
from crossyard import certs, pki
from crossyard.errors import ConfigurationError
from crossyard.workspace import Workspace
from helpers.pkiws import CA_TOML, REGISTRY_TOML, load, make_workspace, openssl_verify, serial

SHORT = 'names = ["short.cluster.local"]\nlifetime = "6s"\n'
LONG = 'names = ["long.cluster.local", "10.1.2.3"]\nlifetime = "1h"\n'


def _sleep_until(when: datetime.datetime, margin: float = 0.3) -> None:
    time.sleep(max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds()) + margin)


def test_ensure_leaf_is_idempotent_and_follows_profile_and_ca(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    layout = pki.Pki.of(ws)
    leaf = pki.ensure_leaf(ws, "registry")
    first = serial(leaf.cert)
    assert pki.ensure_leaf(ws, "registry") == leaf
    assert serial(leaf.cert) == first
    assert layout.bundle.read_bytes() == layout.ca.cert.read_bytes()
    # A profile edit re-issues; so does a CA that is no longer current.
    (ws.root / "certs/registry.toml").write_text(REGISTRY_TOML.replace('"localhost", ', ""))
    pki.ensure_leaf(ws, "registry")
    assert serial(leaf.cert) != first
    assert "localhost" not in certs.inspect(leaf.cert).dns_names
    second = serial(leaf.cert)
    pki.init_ca(ws, force=True)
    pki.ensure_leaf(ws, "registry")
    assert serial(leaf.cert) != second
    ca_cert, _ = certs.load_ca(layout.ca)
    assert certs.issued_by(load(leaf.cert), ca_cert)


def test_rotate_renews_only_leaves_past_two_thirds(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, profiles={"short": SHORT, "long": LONG})
    short = pki.ensure_leaf(ws, "short")
    long = pki.ensure_leaf(ws, "long")
    s0, l0 = serial(short.cert), serial(long.cert)
    info = certs.inspect(short.cert)
    assert datetime.timedelta(seconds=6) <= info.lifetime <= datetime.timedelta(seconds=8)

    assert pki.rotate(ws) == []  # just issued: nothing is due
    assert (serial(short.cert), serial(long.cert)) == (s0, l0)

    _sleep_until(info.not_before + info.lifetime * 2 / 3)
    r = run_cli("--workspace", str(ws.root), "certs", "rotate")
    assert r.returncode == 0, r.stderr
    assert "re-issued short: past two thirds of its lifetime" in r.stdout
    assert "long" not in r.stdout
    assert "registry not running" in r.stdout
    assert serial(short.cert) != s0
    assert serial(long.cert) == l0
    renewed = certs.inspect(short.cert)
    assert renewed.not_after > info.not_after
    assert renewed.dns_names == ("short.cluster.local",)

    assert sorted(pki.rotate(ws, force=True)) == ["long", "short"]
    assert serial(long.cert) != l0


def test_rotate_renews_adhoc_leaf_with_its_own_names(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, profiles={})
    pki.ensure_ca(ws)
    r = run_cli(
        "--workspace", str(ws.root), "certs", "issue", "adhoc", "--san", "adhoc.cluster.local",
        "--san", "10.9.8.7", "--lifetime", "3s", "--usage", "client",
    )
    assert r.returncode == 0, r.stderr
    leaf = pki.Pki.of(ws).leaf("adhoc")
    info = certs.inspect(leaf.cert)
    _sleep_until(info.not_before + info.lifetime * 2 / 3)
    assert pki.rotate(ws) == ["adhoc"]
    after = certs.inspect(leaf.cert)
    assert (after.dns_names, after.ip_addresses, after.usage) == (
        ("adhoc.cluster.local",), ("10.9.8.7",), ("client",)
    )
    assert after.lifetime == info.lifetime


def _cli(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    r = run_cli("--workspace", str(ws.root), "certs", *args)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def _rotation(ws: Workspace) -> dict:  # type: ignore[type-arg]
    r = _cli(ws, "status", "--json", "--threshold-days", "0.01")
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)["ca_rotation"]  # type: ignore[no-any-return]


def test_ca_rotation_in_three_phases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    openssl = require_tool("openssl", "apt-get install openssl")
    ws = make_workspace(tmp_path, profiles={"registry": REGISTRY_TOML, "long": LONG})
    layout = pki.Pki.of(ws)
    leaf = pki.ensure_leaf(ws, "registry")
    pki.ensure_leaf(ws, "long")
    old_ca = tmp_path / "old-ca.crt"
    old_leaf = tmp_path / "old-leaf.crt"
    shutil.copy(layout.ca.cert, old_ca)
    shutil.copy(leaf.cert, old_leaf)
    assert len(certs.load_bundle(layout.bundle)) == 1
    assert _rotation(ws)["phase"] == 0

    # Out of order: nothing is staged, so there is nothing to switch to.
    r = _cli(ws, "switch-ca")
    assert r.returncode == 2 and "`crossyard certs rotate --ca`" in r.stderr, r.stderr

    # Phase 1: the new CA is staged and trusted; every leaf still comes from the old CA, so a
    # client holding only the pre-rotation trust keeps verifying what servers present.
    r = _cli(ws, "rotate", "--ca")
    assert r.returncode == 0, r.stderr
    assert "new CA staged" in r.stdout and "re-issued" not in r.stdout
    assert "crossyard certs switch-ca" in r.stdout and "crossyard certs trust" in r.stdout
    assert leaf.cert.read_bytes() == old_leaf.read_bytes()
    assert layout.ca.cert.read_bytes() == old_ca.read_bytes()
    new_ca = tmp_path / "new-ca.crt"
    shutil.copy(layout.next_ca.cert, new_ca)
    assert layout.next_ca.key.stat().st_mode & 0o777 == 0o600
    assert certs.load_bundle(layout.bundle) == [load(new_ca), load(old_ca)]
    staged_bundle = layout.bundle.read_bytes()
    assert openssl_verify(openssl, old_ca, leaf.cert).returncode == 0
    assert openssl_verify(openssl, layout.bundle, leaf.cert).returncode == 0
    state = json.loads(layout.state.read_text())
    end = datetime.datetime.fromisoformat(state["overlap_end"])
    assert datetime.timedelta(minutes=59) < end - datetime.datetime.now(datetime.UTC) <= (
        datetime.timedelta(hours=1)
    )
    rotation = _rotation(ws)
    assert (rotation["phase"], rotation["name"], rotation["next"]) == (
        1, "staged", "crossyard certs switch-ca")
    r = _cli(ws, "status", "--threshold-days", "0.01")
    assert "[next-ca]" in r.stdout and "CA rotation: phase 1 of 3 (staged)" in r.stdout
    assert "next: give every client the trust bundle" in r.stdout
    # Plain renewal in phase 1 still signs with the current (old) CA.
    assert pki.rotate(ws, force=True) == ["long", "registry"]
    assert openssl_verify(openssl, old_ca, leaf.cert).returncode == 0

    # Out of order in phase 1: no second rotation, no retiring the CA that signs everything.
    r = _cli(ws, "rotate", "--ca")
    assert r.returncode == 2 and "in progress (phase 1" in r.stderr
    assert "crossyard certs switch-ca" in r.stderr
    r = _cli(ws, "retire-ca", "--force")
    assert r.returncode == 2 and "crossyard certs switch-ca" in r.stderr
    assert layout.bundle.read_bytes() == staged_bundle

    # Phase 2: every leaf is re-issued by the new CA, signed only once the bundle already
    # trusts it; the bundle is byte for byte what phase 1 distributed.
    seen: list[int] = []
    original = pki._issue

    def checked(p: pki.Pki, profile):  # type: ignore[no-untyped-def]
        signer = certs.load_cert(p.ca.cert, fix="")
        assert signer in certs.load_bundle(p.bundle)
        seen.append(len(certs.load_bundle(p.bundle)))
        return original(p, profile)

    monkeypatch.setattr(pki, "_issue", checked)
    renewed = pki.switch_ca(ws)
    monkeypatch.undo()
    assert sorted(r.name for r in renewed) == ["long", "registry"]
    assert {r.reason for r in renewed} == {"issued by a CA that is no longer current"}
    assert seen == [2, 2]
    assert layout.ca.cert.read_bytes() == new_ca.read_bytes()
    assert layout.previous_ca.read_bytes() == old_ca.read_bytes()
    assert not layout.next_ca.cert.exists() and not layout.next_ca.key.exists()
    assert layout.bundle.read_bytes() == staged_bundle
    assert openssl_verify(openssl, new_ca, leaf.cert).returncode == 0
    assert openssl_verify(openssl, old_ca, leaf.cert).returncode != 0  # old trust fails now
    assert openssl_verify(openssl, layout.bundle, leaf.cert).returncode == 0
    assert openssl_verify(openssl, layout.bundle, old_leaf).returncode == 0
    rotation = _rotation(ws)
    assert (rotation["phase"], rotation["name"], rotation["next"]) == (
        2, "switched", "crossyard certs retire-ca")
    r = _cli(ws, "status", "--threshold-days", "0.01")
    assert "[previous-ca]" in r.stdout and "CA rotation: phase 2 of 3 (switched)" in r.stdout
    r = _cli(ws, "switch-ca")
    assert r.returncode == 2 and "crossyard certs retire-ca" in r.stderr

    # Phase 3, not before the overlap ends unless forced.
    r = _cli(ws, "retire-ca")
    assert r.returncode == 2
    assert "overlap lasts until" in r.stderr and "--force" in r.stderr
    assert len(certs.load_bundle(layout.bundle)) == 2
    r = _cli(ws, "retire-ca", "--force")
    assert r.returncode == 0, r.stderr
    assert certs.load_bundle(layout.bundle) == [load(new_ca)]
    assert not layout.previous_ca.exists() and not layout.state.exists()
    assert openssl_verify(openssl, layout.bundle, leaf.cert).returncode == 0
    assert openssl_verify(openssl, layout.bundle, old_leaf).returncode != 0
    assert _rotation(ws)["phase"] == 0
    r = _cli(ws, "retire-ca")
    assert r.returncode == 0 and "no previous CA" in r.stdout


def test_retire_after_overlap_needs_no_force(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, ca=CA_TOML.replace('overlap = "1h"', 'overlap = "2s"'))
    pki.ensure_leaf(ws, "registry")
    assert _cli(ws, "rotate", "--ca").returncode == 0
    r = _cli(ws, "switch-ca")
    assert r.returncode == 0, r.stderr
    assert "re-issued registry: issued by a CA that is no longer current" in r.stdout
    assert "registry not running" in r.stdout and "retire-ca" in r.stdout
    end = pki.overlap_end(ws)
    assert end is not None
    _sleep_until(end + datetime.timedelta(seconds=1))
    assert pki.retire_ca(ws)
    assert len(certs.load_bundle(pki.Pki.of(ws).bundle)) == 1
    assert pki.overlap_end(ws) is None


def test_switch_after_lets_scheduled_rotate_switch(tmp_path: Path) -> None:
    ca = CA_TOML.replace('overlap = "1h"', 'overlap = "1h"\nswitch_after = "3s"')
    ws = make_workspace(tmp_path, ca=ca)
    leaf = pki.ensure_leaf(ws, "registry")
    before = serial(leaf.cert)
    assert _cli(ws, "rotate", "--ca").returncode == 0
    rotation = pki.rotation(ws)
    assert rotation.phase == 1 and rotation.switch_at is not None
    assert "`crossyard certs rotate` does it from" in rotation.advice(rotation.switch_at
                                                                     - datetime.timedelta(1))
    r = _cli(ws, "rotate")  # the scheduled run, before the switch point: nothing changes
    assert r.returncode == 0 and "switched" not in r.stdout, r.stdout
    assert serial(leaf.cert) == before and pki.rotation(ws).phase == 1
    _sleep_until(rotation.switch_at)
    r = _cli(ws, "rotate")
    assert r.returncode == 0, r.stderr
    assert "switched to the staged CA" in r.stdout
    assert "re-issued registry: issued by a CA that is no longer current" in r.stdout
    assert pki.rotation(ws).phase == 2 and serial(leaf.cert) != before

    bad = make_workspace(tmp_path / "bad", ca=CA_TOML.replace(
        'overlap = "1h"', 'overlap = "1h"\nswitch_after = "2h"'))
    r = _cli(bad, "rotate", "--ca")
    assert r.returncode == 2
    assert "ca.toml" in r.stderr and "`switch_after`" in r.stderr and "shorter than" in r.stderr


@pytest.mark.parametrize("crash", ["after-previous", "mid-pair"])
def test_interrupted_switch_is_finished_by_the_next_command(tmp_path: Path, crash: str) -> None:
    openssl = require_tool("openssl", "apt-get install openssl")
    ws = make_workspace(tmp_path)
    layout = pki.Pki.of(ws)
    leaf = pki.ensure_leaf(ws, "registry")
    pki.rotate(ws, ca=True)
    staged_bundle = layout.bundle.read_bytes()
    new_ca = layout.next_ca.cert.read_bytes()
    # What a switch leaves behind when killed: the old CA kept as previous.crt, and maybe the
    # staged key already in ca.key beside the old certificate.
    shutil.copy(layout.ca.cert, layout.previous_ca)
    if crash == "mid-pair":
        shutil.copy(layout.next_ca.key, layout.ca.key)
    rotation = pki.rotation(ws)
    assert rotation.phase == 2 and rotation.interrupted
    r = _cli(ws, "status", "--threshold-days", "0.01")
    assert "switch was interrupted: run `crossyard certs switch-ca`" in r.stdout
    assert rotation.next_command == "crossyard certs switch-ca"
    assert layout.bundle.read_bytes() == staged_bundle
    r = _cli(ws, "switch-ca")
    assert r.returncode == 0, r.stderr
    assert layout.ca.cert.read_bytes() == new_ca
    assert certs.key_matches(load(layout.ca.cert), certs.load_private_key(layout.ca.key, fix=""))
    assert not layout.next_ca.cert.exists()
    assert layout.bundle.read_bytes() == staged_bundle
    assert openssl_verify(openssl, layout.ca.cert, leaf.cert).returncode == 0
    assert not pki.rotation(ws).interrupted


def test_retire_refuses_while_a_leaf_still_uses_the_old_ca(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    layout = pki.Pki.of(ws)
    leaf = pki.ensure_leaf(ws, "registry")
    keep_crt, keep_key = leaf.cert.read_bytes(), leaf.key.read_bytes()
    pki.rotate(ws, ca=True)
    pki.switch_ca(ws)
    leaf.cert.write_bytes(keep_crt)  # as if the re-issue had never happened
    leaf.key.write_bytes(keep_key)
    with pytest.raises(ConfigurationError, match="still issued by the previous CA"):
        pki.retire_ca(ws, force=True)
    assert pki.rotate(ws) == ["registry"]
    pki.retire_ca(ws, force=True)
    assert not layout.previous_ca.exists() and not layout.next_ca.cert.exists()


def test_rotate_ca_force_starts_over(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    layout = pki.Pki.of(ws)
    pki.ensure_leaf(ws, "registry")
    pki.rotate(ws, ca=True)
    first = layout.next_ca.cert.read_bytes()
    assert _cli(ws, "rotate", "--ca", "--force").returncode == 0  # phase 1: replace the staged
    assert layout.next_ca.cert.read_bytes() != first
    assert len(certs.load_bundle(layout.bundle)) == 2
    pki.switch_ca(ws)
    assert _cli(ws, "rotate", "--ca", "--force").returncode == 0  # phase 2: previous dropped
    assert not layout.previous_ca.exists() and pki.rotation(ws).phase == 1
    assert len(certs.load_bundle(layout.bundle)) == 2


def test_concurrent_rotations_leave_matching_pairs(tmp_path: Path) -> None:
    """Several processes rotating at once (cron + a manual run + `registry up`) serialize on the
    PKI lock: every leaf's key still matches its certificate and the chain verifies."""
    openssl = require_tool("openssl", "apt-get install openssl")
    ws = make_workspace(tmp_path, profiles={"registry": REGISTRY_TOML, "long": LONG})
    pki.ensure_leaf(ws, "registry")
    pki.ensure_leaf(ws, "long")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c",
             "import sys; from crossyard import pki; from crossyard.workspace import Workspace\n"
             "ws = Workspace(root=__import__('pathlib').Path(sys.argv[1]))\n"
             "for _ in range(5): pki.rotate(ws, force=True); pki.ensure_leaf(ws, 'registry')",
             str(ws.root)],
        )
        for _ in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    layout = pki.Pki.of(ws)
    for name in ("registry", "long"):
        paths = layout.leaf(name)
        key = certs.load_private_key(paths.key, fix="")
        assert certs.key_matches(load(paths.cert), key), name
        assert openssl_verify(openssl, layout.bundle, paths.cert).returncode == 0
    assert not list(ws.pki_dir.rglob("*.tmp"))


def test_rotate_ca_checks_leaves_against_new_constraints_first(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    layout = pki.Pki.of(ws)
    pki.ensure_leaf(ws, "registry")
    before = layout.ca.cert.read_bytes(), layout.bundle.read_bytes()
    (ws.root / "certs/ca.toml").write_text(CA_TOML.replace('"localhost", ', ""))
    with pytest.raises(ConfigurationError, match="'localhost' is outside"):
        pki.rotate(ws, ca=True)
    assert (layout.ca.cert.read_bytes(), layout.bundle.read_bytes()) == before
    assert not layout.previous_ca.exists() and not layout.next_ca.cert.exists()
