"""The directory layout under GW_HOME, in one place."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.common.errors import InvalidInput

KIND_DIRS = {"algo": "algos", "data": "datasets", "model": "models"}


class HomeLayout:
    """Paths of everything the gateway keeps under its home directory. (A plain class:
    every command makes one, and a dataclass would cost each the import of dataclasses.)"""

    __slots__ = ("root",)

    def __init__(self, root: Path) -> None:
        self.root = root

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HomeLayout) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    def __repr__(self) -> str:
        return f"HomeLayout({self.root!r})"

    @property
    def objects(self) -> Path:
        """Content-addressed file objects shared (hardlinked) by algorithm and dataset versions."""
        return self.root / "objects"

    @property
    def images(self) -> Path:
        """SIF files, one per image digest."""
        return self.root / "images"

    @property
    def jobs(self) -> Path:
        """One directory per job: script, private /code copy, /model, logs."""
        return self.root / "jobs"

    @property
    def spool(self) -> Path:
        """End-state files written by jobs on compute nodes."""
        return self.root / "spool"

    @property
    def tmp(self) -> Path:
        """Staging area on the same filesystem, so finished work is renamed into place."""
        return self.root / "tmp"

    @property
    def web_secret(self) -> Path:
        """The dashboard's signing key (0600): its cross-site request tokens."""
        return self.root / "web-secret"

    @property
    def archives(self) -> Path:
        """Image archives uploaded through the dashboard, kept until their build ends."""
        return self.root / "archives"

    @property
    def uploads(self) -> Path:
        """Files uploaded through the dashboard while they are received (then removed)."""
        return self.tmp / "uploads"

    def kind_root(self, kind: str) -> Path:
        """Root of the versioned store for ``kind`` ("algo", "data" or "model")."""
        return self.root / KIND_DIRS[kind]

    def version_dir(self, kind: str, name: str, number: int) -> Path:
        """Directory of version ``number`` of ``name``."""
        return self.kind_root(kind) / name / f"v{number}"

    def job_dir(self, job_id: int) -> Path:
        """Directory of gateway job ``job_id``."""
        return self.jobs / str(job_id)

    def ensure(self) -> None:
        """Create the top-level directories (idempotent), private to the owner (0700)
        whatever the umask: a home holds code, data, models and job secrets."""
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self.root.stat().st_uid == os.getuid():
                os.chmod(self.root, 0o700)
            for path in (self.objects, self.images, self.jobs, self.spool, self.tmp,
                         *(self.kind_root(k) for k in KIND_DIRS)):
                path.mkdir(mode=0o700, exist_ok=True)
            (self.objects / ".gc.lock").touch(mode=0o600)  # see gateway/stores/objects.py
        except OSError as exc:
            raise InvalidInput(f"GW_HOME {self.root} is not usable: {exc.strerror or exc}; "
                               "set GW_HOME to a writable directory") from exc


def filesystem_type(path: Path) -> str:
    """The filesystem type of the mount that holds ``path`` (from /proc/mounts)."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "unknown"
    target = str(path.resolve())
    best, kind = "", "unknown"
    for fields in mounts:
        if len(fields) >= 3 and (target == fields[1] or target.startswith(
                fields[1].rstrip("/") + "/")) and len(fields[1]) >= len(best):
            best, kind = fields[1], fields[2]
    return kind


# Filesystems where other hosts write: inotify never sees those writes.
NETWORK_FILESYSTEMS = ("nfs", "nfs4", "lustre", "gpfs", "cifs", "smb3", "smbfs", "beegfs",
                       "ceph", "fuse.glusterfs", "glusterfs", "afs", "panfs", "wekafs")


def is_network_filesystem(path: Path) -> bool:
    """Whether ``path`` lies on a filesystem whose writes from elsewhere inotify misses.

    That is every network filesystem, and every FUSE filesystem (sshfs, bindfs, s3fs, ...):
    the kernel reports only the changes made through the FUSE mount itself, never those
    made underneath it or on another host.
    """
    kind = filesystem_type(path)
    return kind in NETWORK_FILESYSTEMS or kind == "fuse" or kind.startswith("fuse.")
