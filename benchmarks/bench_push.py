"""Push a 256 MiB single-layer image from an OCI layout to a TLS registry: crossyard vs skopeo.

Same run, same registry, a fresh repository for every push; the two tools alternate, several
repetitions, medians reported. Both are timed as whole processes (start to exit, as a user waits
for them). Every repetition pushes a NEW random layer: skopeo keeps a blob-info cache across
runs and would otherwise mount the blob from its previous push instead of uploading it (a real
advantage, but not the upload this measures). Also: crossyard's peak RSS and a no-change re-push.

Run: python benchmarks/bench_push.py        (BENCH_SIZE_MIB=256 BENCH_REPS=5)
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

SIZE_MIB = int(os.environ.get("BENCH_SIZE_MIB", "256"))
REPS = int(os.environ.get("BENCH_REPS", "5"))


def _child(url: str, ca: str, user: str, pw: str, layout_dir: str, repo: str) -> None:
    """One crossyard push in its own process; prints push seconds and peak RSS (MiB)."""
    from crossyard.oci.layout import OciLayout
    from crossyard.registry.client import RegistryClient

    start = time.perf_counter()
    with RegistryClient(url, ca_path=Path(ca), username=user, password=pw) as client:
        client.push_layout(OciLayout(Path(layout_dir)), "big:1", repo, "1")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"push": seconds, "peak_mib": peak}))


def _crossyard(args: tuple[str, ...], repo: str) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--child", *args, repo],
                         check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - start
    return wall, json.loads(out.strip().splitlines()[-1])


def _skopeo(layout: Path, host: str, certs: Path, creds: str, repo: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["skopeo", "copy", "--quiet", f"oci:{layout}:big:1", f"docker://{host}/{repo}:1",
         "--dest-cert-dir", str(certs), "--dest-creds", creds],
        check=True,
    )
    return time.perf_counter() - start


def main() -> int:
    from crossyard.oci.layout import OciLayout
    from helpers.images import random_image
    from helpers.registry import running_registry

    with tempfile.TemporaryDirectory() as tmp_str:
        tmp = Path(tmp_str)
        with running_registry(tmp) as reg:
            certs = tmp / "certs"
            certs.mkdir()
            (certs / "ca.crt").write_bytes(reg.ca_path.read_bytes())
            creds = f"{reg.username}:{reg.password}"
            ours: list[float] = []
            inner: list[float] = []
            peaks: list[float] = []
            theirs: list[float] = []
            for rep in range(REPS):
                layout = tmp / f"layout{rep}"
                random_image(OciLayout(layout).ensure(), SIZE_MIB << 20, "big:1")
                args = (reg.url, str(reg.ca_path), reg.username, reg.password, str(layout))
                # Alternate who goes first so neither always gets the warmer page cache.
                order = ("c", "s") if rep % 2 == 0 else ("s", "c")
                for who in order:
                    if who == "c":
                        wall, info = _crossyard(args, f"bench-c{rep}")
                        ours.append(wall)
                        inner.append(info["push"])
                        peaks.append(info["peak_mib"])
                    else:
                        theirs.append(_skopeo(layout, reg.host, certs, creds, f"bench-s{rep}"))
                if rep < REPS - 1:
                    for blob in (layout / "blobs" / "sha256").iterdir():
                        blob.unlink()
            again, again_info = _crossyard(args, f"bench-c{REPS - 1}")
    ours_m, theirs_m = statistics.median(ours), statistics.median(theirs)
    print(f"{SIZE_MIB} MiB single-layer image to a TLS registry, fresh repository each push, "
          f"{REPS} repetitions (median; all runs in brackets):")
    print(f"  crossyard push : {ours_m:.2f} s  [{', '.join(f'{x:.2f}' for x in ours)}]"
          f"  (in-process push {statistics.median(inner):.2f} s)")
    print(f"  skopeo copy    : {theirs_m:.2f} s  [{', '.join(f'{x:.2f}' for x in theirs)}]")
    print(f"  crossyard / skopeo : {ours_m / theirs_m:.2f}x")
    print(f"  crossyard peak RSS : {max(peaks):.0f} MiB")
    print(f"  no-change re-push  : {again:.3f} s whole process, "
          f"{again_info['push']:.3f} s in-process")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*sys.argv[2:8])
        sys.exit(0)
    sys.exit(main())
