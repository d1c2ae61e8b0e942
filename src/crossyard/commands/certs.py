"""`crossyard certs init|issue|show`: the workspace CA under .crossyard/pki/ and SAN leaves."""

from __future__ import annotations

import argparse
import datetime

from .. import certs
from ..workspace import Workspace


def _ca(ws: Workspace) -> certs.CertPaths:
    return certs.CertPaths(cert=ws.pki_dir / "ca" / "ca.crt", key=ws.pki_dir / "ca" / "ca.key")


def _init(args: argparse.Namespace) -> int:
    ws = Workspace.find(explicit=args.workspace)
    ca = _ca(ws)
    if ca.cert.exists() and not args.force:
        print(f"CA already exists: {ca.cert} (use --force to replace)")
        return 0
    certs.create_ca(
        ca.cert.parent,
        permitted_dns=tuple(args.permit_dns or ()),
        permitted_ips=tuple(args.permit_ip or ()),
    )
    print(f"CA written: {ca.cert}")
    return 0


def _issue(args: argparse.Namespace) -> int:
    ws = Workspace.find(explicit=args.workspace)
    out = certs.issue_leaf(
        _ca(ws), ws.pki_dir / args.name, names=tuple(args.san),
        lifetime=datetime.timedelta(days=args.days),
    )
    print(f"certificate written: {out.cert} (expires {certs.expiry(out.cert).isoformat()})")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("certs", help="the workspace CA and registry certificates")
    sub = p.add_subparsers(dest="certs_command", required=True)
    init = sub.add_parser("init", help="generate the CA")
    init.add_argument("--permit-dns", action="append", help="permitted DNS subtree (repeatable)")
    init.add_argument("--permit-ip", action="append", help="permitted IP range, CIDR (repeatable)")
    init.add_argument("--force", action="store_true")
    init.set_defaults(func=_init)
    issue = sub.add_parser("issue", help="issue a SAN server certificate")
    issue.add_argument("name", help="certificate name (directory under .crossyard/pki/)")
    issue.add_argument("--san", action="append", required=True, help="DNS name or IP (repeatable)")
    issue.add_argument("--days", type=int, default=90)
    issue.set_defaults(func=_issue)
