"""A real container registry on localhost for tests: Debian's docker-registry."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def local_registry(base: Path) -> Iterator[str]:
    """Serve a registry storing under ``base``; yields ``127.0.0.1:PORT``; stops it after."""
    exe = shutil.which("docker-registry")
    if exe is None:
        raise RuntimeError("docker-registry is not installed: run scripts/install-deps.sh")
    port = free_port()
    config = base / "config.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {base}/data\n"
                      f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: error\n")
    with (base / "registry.log").open("w") as log:
        proc = subprocess.Popen([exe, "serve", str(config)], stdout=subprocess.DEVNULL,
                                stderr=log)
        try:
            deadline = time.time() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline or proc.poll() is not None:
                        raise RuntimeError("docker-registry did not start: "
                                           f"{(base / 'registry.log').read_text()}") from None
                    time.sleep(0.2)
            yield f"127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
