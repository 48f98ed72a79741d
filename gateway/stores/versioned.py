"""Versioned stores: algorithms, datasets and models as immutable numbered versions.

Algorithm and dataset versions are trees of hardlinks into the object store (unchanged
files are stored once across versions). Model versions are /model directories renamed into
place by the harvest (see spool/harvest.py). Every version directory is read-only.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gateway.common.errors import InvalidInput, NotFound
from gateway.common.specs import VersionRef, check_name
from gateway.common.trees import make_read_only, remove_tree, tree_size
from gateway.home import database as db
from gateway.home.layout import HomeLayout
from gateway.stores.objects import ObjectStore
from gateway.stores.sources import UploadLimits, open_source
from gateway.stores.version_repository import VersionRepository

KIND_LABEL = {"algo": "algorithm", "data": "dataset", "model": "model"}


class VersionUsers(Protocol):
    """The jobs that use versions (the job repository, gateway/jobs/repository.py): a
    version in use by an active job is not removed, and a removed one is unlinked from the
    jobs' records. Handed in, so that the stores never import the job model above them."""

    def active_using(self, column: str, row_id: int) -> list[int]:
        """Ids of unfinished jobs whose ``column`` is ``row_id``."""

    def forget_version(self, version_id: int) -> None:
        """Unlink a version being removed from every job's record."""


@dataclass(frozen=True)
class VersionInfo:
    """One stored version."""

    id: int
    kind: str
    name: str
    number: int
    path: Path
    file_count: int
    size_bytes: int
    created: float
    meta: dict[str, Any] = field(default_factory=dict)
    job_id: int | None = None
    tree_digest: str | None = None
    owner: str | None = None  # another user's version, shared with this one (gateway/sharing)

    @property
    def ref(self) -> str:
        """``NAME@vN`` (``OWNER:NAME@vN`` for another user's shared version)."""
        return f"{self.owner + ':' if self.owner else ''}{self.name}@v{self.number}"

    @property
    def record_id(self) -> int | None:
        """The id a job records for this version; None for another user's version, which
        is in no table of this home (the job's spec keeps its reference)."""
        return None if self.owner else self.id

    def as_dict(self) -> dict[str, Any]:
        """Stable fields for ``--json``."""
        return {"name": self.name, "version": self.number, "ref": self.ref,
                "path": str(self.path), "files": self.file_count, "bytes": self.size_bytes,
                "created": self.created, "job_id": self.job_id, **self.meta,
                **({"owner": self.owner} if self.owner else {})}


def version_from_row(row: sqlite3.Row, kind: str) -> VersionInfo:
    """Build a :class:`VersionInfo` from a ``versions`` row joined with its collection name."""
    return VersionInfo(id=row["id"], kind=kind, name=row["name"], number=row["number"],
                       path=Path(row["path"]), file_count=row["file_count"],
                       size_bytes=row["size_bytes"], created=row["created"],
                       meta=db.loads(row["meta_json"]) or {}, job_id=row["job_id"],
                       tree_digest=row["tree_digest"])


