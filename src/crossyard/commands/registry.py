"""`crossyard registry up|down|status|reload|user|k8s`: the workspace's managed TLS registry."""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from ..registry import k8s, manager, users
from ..registry.paths import RegistryPaths
from ..workspace import Workspace
from . import add_json_options, emit_json

FULL_BELOW = 1 << 20  # bytes free: not even a small layer fits


def _ws(args: argparse.Namespace) -> Workspace:
    return Workspace.find(explicit=args.workspace)


def _describe(info: manager.RegistryInfo) -> list[str]:
    return [
        f"  URL:          {info.url}",
        f"  CA bundle:    {info.ca_bundle}",
        f"  credentials:  user {info.username}, password in {info.password_file}",
        f"  storage:      {info.storage}",
        f"  log:          {info.log}",
    ]


def _up(args: argparse.Namespace) -> int:
    ws = _ws(args)
    try:
        already = manager.status(ws)
    except manager.ForeignRegistryError:
        already = None  # `up` refuses that one's address, or starts ours elsewhere
    info = manager.up(ws, addr=args.addr)
    verb = "already running" if already is not None else "running"
    print("\n".join([f"registry {verb} at {info.url} (supervisor pid {info.pid})",
                     *_describe(info)]))
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = manager.down(_ws(args))
    print("registry stopped" if stopped else "registry was not running")
    return 0


def _status(args: argparse.Namespace) -> int:
    ws = _ws(args)
    info = manager.status(ws)
    if info is None:
        if not emit_json(args, {"running": False, "healthy": False}):
            print("registry: not running (start it with `crossyard registry up`)")
        return 1
    health = manager.probe(info)
    cert = health.certificate
    summary = {
        "running": True, "healthy": health.answering, "url": info.url, "host": info.host,
        "pid": info.pid, "backend_pid": info.backend_pid, "ca_bundle": str(info.ca_bundle),
        "username": info.username, "password_file": str(info.password_file),
        "http_status": health.http_status, "error": health.error,
        "last_reload_error": info.last_reload_error, "storage_free_bytes": health.storage_free,
        "certificate": None if cert is None else {
            "subject": cert.subject, "sans": list(cert.sans), "serial": f"{cert.serial:x}",
            "not_after": cert.not_after.isoformat(), "sha256": cert.sha256,
            "verified": cert.verified,
        },
    }
    if emit_json(args, summary):
        return 0 if health.answering else 1
    state = "healthy" if health.answering else f"NOT answering ({health.error})"
    lines = [f"registry: running, {state}",
             f"  supervisor:   pid {info.pid}, backend pid {info.backend_pid}", *_describe(info)]
    if health.storage_free is not None:
        lines.append(f"  free space:   {health.storage_free / 2**20:.1f} MiB where it stores blobs"
                     + (" (FULL: pushes fail)" if health.storage_free < FULL_BELOW else ""))
    if cert is not None:
        days = (cert.not_after - datetime.datetime.now(datetime.UTC)).days
        lines += [
            f"  certificate:  {cert.subject}",
            f"    SANs:       {', '.join(cert.sans) or '(none)'}",
            f"    expires:    {cert.not_after.isoformat()} ({days} days left)",
            f"    serial:     {cert.serial:x}",
            f"    trusted:    {'yes' if cert.verified else 'NO: the bundle does not verify it'}",
        ]
    if info.last_reload_error:
        lines.append(f"  last reload FAILED (the previous backend still serves): "
                     f"{info.last_reload_error}")
    print("\n".join(lines))
    return 0 if health.answering else 1


def _reload(args: argparse.Namespace) -> int:
    ws = _ws(args)
    manager.status(ws)  # another workspace's registry (this one is a copy): say so, exit 2
    if manager.reload_if_running(ws):
        print("registry reloaded")
        return 0
    print("registry is not running")
    return 1


def _user_add(args: argparse.Namespace) -> int:
    ws = _ws(args)
    paths = RegistryPaths.of(ws)
    name = users.add(paths, args.name)
    reloaded = manager.reload_if_running(ws)
    print(f"registry user {name}: password in {paths.password_file(name)}"
          + ("; registry reloaded" if reloaded else ""))
    return 0


def _user_rm(args: argparse.Namespace) -> int:
    ws = _ws(args)
    users.remove(RegistryPaths.of(ws), args.name)
    reloaded = manager.reload_if_running(ws)
    print(f"registry user {args.name} removed" + ("; registry reloaded" if reloaded else ""))
    return 0


def _user_list(args: argparse.Namespace) -> int:
    paths = RegistryPaths.of(_ws(args))
    for name in users.names(paths):
        print(f"{name}\t{paths.password_file(name)}")
    return 0


def _k8s(args: argparse.Namespace) -> int:
    written = k8s.write_manifests(
        _ws(args), args.output,
        options=k8s.K8sOptions(namespace=args.namespace, name=args.name, image=args.image,
                               storage_size=args.storage_size, registry=args.registry, ca=args.ca),
    )
    for path in written:
        print(path)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("registry", help="the workspace's managed TLS registry")
    sub = p.add_subparsers(dest="registry_command", required=True)
    up = sub.add_parser("up", help="start the registry (TLS, htpasswd) and wait until it answers")
    up.add_argument("--addr", help="HOST:PORT to listen on (default: [registry] addr, "
                                   "CROSSYARD_REGISTRY_ADDR, 127.0.0.1:5000)")
    up.set_defaults(func=_up)
    sub.add_parser("down", help="stop the registry (storage is kept)").set_defaults(func=_down)
    st = sub.add_parser("status", help="running? healthy? which certificate? (exit 1 if not)")
    add_json_options(st)
    st.set_defaults(func=_status)
    sub.add_parser(
        "reload", help="serve the current certificate and users without dropping a connection"
    ).set_defaults(func=_reload)
    user = sub.add_parser("user", help="manage registry users (htpasswd)")
    usub = user.add_subparsers(dest="user_command", required=True)
    add = usub.add_parser("add", help="add or reset a user (password: $CROSSYARD_REGISTRY_PASSWORD "
                                      "or generated)")
    add.add_argument("name")
    add.set_defaults(func=_user_add)
    rm = usub.add_parser("rm", help="remove a user")
    rm.add_argument("name")
    rm.set_defaults(func=_user_rm)
    usub.add_parser("list", help="list users").set_defaults(func=_user_list)
    kube = sub.add_parser("k8s", help="render Kubernetes manifests for the same registry")
    kube.add_argument("-o", "--output", type=Path, required=True, help="directory to write")
    kube.add_argument("--namespace", default=k8s.K8sOptions.namespace)
    kube.add_argument("--name", default=k8s.K8sOptions.name)
    kube.add_argument("--image", help="the image the pod runs (default: the catalog's registry "
                                      "image, by digest from the registry it was published to)")
    kube.add_argument("--registry", help="where the catalog's image was published (default: "
                                         "CROSSYARD_REGISTRY, else the workspace's registry)")
    kube.add_argument("--ca", help="CA bundle for --registry")
    kube.add_argument("--storage-size", default=k8s.K8sOptions.storage_size)
    kube.set_defaults(func=_k8s)
