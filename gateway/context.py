"""The per-command context: configuration, home layout, database and Slurm, opened lazily."""

from __future__ import annotations

import sqlite3
import sys
from functools import cached_property
from typing import TYPE_CHECKING

from gateway.home.config import Config, load_config
from gateway.home.layout import HomeLayout

if TYPE_CHECKING:
    from gateway.common.specs import VersionRef
    from gateway.jobs.repository import JobRepository
    from gateway.slurm.scheduler import Scheduler
    from gateway.stores.versioned import VersionedStore, VersionInfo


class Gateway:
    """Everything a service function needs; each part is created on first use."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or load_config()
        self.layout = HomeLayout(self.config.home)

    @cached_property
    def conn(self) -> sqlite3.Connection:
        """The database connection, migrated, and checked to belong to this home."""
        from gateway.home import database as db
        from gateway.home.identity import bind_home

        self.layout.ensure()
        conn = db.connect(self.config.database)
        try:
            self.__dict__["home_id"] = bind_home(conn, self.config.home, self.config.database)
        except BaseException:
            conn.close()
            raise
        return conn

    @cached_property
    def home_id(self) -> str:
        """This home's identity (it goes into every job's Slurm comment and spool file)."""
        self.conn  # noqa: B018 - opening the database binds and sets the home id
        return str(self.__dict__["home_id"])

    @cached_property
    def jobs(self) -> JobRepository:
        """The job repository (all SQL on jobs)."""
        from gateway.jobs.repository import JobRepository

        return JobRepository(self.conn)

    @cached_property
    def slurm(self) -> Scheduler:
        """The scheduler (the Slurm CLI on this host), held by its interface."""
        from gateway.slurm.commands import SlurmCommands

        timeout = float(self.config["slurm_timeout"])
        return SlurmCommands(timeout=timeout, read_timeout=min(timeout, READ_TIMEOUT))

    def store(self, kind: str) -> VersionedStore:
        """The versioned store for "algo", "data" or "model"."""
        from gateway.stores.sources import UploadLimits
        from gateway.stores.versioned import VersionedStore

        limits = UploadLimits(int(self.config["max_upload_bytes"]),
                              float(self.config["max_zip_ratio"]))
        on_change = None
        if self.config["share_root"]:
            from gateway.stores.sharing import refresh

            def on_change(name: str) -> None:
                refresh(self, kind, name, warn=_warn)
        return VersionedStore(self.conn, self.layout, kind, self.jobs, limits, on_change)

    def version(self, kind: str, ref: VersionRef) -> VersionInfo:
        """The version ``ref`` names: in this home, or shared by ``ref.owner``."""
        if ref.owner is not None:
            from gateway.stores.sharing import resolve_shared, user_name

            if ref.owner != user_name():
                return resolve_shared(self.config, kind, ref)
            from dataclasses import replace

            ref = replace(ref, owner=None)
        return self.store(kind).resolve(ref)

    def versions(self, kind: str, name: str) -> list[VersionInfo]:
        """Every version of ``name`` (``OWNER:NAME`` for one another user shares)."""
        owner, colon, bare = name.rpartition(":")
        if colon:
            from gateway.common.specs import check_user_name
            from gateway.stores.sharing import shared_versions, user_name

            if check_user_name(owner) != user_name():
                return shared_versions(self.config, kind, owner, bare)
        return self.store(kind).versions(bare)


def _warn(message: str) -> None:
    sys.stderr.write(f"gw: warning: {message}\n")


# Seconds a read command waits for squeue/sacct before it answers from the database with a
# warning (squeue answers in 0.01 s when the controller is well).
READ_TIMEOUT = 5.0
