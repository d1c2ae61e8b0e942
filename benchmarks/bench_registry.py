"""The managed registry's costs: `python benchmarks/bench_registry.py`.

1. `registry up` until /v2/ answers over TLS (in-process, no CLI start-up);
2. reload latency (SIGHUP until the new backend serves the current leaf), median of 10;
3. blob download throughput through the supervisor's L4 proxy vs straight to the backend
   (64 MiB blob, best of 3), i.e. what the proxy costs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from crossyard.registry import manager, server
from crossyard.registry.client import add_query
from crossyard.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(root=Path(tmp))
        shutil.copytree(REPO / "certs", ws.root / "certs")
        (ws.root / "crossyard.toml").write_text("")
        t = time.monotonic()
        info = manager.up(ws, addr=f"127.0.0.1:{server.free_port()}")
        print(f"up: {time.monotonic() - t:.2f} s")
        try:
            times = []
            for _ in range(10):
                t = time.monotonic()
                manager.reload_if_running(ws)
                times.append(time.monotonic() - t)
            print(f"reload: median {statistics.median(times):.2f} s, max {max(times):.2f} s")
            throughput(ws, info)
        finally:
            manager.down(ws)
    return 0


def throughput(ws: Workspace, info: manager.RegistryInfo) -> None:
    data = os.urandom(64 * 1024 * 1024)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    auth = (info.username, info.password)
    ctx = ssl.create_default_context(cafile=str(info.ca_bundle))
    ctx.check_hostname = False  # the backend is dialled by port, not by name
    with httpx.Client(verify=ctx, auth=auth, timeout=300) as http:
        location = http.post(f"{info.url}/v2/bench/blobs/uploads/").headers["Location"]
        http.put(add_query(location, info.url, digest=digest), content=data).raise_for_status()
        port = json.loads((ws.state / "registry" / "state.json").read_text())["backend"]["port"]
        for name, base in (("proxy", info.url), ("direct", f"https://127.0.0.1:{port}")):
            best = float("inf")
            for _ in range(3):
                t = time.monotonic()
                got = http.get(f"{base}/v2/bench/blobs/{digest}").content
                best = min(best, time.monotonic() - t)
                assert len(got) == len(data)
            print(f"blob GET via {name}: {len(data) / best / 1e6:.0f} MB/s")


if __name__ == "__main__":
    sys.exit(main())
