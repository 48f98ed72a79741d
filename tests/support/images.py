"""Small real images for tests: a static busybox rootfs written as `docker save` archives."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from docker_archive import write_docker_archive

BUSYBOX = "/bin/busybox"


def busybox_rootfs(dest: Path) -> Path:
    """A minimal rootfs: static busybox with every applet linked in /bin."""
    if not Path(BUSYBOX).exists():
        raise RuntimeError("busybox-static is not installed (scripts/install-deps.sh does it)")
    bin_dir = dest / "bin"
    bin_dir.mkdir(parents=True)
    shutil.copy2(BUSYBOX, bin_dir / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            os.symlink("busybox", bin_dir / applet)
    for name in ("etc", "tmp", "proc", "dev", "sys", "root"):
        (dest / name).mkdir(exist_ok=True)
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return dest


def make_archive(out: Path, layers: list[Path], layout: str = "docker-legacy",
                 env: dict[str, str] | None = None, workdir: str = "/",
                 cmd: list[str] | None = None, tag: str = "gw-test:latest") -> Path:
    """Write ``layers`` as a `docker save` archive (see scripts/docker_archive.py)."""
    return write_docker_archive(out, layers, layout, env or {"PATH": "/bin"}, workdir,
                                cmd or ["sh"], tag)
