""".ci/enter-root, through which .ci/fresh-root runs its steps in a brand-new root: a dockerd
started in the entered root must run `docker exec` in the container. (Under a plain chroot the
mount namespace's root stayed this machine's /, and runc joining a container's namespace landed
there: every container-executor job failed with `chdir to cwd ("/tmp/build/src") … no such
file`.) The root entered here is this machine's own /, bound to a directory in a private mount
namespace, so the test needs no second Debian tree; dockerd keeps its data in the entered
root's /tmp, a tmpfs, as a test's private dockerd does in the fresh root."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, require, require_tool

pytestmark = [pytest.mark.integration]

# Runs in the entered root: a private dockerd (as tests/helpers/dockerd.py starts it), an image
# whose only own file is /probe/marker (/usr is this machine's, bound read-only), a container of
# it, then `docker exec` in /probe. $1 is the marker's text.
INSIDE = r"""
set -euo pipefail
d=$(mktemp -d /tmp/cy-enter-XXXXXX)
dockerd --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/pid" --host "unix://$d/sock" \
  --bridge=none --iptables=false --ip6tables=false --ip-masq=false --userland-proxy=false \
  --log-level=warn > "$d/log" 2>&1 &
export DOCKER_HOST="unix://$d/sock" DOCKER_CONFIG="$d/client"
for _ in $(seq 300); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
mkdir -p "$d/image/usr" "$d/image/probe"
ln -s usr/bin "$d/image/bin"; ln -s usr/lib "$d/image/lib"; ln -s usr/lib64 "$d/image/lib64"
printf '%s' "$1" > "$d/image/probe/marker"
tar -C "$d/image" -c . | docker import - crossyard-probe:1 >/dev/null
container=$(docker run -d --network none --read-only --tmpfs /tmp -v /usr:/usr:ro crossyard-probe:1 \
  sleep infinity)
docker exec -w /probe "$container" cat marker
"""


def test_a_docker_exec_in_the_entered_root_runs_in_its_container(tmp_path: Path) -> None:
    require(os.geteuid() == 0, ".ci/enter-root needs root")
    for tool in ("unshare", "dockerd", "docker", "tar"):
        require_tool(tool, "run .ci/install.d/20-docker.sh (apt-get install docker.io)")
    require(Path("/usr/lib64").is_dir() and Path("/bin").resolve() == Path("/usr/bin"),
            "this machine's / is not a merged-/usr Debian root")
    root = tmp_path / "root"
    root.mkdir()
    marker = secrets.token_hex(8)
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         'mount --bind / "$1" && exec "$2" "$1" "$3" "$4"', "sh",
         str(root), str(REPO / ".ci" / "enter-root"), INSIDE, marker],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == marker
