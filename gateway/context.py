"""The per-command context: configuration, home layout, database and Slurm, opened lazily."""

from __future__ import annotations

import sqlite3
from functools import cached_property

from hpc_gateway.gateway.config import Config, load_config
from hpc_gateway.gateway.home import HomeLayout


class Gateway:
    """Everything a service function needs; each part is created on first use."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or load_config()
        self.layout = HomeLayout(self.config.home)

    @cached_property
    def conn(self) -> sqlite3.Connection:
        """The database connection (schema created on first use)."""
        from hpc_gateway.gateway import db

        self.layout.ensure()
        return db.connect(self.config.database)

    @cached_property
    def slurm(self):  # -> SlurmCommands
        """The Slurm backend."""
        from hpc_gateway.gateway.slurm.commands import SlurmCommands

        return SlurmCommands(timeout=float(self.config["slurm_timeout"]))

    def store(self, kind: str):  # -> VersionedStore
        """The versioned store for "algo", "data" or "model"."""
        from hpc_gateway.gateway.stores import VersionedStore

        return VersionedStore(self.conn, self.layout, kind)
