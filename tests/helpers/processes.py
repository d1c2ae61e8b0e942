"""Starting and stopping the real servers the tests run (dockerd, sshd, containerd, the
registry): wait until one answers, stop one politely and then not. Stable API: `wait_started`,
`stop`."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable


def wait_started(process: subprocess.Popen[bytes], ready: Callable[[], bool], *, what: str,
                 log: Callable[[], str], timeout: float, interval: float = 0.1) -> None:
    """Poll `ready` until it holds; RuntimeError with `log()` if `process` exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start (exit {process.poll()}):\n{log()}")
        time.sleep(interval)


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds; reaped either way."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
