"""Small real images for tests: a static busybox rootfs written as `docker save` archives.

The tar writer itself lives in ``scripts/docker_archive.py`` (the quickstart uses it too);
``tests/conftest.py`` puts ``scripts/`` on ``sys.path``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from docker_archive import Entry, Layer, write_docker_archive  # noqa: E402 - after sys.path

BUSYBOX = "/bin/busybox"

__all__ = ["BUSYBOX", "Entry", "busybox_rootfs", "make_archive"]


def busybox_rootfs(dest: Path) -> Path:
    """A minimal rootfs at ``dest`` (returned): static busybox, every applet linked in /bin
    (sh, cat, ls, echo, env, touch, mkdir, id, df, sleep, test, ...), /etc/passwd and group."""
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
    (dest / "etc" / "group").write_text("root:x:0:\n")
    return dest


def make_archive(out: Path, layers: Sequence[Layer], layout: str = "docker-legacy",
                 env: dict[str, str] | None = None, workdir: str = "/",
                 cmd: list[str] | None = None, tag: str = "gw-test:latest",
                 **options: Any) -> Path:
    """Write ``layers`` (directories or :class:`Entry` lists, base first) as a `docker save`
    archive in ``layout`` (``docker-legacy`` or ``docker-oci``), every entry owned by root.

    ``options`` go to :func:`docker_archive.write_docker_archive` (``config=``,
    ``architecture=``, ``manifest_json=``, ``mtime=``).
    """
    options.setdefault("owner", "root")
    return write_docker_archive(out, list(layers), layout, env or {"PATH": "/bin"}, workdir,
                                cmd or ["sh"], tag, **options)


def slow_tar2sqfs(directory: Path, starts: Path, seconds: int) -> dict[str, str]:
    """An environment whose PATH finds, first, a tar2sqfs that appends a line to
    ``starts`` and waits ``seconds`` before it runs the real one: a test then knows when
    a build has reached its SquashFS writer, and has time to act while it runs."""
    real = shutil.which("tar2sqfs")
    assert real, "tar2sqfs (squashfs-tools-ng) is not installed"
    directory.mkdir(parents=True, exist_ok=True)
    wrapper = directory / "tar2sqfs"
    wrapper.write_text(f"#!/bin/sh\necho start >> {starts}\nsleep {seconds}\n"
                       f'exec {real} "$@"\n')
    wrapper.chmod(0o755)
    return {"PATH": f"{directory}:{os.environ['PATH']}"}
