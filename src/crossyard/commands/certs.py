"""`crossyard certs init|issue|status|rotate|switch-ca|retire-ca|trust|client`: the workspace CA
under .crossyard/pki/, the leaves issued from certs/*.toml, trust material for registry clients,
and client certificates for `tcp://` Docker engines."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Any

from .. import certprofiles, certs, pki, trust
from ..errors import ConfigurationError
from ..fsutil import atomic_write_bytes
from ..workspace import Workspace
from . import add_json_options, emit_json

_DAY = 86400.0


def _ws(args: argparse.Namespace) -> Workspace:
    return Workspace.find(explicit=args.workspace)


def _init(args: argparse.Namespace) -> int:
    ws = _ws(args)
    paths, created = pki.init_ca(
        ws,
        force=args.force,
        permitted_dns=tuple(args.permit_dns) if args.permit_dns else None,
        permitted_ips=tuple(args.permit_ip) if args.permit_ip else None,
    )
    if not created:
        print(f"CA already exists: {paths.cert} (use --force to replace it)")
        return 0
    print(f"CA written: {paths.cert}")
    print(f"trust bundle: {pki.Pki.of(ws).bundle}")
    if args.force and pki.Pki.of(ws).leaf_names():
        print(
            "existing certificates were issued by the replaced CA: run `crossyard certs rotate` "
            "to re-issue them and distribute the new bundle (`crossyard certs trust`); for a "
            "rotation without downtime use `crossyard certs rotate --ca` instead"
        )
    return 0


def _issue(args: argparse.Namespace) -> int:
    ws = _ws(args)
    name = certprofiles.check_name(args.name)
    profile = None
    if not args.san and (args.usage or args.lifetime or args.days is not None):
        raise ConfigurationError(
            f"--days/--lifetime/--usage apply only to an ad hoc certificate (with --san); for "
            f"`{name}` set `lifetime`/`usage` in certs/{name}.toml"
        )
    if args.days is not None and args.lifetime:
        raise ConfigurationError(
            f"--days {args.days} and --lifetime {args.lifetime} both set the lifetime; give one"
        )
    if args.days is not None and args.days <= 0:
        raise ConfigurationError(f"--days {args.days}: give a positive number of days")
    if args.san:
        where = "--san"
        sans = [certprofiles.classify_name(s, where=where) for s in args.san]
        lifetime = (
            certprofiles.parse_lifetime(args.lifetime, key="--lifetime", file="command line")
            if args.lifetime else certprofiles.check_lifetime(
                86400 * (args.days if args.days is not None else 90),
                shown=str(args.days), key="--days", file="command line",
            )
        )
        dns = tuple(dict.fromkeys(n for k, n in sans if k == "dns"))
        ips = tuple(dict.fromkeys(n for k, n in sans if k == "ip"))
        profile = certprofiles.LeafProfile(
            name=name, dns_names=dns, ip_addresses=ips, common_name=(dns + ips)[0],
            usage=tuple(args.usage or ("server",)), lifetime=lifetime,
        )
    out = pki.issue(ws, name, profile=profile)
    print(f"certificate written: {out.cert} (expires {certs.expiry(out.cert).isoformat()})")
    return 0


_KEY_STATES = {
    "key missing": "key-missing", "key unreadable": "key-unreadable",
    "key does not match certificate": "key-mismatch",
}


def _state(entry: pki.Entry, now: datetime.datetime, threshold: datetime.timedelta) -> str:
    if now >= entry.info.not_after:
        return "expired"
    if entry.key_problem is not None:
        return _KEY_STATES[entry.key_problem]
    if entry.info.not_after - now <= threshold:
        return "expiring"
    return "ok"


def _key_fix(entry: pki.Entry) -> str:
    """The way out for a certificate whose private key is gone or wrong."""
    if entry.role == "ca":
        return certs.CA_KEY_FIX
    if entry.role == "next-ca":
        return "stage a new CA with `crossyard certs rotate --ca --force`"
    return f"run `crossyard certs rotate` to re-issue {entry.name}"


def _status(args: argparse.Namespace) -> int:
    ws = _ws(args)
    if args.threshold_days < 0:
        raise ConfigurationError("--threshold-days must be zero or more")
    threshold = datetime.timedelta(days=args.threshold_days)
    now = datetime.datetime.now(datetime.UTC)
    rows: list[dict[str, Any]] = []
    entries = pki.entries(ws)
    for entry in entries:
        info = entry.info
        seconds = (info.not_after - now).total_seconds()
        rows.append(
            {
                "name": entry.name,
                "role": entry.role,
                "subject": info.subject,
                "issuer": info.issuer,
                "dns_names": list(info.dns_names),
                "ip_addresses": list(info.ip_addresses),
                "usage": list(info.usage),
                "not_before": info.not_before.isoformat(),
                "not_after": info.not_after.isoformat(),
                "days_left": round(seconds / _DAY, 3),
                "seconds_left": int(seconds),
                "renew_due": info.renew_due(now),
                "state": _state(entry, now, threshold),
                "key_problem": entry.key_problem,
                "path": str(info.path),
                "key_exposed": entry.key_exposed,
                "sha256": info.fingerprint,
            }
        )
    problems = [r for r in rows if r["state"] != "ok"]
    rotation = pki.rotation(ws)
    summary = {
        "threshold_days": args.threshold_days,
        "ok": not problems,
        "ca_overlap_end": rotation.overlap_end.isoformat() if rotation.overlap_end else None,
        "ca_rotation": {
            "phase": rotation.phase,
            "name": rotation.name,
            "since": rotation.since.isoformat() if rotation.since else None,
            "overlap_end": rotation.overlap_end.isoformat() if rotation.overlap_end else None,
            "switch_at": rotation.switch_at.isoformat() if rotation.switch_at else None,
            "next": rotation.next_command,
            "advice": rotation.advice(now),
        },
        "certificates": rows,
    }
    if not emit_json(args, summary):
        for r in rows:
            sans = ", ".join(r["dns_names"] + r["ip_addresses"]) or "-"
            mark = r["state"].upper().replace("-", " ") if r["state"] != "ok" else "ok"
            due = " (renewal due: run `crossyard certs rotate`)" if (
                r["renew_due"] and r["role"] == "leaf" and r["state"] == "ok"
            ) else ""
            print(
                f"{r['name']} [{r['role']}] {mark}{due}\n"
                f"  subject: {r['subject']}\n"
                f"  sans:    {sans}\n"
                f"  issuer:  {r['issuer']}\n"
                f"  expires: {r['not_after']} ({r['days_left']:.1f} days left)"
            )
        if rotation.phase:
            since = f" since {rotation.since.isoformat()}" if rotation.since else ""
            print(
                f"CA rotation: phase {rotation.phase} of 3 ({rotation.name}){since}"
                + (f"; overlap ends {rotation.overlap_end.isoformat()}"
                   if rotation.overlap_end else "")
                + f"\n  next: {rotation.advice(now)}"
            )
        for r, entry in zip(rows, entries, strict=True):
            if r["key_exposed"]:
                print(
                    f"warning: private key {entry.key} of {r['name']} is accessible to group or "
                    f"others; run `chmod 600 {entry.key}` and rotate it",
                    file=sys.stderr,
                )
            if entry.key_problem is not None:
                print(
                    f"{r['name']} [{r['role']}]: {entry.key_problem} ({entry.key}); "
                    f"{_key_fix(entry)}",
                    file=sys.stderr,
                )
        expiry = [r for r in problems if r["state"] in ("expired", "expiring")]
        if expiry:
            names = ", ".join(f"{r['name']} ({r['state']})" for r in expiry)
            print(
                f"{len(expiry)} certificate(s) expired or expiring within "
                f"{args.threshold_days:g} days: {names}; run `crossyard certs rotate`",
                file=sys.stderr,
            )
    return 1 if problems else 0


def _reload(ws: Workspace) -> None:
    from ..registry import manager

    reloaded = manager.reload_if_running(ws)
    print("registry reloaded with the new certificate" if reloaded else "registry not running")


def _rotate(args: argparse.Namespace) -> int:
    ws = _ws(args)
    result = pki.rotate_plan(ws, force=args.force, ca=args.ca)
    layout = pki.Pki.of(ws)
    now = datetime.datetime.now(datetime.UTC)
    if result.staged:
        print(
            f"new CA staged: {layout.next_ca.cert}; the trust bundle {layout.bundle} now holds "
            "it and the current CA, and servers keep their certificates from the current CA"
        )
    if result.switched:
        print("switched to the staged CA (its `switch_after` in certs/ca.toml has passed)")
    for r in result.renewals:
        print(f"re-issued {r.name}: {r.reason}")
    if result.staged or result.switched:
        print(f"next: {pki.rotation(ws).advice(now)}")
    if not result.renewals:
        if not result.staged:
            print("nothing to rotate: every certificate is within the first two thirds of its life")
        return 0
    _reload(ws)
    return 0


def _switch(args: argparse.Namespace) -> int:
    ws = _ws(args)
    renewed = pki.switch_ca(ws)
    print(f"the new CA is current: {pki.Pki.of(ws).ca.cert}; the previous CA stays trusted")
    for r in renewed:
        print(f"re-issued {r.name}: {r.reason}")
    if renewed:
        _reload(ws)
    print(f"next: {pki.rotation(ws).advice(datetime.datetime.now(datetime.UTC))}")
    return 0


def _retire(args: argparse.Namespace) -> int:
    ws = _ws(args)
    if not pki.retire_ca(ws, force=args.force):
        print("no previous CA to retire")
        return 0
    print(
        f"previous CA retired; trust bundle now holds only the current CA: "
        f"{pki.Pki.of(ws).bundle} (refresh clients with `crossyard certs trust` to drop it there)"
    )
    return 0


def _trust(args: argparse.Namespace) -> int:
    ws = _ws(args)
    layout = pki.Pki.of(ws)
    cas = tuple(certs.pem(c) for c in certs.load_bundle(layout.bundle))
    client = None
    if args.client:
        paths = layout.leaf(certprofiles.check_name(args.client))
        cert = certs.load_cert(paths.cert, fix=f"run `crossyard certs issue {args.client}`")
        if "client" not in certs.info(cert, paths.cert).usage:
            raise ConfigurationError(
                f"certificate {paths.cert} is not a client certificate; set usage = [\"client\"] "
                f"in certs/{args.client}.toml and run `crossyard certs issue {args.client}`"
            )
        certs.load_private_key(paths.key, fix=f"run `crossyard certs issue {args.client}`")
        client = trust.ClientIdentity(cert=certs.pem(cert), key=paths.key.read_bytes())
    files = trust.render(
        args.format, host=args.host, cas=cas, client=client, namespace=args.namespace,
        name=args.name, talos_version=args.talos_version,
    )
    if args.output is None:
        if any(trust.is_secret(p, c, client) for p, c in files.items()):
            raise ConfigurationError("private keys are never printed; pass -o DIR to write them")
        for relpath, content in files.items():
            if len(files) > 1:
                print(f"# --- {relpath}")
            sys.stdout.write(content.decode())
        return 0
    out: Path = args.output
    for relpath, content in files.items():
        mode = 0o600 if trust.is_secret(relpath, content, client) else 0o644
        atomic_write_bytes(out / relpath, content, mode=mode)
        print(f"wrote {out / relpath}")
    if args.format == "containerd":
        # Only now that hosts.toml no longer lists them: CA files of a retired CA.
        base = out / "certs.d" / args.host
        for stale in sorted(base.glob(trust.CONTAINERD_CA_GLOB)):
            if stale.relative_to(out).as_posix() not in files:
                stale.unlink()
                print(f"removed {stale} (no longer trusted)")
    return 0


def _client(args: argparse.Namespace) -> int:
    ws = _ws(args)
    if args.days is not None and args.days <= 0:
        raise ConfigurationError(f"--days {args.days}: give a positive number of days")
    lifetime = pki.CLIENT_LIFETIME if args.days is None else datetime.timedelta(days=args.days)
    files = pki.docker_client_files(ws, args.name, lifetime=lifetime)
    out: Path = args.output
    for relpath, (content, mode) in files.items():
        atomic_write_bytes(out / relpath, content, mode=mode)
        print(f"wrote {out / relpath}")
    cert = pki.Pki.of(ws).leaf(args.name).cert
    print(f"client certificate `{args.name}` expires {certs.expiry(cert).isoformat()}; use it with "
          f"DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={out}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("certs", help="the workspace CA and registry certificates")
    sub = p.add_subparsers(dest="certs_command", required=True)

    init = sub.add_parser("init", help="generate the CA from certs/ca.toml (or defaults)")
    init.add_argument("--permit-dns", action="append", help="permitted DNS subtree (repeatable)")
    init.add_argument("--permit-ip", action="append", help="permitted IP range, CIDR (repeatable)")
    init.add_argument("--force", action="store_true", help="replace an existing CA (no overlap)")
    init.set_defaults(func=_init)

    issue = sub.add_parser("issue", help="(re-)issue a certificate from certs/NAME.toml")
    issue.add_argument("name", help="profile name: certs/NAME.toml, written to .crossyard/pki/NAME/")
    issue.add_argument("--san", action="append", help="ad hoc DNS name or IP instead of a profile")
    issue.add_argument("--days", type=int, help="ad hoc lifetime in days (with --san; default 90)")
    issue.add_argument("--lifetime", help='ad hoc lifetime like "12h" or "30s" (with --san)')
    issue.add_argument("--usage", action="append", choices=certprofiles.USAGES)
    issue.set_defaults(func=_issue)

    status = sub.add_parser(
        "status", help="every certificate's names, issuer and expiry; exit 1 if any expires soon"
    )
    status.add_argument(
        "--threshold-days", type=float, default=30.0,
        help="exit 1 when a certificate expires within this many days (default 30)",
    )
    add_json_options(status)
    status.set_defaults(func=_status)

    rotate = sub.add_parser(
        "rotate", help="renew leaves past 2/3 of their life; --ca stages a new CA (phase 1)"
    )
    rotate.add_argument(
        "--ca", action="store_true",
        help="stage a new CA: trusted beside the current one, signing nothing yet",
    )
    rotate.add_argument(
        "--force", action="store_true",
        help="renew every leaf now; with --ca, start over during a CA rotation",
    )
    rotate.set_defaults(func=_rotate)

    switch = sub.add_parser(
        "switch-ca", help="phase 2: re-issue every leaf from the staged CA and reload the registry"
    )
    switch.set_defaults(func=_switch)

    retire = sub.add_parser("retire-ca", help="phase 3: drop the previous CA after the overlap")
    retire.add_argument("--force", action="store_true", help="retire before the overlap ends")
    retire.set_defaults(func=_retire)

    client = sub.add_parser(
        "client", help="a client certificate from the CA, written as DOCKER_CERT_PATH wants it"
    )
    client.add_argument("name", help="the client's name (CN), kept as .crossyard/pki/NAME/")
    client.add_argument(
        "-o", "--output", type=Path, required=True,
        help="write ca.pem, cert.pem and key.pem (0600) under DIR",
    )
    client.add_argument("--days", type=int, help="lifetime of a new certificate (default 90)")
    client.set_defaults(func=_client)

    tr = sub.add_parser("trust", help="render trust material for registry clients")
    tr.add_argument("--format", required=True, choices=trust.FORMATS)
    tr.add_argument("--host", required=True, help="the registry as clients reach it: HOST:PORT")
    tr.add_argument("-o", "--output", type=Path, help="write files under DIR (default: print)")
    tr.add_argument("--client", help="also install client certificate NAME (mTLS)")
    tr.add_argument("--namespace", default="kube-system", help="k8s: ConfigMap namespace")
    tr.add_argument(
        "--name", default="crossyard-registry-ca",
        help="k8s: ConfigMap name; talos: TrustedRootsConfig name",
    )
    tr.add_argument(
        "--talos-version", metavar="MAJOR.MINOR",
        help="talos: 1.12 or later writes RegistryTLSConfig + TrustedRootsConfig documents "
        "(talos-registry-tls.yaml), older the machine.registries patch; default: both files",
    )
    tr.set_defaults(func=_trust)