class VersionedStore:
    """The algorithm, dataset or model store (``kind`` "algo", "data" or "model")."""

    def __init__(self, conn: sqlite3.Connection, layout: HomeLayout, kind: str,
                 users: VersionUsers, limits: UploadLimits | None = None,
                 on_change: Callable[[str], None] | None = None) -> None:
        self.conn = conn
        self.users = users
        self.layout = layout
        self.kind = kind
        self.label = KIND_LABEL[kind]
        self.limits = limits or UploadLimits()
        self.on_change = on_change  # told the name after a version is made or removed
        self.rows = VersionRepository(conn, kind)

    def changed(self, name: str) -> None:
        """Tell whoever follows this store (a share of ``name``) that its versions changed."""
        if self.on_change is not None:
            self.on_change(name)

    # ---- reading -------------------------------------------------------------------
    def collections(self) -> list[dict[str, Any]]:
        """Every name with its number of versions and latest version."""
        return self.rows.collections()

    def versions(self, name: str) -> list[VersionInfo]:
        """All versions of ``name``, oldest first."""
        check_name(name, self.label)
        rows = self.rows.rows_of(name)
        if not rows:
            raise NotFound(f"no {self.label} named {name!r} (see `gw {self.kind} list`)")
        return [version_from_row(r, self.kind) for r in rows]

    def resolve(self, ref: VersionRef) -> VersionInfo:
        """The named version, or the latest when ``ref.number`` is None."""
        if ref.number is None:
            return self.versions(ref.name)[-1]
        row = self.rows.row(ref.name, ref.number)
        if row is None:
            known = ", ".join(f"v{v.number}" for v in self.versions(ref.name))
            raise NotFound(f"{self.label} {ref.name!r} has no version v{ref.number} "
                           f"(it has {known})")
        return version_from_row(row, self.kind)

    def by_id(self, version_id: int | None) -> VersionInfo | None:
        """The version with database id ``version_id`` (None when removed or not given)."""
        if version_id is None:
            return None
        row = self.rows.row_by_id(version_id)
        return None if row is None else version_from_row(row, self.kind)

    # ---- writing -------------------------------------------------------------------
    def push(self, source: Path, name: str, meta: dict[str, Any],
             progress: Callable[[int, int], None] | None = None, *,
             exclude: frozenset[str] = frozenset(),
             unchanged_from: VersionInfo | None = None) -> tuple[VersionInfo, bool]:
        """Store ``source`` (a directory or a zip) as the next version of ``name``.

        Returns the version and whether it is new: content identical to the latest version,
        or to ``unchanged_from`` (the version a draft came from), makes no new version.
        Names in ``exclude`` are left out of a directory. On any error nothing is left
        behind (no staging, no object). Files are copied outside any transaction.
        """
        check_name(name, self.label)
        self.layout.ensure()
        objects = ObjectStore(self.layout.objects, self.layout.tmp)
        staging = self.layout.tmp / f"push-{uuid.uuid4().hex}"
        try:
            with objects.storing():
                return self._stage_and_commit(source, name, meta, progress, objects, staging,
                                              exclude, unchanged_from)
        except BaseException:
            remove_tree(staging)
            objects.collect_garbage(only=objects.created)
            raise

    def _stage_and_commit(self, source: Path, name: str, meta: dict[str, Any],
                          progress: Callable[[int, int], None] | None, objects: ObjectStore,
                          staging: Path, exclude: frozenset[str],
                          unchanged_from: VersionInfo | None) -> tuple[VersionInfo, bool]:
        with open_source(source, self.limits, exclude) as (entries, reader):
            total = sum(e.size for e in entries if e.kind == "file")
            done = 0
            digest = hashlib.sha256()
            staging.mkdir(parents=True)
            for entry in entries:
                target = staging / entry.path
                if entry.kind == "dir":
                    target.mkdir(parents=True, exist_ok=True)
                    digest.update(f"d {entry.path}\n".encode())
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                if entry.kind == "symlink":
                    os.symlink(entry.link_target, target)
                    digest.update(f"l {entry.path} {entry.link_target}\n".encode())
                    continue
                obj, sha, size = self._store_file(objects, reader, entry)
                os.link(obj, target)
                digest.update(f"f {entry.path} {sha} {int(entry.executable)}\n".encode())
                done += size
                if progress:
                    progress(done, total)
        if not entries:
            raise InvalidInput(f"{source}: nothing to store (it is empty)")
        if unchanged_from is not None and unchanged_from.tree_digest == digest.hexdigest():
            remove_tree(staging)
            return unchanged_from, False
        return self._commit_version(name, staging, digest.hexdigest(), meta)

    @staticmethod
    def _store_file(objects: ObjectStore, reader: Any, entry: Any) -> tuple[Path, str, int]:
        if reader.archive is None:
            try:
                return objects.add_file(Path(entry.origin))
            except OSError as exc:
                raise InvalidInput(f"cannot read {entry.origin}: {exc.strerror}") from exc
        try:
            with reader.open(entry) as stream:
                return objects.add_stream(stream, entry.executable)
        except InvalidInput:
            raise
        except Exception as exc:  # zlib.error, BadZipFile (CRC), EOFError
            raise InvalidInput(f"cannot read {entry.origin!r} from the zip: {exc}") from exc

    def _commit_version(self, name: str, staging: Path, tree_digest: str,
                        meta: dict[str, Any]) -> tuple[VersionInfo, bool]:
        file_count, size = tree_size(staging)
        # The walk that makes the tree read-only happens before the write transaction;
        # the top stays writable until renamed (moving a directory needs that).
        make_read_only(staging)
        os.chmod(staging, 0o700)
        with db.transaction(self.conn):
            collection_id = self.ensure_collection(name)
            latest = self.rows.latest(collection_id)
            if latest is not None and latest["tree_digest"] == tree_digest:
                remove_tree(staging)
                return self.resolve(VersionRef(name, latest["number"])), False
            number = self.next_number(collection_id, name)
            final = self.layout.version_dir(self.kind, name, number)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging, final)
            try:
                os.chmod(final, 0o500)
                self.rows.insert(collection_id=collection_id, number=number,
                                 path=str(final), file_count=file_count, size_bytes=size,
                                 meta=meta, tree_digest=tree_digest)
            except BaseException:
                remove_tree(final)
                raise
        self.changed(name)
        return self.resolve(VersionRef(name, number)), True

    def ensure_collection(self, name: str) -> int:
        """Id of the collection ``name`` (created inside the caller's transaction)."""
        return self.rows.ensure_collection(name)

    def next_number(self, collection_id: int, name: str) -> int:
        """The next version number: past every recorded version and every directory."""
        number = self.rows.highest_number(collection_id) + 1
        while self.layout.version_dir(self.kind, name, number).exists():
            number += 1
        return number

    def remove(self, ref: VersionRef) -> VersionInfo:
        """Delete one version (refused while a running job uses it)."""
        if ref.owner is not None:
            raise InvalidInput(f"{ref} is {ref.owner}'s: only its owner can remove it")
        if ref.number is None:
            raise InvalidInput(f"name the version to remove, e.g. {ref.name}@v1")
        version = self.resolve(ref)
        jobs = self.users
        with db.transaction(self.conn):  # checked and removed in one transaction
            active = sorted(set(jobs.active_using("algo_version_id", version.id)
                                + jobs.active_using("data_version_id", version.id)))
            if active:
                raise InvalidInput(f"{version.ref} is used by active job(s) "
                                   f"{', '.join(map(str, active))}; cancel them first")
            jobs.forget_version(version.id)
            self.rows.delete(version.id)
        remove_tree(version.path)
        self.changed(version.name)
        ObjectStore(self.layout.objects, self.layout.tmp).collect_garbage()
        return version
